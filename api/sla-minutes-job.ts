/**
 * The SLA minute materialiser as a server job (sql/sla-minutes.ts): every
 * minute, one server (slots claimed in ClickHouse, api/jobs.ts) merges the
 * newest link-hours that have ended and are not yet materialised, or got late
 * trains. Month reports never wait for it: what it has not done yet is read
 * from latency_1m, with the same figures.
 */
import cron, { type RunCoordinator, type ScheduledTask } from 'node-cron';
import type { Logger } from 'pino';
import { materialiseSlaMinutes, type Store } from '../sql/index.js';

/** Every minute, 20 s past (seconds field first, node-cron). */
export const SLA_MINUTES_SCHEDULE = '20 * * * * *';

export interface SlaMinutesJobOptions {
  store: Store;
  logger: Logger;
  runCoordinator?: RunCoordinator;
  schedule?: string;
  now?: () => number;
}

export class SlaMinutesJob {
  private task: ScheduledTask | null = null;
  private running: Promise<number> | null = null;

  constructor(private readonly options: SlaMinutesJobOptions) {}

  /** One run now (tests, and the schedule); overlapping calls share the run in progress. */
  run(): Promise<number> {
    this.running ??= materialiseSlaMinutes(this.options.store.client, { nowMs: (this.options.now ?? Date.now)() })
      .finally(() => { this.running = null; });
    return this.running;
  }

  start(): void {
    if (this.task) return;
    const { runCoordinator, logger } = this.options;
    this.task = cron.schedule(
      this.options.schedule ?? SLA_MINUTES_SCHEDULE,
      async () => {
        try {
          const hours = await this.run();
          if (hours > 0) logger.debug({ hours }, 'SLA minutes materialised');
        } catch (error) {
          logger.warn({ err: (error as Error).message }, 'SLA minute materialiser failed; months read those hours from latency_1m');
        }
      },
      { name: 'sla-minutes', noOverlap: true, ...(runCoordinator ? { distributed: true, runCoordinator, distributedLease: 600_000 } : {}) },
    );
  }

  async stop(): Promise<void> {
    if (this.task) await this.task.stop();
    this.task = null;
    await this.running?.catch(() => undefined);
  }
}
