/**
 * Queries at city scale: 20 centres (380 directed links) with 30 days of
 * trains generated inside ClickHouse (INSERT … SELECT from numbers() into
 * latency_trains, so the 1-minute rollup fills through its materialized view
 * exactly as in production), then the API answers operators ask for most,
 * over real HTTP: latest status of every link, the matrix (what the dashboard
 * loads to draw it), a link's 24 h and 30 d series. Ceiling: the same sql/
 * function called directly on the store (the query alone, no HTTP, no JSON).
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { formatDateTime64, latestPathStatus, linkSeries } from '../../../sql/index.js';
import { startTestServer, testTopology } from '../../helpers/stack.js';
import { size, wallMs } from '../lib/env.js';
import { emit, note } from '../lib/figures.js';
import { percentile } from '../lib/stats.js';

const B = 'queries';
const CENTRES = 20;
const DAYS = size(30, 2);
/** Trains per minute per direction in the last 24 h (2 flows × 6 trains) and before it. */
const RECENT_PER_MIN = size(12, 2);
const OLDER_EVERY_MIN = size(1, 10);
const RECENT_RTTS = 20;
const OLDER_RTTS = 5;
const ITERATIONS = size(50, 5);
const WARMUP = size(3, 1);

/**
 * `rows` trains, one per direction per step, the newest at `endUs`, going back
 * `stepUs` per round over all 380 directions. RTTs are deterministic with a
 * spike now and then, so percentiles have something to find.
 */
async function generate(client: ClickHouseClient, ids: string[], endUs: number, stepUs: number, rounds: number, rtts: number, flows: number, tag: string): Promise<number> {
  const dirs = ids.length * (ids.length - 1);
  const rows = rounds * dirs;
  await client.command({
    query: `
INSERT INTO latency_trains (ts, src, dst, engine, flow, src_port, dscp, batch_id, train_id, sent, received, lost, duplicated, reordered,
  rtt_min_us, rtt_median_us, rtt_p99_us, rtt_max_us, jitter_us, synced, error_estimate_us, rtts_us, fwd_us, rev_us)
SELECT
  {end:DateTime64(6)} - toIntervalMicrosecond(k * {step:UInt64} + d * 97) AS ts,
  arrayElement({ids:Array(String)}, s + 1) AS src,
  arrayElement({ids:Array(String)}, if(j >= s, j + 1, j) + 1) AS dst,
  'stamp', toUInt16(k % {flows:UInt16}), toUInt16(40000 + k % {flows:UInt16}), 46, {tag:String}, concat({tag:String}, toString(number)),
  {rtts:UInt32}, {rtts:UInt32}, 0, 0, 0,
  arrayMin(r), arrayElement(arraySort(r), intDiv({rtts:UInt32} + 1, 2)), arrayMax(r), arrayMax(r), toFloat32(15 + number % 20),
  false, 1000000, r, [], []
FROM
(
  SELECT number, number % {dirs:UInt32} AS d, intDiv(number, {dirs:UInt32}) AS k, intDiv(d, {peers:UInt32}) AS s, d % {peers:UInt32} AS j,
         arrayMap(i -> toFloat32(400 + (number * 7 + i * 13) % 300 + if((number + i) % 1009 = 0, 4000, 0)), range({rtts:UInt32})) AS r
  FROM numbers({rows:UInt64})
)`,
    query_params: { end: formatDateTime64(endUs), step: stepUs, ids, flows, tag, rtts, dirs, peers: ids.length - 1, rows },
  });
  return rows;
}

async function time(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  await fn();
  return performance.now() - t;
}

type Timing = { p50: number; p99: number };

/** Several variants measured in turn, request by request, so drift (merges, caches) hits them alike. */
async function measure(variants: Record<string, (i: number) => Promise<unknown>>): Promise<Timing[]> {
  const fns = Object.values(variants);
  for (let i = 0; i < WARMUP; i++) for (const fn of fns) await fn(i);
  const samples: number[][] = fns.map(() => []);
  for (let i = 0; i < ITERATIONS; i++) for (const [k, fn] of fns.entries()) samples[k]!.push(await time(() => fn(i)));
  return Object.keys(variants).map((name, k) => {
    const p50 = percentile(samples[k]!, 0.5)!;
    const p99 = percentile(samples[k]!, 0.99)!;
    note(B, `${name}: p50 ${p50.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms over ${ITERATIONS} requests`);
    return { p50, p99 };
  });
}

