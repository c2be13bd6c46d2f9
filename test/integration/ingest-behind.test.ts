/**
 * A collector whose store falls behind says when to come back: a batch
 * refused busy because the store is behind carries the store's estimate
 * (retryAfterMs), which probes honour instead of doubling their back-off
 * (probes/uplink.ts; test/integration/uplink-retry.test.ts). Its own file:
 * one embedded store per process, and this one runs with tight limits.
 */
import { describe, expect, it } from 'vitest';
import { batchText, heavySample as sample, sendTogether } from '../helpers/busy-batches.js';
import { startTestServer, testTopology } from '../helpers/stack.js';
import { RawClient } from '../helpers/ws-client.js';

const topo = testTopology(['alpha', 'beta', 'gamma'], '127.0.94');

describe('when the store is behind, busy says when to come back', () => {
  it('a batch refused because the store is behind carries retryAfterMs (whole ms, 100 ms to 30 s), and still every batch is stored once', async () => {
    // A server whose store may hold nothing back (1 ms of expected wait): once it has measured its insert rate, a
    // batch arriving while another is stored is refused as the store being behind, with the store's estimate. Turns
    // start as soon as the INSERT slot is free (no turn interval): batches held for an interval are no saturation.
    const server = await startTestServer(topo.topology, {
      collectorLimits: { maxInflightPerConnection: 16, maxConcurrentStores: 1, maxStoreWaitS: 0.001, minStoreTurnIntervalMs: 0, maxConnectionsPerCentre: 4, messagesPerSecond: 10_000, messageBurst: 10_000 },
    });
    const centres = ['alpha', 'beta', 'gamma'] as const;
    const clients: RawClient[] = [];
    try {
      const hinted: number[] = [];
      let unhinted = 0;
      const acked = new Set<string>();
      const all: string[] = [];
      for (const centre of centres) {
        const client = await RawClient.open(server.wsUrl);
        clients.push(client);
        client.send({ type: 'hello', centre, token: topo.tokens[centre], version: 'test' });
        expect(await client.next()).toMatchObject({ type: 'plan' });
      }
      // Each connection keeps 16 batches unacknowledged (a new one on every ack, a refused one sent again at once):
      // the store stays saturated, measures its rate after a second of that, and from then on refuses a batch as
      // the store being behind. Until the first such refusal, or 2,000 batches.
      let stop = false;
      let sentTotal = 0;
      await Promise.all(clients.map(async (client, k) => {
        const centre = centres[k]!;
        const peers = centres.filter((c) => c !== centre);
        const texts = new Map<string, string>();
        const next = () => {
          const id = `busy-behind-${centre}-${texts.size}-${process.pid}`;
          texts.set(id, batchText(id, Array.from({ length: 12 }, (_, i) => sample(peers[i % peers.length]!))));
          all.push(id);
          sentTotal++;
          return texts.get(id)!;
        };
        sendTogether(client, Array.from({ length: 16 }, next));
        let open = 16;
        while (open > 0) {
          const reply = await client.next<{ type: string; batchId?: string; code?: string; error?: string; retryAfterMs?: unknown }>(30_000);
          if (reply.type === 'ack') {
            acked.add(reply.batchId!);
            open--;
            if (!stop && sentTotal < 2000) {
              client.send(next());
              open++;
            }
            continue;
          }
          expect(reply).toMatchObject({ type: 'error', code: 'busy' });
          if (reply.retryAfterMs === undefined) unhinted++;
          else {
            expect(reply.error).toContain('the store is behind');
            expect(Number.isInteger(reply.retryAfterMs)).toBe(true);
            hinted.push(reply.retryAfterMs as number);
            stop = true;
          }
          // Sent again at once: the hint is the store's estimate, not a promise, and this test is not a probe.
          client.send(texts.get(reply.batchId!)!);
        }
      }));
      expect(hinted.length, `${unhinted} busy replies without a hint`).toBeGreaterThan(0);
      for (const ms of hinted) {
        expect(ms).toBeGreaterThanOrEqual(100);
        expect(ms).toBeLessThanOrEqual(30_000);
      }
      expect(acked.size).toBe(all.length);
    } finally {
      for (const c of clients) c.close();
      await server.stop();
    }
  }, 120_000);
});
