/**
 * Everything that reads or writes latency data. Handlers never hold SQL:
 * they call these named functions, which bind every value server-side.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { guardedLoadSpans, inSpansSql } from './load-windows.js';
import { rawInsertOf } from './raw-insert.js';
import { formatDateTime64, parseDateTime64 } from './time.js';

/** One stored train, as the latency_trains table holds it. */
export interface TrainRow {
  ts: string;
  src: string;
  dst: string;
  engine: string;
  flow: number;
  src_port: number;
  dscp: number;
  batch_id: string;
  train_id: string;
  sent: number;
  received: number;
  lost: number;
  duplicated: number;
  reordered: number;
  rtt_min_us: number | null;
  rtt_median_us: number | null;
  rtt_p99_us: number | null;
  rtt_max_us: number | null;
  jitter_us: number | null;
  synced: boolean;
  error_estimate_us: number;
  rtts_us: number[];
  fwd_us: number[];
  rev_us: number[];
  /** How each end took its timestamps: hardware | kernel | user | unknown (omitted: unknown). */
  sender_ts?: string;
  reflector_ts?: string;
  /** 1 when the train began inside our own throughput test's guarded load window (migration 0014; omitted: 0). */
  self_load?: number;
}

/** latency_trains columns in the order the insert writes them (trainRowsCompactBytes). */
export const TRAIN_COLUMNS = [
  'ts', 'src', 'dst', 'engine', 'flow', 'src_port', 'dscp', 'batch_id', 'train_id', 'sent', 'received', 'lost', 'duplicated', 'reordered',
  'rtt_min_us', 'rtt_median_us', 'rtt_p99_us', 'rtt_max_us', 'jitter_us', 'synced', 'error_estimate_us', 'rtts_us', 'fwd_us', 'rev_us',
  'sender_ts', 'reflector_ts', 'self_load',
] as const;

/**
 * A train's three delay arrays as JSON text (JSON.stringify of each). Writing
 * the numbers is most of what encoding a train costs (100 RTTs as decimal
 * text); the collector writes them once for its batch content hash, and the
 * insert reuses that text instead of writing them again.
 */
export interface TrainArraysJson {
  readonly rtts: string;
  readonly fwd: string;
  readonly rev: string;
}

/** A row to insert, with its delay arrays' JSON when the caller has written it already (it must be JSON.stringify of the row's arrays). */
export type TrainRowToInsert = TrainRow & { readonly arraysJson?: TrainArraysJson };

export function trainArraysJson(rtts: readonly number[], fwd: readonly number[], rev: readonly number[]): TrainArraysJson {
  return { rtts: JSON.stringify(rtts), fwd: JSON.stringify(fwd), rev: JSON.stringify(rev) };
}

/** A train's values before its delay arrays, in TRAIN_COLUMNS order. */
function headValues(r: TrainRow): unknown[] {
  return [
    r.ts, r.src, r.dst, r.engine, r.flow, r.src_port, r.dscp, r.batch_id, r.train_id, r.sent, r.received, r.lost, r.duplicated, r.reordered,
    r.rtt_min_us, r.rtt_median_us, r.rtt_p99_us, r.rtt_max_us, r.jitter_us, r.synced, r.error_estimate_us,
  ];
}

/** A train's values after its delay arrays, in TRAIN_COLUMNS order. */
function tailValues(r: TrainRow): unknown[] {
  return [r.sender_ts ?? 'unknown', r.reflector_ts ?? 'unknown', r.self_load ?? 0];
}

/** One train as a JSONCompactEachRow row: values in TRAIN_COLUMNS order, no column names repeated per row. */
function compactRow(r: TrainRow): unknown[] {
  return [...headValues(r), r.rtts_us, r.fwd_us, r.rev_us, ...tailValues(r)];
}

/** JSON.stringify(compactRow(r)) + newline, the delay arrays written once (given) or now. */
function compactLine(r: TrainRowToInsert): string {
  const arrays = r.arraysJson ?? trainArraysJson(r.rtts_us, r.fwd_us, r.rev_us);
  return `${JSON.stringify(headValues(r)).slice(0, -1)},${arrays.rtts},${arrays.fwd},${arrays.rev},${JSON.stringify(tailValues(r)).slice(1)}\n`;
}

/**
 * The rows as a JSONCompactEachRow body (one line per train), each line
 * written straight into one buffer: a string built by appending is a rope
 * that Buffer.from must flatten first, and for a megabyte batch that copy
 * and its garbage cost more than the encoding of everything but the arrays
 * (measured in-process).
 */
