import { describe, expect, it } from 'vitest';
import { StoreQueue, type QueuedBatch } from '../../collector/store-queue.js';

interface Batch extends QueuedBatch {
  name: string;
}

/** A queue whose store turns the test finishes by hand: `groups` lists each turn's batches as it starts. */
function queue(options: { concurrency: number; maxWaitS: number; maxGroupTrains?: number; maxGroupBytes?: number; now?: () => number }) {
  const groups: string[][] = [];
  const finishers: (() => void)[] = [];
  const q = new StoreQueue<Batch>(
    { maxGroupTrains: 10_000, maxGroupBytes: 1e9, ...options },
    (group) => {
      groups.push(group.map((b) => b.name));
      return new Promise<void>((resolve) => finishers.push(resolve));
    },
  );
  /** Finishes the `i`th turn started (0: the first). */
  const finish = (i: number) => finishers[i]!();
  /** Admits and enqueues a batch, as the ingest does; returns the refusal, or null once queued. */
  const offer = (name: string, trains: number, bytes = 0) => {
    const refused = q.admit(trains);
    if (!refused) q.enqueue({ name, trains, bytes });
    return refused;
  };
  /** Queues a batch without asking admission (for tests of how groups are formed). */
  const enqueue = (name: string, trains: number, bytes = 0) => q.enqueue({ name, trains, bytes });
  return { q, groups, finish, offer, enqueue };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

describe('StoreQueue (group commit)', () => {
  it('stores at most `concurrency` groups at once; batches ready meanwhile go together in the next turn, in arrival order', async () => {
    const { groups, finish, offer } = queue({ concurrency: 2, maxWaitS: 1 });
    for (const name of ['a', 'b', 'c', 'd', 'e']) expect(offer(name, 10)).toBeNull();
    expect(groups).toEqual([['a'], ['b']]);
    finish(1);
    await settle();
    expect(groups).toEqual([['a'], ['b'], ['c', 'd', 'e']]);
    expect(offer('f', 10)).toBeNull();
    finish(0);
    await settle();
    expect(groups).toEqual([['a'], ['b'], ['c', 'd', 'e'], ['f']]);
    finish(2);
    finish(3);
    await settle();
  });

  it('bounds a group by records and by bytes; a batch larger than either alone is stored alone', async () => {
    const { groups, finish, enqueue } = queue({ concurrency: 1, maxWaitS: 1000, maxGroupTrains: 100, maxGroupBytes: 1000 });
    enqueue('running', 1);
    enqueue('a', 60);
    enqueue('b', 60); // a + b: 120 records, over 100
    enqueue('c', 10, 900);
    enqueue('d', 10, 200); // b + c + d: 1,100 bytes, over 1,000
    enqueue('huge', 500);
    enqueue('e', 1);
    for (let turn = 0; turn < 6; turn++) {
      finish(turn);
      await settle();
    }
    expect(groups).toEqual([['running'], ['a'], ['b', 'c'], ['d'], ['huge'], ['e']]);
  });

  it('before any rate is measured, refuses once a group\'s worth of records waits', async () => {
    const { groups, finish, offer } = queue({ concurrency: 1, maxWaitS: 1, maxGroupTrains: 100 });
    expect(offer('running', 50)).toBeNull();
    expect(offer('waits', 60)).toBeNull();
    expect(offer('fits', 40)).toBeNull();
    expect(offer('over', 1)).toEqual({ expectedS: null });
    finish(0);
    await settle();
    expect(groups).toEqual([['running'], ['waits', 'fits']]);
    finish(1);
    await settle();
  });

  it('measures the rate in records, only while saturated, then refuses a batch expected to take longer than maxWaitS', async () => {
    let clock = 0;
    const { q, finish, offer } = queue({ concurrency: 1, maxWaitS: 2.5, now: () => clock });
    // Unsaturated completions (nothing waiting) teach nothing.
    offer('alone', 100);
    clock += 5000;
    finish(0);
    await settle();
    expect(q.measuredRate()).toBeNull();
    // Saturated: a turn storing, batches waiting; 1,000 records complete per second of the test's clock.
    offer('s1', 1000);
    offer('s2', 1000);
    clock += 1000;
    finish(1); // first saturated completion: opens the window
    await settle();
    offer('s3', 1000);
    clock += 1000;
    finish(2); // s2 done, s3 waiting: 1,000 records in 1 s
    await settle();
    expect(q.measuredRate()).toBeCloseTo(1000, 6);
    // s3 storing (1,000 records): a batch of 1,000 is expected to be done in 2 s and waits; then one of 1,000 more (3 s) is refused.
    expect(offer('fits', 1000)).toBeNull();
    expect(offer('refused', 1000)).toEqual({ expectedS: 3 });
    // Before a batch is read it is judged by the size of recent ones (an average drawn towards 1,000): refused too.
    expect(q.overloaded()?.expectedS).toBeGreaterThan(2.5);
    finish(3);
    await settle();
    finish(4);
    await settle();
    expect(q.depth()).toEqual({ waiting: 0, storing: 0 });
  });

  it('says it is overloaded, before a batch is read, when one the size of recent batches would be refused', async () => {
    let clock = 0;
    const { q, finish, offer } = queue({ concurrency: 1, maxWaitS: 2.5, maxGroupTrains: 900, now: () => clock });
    expect(q.overloaded()).toBeNull();
    offer('a', 500);
    // One storing, none waiting: room.
    expect(q.overloaded()).toBeNull();
    offer('b', 500);
    // Unmeasured: 500 waiting, another of 500 would exceed a group's worth.
    expect(q.overloaded()).toEqual({ expectedS: null });
    expect(offer('c', 500)).toEqual({ expectedS: null });
    // Measured at saturation: 500 records per second of the test's clock.
    clock += 1000;
    finish(0);
    await settle();
    offer('c', 500);
    clock += 1000;
    finish(1);
    await settle();
    expect(q.measuredRate()).toBeCloseTo(500, 6);
    // 500 storing, batches of 500 lately: another would be done in 2 s, within 2.5 s.
    expect(q.overloaded()).toBeNull();
    offer('d', 500);
    // 1,000 admitted: the next one of 500 would take 3 s.
    expect(q.overloaded()).toEqual({ expectedS: 3 });
    expect(offer('e', 500)).toEqual({ expectedS: 3 });
    finish(2);
    await settle();
    finish(3);
    await settle();
    expect(q.overloaded()).toBeNull();
  });

  it('forgets a rate measured during a burst once the queue has stood empty, so later light traffic is not refused on it', async () => {
    let clock = 0;
    const { q, finish, offer, groups } = queue({ concurrency: 1, maxWaitS: 2, now: () => clock });
    // A slow burst: 100 records per second of the test's clock.
    offer('b1', 100);
    offer('b2', 100);
    clock += 1000;
    finish(0);
    await settle();
    offer('b3', 100);
    clock += 1000;
    finish(1);
    await settle();
    expect(groups).toEqual([['b1'], ['b2'], ['b3']]);
    expect(q.measuredRate()).toBeCloseTo(100, 6);
    // Traffic at once after it is judged by that rate: b3 storing, light waiting, one of 300 more would take 5 s.
    expect(offer('light', 100)).toBeNull();
    expect(offer('heavy', 300)).toEqual({ expectedS: 5 });
    finish(2);
    await settle();
    finish(3);
    await settle();
    // The queue has stood unsaturated for longer than a rate is kept: it no longer judges by it.
    clock += 5000;
    expect(offer('later', 100)).toBeNull();
    expect(offer('heavy again', 300)).toBeNull();
    expect(q.measuredRate()).toBeNull();
    finish(4);
    await settle();
    finish(5);
    await settle();
    expect(groups.slice(4)).toEqual([['later'], ['heavy again']]);
  });
});
