/**
 * Ingest: simulated probes send trains of 100 RTTs over real WebSockets
 * through the real collector (startTestServer) into embedded ClickHouse, end
 * to end until queryable (an ack is sent only after the synchronous INSERT
 * returned; the stored count is checked afterwards). Ceiling: client.insert of
 * the same rows straight into the same table, in the same process and run.
 *
 * Batch size is chosen by measurement (a sweep over the sizes the protocol
 * allows), then a sustained run at the best one gives the figures. Insert
 * formats a collector could use instead are measured as alternative ceilings.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { parseProbeMessage, toRow, type ProbeBatch } from '../../../collector/index.js';
import type { TrainRow } from '../../../sql/index.js';
import { startTestServer, testTopology } from '../../helpers/stack.js';
import { ownCpuSeconds, rssPeakSampler, size, startHelper, wallMs } from '../lib/env.js';
import { emit, note } from '../lib/figures.js';
import { formatSummary, profile } from '../lib/profile.js';
import { median, percentile } from '../lib/stats.js';
import type { LoadRequest, LoadResult } from './load.js';
import { batchJson, rowsFor, RTTS_PER_TRAIN, sampleJson } from './trains.js';

const B = 'ingest';
const CENTRES = 20;
/** At most 3 unacknowledged batches per simulated probe (a real probe keeps at most 4): 20 × 3 stays within the collector's 64 in flight. */
const MAX_WINDOW = 3;
/** Closed-loop runs keep about this many trains in flight: enough to keep the store busy, few enough to drain quickly. */
const INFLIGHT_TRAINS = 10_000;
const BATCH_SIZES = size([100, 250, 500, 1000], [250, 1000]);
const SWEEP_MS = size(6_000, 1_000);
const CEILING_MS = size(4_000, 1_000);
const SUSTAINED_MS = size(30_000, 2_000);
const PACED_MS = size(20_000, 2_000);
const TARGET_PER_S = 10_000;
/** All simulated probes connect from 127.0.0.1 at once; real probes come from one address each. */
const LIMITS = { messagesPerSecond: 10_000, messageBurst: 10_000, maxUnauthenticatedPerAddress: CENTRES };

const COLUMNS: (keyof TrainRow)[] = [
  'ts', 'src', 'dst', 'engine', 'flow', 'src_port', 'dscp', 'batch_id', 'train_id', 'sent', 'received', 'lost', 'duplicated', 'reordered',
  'rtt_min_us', 'rtt_median_us', 'rtt_p99_us', 'rtt_max_us', 'jitter_us', 'synced', 'error_estimate_us', 'rtts_us', 'fwd_us', 'rev_us',
];

type InsertFn = (rows: TrainRow[], positional: unknown[][], token: string) => Promise<unknown>;

interface ChdbRaw {
  rawInsert(p: { table: string; values: Buffer; format: string; columns?: readonly string[]; settings?: Record<string, string | number> }): Promise<unknown>;
}

/** The embedded engine's zero-copy insert, reached through the client's connection (an experiment, not a product path). */
function chdbRaw(client: ClickHouseClient): ChdbRaw | null {
  const conn = (client as unknown as { connection?: { chdb?: ChdbRaw } }).connection;
  return conn?.chdb?.rawInsert ? conn.chdb : null;
}

const settings = (token: string) => ({ insert_deduplication_token: token, async_insert: 0 as const });

function formats(client: ClickHouseClient): Record<string, InsertFn> {
  const raw = chdbRaw(client);
  const out: Record<string, InsertFn> = {
    // What sql/latency.ts insertTrains does: the ceiling.
    'client.insert JSONEachRow': (rows, _p, token) =>
      client.insert({ table: 'latency_trains', values: rows, format: 'JSONEachRow', clickhouse_settings: settings(token) }),
    'client.insert JSONCompactEachRow': (_r, positional, token) =>
      client.insert({ table: 'latency_trains', values: positional, format: 'JSONCompactEachRow', columns: COLUMNS as [string, ...string[]], clickhouse_settings: settings(token) }),
  };
  if (raw) {
    out['chdb rawInsert JSONCompactEachRow Buffer'] = (_r, positional, token) =>
      raw.rawInsert({
        table: 'latency_trains', format: 'JSONCompactEachRow', columns: COLUMNS as string[], settings: settings(token),
        values: Buffer.from(positional.map((p) => JSON.stringify(p)).join('\n')),
      });
  }
  return out;
}