export function trainRowsCompactBytes(rows: readonly TrainRowToInsert[]): Buffer {
  const lines = new Array<string>(rows.length);
  let bytes = 0;
  for (let i = 0; i < rows.length; i++) {
    const line = compactLine(rows[i]!);
    lines[i] = line;
    bytes += Buffer.byteLength(line);
  }
  const body = Buffer.allocUnsafe(bytes);
  let at = 0;
  for (const line of lines) at += body.write(line, at);
  return body;
}

/**
 * Insert one probe batch as one INSERT. The token makes a retried batch a
 * no-op (base table and rollup alike), which turns the probe's at-least-once
 * delivery into exactly-once storage.
 *
 * Format, by measurement (npm run bench -- ingest compares every format the
 * client and the embedded engine share): JSONCompactEachRow, handed to the
 * embedded engine's raw insert as bytes; a ClickHouse server gets the same
 * rows through the client.
 */
export async function insertTrains(client: ClickHouseClient, rows: readonly TrainRowToInsert[], dedupToken: string): Promise<void> {
  if (rows.length === 0) return;
  const settings = { insert_deduplication_token: dedupToken, async_insert: 0 } as const;
  const raw = rawInsertOf(client);
  if (raw) {
    await raw({ table: 'latency_trains', columns: TRAIN_COLUMNS, format: 'JSONCompactEachRow', body: trainRowsCompactBytes(rows), settings });
    return;
  }
  await client.insert({
    table: 'latency_trains',
    values: rows.map(compactRow),
    format: 'JSONCompactEachRow',
    columns: [...TRAIN_COLUMNS],
    clickhouse_settings: settings,
  });
}

export interface PathStatusRow {
  src: string;
  dst: string;
  engine: string;
  lastTsUs: number;
  trains: number;
  rttP50Us: number | null;
  rttP99Us: number | null;
  jitterUs: number | null;
  lossRatio: number | null;
  /** How the newest judged train in the window was timestamped at each end; null when the window holds none. */
  timestamping: { sender: string; reflector: string } | null;
  /** Trains of the window left out as our own load (not in trains). */
  selfLoadTrains: number;
  /** p99 one-way delay src → dst, µs, when every judged train of the window had synchronised clocks; else null. */
  oneWayP99Us: number | null;
}

/**
 * Latest state of every measured direction at the instant `asOfUs` (default:
 * now): exact percentiles over the raw packets of the window (asOf − windowS,
 * asOf] only (the sort key prunes them to a few granules per direction), and
 * every direction with a train in the day before asOf from path_latest (one
 * row per direction, kept by a view: migration 0015), so a quiet path is
 * still listed, as stale, with its newest train's time. No history is read,
 * however long the trains are kept.
 *
 * The window has an upper bound (asOf) so that two servers judging the same
 * instant over the same store give the same answer, whenever each of them
 * asks (api/status-snapshot.ts judges whole seconds a little behind now).
 *
 * Trains that began inside our own throughput test's guarded load window
 * (sql/load-windows.ts, guard `loadGuardMs`) are not judged, as the alerts
 * leave them out: they count for lastTs (the probe is alive) and as
 * selfLoadTrains, not in trains, percentiles, jitter or loss. The load
 * windows are read first, in a query of their own, and bound into the status
 * query as a parameter: as a scalar subquery of the status query they were
 * about half of its fixed cost, paid again by every request.
 */
