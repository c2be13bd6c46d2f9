/**
 * The one scheduler for every engine (Cloudprober's shape): node-cron fires
 * each plan task on its schedule with a small random delay so the trains of
 * one probe do not all leave in the same millisecond; a task never overlaps
 * itself; stop() waits for the trains that are in flight.
 *
 * An engine that cannot run here (its program is missing) is asked before
 * every train: its trains are skipped, not failed, and the change is logged
 * once each way, so a missing `ping` is one line, not a stack trace a train.
 */
import cron, { type ScheduledTask } from 'node-cron';
import type { Logger } from 'pino';
import type { PlanTask } from '../collector/protocol.js';
import type { Engine, EngineName, TrainResult } from './engines/types.js';

/** Spread of task start times within one tick, milliseconds. */
const STAGGER_MS = 250;

export type ResultSink = (task: PlanTask, results: TrainResult[]) => void;

/** Engines that cannot run now, and why. */
export type EngineStates = Partial<Record<EngineName, string>>;

export class Scheduler {
  private readonly cronTasks: ScheduledTask[] = [];
  private readonly running = new Set<Promise<void>>();
  private readonly unavailable = new Map<EngineName, string>();
  private stopped = false;

  constructor(
    private readonly engines: ReadonlyMap<EngineName, Engine>,
    private readonly sink: ResultSink,
    private readonly logger: Logger,
  ) {
    cron.setLogger({
      info: (m) => logger.debug(m),
      warn: (m) => logger.debug(m),
      error: (m) => logger.warn(String(m)),
      debug: () => undefined,
    });
  }

  start(tasks: readonly PlanTask[]): void {
    for (const name of new Set(tasks.map((t) => t.engine))) this.checkEngine(name);
    for (const task of tasks) {
      if (!this.engines.has(task.engine)) {
        this.logger.warn({ task: task.id }, `no ${task.engine} engine on this probe; task skipped`);
        continue;
      }
      this.cronTasks.push(
        cron.schedule(task.schedule, () => this.runOnce(task), {
          name: task.id,
          noOverlap: true,
          maxRandomDelay: STAGGER_MS,
        }),
      );
    }
  }

  /** Run one task now (also used by tests and the one-shot CLI). */
  runOnce(task: PlanTask): Promise<void> {
    if (this.stopped || !this.checkEngine(task.engine)) return Promise.resolve();
    const engine = this.engines.get(task.engine)!;
    const work = engine
      .runTrain(
        {
          host: task.host, port: task.port, count: task.count, intervalMs: task.intervalMs,
          timeoutMs: task.timeoutMs, dscp: task.dscp, flows: task.flows, sourceAddress: task.sourceAddress ?? undefined,
        },
      )
      .then((results) => this.sink(task, results))
      .catch((error: unknown) => this.logger.warn({ err: error, task: task.id }, 'train failed'));
    this.running.add(work);
    void work.finally(() => this.running.delete(work));
    return work;
  }

  /** Engines that cannot run now, and why (as of their last check). */
  engineStates(): EngineStates {
    return Object.fromEntries(this.unavailable);
  }

  /** True when the engine can run; logs a change of state once. */
  private checkEngine(name: EngineName): boolean {
    const reason = this.engines.get(name)?.unavailable?.() ?? null;
    const before = this.unavailable.get(name) ?? null;
    if (reason && reason !== before) {
      this.unavailable.set(name, reason);
      this.logger.warn(`${name} engine unavailable: ${reason}; its trains are skipped until it is`);
    } else if (!reason && before) {
      this.unavailable.delete(name);
      this.logger.info(`${name} engine available again`);
    }
    return reason === null;
  }

  /** Stop scheduling and wait for in-flight trains to finish (they are short). */
  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.cronTasks.map((t) => t.destroy()));
    this.cronTasks.length = 0;
    await Promise.allSettled([...this.running]);
  }
}
