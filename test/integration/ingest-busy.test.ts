/**
 * An overloaded collector says `busy` before it reads a batch (parsing what
 * it will refuse is what overload cannot afford), naming the batch so the
 * probe holds it and sends it again; and under a flood of such refusals with
 * resends, every acknowledged batch is stored, and nothing is stored twice.
 * Against a running server with tight limits (one batch in flight per
 * connection, one stored at a time), over the real probe WebSocket.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { batchText, heavySample as sample, sendTogether } from '../helpers/busy-batches.js';
import { startTestServer, testTopology, type TestServer } from '../helpers/stack.js';
import { RawClient } from '../helpers/ws-client.js';

const topo = testTopology(['alpha', 'beta', 'gamma'], '127.0.93');
let server: TestServer;
const seq = process.pid; // ids unique to this run

async function helloed(centre: string): Promise<RawClient> {
  const client = await RawClient.open(server.wsUrl);
  client.send({ type: 'hello', centre, token: topo.tokens[centre], version: 'test' });
  expect(await client.next()).toMatchObject({ type: 'plan' });
  return client;
}

async function stored(src: string, trainIds: string[]): Promise<{ rows: number; distinct: number }> {
  const result = await server.store.client.query({
    query: 'SELECT count() AS rows, uniqExact(train_id) AS distinct FROM latency_trains WHERE src = {src:String} AND train_id IN {ids:Array(String)}',
    query_params: { src, ids: trainIds }, format: 'JSONEachRow',
  });
  const [r] = await result.json<{ rows: number; distinct: number }>();
  return { rows: Number(r!.rows), distinct: Number(r!.distinct) };
}

beforeAll(async () => {
  server = await startTestServer(topo.topology, {
    collectorLimits: { maxInflightPerConnection: 1, maxConcurrentStores: 1, maxConnectionsPerCentre: 4, messagesPerSecond: 10_000, messageBurst: 10_000 },
  });
});

afterAll(async () => {
  await server?.stop();
});

describe('busy before parsing', () => {
  it('a batch arriving while its connection is at its limit is refused busy, by its id, unread (its malformed body is never reached)', async () => {
    const client = await helloed('alpha');
    try {
      const first = [sample('beta')];
      const [firstId, unreadId] = [`busy-first-${seq}`, `busy-unread-${seq}`];
      // Larger than a hello, a valid head, then a body that is not JSON: only a parse would notice.
      const unread = `{"type":"batch","batchId":"${unreadId}","samples":[${'x'.repeat(10_000)}]}`;
      sendTogether(client, [batchText(firstId, first), unread]);
      const replies = [await client.next(), await client.next()];
      expect(replies).toContainEqual(expect.objectContaining({ type: 'ack', batchId: firstId }));
      expect(replies).toContainEqual(expect.objectContaining({ type: 'error', code: 'busy', batchId: unreadId }));
      expect(await stored('alpha', first.map((s) => s.trainId))).toEqual({ rows: 1, distinct: 1 });
    } finally {
      client.close();
    }
  });

  it('when the server is not overloaded, or the id is not at the head, the batch is read and its fault named', async () => {
    const client = await helloed('beta');
    try {
      const garbage = `{"type":"batch","batchId":"busy-garbage-${seq}","samples":[${'x'.repeat(10_000)}]}`;
      client.send(garbage);
      expect(await client.next()).toMatchObject({ type: 'error', code: 'bad_json' });
      // At the limit, but the id is not where probes write it: no id to name in a busy, so the message is parsed.
      const idAtEnd = `{"samples":[${'x'.repeat(10_000)}],"type":"batch","batchId":"busy-late-${seq}"}`;
      const second = `busy-second-${seq}`;
      sendTogether(client, [batchText(second, [sample('alpha')]), idAtEnd]);
      const replies = [await client.next(), await client.next()];
      expect(replies).toContainEqual(expect.objectContaining({ type: 'ack', batchId: second }));
      expect(replies).toContainEqual(expect.objectContaining({ type: 'error', code: 'bad_json' }));
    } finally {
      client.close();
    }
  });
});

describe('held and sent again after busy, as a probe does', () => {
  it('every acknowledged batch is stored, each train once, however often it was deferred', async () => {
    const centres = ['alpha', 'beta', 'gamma'] as const;
    const batches = new Map<string, { centre: string; text: string; trainIds: string[] }>();
    for (const centre of centres) {
      const peers = centres.filter((c) => c !== centre);
      for (let b = 0; b < 8; b++) {
        const samples = Array.from({ length: 12 }, (_, i) => sample(peers[i % peers.length]!));
        const id = `busy-flood-${centre}-${b}-${seq}`;
        batches.set(id, { centre, text: batchText(id, samples), trainIds: samples.map((s) => s.trainId) });
      }
    }
    const acked = new Set<string>();
    let deferred = 0;
    // Two connections per centre, each sending all of its centre's batches at once, resending each refused one: more
    // than the server takes (one batch per connection, one store at a time), and both connections send the same batches.
    const clients = await Promise.all(centres.flatMap((c) => [helloed(c), helloed(c)]));
    try {
      await Promise.all(clients.map(async (client, k) => {
        const centre = centres[Math.floor(k / 2)]!;
        const mine = [...batches.entries()].filter(([, b]) => b.centre === centre);
        const waiting = new Set(mine.map(([id]) => id));
        sendTogether(client, mine.map(([, b]) => b.text));
        while (waiting.size > 0) {
          const reply = await client.next<{ type: string; batchId?: string; code?: string }>(30_000);
          expect(reply.batchId, JSON.stringify(reply)).toBeDefined();
          if (reply.type === 'ack') {
            acked.add(reply.batchId!);
            waiting.delete(reply.batchId!);
            continue;
          }
          expect(reply).toMatchObject({ type: 'error', code: 'busy' });
          deferred++;
          await new Promise((r) => setTimeout(r, 20 + Math.random() * 30));
          client.send(batches.get(reply.batchId!)!.text);
        }
      }));
    } finally {
      for (const c of clients) c.close();
    }
    expect(deferred).toBeGreaterThan(0);
    expect(acked.size).toBe(batches.size);
    for (const centre of centres) {
      const ids = [...batches.values()].filter((b) => b.centre === centre).flatMap((b) => b.trainIds);
      expect(await stored(centre, ids)).toEqual({ rows: ids.length, distinct: ids.length });
    }
  });
});