export async function latestPathStatus(client: ClickHouseClient, windowS: number, loadGuardMs = 0, asOfUs = Date.now() * 1000): Promise<PathStatusRow[]> {
  const asOfS = Math.floor(asOfUs / 1e6);
  const spans = await guardedLoadSpans(client, { fromMs: (asOfS - windowS - 1) * 1000, toMs: (asOfS + 1) * 1000, guardMs: loadGuardMs });
  const inSpans = inSpansSql(spans);
  const result = await client.query({
    query: `
WITH
recent AS
(
    SELECT src, dst, engine, max(ts) AS last_ts, countIf(NOT ours) AS trains, sumIf(sent, NOT ours) AS sent, sumIf(lost, NOT ours) AS lost,
           quantilesExactArrayIf(0.5, 0.99)(rtts_us, NOT ours) AS q, avgIf(jitter_us, jitter_us IS NOT NULL AND NOT ours) AS jitter,
           argMaxIf(sender_ts, ts, NOT ours) AS sender_ts, argMaxIf(reflector_ts, ts, NOT ours) AS reflector_ts, countIf(ours) AS self_load_trains,
           countIf(synced AND NOT ours) AS synced_trains, quantileExactArrayIf(0.99)(fwd_us, synced AND NOT ours) AS fwd_p99
    FROM
    (
        SELECT src, dst, engine, ts, sent, lost, rtts_us, jitter_us, sender_ts, reflector_ts, synced, fwd_us, self_load = 1 OR ${inSpans.sql} AS ours
        -- the last hour of trains ordered by time (migration 0017): the window is one range at its end
        FROM path_recent
        WHERE ts > {as_of:DateTime64(6)} - toIntervalSecond({window:UInt32}) AND ts <= {as_of:DateTime64(6)}
    )
    GROUP BY src, dst, engine
),
day AS
(
    -- every direction with a train in the last day (path_latest, migration 0015: one row per direction, not a day of minutes)
    SELECT src, dst, engine, max(last_ts) AS last_ts
    FROM path_latest
    GROUP BY src, dst, engine
    HAVING last_ts >= {as_of:DateTime64(6)} - INTERVAL 1 DAY
)
SELECT
    day.src AS src, day.dst AS dst, day.engine AS engine,
    toString(if(recent.trains > 0, recent.last_ts, day.last_ts)) AS last_ts,
    recent.trains AS trains, recent.sent AS sent, recent.lost AS lost, recent.q AS q, recent.jitter AS jitter,
    recent.sender_ts AS sender_ts, recent.reflector_ts AS reflector_ts, recent.self_load_trains AS self_load_trains,
    recent.synced_trains AS synced_trains, recent.fwd_p99 AS fwd_p99
FROM day
LEFT JOIN recent ON recent.src = day.src AND recent.dst = day.dst AND recent.engine = day.engine
ORDER BY src, dst, engine`,
    query_params: { window: windowS, as_of: formatDateTime64(asOfUs), ...inSpans.params },
    format: 'JSONEachRow',
  });
  const rows = await result.json<{
    src: string; dst: string; engine: string; last_ts: string; trains: number;
    sent: number; lost: number; q: number[]; jitter: number | null; sender_ts: string; reflector_ts: string; self_load_trains: number | string | null;
    synced_trains: number | string | null; fwd_p99: number | null;
  }>();
  return rows.map((row) => {
    const hasPackets = Number(row.sent) > Number(row.lost);
    return {
      src: row.src,
      dst: row.dst,
      engine: row.engine,
      lastTsUs: parseDateTime64(row.last_ts),
      trains: Number(row.trains),
      rttP50Us: hasPackets ? finiteOrNull(row.q[0]) : null,
      rttP99Us: hasPackets ? finiteOrNull(row.q[1]) : null,
      jitterUs: finiteOrNull(row.jitter),
      lossRatio: Number(row.sent) > 0 ? Number(row.lost) / Number(row.sent) : null,
      // The newest train's, when the window holds one (an empty LEFT JOIN side reads as '').
      timestamping: Number(row.trains) > 0 ? { sender: row.sender_ts || 'unknown', reflector: row.reflector_ts || 'unknown' } : null,
      selfLoadTrains: Number(row.self_load_trains ?? 0),
      // Measured only when every judged train of the window had both clocks synchronised: a mix would judge half the packets.
      oneWayP99Us: Number(row.trains) > 0 && Number(row.synced_trains ?? 0) === Number(row.trains) ? finiteOrNull(row.fwd_p99) : null,
    };
  });
}

export interface SeriesQuery {
  src: string;
  dst: string;
  engine: string;
  fromUs: number;
  toUs: number;
  /** Wanted number of points (about one per pixel). */
  points: number;
}

export interface SeriesColumns {
  source: 'raw' | 'rollup';
  stepS: number;
  t: number[];
  minUs: (number | null)[];
  p50Us: (number | null)[];
  p99Us: (number | null)[];
  maxUs: (number | null)[];
  jitterUs: (number | null)[];
  lossRatio: (number | null)[];
  packets: number[];
}

/**
 * Buckets shorter than a minute come from raw trains with exact percentiles;
 * a minute or longer from the 1-minute rollup (t-digest), four hours or
 * longer from the hourly one (whole hours), so a series over months merges a
 * state per hour, not per minute. All are aligned on one time axis with WITH
 * FILL, so the browser gets columns ready for uPlot.
 */
