/**
 * A throughput test is `done` only once its row is stored: the probe's
 * report (throughput_done) comes before the batch carrying the row, so the
 * coordinator holds the report until the collector says the row is stored.
 * The probe end is played here through the coordinator's own inputs (a
 * sender that records what the probe was asked, then done/stored as the
 * collector calls them); the real probe and collector do this in
 * test/integration/capacity.test.ts.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ROW_WAIT_MS, ThroughputCoordinator } from '../../collector/throughput-coordinator.js';
import type { ThroughputRun } from '../../protocol/index.js';
import type { TestStatus } from '../../collector/index.js';
import { capacityOverrides, quietLogger, testTopology } from '../helpers/stack.js';

const topo = testTopology(['alfa', 'bravo'], '127.0.16', capacityOverrides(39_999));

/** The failure rows the server stores are held until `storeFailures()`, as a slow INSERT would hold them. */
function coordinator(connected = true) {
  const asked: ThroughputRun[] = [];
  const failuresStored: string[] = [];
  const waiting: (() => void)[] = [];
  const sink = (ended: TestStatus) =>
    new Promise<void>((resolve) => waiting.push(() => (failuresStored.push(`${ended.testId} ${ended.state}`), resolve())));
  const c = new ThroughputCoordinator(topo.topology, (_centre, message) => (asked.push(message), connected), quietLogger, sink);
  /** Completes the held INSERTs, and lets the coordinator see that. */
  const storeFailures = async () => {
    for (const store of waiting.splice(0)) store();
    await new Promise((resolve) => setImmediate(resolve));
  };
  return { c, asked, failuresStored, storeFailures };
}

const result = { ok: true, forwardBps: 2e9, reverseBps: 1e9 };
/** The coordinator's timers only: storeFailures() lets the held INSERTs settle on a real setImmediate. */
const TIMERS = ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'] as const;

afterEach(() => {
  vi.useRealTimers();
});

