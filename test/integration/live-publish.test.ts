/**
 * When the live feed shows a batch's trains, against a running server and a
 * real /v1/live WebSocket: while the batch's INSERT runs (before its ack),
 * never for a batch that is refused (bad, conflicting) or a replay of stored
 * trains, and when an INSERT fails after all (here: the engine refusing the
 * rows through a table constraint), retracted, then shown again once the
 * probe's resend is stored. Each train is shown once per storing.
 */
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LiveTrain } from '../../collector/index.js';
import type { TrainSample } from '../../protocol/index.js';
import type { LiveMessage } from '../../api/contract.js';
import { duplicateTrainIds } from '../../sql/index.js';
import { startTestServer, testTopology, waitFor, type TestServer } from '../helpers/stack.js';

const topo = testTopology(['alpha', 'beta', 'gamma'], '127.0.98');
let server: TestServer;
let seq = 0;

function sample(dst: string, trainId = `lp-${process.pid}-${++seq}`): TrainSample {
  return {
    trainId, dst, engine: 'stamp', startedAtUs: Date.now() * 1000 - 2e6, flow: 0, srcPort: 40000, dscp: 46,
    sent: 4, received: 4, lost: 0, duplicated: 0, reordered: 0, rttMinUs: 300, rttMedianUs: 310, rttP99Us: 320, rttMaxUs: 320, jitterUs: 5,
    rttsUs: [300, 305, 315, 320], synced: false, errorEstimateUs: 1000, fwdUs: [], revUs: [],
  };
}

async function ingest(centre: string, batchId: string, samples: unknown[]): Promise<{ status: number; body: Record<string, unknown> }> {
  const r = await fetch(`${server.url}/v1/ingest`, {
    method: 'POST',
    headers: { authorization: `Bearer ${topo.tokens[centre]}`, 'content-type': 'application/json' },
    body: JSON.stringify({ type: 'batch', batchId, createdAtUs: Date.now() * 1000, samples }),
  });
  return { status: r.status, body: (await r.json()) as Record<string, unknown> };
}

async function storedRows(src: string, trainIds: string[]): Promise<number> {
  const result = await server.store.client.query({
    query: 'SELECT count() AS n FROM latency_trains WHERE src = {src:String} AND train_id IN {ids:Array(String)}',
    query_params: { src, ids: trainIds }, format: 'JSONEachRow',
  });
  return Number((await result.json<{ n: number }>())[0]!.n);
}

/** A dashboard on /v1/live: every frame it receives, in order. */
async function liveClient(): Promise<{ frames: LiveMessage[]; close(): void }> {
  const ws = new WebSocket(`${server.url.replace(/^http/, 'ws')}/v1/live?access_token=${topo.operatorToken}`);
  const frames: LiveMessage[] = [];
  ws.on('message', (data) => frames.push(JSON.parse(String(data)) as LiveMessage));
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  await waitFor('the welcome', () => frames.some((f) => f.type === 'welcome'));
  return { frames, close: () => ws.close() };
}

/** The hub's view: trains published and retracted, by train id, with whether each came before its batch's reply. */
function watchHub(): { published: string[]; retracted: string[]; publishedBeforeReply: string[]; replied(): void; stop(): void } {
  let replied = false;
  const seen = { published: [] as string[], retracted: [] as string[], publishedBeforeReply: [] as string[] };
  const stop = server.hub.subscribe(
    (trains: readonly LiveTrain[]) => {
      for (const t of trains) {
        seen.published.push(t.trainId!);
        if (!replied) seen.publishedBeforeReply.push(t.trainId!);
      }
    },
    (trains: readonly LiveTrain[]) => seen.retracted.push(...trains.map((t) => t.trainId!)),
  );
  return { ...seen, replied: () => { replied = true; }, stop };
}

beforeAll(async () => {
  server = await startTestServer(topo.topology);
});

afterAll(async () => {
  await server?.stop();
});

