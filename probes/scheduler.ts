/**
 * The one scheduler for every engine (Cloudprober's shape): node-cron fires
 * each plan task on its schedule with a small random delay so the trains of
 * one probe do not all leave in the same millisecond; a task never overlaps
 * itself; stop() waits for the trains that are in flight.
 *
 * Tasks that share a schedule share one node-cron job: node-cron wakes every
 * second per job and formats the date through Intl to match it, which for
 * one job per peer (20 peers, 2 engines) was the largest single cost of an
 * idle probe. One job per distinct schedule fires them all, each after its
 * own random delay; overlap is decided per task here.
 *
 * An engine that cannot run here (its program is missing) is asked before
 * every train: its trains are skipped, not failed, and the change is logged
 * once each way, so a missing `ping` is one line, not a stack trace a train.
 */
import cron, { type ScheduledTask } from 'node-cron';
import type { Logger } from 'pino';
import type { PlanTask } from '../protocol/index.js';
import type { Engine, EngineName, TrainResult } from './engines/types.js';

/** Spread of task start times within one tick, milliseconds, in slots of STAGGER_SLOT_MS. */
const STAGGER_MS = 250;
/**
 * Trains of one slot start together: the native STAMP datapath then sends
 * their packets in one wake-up of its thread (its 5 ms start grid), which is
 * most of what a busy probe costs; ten slots still spread a probe's trains.
 */
const STAGGER_SLOT_MS = 25;

export type ResultSink = (task: PlanTask, results: TrainResult[]) => void;

/** Engines that cannot run now, and why. */
export type EngineStates = Partial<Record<EngineName, string>>;

export class Scheduler {
  private readonly cronTasks: ScheduledTask[] = [];
  private readonly running = new Set<Promise<void>>();
  /** Task ids with a train in flight (a task never overlaps itself). */
  private readonly inFlight = new Set<string>();
  /** Staggered starts not yet due. */
  private readonly pendingStarts = new Set<NodeJS.Timeout>();
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
    const bySchedule = new Map<string, PlanTask[]>();
    for (const task of tasks) {
      if (!this.engines.has(task.engine)) {
        this.logger.warn({ task: task.id }, `no ${task.engine} engine on this probe; task skipped`);
        continue;
      }
      const group = bySchedule.get(task.schedule);
      if (group) group.push(task);
      else bySchedule.set(task.schedule, [task]);
    }
    for (const [schedule, group] of bySchedule) {
      this.cronTasks.push(cron.schedule(schedule, () => this.fire(group), { name: `schedule ${schedule}` }));
    }
  }

  /** One tick of a schedule: every task of it starts after its own random delay, unless its last train is still running. */
  private fire(group: readonly PlanTask[]): void {
    for (const task of group) {
      if (this.stopped) return;
      if (this.inFlight.has(task.id)) {
        this.logger.debug({ task: task.id }, 'previous train still running; this tick skipped');
        continue;
      }
      this.inFlight.add(task.id); // reserved from now, so a tick during the delay cannot start a second train
      const timer = setTimeout(() => {
        this.pendingStarts.delete(timer);
        void this.runOnce(task);
      }, Math.floor(Math.random() * (STAGGER_MS / STAGGER_SLOT_MS)) * STAGGER_SLOT_MS);
      this.pendingStarts.add(timer);
    }
  }

  /** Run one task now (also used by tests and the one-shot CLI). */
  runOnce(task: PlanTask): Promise<void> {
    if (this.stopped || !this.checkEngine(task.engine)) {
      this.inFlight.delete(task.id);
      return Promise.resolve();
    }
    this.inFlight.add(task.id);
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
    void work.finally(() => {
      this.running.delete(work);
      this.inFlight.delete(task.id);
    });
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
    for (const timer of this.pendingStarts) clearTimeout(timer);
    this.pendingStarts.clear();
    await Promise.all(this.cronTasks.map((t) => t.destroy()));
    this.cronTasks.length = 0;
    await Promise.allSettled([...this.running]);
  }
}
