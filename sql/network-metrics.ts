/**
 * What the Prometheus exposition of the network reads (api/network-metrics):
 * running totals per path from path_totals (counters: the same on every
 * server, never decreasing) and the recent window of trains from path_recent
 * (migration 0017: the last hour, ordered by time; gauges and the window
 * histogram, by measurement time).
 *
 * Our own load is kept apart (migration 0014, sql/load-windows.ts): the
 * totals by the mark the collector set when it stored each train, the window
 * by the load windows known at the scrape, as the status verdict and the
 * alerts judge it.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { inLoadWindowSql } from './load-windows.js';
import { RTT_BUCKET_BOUNDS_US, RTT_BUCKET_NEGATED_BOUNDS } from './migrations/0012_latency_totals.js';

export { RTT_BUCKET_BOUNDS_S, RTT_BUCKET_BOUNDS_US } from './migrations/0012_latency_totals.js';

/** Counts for one measured direction and engine. */
export interface PathCounts {
  src: string;
  dst: string;
  engine: string;
  trains: number;
  sent: number;
  received: number;
  lost: number;
  /** Packets with an RTT (the histogram's count). */
  rttCount: number;
  rttSumUs: number;
  /** Cumulative counts per RTT_BUCKET_BOUNDS_US entry (RTT <= bound). */
  rttLe: number[];
}

export interface PathWindow extends PathCounts {
  /** Mean |IPDV| of the window's trains, µs; null when none had two packets. */
  jitterUs: number | null;
  lastTsMs: number;
}

type CountsRow = {
  src: string; dst: string; engine: string; trains: string | number; sent: string | number; received: string | number;
  lost: string | number; rtt_count: string | number; rtt_sum_us: number;
};

const pathKey = (r: { src: string; dst: string; engine: string }) => `${r.src}>${r.dst}>${r.engine}`;

/** Cumulative counts per bound from per-bucket counts (le_us, packets); packets above the last bound are only in the count. */
function cumulative(buckets: [number, number][] | undefined): number[] {
  const per = new Map((buckets ?? []).map(([le, n]) => [Number(le), Number(n)]));
  let total = 0;
  return RTT_BUCKET_BOUNDS_US.map((b) => (total += per.get(b) ?? 0));
}

function counts(r: CountsRow, buckets: Map<string, [number, number][]>): PathCounts {
  return {
    src: r.src, dst: r.dst, engine: r.engine, trains: Number(r.trains), sent: Number(r.sent), received: Number(r.received),
    lost: Number(r.lost), rttCount: Number(r.rtt_count), rttSumUs: Number(r.rtt_sum_us), rttLe: cumulative(buckets.get(pathKey(r))),
  };
}

async function bucketsBy(client: ClickHouseClient, query: string, params: Record<string, unknown>): Promise<Map<string, [number, number][]>> {
  const result = await client.query({ query, query_params: params, format: 'JSONEachRow' });
  const rows = await result.json<{ src: string; dst: string; engine: string; buckets: [number, number][] }>();
  return new Map(rows.map((r) => [pathKey(r), r.buckets]));
}

/**
 * Totals since the totals tables were created (migration 0014), per path
 * (src, dst, engine): `network` of the trains stored as the network's,
 * `selfLoad` of those stored as measured during our own throughput tests
 * (no RTT buckets: nobody plots our own load).
 */
export async function pathTotals(client: ClickHouseClient): Promise<{ network: PathCounts[]; selfLoad: PathCounts[] }> {
  const [result, buckets] = await Promise.all([
    client.query({
      query: `
SELECT src, dst, engine, self_load, sum(trains) AS trains, sum(sent) AS sent, sum(received) AS received, sum(lost) AS lost,
       sum(rtt_count) AS rtt_count, sum(rtt_sum_us) AS rtt_sum_us
FROM path_totals
GROUP BY src, dst, engine, self_load
ORDER BY src, dst, engine, self_load`,
      format: 'JSONEachRow',
    }),
    bucketsBy(client, `
SELECT src, dst, engine, groupArray((le_us, n)) AS buckets
FROM (SELECT src, dst, engine, le_us, sum(packets) AS n FROM path_totals_le WHERE self_load = 0 GROUP BY src, dst, engine, le_us)
GROUP BY src, dst, engine`, {}),
  ]);
  const rows = await result.json<CountsRow & { self_load: number }>();
  return {
    network: rows.filter((r) => Number(r.self_load) === 0).map((r) => counts(r, buckets)),
    selfLoad: rows.filter((r) => Number(r.self_load) !== 0).map((r) => counts(r, new Map())),
  };
}

/**
 * The trains measured in the last `windowS` seconds (by measurement time),
 * per path, from path_recent (which holds the last hour: `nowMs` is the
 * scrape's clock, never an instant in the past). Trains that began inside our own guarded load windows
 * (guard `loadGuardMs`) are left out of every figure but lastTsMs.
 */
export async function pathWindows(client: ClickHouseClient, windowS: number, nowMs: number, loadGuardMs = 0): Promise<PathWindow[]> {
  const window = `ts > fromUnixTimestamp64Milli({now_ms:Int64}, 'UTC') - toIntervalSecond({window:UInt32})
  AND ts <= fromUnixTimestamp64Milli({now_ms:Int64}, 'UTC')`;
  const ours = inLoadWindowSql('toUInt32(intDiv({now_ms:Int64}, 1000) - {window:UInt32} - 1)', 'toUInt32(intDiv({now_ms:Int64}, 1000) + 1)');
  const params = { window: windowS, now_ms: Math.round(nowMs), negated: [...RTT_BUCKET_NEGATED_BOUNDS], load_guard_ms: Math.round(loadGuardMs) };
  const [result, buckets] = await Promise.all([
    client.query({
      query: `
SELECT src, dst, engine, countIf(NOT ours) AS trains, sumIf(sent, NOT ours) AS sent, sumIf(received, NOT ours) AS received,
       sumIf(lost, NOT ours) AS lost, sumIf(length(rtts_us), NOT ours) AS rtt_count, sumIf(arraySum(rtts_us), NOT ours) AS rtt_sum_us,
       avgIf(jitter_us, jitter_us IS NOT NULL AND NOT ours) AS jitter_us, toUnixTimestamp64Milli(max(ts)) AS last_ms
FROM (SELECT src, dst, engine, ts, sent, received, lost, rtts_us, jitter_us, self_load = 1 OR ${ours} AS ours FROM path_recent WHERE ${window})
GROUP BY src, dst, engine
ORDER BY src, dst, engine`,
      query_params: params,
      format: 'JSONEachRow',
    }),
    // The same bucketing as the totals view (migration 0012).
    bucketsBy(client, `
SELECT src, dst, engine, groupArray((le_us, n)) AS buckets
FROM (
    SELECT src, dst, engine, toUInt32(-roundDown(-toFloat64(rtt), {negated:Array(Float64)})) AS le_us, count() AS n
    FROM path_recent ARRAY JOIN rtts_us AS rtt
    WHERE ${window} AND NOT (self_load = 1 OR ${ours})
    GROUP BY src, dst, engine, le_us
)
GROUP BY src, dst, engine`, params),
  ]);
  const rows = await result.json<CountsRow & { jitter_us: number | null; last_ms: string | number }>();
  return rows.map((r) => ({
    ...counts(r, buckets),
    jitterUs: typeof r.jitter_us === 'number' && Number.isFinite(r.jitter_us) ? r.jitter_us : null,
    lastTsMs: Number(r.last_ms),
  }));
}
