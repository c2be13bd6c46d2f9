/**
 * Diagnostics runs, operator requests for them, and path changes: written and
 * read here only. Every value is bound server-side.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { formatDateTime64, parseDateTime64 } from './time.js';

export interface DiagnosticsRow {
  ts: string;
  src: string;
  dst: string;
  run_id: string;
  request_id: string;
  trigger: 'breach' | 'operator';
  reason: string;
  duration_ms: number;
  tr_ok: boolean;
  tr_error: string;
  tr_tool: string;
  tr_max_hops: number;
  tr_reached: boolean;
  hop_ttls: number[];
  /** Per hop, per probe packet: the address that answered, '' for none. */
  hop_addresses: string[][];
  hop_rtts_us: (number | null)[][];
  hop_flags: string[][];
  pmtu_ok: boolean;
  pmtu_error: string;
  pmtu_tool: string;
  pmtu: number | null;
  pmtu_drop_ttl: number | null;
  pmtu_reached: boolean;
  ft_ok: boolean;
  ft_error: string;
  ft_count: number;
  ft_interval_ms: number;
  ft_sent: number;
  ft_received: number;
  ft_rtt_min_us: number | null;
  ft_rtt_median_us: number | null;
  ft_rtt_p99_us: number | null;
  ft_rtt_max_us: number | null;
  ft_jitter_us: number | null;
  batch_id: string;
}

/** Same token semantics as insertTrains: one token per probe batch, tracked per table. */
export async function insertDiagnostics(client: ClickHouseClient, rows: DiagnosticsRow[], dedupToken: string): Promise<void> {
  if (rows.length === 0) return;
  await client.insert({
    table: 'diagnostics', values: rows, format: 'JSONEachRow',
    clickhouse_settings: { insert_deduplication_token: dedupToken, async_insert: 0 },
  });
}

export interface DiagnosticRequest {
  requestId: string;
  /** The link's centres, a < b. */
  a: string;
  b: string;
  requestedBy: string;
  requestedAtUs: number;
}

export async function insertDiagnosticRequest(client: ClickHouseClient, request: DiagnosticRequest): Promise<void> {
  await client.insert({
    table: 'diagnostic_requests',
    values: [{
      requested_at: formatDateTime64(request.requestedAtUs), request_id: request.requestId,
      a: request.a, b: request.b, requested_by: request.requestedBy,
    }],
    format: 'JSONEachRow',
    clickhouse_settings: { insert_deduplication_token: `diagnostic-request/${request.requestId}`, async_insert: 0 },
  });
}

/** Requests made at or after `sinceUs`, oldest first (the servers' poll). */
export async function diagnosticRequestsSince(client: ClickHouseClient, sinceUs: number, limit = 1000): Promise<DiagnosticRequest[]> {
  const result = await client.query({
    query: `
SELECT toString(requested_at) AS at, request_id, a, b, requested_by
FROM diagnostic_requests
WHERE requested_at >= {since:DateTime64(6)}
ORDER BY requested_at, request_id, a, b, requested_by
LIMIT 1 BY request_id
LIMIT {limit:UInt32}`,
    query_params: { since: formatDateTime64(sinceUs), limit },
    format: 'JSONEachRow',
  });
  const rows = await result.json<{ at: string; request_id: string; a: string; b: string; requested_by: string }>();
  return rows.map((r) => ({ requestId: r.request_id, a: r.a, b: r.b, requestedBy: r.requested_by, requestedAtUs: parseDateTime64(r.at) }));
}

/** A request by id (null when unknown). */
export async function diagnosticRequest(client: ClickHouseClient, requestId: string): Promise<DiagnosticRequest | null> {
  const result = await client.query({
    query: `
SELECT toString(requested_at) AS at, request_id, a, b, requested_by
FROM diagnostic_requests
WHERE request_id = {id:String}
ORDER BY requested_at, a, b, requested_by
LIMIT 1`,
    query_params: { id: requestId },
    format: 'JSONEachRow',
  });
  const [r] = await result.json<{ at: string; request_id: string; a: string; b: string; requested_by: string }>();
  return r ? { requestId: r.request_id, a: r.a, b: r.b, requestedBy: r.requested_by, requestedAtUs: parseDateTime64(r.at) } : null;
}

export interface DiagnosticHop {
  ttl: number;
  probes: { address: string | null; rttUs: number | null; flag: string | null }[];
}

