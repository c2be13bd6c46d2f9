/**
 * Marks the trains measured during our own throughput tests as they are
 * stored (latency_trains.self_load, migration 0014), so the network's
 * Prometheus counters can leave them out: a counter cannot take a train back
 * once counted, so the mark is decided here, with the load windows known now.
 *
 * The windows are read from ClickHouse (any server's coordinator and any
 * probe may have written them), at most once a second for the recent past,
 * and again at once after this server stores one; a batch reaching further
 * back (a spool replay) reads the windows of its own span. A window written
 * by another server less than a second ago may be missed, and so may one only
 * known later (a probe's own measured span arriving after its peer's trains):
 * those trains are counted as the network's. The SLA, the alerts and the live
 * verdict judge them at query time and never miss them.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { guardedLoadSpans, parseDateTime64, type GuardedSpan, type LoadWindowRow, type TrainRow } from '../sql/index.js';

const RECENT_MS = 2 * 3_600_000;
const REFRESH_MS = 1000;

export class SelfLoadMarker {
  private cached: { readAtMs: number; spans: GuardedSpan[] } | null = null;
  private reading: { generation: number; spans: Promise<GuardedSpan[]> } | null = null;
  /** Bumped by invalidate(): a read begun before a window was stored is not reused after it. */
  private generation = 0;

  /** `client` is asked for each read: the store hands out a new client after it is suspended and resumed. */
  constructor(private readonly client: () => ClickHouseClient, private readonly guardMs: number, private readonly now: () => number = Date.now) {}

  /** A load window was stored here: read the windows again before the next batch. */
  invalidate(): void {
    this.cached = null;
    this.generation++;
  }

  /**
   * Sets self_load (1 or 0) on each row, in place (the rows are the batch's
   * own, and a copy of every row per batch was a good part of ingest's
   * garbage), and returns them; the batch's own load windows (a probe's
   * measured span) count too.
   */
  async mark(rows: TrainRow[], ownWindows: LoadWindowRow[]): Promise<TrainRow[]> {
    if (rows.length === 0) return rows;
    // The oldest by its text (fixed width, so text order is time order: the collector's rows are within the accepted
    // window, 4-digit years), parsed once; each row's time is parsed only when there are spans to judge it against.
    let oldestTs = rows[0]!.ts;
    for (const r of rows) if (r.ts < oldestTs) oldestTs = r.ts;
    const spans = [...await this.spansSince(parseDateTime64(oldestTs) / 1000), ...ownWindows.map((w) => ({
      a: w.a, b: w.b, startMs: w.startMs - this.guardMs, endMs: w.endMs + this.guardMs,
    }))];
    for (const r of rows) {
      if (spans.length === 0) {
        r.self_load = 0;
        continue;
      }
      const [a, b] = r.src < r.dst ? [r.src, r.dst] : [r.dst, r.src];
      const t = parseDateTime64(r.ts) / 1000;
      r.self_load = spans.some((s) => s.a === a && s.b === b && t >= s.startMs && t < s.endMs) ? 1 : 0;
    }
    return rows;
  }

  private async spansSince(oldestMs: number): Promise<GuardedSpan[]> {
    const nowMs = this.now();
    if (oldestMs < nowMs - RECENT_MS) {
      // A replay from the spool: its own span, not cached.
      return guardedLoadSpans(this.client(), { fromMs: oldestMs - 1000, toMs: nowMs + RECENT_MS, guardMs: this.guardMs });
    }
    const c = this.cached;
    if (c && nowMs - c.readAtMs < REFRESH_MS && nowMs >= c.readAtMs) return c.spans;
    // One read at a time; batches arriving meanwhile share it.
    if (this.reading?.generation === this.generation) return this.reading.spans;
    const generation = this.generation;
    const readAtMs = this.now();
    const spans = guardedLoadSpans(this.client(), { fromMs: readAtMs - RECENT_MS, toMs: readAtMs + RECENT_MS, guardMs: this.guardMs });
    const entry = { generation, spans };
    this.reading = entry;
    try {
      const read = await spans;
      if (generation === this.generation) this.cached = { readAtMs, spans: read };
      return read;
    } finally {
      if (this.reading === entry) this.reading = null;
    }
  }
}
