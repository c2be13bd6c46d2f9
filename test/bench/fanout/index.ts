/**
 * Live fan-out: dashboard clients on /v1/live (operator token in
 * ?access_token=) while 380 links update once a second through the real
 * collector. Delay = a train's arrival at the collector (its batch written to
 * the loopback socket, stamped by the feeder) → delivery at each client; it
 * includes reading and validating the batch, not its lookup (batch ledger,
 * stored records) or its INSERT, which run while the trains are on their way
 * (collector/batch-ingest.ts: publishAtValidation).
 * CPU per 1,000 deliveries is the server process's CPU (all threads) beyond
 * what the same ingest costs with no client connected.
 *
 * Ceiling: a bare `ws` server in the same process broadcasting the same
 * frames (one per probe batch, 19 trains) at the same rate to the same number
 * of clients, each frame serialised once.
 */
import type { AddressInfo } from 'node:net';
import { createServer } from 'node:http';
import type { Registry } from 'prom-client';
import { WebSocketServer } from 'ws';
import { startTestServer, testTopology } from '../../helpers/stack.js';
import { ownCpuSeconds, size, sleep, startHelper, wallMs, type Helper } from '../lib/env.js';
import { emit, note } from '../lib/figures.js';
import { percentile, Histogram } from '../lib/stats.js';
import { rowsFor, sampleJson } from '../ingest/trains.js';
import type { FeedResult } from './helper.js';
import { insertTrains, lookUpBatches } from '../../../sql/index.js';

const B = 'fanout';
const CENTRES = 20;
const CLIENTS = size(500, 50);
const WARMUP_MS = size(3_000, 1_000);
const MEASURE_MS = size(20_000, 3_000);

interface Measured {
  histogram: { counts: number[]; max: number };
  deliveries: number;
  cpuS: number;
  seconds: number;
}

interface Run {
  p50: number | null;
  p99: number | null;
  deliveries: number;
  serverCpuS: number;
  seconds: number;
  clientCpuS: number;
}

async function measureWith(clients: Helper, ms: number): Promise<Run> {
  const cpu0 = ownCpuSeconds();
  const m = await clients.request<Measured>({ cmd: 'measure', ms });
  const serverCpuS = ownCpuSeconds() - cpu0;
  const h = new Histogram(0.05, 10_000);
  h.merge(m.histogram);
  return { p50: h.quantile(0.5), p99: h.quantile(0.99), deliveries: m.deliveries, serverCpuS, seconds: m.seconds, clientCpuS: m.cpuS };
}

/** The transport floor: the product's frames (one per probe batch of 19 trains), serialised once, sent to every client, at the feeder's cadence. */
async function bareBroadcaster(): Promise<{ url: string; start(ms: number): Promise<void>; close(): Promise<void> }> {
  const http = createServer();
  const wss = new WebSocketServer({ server: http });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  const port = (http.address() as AddressInfo).port;
  return {
    url: `ws://127.0.0.1:${port}/`,
    async start(ms) {
      const t0 = Date.now();
      const stopAt = t0 + ms;
      let burst = 0;
      while (Date.now() < stopAt) {
        // 20 bursts a second of 19 trains: the feeder's shape, one frame per burst like the live feed's one frame per batch.
        const t = wallMs() / 1000;
        const text = JSON.stringify({
          type: 'trains',
          trains: Array.from({ length: CENTRES - 1 }, (_, i) => ({
            type: 'train', src: `c${String(burst % CENTRES).padStart(2, '0')}`, dst: `c${String(i).padStart(2, '0')}`, engine: 'stamp', flow: 0,
            t, sent: 100, received: 100, lossRatio: 0, rttMinMs: 0.3, rttP50Ms: 0.5, rttP99Ms: 0.7, rttMaxMs: 0.7, jitterMs: 0.05,
          })),
        });
        for (const ws of wss.clients) ws.send(text);
        burst++;
        await sleep(Math.max(0, t0 + (burst * 1000) / CENTRES - Date.now())); // absolute schedule: 380 messages/s whatever sending costs
      }
    },
    async close() {
      for (const ws of wss.clients) ws.terminate();
      await new Promise<void>((r) => wss.close(() => r()));
      await new Promise<void>((r) => http.close(() => r()));
    },
  };
}

/** Store turns and the batches they carried so far (citymesh_store_group_batches). */
async function storeGroups(server: { registry: Registry }): Promise<{ turns: number; batches: number }> {
  const metric = await server.registry.getSingleMetric('citymesh_store_group_batches')!.get();
  const values = metric.values as { metricName?: string; value: number }[];
  const value = (name: string) => values.find((v) => v.metricName === name)?.value ?? 0;
  return { turns: value('citymesh_store_group_batches_count'), batches: value('citymesh_store_group_batches_sum') };
}