describe('the live feed shows what is stored, as soon as it is known, once', () => {
  it('a batch is published once, by its ack; a replay, under its own id or another, publishes nothing', async () => {
    const hub = watchHub();
    try {
      const samples = [sample('beta'), sample('gamma')];
      const ids = samples.map((s) => s.trainId);
      const first = await ingest('alpha', `lp-fresh-${seq}`, samples);
      hub.replied();
      expect(first.body).toMatchObject({ type: 'ack', stored: 2 });
      // (That it is published before the INSERT finishes shows in the failing-INSERT case below: published, then retracted.)
      expect(hub.publishedBeforeReply).toEqual(ids);
      const replay = await ingest('alpha', `lp-fresh-${seq - 2}`, samples);
      expect(replay.body).toMatchObject({ type: 'ack' });
      // The same trains under another batch id: found stored by the lookup, not stored or shown again.
      const again = await ingest('alpha', `lp-other-id-${seq}`, samples);
      expect(again.body).toMatchObject({ type: 'ack' });
      expect(hub.published).toEqual(ids);
      expect(await storedRows('alpha', ids)).toBe(2);
    } finally {
      hub.stop();
    }
  });

  it('refused batches (bad sample, conflicting batch id) show nothing', async () => {
    const hub = watchHub();
    try {
      const good = sample('beta');
      const bad = { ...sample('gamma'), received: 5 };
      const refused = await ingest('beta', `lp-bad-${seq}`, [good, bad]);
      expect(refused.status).toBe(400);
      expect(refused.body).toMatchObject({ code: 'bad_message', field: 'samples[1].received' });
      const id = `lp-conflict-${seq}`;
      const stored = await ingest('beta', id, [sample('alpha')]);
      expect(stored.body).toMatchObject({ type: 'ack' });
      const conflicting = [sample('alpha'), sample('gamma')];
      const conflict = await ingest('beta', id, conflicting);
      expect(conflict.body).toMatchObject({ code: 'batch_conflict' });
      expect(hub.published).not.toContain(good.trainId);
      for (const s of conflicting) expect(hub.published).not.toContain(s.trainId);
      expect(hub.published).toHaveLength(1);
      expect(await storedRows('beta', [good.trainId, ...conflicting.map((s) => s.trainId)])).toBe(0);
    } finally {
      hub.stop();
    }
  });

  it('an INSERT the engine refuses is retracted on the feed; the resend, once stored, is shown again', async () => {
    const live = await liveClient();
    const hub = watchHub();
    // A constraint makes the engine refuse these rows at INSERT time, after validation and the lookups passed.
    await server.store.client.command({ query: "ALTER TABLE latency_trains ADD CONSTRAINT lp_no_gamma_from_gamma CHECK NOT (src = 'gamma' AND dst = 'alpha')" });
    const samples = [sample('alpha'), sample('beta')];
    const ids = samples.map((s) => s.trainId);
    const batchId = `lp-failing-${seq}`;
    try {
      const failed = await ingest('gamma', batchId, samples);
      expect(failed.status).toBe(503);
      expect(failed.body).toMatchObject({ code: 'store_unavailable', batchId });
      expect(hub.published).toEqual(ids);
      expect(hub.retracted).toEqual(ids);
      expect(await storedRows('gamma', ids)).toBe(0);
    } finally {
      await server.store.client.command({ query: 'ALTER TABLE latency_trains DROP CONSTRAINT lp_no_gamma_from_gamma' });
    }
    try {
      const resent = await ingest('gamma', batchId, samples);
      expect(resent.body).toMatchObject({ type: 'ack', stored: 2 });
      expect(hub.published).toEqual([...ids, ...ids]);
      expect(await storedRows('gamma', ids)).toBe(2);
      // The dashboard saw: the trains, their retraction, the trains again.
      const kinds = () => live.frames.filter((f) => f.type === 'trains' || f.type === 'retract')
        .filter((f) => 'trains' in f && f.trains.some((t) => t.src === 'gamma'))
        .map((f) => f.type);
      await waitFor('three frames about gamma on /v1/live', () => kinds().length >= 3);
      expect(kinds()).toEqual(['trains', 'retract', 'trains']);
      const retract = live.frames.find((f) => f.type === 'retract');
      expect(retract).toMatchObject({ type: 'retract', trains: [{ src: 'gamma', dst: 'alpha', engine: 'stamp', flow: 0 }, { src: 'gamma', dst: 'beta' }] });
      expect(await duplicateTrainIds(server.store.client)).toEqual([]);
    } finally {
      hub.stop();
      live.close();
    }
  });
});
