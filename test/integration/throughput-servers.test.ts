/**
 * Throughput tests over several servers on one store (`citymesh store
 * serve`, two in-process servers A and B on it, real sockets): the server
 * that asked for a test (A) ends it as its stored row says, although the row
 * came in through the other server (B), where the probe moved:
 *
 * - the probe reports to A, then moves to B and delivers its row there;
 * - a real probe loses its connection to A just after starting a test (a
 *   cut proxy), runs the test on, moves to B and delivers its row there.
 *
 * Either way A answers `done` with the stored figures long before its row
 * wait (ROW_WAIT_MS) would have failed the test, and no second row is
 * written.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ThroughputHistoryResponse } from '../../api/contract.js';
import type { TestStatus } from '../../collector/index.js';
import { collectorStartIndex, type ProbeAgent } from '../../probes/agent.js';
import { PROTOCOL_VERSION, type ThroughputRun, type ThroughputSampleRecord } from '../../protocol/index.js';
import { engineNodeUnavailable, openStore, throughputTestById, type Store } from '../../sql/index.js';
import { CitymeshProcess, CuttableProxy, freePort, killAll } from '../helpers/processes.js';
import { skipReason } from '../helpers/requirements.js';
import { capacityOverrides, getJson, startTestServer, testAgent, testTopology, waitFor, type TestServer } from '../helpers/stack.js';
import { RawClient } from '../helpers/ws-client.js';

const PASSWORD = 'throughput-servers-store-password';
const USER = 'citymesh';
const unavailable = skipReason(engineNodeUnavailable());
const throughputPort = 30_000 + Math.floor(Math.random() * 10_000);
const topo = testTopology(['alfa', 'bravo', 'charlie', 'delta'], '127.0.64', capacityOverrides(throughputPort));

let dir: string;
let served: CitymeshProcess;
let store: Store;
let a: TestServer;
let b: TestServer;

beforeAll(async () => {
  if (unavailable) return;
  dir = mkdtempSync(join(tmpdir(), 'citymesh-throughput-servers-'));
  served = new CitymeshProcess(['store', 'serve', '--data-dir', join(dir, 'store'), '--port', '0', '--tcp-port', '0'], { CLICKHOUSE_PASSWORD: PASSWORD });
  await served.waitForStdout('served at');
  const url = /served at (http:\/\/127\.0\.0\.1:\d+)/.exec(served.output)![1]!;
  const env = { CLICKHOUSE_URL: url, CLICKHOUSE_USER: USER, CLICKHOUSE_PASSWORD: PASSWORD };
  // A first: it applies the migrations; B finds them applied.
  a = await startTestServer(topo.topology, {}, { env });
  b = await startTestServer(topo.topology, {}, { env });
  store = await openStore({ url, dataDir: 'unused', username: USER, password: PASSWORD });
}, 120_000);

afterAll(async () => {
  await store?.close();
  await Promise.all([a?.stop(), b?.stop()]);
  if (served) await served.kill('SIGTERM');
  await killAll();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function post<T>(server: TestServer, path: string): Promise<{ status: number; body: T }> {
  const response = await fetch(`${server.url}${path}`, { method: 'POST', headers: { authorization: `Bearer ${topo.operatorToken}` } });
  return { status: response.status, body: (await response.json()) as T };
}

async function statusOn(server: TestServer, testId: string): Promise<{ status: number; body: TestStatus }> {
  return getJson<TestStatus>(`${server.url}/v1/throughput-tests/${testId}`, topo.operatorToken);
}

/** A's status once the test has ended (polled: every read also asks the store). */
function endedOn(server: TestServer, testId: string): Promise<TestStatus> {
  return waitFor('the test to end on the server that asked for it', async () => {
    const { body } = await statusOn(server, testId);
    return body.state === 'queued' || body.state === 'running' ? undefined : body;
  }, 40_000);
}

/** The tests of a link in its history (read on `server`) with this id. */
async function historyRows(server: TestServer, link: string, testId: string) {
  const { body } = await getJson<ThroughputHistoryResponse>(`${server.url}/v1/links/${link}/throughput`, topo.operatorToken);
  return body.tests.filter((t) => t.testId === testId);
}

/** A probe's side spoken over a raw WebSocket: hello, then its plan. */
async function helloAs(server: TestServer, centre: string): Promise<RawClient> {
  const client = await RawClient.open(server.wsUrl);
  client.send({ type: 'hello', centre, token: topo.tokens[centre]!, version: 'test', protocol: PROTOCOL_VERSION });
  expect(await client.next()).toMatchObject({ type: 'plan', centre });
  return client;
}

