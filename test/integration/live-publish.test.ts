/**
 * When the live feed shows a batch's trains, against a running server and a
 * real /v1/live WebSocket: as soon as the batch is validated (before its
 * lookup and INSERT), never for a batch refused at validation, and taken
 * back (retracted) when it is refused later (a conflicting batch id, found
 * by the lookup) or its storing fails for real (the engine refusing the rows
 * or the ledger row through a table constraint); the probe's resend is then
 * shown once, and a replay of stored trains not again. Frames are counted on
 * the WebSocket, train by train.
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

/** Each sample starts at its own microsecond, so its frames on /v1/live (which carry no train id) can be told apart. */
function sample(dst: string, trainId = `lp-${process.pid}-${++seq}`): TrainSample {
  return {
    trainId, dst, engine: 'stamp', startedAtUs: Date.now() * 1000 - 2e6 + seq, flow: 0, srcPort: 40000, dscp: 46,
    sent: 4, received: 4, lost: 0, duplicated: 0, reordered: 0, rttMinUs: 300, rttMedianUs: 310, rttP99Us: 320, rttMaxUs: 320, jitterUs: 5,
    rttsUs: [300, 305, 315, 320], synced: false, errorEstimateUs: 1000, fwdUs: [], revUs: [],
  };
}

async function ingest(centre: string, batchId: string, samples: unknown[], { createdAt = true } = {}): Promise<{ status: number; body: Record<string, unknown> }> {
  const r = await fetch(`${server.url}/v1/ingest`, {
    method: 'POST',
    headers: { authorization: `Bearer ${topo.tokens[centre]}`, 'content-type': 'application/json' },
    body: JSON.stringify({ type: 'batch', batchId, ...(createdAt ? { createdAtUs: Date.now() * 1000 } : {}), samples }),
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

const trainKey = (src: string, dst: string, startedAtUs: number) => `${src}>${dst}@${startedAtUs}`;

interface LiveClient {
  frames: LiveMessage[];
  /**
   * What the feed said about these samples of `src`, frame by frame: 'trains' or 'retract' and how many of
   * them the frame named (frames naming none of them left out).
   */
  about(src: string, samples: readonly TrainSample[]): string[];
  /**
   * Waits until everything published before now has reached this client: a fresh train is stored and waited
   * for on the feed (one socket keeps the order; whatever a batch publishes or retracts precedes its reply).
   */
  caughtUp(): Promise<void>;
  close(): void;
}

/** A dashboard on /v1/live: every frame it receives, in order. */
async function liveClient(): Promise<LiveClient> {
  const ws = new WebSocket(`${server.url.replace(/^http/, 'ws')}/v1/live?access_token=${topo.operatorToken}`);
  const frames: LiveMessage[] = [];
  ws.on('message', (data) => frames.push(JSON.parse(String(data)) as LiveMessage));
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  await waitFor('the welcome', () => frames.some((f) => f.type === 'welcome'));
  const about = (src: string, samples: readonly TrainSample[]) => {
    const keys = new Set(samples.map((s) => trainKey(src, s.dst, s.startedAtUs)));
    const said: string[] = [];
    for (const f of frames) {
      if (f.type !== 'trains' && f.type !== 'retract') continue;
      const n = f.trains.filter((t) => keys.has(trainKey(t.src, t.dst, Math.round(t.t * 1e6)))).length;
      if (n > 0) said.push(`${f.type}:${n}`);
    }
    return said;
  };
  return {
    frames,
    about,
    async caughtUp() {
      const marker = sample('alpha');
      expect((await ingest('beta', `lp-marker-${seq}`, [marker])).body).toMatchObject({ type: 'ack' });
      await waitFor('the marker train on /v1/live', () => about('beta', [marker]).length > 0);
    },
    close: () => ws.close(),
  };
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

describe('the live feed shows a batch once it is validated, takes back what is not stored, and shows each train once', () => {
  it('a batch is shown once, before its ack; a replay, under its own id or another, shows nothing more', async () => {
    const live = await liveClient();
    const hub = watchHub();
    try {
      const samples = [sample('beta'), sample('gamma')];
      const ids = samples.map((s) => s.trainId);
      const batchId = `lp-fresh-${seq}`;
      const first = await ingest('alpha', batchId, samples);
      hub.replied();
      expect(first.body).toMatchObject({ type: 'ack', stored: 2 });
      expect(hub.publishedBeforeReply).toEqual(ids);
      const replay = await ingest('alpha', batchId, samples);
      expect(replay.body).toMatchObject({ type: 'ack' });
      // The same trains under another batch id: found stored by the lookup, not stored or shown again.
      const again = await ingest('alpha', `lp-other-id-${seq}`, samples);
      expect(again.body).toMatchObject({ type: 'ack' });
      await live.caughtUp();
      expect(live.about('alpha', samples)).toEqual(['trains:2']);
      expect(hub.published.filter((id) => ids.includes(id))).toEqual(ids);
      expect(hub.retracted).toEqual([]);
      expect(await storedRows('alpha', ids)).toBe(2);
    } finally {
      hub.stop();
      live.close();
    }
  });

  it('a batch refused at validation shows nothing; one refused by the lookup (a conflicting batch id) is shown, then retracted; its resend under a new id is shown once', async () => {
    const live = await liveClient();
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
      // Shown at validation (before the lookup found the conflict: the only way it could be shown at all), then taken back.
      expect(hub.published).toHaveLength(3);
      expect(hub.retracted).toEqual(conflicting.map((s) => s.trainId));
      expect(await storedRows('beta', [good.trainId, ...conflicting.map((s) => s.trainId)])).toBe(0);
      // Sent again under a new id, as the refusal asks: stored and shown once more.
      expect((await ingest('beta', `${id}-new`, conflicting)).body).toMatchObject({ type: 'ack', stored: 2 });
      await live.caughtUp();
      expect(live.about('beta', [good])).toEqual([]);
      expect(live.about('beta', conflicting)).toEqual(['trains:2', 'retract:2', 'trains:2']);
      expect(await storedRows('beta', conflicting.map((s) => s.trainId))).toBe(2);
    } finally {
      hub.stop();
      live.close();
    }
  });

  it('an INSERT the engine refuses is retracted on the feed; the resend, once stored, is shown again, and a replay after its ack not', async () => {
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
      // The ack was lost, say: the probe sends the batch once more.
      expect((await ingest('gamma', batchId, samples)).body).toMatchObject({ type: 'ack', stored: 2 });
      expect(hub.published).toEqual([...ids, ...ids]);
      expect(await storedRows('gamma', ids)).toBe(2);
      // The dashboard saw: the trains, their retraction, the trains again; nothing for the replay.
      await live.caughtUp();
      expect(live.about('gamma', samples)).toEqual(['trains:2', 'retract:2', 'trains:2']);
      const retract = live.frames.find((f) => f.type === 'retract');
      expect(retract).toMatchObject({ type: 'retract', trains: [{ src: 'gamma', dst: 'alpha', engine: 'stamp', flow: 0 }, { src: 'gamma', dst: 'beta' }] });
      expect(await duplicateTrainIds(server.store.client)).toEqual([]);
    } finally {
      hub.stop();
      live.close();
    }
  });

  it('trains stored whose batch was not acked (the ledger INSERT refused) are retracted; the resend finds them stored and shows them once, a resend without createdAtUs not at all', async () => {
    const live = await liveClient();
    const hub = watchHub();
    const samples = [sample('beta'), sample('gamma')];
    const ids = samples.map((s) => s.trainId);
    const batchId = `lp-ledger-${seq}`;
    try {
      await server.store.client.command({ query: "ALTER TABLE batch_ledger ADD CONSTRAINT lp_no_alpha_ledger CHECK centre != 'alpha'" });
      try {
        expect((await ingest('alpha', batchId, samples)).body).toMatchObject({ code: 'store_unavailable', batchId });
      } finally {
        await server.store.client.command({ query: 'ALTER TABLE batch_ledger DROP CONSTRAINT lp_no_alpha_ledger' });
      }
      expect(await storedRows('alpha', ids)).toBe(2);
      expect(hub.retracted).toEqual(ids);
      // Without createdAtUs the server cannot tell how far the probe's clock runs ahead, so it cannot vouch it never showed
      // these trains: they wait for the lookup, which finds them stored, and are not shown.
      expect((await ingest('alpha', `${batchId}-undated`, samples, { createdAt: false })).body).toMatchObject({ type: 'ack', stored: 2 });
      await live.caughtUp();
      expect(live.about('alpha', samples)).toEqual(['trains:2', 'retract:2']);
      // With it: shown at validation, found stored by the lookup, kept (not stored again, not retracted).
      expect((await ingest('alpha', batchId, samples)).body).toMatchObject({ type: 'ack', stored: 2 });
      await live.caughtUp();
      expect(live.about('alpha', samples)).toEqual(['trains:2', 'retract:2', 'trains:2']);
      expect(hub.retracted).toEqual(ids);
      expect(await storedRows('alpha', ids)).toBe(2);
    } finally {
      hub.stop();
      live.close();
    }
  });

  it('a batch without createdAtUs is shown once its lookup says what will be stored, still before its ack', async () => {
    const live = await liveClient();
    const hub = watchHub();
    try {
      const samples = [sample('alpha'), sample('gamma')];
      const reply = await ingest('beta', `lp-undated-${seq}`, samples, { createdAt: false });
      hub.replied();
      expect(reply.body).toMatchObject({ type: 'ack', stored: 2 });
      expect(hub.publishedBeforeReply).toEqual(samples.map((s) => s.trainId));
      await live.caughtUp();
      expect(live.about('beta', samples)).toEqual(['trains:2']);
    } finally {
      hub.stop();
      live.close();
    }
  });
});

describe('the /v1/live send path', () => {
  /** citymesh_live_skipped_messages: frames skipped for clients too far behind. */
  async function skipped(): Promise<number> {
    const metric = await server.registry.getSingleMetric('citymesh_live_skipped_messages')!.get();
    return metric.values[0]?.value ?? 0;
  }

  it('a client that stops reading has frames skipped; another client meanwhile receives every frame', async () => {
    const url = `${server.url.replace(/^http/, 'ws')}/v1/live?access_token=${topo.operatorToken}`;
    const open = async () => {
      const ws = new WebSocket(url);
      let trainsFrames = 0;
      ws.on('message', (data: Buffer) => {
        if (data.subarray(0, 16).toString() === '{"type":"trains"') trainsFrames++;
      });
      await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
      return { ws, frames: () => trainsFrames };
    };
    const slow = await open();
    const fast = await open();
    // The slow one stops reading: the kernel's buffers fill, then the server's queue for it.
    (slow.ws as unknown as { _socket: { pause(): void } })._socket.pause();
    const before = await skipped();
    let published = 0;
    try {
      // Large frames (2,000 trains, about half a MiB each), published through the real hub, until the server skips
      // one for the slow client (bounded: at most 400 frames).
      while ((await skipped()) === before && published < 400) {
        const trains = Array.from({ length: 2000 }, (_, i) => ({
          trainId: `lp-send-${process.pid}-${published}-${i}`, src: 'alpha', dst: 'beta', engine: 'stamp' as const, flow: i % 8,
          startedAtUs: Date.now() * 1000, sent: 4, received: 4, rttMinUs: 300, rttMedianUs: 310, rttP99Us: 320, rttMaxUs: 320, jitterUs: 5,
        }));
        expect(server.hub.publish(trains)).toHaveLength(2000);
        published++;
        await new Promise((resolve) => setImmediate(resolve));
      }
      expect(await skipped()).toBeGreaterThan(before);
      await waitFor('every frame at the client that reads', () => fast.frames() === published);
      expect(slow.frames()).toBeLessThan(published);
    } finally {
      slow.ws.terminate();
      fast.ws.close();
    }
  });
});
