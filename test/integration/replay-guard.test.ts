/**
 * A batch replayed from a probe's spool long after it was stored (its ack
 * lost, the probe cut off for hours) must not be stored twice, even when its
 * deduplication token has left the tables' deduplication window. Here the
 * window is shrunk to one block so "hours of other batches" take two inserts.
 * The collector looks every batch's records up (for its own centre), so a
 * replay is stored once whatever its age; the control is a direct insert with
 * the same token, which the shrunk window no longer deduplicates.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toRow } from '../../collector/index.js';
import { type TrainSample } from '../../protocol/index.js';
import { duplicateTrainIds, insertTrains } from '../../sql/index.js';
import { startTestServer, testTopology, type TestServer, ingestFetch } from '../helpers/stack.js';

const topo = testTopology(['alpha', 'beta'], '127.0.74');
let server: TestServer;
let seq = 0;

function sample(startedAtUs: number): TrainSample {
  return {
    trainId: `replay-${process.pid}-${++seq}`, dst: 'beta', engine: 'stamp', startedAtUs, flow: 0, srcPort: 40000, dscp: 46,
    sent: 4, received: 4, lost: 0, duplicated: 0, reordered: 0, rttMinUs: 300, rttMedianUs: 310, rttP99Us: 320, rttMaxUs: 320, jitterUs: 5,
    rttsUs: [300, 305, 315, 320], synced: false, errorEstimateUs: 1000, fwdUs: [], revUs: [],
  };
}

/** As a probe sends a batch from its spool: createdAtUs is the time of sending, also on a replay. */
async function post(batchId: string, samples: TrainSample[]): Promise<void> {
  const createdAtUs = Date.now() * 1000;
  const response = await ingestFetch(`${server.url}/v1/ingest`, {
    method: 'POST',
    headers: { authorization: `Bearer ${topo.tokens.alpha}`, 'content-type': 'application/json' },
    body: JSON.stringify({ type: 'batch', batchId, createdAtUs, samples }),
  });
  expect(response.status, await response.clone().text()).toBe(200);
  expect(await response.json()).toMatchObject({ type: 'ack', batchId, stored: samples.length });
}

async function storedCopies(samples: TrainSample[]): Promise<number> {
  const result = await server.store.client.query({
    query: 'SELECT count() AS n FROM latency_trains WHERE train_id IN {ids:Array(String)}',
    query_params: { ids: samples.map((s) => s.trainId) },
    format: 'JSONEachRow',
  });
  return Number((await result.json<{ n: number }>())[0]!.n);
}

beforeAll(async () => {
  server = await startTestServer(topo.topology);
  for (const table of ['latency_trains', 'latency_1m', 'live_trains']) {
    await server.store.client.command({ query: `ALTER TABLE ${table} MODIFY SETTING non_replicated_deduplication_window = 1` });
  }
});

afterAll(async () => {
  await server?.stop();
});

describe('a batch replayed after its token left the deduplication window', () => {
  it('is stored once, old or fresh (looked up), while a direct insert shows the window is gone', async () => {
    const nowUs = Date.now() * 1000;
    const old = [sample(nowUs - 3 * 3600e6), sample(nowUs - 3 * 3600e6 + 1e6)];
    const fresh = [sample(nowUs - 2e6), sample(nowUs - 1e6)];
    await post('replay-old', old);
    await post('replay-fresh', fresh);
    await post('replay-other-1', [sample(nowUs)]);
    await post('replay-other-2', [sample(nowUs)]);
    // Both tokens are now out of the one-block window.
    await post('replay-fresh', fresh);
    await post('replay-old', old);
    expect(await storedCopies(fresh)).toBe(2); // looked up: nothing stored again
    expect(await storedCopies(old)).toBe(2);
    expect(await duplicateTrainIds(server.store.client)).toEqual([]);
    // The control: the same rows inserted twice with one token, two blocks apart, are both kept.
    const control = [sample(nowUs - 5e6)];
    const rows = control.map((s) => toRow('alpha', 'control', s));
    await insertTrains(server.store.client, rows, 'alpha/control');
    await insertTrains(server.store.client, [toRow('alpha', 'other', sample(nowUs))], 'alpha/other');
    await insertTrains(server.store.client, rows, 'alpha/control');
    expect(await storedCopies(control)).toBe(2);
  });
});
