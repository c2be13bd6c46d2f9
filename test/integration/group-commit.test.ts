/**
 * Group commit: batches ready while a store turn runs are stored together in
 * the next one (one lookup, one INSERT per table, one ledger INSERT). Against
 * a running server storing one group at a time, over the real probe
 * WebSocket, into the real embedded store:
 *
 * - a batch refused for its own fault (a conflicting id, found by the group's
 *   lookup; an unknown destination, a duplicate train, an invalid sample,
 *   found before it joins) is refused alone: the others of its group are
 *   stored, acked and shown live, once (the conflicting batch's trains,
 *   shown at validation, are retracted);
 * - a group whose INSERT the engine refuses (a table constraint, added and
 *   dropped by the test) fails every member, innocent ones too, and retracts
 *   what it showed; when a later attempt stores the trains but not the ledger
 *   (a constraint there), the resend stores only what is missing; after the
 *   resends, in other groups, every train and every ledger row is stored once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LiveTrain } from '../../collector/index.js';
import type { TrainSample } from '../../protocol/index.js';
import { duplicateTrainIds } from '../../sql/index.js';
import { startTestServer, testTopology, type TestServer } from '../helpers/stack.js';
import { RawClient } from '../helpers/ws-client.js';

const topo = testTopology(['alpha', 'beta', 'gamma'], '127.0.87');
let server: TestServer;
let seq = 0;

function sample(dst: string, trainId = `gc-${process.pid}-${++seq}`): TrainSample {
  return {
    trainId, dst, engine: 'stamp', startedAtUs: Date.now() * 1000 - 2e6, flow: 0, srcPort: 40000, dscp: 46,
    sent: 4, received: 4, lost: 0, duplicated: 0, reordered: 0, rttMinUs: 300, rttMedianUs: 310, rttP99Us: 320, rttMaxUs: 320, jitterUs: 5,
    rttsUs: [300, 305, 315, 320], synced: false, errorEstimateUs: 1000, fwdUs: [], revUs: [],
  };
}

interface Batch {
  id: string;
  samples: unknown[];
}

const batchText = (b: Batch) => JSON.stringify({ type: 'batch', batchId: b.id, createdAtUs: Date.now() * 1000, samples: b.samples });
const trainIds = (...batches: Batch[]) => batches.flatMap((b) => b.samples.map((s) => (s as TrainSample).trainId));

async function helloed(centre: string): Promise<RawClient> {
  const client = await RawClient.open(server.wsUrl);
  client.send({ type: 'hello', centre, token: topo.tokens[centre], version: 'test' });
  expect(await client.next()).toMatchObject({ type: 'plan' });
  return client;
}

/**
 * Sends the batches in one socket write, so the server reads them in one go: the first starts a store turn
 * alone, the others are ready while it runs; returns each batch's reply by id.
 */
async function sendTogether(client: RawClient, batches: Batch[]): Promise<Map<string, Record<string, unknown>>> {
  const socket = (client.ws as unknown as { _socket: { cork(): void; uncork(): void } })._socket;
  socket.cork();
  for (const b of batches) client.send(batchText(b));
  socket.uncork();
  const replies = new Map<string, Record<string, unknown>>();
  for (let i = 0; i < batches.length; i++) {
    const reply = await client.next();
    replies.set(String(reply.batchId), reply);
  }
  return replies;
}

async function count(query: string, params: Record<string, unknown>): Promise<Record<string, number>> {
  const result = await server.store.client.query({ query, query_params: params, format: 'JSONEachRow' });
  const out: Record<string, number> = {};
  for (const r of await result.json<{ key: string; n: number }>()) out[r.key] = Number(r.n);
  return out;
}

/** Rows stored per train id, for these ids of one centre. */
const storedTrains = (src: string, ids: string[]) => count(
  'SELECT train_id AS key, count() AS n FROM latency_trains WHERE src = {src:String} AND train_id IN {ids:Array(String)} GROUP BY train_id',
  { src, ids },
);

/** Ledger rows per batch id, for these batches of one centre. */
const ledgerRows = (centre: string, ids: string[]) => count(
  'SELECT batch_id AS key, count() AS n FROM batch_ledger WHERE centre = {centre:String} AND batch_id IN {ids:Array(String)} GROUP BY batch_id',
  { centre, ids },
);

