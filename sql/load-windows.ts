/**
 * Our own load (migration 0009): when citymesh's throughput tests loaded a
 * link, as windows the SLA and alert queries leave out of latency and loss.
 *
 * A window is known from up to three rows per test (planned, finished,
 * measured; see the migration). Its effective span is the earliest start to
 * the latest finished or measured end, or the planned end when the test never
 * reported back (it still loaded the link for its planned duration). Every
 * reader widens it by a guard (`{load_guard_ms:UInt32}`, from the topology:
 * collector's selfLoadGuardMs): a train that began shortly before the test
 * ran into it, and clocks of the server and the two probes are not perfectly
 * aligned. Both directions of the link and both engines' trains count: the
 * window belongs to the unordered link (a < b).
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { formatDateTime64 } from './time.js';

export type LoadWindowSource = 'planned' | 'finished' | 'measured';

export interface LoadWindowRow {
  windowId: string;
  /** The link's lower and higher centre id. */
  a: string;
  b: string;
  startMs: number;
  endMs: number;
  source: LoadWindowSource;
  trigger: string;
  /** Who wrote the row: a server id or `probe:<centre>`. */
  recordedBy: string;
}

/** Store rows under one deduplication token (a batch's, or `load/<test id>/<source>`): a retry stores nothing twice. */
export async function insertLoadWindows(client: ClickHouseClient, rows: LoadWindowRow[], dedupToken: string): Promise<void> {
  if (rows.length === 0) return;
  for (const r of rows) {
    if (!(r.a < r.b)) throw new Error(`load window ${r.windowId}: link ends must be ordered (a < b), got "${r.a}", "${r.b}"`);
    if (!(r.endMs >= r.startMs)) throw new Error(`load window ${r.windowId}: ends before it starts`);
  }
  await client.insert({
    table: 'load_windows',
    values: rows.map((r) => ({
      window_id: r.windowId, a: r.a, b: r.b,
      starts_at: formatDateTime64(r.startMs * 1000).slice(0, 23), ends_at: formatDateTime64(r.endMs * 1000).slice(0, 23),
      source: r.source, trigger: r.trigger, recorded_by: r.recordedBy,
    })),
    format: 'JSONEachRow',
    clickhouse_settings: { insert_deduplication_token: dedupToken, async_insert: 0 },
  });
}

/** Longest a test's rows may lie before the period they qualify (a test lasts minutes at most). */
const LOOKAROUND = 'INTERVAL 1 HOUR';

/**
 * Effective windows overlapping [fromS, toS) once guarded (SQL expressions in
 * Unix seconds): window_id, a, b, trigger, start_ms / end_ms (unguarded) and
 * guarded_start_ms / guarded_end_ms.
 */
export function effectiveLoadWindowsSql(fromS: string, toS: string): string {
  return `
    SELECT window_id, a, b, any(trigger) AS trigger,
           toInt64(toUnixTimestamp64Milli(min(starts_at))) AS start_ms,
           toInt64(toUnixTimestamp64Milli(if(countIf(source != 'planned') > 0, maxIf(ends_at, source != 'planned'), max(ends_at)))) AS end_ms,
           start_ms - {load_guard_ms:UInt32} AS guarded_start_ms,
           end_ms + {load_guard_ms:UInt32} AS guarded_end_ms,
           groupUniqArray(source) AS sources
    FROM load_windows
    WHERE starts_at >= toDateTime64(${fromS}, 3) - ${LOOKAROUND} AND starts_at < toDateTime64(${toS}, 3) + ${LOOKAROUND}
    GROUP BY window_id, a, b
    HAVING guarded_end_ms > toInt64(${fromS}) * 1000 AND guarded_start_ms < toInt64(${toS}) * 1000`;
}

/**
 * (a, b, bucket): every bucket of `stepS` seconds (Unix s, aligned) within
 * [fromS, toS) that a guarded window touches. Minutes for the SLA (step 60),
 * the alert rules' buckets for them.
 */
export function loadedBucketsSql(fromS: string, toS: string, stepS: string): string {
  return `
    SELECT DISTINCT a, b,
           toUInt32(arrayJoin(range(
               toUInt32(greatest(intDiv(guarded_start_ms, 1000 * ${stepS}) * ${stepS}, intDiv(toInt64(${fromS}), ${stepS}) * ${stepS})),
               toUInt32(least(intDiv(guarded_end_ms + 1000 * ${stepS} - 1, 1000 * ${stepS}) * ${stepS}, toInt64(${toS}))),
               ${stepS}))) AS bucket
    FROM (${effectiveLoadWindowsSql(fromS, toS)}
    )`;
}

