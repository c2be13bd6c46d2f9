/**
 * Capacity data: throughput tests and NIC samples, written and read here only.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { formatDateTime64, parseDateTime64 } from './time.js';

export interface ThroughputRow {
  ts: string;
  src: string;
  dst: string;
  test_id: string;
  trigger: string;
  engine: string;
  engine_version: string;
  direction: string;
  streams: number;
  seconds: number | null;
  ok: boolean;
  error: string;
  forward_bps: number | null;
  reverse_bps: number | null;
  retransmits: number | null;
  cpu_local_pct: number | null;
  cpu_remote_pct: number | null;
  batch_id: string;
}

export interface NicRow {
  ts: string;
  centre: string;
  interface: string;
  peer: string;
  interval_s: number;
  speed_mbps: number | null;
  oper_state: string;
  reset: boolean;
  rx_bps: number | null;
  tx_bps: number | null;
  rx_pps: number | null;
  tx_pps: number | null;
  rx_errors_ps: number | null;
  tx_errors_ps: number | null;
  rx_drops_ps: number | null;
  tx_drops_ps: number | null;
  utilisation: number | null;
  sample_id: string;
  batch_id: string;
}

/** Same token semantics as insertTrains: one token per batch, tracked per table. */
export async function insertThroughput(client: ClickHouseClient, rows: ThroughputRow[], dedupToken: string): Promise<void> {
  if (rows.length === 0) return;
  await client.insert({ table: 'throughput_tests', values: rows, format: 'JSONEachRow', clickhouse_settings: { insert_deduplication_token: dedupToken, async_insert: 0 } });
}

export async function insertNic(client: ClickHouseClient, rows: NicRow[], dedupToken: string): Promise<void> {
  if (rows.length === 0) return;
  await client.insert({ table: 'nic_samples', values: rows, format: 'JSONEachRow', clickhouse_settings: { insert_deduplication_token: dedupToken, async_insert: 0 } });
}

export interface ThroughputTest {
  tsUs: number;
  src: string;
  dst: string;
  testId: string;
  trigger: string;
  engine: string;
  direction: string;
  streams: number;
  seconds: number | null;
  ok: boolean;
  error: string | null;
  forwardBps: number | null;
  reverseBps: number | null;
  retransmits: number | null;
}

/** A throughput_tests row as the test queries select it. */
type ThroughputTestRow = {
  ts_text: string; src: string; dst: string; test_id: string; trigger: string; engine: string; direction: string; streams: number;
  seconds: number | null; ok: boolean; error: string; forward_bps: number | null; reverse_bps: number | null; retransmits: number | null;
};

function toThroughputTest(r: ThroughputTestRow): ThroughputTest {
  return {
    tsUs: parseDateTime64(r.ts_text), src: r.src, dst: r.dst, testId: r.test_id, trigger: r.trigger, engine: r.engine,
    direction: r.direction, streams: Number(r.streams), seconds: r.seconds, ok: Boolean(r.ok), error: r.error || null,
    forwardBps: r.forward_bps, reverseBps: r.reverse_bps, retransmits: r.retransmits === null ? null : Number(r.retransmits),
  };
}

/** Tests on the link between a and b (either end as client), oldest first. */
export async function throughputHistory(client: ClickHouseClient, a: string, b: string, fromUs: number, toUs: number, limit = 1000): Promise<ThroughputTest[]> {
  const result = await client.query({
    query: `
SELECT toString(ts) AS ts_text, src, dst, test_id, trigger, engine, direction, streams, seconds, ok, error, forward_bps, reverse_bps, retransmits
FROM throughput_tests
WHERE ((src = {a:String} AND dst = {b:String}) OR (src = {b:String} AND dst = {a:String}))
  AND ts >= {from:DateTime64(3)} AND ts < {to:DateTime64(3)}
ORDER BY ts DESC, test_id
LIMIT {limit:UInt32}`,
    query_params: { a, b, from: formatDateTime64(fromUs).slice(0, 23), to: formatDateTime64(toUs).slice(0, 23), limit },
    format: 'JSONEachRow',
  });
  const rows = await result.json<ThroughputTestRow>();
  // The newest `limit` tests, returned oldest first.
  return rows.reverse().map(toThroughputTest);
}

/**
 * One test's stored row, by its id, or null when none is stored (yet). The
 * server that asked for the test looks here when its row may have come in
 * through another server over the same store. `src`/`dst` are the test's
 * client and server (the sort key's lead) and `fromUs` a bound below its
 * start: the row's ts is the probe's start time by the probe's clock, so
 * callers leave room for clock error. Were a test ever stored twice, the
 * first stored row is the one that counts (the ingest keeps the first).
 */
export async function throughputTestById(client: ClickHouseClient, src: string, dst: string, testId: string, fromUs: number): Promise<ThroughputTest | null> {
  const result = await client.query({
    query: `
SELECT toString(ts) AS ts_text, src, dst, test_id, trigger, engine, direction, streams, seconds, ok, error, forward_bps, reverse_bps, retransmits
FROM throughput_tests
WHERE src = {src:String} AND dst = {dst:String} AND ts >= {from:DateTime64(3)} AND test_id = {test_id:String}
ORDER BY inserted_at, batch_id
LIMIT 1`,
    query_params: { src, dst, test_id: testId, from: formatDateTime64(fromUs).slice(0, 23) },
    format: 'JSONEachRow',
  });
  const [r] = await result.json<ThroughputTestRow>();
  return r ? toThroughputTest(r) : null;
}