/** Store turns and the batches they carried so far (citymesh_store_group_batches). */
async function groups(): Promise<{ turns: number; batches: number }> {
  const metric = await server.registry.getSingleMetric('citymesh_store_group_batches')!.get();
  const values = metric.values as { metricName?: string; value: number }[];
  const value = (name: string) => values.find((v) => v.metricName === name)?.value ?? 0;
  return { turns: value('citymesh_store_group_batches_count'), batches: value('citymesh_store_group_batches_sum') };
}

/** What the live hub publishes and retracts, by train id. */
function watchHub(): { published: string[]; retracted: string[]; stop(): void } {
  const seen = { published: [] as string[], retracted: [] as string[] };
  const stop = server.hub.subscribe(
    (trains: readonly LiveTrain[]) => seen.published.push(...trains.map((t) => t.trainId!)),
    (trains: readonly LiveTrain[]) => seen.retracted.push(...trains.map((t) => t.trainId!)),
  );
  return { ...seen, stop };
}

beforeAll(async () => {
  server = await startTestServer(topo.topology, {
    // Turns as soon as the one INSERT slot is free (no turn interval): the groups here are what that slot forms.
    collectorLimits: { maxConcurrentStores: 1, minStoreTurnIntervalMs: 0, messagesPerSecond: 10_000, messageBurst: 10_000 },
  });
});

afterAll(async () => {
  await server?.stop();
});