/** Insert straight into the table for `ms`, `concurrency` inserts at a time; trains/s and CPU per 1000 trains. */
async function ceiling(insert: InsertFn, batchSize: number, concurrency: number, ms: number, tag: string): Promise<{ rate: number; cpuMsPer1000: number }> {
  const nowUs = Math.round(wallMs() * 1000);
  const pool = Array.from({ length: 16 }, (_, b) => {
    const id = `${tag}-pool${b}`;
    const samples = Array.from({ length: batchSize }, (_, i) => sampleJson(`${id}.${i}`, 'c01', nowUs - batchSize + i, i));
    const rows = rowsFor('c00', id, samples);
    return { rows, positional: rows.map((r) => COLUMNS.map((c) => r[c])) };
  });
  let k = 0;
  let trains = 0;
  const cpu0 = ownCpuSeconds();
  const t0 = performance.now();
  const deadline = t0 + ms;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) {
        const n = k++;
        const batch = pool[n % pool.length]!;
        await insert(batch.rows, batch.positional, `${tag}/${n}`);
        trains += batch.rows.length;
      }
    }),
  );
  const seconds = (performance.now() - t0) / 1000;
  return { rate: trains / seconds, cpuMsPer1000: ((ownCpuSeconds() - cpu0) * 1e6) / trains };
}

/** Per-batch CPU of the collector's steps, measured in-process without I/O: where a batch's time goes. */
function stepCosts(batchSize: number): string {
  const nowUs = Math.round(wallMs() * 1000);
  const samples = Array.from({ length: batchSize }, (_, i) => sampleJson(`steps-${i}-xxxxxxxx`, 'c01', nowUs - batchSize + i, i));
  const text = batchJson('steps', samples, nowUs);
  const time = (fn: () => unknown) => {
    const runs: number[] = [];
    for (let r = 0; r < size(15, 3); r++) {
      const t = performance.now();
      fn();
      runs.push(performance.now() - t);
    }
    return ((median(runs) ?? 0) * 1000) / batchSize;
  };
  const parsed = parseProbeMessage(text);
  if (!parsed.ok) throw new Error(`generated batch is invalid: ${parsed.error}`);
  const batch = parsed.message as ProbeBatch;
  const rows = batch.samples.map((s) => toRow('c00', 'steps', s));
  const jsonParse = time(() => JSON.parse(text));
  const validate = time(() => parseProbeMessage(text));
  const mapRows = time(() => batch.samples.map((s) => toRow('c00', 'steps', s)));
  const encode = time(() => rows.map((r) => `${JSON.stringify(r)}\n`).join(''));
  const positional = rows.map((r) => COLUMNS.map((c) => r[c]));
  const encodeCompact = time(() => positional.map((p) => `${JSON.stringify(p)}\n`).join(''));
  return `collector CPU per 1,000 trains (batch of ${batchSize}, ${(text.length / 1024).toFixed(0)} KiB): JSON.parse ${jsonParse.toFixed(1)} ms, ` +
    `parseProbeMessage (JSON.parse + zod) ${validate.toFixed(1)} ms, toRow ${mapRows.toFixed(1)} ms, JSONEachRow encoding ${encode.toFixed(1)} ms ` +
    `(JSONCompactEachRow ${encodeCompact.toFixed(1)} ms)`;
}

