/**
 * A test waiting for its row asks the store for it, so a row another server
 * stored (the probe moved there) ends the test here as the row says. The
 * store is the real embedded engine; its rows are written as the ingest of
 * another server writes them (insertThroughput, the probe's batch id), and
 * an unreadable store is the real one suspended (Store.suspend, as in the
 * fault drills). The probe's side is played through the coordinator's
 * inputs, as in throughput-done.test.ts; servers and probes for real are in
 * test/integration/throughput-servers.test.ts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { ROW_CHECK_MS, ROW_WAIT_MS, ThroughputCoordinator, type StoredResult } from '../../collector/throughput-coordinator.js';
import type { TestStatus } from '../../collector/index.js';
import { formatDateTime64, insertThroughput, migrate, openStore, throughputTestById, type Store, type ThroughputRow } from '../../sql/index.js';
import { capacityOverrides, quietLogger, testTopology } from '../helpers/stack.js';

const topo = testTopology(['alfa', 'bravo'], '127.0.16', capacityOverrides(39_998));
/** The coordinator's timers only: the store's I/O runs on real ones. */
const TIMERS = ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'] as const;

let dir: string;
let store: Store;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'citymesh-row-lookup-'));
  store = await openStore({ dataDir: join(dir, 'data') });
  await migrate(store.client);
});

