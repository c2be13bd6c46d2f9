/**
 * `/v1/status` judges each path by its own link's policy: a link with its own
 * `loss_ratio_max` is not in breach at a loss the global ceiling would refuse,
 * and a link with only the global ceiling is. Same trains on both links.
 * Apart from that verdict, each direction's one-way delay is judged against
 * `one_way_target_ms`: measured when the clocks were synchronised, else RTT / 2.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CentreView, StatusResponse } from '../../api/contract.js';
import { hashToken, parseTopology } from '../../topology/index.js';
import { insertTrains } from '../../sql/index.js';
import { train } from '../helpers/sla-month.js';
import { getJson, startTestServer, waitFor, type TestServer } from '../helpers/stack.js';

const operatorToken = `operator-${Math.random().toString(36).slice(2)}`;
const centre = (id: string, i: number) => `  - id: ${id}
    name: ${id}${id === 'delta' ? '\n    name_local: 德尔塔' : ''}
    district: D
    probe: { host: 127.0.9.${i}, token_sha256: ${hashToken(`probe-${id}-${operatorToken}`)} }`;
const yaml = `name: status policy
sla:
  rtt_p99_target_ms: 2
  one_way_target_ms: 1
  loss_ratio_max: 0.001
centres:
${['alfa', 'bravo', 'charlie', 'delta'].map(centre).join('\n')}
links:
  - { between: [alfa, bravo], capacity_gbps: 100, loss_ratio_max: 0.2 }
  - { between: [alfa, charlie], capacity_gbps: 100 }
  - { between: [alfa, delta], capacity_gbps: 100 }
access:
  operators: [{ name: noc, token_sha256: ${hashToken(operatorToken)} }]
`;

let server: TestServer;
/** When the last trains were stored: an answer counts once it judged a second at or after it (asOf). */
let storedMs = 0;

/** /v1/status once it judges a second at or after the trains (judged seconds trail the clock by a second or two). */
async function statusAfterTrains(): Promise<StatusResponse> {
  return waitFor('a status judged after the trains were stored', async () => {
    const { status, body } = await getJson<StatusResponse>(`${server.url}/v1/status`, operatorToken);
    expect(status).toBe(200);
    return Date.parse(body.asOf) >= storedMs ? body : undefined;
  });
}

beforeAll(async () => {
  server = await startTestServer(parseTopology(yaml, 'status-policy.yaml'));
  const nowUs = Date.now() * 1000;
  // 1 of 10 packets lost (10 %) at 500 µs, in both directions of both links.
  const rows = ['bravo', 'charlie'].flatMap((peer) => [train('alfa', peer, nowUs, 500, 10, 1), train(peer, 'alfa', nowUs, 500, 10, 1)]);
  await insertTrains(server.store.client, rows, 'status-policy');
  // alfa → delta: clocks synchronised, 1.4 ms round trip made of 1.2 ms out and 0.2 ms back (an asymmetric path).
  // delta → alfa: clocks not synchronised, the same 1.4 ms round trip.
  const synced = [0, 1, 2].map((i) => ({ ...train('alfa', 'delta', nowUs - i * 1000, 1400), synced: true, fwd_us: Array(10).fill(1200), rev_us: Array(10).fill(200) }));
  const unsynced = [0, 1, 2].map((i) => train('delta', 'alfa', nowUs - i * 1000, 1400));
  await insertTrains(server.store.client, [...synced, ...unsynced], 'status-policy-one-way');
  storedMs = Date.now();
});

afterAll(async () => {
  await server?.stop();
});

describe('path status against the link policy', () => {
  it("uses the link's own loss ceiling, else the global one", async () => {
    const body = await statusAfterTrains();
    const state = (src: string, dst: string) => body.paths.find((p) => p.src === src && p.dst === dst && p.engine === 'stamp')?.state;
    expect(body.paths.find((p) => p.src === 'alfa' && p.dst === 'bravo')?.lossRatio).toBeCloseTo(0.1, 6);
    expect([state('alfa', 'bravo'), state('bravo', 'alfa')]).toEqual(['warn', 'warn']); // 10 % ≤ 20 %: lossy, not in breach
    expect([state('alfa', 'charlie'), state('charlie', 'alfa')]).toEqual(['breach', 'breach']); // 10 % > 0.1 %
  });

  it('judges the one-way delay apart: measured with synchronised clocks, else half the round trip, and says which', async () => {
    const body = await statusAfterTrains();
    const path = (src: string, dst: string) => body.paths.find((p) => p.src === src && p.dst === dst && p.engine === 'stamp')!;
    // Both directions meet the 2 ms round-trip target (1.4 ms); only the measured forward delay shows alfa → delta misses the 1 ms circle.
    expect([path('alfa', 'delta').state, path('delta', 'alfa').state]).toEqual(['ok', 'ok']);
    expect(path('alfa', 'delta').oneWay).toEqual({ p99Ms: 1.2, basis: 'measured', targetMs: 1, state: 'breach' });
    expect(path('delta', 'alfa').oneWay).toEqual({ p99Ms: 0.7, basis: 'rtt_half', targetMs: 1, state: 'ok' });
  });

  it('lists each centre with its local name, when the topology gives one', async () => {
    const { status, body } = await getJson<{ centres: CentreView[] }>(`${server.url}/v1/centres`, operatorToken);
    expect(status).toBe(200);
    expect(body.centres.map((c) => [c.id, c.nameLocal])).toEqual([['alfa', null], ['bravo', null], ['charlie', null], ['delta', '德尔塔']]);
  });
});