/** Wait (bounded) until background merges settle, as they would have with data arriving over 30 days. */
async function settle(client: ClickHouseClient, boundMs: number): Promise<void> {
  const deadline = Date.now() + boundMs;
  while (Date.now() < deadline) {
    const [row] = await client.query({ query: 'SELECT count() AS n FROM system.merges', format: 'JSONEachRow' }).then((r) => r.json<{ n: number }>());
    if (Number(row?.n ?? 0) === 0) return;
    await new Promise((r) => setTimeout(r, 500));
  }
}

/**
 * What a faster status query could look like (an experiment, not product
 * code): exact percentiles over the last window only, which the sort key
 * (src, dst, engine, ts) prunes to a few granules per direction, and the last
 * train time of silent directions from the 1-minute rollup, which reads no RTT arrays.
 */
async function statusCandidate(client: ClickHouseClient): Promise<unknown> {
  const [recent, last] = await Promise.all([
    client.query({
      query: `
SELECT src, dst, engine, toString(max(ts)) AS last_ts, count() AS trains, sum(sent) AS sent, sum(lost) AS lost,
       quantilesExactArray(0.5, 0.99)(rtts_us) AS q, avgIf(jitter_us, jitter_us IS NOT NULL) AS jitter
FROM latency_trains
WHERE ts >= now64(6) - toIntervalSecond({window:UInt32})
GROUP BY src, dst, engine`,
      query_params: { window: 60 }, format: 'JSONEachRow',
    }).then((r) => r.json()),
    client.query({
      query: `SELECT src, dst, engine, max(minute) AS last_minute FROM latency_1m WHERE minute >= now() - INTERVAL 1 DAY GROUP BY src, dst, engine`,
      format: 'JSONEachRow',
    }).then((r) => r.json()),
  ]);
  return [recent, last];
}

