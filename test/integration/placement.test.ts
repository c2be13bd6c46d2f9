/**
 * Placement for the scheduling platform: from a centre, the centres whose
 * direct link meets an RTT bound (exact p99, worst direction, last minutes)
 * and a bandwidth bound (measured by the newest successful test), ranked by
 * RTT; everything else is listed with the reason it does not qualify.
 */
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PlacementResponse } from '../../api/contract.js';
import { insertThroughput, insertTrains } from '../../sql/index.js';
import { throughput, train } from '../helpers/sla-month.js';
import { getJson, startTestServer, testTopology, type TestServer } from '../helpers/stack.js';

const topo = testTopology(['hub', 'near', 'mid', 'slow', 'far', 'untested', 'silent', 'oneway'], '127.0.41');
let server: TestServer;

beforeAll(async () => {
  server = await startTestServer(topo.topology);
  const now = Date.now() * 1000;
  const trains = [];
  for (let k = 1; k <= 10; k++) {
    const ts = now - k * 20e6; // the last 200 s
    trains.push(
      train('hub', 'near', ts, 400), train('near', 'hub', ts, 420),
      train('hub', 'mid', ts, 900), train('mid', 'hub', ts, 850),
      train('hub', 'slow', ts, 600), train('slow', 'hub', ts, 600),
      train('hub', 'far', ts, 500), train('far', 'hub', ts, k === 3 ? 3000 : 500), // one train in ten at 3 ms: p99 is 3 ms
      train('hub', 'untested', ts, 500), train('untested', 'hub', ts, 500),
      train('hub', 'oneway', ts, 500), train('oneway', 'hub', ts, 500, 10, 10), // nothing comes back one way
    );
  }
  trains.push(train('hub', 'silent', now - 900e6, 300), train('silent', 'hub', now - 900e6, 300)); // 15 minutes ago: too old
  await insertTrains(server.store.client, trains, 'placement-trains');
  const day = 86_400e6;
  await insertThroughput(server.store.client, [
    throughput('hub', 'near', now - day, 98, 97),
    throughput('near', 'hub', now - 3600e6, null, null, 'connection refused'), // newer, failed: the older measurement stands
    throughput('mid', 'hub', now - 2 * day, 96.5, 99),
    throughput('hub', 'slow', now - day, 40, 41),
    throughput('hub', 'far', now - day, 99, 99),
    throughput('hub', 'untested', now - 40 * day, 99, 99), // older than 30 days
    throughput('hub', 'oneway', now - day, 99, 99),
  ], 'placement-tests');
});
afterAll(async () => {
  await server?.stop();
  if (server) rmSync(`${server.dataDir}-keys`, { recursive: true, force: true });
});

describe('GET /v1/placement', () => {
  it('ranks qualifying centres by RTT and says why the others do not qualify', async () => {
    const { status, body } = await getJson<PlacementResponse>(`${server.url}/v1/placement?from=hub&max_rtt_ms=2&min_gbps=95`, topo.operatorToken);
    expect(status).toBe(200);
    expect(body).toMatchObject({ from: 'hub', maxRttMs: 2, minGbps: 95, windowS: 300 });
    expect(body.candidates.map((c) => [c.centre, c.rttP99Ms, c.capacityGbps])).toEqual([
      ['near', 0.42, 97],
      ['mid', 0.9, 96.5],
    ]);
    expect(body.candidates[0]).toMatchObject({ lossRatio: 0, committedGbps: 100, testedAt: expect.any(String) });
    const reasons = Object.fromEntries(body.excluded.map((e) => [e.centre, e.reason]));
    expect(reasons).toEqual({
      slow: 'tested 40 Gb/s < 95 Gb/s',
      far: 'p99 RTT 3 ms > 2 ms',
      untested: 'no successful throughput test in the last 30 days',
      oneway: 'no packets delivered in both directions in the last 300 s',
      silent: 'no packets delivered in both directions in the last 300 s',
    });
  });

  it('widens with the thresholds and the window', async () => {
    const loose = await getJson<PlacementResponse>(`${server.url}/v1/placement?from=hub&max_rtt_ms=5&min_gbps=10&window_s=1800`, topo.operatorToken);
    expect(loose.body.candidates.map((c) => c.centre)).toEqual(['near', 'slow', 'mid', 'far']);
    expect(loose.body.excluded.find((e) => e.centre === 'silent')!.reason).toBe('no successful throughput test in the last 30 days');
  });

  it('checks its parameters and is for operators only', async () => {
    expect((await getJson(`${server.url}/v1/placement?from=hub&max_rtt_ms=2`, topo.operatorToken)).status).toBe(400);
    expect((await getJson(`${server.url}/v1/placement?from=nowhere&max_rtt_ms=2&min_gbps=1`, topo.operatorToken)).status).toBe(404);
    expect((await getJson(`${server.url}/v1/placement?from=hub&max_rtt_ms=2&min_gbps=1`, topo.regulatorToken)).status).toBe(403);
    expect((await getJson(`${server.url}/v1/placement?from=hub&max_rtt_ms=2&min_gbps=1`, topo.tokens.hub)).status).toBe(403);
    expect((await getJson(`${server.url}/v1/placement?from=hub&max_rtt_ms=2&min_gbps=1`)).status).toBe(401);
  });
});