describe.skipIf(unavailable)('a throughput test whose probe moves to another server', () => {
  it('reported to A, its row stored through B: A says done with the stored figures', async () => {
    const onA = await helloAs(a, 'charlie');
    const queued = await post<TestStatus>(a, '/v1/links/charlie/delta/throughput-tests');
    expect(queued.status).toBe(202);
    const run = await onA.next<ThroughputRun>();
    expect(run).toMatchObject({ type: 'throughput_run', testId: queued.body.testId, dst: 'delta' });
    const startedAtUs = Date.now() * 1000;
    onA.send({ type: 'throughput_done', testId: run.testId, ok: true, forwardBps: 4.25e9, reverseBps: 3.5e9 });
    onA.close();
    await onA.waitClosed();
    // Reported, and no row anywhere yet: still running.
    expect((await statusOn(a, run.testId)).body).toMatchObject({ state: 'running', forwardBps: null });

    // A cannot read the store for a while: status reads still answer, and the test is not failed for it.
    await a.store.suspend();
    try {
      const unreadable = await statusOn(a, run.testId);
      expect(unreadable.status).toBe(200);
      expect(unreadable.body.state).toBe('running');
    } finally {
      await a.store.resume();
    }

    const onB = await helloAs(b, 'charlie');
    const record: ThroughputSampleRecord = {
      testId: run.testId, dst: 'delta', trigger: 'operator', startedAtUs, endedAtUs: startedAtUs + 2_000_000,
      engine: 'native', engineVersion: null, ok: true, error: null, direction: 'bidir', streams: 2, seconds: 1,
      forwardBps: 4.25e9, reverseBps: 3.5e9, retransmits: null, cpuLocalPct: null, cpuRemotePct: null,
    };
    onB.send({ type: 'batch', batchId: `moved-${run.testId}`, samples: [], throughput: [record] });
    expect(await onB.next()).toMatchObject({ type: 'ack', batchId: `moved-${run.testId}` });
    onB.close();
    // B stored it without knowing the test: A asked for it.
    expect(b.collector.throughput.status(run.testId)).toBeUndefined();

    const ended = await endedOn(a, run.testId);
    expect(ended).toMatchObject({ state: 'done', error: null, forwardBps: 4.25e9, reverseBps: 3.5e9 });
    const stored = await throughputTestById(store.client, 'charlie', 'delta', run.testId, startedAtUs - 60e6);
    expect(stored).toMatchObject({ ok: true, forwardBps: ended.forwardBps, reverseBps: ended.reverseBps });
    expect(await historyRows(a, 'charlie/delta', run.testId)).toHaveLength(1);
  });

  it('a real probe cut off from A mid-test runs it on, moves to B, and A says done with its stored figures', async () => {
    const proxy = new CuttableProxy(await freePort(), a.port);
    await proxy.restore();
    const viaProxy = `ws://127.0.0.1:${proxy.port}/v1/probe`;
    // The probe starts at the collector its centre hashes to: the proxy (to A) goes there, B next.
    const urls = collectorStartIndex('alfa', 2) === 0 ? [viaProxy, b.wsUrl] : [b.wsUrl, viaProxy];
    let cutAt: string | null = null;
    // Cut the moment the probe starts the test: its report can only come after the cut.
    const logger = pino({ level: 'info' }, {
      write(line: string) {
        const entry = JSON.parse(line) as { msg?: string; testId?: string };
        if (entry.msg === 'throughput test starting' && cutAt === null) {
          cutAt = entry.testId ?? 'unknown';
          void proxy.cut();
        }
      },
    });
    const agents: ProbeAgent[] = [testAgent(b, topo, 'bravo'), testAgent(a, topo, 'alfa', { serverUrl: urls, logger })];
    try {
      for (const agent of agents) await agent.start();
      expect(agents[1]!.stats().server).toBe(viaProxy);
      const queued = await post<TestStatus>(a, '/v1/links/alfa/bravo/throughput-tests');
      expect(queued.status).toBe(202);
      const testId = queued.body.testId;

      const ended = await endedOn(a, testId);
      expect(cutAt).toBe(testId);
      expect(agents[1]!.stats().server).toBe(b.wsUrl);
      expect(ended, JSON.stringify(ended)).toMatchObject({ state: 'done', error: null });
      expect(ended.forwardBps).toBeGreaterThan(0);
      expect(ended.reverseBps).toBeGreaterThan(0);
      const stored = await throughputTestById(store.client, 'alfa', 'bravo', testId, Date.parse(ended.startedAt!) * 1000 - 60e6);
      expect(stored).toMatchObject({ ok: true, forwardBps: ended.forwardBps, reverseBps: ended.reverseBps });
      expect(await historyRows(a, 'alfa/bravo', testId)).toHaveLength(1);
      process.stdout.write(`probe moved mid-test: stored ${(ended.forwardBps! / 1e9).toFixed(2)} / ${(ended.reverseBps! / 1e9).toFixed(2)} Gbit/s, ` +
        `A's verdict ${Date.parse(ended.finishedAt!) - Date.parse(ended.startedAt!)} ms after the start\n`);
    } finally {
      await Promise.all(agents.map((agent) => agent.stop()));
      await proxy.cut();
    }
  }, 90_000);
});
