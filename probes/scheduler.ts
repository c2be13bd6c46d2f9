/**
 * The one scheduler for every engine (Cloudprober's shape): node-cron fires
 * each plan task on its schedule with a small random delay so the trains of
 * one probe do not all leave in the same millisecond; a task never overlaps
 * itself; stop() waits for the trains that are in flight.
 */
import cron, { type ScheduledTask } from 'node-cron';
import type { Logger } from 'pino';
import type { PlanTask } from '../collector/protocol.js';
import type { Engine, EngineName, TrainResult } from './engines/types.js';

/** Spread of task start times within one tick, milliseconds. */
const STAGGER_MS = 250;

export type ResultSink = (task: PlanTask, results: TrainResult[]) => void;

export class Scheduler {
  private readonly cronTasks: ScheduledTask[] = [];
  private readonly running = new Set<Promise<void>>();
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
    if (this.stopped) return Promise.resolve();
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

  /** Stop scheduling and wait for in-flight trains to finish (they are short). */
  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.cronTasks.map((t) => t.destroy()));
    this.cronTasks.length = 0;
    await Promise.allSettled([...this.running]);
  }
}
