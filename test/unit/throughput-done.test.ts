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
    expect(c.status(reported.testId)!.state).toBe('running');
    expect(failuresStored).toEqual([]);
    c.stored('alfa', [reported.testId]); // the probe reconnected and sent its batch
    expect(c.status(reported.testId)!.state).toBe('done');
    // A test not yet reported fails with the disconnect, shown once that failure is stored.
    const unreported = c.request('alfa', 'bravo', 'operator');
    c.disconnected('bravo');
    expect(c.status(unreported.testId)!.state).toBe('running');
    await storeFailures();
    expect(failuresStored).toEqual([`${unreported.testId} failed`]);
    expect(c.status(unreported.testId)).toMatchObject({ state: 'failed', error: 'probe "bravo" disconnected during the test' });
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