export interface LinkNicState {
  centre: string;
  interface: string;
  peer: string;
  tsUs: number;
  speedMbps: number | null;
  operState: string;
  utilisation: number | null;
  rxBps: number | null;
  txBps: number | null;
}

/** The newest NIC sample of every interface mapped to a link (within a day). */
export async function latestNicStates(client: ClickHouseClient): Promise<LinkNicState[]> {
  const result = await client.query({
    query: `
SELECT centre, interface, peer, toString(max(ts)) AS ts_text,
       argMax(speed_mbps, (ts, sample_id)) AS speed_mbps, argMax(oper_state, (ts, sample_id)) AS oper_state,
       argMax(utilisation, (ts, sample_id)) AS utilisation, argMax(rx_bps, (ts, sample_id)) AS rx_bps, argMax(tx_bps, (ts, sample_id)) AS tx_bps
FROM nic_samples
WHERE ts >= now64(3) - INTERVAL 1 DAY AND peer != ''
GROUP BY centre, interface, peer
ORDER BY centre, interface`,
    format: 'JSONEachRow',
  });
  const rows = await result.json<{
    centre: string; interface: string; peer: string; ts_text: string; speed_mbps: number | null; oper_state: string;
    utilisation: number | null; rx_bps: number | null; tx_bps: number | null;
  }>();
  return rows.map((r) => ({
    centre: r.centre, interface: r.interface, peer: r.peer, tsUs: parseDateTime64(r.ts_text),
    speedMbps: r.speed_mbps === null ? null : Number(r.speed_mbps), operState: r.oper_state,
    utilisation: r.utilisation, rxBps: r.rx_bps, txBps: r.tx_bps,
  }));
}

/** The newest test of every link (client and server order as run). */
export async function latestThroughputTests(client: ClickHouseClient): Promise<ThroughputTest[]> {
  const result = await client.query({
    query: `
SELECT toString(ts) AS ts_text, src, dst, test_id, trigger, engine, direction, streams, seconds, ok, error, forward_bps, reverse_bps, retransmits
FROM throughput_tests
WHERE (least(src, dst), greatest(src, dst), ts) IN (
    SELECT least(src, dst) AS x, greatest(src, dst) AS y, max(ts) FROM throughput_tests GROUP BY x, y
)
ORDER BY src, dst, test_id`,
    format: 'JSONEachRow',
  });
  const rows = await result.json<ThroughputTestRow>();
  return rows.map(toThroughputTest);
}

export interface UtilisationColumns {
  stepS: number;
  t: number[];
  /** Peak utilisation of the busier direction in each bucket, 0..1; null = no data. */
  peak: (number | null)[];
  mean: (number | null)[];
  rxBps: (number | null)[];
  txBps: (number | null)[];
}

/** Utilisation of the interfaces a centre maps to a peer, from the 1-minute rollup. */
export async function utilisationSeries(client: ClickHouseClient, centre: string, peer: string, fromUs: number, toUs: number, points: number): Promise<UtilisationColumns> {
  const spanS = Math.max(60, (toUs - fromUs) / 1e6);
  const stepS = Math.max(60, Math.ceil(spanS / Math.max(1, points) / 60) * 60);
  const fromS = Math.floor(fromUs / 1e6 / stepS) * stepS;
  const toS = Math.floor(toUs / 1e6 / stepS) * stepS + stepS;
  const result = await client.query({
    query: `
SELECT toUInt32(toUnixTimestamp(toStartOfInterval(minute, toIntervalSecond({step:UInt32})))) AS t,
       sum(samples) AS n, max(util_max) AS peak, avgMerge(util_avg) AS mean, avgMerge(rx_bps_avg) AS rx, avgMerge(tx_bps_avg) AS tx
FROM nic_1m
WHERE centre = {centre:String} AND peer = {peer:String}
  AND minute >= toDateTime({from_s:UInt32}) AND minute < toDateTime({to_s:UInt32})
GROUP BY t
ORDER BY t WITH FILL FROM {from_s:UInt32} TO {to_s:UInt32} STEP {step:UInt32}`,
    query_params: { centre, peer, step: stepS, from_s: fromS, to_s: toS },
    format: 'JSONEachRow',
  });
  const rows = await result.json<{ t: number; n: number; peak: number | null; mean: number | null; rx: number | null; tx: number | null }>();
  const cols: UtilisationColumns = { stepS, t: [], peak: [], mean: [], rxBps: [], txBps: [] };
  for (const r of rows) {
    const has = Number(r.n) > 0;
    cols.t.push(Number(r.t));
    cols.peak.push(has ? finite(r.peak) : null);
    cols.mean.push(has ? finite(r.mean) : null);
    cols.rxBps.push(has ? finite(r.rx) : null);
    cols.txBps.push(has ? finite(r.tx) : null);
  }
  return cols;
}

function finite(v: number | null | undefined): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}
