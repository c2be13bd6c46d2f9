/**
 * `/v1/status` judges each path by its own link's policy: a link with its own
 * `loss_ratio_max` is not in breach at a loss the global ceiling would refuse,
 * and a link with only the global ceiling is. Same trains on both links.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StatusResponse } from '../../api/contract.js';
import { hashToken, parseTopology } from '../../topology/index.js';
import { insertTrains } from '../../sql/index.js';
import { train } from '../helpers/sla-month.js';
import { getJson, startTestServer, type TestServer } from '../helpers/stack.js';

const operatorToken = `operator-${Math.random().toString(36).slice(2)}`;
const centre = (id: string, i: number) => `  - id: ${id}
    name: ${id}
    district: D
    probe: { host: 127.0.9.${i}, token_sha256: ${hashToken(`probe-${id}-${operatorToken}`)} }`;
const yaml = `name: status policy
sla:
  rtt_p99_target_ms: 2
  loss_ratio_max: 0.001
centres:
${['alfa', 'bravo', 'charlie'].map(centre).join('\n')}
links:
  - { between: [alfa, bravo], capacity_gbps: 100, loss_ratio_max: 0.2 }
  - { between: [alfa, charlie], capacity_gbps: 100 }
access:
  operators: [{ name: noc, token_sha256: ${hashToken(operatorToken)} }]
`;

let server: TestServer;

beforeAll(async () => {
  server = await startTestServer(parseTopology(yaml, 'status-policy.yaml'));
  const nowUs = Date.now() * 1000;
  // 1 of 10 packets lost (10 %) at 500 µs, in both directions of both links.
  const rows = ['bravo', 'charlie'].flatMap((peer) => [train('alfa', peer, nowUs, 500, 10, 1), train(peer, 'alfa', nowUs, 500, 10, 1)]);
  await insertTrains(server.store.client, rows, 'status-policy');
});

afterAll(async () => {
  await server?.stop();
});

describe('path status against the link policy', () => {
  it("uses the link's own loss ceiling, else the global one", async () => {
    const { status, body } = await getJson<StatusResponse>(`${server.url}/v1/status`, operatorToken);
    expect(status).toBe(200);
    const state = (src: string, dst: string) => body.paths.find((p) => p.src === src && p.dst === dst && p.engine === 'stamp')?.state;
    expect(body.paths.find((p) => p.src === 'alfa' && p.dst === 'bravo')?.lossRatio).toBeCloseTo(0.1, 6);
    expect([state('alfa', 'bravo'), state('bravo', 'alfa')]).toEqual(['warn', 'warn']); // 10 % ≤ 20 %: lossy, not in breach
    expect([state('alfa', 'charlie'), state('charlie', 'alfa')]).toEqual(['breach', 'breach']); // 10 % > 0.1 %
  });
});