export function seriesPlan(fromUs: number, toUs: number, points: number): { source: 'raw' | 'rollup'; stepS: number } {
  const spanS = Math.max(1, (toUs - fromUs) / 1e6);
  const rawStep = Math.max(1, Math.ceil(spanS / Math.max(1, points)));
  if (rawStep < 60) return { source: 'raw', stepS: rawStep };
  // Whole hours from 4 h on, where rounding up to an hour costs at most a quarter of the points asked for.
  if (rawStep < 4 * 3600) return { source: 'rollup', stepS: Math.ceil(rawStep / 60) * 60 };
  return { source: 'rollup', stepS: Math.ceil(rawStep / 3600) * 3600 };
}

/** A series from a rollup: the minute one (`minute`) or the hourly one (`hour`), same columns. */
function rollupSeriesSql(table: 'latency_1m' | 'latency_1h', time: 'minute' | 'hour'): string {
  return `
SELECT
    toUInt32(toUnixTimestamp(toStartOfInterval(${time}, toIntervalSecond({step:UInt32})))) AS t,
    sum(received) AS packets,
    sum(sent) AS sent,
    sum(lost) AS lost,
    arrayConcat([minIfMerge(rtt_min_us)], arraySlice(quantilesTDigestArrayMerge(0.5, 0.9, 0.95, 0.99)(rtt_q_us), 1, 1),
                arraySlice(quantilesTDigestArrayMerge(0.5, 0.9, 0.95, 0.99)(rtt_q_us), 4, 1), [maxIfMerge(rtt_max_us)]) AS q,
    avgIfMerge(jitter_us) AS jitter
FROM ${table}
WHERE src = {src:String} AND dst = {dst:String} AND engine = {engine:String}
  AND ${time} >= toDateTime({from:DateTime64(6)}) AND ${time} < toDateTime({to:DateTime64(6)})
GROUP BY t
ORDER BY t WITH FILL FROM {from_s:UInt32} TO {to_s:UInt32} STEP {step:UInt32}`;
}

export async function linkSeries(client: ClickHouseClient, q: SeriesQuery): Promise<SeriesColumns> {
  const { source, stepS } = seriesPlan(q.fromUs, q.toUs, q.points);
  const fromS = Math.floor(q.fromUs / 1e6 / stepS) * stepS;
  const toS = Math.floor(q.toUs / 1e6 / stepS) * stepS + stepS;
  const params = {
    src: q.src, dst: q.dst, engine: q.engine, step: stepS,
    from: formatDateTime64(fromS * 1e6), to: formatDateTime64(toS * 1e6),
    from_s: fromS, to_s: toS,
  };
  const query =
    source === 'raw'
      ? `
SELECT
    toUInt32(toUnixTimestamp(toStartOfInterval(ts, toIntervalSecond({step:UInt32})))) AS t,
    sum(received) AS packets,
    sum(sent) AS sent,
    sum(lost) AS lost,
    quantilesExactArray(0, 0.5, 0.99, 1)(rtts_us) AS q,
    avgIf(jitter_us, jitter_us IS NOT NULL) AS jitter
FROM latency_trains
WHERE src = {src:String} AND dst = {dst:String} AND engine = {engine:String}
  AND ts >= {from:DateTime64(6)} AND ts < {to:DateTime64(6)}
GROUP BY t
ORDER BY t WITH FILL FROM {from_s:UInt32} TO {to_s:UInt32} STEP {step:UInt32}`
      : stepS % 3600 === 0 ? rollupSeriesSql('latency_1h', 'hour') : rollupSeriesSql('latency_1m', 'minute');
  const result = await client.query({ query, query_params: params, format: 'JSONEachRow' });
  const rows = await result.json<{ t: number; packets: number; sent: number; lost: number; q: number[]; jitter: number | null }>();
  const columns: SeriesColumns = {
    source, stepS, t: [], minUs: [], p50Us: [], p99Us: [], maxUs: [], jitterUs: [], lossRatio: [], packets: [],
  };
  for (const row of rows) {
    const packets = Number(row.packets);
    const sent = Number(row.sent);
    const has = packets > 0;
    columns.t.push(Number(row.t));
    columns.packets.push(packets);
    columns.minUs.push(has ? finiteOrNull(row.q[0]) : null);
    columns.p50Us.push(has ? finiteOrNull(row.q[1]) : null);
    columns.p99Us.push(has ? finiteOrNull(row.q[2]) : null);
    columns.maxUs.push(has ? finiteOrNull(row.q[3]) : null);
    columns.jitterUs.push(has ? finiteOrNull(row.jitter) : null);
    columns.lossRatio.push(sent > 0 ? Number(row.lost) / sent : null);
  }
  return columns;
}