export async function run(): Promise<void> {
  const ids = Array.from({ length: CENTRES }, (_, i) => `c${String(i).padStart(2, '0')}`);
  const topo = testTopology(ids, '127.0.20');
  const server = await startTestServer(topo.topology, { collectorLimits: LIMITS });
  const load = await startHelper(new URL('./load.js', import.meta.url));
  const client = server.store.client;
  const centres = ids.map((id) => ({ id, token: topo.tokens[id]!, peers: ids.filter((x) => x !== id) }));
  const windowFor = (batchSize: number) => Math.max(1, Math.min(MAX_WINDOW, Math.round(INFLIGHT_TRAINS / (CENTRES * batchSize))));
  const concurrency = (batchSize: number) => CENTRES * windowFor(batchSize);
  let runs = 0;
  const drive = (batchSize: number, durationMs: number, offeredPerS?: number): Promise<LoadResult> => {
    const req: LoadRequest = {
      wsUrl: server.wsUrl, centres, batchSize, window: offeredPerS ? MAX_WINDOW : windowFor(batchSize), durationMs, tag: `r${runs++}`,
      ...(offeredPerS ? { offeredPerS } : {}),
    };
    return load.request<LoadResult>(req);
  };
  try {
    note(B, `${CENTRES} simulated probes (own process), one WebSocket each; trains of ${RTTS_PER_TRAIN} RTTs; closed-loop runs keep ~${INFLIGHT_TRAINS} trains ` +
      `(≤ ${MAX_WINDOW} batches per connection) unacknowledged; ` +
      `collector limits raised for the benchmark: ${LIMITS.messagesPerSecond} messages/s per connection (default 50), ${CENTRES} connections before hello from one address (default 8: every simulated probe is 127.0.0.1); other limits default (64 inserts in flight)`);
    note(B, stepCosts(1000));
    const ceilingInsert = formats(client)['client.insert JSONEachRow']!;
    // Warm-up: JIT, first parts, the MV.
    await drive(250, size(2_000, 500));

    const sweep: { batchSize: number; collector: number; ceiling: number }[] = [];
    for (const batchSize of BATCH_SIZES) {
      const c = await ceiling(ceilingInsert, batchSize, concurrency(batchSize), CEILING_MS, `sweep${batchSize}`);
      const r = await drive(batchSize, SWEEP_MS);
      const rate = r.trains / r.seconds;
      sweep.push({ batchSize, collector: rate, ceiling: c.rate });
      note(B, `batch ${batchSize}: collector ${rate.toFixed(0)} trains/s (lag p99 ${percentile(r.lagsMs, 0.99)?.toFixed(0)} ms, refused ${JSON.stringify(r.refused)}), ` +
        `ceiling ${c.rate.toFixed(0)} trains/s, ratio ${(rate / c.rate).toFixed(2)}`);
    }
    const best = sweep.reduce((a, b) => (b.collector > a.collector ? b : a));
    note(B, `chosen batch size: ${best.batchSize} trains (fastest through the collector in the sweep); the protocol allows at most 1000`);

    // Sustained run at the chosen size: throughput, lag, memory, CPU.
    const rssBefore = process.memoryUsage.rss();
    const rss = rssPeakSampler();
    const cpu0 = ownCpuSeconds();
    const tag = `r${runs}`;
    const r = await drive(best.batchSize, SUSTAINED_MS);
    const cpuS = ownCpuSeconds() - cpu0;
    const peak = rss.stop();
    const rate = r.trains / r.seconds;
    const stored = await client.query({
      query: 'SELECT count() AS n FROM latency_trains WHERE startsWith(batch_id, {prefix:String})',
      query_params: { prefix: `${tag}-` }, format: 'JSONEachRow',
    }).then((q) => q.json<{ n: number }>()).then((rows) => Number(rows[0]?.n ?? 0));
    note(B, `sustained ${SUSTAINED_MS / 1000} s at batch ${best.batchSize}: ${r.trains} trains acknowledged, ${stored} queryable afterwards` +
      `${stored === r.trains ? ' (all of them)' : ' (MISMATCH)'}; refused ${JSON.stringify(r.refused)}; generator used ${(r.generatorCpuS / r.seconds * 100).toFixed(0)} % of a core; ` +
      `${(r.bytesSent / r.seconds / 1e6).toFixed(1)} MB/s of JSON`);
    const c = await ceiling(ceilingInsert, best.batchSize, concurrency(best.batchSize), CEILING_MS, 'ceiling');
    emit({ name: 'ingest.trains_per_s', value: rate, unit: 'trains/s', better: 'higher', ceiling: c.rate, target: { op: '>=', value: 10_000 },
      note: `batch ${best.batchSize}, ${CENTRES} WebSocket probes; ceiling = client.insert JSONEachRow of the same rows, ${concurrency(best.batchSize)} at a time` });
    emit({ name: 'ingest.rtts_per_s', value: rate * RTTS_PER_TRAIN, unit: 'RTTs/s', better: 'higher', ceiling: c.rate * RTTS_PER_TRAIN, target: { op: '>=', value: 1_000_000 } });
    emit({ name: 'ingest.ratio_to_ceiling', value: rate / c.rate, unit: 'ratio', better: 'higher', target: { op: '>=', value: 0.7 } });
    note(B, `closed loop (saturated) lag: p50 ${percentile(r.lagsMs, 0.5)?.toFixed(0)} ms, p99 ${percentile(r.lagsMs, 0.99)?.toFixed(0)} ms (queueing behind ~${INFLIGHT_TRAINS} trains in flight)`);
    // Lag at the target rate, paced like probes sealing a batch every interval; and, if that is beyond capacity, at 80 % of it.
    const paced = async (offered: number) => {
      const p = await drive(best.batchSize, PACED_MS, offered);
      const every = (best.batchSize * CENTRES) / offered;
      note(B, `paced ${offered.toFixed(0)} trains/s offered (each probe seals ${best.batchSize} trains every ${every.toFixed(2)} s): ` +
        `${(p.trains / p.seconds).toFixed(0)} trains/s stored, lag p50 ${percentile(p.lagsMs, 0.5)?.toFixed(0)} ms, p99 ${percentile(p.lagsMs, 0.99)?.toFixed(0)} ms, ` +
        `${p.backlog} batches still waiting at the end, refused ${JSON.stringify(p.refused)}`);
      return p;
    };
    const atTarget = await paced(TARGET_PER_S);
    emit({ name: 'ingest.lag_p50', value: percentile(atTarget.lagsMs, 0.5), unit: 'ms', better: 'lower', note: `at ${TARGET_PER_S} trains/s offered` });
    emit({ name: 'ingest.lag_p99', value: percentile(atTarget.lagsMs, 0.99), unit: 'ms', better: 'lower', target: { op: '<', value: 2000 },
      note: `at ${TARGET_PER_S} trains/s offered; batch sealed → ack (sent only after the synchronous INSERT returned); batches never sent count with their age at the end` });
    if (rate < TARGET_PER_S) {
      const below = await paced(Math.round(rate * 0.8));
      emit({ name: 'ingest.lag_p99_at_80pct_capacity', value: percentile(below.lagsMs, 0.99), unit: 'ms', better: 'lower', target: { op: '<', value: 2000 },
        note: `at ${Math.round(rate * 0.8)} trains/s offered (80 % of the measured maximum)` });
    }
    emit({ name: 'ingest.collector_peak_rss', value: peak / 2 ** 20, unit: 'MiB', better: 'lower',
      note: `whole collector process (Node + embedded ClickHouse); ${(rssBefore / 2 ** 20).toFixed(0)} MiB before the run` });
    emit({ name: 'ingest.collector_cpu_per_1000_trains', value: (cpuS * 1e6) / r.trains, unit: 'ms CPU', better: 'lower', ceiling: c.cpuMsPer1000,
      note: `all threads of the collector process; ${(cpuS / r.seconds * 100).toFixed(0)} % of one core during the run` });

    // What another insert format would give (product change candidates), same rows, same run.
    for (const [name, fn] of Object.entries(formats(client))) {
      const f = await ceiling(fn, best.batchSize, concurrency(best.batchSize), CEILING_MS, `fmt${name.length}${runs++}`);
      note(B, `format experiment, batch ${best.batchSize}: ${name} ${f.rate.toFixed(0)} trains/s, ${f.cpuMsPer1000.toFixed(1)} ms CPU per 1,000 trains`);
    }
    if (!process.env.CITYMESH_BENCH_SMOKE) {
      const p = await profile(() => drive(best.batchSize, 5_000));
      for (const line of formatSummary(p.summary)) note(B, `collector profile under load: ${line}`);
    }
  } finally {
    await load.stop();
    await server.stop();
  }
}
