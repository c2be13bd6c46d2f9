/**
 * The live status judged once a second and served from memory
 * (api/status-snapshot.ts), on a real embedded store with known trains:
 *
 * - the snapshot of second T is the SQL judgement of T: exact p50/p99 over the
 *   window's packets (figures computed here from the RTTs inserted), loss,
 *   our own load left out, stale/nodata, the window (T − 60 s, T];
 * - two servers' snapshots of the same second over one store are the same
 *   answer, byte for byte;
 * - readers racing refreshes only ever get whole snapshots;
 * - a refresh that fails is reported (503 store_unavailable naming the
 *   second), never answered with an older judgement presented as current,
 *   and the refresh stops when nobody reads.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ErrorResponse, StatusResponse } from '../../api/contract.js';
import { judgedPathStatuses, probeStatuses } from '../../api/path-status.js';
import { asOfAt, SETTLE_MS, StatusSnapshots, StatusUnavailableError } from '../../api/status-snapshot.js';
import { insertLoadWindows, insertTrains, type Store, type TrainRow } from '../../sql/index.js';
import { parseTopology, hashToken } from '../../topology/index.js';
import { train } from '../helpers/sla-month.js';
import { getJson, startTestServer, waitFor, type TestServer } from '../helpers/stack.js';

const topology = parseTopology(`name: snapshot
sla:
  rtt_p99_target_ms: 2
  loss_ratio_max: 0.001
centres:
${['alfa', 'bravo', 'charlie'].map((id, i) => `  - { id: ${id}, name: ${id}, district: D, probe: { host: 127.0.9.${i + 1}, token_sha256: ${hashToken(`t-${id}`)} } }`).join('\n')}
links:
  - { between: [alfa, bravo], capacity_gbps: 100 }
  - { between: [alfa, charlie], capacity_gbps: 100 }
  - { between: [bravo, charlie], capacity_gbps: 100 }
access:
  operators: [{ name: noc, token_sha256: ${hashToken('op')} }]
`, 'snapshot.yaml');

/** One server (the embedded engine opens one data directory per process); its store is the one every snapshot here reads. */
let server: TestServer;
let store: Store;
/** The second judged: whole, a few seconds back, so every train below is stored before anyone judges it. */
const T = Math.floor(Date.now() / 1000) * 1000 - 5000;
const TUs = T * 1000;
/** alfa → bravo's RTTs in the window, every packet: the exact percentiles are computed from these. */
const abRtts: number[] = [];

function rttTrain(src: string, dst: string, tsUs: number, rtts: number[]): TrainRow {
  const row = train(src, dst, tsUs, rtts[0]!);
  row.rtts_us = rtts;
  row.sent = row.received = rtts.length;
  return row;
}

/** ClickHouse's quantileExact: the element at floor(level × n) of the sorted values. */
function exactQuantile(values: number[], level: number): number {
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.min(sorted.length - 1, Math.floor(level * sorted.length))]!;
}

beforeAll(async () => {
  server = await startTestServer(topology);
  store = server.store;
  const rows: TrainRow[] = [];
  // alfa → bravo: ten trains over (T − 20 s, T − 11 s], 100 … 199 µs, plus one at exactly T (inside) of 150 µs;
  // one at exactly T − 60 s and one half a second after T: outside the window (T − 60 s, T].
  for (let i = 0; i < 10; i++) {
    const rtts = Array.from({ length: 10 }, (_, k) => 100 + i * 10 + k);
    abRtts.push(...rtts);
    rows.push(rttTrain('alfa', 'bravo', TUs - 20e6 + i * 1e6, rtts));
  }
  abRtts.push(...Array(10).fill(150));
  rows.push(rttTrain('alfa', 'bravo', TUs, Array(10).fill(150)));
  rows.push(rttTrain('alfa', 'bravo', TUs - 60e6, Array(10).fill(9000)));
  rows.push(rttTrain('alfa', 'bravo', TUs + 500e3, Array(10).fill(9000)));
  // bravo → alfa: 1 of 10 packets lost at 500 µs (loss over the 0.1 % ceiling: breach).
  rows.push(train('bravo', 'alfa', TUs - 30e6, 500, 10, 1));
  // alfa → charlie: a train inside our own throughput test's load window only (left out: stale); charlie → alfa: 90 s ago.
  rows.push(train('alfa', 'charlie', TUs - 10e6, 700));
  rows.push(train('charlie', 'alfa', TUs - 90e6, 600));
  await insertTrains(store.client, rows, 'status-snapshot');
  await insertLoadWindows(store.client, [{
    windowId: 'tp-snapshot', a: 'alfa', b: 'charlie', startMs: T - 12_000, endMs: T - 8_000, source: 'measured', trigger: 'test', recordedBy: 'test',
  }], 'status-snapshot-load');
});