export interface TrainsQuery {
  src: string;
  dst: string;
  fromUs: number;
  toUs: number;
  limit: number;
}

/** Raw stored trains of one direction, oldest first, with their per-packet RTTs. */
export async function trainsBetween(client: ClickHouseClient, q: TrainsQuery): Promise<TrainRow[]> {
  const result = await client.query({
    query: `
SELECT ts, src, dst, engine, flow, src_port, dscp, batch_id, train_id, sent, received, lost,
       duplicated, reordered, rtt_min_us, rtt_median_us, rtt_p99_us, rtt_max_us, jitter_us,
       synced, error_estimate_us, rtts_us, fwd_us, rev_us
FROM latency_trains
WHERE src = {src:String} AND dst = {dst:String}
  AND ts >= {from:DateTime64(6)} AND ts < {to:DateTime64(6)}
ORDER BY ts, flow, train_id
LIMIT {limit:UInt32}`,
    query_params: {
      src: q.src, dst: q.dst, from: formatDateTime64(q.fromUs), to: formatDateTime64(q.toUs), limit: q.limit,
    },
    format: 'JSONEachRow',
  });
  return result.json<TrainRow>();
}

function finiteOrNull(value: number | null | undefined): number | null {
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

/** Trains stored more than once (must always be empty: exactly-once evidence). A train is its centre's id: (src, train_id). */
export async function duplicateTrainIds(client: ClickHouseClient): Promise<{ src: string; train_id: string; copies: number }[]> {
  const result = await client.query({
    query: `SELECT src, train_id, count() AS copies FROM latency_trains WHERE train_id != '' GROUP BY src, train_id HAVING copies > 1 ORDER BY src, train_id LIMIT 1000`,
    format: 'JSONEachRow',
  });
  return result.json();
}

/** How many trains a centre has stored, optionally only those whose ids are listed. */
export async function countTrains(client: ClickHouseClient, src?: string): Promise<number> {
  const result = await client.query({
    query: `SELECT count() AS n FROM latency_trains WHERE {src:String} = '' OR src = {src:String}`,
    query_params: { src: src ?? '' },
    format: 'JSONEachRow',
  });
  const [row] = await result.json<{ n: number }>();
  return Number(row?.n ?? 0);
}

/** Ids of one probe batch's records, by kind, and the time span they cover (µs). */
export interface BatchRecordIds {
  trains: string[];
  nic: string[];
  throughput: string[];
  diagnostics: string[];
  fromUs: number;
  toUs: number;
}

/** What is already stored of one batch: the content hashes under its id, and which of its records are stored. */
export interface BatchLookup {
  contentHashes: string[];
  stored: Set<string>;
}

/** One batch to look up: its centre, its id, and its records (null: a batch without records in time). */
export interface BatchLookupRequest {
  centre: string;
  batchId: string;
  ids: BatchRecordIds | null;
}

/** The tables a batch's records go to, with the column naming their centre and the record's id. */
const RECORD_TABLES = [
  { table: 'latency_trains', centre: 'src', id: 'train_id', ids: (r: BatchRecordIds) => r.trains },
  { table: 'nic_samples', centre: 'centre', id: 'sample_id', ids: (r: BatchRecordIds) => r.nic },
  { table: 'throughput_tests', centre: 'src', id: 'test_id', ids: (r: BatchRecordIds) => r.throughput },
  { table: 'diagnostics', centre: 'src', id: 'run_id', ids: (r: BatchRecordIds) => r.diagnostics },
] as const;

/**
 * For several batches at once (a group the collector stores together), in
 * one query: the batch ledger's content hashes under each batch's id, and
 * which of each batch's records are already stored (one round trip per group,
 * on the way to the live feed: the collector publishes once this has said
 * what will be stored). Answers in the order asked.
 *
 * Records are looked up, not only deduplicated by token: deduplication by token
 * covers the last N inserted blocks only (the tables' deduplication window:
 * hours on a busy fleet); a batch replayed after a longer outage, whose ack
 * was lost, would otherwise be stored twice; a train id sent in two
 * different batches would be stored twice whatever the window; and a batch
 * stored in a group is retried, after a failure, in whatever group it lands
 * in, under another token. The collector asks this for every batch, for its
 * own centre's records only (ids are the probe's, unique within a centre).
 * Each batch is looked for within its own time span (partition pruning, and
 * the sort key's leading centre, keep it cheap), not the group's: one
 * replayed batch does not make the others scan its months.
 */
export async function lookUpBatches(client: ClickHouseClient, requests: readonly BatchLookupRequest[]): Promise<BatchLookup[]> {
  if (requests.length === 0) return [];
  const params: Record<string, unknown> = {
    ledger_centres: [...new Set(requests.map((r) => r.centre))],
    ledger_batches: [...new Set(requests.map((r) => r.batchId))],
  };
  // Centre and id matched separately (two sets, exact pairs picked below): a pair the sets over-match costs a row, not a miss.
  const parts = ["SELECT 'ledger' AS kind, centre, batch_id AS batch, content_sha256 AS id FROM batch_ledger " +
    'WHERE centre IN {ledger_centres:Array(String)} AND batch_id IN {ledger_batches:Array(String)}'];
  const withIds = requests.flatMap((r, i) => (r.ids ? [{ i, centre: r.centre, ids: r.ids }] : []));
  for (const { i, centre, ids } of withIds) {
    params[`centre_${i}`] = centre;
    params[`from_${i}`] = formatDateTime64(ids.fromUs);
    params[`to_${i}`] = formatDateTime64(ids.toUs);
  }
  /** Each batch's own centre and time span, on a table whose centre column is `column`. */
  const inSpans = (column: string) => withIds
    .map(({ i }) => `(${column} = {centre_${i}:String} AND ts >= {from_${i}:DateTime64(6, 'UTC')} AND ts <= {to_${i}:DateTime64(6, 'UTC')})`)
    .join(' OR ');
  if (withIds.length > 0) {
    params.record_centres = [...new Set(withIds.map((r) => r.centre))];
    for (const [t, spec] of RECORD_TABLES.entries()) {
      const ids = withIds.flatMap((r) => spec.ids(r.ids));
      if (ids.length === 0) continue;
      params[`ids_${t}`] = ids;
      parts.push(`SELECT 'record', ${spec.centre}, '', ${spec.id} FROM ${spec.table} WHERE ${spec.centre} IN {record_centres:Array(String)} ` +
        `AND ${spec.id} IN {ids_${t}:Array(String)} AND (${inSpans(spec.centre)})`);
    }
  }
  const result = await client.query({ query: parts.join('\nUNION ALL\n'), query_params: params, format: 'JSONEachRow' });
  const hashes = new Map<string, Set<string>>();
  const stored = new Map<string, Set<string>>();
  const add = (map: Map<string, Set<string>>, key: string, id: string) => {
    const set = map.get(key);
    if (set) set.add(id);
    else map.set(key, new Set([id]));
  };
  for (const row of await result.json<{ kind: string; centre: string; batch: string; id: string }>()) {
    if (row.kind === 'ledger') add(hashes, JSON.stringify([row.centre, row.batch]), row.id);
    else add(stored, row.centre, row.id);
  }
  // Records of one centre: its batches in the group hold different records (the collector never stores two holding one at once).
  return requests.map((r) => ({
    contentHashes: [...(hashes.get(JSON.stringify([r.centre, r.batchId])) ?? [])],
    stored: r.ids ? stored.get(r.centre) ?? new Set() : new Set(),
  }));
}

const LEDGER_COLUMNS = ['centre', 'batch_id', 'content_sha256', 'stored_at'] as const;

/** One row of the batch ledger: a stored batch's content hash under its id. */
export interface BatchLedgerRow {
  centre: string;
  batch_id: string;
  content_sha256: string;
  stored_at: string;
}

/** Record stored batches' content hashes (a group's, in one INSERT), after their rows are stored; deduplicated by the token. */
export async function insertBatchLedger(client: ClickHouseClient, rows: readonly BatchLedgerRow[], dedupToken: string): Promise<void> {
  if (rows.length === 0) return;
  const raw = rawInsertOf(client);
  if (raw) {
    // The embedded engine's own insert, as for the trains: the client's path adds SET statements and string copies per batch.
    let body = '';
    for (const row of rows) body += `${JSON.stringify([row.centre, row.batch_id, row.content_sha256, row.stored_at])}\n`;
    await raw({
      table: 'batch_ledger', columns: LEDGER_COLUMNS, format: 'JSONCompactEachRow', body: Buffer.from(body),
      settings: { insert_deduplication_token: dedupToken, async_insert: 0 },
    });
    return;
  }
  await client.insert({
    table: 'batch_ledger',
    values: [...rows],
    format: 'JSONEachRow',
    clickhouse_settings: { insert_deduplication_token: dedupToken, async_insert: 0 },
  });
}