describe('group commit', () => {
  it('a batch refused for its own fault is refused alone; the others of its group are stored, acked and shown once', async () => {
    const client = await helloed('alpha');
    const hub = watchHub();
    try {
      // An id stored with one content: the same id with other content, in a group, is refused batch_conflict.
      const taken: Batch = { id: `gc-taken-${seq}`, samples: [sample('beta')] };
      expect((await sendTogether(client, [taken])).get(taken.id)).toMatchObject({ type: 'ack', stored: 1 });
      const first: Batch = { id: `gc-first-${seq}`, samples: [sample('beta')] };
      const a: Batch = { id: `gc-a-${seq}`, samples: [sample('beta'), sample('gamma')] };
      const conflict: Batch = { id: taken.id, samples: [sample('gamma'), sample('beta')] };
      const c: Batch = { id: `gc-c-${seq}`, samples: [sample('gamma'), sample('beta'), sample('gamma')] };
      const nowhere: Batch = { id: `gc-nowhere-${seq}`, samples: [sample('beta'), sample('nowhere')] };
      const twice = sample('beta');
      const duplicate: Batch = { id: `gc-duplicate-${seq}`, samples: [twice, { ...twice }] };
      const invalid: Batch = { id: `gc-invalid-${seq}`, samples: [sample('gamma'), { ...sample('beta'), received: 5 }] };
      const before = await groups();
      const replies = await sendTogether(client, [first, a, conflict, c, nowhere, duplicate, invalid]);
      const after = await groups();
      for (const b of [first, a, c]) expect(replies.get(b.id)).toMatchObject({ type: 'ack', batchId: b.id, stored: b.samples.length });
      expect(replies.get(conflict.id)).toMatchObject({ type: 'error', code: 'batch_conflict', field: 'batchId' });
      expect(replies.get(nowhere.id)).toMatchObject({ type: 'error', code: 'unknown_destination', field: 'samples[1].dst' });
      expect(replies.get(duplicate.id)).toMatchObject({ type: 'error', code: 'duplicate_train', field: 'samples[1].trainId' });
      expect(replies.get(invalid.id)).toMatchObject({ type: 'error', code: 'bad_message', field: 'samples[1].received' });
      // Three batches were inserted (first, a, c), by fewer INSERTs: some were stored together.
      expect(after.batches - before.batches).toBe(3);
      expect(after.turns - before.turns).toBeLessThan(3);
      const good = trainIds(first, a, c);
      const refused = trainIds(conflict, nowhere, duplicate, invalid);
      const stored = await storedTrains('alpha', [...good, ...refused]);
      expect(stored).toEqual(Object.fromEntries(good.map((id) => [id, 1])));
      // Published at validation: the conflicting batch's trains too (its conflict is found by the lookup), then taken back;
      // the batches refused before validation ended show nothing.
      expect(hub.published.filter((id) => [...good, ...refused].includes(id)).sort()).toEqual([...good, ...trainIds(conflict)].sort());
      expect(hub.retracted.sort()).toEqual(trainIds(conflict).sort());
      expect(await ledgerRows('alpha', [taken.id, first.id, a.id, c.id, nowhere.id, duplicate.id, invalid.id]))
        .toEqual({ [taken.id]: 1, [first.id]: 1, [a.id]: 1, [c.id]: 1 });
    } finally {
      hub.stop();
      client.close();
    }
  });

  it('a failed group INSERT fails every member and loses nothing: after resends in other groups, each train and ledger row is stored once', async () => {
    const client = await helloed('gamma');
    const hub = watchHub();
    const first: Batch = { id: `gc-lead-${seq}`, samples: [sample('beta')] };
    const innocent: Batch = { id: `gc-innocent-${seq}`, samples: [sample('beta'), sample('beta')] };
    const culprit: Batch = { id: `gc-culprit-${seq}`, samples: [sample('beta'), sample('alpha')] };
    const later: Batch = { id: `gc-later-${seq}`, samples: [sample('alpha')] };
    const all = [first, innocent, culprit, later];
    try {
      // 1. The engine refuses trains gamma → alpha: the group holding the culprit fails whole, the innocent batch with it.
      await server.store.client.command({ query: "ALTER TABLE latency_trains ADD CONSTRAINT gc_no_gamma_alpha CHECK NOT (src = 'gamma' AND dst = 'alpha')" });
      let replies: Map<string, Record<string, unknown>>;
      try {
        replies = await sendTogether(client, [first, innocent, culprit]);
      } finally {
        await server.store.client.command({ query: 'ALTER TABLE latency_trains DROP CONSTRAINT gc_no_gamma_alpha' });
      }
      expect(replies.get(first.id)).toMatchObject({ type: 'ack', stored: 1 });
      for (const b of [innocent, culprit]) expect(replies.get(b.id)).toMatchObject({ type: 'error', code: 'store_unavailable', batchId: b.id });
      expect(await storedTrains('gamma', trainIds(innocent, culprit))).toEqual({});
      expect(hub.retracted.sort()).toEqual(trainIds(innocent, culprit).sort());

      // 2. The engine refuses gamma's ledger rows: the trains are stored, the batches are not acked.
      await server.store.client.command({ query: "ALTER TABLE batch_ledger ADD CONSTRAINT gc_no_gamma_ledger CHECK centre != 'gamma'" });
      try {
        replies = await sendTogether(client, [culprit, innocent, later]);
      } finally {
        await server.store.client.command({ query: 'ALTER TABLE batch_ledger DROP CONSTRAINT gc_no_gamma_ledger' });
      }
      for (const b of [innocent, culprit, later]) expect(replies.get(b.id)).toMatchObject({ type: 'error', code: 'store_unavailable' });
      const retried = trainIds(innocent, culprit, later);
      expect(await storedTrains('gamma', retried)).toEqual(Object.fromEntries(retried.map((id) => [id, 1])));
      expect(await ledgerRows('gamma', [innocent.id, culprit.id, later.id])).toEqual({});

      // 3. Resent in yet other groups: only what is missing is stored (the ledger rows); nothing twice.
      replies = await sendTogether(client, [later, first, innocent, culprit]);
      for (const b of all) expect(replies.get(b.id)).toMatchObject({ type: 'ack', batchId: b.id, stored: b.samples.length });
      const ids = trainIds(...all);
      expect(await storedTrains('gamma', ids)).toEqual(Object.fromEntries(ids.map((id) => [id, 1])));
      expect(await ledgerRows('gamma', all.map((b) => b.id))).toEqual(Object.fromEntries(all.map((b) => [b.id, 1])));
      expect(await duplicateTrainIds(server.store.client)).toEqual([]);
      // Shown live no more often than stored, net of retractions.
      for (const id of ids) {
        const shown = hub.published.filter((p) => p === id).length - hub.retracted.filter((r) => r === id).length;
        expect(shown, id).toBeLessThanOrEqual(1);
      }
    } finally {
      hub.stop();
      client.close();
    }
  });
});