describe('throughput test done once stored', () => {
  it('stays running after the probe reports, until the batch with its row is stored', async () => {
    const { c, asked } = coordinator();
    const test = c.request('alfa', 'bravo', 'operator');
    expect(asked.map((m) => m.testId)).toEqual([test.testId]);
    c.done('alfa', { type: 'throughput_done', testId: test.testId, ...result });
    expect(c.status(test.testId)).toMatchObject({ state: 'running', forwardBps: null, finishedAt: null });
    c.stored('bravo', [test.testId]); // another centre's batch naming the id does not count
    expect(c.status(test.testId)!.state).toBe('running');
    c.stored('alfa', [test.testId]);
    expect(c.status(test.testId)).toMatchObject({ state: 'done', error: null, forwardBps: 2e9, reverseBps: 1e9 });
    await c.close();
  });

  it('is done at the report when the row was stored first', async () => {
    const { c } = coordinator();
    const test = c.request('alfa', 'bravo', 'operator');
    c.stored('alfa', [test.testId]);
    expect(c.status(test.testId)!.state).toBe('running'); // a row alone is not the probe's report
    c.done('alfa', { type: 'throughput_done', testId: test.testId, ok: false, error: 'connection refused' });
    expect(c.status(test.testId)).toMatchObject({ state: 'failed', error: 'connection refused' });
    await c.close();
  });

  it('fails a reported test whose row never comes, without storing a second row', async () => {
    vi.useFakeTimers();
    const { c, failuresStored } = coordinator();
    const test = c.request('alfa', 'bravo', 'operator');
    c.done('alfa', { type: 'throughput_done', testId: test.testId, ...result });
    vi.advanceTimersByTime(ROW_WAIT_MS - 1);
    expect(c.status(test.testId)!.state).toBe('running');
    vi.advanceTimersByTime(1);
    expect(c.status(test.testId)).toMatchObject({ state: 'failed', error: expect.stringMatching(/row was not stored within 60 s/) });
    expect(failuresStored).toEqual([]);
    // The link is free again: the next request is a new test.
    expect(c.request('alfa', 'bravo', 'operator').testId).not.toBe(test.testId);
    await c.close();
  });

  it('waits for the row of a reported test when its probe disconnects, storing no failure row beside it', async () => {
    const { c, failuresStored, storeFailures } = coordinator();
    const reported = c.request('alfa', 'bravo', 'operator');
    c.done('alfa', { type: 'throughput_done', testId: reported.testId, ...result });
    c.disconnected('alfa');
    await storeFailures();
    expect(c.status(reported.testId)!.state).toBe('running');
    expect(failuresStored).toEqual([]);
    c.stored('alfa', [reported.testId]); // the probe reconnected and sent its batch
    expect(c.status(reported.testId)!.state).toBe('done');
    await c.close();
  });

  it('keeps a test whose probe disconnects before reporting: it runs on, and its row and report may still come', async () => {
    const { c, failuresStored, storeFailures } = coordinator();
    const test = c.request('alfa', 'bravo', 'operator');
    c.disconnected('alfa');
    c.disconnected('bravo'); // the server end going away changes nothing either
    await storeFailures();
    expect(c.status(test.testId)).toMatchObject({ state: 'running', error: null });
    expect(failuresStored).toEqual([]);
    // The link may still be loaded: it is not tested again meanwhile.
    expect(c.request('bravo', 'alfa', 'operator').testId).toBe(test.testId);
    // The probe came back to this server: its batch and then its report end the test as reported.
    c.stored('alfa', [test.testId]);
    c.done('alfa', { type: 'throughput_done', testId: test.testId, ok: false, error: 'iperf3: connection reset by peer' });
    expect(c.status(test.testId)).toMatchObject({ state: 'failed', error: 'iperf3: connection reset by peer' });
    expect(failuresStored).toEqual([]);
    await c.close();
  });

  it('fails a test whose probe went away and whose row never comes, after its guard and the row wait, storing no failure row', async () => {
    vi.useFakeTimers({ toFake: [...TIMERS] });
    const { c, failuresStored, storeFailures } = coordinator();
    const test = c.request('alfa', 'bravo', 'operator');
    c.disconnected('alfa');
    const guardMs = (1 + 1) * 1000 + 30_000; // seconds + omit_seconds of capacityOverrides, and the guard's slack
    vi.advanceTimersByTime(guardMs + ROW_WAIT_MS - 1);
    expect(c.status(test.testId)!.state).toBe('running');
    vi.advanceTimersByTime(1);
    await storeFailures();
    expect(c.status(test.testId)).toMatchObject({
      state: 'failed', error: 'probe "alfa" disconnected during the test, but its row was not stored within 60 s',
    });
    expect(failuresStored).toEqual([]);
    expect(c.request('alfa', 'bravo', 'operator').testId).not.toBe(test.testId);
    await c.close();
  });

  it('expires a connected probe that stays silent, storing that failure', async () => {
    vi.useFakeTimers({ toFake: [...TIMERS] });
    const { c, failuresStored, storeFailures } = coordinator();
    const test = c.request('alfa', 'bravo', 'operator');
    vi.advanceTimersByTime((1 + 1) * 1000 + 30_000);
    await storeFailures();
    expect(failuresStored).toEqual([`${test.testId} expired`]);
    expect(c.status(test.testId)).toMatchObject({ state: 'expired', error: 'no result within 32 s' });
    await c.close();
  });

  it('shows a test of an absent probe failed once its failure row is stored', async () => {
    const { c, failuresStored, storeFailures } = coordinator(false);
    const test = c.request('alfa', 'bravo', 'operator');
    expect(c.status(test.testId)).toMatchObject({ state: 'queued', finishedAt: null });
    await storeFailures();
    expect(failuresStored).toEqual([`${test.testId} failed`]);
    expect(c.status(test.testId)).toMatchObject({ state: 'failed', error: 'probe "alfa" is not connected' });
    await c.close();
  });
});
