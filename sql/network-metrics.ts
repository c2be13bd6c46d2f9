/**
 * What the Prometheus exposition of the network reads (api/network-metrics):
 * running totals per path from latency_totals (counters: the same on every
 * server, never decreasing) and the recent window of raw trains (gauges and
 * the window histogram, by measurement time).
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { RTT_BUCKET_BOUNDS_US } from './migrations/0012_latency_totals.js';

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
  lost: string | number; rtt_count: string | number; rtt_sum_us: number; rtt_le: (string | number)[];
};

function counts(r: CountsRow): PathCounts {
  const le = (r.rtt_le ?? []).map(Number);
  return {
    src: r.src, dst: r.dst, engine: r.engine, trains: Number(r.trains), sent: Number(r.sent), received: Number(r.received),
    lost: Number(r.lost), rttCount: Number(r.rtt_count), rttSumUs: Number(r.rtt_sum_us),
    // A path whose every train lost every packet has no bucket state yet: all zeros.
    rttLe: le.length === RTT_BUCKET_BOUNDS_US.length ? le : RTT_BUCKET_BOUNDS_US.map(() => 0),
  };
}

/** Totals since the totals table was created, per path (src, dst, engine). */
export async function pathTotals(client: ClickHouseClient): Promise<PathCounts[]> {
  const result = await client.query({
    query: `
SELECT src, dst, engine, sum(trains) AS trains, sum(sent) AS sent, sum(received) AS received, sum(lost) AS lost,
       sum(rtt_count) AS rtt_count, sum(rtt_sum_us) AS rtt_sum_us, sumForEachMerge(rtt_le) AS rtt_le
FROM latency_totals
GROUP BY src, dst, engine
ORDER BY src, dst, engine`,
    format: 'JSONEachRow',
  });
  return (await result.json<CountsRow>()).map(counts);
}

/** The raw trains measured in the last `windowS` seconds (by measurement time), per path. */
export async function pathWindows(client: ClickHouseClient, windowS: number, nowMs: number): Promise<PathWindow[]> {
  const result = await client.query({
    query: `
SELECT src, dst, engine, count() AS trains, sum(sent) AS sent, sum(received) AS received, sum(lost) AS lost,
       sum(length(rtts_us)) AS rtt_count, sum(arraySum(arrayMap(x -> toFloat64(x), rtts_us))) AS rtt_sum_us,
       sumForEach(arrayMap(b -> toUInt64(arrayCount(x -> x <= b, rtts_us)), {bounds:Array(UInt32)})) AS rtt_le,
       avgIf(jitter_us, jitter_us IS NOT NULL) AS jitter_us, toUnixTimestamp64Milli(max(ts)) AS last_ms
FROM latency_trains
WHERE ts > fromUnixTimestamp64Milli({now_ms:Int64}, 'UTC') - toIntervalSecond({window:UInt32})
  AND ts <= fromUnixTimestamp64Milli({now_ms:Int64}, 'UTC')
GROUP BY src, dst, engine
ORDER BY src, dst, engine`,
    query_params: { bounds: [...RTT_BUCKET_BOUNDS_US], window: windowS, now_ms: Math.round(nowMs) },
    format: 'JSONEachRow',
  });
  const rows = await result.json<CountsRow & { jitter_us: number | null; last_ms: string | number }>();
  return rows.map((r) => ({
    ...counts(r),
    jitterUs: typeof r.jitter_us === 'number' && Number.isFinite(r.jitter_us) ? r.jitter_us : null,
    lastTsMs: Number(r.last_ms),
  }));
}