afterAll(async () => {
  await server?.stop();
});

/** A snapshot source whose clock reads `offsetMs` into the second at which T is judged. */
function snapshotsAt(offsetMs: number) {
  const clock = { ms: T + SETTLE_MS + offsetMs };
  return { clock, snapshots: new StatusSnapshots({ store, topology, now: () => clock.ms }) };
}

describe('status snapshot', () => {
  it('is the SQL judgement of its second: exact percentiles over the window (T − 60 s, T], loss, own load, stale, nodata', async () => {
    const { snapshots } = snapshotsAt(0);
    try {
      const snap = await snapshots.read();
      expect(snap.asOfMs).toBe(T);
      expect(asOfAt(T + SETTLE_MS + 999)).toBe(T);
      // The same judgement a request at that instant makes straight from the store.
      expect(snap.paths).toEqual(await judgedPathStatuses(store, topology, TUs, await probeStatuses(store, topology)));
      const path = (src: string, dst: string) => snap.paths.find((p) => p.src === src && p.dst === dst && p.engine === 'stamp')!;
      const ab = path('alfa', 'bravo');
      expect(ab.trains).toBe(11);
      expect(ab.rttP50Ms).toBe(exactQuantile(abRtts, 0.5) / 1000);
      expect(ab.rttP99Ms).toBe(exactQuantile(abRtts, 0.99) / 1000);
      expect(ab.lastTs).toBe(new Date(T).toISOString());
      expect([ab.state, ab.lossRatio]).toEqual(['ok', 0]);
      expect([path('bravo', 'alfa').state, path('bravo', 'alfa').lossRatio]).toEqual(['breach', 0.1]);
      expect([path('alfa', 'charlie').state, path('alfa', 'charlie').trains]).toEqual(['stale', 0]);
      expect([path('charlie', 'alfa').state, path('charlie', 'alfa').lastTs]).toEqual(['stale', new Date(T - 90_000).toISOString()]);
      expect([path('bravo', 'charlie').state, path('charlie', 'bravo').state]).toEqual(['nodata', 'nodata']);
      // The body served is this snapshot, and says which second it judged.
      const body = JSON.parse(StatusSnapshots.responseBody(snap, Date.now())) as StatusResponse;
      expect(body.asOf).toBe(new Date(T).toISOString());
      expect(body.paths).toEqual(snap.paths);
      expect([body.windowS, body.staleAfterS]).toEqual([60, 60]);
    } finally {
      await snapshots.stop();
    }
  });

  it('two servers over one store answer identically for the same second, whenever in it they refresh', async () => {
    const first = snapshotsAt(0);
    const second = snapshotsAt(950);
    try {
      const [a, b] = [await first.snapshots.read(), await second.snapshots.read()];
      expect(b.asOfMs).toBe(a.asOfMs);
      expect(b.bodyJson).toBe(a.bodyJson);
    } finally {
      await Promise.all([first.snapshots.stop(), second.snapshots.stop()]);
    }
  });

  it('readers racing the refreshes get whole snapshots, each one second judged', { timeout: 60_000 }, async () => {
    const snapshots = new StatusSnapshots({ store, topology, settleMs: 0 });
    try {
      const seen = new Set<number>();
      let last = 0;
      // Reads until three refreshes have been published under them (a refresh a second while read).
      while (seen.size < 4) {
        const batch = await Promise.all(Array.from({ length: 20 }, () => snapshots.read()));
        for (const snap of batch) {
          expect(Object.isFrozen(snap) && Object.isFrozen(snap.paths)).toBe(true);
          const body = JSON.parse(snap.bodyJson) as Omit<StatusResponse, 'generatedAt'>;
          expect(body.asOf).toBe(new Date(snap.asOfMs).toISOString());
          expect(body.paths).toEqual(snap.paths);
          expect(snap.paths).toHaveLength(6); // 3 links × 2 directions, stamp (icmp has no data)
          expect(snap.asOfMs % 1000).toBe(0);
          seen.add(snap.asOfMs);
        }
        const newest = Math.max(...batch.map((s) => s.asOfMs));
        expect(newest).toBeGreaterThanOrEqual(last);
        last = newest;
        await new Promise((r) => setTimeout(r, 50));
      }
    } finally {
      await snapshots.stop();
    }
  });

  it('stops refreshing when nobody reads: the next readers get one judgement of their own second', async () => {
    const snapshots = new StatusSnapshots({ store, topology, idleMs: 200 });
    try {
      await snapshots.read();
      await waitFor('the refresh to stop once nobody reads', () => !snapshots.refreshing, 30_000);
      const refreshes = snapshots.stats.refreshes;
      const judged = snapshots.latest!.asOfMs;
      // Nothing is scheduled now: once the clock is past the last second judged, the only refresh is the one a read asks for.
      await waitFor('a new second to be due', () => asOfAt(Date.now()) > judged, 30_000);
      expect(snapshots.stats.refreshes).toBe(refreshes);
      const before = Date.now();
      // Readers arriving together after the pause: one refresh, and every one of them gets it, not the old second.
      const snaps = await Promise.all(Array.from({ length: 5 }, () => snapshots.read()));
      expect(snapshots.stats.refreshes).toBe(refreshes + 1);
      for (const snap of snaps) expect(snap).toBe(snaps[0]);
      expect(snaps[0]!.asOfMs).toBeGreaterThanOrEqual(asOfAt(before)); // this second's judgement, not the last one before the pause
    } finally {
      await snapshots.stop();
    }
  });

  it('a failing refresh is reported with the second it could not judge, never served as current', { timeout: 60_000 }, async () => {
    const { clock, snapshots } = snapshotsAt(0);
    try {
      expect((await snapshots.read()).asOfMs).toBe(T);
      await store.suspend();
      clock.ms += 1000;
      // The refresh of T + 1 s fails: readers are told so, with that second.
      await waitFor('the refresh of the next second to fail', () => snapshots.stats.failures > 0, 30_000);
      const error = await snapshots.read().then(() => null, (e: unknown) => e);
      expect(error).toBeInstanceOf(StatusUnavailableError);
      expect((error as StatusUnavailableError).asOfMs).toBe(T + 1000);
      expect((error as Error).message).toContain(new Date(T + 1000).toISOString());
      await store.resume();
      clock.ms += 1000;
      await waitFor('a refresh to succeed again', async () => (await snapshots.read().catch(() => null))?.asOfMs === T + 2000, 30_000);
    } finally {
      await store.resume();
      await snapshots.stop();
    }
  });

  it('over HTTP: asOf in the body, the trains of a second once it is judged, 503 store_unavailable while the store is down', { timeout: 120_000 }, async () => {
    const operatorToken = 'op';
    try {
      const insertedMs = Date.now();
      await insertTrains(store.client, [train('bravo', 'charlie', insertedMs * 1000, 400), train('charlie', 'bravo', insertedMs * 1000, 400)], 'snapshot-http');
      // Judged seconds trail the clock: the trains show once a second at or after them has been judged.
      const body = await waitFor('a second judged after the trains were stored', async () => {
        const r = await getJson<StatusResponse>(`${server.url}/v1/status`, operatorToken);
        expect(r.status).toBe(200);
        return Date.parse(r.body.asOf) >= insertedMs ? r.body : undefined;
      });
      expect(Date.parse(body.asOf) % 1000).toBe(0);
      expect(Date.parse(body.generatedAt)).toBeGreaterThanOrEqual(Date.parse(body.asOf));
      expect(body.paths.filter((p) => p.src !== 'alfa' && p.dst !== 'alfa').map((p) => [`${p.src}>${p.dst}`, p.trains])).toEqual([['bravo>charlie', 1], ['charlie>bravo', 1]]);
      await server.store.suspend();
      const refused = await waitFor('503 while the store is down', async () => {
        const r = await getJson<ErrorResponse>(`${server.url}/v1/status`, operatorToken);
        return r.status === 503 ? r.body : undefined;
      });
      expect(refused.error).toBe('store_unavailable');
      expect(refused.reason).toMatch(/^the status at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z could not be judged: /);
      await server.store.resume();
      await waitFor('200 again once the store is back', async () => (await getJson(`${server.url}/v1/status`, operatorToken)).status === 200);
    } finally {
      await server.store.resume();
    }
  });
});