export async function run(): Promise<void> {
  const ids = Array.from({ length: CENTRES }, (_, i) => `c${String(i).padStart(2, '0')}`);
  const topo = testTopology(ids, '127.0.20');
  // Every simulated probe connects from 127.0.0.1 at once (real ones come from one address each).
  const server = await startTestServer(topo.topology, { collectorLimits: { maxUnauthenticatedPerAddress: CENTRES } });
  const feeder = await startHelper(new URL('./helper.js', import.meta.url));
  const clients = await startHelper(new URL('./helper.js', import.meta.url));
  const centres = ids.map((id) => ({ id, token: topo.tokens[id]!, peers: ids.filter((x) => x !== id) }));
  const feed = (ms: number, tag: string) => feeder.request<FeedResult>({ cmd: 'feed', wsUrl: server.wsUrl, centres, durationMs: ms, tag });
  try {
    note(B, `${CENTRES} simulated probes each store 19 trains (one per peer, 100 RTTs) every second, staggered over the second: 380 links, 380 live messages/s; ` +
      `clients in their own process; delay = arrival at the collector → delivery, host wall clock`);
    // Baseline: the same ingest with no live client.
    const baseMs = size(10_000, 2_000);
    const baseFeed = feed(baseMs + WARMUP_MS + 1000, 'base');
    await sleep(WARMUP_MS);
    const cpu0 = ownCpuSeconds();
    await sleep(baseMs);
    const baseCpuPerS = (ownCpuSeconds() - cpu0) / (baseMs / 1000);
    await baseFeed;

    const conn = await clients.request<{ connected: number; refused: number; reasons: string[] }>({
      cmd: 'connect', url: `${server.url.replace(/^http/, 'ws')}/v1/live?access_token=${encodeURIComponent(topo.operatorToken)}`, clients: CLIENTS,
    });
    note(B, `${CLIENTS} clients asked: ${conn.connected} connected, ${conn.refused} refused${conn.reasons.length ? ` (${conn.reasons.join(', ')})` : ''}`);
    emit({ name: 'fanout.clients_connected', value: conn.connected, unit: 'clients', better: 'higher', target: { op: '>=', value: CLIENTS },
      note: conn.refused ? `the live feed refuses clients beyond its limit (api/live.ts MAX_CLIENTS); figures below are for ${conn.connected}` : '' });
    const fed = feed(MEASURE_MS + WARMUP_MS + 1000, 'live');
    await sleep(WARMUP_MS);
    // Where the delay goes: arrival → the hub's publish has returned (validation, the wait for the store's turn, the
    // lookup, then the feed's send to every client, which runs inside publish), measured in this process; the rest of
    // a delivery's delay is the way through the sockets into the clients' process.
    const toPublished = new Histogram(0.05, 10_000);
    /** Batch id and delay to the publish, per train: batches the collector deferred (busy) are told apart once the feed ends. */
    const publishedDelays: { batchId: string; ms: number }[] = [];
    const groupsBefore = await storeGroups(server);
    const unsubscribe = server.hub.subscribe((trains) => {
      const now = wallMs();
      for (const t of trains) {
        toPublished.add(now - t.startedAtUs / 1000);
        publishedDelays.push({ batchId: t.trainId!.slice(0, t.trainId!.lastIndexOf('.')), ms: now - t.startedAtUs / 1000 });
      }
    });
    const live = await measureWith(clients, MEASURE_MS);
    unsubscribe();
    const groupsAfter = await storeGroups(server);
    const fedResult = await fed;
    await clients.request({ cmd: 'close' });
    const expected = (live.seconds * 380 * conn.connected);
    note(B, `product: ${live.deliveries} deliveries in ${live.seconds.toFixed(1)} s (${(live.deliveries / expected * 100).toFixed(1)} % of 380/s × ${conn.connected} clients), ` +
      `server process ${(live.serverCpuS / live.seconds * 100).toFixed(0)} % of a core (${(baseCpuPerS * 100).toFixed(0)} % with no client), ` +
      `clients' process ${(live.clientCpuS / live.seconds * 100).toFixed(0)} %; feeder: ${fedResult.batches} batches acked, refused ${JSON.stringify(fedResult.refused)}, ` +
      `${fedResult.resent} resent after a deferral (held like a probe holds them; a resent train's delay includes its hold), ${fedResult.unacked} never acked`);

    const turns = groupsAfter.turns - groupsBefore.turns;
    const deferred = new Set(fedResult.deferredIds);
    const firstSends = publishedDelays.filter((d) => !deferred.has(d.batchId)).map((d) => d.ms);
    note(B, `arrival → published for the trains of batches sent once, at once (${firstSends.length} of ${publishedDelays.length}; ` +
      `a batch deferred, or sealed while the probe held deferred ones, counts its hold): p50 ${percentile(firstSends, 0.5)?.toFixed(1)} ms, p99 ${percentile(firstSends, 0.99)?.toFixed(1)} ms`);
    note(B, `stages: arrival → published and sent by the server p50 ${toPublished.quantile(0.5)?.toFixed(1)} ms, p99 ${toPublished.quantile(0.99)?.toFixed(1)} ms ` +
      `(${toPublished.count} trains); the rest of a delivery's delay (p50 ${live.p50?.toFixed(1)}, p99 ${live.p99?.toFixed(1)} ms) is sockets and the clients' process; ` +
      `store turns while measured: ${turns}, ${turns > 0 ? ((groupsAfter.batches - groupsBefore.batches) / turns).toFixed(2) : '-'} batches a turn`);

    // How much of the delay is the lookup: one probe's batch (19 trains) looked up directly, idle server.
    const lookups: number[] = [];
    for (let i = 0; i < size(30, 5); i++) {
      const nowUs = Math.round(wallMs() * 1000);
      const t = performance.now();
      await lookUpBatches(server.store.client, [{
        centre: 'c00', batchId: `lookup-${i}`,
        ids: { trains: ids.slice(1).map((_, k) => `lookup-${i}.${k}`), nic: [], throughput: [], diagnostics: [], fromUs: nowUs - 2e6, toUs: nowUs + 1e6 },
      }]);
      lookups.push(performance.now() - t);
    }
    note(B, `one 19-train lookup (lookUpBatches, idle server): p50 ${percentile(lookups, 0.5)?.toFixed(1)} ms, p99 ${percentile(lookups, 0.99)?.toFixed(1)} ms: ` +
      'not in a delivery\'s delay either');

    // How much of the delay is the INSERT itself: one probe's batch (19 trains) stored directly, idle server.
    const inserts: number[] = [];
    for (let i = 0; i < size(30, 5); i++) {
      const id = `direct-${i}`;
      const nowUs = Math.round(wallMs() * 1000);
      const rows = rowsFor('c00', id, ids.slice(1).map((peer, k) => sampleJson(`${id}.${k}`, peer, nowUs, 0)));
      const t = performance.now();
      await insertTrains(server.store.client, rows, `c00/${id}`);
      inserts.push(performance.now() - t);
    }
    note(B, `one 19-train INSERT (insertTrains, idle server): p50 ${percentile(inserts, 0.5)?.toFixed(1)} ms, p99 ${percentile(inserts, 0.99)?.toFixed(1)} ms: ` +
      'not in a delivery\'s delay (the live feed publishes at validation, while the lookup and the INSERT run)');

    // Ceiling: bare broadcast to the same number of clients (no cap there).
    const bare = await bareBroadcaster();
    const bareConn = await clients.request<{ connected: number }>({ cmd: 'connect', url: bare.url, clients: CLIENTS });
    const sending = bare.start(MEASURE_MS + WARMUP_MS + 500);
    await sleep(WARMUP_MS);
    const ceiling = await measureWith(clients, MEASURE_MS);
    await sending;
    await clients.request({ cmd: 'close' });
    await bare.close();
    note(B, `ceiling (bare ws broadcast, ${bareConn.connected} clients): ${ceiling.deliveries} deliveries ` +
      `(${(ceiling.deliveries / (ceiling.seconds * 380 * bareConn.connected) * 100).toFixed(1)} % of 380/s × ${bareConn.connected}), p50 ${ceiling.p50?.toFixed(2)} ms, p99 ${ceiling.p99?.toFixed(2)} ms, ` +
      `server ${(ceiling.serverCpuS / ceiling.seconds * 100).toFixed(0)} % of a core`);

    const perK = (cpuS: number, n: number) => (n > 0 ? (cpuS * 1000 * 1000) / n : null);
    const fanCpu = live.serverCpuS - baseCpuPerS * live.seconds;
    emit({ name: 'fanout.delay_p50', value: live.p50, unit: 'ms', better: 'lower', ceiling: ceiling.p50 });
    emit({ name: 'fanout.delay_p99', value: live.p99, unit: 'ms', better: 'lower', ceiling: ceiling.p99, target: { op: '<', value: 50 },
      note: `${conn.connected} clients; validation included, the batch's lookup and INSERT run meanwhile; ceiling = bare ws broadcast of the same frames to ${bareConn.connected} clients` });
    emit({ name: 'fanout.cpu_per_1000_deliveries', value: perK(fanCpu, live.deliveries), unit: 'ms CPU', better: 'lower', ceiling: perK(ceiling.serverCpuS, ceiling.deliveries),
      note: `server process CPU beyond the same ingest with no client (${perK(live.serverCpuS, live.deliveries)?.toFixed(2)} ms including ingest)` });
  } finally {
    await feeder.stop();
    await clients.stop();
    await server.stop();
  }
}
