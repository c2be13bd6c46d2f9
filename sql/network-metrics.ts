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
import { guardedLoadSpans, inSpansSql } from './load-windows.js';
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

function counts(r: CountsRow, rttLe: number[], rttCount = Number(r.rtt_count)): PathCounts {
  return {
    src: r.src, dst: r.dst, engine: r.engine, trains: Number(r.trains), sent: Number(r.sent), received: Number(r.received),
    lost: Number(r.lost), rttCount, rttSumUs: Number(r.rtt_sum_us), rttLe,
  };
}


/**
 * Totals since the totals tables were created (migration 0014), per path
 * (src, dst, engine): `network` of the trains stored as the network's,
 * `selfLoad` of those stored as measured during our own throughput tests
 * (no RTT buckets: nobody plots our own load).
 */
export async function pathTotals(client: ClickHouseClient): Promise<{ network: PathCounts[]; selfLoad: PathCounts[] }> {
  const [result, bucketResult] = await Promise.all([
    client.query({
      query: `
SELECT src, dst, engine, self_load, sum(trains) AS trains, sum(sent) AS sent, sum(received) AS received, sum(lost) AS lost,
       sum(rtt_count) AS rtt_count, sum(rtt_sum_us) AS rtt_sum_us
FROM path_totals
GROUP BY src, dst, engine, self_load
ORDER BY src, dst, engine, self_load`,
      format: 'JSONEachRow',
    }),
    client.query({
      query: `
SELECT src, dst, engine, groupArray((le_us, n)) AS buckets
FROM (SELECT src, dst, engine, le_us, sum(packets) AS n FROM path_totals_le WHERE self_load = 0 GROUP BY src, dst, engine, le_us)
GROUP BY src, dst, engine`,
      format: 'JSONEachRow',
    }),
  ]);
  const rows = await result.json<CountsRow & { self_load: number }>();
  const bucketRows = await bucketResult.json<{ src: string; dst: string; engine: string; buckets: [number, number][] }>();
  // The histogram's count is the sum of its own buckets (the +Inf one included),
  // never path_totals.rtt_count: the two tables are written by two views of one
  // INSERT, not atomically, so a scrape between them would pair a newer count with
  // older buckets, and PromQL reads that excess as packets above the last bound
  // (a p99 of 2.5 s from a sub-millisecond link). Every figure of one histogram
  // therefore comes from one table read at one snapshot of its parts.
  const histograms = new Map(bucketRows.map((r) => {
    const total = r.buckets.reduce((sum, [, n]) => sum + Number(n), 0);
    return [pathKey(r), { le: cumulative(r.buckets), total }] as const;
  }));
  const empty = { le: cumulative(undefined), total: 0 };
  return {
    network: rows.filter((r) => Number(r.self_load) === 0).map((r) => {
      const histogram = histograms.get(pathKey(r)) ?? empty;
      return counts(r, histogram.le, histogram.total);
    }),
    selfLoad: rows.filter((r) => Number(r.self_load) !== 0).map((r) => counts(r, empty.le)),
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
  const nowS = Math.floor(nowMs / 1000);
  const inSpans = inSpansSql(await guardedLoadSpans(client, { fromMs: (nowS - windowS - 1) * 1000, toMs: (nowS + 1) * 1000, guardMs: loadGuardMs }));
  const params = { window: windowS, now_ms: Math.round(nowMs), negated: [...RTT_BUCKET_NEGATED_BOUNDS], ...inSpans.params };
  // One query, so the histogram's count and its buckets are taken from the same
  // rows (two queries could each see a different set of inserted parts). Each
  // packet goes to the smallest bound at or above it, as in the totals view
  // (migration 0012), counted per bucket by sumMap (keys, counts).
  const result = await client.query({
    query: `
SELECT src, dst, engine, countIf(NOT ours) AS trains, sumIf(sent, NOT ours) AS sent, sumIf(received, NOT ours) AS received,
       sumIf(lost, NOT ours) AS lost, sumIf(length(rtts_us), NOT ours) AS rtt_count, sumIf(arraySum(rtts_us), NOT ours) AS rtt_sum_us,
       sumMapIf(arrayMap(rtt -> toUInt32(-roundDown(-toFloat64(rtt), {negated:Array(Float64)})), rtts_us), arrayMap(rtt -> toUInt64(1), rtts_us), NOT ours) AS rtt_le,
       avgIf(jitter_us, jitter_us IS NOT NULL AND NOT ours) AS jitter_us, toUnixTimestamp64Milli(max(ts)) AS last_ms
FROM (SELECT src, dst, engine, ts, sent, received, lost, rtts_us, jitter_us, self_load = 1 OR ${inSpans.sql} AS ours FROM path_recent WHERE ${window})
GROUP BY src, dst, engine
ORDER BY src, dst, engine`,
    query_params: params,
    format: 'JSONEachRow',
  });
  const rows = await result.json<CountsRow & { rtt_le: [(number | string)[], (number | string)[]]; jitter_us: number | null; last_ms: string | number }>();
  return rows.map((r) => ({
    ...counts(r, cumulative(r.rtt_le[0].map((le, i) => [Number(le), Number(r.rtt_le[1][i])]))),
    jitterUs: typeof r.jitter_us === 'number' && Number.isFinite(r.jitter_us) ? r.jitter_us : null,
    lastTsMs: Number(r.last_ms),
  }));
}