/**
 * Whether a train (columns src, dst, ts) began inside one of `spans`
 * (guardedLoadSpans, read first in a query of their own), as SQL with its
 * parameters: the live figures (status verdict, the network metrics' window)
 * judge trains, not minutes or buckets, so a train is ours when it began
 * inside the guarded span, the rule the collector applies when it marks
 * latency_trains.self_load. Bound as array parameters, not as a scalar
 * subquery re-reading the load windows in every statement (that was about
 * half the status query's fixed cost); with no span near (nearly always),
 * nothing at all.
 */
export function inSpansSql(spans: readonly GuardedSpan[]): { sql: string; params: Record<string, unknown> } {
  if (spans.length === 0) return { sql: 'false', params: {} };
  return {
    sql: `arrayExists((a, b, start_ms, end_ms) -> a = least(src, dst) AND b = greatest(src, dst)
             AND toUnixTimestamp64Milli(ts) >= start_ms AND toUnixTimestamp64Milli(ts) < end_ms,
         {load_a:Array(String)}, {load_b:Array(String)}, {load_start_ms:Array(Int64)}, {load_end_ms:Array(Int64)})`,
    params: {
      load_a: spans.map((w) => w.a), load_b: spans.map((w) => w.b), load_start_ms: spans.map((w) => w.startMs), load_end_ms: spans.map((w) => w.endMs),
    },
  };
}

/** A guarded span of our own load on the link a < b, ms (end exclusive). */
export interface GuardedSpan {
  a: string;
  b: string;
  startMs: number;
  endMs: number;
}

/** Guarded spans of every link touching [fromMs, toMs): what the collector marks trains self_load by. */
export async function guardedLoadSpans(client: ClickHouseClient, q: { fromMs: number; toMs: number; guardMs: number }): Promise<GuardedSpan[]> {
  const result = await client.query({
    query: `
SELECT a, b, guarded_start_ms, guarded_end_ms
FROM (${effectiveLoadWindowsSql('{from_s:UInt32}', '{to_s:UInt32}')}
)
ORDER BY guarded_start_ms`,
    query_params: { from_s: Math.max(0, Math.floor(q.fromMs / 1000)), to_s: Math.ceil(q.toMs / 1000), load_guard_ms: Math.round(q.guardMs) },
    format: 'JSONEachRow',
  });
  const rows = await result.json<{ a: string; b: string; guarded_start_ms: string | number; guarded_end_ms: string | number }>();
  return rows.map((r) => ({ a: r.a, b: r.b, startMs: Number(r.guarded_start_ms), endMs: Number(r.guarded_end_ms) }));
}

export interface LoadWindow {
  windowId: string;
  a: string;
  b: string;
  trigger: string;
  /** The test's own span (unguarded), ms. */
  startMs: number;
  endMs: number;
  /** Which rows it is known from. */
  sources: LoadWindowSource[];
  /** Whole minutes of [fromS, toS) the guarded window touches: the minutes it takes out of the SLA. */
  minutes: number;
}

/** Effective windows of the given links (all when empty) touching [fromS, toS), oldest first. */
export async function loadWindowsBetween(
  client: ClickHouseClient, q: { fromS: number; toS: number; guardMs: number; links?: { a: string; b: string }[] },
): Promise<LoadWindow[]> {
  const links = q.links ?? [];
  const result = await client.query({
    query: `
SELECT window_id, a, b, trigger, start_ms, end_ms, arraySort(sources) AS sources,
       toUInt32(greatest(0,
           least(intDiv(guarded_end_ms + 59999, 60000) * 60, toInt64({to_s:UInt32}))
           - greatest(intDiv(guarded_start_ms, 60000) * 60, intDiv(toInt64({from_s:UInt32}), 60) * 60)) / 60) AS minutes
FROM (${effectiveLoadWindowsSql('{from_s:UInt32}', '{to_s:UInt32}')}
)
WHERE empty({la:Array(String)}) OR (a, b) IN (SELECT arrayJoin(arrayZip({la:Array(String)}, {lb:Array(String)})))
ORDER BY start_ms, window_id`,
    query_params: {
      from_s: Math.floor(q.fromS), to_s: Math.ceil(q.toS), load_guard_ms: Math.round(q.guardMs),
      la: links.map((l) => l.a), lb: links.map((l) => l.b),
    },
    format: 'JSONEachRow',
  });
  const rows = await result.json<{ window_id: string; a: string; b: string; trigger: string; start_ms: string | number; end_ms: string | number; sources: LoadWindowSource[]; minutes: number }>();
  return rows.map((r) => ({
    windowId: r.window_id, a: r.a, b: r.b, trigger: r.trigger, startMs: Number(r.start_ms), endMs: Number(r.end_ms),
    sources: r.sources, minutes: Number(r.minutes),
  }));
}