/** One stored run, decoded. */
export interface DiagnosticRun {
  tsUs: number;
  src: string;
  dst: string;
  runId: string;
  requestId: string | null;
  trigger: 'breach' | 'operator';
  reason: string;
  durationMs: number;
  traceroute: { ok: boolean; error: string | null; tool: string | null; maxHops: number; reached: boolean; hops: DiagnosticHop[] };
  pathMtu: { ok: boolean; error: string | null; tool: string | null; pmtu: number | null; dropAtTtl: number | null; reached: boolean };
  fastTrain: {
    ok: boolean; error: string | null; count: number; intervalMs: number; sent: number; received: number;
    rttMinUs: number | null; rttMedianUs: number | null; rttP99Us: number | null; rttMaxUs: number | null; jitterUs: number | null;
  };
}

const RUN_COLUMNS = `toString(ts) AS ts_text, src, dst, run_id, request_id, trigger, reason, duration_ms,
tr_ok, tr_error, tr_tool, tr_max_hops, tr_reached, hop_ttls, hop_addresses, hop_rtts_us, hop_flags,
pmtu_ok, pmtu_error, pmtu_tool, pmtu, pmtu_drop_ttl, pmtu_reached,
ft_ok, ft_error, ft_count, ft_interval_ms, ft_sent, ft_received, ft_rtt_min_us, ft_rtt_median_us, ft_rtt_p99_us, ft_rtt_max_us, ft_jitter_us`;

type RunRecord = Omit<DiagnosticsRow, 'ts' | 'batch_id'> & { ts_text: string };

/** The link between a and b in both directions. */
const LINK_FILTER = '((src = {a:String} AND dst = {b:String}) OR (src = {b:String} AND dst = {a:String}))';

/** Runs on the link (both directions) in [from, to), oldest first, at most `limit` (the newest). */
export async function diagnosticRuns(client: ClickHouseClient, q: { a: string; b: string; fromUs: number; toUs: number; limit?: number }): Promise<DiagnosticRun[]> {
  const result = await client.query({
    query: `
SELECT ${RUN_COLUMNS}
FROM diagnostics
WHERE ${LINK_FILTER} AND ts >= {from:DateTime64(3)} AND ts < {to:DateTime64(3)}
ORDER BY ts DESC, run_id, batch_id
LIMIT 1 BY run_id
LIMIT {limit:UInt32}`,
    query_params: { a: q.a, b: q.b, from: ms(q.fromUs), to: ms(q.toUs), limit: q.limit ?? 1000 },
    format: 'JSONEachRow',
  });
  return (await result.json<RunRecord>()).reverse().map(decodeRun);
}

/** The runs on the link whose run id or operator request id is `id`, oldest first. */
export async function diagnosticRunsById(client: ClickHouseClient, q: { a: string; b: string; id: string }): Promise<DiagnosticRun[]> {
  const result = await client.query({
    query: `
SELECT ${RUN_COLUMNS}
FROM diagnostics
WHERE ${LINK_FILTER} AND (run_id = {id:String} OR request_id = {id:String})
ORDER BY ts, run_id, batch_id
LIMIT 1 BY run_id
LIMIT 100`,
    query_params: { a: q.a, b: q.b, id: q.id },
    format: 'JSONEachRow',
  });
  return (await result.json<RunRecord>()).map(decodeRun);
}

export interface PathChange {
  tsUs: number;
  src: string;
  dst: string;
  runId: string;
  previousRunId: string;
  previousTsUs: number;
  /** Per hop, the distinct addresses that answered (empty: none did). */
  before: string[][];
  after: string[][];
}

/**
 * Path changes on the link in [from, to): a traceroute whose responding hop
 * sequence differs from the previous traceroute of the same src → dst.
 * "Differs" is judged only where both answered: at some TTL both runs heard
 * from routers and no address is common to the two (a silent hop, e.g. a
 * router rate-limiting its ICMP, is a wildcard, and ECMP answering from one of
 * the same set of routers is the same path), or a router (not the
 * destination) answered at a TTL beyond the one where the other run reached
 * the destination (the path got longer). A destination that rate-limits its
 * answers shows up at a later TTL after silent hops: that alone is no change.
 * Runs whose traceroute heard nothing are
 * skipped, so a failed run never makes a change appear. The run before the
 * window's first is looked for up to 30 days back.
 */
