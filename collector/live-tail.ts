/**
 * The live feed across servers. A probe's batch is stored by whichever server
 * it reached; this server learns about it from ClickHouse itself, by tailing
 * live_trains (migration 0006) once a second, and hands the trains to its own
 * hub, which drops any it already published (its own probes' trains).
 *
 * Rows are read from a few seconds before the cursor, because an INSERT that
 * started earlier can become visible after a later one; the hub's train-id
 * de-duplication makes the overlap harmless (it remembers ids for 30 s at
 * least, well past the overlap). What the tail hands over is stored: a train
 * this server published at validation and sees here (another server stored
 * it) is no longer retracted if this server's own INSERT of it fails.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import type { Logger } from 'pino';
import { liveTrainsSince } from '../sql/index.js';
import type { LiveHub } from './live-hub.js';

export interface LiveTailOptions {
  client: () => ClickHouseClient;
  hub: LiveHub;
  logger: Logger;
  /** Poll period, ms (default 1000). */
  intervalMs?: number;
  /** How far back each read starts before the newest row seen, ms (default 5000). */
  overlapMs?: number;
}

const PAGE = 5000;

export class LiveTail {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private cursorUs = (Date.now() - 2000) * 1000;
  private failures = 0;
  private forwarded = 0;

  constructor(private readonly options: LiveTailOptions) {}

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      this.running ??= this.poll().then(() => undefined).finally(() => {
        this.running = null;
      });
    }, this.options.intervalMs ?? 1000);
    this.timer.unref();
  }

  /** One read of everything new since the cursor (exported for tests and the first tick). */
  async poll(): Promise<number> {
    const overlapUs = (this.options.overlapMs ?? 5000) * 1000;
    let since = this.cursorUs - overlapUs;
    let total = 0;
    try {
      for (;;) {
        const rows = await liveTrainsSince(this.options.client(), since, PAGE);
        if (rows.length === 0) break;
        const before = this.options.hub.stats().published;
        this.options.hub.publish(rows);
        this.forwarded += this.options.hub.stats().published - before;
        total += rows.length;
        const newest = rows[rows.length - 1]!.storedAtUs;
        this.cursorUs = Math.max(this.cursorUs, newest);
        if (rows.length < PAGE || newest === since) break;
        since = newest; // a full page: continue from its end, no overlap
      }
      if (this.failures > 0) this.options.logger.info({ after: this.failures }, 'live tail reading again');
      this.failures = 0;
    } catch (error) {
      if (this.failures++ === 0) this.options.logger.warn({ err: (error as Error).message }, 'live tail cannot read live_trains; retrying every tick');
    }
    return total;
  }

  stats(): { cursorUs: number; forwarded: number; failing: boolean } {
    return { cursorUs: this.cursorUs, forwarded: this.forwarded, failing: this.failures > 0 };
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running;
  }
}
