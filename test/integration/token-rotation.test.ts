/**
 * Rotating a probe's and an operator's token on a real server: during the
 * rotation the topology lists both tokens and both are accepted (probe hello
 * over WebSocket, operator API); after the old one is removed and the server
 * restarted on the new topology, the old token is refused and the new one works.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { hashToken, parseTopology } from '../../topology/index.js';
import { startTestServer, testTopology, type TestServer } from '../helpers/stack.js';
import { RawClient } from '../helpers/ws-client.js';

async function hello(server: TestServer, centre: string, token: string): Promise<{ type: string; code?: string; closeCode?: number }> {
  const client = await RawClient.open(server.wsUrl);
  try {
    client.send({ type: 'hello', centre, token, version: 'test' });
    const answer = await client.next<{ type: string; code?: string }>();
    if (answer.type === 'error') return { ...answer, closeCode: (await client.waitClosed()).code };
    return answer;
  } finally {
    client.close();
  }
}

async function status(server: TestServer, token: string): Promise<number> {
  const response = await fetch(`${server.url}/v1/status`, { headers: { authorization: `Bearer ${token}` } });
  await response.arrayBuffer();
  return response.status;
}

let running: TestServer | null = null;
afterEach(async () => {
  await running?.stop();
  running = null;
});

describe('token rotation on a running server', () => {
  it('accepts old and new tokens during the rotation, refuses the old one after its removal', async () => {
    const base = testTopology(['oak', 'pine'], '127.0.83');
    const old = { probe: base.tokens.oak!, operator: base.operatorToken };
    const fresh = { probe: `rotated-${Math.random().toString(36).slice(2)}`, operator: `rotated-op-${Math.random().toString(36).slice(2)}` };
    const rotate = (probeHashes: string[], operatorHashes: string[]) =>
      parseTopology(
        base.yaml
          .replace(`token_sha256: ${hashToken(old.probe)}`, `token_sha256: [${probeHashes.join(', ')}]`)
          .replace(`token_sha256: ${hashToken(old.operator)}`, `token_sha256: [${operatorHashes.join(', ')}]`),
        'rotation.yaml',
      );

    // Step 1: the new tokens are added beside the old ones.
    running = await startTestServer(rotate([hashToken(old.probe), hashToken(fresh.probe)], [hashToken(old.operator), hashToken(fresh.operator)]));
    expect((await hello(running, 'oak', old.probe)).type).toBe('plan');
    expect((await hello(running, 'oak', fresh.probe)).type).toBe('plan');
    expect(await status(running, old.operator)).toBe(200);
    expect(await status(running, fresh.operator)).toBe(200);
    // A rotated token still speaks for its own centre only.
    expect(await hello(running, 'pine', fresh.probe)).toMatchObject({ type: 'error', code: 'bad_token', closeCode: 4401 });
    await running.stop();

    // Step 2: probes and people moved over; the old tokens are removed.
    running = await startTestServer(rotate([hashToken(fresh.probe)], [hashToken(fresh.operator)]));
    expect(await hello(running, 'oak', old.probe)).toMatchObject({ type: 'error', code: 'bad_token', closeCode: 4401 });
    expect((await hello(running, 'oak', fresh.probe)).type).toBe('plan');
    expect(await status(running, old.operator)).toBe(401);
    expect(await status(running, fresh.operator)).toBe(200);
  });
});