export async function run(): Promise<void> {
  const ids = Array.from({ length: CENTRES }, (_, i) => `c${String(i).padStart(2, '0')}`);
  const topo = testTopology(ids, '127.0.20');
  const server = await startTestServer(topo.topology);
  const client = server.store.client;
  try {
    const dayUs = 86_400e6;
    const nowUs = Math.round(wallMs() * 1000);
    const t0 = performance.now();
    let rows = 0;
    // Older days, one INSERT per day (bounded memory), oldest first like real arrivals.
    const olderRounds = Math.floor(1440 / OLDER_EVERY_MIN);
    for (let day = DAYS - 1; day >= 1; day--) {
      rows += await generate(client, ids, nowUs - day * dayUs, OLDER_EVERY_MIN * 60e6, olderRounds, OLDER_RTTS, 1, `d${day}-`);
    }
    // The last 24 h, denser, in 4 INSERTs.
    const recentStepUs = 60e6 / RECENT_PER_MIN;
    const quarter = Math.floor((1440 * RECENT_PER_MIN) / 4);
    for (let q = 3; q >= 0; q--) {
      rows += await generate(client, ids, nowUs - 5 * 60e6 - q * quarter * recentStepUs, recentStepUs, quarter, RECENT_RTTS, 2, `r${q}-`);
    }
    // The last 5 minutes and the next 3, so the status window (last 60 s) stays full while the queries run.
    rows += await generate(client, ids, nowUs + 3 * 60e6, recentStepUs, 8 * RECENT_PER_MIN, RECENT_RTTS, 2, 'now-');
    const genS = (performance.now() - t0) / 1000;
    await settle(client, size(60_000, 5_000));
    const parts = await client.query({
      query: `SELECT table, count() AS parts, sum(rows) AS rows, formatReadableSize(sum(data_compressed_bytes)) AS size
              FROM system.parts WHERE active AND table IN ('latency_trains', 'latency_1m') GROUP BY table ORDER BY table`,
      format: 'JSONEachRow',
    }).then((r) => r.json<{ table: string; parts: number; rows: number; size: string }>());
    note(B, `generated ${rows.toLocaleString('en')} trains in ${genS.toFixed(0)} s: ${DAYS - 1} days at 1 train per ${OLDER_EVERY_MIN} min per direction ` +
      `(${OLDER_RTTS} RTTs), the last 24 h at ${RECENT_PER_MIN} per min (${RECENT_RTTS} RTTs, 2 flows); ` +
      `${parts.map((p) => `${p.table}: ${Number(p.rows).toLocaleString('en')} rows in ${p.parts} parts, ${p.size}`).join('; ')}`);

    const headers = { authorization: `Bearer ${topo.operatorToken}` };
    const get = async (path: string) => {
      const res = await fetch(`${server.url}${path}`, { headers });
      if (!res.ok) throw new Error(`GET ${path}: HTTP ${res.status} ${await res.text()}`);
      return res.json() as Promise<unknown>;
    };
    const links = ids.flatMap((a) => ids.filter((b) => b !== a).map((b) => [a, b] as const));
    const linkAt = (i: number) => links[(i * 37) % links.length]!;
    const series = (hours: number) => (i: number) => {
      const [a, b] = linkAt(i);
      const to = new Date();
      const from = new Date(to.getTime() - hours * 3600e3);
      return get(`/v1/links/${a}/${b}/series?from=${from.toISOString()}&to=${to.toISOString()}&points=600`);
    };
    const seriesSql = (hours: number) => (i: number) => {
      const [a, b] = linkAt(i);
      const toUs = Date.now() * 1000;
      return linkSeries(client, { src: a, dst: b, engine: 'stamp', fromUs: toUs - hours * 3600e6, toUs, points: 600 });
    };
    const status = await get('/v1/status') as { paths: { state: string }[] };
    const states = new Map<string, number>();
    for (const p of status.paths) states.set(p.state, (states.get(p.state) ?? 0) + 1);
    note(B, `/v1/status answers ${status.paths.length} directions: ${[...states].map(([s, n]) => `${n} ${s}`).join(', ')}`);

    const [statusSql, statusApi, matrixApi, candidate] = (await measure({
      'latestPathStatus() direct (ceiling)': () => latestPathStatus(client, 60),
      'GET /v1/status': () => get('/v1/status'),
      'matrix: GET /v1/centres + /v1/links + /v1/status together': () => Promise.all([get('/v1/centres'), get('/v1/links'), get('/v1/status')]),
      'experiment: status from the last 60 s of raw trains + last minute from latency_1m (not product code)': () => statusCandidate(client),
    })) as [Timing, Timing, Timing, Timing];
    void candidate;
    const [s24Sql, s24] = (await measure({ 'linkSeries() 24 h direct (ceiling)': seriesSql(24), 'GET series 24 h, 600 points': series(24) })) as [Timing, Timing];
    const [s30Sql, s30] = (await measure({ [`linkSeries() ${DAYS} d direct (ceiling)`]: seriesSql(DAYS * 24), [`GET series ${DAYS} d, 600 points`]: series(DAYS * 24) })) as [Timing, Timing];

    const fig = (name: string, m: { p50: number; p99: number }, ceiling: { p50: number; p99: number }, target: number | null, what: string) => {
      emit({ name: `${name}_p50`, value: m.p50, unit: 'ms', better: 'lower', ceiling: ceiling.p50 });
      emit({ name: `${name}_p99`, value: m.p99, unit: 'ms', better: 'lower', ceiling: ceiling.p99, ...(target ? { target: { op: '<' as const, value: target } } : {}), note: what });
    };
    fig('queries.status', statusApi, statusSql, 50, 'GET /v1/status, 380 directions; ceiling = latestPathStatus() on the store');
    fig('queries.matrix', matrixApi, statusSql, 50, 'the three requests the dashboard makes to draw the matrix, in parallel; ceiling = latestPathStatus()');
    fig('queries.series_24h', s24, s24Sql, null, '600 points from the 1-minute rollup (the issue sets no target for 24 h)');
    fig('queries.series_30d', s30, s30Sql, 200, `${DAYS} days, 600 points from the 1-minute rollup`);
  } finally {
    await server.stop();
  }
}