afterAll(async () => {
  await store?.close();
  if (dir) rmSync(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
});

afterEach(async () => {
  vi.useRealTimers();
  await store.resume();
});

function coordinator() {
  const failuresStored: string[] = [];
  const lookUp = async (t: TestStatus): Promise<StoredResult | null> =>
    throughputTestById(store.client, t.client, t.server, t.testId, Date.parse(t.startedAt!) * 1000 - 3600e6);
  const c = new ThroughputCoordinator(topo.topology, () => true, quietLogger, (ended) => void failuresStored.push(`${ended.testId} ${ended.state}`), undefined, lookUp);
  return { c, failuresStored };
}

/** The probe's row, stored as another server's ingest stores it. */
async function storeRowElsewhere(test: TestStatus, result: Pick<ThroughputRow, 'ok' | 'error' | 'forward_bps' | 'reverse_bps'>): Promise<void> {
  const row: ThroughputRow = {
    ts: formatDateTime64(Date.parse(test.startedAt!) * 1000 + 40_000).slice(0, 23), src: test.client, dst: test.server, test_id: test.testId,
    trigger: test.trigger, engine: 'native', engine_version: '', direction: 'bidir', streams: 2, seconds: 1,
    retransmits: null, cpu_local_pct: null, cpu_remote_pct: null, batch_id: `batch-${test.testId}`, ...result,
  };
  await insertThroughput(store.client, [row], `alfa/batch-${test.testId}`);
}

/**
 * Waits (real time: the store's I/O) for the test to end, the coordinator's
 * clock held where the test put it (expect.poll, unlike vi.waitFor, does not
 * advance fake timers).
 */
async function untilEnded(c: ThroughputCoordinator, test: TestStatus): Promise<void> {
  await expect.poll(() => c.status(test.testId)!.state, { timeout: 30_000 }).not.toBe('running');
}

async function rowsOf(testId: string): Promise<number> {
  const result = await store.client.query({ query: 'SELECT count() AS n FROM throughput_tests WHERE test_id = {id:String}', query_params: { id: testId }, format: 'JSONEachRow' });
  return Number((await result.json<{ n: string }>())[0]!.n);
}

describe('a test waiting for its row finds it in the store', () => {
  it('is done with the stored figures when the row came in through another server, on the next status read', async () => {
    const { c, failuresStored } = coordinator();
    const test = c.request('alfa', 'bravo', 'operator');
    c.done('alfa', { type: 'throughput_done', testId: test.testId, ok: true, forwardBps: 2e9, reverseBps: 1e9 });
    expect((await c.statusNow(test.testId))!.state).toBe('running'); // nothing stored anywhere yet
    await storeRowElsewhere(test, { ok: true, error: '', forward_bps: 2.5e9, reverse_bps: 1.5e9 });
    expect(await c.statusNow(test.testId)).toMatchObject({ state: 'done', error: null, forwardBps: 2.5e9, reverseBps: 1.5e9 });
    // This server's own ingest storing it as well (a replay) changes nothing, and nothing was written here.
    c.stored('alfa', [test.testId]);
    expect(c.status(test.testId)!.state).toBe('done');
    expect(failuresStored).toEqual([]);
    expect(await rowsOf(test.testId)).toBe(1);
    await c.close();
  });

  it('fails as the stored row says when the probe aborted the test and went away before reporting', async () => {
    vi.useFakeTimers({ toFake: [...TIMERS] });
    const { c, failuresStored } = coordinator();
    const test = c.request('alfa', 'bravo', 'operator');
    c.disconnected('alfa');
    await storeRowElsewhere(test, { ok: false, error: 'native: connection reset by peer', forward_bps: null, reverse_bps: null });
    // No status read: the periodic check finds it.
    await vi.advanceTimersByTimeAsync(ROW_CHECK_MS);
    await untilEnded(c, test);
    expect(c.status(test.testId)).toMatchObject({ state: 'failed', error: 'native: connection reset by peer', forwardBps: null });
    expect(failuresStored).toEqual([]);
    await c.close();
  });

  it('ends a silent connected probe\'s test as its stored row says (its report lost), storing no failure row beside it', async () => {
    vi.useFakeTimers({ toFake: [...TIMERS] });
    const { c, failuresStored } = coordinator();
    const test = c.request('alfa', 'bravo', 'operator');
    await storeRowElsewhere(test, { ok: true, error: '', forward_bps: 3e9, reverse_bps: null });
    await vi.advanceTimersByTimeAsync((1 + 1) * 1000 + 30_000); // the probe-silence guard
    await untilEnded(c, test);
    expect(c.status(test.testId)).toMatchObject({ state: 'done', forwardBps: 3e9, reverseBps: null });
    expect(failuresStored).toEqual([]);
    await c.close();
  });

  it('does not fail a test while the store cannot be read, and says so if it still cannot when the wait ends', async () => {
    vi.useFakeTimers({ toFake: [...TIMERS] });
    const { c, failuresStored } = coordinator();
    const test = c.request('alfa', 'bravo', 'operator');
    c.done('alfa', { type: 'throughput_done', testId: test.testId, ok: true, forwardBps: 2e9, reverseBps: 1e9 });
    await store.suspend();
    for (let i = 0; i < 3; i++) {
      await vi.advanceTimersByTimeAsync(ROW_CHECK_MS);
      expect((await c.statusNow(test.testId))!.state).toBe('running');
    }
    await vi.advanceTimersByTimeAsync(ROW_WAIT_MS - 3 * ROW_CHECK_MS);
    await untilEnded(c, test);
    expect(c.status(test.testId)).toMatchObject({ state: 'failed', forwardBps: null });
    expect(c.status(test.testId)!.error).toMatch(/^the probe reported a result, and whether its row was stored is unknown: the store could not be read \(.+\)$/);
    expect(failuresStored).toEqual([]);
    await c.close();
  });

  it('finds the row once the store is readable again before the wait ends', async () => {
    const { c } = coordinator();
    const test = c.request('alfa', 'bravo', 'operator');
    c.done('alfa', { type: 'throughput_done', testId: test.testId, ok: true, forwardBps: 2e9, reverseBps: 1e9 });
    await storeRowElsewhere(test, { ok: true, error: '', forward_bps: 2e9, reverse_bps: 1e9 });
    await store.suspend();
    expect((await c.statusNow(test.testId))!.state).toBe('running');
    await store.resume();
    expect(await c.statusNow(test.testId)).toMatchObject({ state: 'done', forwardBps: 2e9, reverseBps: 1e9 });
    await c.close();
  });
});