export async function pathChanges(client: ClickHouseClient, q: { a: string; b: string; fromUs: number; toUs: number }): Promise<PathChange[]> {
  const result = await client.query({
    query: `
SELECT toString(ts) AS ts_text, src, dst, run_id, prev_run, toString(prev_ts) AS prev_ts_text, path AS after, prev_path AS before
FROM
(
    SELECT ts, src, dst, run_id, path, reached,
           lagInFrame(path) OVER w AS prev_path,
           lagInFrame(run_id) OVER w AS prev_run,
           lagInFrame(ts) OVER w AS prev_ts,
           lagInFrame(reached) OVER w AS prev_reached
    FROM
    (
        SELECT ts, src, dst, run_id, tr_reached AS reached,
               arrayMap(h -> arraySort(arrayDistinct(arrayFilter(x -> x != '', h))), hop_addresses) AS path
        FROM diagnostics
        WHERE ${LINK_FILTER}
          AND ts >= {from:DateTime64(3)} - INTERVAL 30 DAY AND ts < {to:DateTime64(3)} -- the run before the window's first
        ORDER BY ts, run_id, batch_id
        LIMIT 1 BY run_id
    )
    WHERE arrayExists(h -> length(h) > 0, path)
    WINDOW w AS (PARTITION BY src, dst ORDER BY ts, run_id ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
)
WHERE ts >= {from:DateTime64(3)} AND prev_run != ''
  AND (
    arrayExists(i -> length(path[i]) > 0 AND length(prev_path[i]) > 0 AND NOT hasAny(path[i], prev_path[i]),
                range(1, greatest(length(path), length(prev_path)) + 1))
    OR (prev_reached AND arrayExists(i -> i > length(prev_path) AND length(path[i]) > 0 AND NOT hasAny(path[i], prev_path[length(prev_path)]),
                                     range(1, length(path) + 1)))
    OR (reached AND arrayExists(i -> i > length(path) AND length(prev_path[i]) > 0 AND NOT hasAny(prev_path[i], path[length(path)]),
                                range(1, length(prev_path) + 1)))
  )
ORDER BY ts, run_id`,
    query_params: { a: q.a, b: q.b, from: ms(q.fromUs), to: ms(q.toUs) },
    format: 'JSONEachRow',
  });
  const rows = await result.json<{
    ts_text: string; src: string; dst: string; run_id: string; prev_run: string; prev_ts_text: string; after: string[][]; before: string[][];
  }>();
  return rows.map((r) => ({
    tsUs: parseDateTime64(r.ts_text), src: r.src, dst: r.dst, runId: r.run_id, previousRunId: r.prev_run,
    previousTsUs: parseDateTime64(r.prev_ts_text), before: r.before, after: r.after,
  }));
}

function ms(us: number): string {
  return formatDateTime64(us).slice(0, 23);
}

function num(v: number | string | null): number | null {
  return v === null ? null : Number(v);
}

function decodeRun(r: RunRecord): DiagnosticRun {
  return {
    tsUs: parseDateTime64(r.ts_text), src: r.src, dst: r.dst, runId: r.run_id, requestId: r.request_id || null,
    trigger: r.trigger, reason: r.reason, durationMs: Number(r.duration_ms),
    traceroute: {
      ok: Boolean(r.tr_ok), error: r.tr_error || null, tool: r.tr_tool || null, maxHops: Number(r.tr_max_hops), reached: Boolean(r.tr_reached),
      hops: r.hop_ttls.map((ttl, i) => ({
        ttl: Number(ttl),
        probes: (r.hop_addresses[i] ?? []).map((address, j) => ({
          address: address || null, rttUs: num(r.hop_rtts_us[i]?.[j] ?? null), flag: r.hop_flags[i]?.[j] || null,
        })),
      })),
    },
    pathMtu: {
      ok: Boolean(r.pmtu_ok), error: r.pmtu_error || null, tool: r.pmtu_tool || null, pmtu: num(r.pmtu),
      dropAtTtl: num(r.pmtu_drop_ttl), reached: Boolean(r.pmtu_reached),
    },
    fastTrain: {
      ok: Boolean(r.ft_ok), error: r.ft_error || null, count: Number(r.ft_count), intervalMs: Number(r.ft_interval_ms),
      sent: Number(r.ft_sent), received: Number(r.ft_received), rttMinUs: num(r.ft_rtt_min_us), rttMedianUs: num(r.ft_rtt_median_us),
      rttP99Us: num(r.ft_rtt_p99_us), rttMaxUs: num(r.ft_rtt_max_us), jitterUs: num(r.ft_jitter_us),
    },
  };
}
