/**
 * Capacity on loopback with real probes: operator-triggered throughput tests
 * (native engine, real TCP) are arbitrated so tests sharing an endpoint run
 * one after the other; results and NIC samples are stored and served.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CapacityResponse, ThroughputHistoryResponse, UtilisationResponse } from '../../api/contract.js';
import type { TestStatus } from '../../collector/index.js';
import type { ProbeAgent } from '../../probes/agent.js';
import { capacityOverrides, getJson, startAgents, startTestServer, testTopology, waitFor, type TestServer } from '../helpers/stack.js';

const throughputPort = 30_000 + Math.floor(Math.random() * 10_000);
const topo = testTopology(['alfa', 'bravo', 'charlie'], '127.0.15', capacityOverrides(throughputPort));

let server: TestServer;
const agents: ProbeAgent[] = [];

beforeAll(async () => {
  server = await startTestServer(topo.topology);
  agents.push(...(await startAgents(server, topo, ['alfa', 'bravo', 'charlie'])));
});
afterAll(async () => {
  await Promise.all(agents.map((a) => a.stop()));
  await server?.stop();
});

async function post<T>(path: string, token: string): Promise<{ status: number; body: T }> {
  const response = await fetch(`${server.url}${path}`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
  return { status: response.status, body: (await response.json()) as T };
}

/**
 * Two tests that share the endpoint alfa, run once for the tests that need a
 * tested link (each test runs alone too): their POST answers and the statuses
 * they ended in.
 */
let sharedEndpointRun: Promise<{ first: { status: number; body: TestStatus }; second: { status: number; body: TestStatus }; done: TestStatus[] }> | undefined;
const runSharedEndpointPair = () =>
  (sharedEndpointRun ??= (async () => {
    const first = await post<TestStatus>('/v1/links/alfa/bravo/throughput-tests', topo.operatorToken);
    const second = await post<TestStatus>('/v1/links/charlie/alfa/throughput-tests', topo.operatorToken);
    const done = await waitFor('both tests finished', async () => {
      const statuses = await Promise.all(
        [first.body.testId, second.body.testId].map(async (id) => (await getJson<TestStatus>(`${server.url}/v1/throughput-tests/${id}`, topo.operatorToken)).body),
      );
      return statuses.every((s) => s.state !== 'queued' && s.state !== 'running') ? statuses : undefined;
    }, 60_000);
    return { first, second, done };
  })());

describe('throughput tests', () => {
  it('runs two tests that share an endpoint one after the other, and reports each done once its row is stored', async () => {
    const { first, second, done } = await runSharedEndpointPair();
    expect(first.status).toBe(202);
    expect(second.status).toBe(202);
    expect(first.body).toMatchObject({ client: 'alfa', server: 'bravo', trigger: 'operator' });
    expect(second.body).toMatchObject({ client: 'alfa', server: 'charlie', state: 'queued' });
    for (const s of done) expect(s, JSON.stringify(s)).toMatchObject({ state: "done", error: null });
    const [a, b] = done as [TestStatus, TestStatus];
    expect(Date.parse(b.startedAt!)).toBeGreaterThanOrEqual(Date.parse(a.finishedAt!));

    // `done` means stored: the history has both rows already, no waiting.
    const history = await Promise.all(
      ['alfa/bravo', 'alfa/charlie'].map(async (link) => (await getJson<ThroughputHistoryResponse>(`${server.url}/v1/links/${link}/throughput`, topo.operatorToken)).body),
    );
    for (const [i, h] of history.entries()) {
      const [test] = h.tests;
      expect(test).toMatchObject({ testId: done[i]!.testId, ok: true, engine: 'native', direction: 'bidir', client: 'alfa' });
      expect(test!.abGbps).toBeGreaterThan(0);
      expect(test!.baGbps).toBeGreaterThan(0);
      process.stdout.write(`loopback native bidir ${h.a}-${h.b}: ${test!.abGbps!.toFixed(2)} / ${test!.baGbps!.toFixed(2)} Gbit/s\n`);
    }
  });

  it('judges capacity per link: tested against the floor, provisioned unknown on a NIC without a speed', async () => {
    await runSharedEndpointPair(); // alfa~bravo tested
    const capacity = await waitFor('NIC samples for alfa-bravo', async () => {
      const { body } = await getJson<CapacityResponse>(`${server.url}/v1/capacity`, topo.operatorToken);
      const link = body.links.find((l) => l.linkId === 'alfa~bravo')!;
      return link.provisioned.interfaces.length >= 2 ? body : undefined;
    });
    const ab = capacity.links.find((l) => l.linkId === 'alfa~bravo')!;
    expect(ab.tested.verdict).toBe('met');
    // loopback reports no speed (EINVAL): unknown, never zero, so no verdict of "met"
    expect(ab.provisioned).toMatchObject({ gbps: null, verdict: 'unknown' });
    expect(ab.verdict).toBe('unknown');
    const bc = capacity.links.find((l) => l.linkId === 'bravo~charlie')!;
    expect(bc.tested.verdict).toBe('nodata');

    const util = await getJson<UtilisationResponse>(`${server.url}/v1/links/alfa/bravo/utilisation`, topo.operatorToken);
    expect(util.status).toBe(200);
    expect(util.body.t.length).toBe(util.body.rxGbps.length);
    expect(util.body.rxGbps.some((v) => v !== null && v > 0)).toBe(true);
  });

  it('does not queue a second test of a link that is already queued or running', async () => {
    const first = await post<TestStatus>('/v1/links/bravo/charlie/throughput-tests', topo.operatorToken);
    const again = await post<TestStatus>('/v1/links/charlie/bravo/throughput-tests', topo.operatorToken);
    expect(again.body.testId).toBe(first.body.testId);
    await waitFor('the test to finish', async () => {
      const s = (await getJson<TestStatus>(`${server.url}/v1/throughput-tests/${first.body.testId}`, topo.operatorToken)).body;
      return s.state !== 'queued' && s.state !== 'running';
    }, 60_000);
  });

  it('lets only operators trigger tests', async () => {
    expect((await post('/v1/links/alfa/bravo/throughput-tests', topo.regulatorToken)).status).toBe(403);
    expect((await post('/v1/links/alfa/bravo/throughput-tests', topo.tokens.alfa!)).status).toBe(403);
    expect((await fetch(`${server.url}/v1/links/alfa/bravo/throughput-tests`, { method: 'POST' })).status).toBe(401);
    expect((await post('/v1/links/bravo/charlie/throughput-tests', topo.operatorToken)).status).toBe(202);
  });
});
