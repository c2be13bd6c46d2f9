import { afterEach, describe, expect, it, vi } from 'vitest';
import { StoreQueue, type QueuedBatch } from '../../collector/store-queue.js';

interface Batch extends QueuedBatch {
  name: string;
}

interface QueueOptions { concurrency: number; maxWaitS: number; maxGroupTrains?: number; maxGroupBytes?: number; minTurnIntervalMs?: number; now?: () => number }

/**
 * A queue whose stages the test finishes by hand: `lookups` and `inserts` list each group as its stage starts.
 * `autoLookUp`: lookups keep every batch and finish at once (for tests of admission and rate).
 */
function queue(options: QueueOptions, autoLookUp = false) {
  const lookups: string[][] = [];
  const inserts: string[][] = [];
  const lookupDone: ((kept: Batch[]) => void)[] = [];
  const lookupGroups: Batch[][] = [];
  const insertDone: (() => void)[] = [];
  const q = new StoreQueue<Batch>({ maxGroupTrains: 10_000, maxGroupBytes: 1e9, ...options }, {
    lookUp: (group) => {
      lookups.push(group.map((b) => b.name));
      if (autoLookUp) return Promise.resolve(group);
      lookupGroups.push(group);
      return new Promise<Batch[]>((resolve) => lookupDone.push(resolve));
    },
    insert: (group) => {
      inserts.push(group.map((b) => b.name));
      return new Promise<void>((resolve) => insertDone.push(resolve));
    },
  });
  /** Finishes the `i`th lookup started, keeping its batches but those named in `drop`. */
  const finishLookup = async (i: number, drop: string[] = []) => {
    lookupDone[i]!(lookupGroups[i]!.filter((b) => !drop.includes(b.name)));
    await settle();
  };
  const finishInsert = async (i: number) => {
    insertDone[i]!();
    await settle();
  };
  /** Admits and enqueues a batch, as the ingest does; returns the refusal, or null once queued. */
  const offer = (name: string, trains: number, bytes = 0) => {
    const refused = q.admit(trains);
    if (!refused) q.enqueue({ name, trains, bytes });
    return refused;
  };
  /** Queues a batch without asking admission (for tests of how groups are formed). */
  const enqueue = (name: string, trains: number, bytes = 0) => q.enqueue({ name, trains, bytes });
  return { q, lookups, inserts, finishLookup, finishInsert, offer, enqueue };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

describe('StoreQueue (group commit)', () => {
  it('looks one group up at a time while up to `concurrency` are inserted; batches ready meanwhile go together', async () => {
    const { lookups, inserts, finishLookup, finishInsert, offer } = queue({ concurrency: 2, maxWaitS: 1 });
    for (const name of ['a', 'b', 'c']) expect(offer(name, 10)).toBeNull();
    expect(lookups).toEqual([['a']]);
    await finishLookup(0);
    // a is inserted; b and c, ready while a was looked up, are looked up together, without waiting for a's INSERT.
    expect(inserts).toEqual([['a']]);
    expect(lookups).toEqual([['a'], ['b', 'c']]);
    offer('d', 10);
    offer('e', 10);
    await finishLookup(1);
    expect(inserts).toEqual([['a'], ['b', 'c']]);
    expect(lookups).toEqual([['a'], ['b', 'c'], ['d', 'e']]);
    await finishLookup(2);
    // Both INSERTs taken: d and e wait, looked up, for the next.
    expect(inserts).toEqual([['a'], ['b', 'c']]);
    await finishInsert(0);
    expect(inserts).toEqual([['a'], ['b', 'c'], ['d', 'e']]);
    await finishInsert(1);
    await finishInsert(2);
  });

  it('inserts together the batches of several lookups that finished while the INSERTs were taken; a batch the lookup dropped is not inserted', async () => {
    const { lookups, inserts, finishLookup, finishInsert, offer } = queue({ concurrency: 1, maxWaitS: 1 });
    offer('a', 10);
    offer('b', 10);
    offer('refused', 10);
    await finishLookup(0);
    await finishLookup(1, ['refused']);
    offer('c', 10);
    await finishLookup(2);
    expect(lookups).toEqual([['a'], ['b', 'refused'], ['c']]);
    expect(inserts).toEqual([['a']]);
    await finishInsert(0);
    expect(inserts).toEqual([['a'], ['b', 'c']]);
    await finishInsert(1);
  });

  it('bounds a group by records and by bytes; a batch larger than either alone is a group alone', async () => {
    const { lookups, inserts, finishLookup, finishInsert, enqueue } = queue({ concurrency: 1, maxWaitS: 1000, maxGroupTrains: 100, maxGroupBytes: 1000 });
    enqueue('running', 1);
    enqueue('a', 60);
    enqueue('b', 60); // a + b: 120 records, over 100
    enqueue('c', 10, 900);
    enqueue('d', 10, 200); // b + c + d: 1,100 bytes, over 1,000
    enqueue('huge', 500);
    enqueue('e', 1);
    await finishLookup(0);
    await finishLookup(1);
    await finishLookup(2);
    // A group's worth looked up ahead (a, b, c: 130 records): no further lookup until an INSERT takes some.
    expect(lookups).toEqual([['running'], ['a'], ['b', 'c']]);
    await finishInsert(0);
    await finishLookup(3);
    await finishLookup(4);
    await finishInsert(1);
    await finishInsert(2);
    await finishInsert(3);
    await finishLookup(5);
    await finishInsert(4);
    expect(lookups).toEqual([['running'], ['a'], ['b', 'c'], ['d'], ['huge'], ['e']]);
    expect(inserts).toEqual([['running'], ['a'], ['b', 'c'], ['d'], ['huge'], ['e']]);
    await finishInsert(5);
  });

  it('before any rate is measured, refuses once a group\'s worth of records waits', async () => {
    const { lookups, finishLookup, finishInsert, offer } = queue({ concurrency: 1, maxWaitS: 1, maxGroupTrains: 100 });
    expect(offer('running', 50)).toBeNull();
    expect(offer('waits', 60)).toBeNull();
    expect(offer('fits', 40)).toBeNull();
    expect(offer('over', 1)).toEqual({ expectedS: null });
    await finishLookup(0);
    expect(lookups).toEqual([['running'], ['waits', 'fits']]);
    await finishLookup(1);
    await finishInsert(0);
    await finishInsert(1);
  });

  it('measures the rate in records, only while saturated, then refuses a batch expected to take longer than maxWaitS', async () => {
    let clock = 0;
    const { q, inserts, finishInsert, offer } = queue({ concurrency: 1, maxWaitS: 2.5, now: () => clock }, true);
    // Unsaturated completions (nothing waiting) teach nothing.
    offer('alone', 100);
    await settle();
    clock += 5000;
    await finishInsert(0);
    expect(q.measuredRate()).toBeNull();
    // Saturated: an INSERT running, batches waiting; 1,000 records complete per second of the test's clock.
    offer('s1', 1000);
    await settle();
    offer('s2', 1000);
    await settle();
    clock += 1000;
    await finishInsert(1); // first saturated completion: opens the window
    offer('s3', 1000);
    await settle();
    clock += 1000;
    await finishInsert(2); // s2 done, s3 waiting: 1,000 records in 1 s
    expect(inserts).toEqual([['alone'], ['s1'], ['s2'], ['s3']]);
    expect(q.measuredRate()).toBeCloseTo(1000, 6);
    // s3 storing (1,000 records): a batch of 1,000 is expected to be done in 2 s and waits; one of 1,000 more (3 s) is refused.
    expect(offer('fits', 1000)).toBeNull();
    expect(offer('refused', 1000)).toEqual({ expectedS: 3 });
    // Before a batch is read it is judged by the size of recent ones (an average drawn towards 1,000): refused too.
    expect(q.overloaded()?.expectedS).toBeGreaterThan(2.5);
    await settle();
    await finishInsert(3);
    await finishInsert(4);
    expect(q.depth()).toEqual({ waiting: 0, lookedUp: 0, inserting: 0 });
  });

  it('says it is overloaded, before a batch is read, when one the size of recent batches would be refused', async () => {
    let clock = 0;
    const { q, finishInsert, offer } = queue({ concurrency: 1, maxWaitS: 2.5, maxGroupTrains: 900, now: () => clock }, true);
    expect(q.overloaded()).toBeNull();
    offer('a', 500);
    await settle();
    // One storing, none waiting: room.
    expect(q.overloaded()).toBeNull();
    offer('b', 500);
    await settle();
    // Unmeasured: 500 waiting, another of 500 would exceed a group's worth.
    expect(q.overloaded()).toEqual({ expectedS: null });
    expect(offer('c', 500)).toEqual({ expectedS: null });
    // Measured at saturation: 500 records per second of the test's clock.
    clock += 1000;
    await finishInsert(0);
    offer('c', 500);
    await settle();
    clock += 1000;
    await finishInsert(1);
    expect(q.measuredRate()).toBeCloseTo(500, 6);
    // 500 storing, batches of 500 lately: another would be done in 2 s, within 2.5 s.
    expect(q.overloaded()).toBeNull();
    offer('d', 500);
    // 1,000 admitted: the next one of 500 would take 3 s.
    expect(q.overloaded()).toEqual({ expectedS: 3 });
    expect(offer('e', 500)).toEqual({ expectedS: 3 });
    await settle();
    await finishInsert(2);
    await finishInsert(3);
    expect(q.overloaded()).toBeNull();
  });

  it('forgets a rate measured during a burst once the queue has stood empty, so later light traffic is not refused on it', async () => {
    let clock = 0;
    const { q, inserts, finishInsert, offer } = queue({ concurrency: 1, maxWaitS: 2, now: () => clock }, true);
    // A slow burst: 100 records per second of the test's clock.
    offer('b1', 100);
    await settle();
    offer('b2', 100);
    await settle();
    clock += 1000;
    await finishInsert(0);
    offer('b3', 100);
    await settle();
    clock += 1000;
    await finishInsert(1);
    expect(inserts).toEqual([['b1'], ['b2'], ['b3']]);
    expect(q.measuredRate()).toBeCloseTo(100, 6);
    // Traffic at once after it is judged by that rate: b3 storing, light waiting, one of 300 more would take 5 s.
    expect(offer('light', 100)).toBeNull();
    expect(offer('heavy', 300)).toEqual({ expectedS: 5 });
    await settle();
    await finishInsert(2);
    await finishInsert(3);
    // The queue has stood unsaturated for longer than a rate is kept: it no longer judges by it.
    clock += 5000;
    expect(offer('later', 100)).toBeNull();
    expect(offer('heavy again', 300)).toBeNull();
    expect(q.measuredRate()).toBeNull();
    await settle();
    await finishInsert(4);
    await finishInsert(5);
    expect(inserts.slice(4)).toEqual([['later'], ['heavy again']]);
  });
});

describe('StoreQueue turn interval', () => {
  // The queue's clock (performance.now) and its timer are vitest's fake ones: time moves only when the test moves it.
  afterEach(() => {
    vi.useRealTimers();
  });
  const fake = () => vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setImmediate', 'performance'] });
  const settleFake = () => vi.advanceTimersByTimeAsync(0);

  it('starts a turn at once after a quiet spell; batches ready within the interval wait for its end and go together', async () => {
    fake();
    const { lookups, inserts, finishLookup, finishInsert, offer } = queue({ concurrency: 4, maxWaitS: 1, minTurnIntervalMs: 500 });
    expect(offer('a', 10)).toBeNull();
    expect(lookups).toEqual([['a']]);
    finishSoon(finishLookup, 0);
    await settleFake();
    expect(inserts).toEqual([['a']]);
    await vi.advanceTimersByTimeAsync(100);
    for (const name of ['b', 'c', 'd']) expect(offer(name, 10)).toBeNull();
    await vi.advanceTimersByTimeAsync(300);
    expect(lookups).toEqual([['a']]);
    await vi.advanceTimersByTimeAsync(100);
    expect(lookups).toEqual([['a'], ['b', 'c', 'd']]);
    finishSoon(finishLookup, 1);
    await settleFake();
    expect(inserts).toEqual([['a'], ['b', 'c', 'd']]);
    // A quiet spell longer than the interval: the next batch goes at once.
    await vi.advanceTimersByTimeAsync(2000);
    offer('e', 10);
    expect(lookups.at(-1)).toEqual(['e']);
    finishSoon(finishLookup, 2);
    await settleFake();
    for (const i of [0, 1, 2]) finishSoon(finishInsert, i);
    await settleFake();
  });

  it('does not hold a group\'s worth, nor anything while a group\'s worth is admitted in all; held batches are no saturation', async () => {
    fake();
    const { lookups, finishLookup, finishInsert, offer } = queue({ concurrency: 4, maxWaitS: 1, minTurnIntervalMs: 500, maxGroupTrains: 100 });
    offer('a', 10);
    finishSoon(finishLookup, 0);
    await settleFake();
    // Held for the interval, the store idle: not refused, though more than a group's worth of records arrives in all.
    for (const name of ['b', 'c', 'd', 'e']) expect(offer(name, 20)).toBeNull();
    expect(lookups).toEqual([['a']]);
    expect(offer('f', 30)).toBeNull();
    // b..f hold 110 records: a group's worth waits, so its first group (b..e, 80; f would pass 100) goes now.
    await settleFake();
    expect(lookups).toEqual([['a'], ['b', 'c', 'd', 'e']]);
    finishSoon(finishLookup, 1);
    await settleFake();
    // f alone is less than a group, but a, b..e and f (120 records) are admitted: the store is busy, f goes at once.
    expect(lookups).toEqual([['a'], ['b', 'c', 'd', 'e'], ['f']]);
    finishSoon(finishLookup, 2);
    await settleFake();
    for (const i of [0, 1, 2]) finishSoon(finishInsert, i);
    await settleFake();
    // All stored: a small batch now waits for the interval after f's turn again.
    offer('g', 10);
    await settleFake();
    expect(lookups).toHaveLength(3);
    await vi.advanceTimersByTimeAsync(500);
    expect(lookups.at(-1)).toEqual(['g']);
  });

  it('holds no turn for a while after a busy refusal: the refused probe waits on the acks', async () => {
    fake();
    const { lookups, inserts, finishLookup, finishInsert, offer } = queue({ concurrency: 1, maxWaitS: 1, minTurnIntervalMs: 500, maxGroupTrains: 100 });
    expect(offer('a', 50)).toBeNull();
    finishSoon(finishLookup, 0);
    await settleFake();
    expect(inserts).toEqual([['a']]);
    // a (50) and b (60) admitted: a group's worth in all, b's turn goes at once; looked up, it waits for the INSERT slot.
    expect(offer('b', 60)).toBeNull();
    finishSoon(finishLookup, 1);
    await settleFake();
    // No rate measured yet and b waits: c would make more than a group's worth wait. Refused.
    expect(offer('c', 50)).toEqual({ expectedS: null });
    finishSoon(finishInsert, 0);
    await settleFake();
    expect(inserts).toEqual([['a'], ['b']]);
    // b's turn started just now and less than a group is admitted, but a refusal is recent: d goes at once.
    expect(offer('d', 10)).toBeNull();
    expect(lookups).toEqual([['a'], ['b'], ['d']]);
    finishSoon(finishLookup, 2);
    await settleFake();
    for (const i of [1, 2]) {
      finishSoon(finishInsert, i);
      await settleFake();
    }
    // Long after the refusal: the interval holds again (e after a quiet spell at once, f within the interval waits).
    await vi.advanceTimersByTimeAsync(6000);
    offer('e', 10);
    finishSoon(finishLookup, 3);
    await settleFake();
    offer('f', 10);
    await settleFake();
    expect(lookups.slice(3)).toEqual([['e']]);
    await vi.advanceTimersByTimeAsync(500);
    expect(lookups.slice(3)).toEqual([['e'], ['f']]);
  });

  it('holds no turn while the store\'s rate is known (saturated lately), and holds again once the queue has stood empty', async () => {
    fake();
    const { q, lookups, finishLookup, finishInsert, offer } = queue({ concurrency: 1, maxWaitS: 100, minTurnIntervalMs: 500, maxGroupTrains: 1000 }, true);
    // Saturated (a group's worth admitted: no holds): 1,000 records a second of the fake clock.
    offer('s1', 1000);
    await settleFake();
    offer('s2', 1000);
    await settleFake();
    await vi.advanceTimersByTimeAsync(1000);
    finishSoon(finishInsert, 0);
    await settleFake();
    offer('s3', 1000);
    await settleFake();
    await vi.advanceTimersByTimeAsync(1000);
    finishSoon(finishInsert, 1);
    await settleFake();
    expect(q.measuredRate()).toBeCloseTo(1000, 6);
    finishSoon(finishInsert, 2);
    await settleFake();
    // Everything stored, the rate still known: a small batch right after another's turn goes at once.
    offer('a', 10);
    await settleFake();
    offer('b', 10);
    await settleFake();
    expect(lookups.slice(3)).toEqual([['a'], ['b']]);
    for (const i of [3, 4]) {
      finishSoon(finishInsert, i);
      await settleFake();
    }
    // The queue empty for longer than the rate is kept: the interval holds again.
    await vi.advanceTimersByTimeAsync(6000);
    offer('c', 10);
    await settleFake();
    offer('d', 10);
    await settleFake();
    expect(q.measuredRate()).toBeNull();
    expect(lookups.slice(5)).toEqual([['c']]);
    await vi.advanceTimersByTimeAsync(500);
    expect(lookups.slice(5)).toEqual([['c'], ['d']]);
  });

  it('restarts the rate window at a hold: the store waiting by choice is not counted as the store being slow', async () => {
    fake();
    const { q, lookups, inserts, finishLookup, finishInsert, offer } = queue({ concurrency: 1, maxWaitS: 100, minTurnIntervalMs: 500, maxGroupTrains: 1000 });
    offer('a', 100);
    finishSoon(finishLookup, 0);
    await settleFake();
    offer('b', 100); // held: a's turn just started
    await vi.advanceTimersByTimeAsync(500);
    finishSoon(finishLookup, 1); // b looked up, waiting for the slot a holds: saturated
    await settleFake();
    await vi.advanceTimersByTimeAsync(500);
    finishSoon(finishInsert, 0); // a done while b waits: the first saturated completion opens a window
    await settleFake();
    offer('c', 100); // the interval since b's turn has passed: at once
    finishSoon(finishLookup, 2);
    await settleFake();
    offer('d', 100); // held for the interval: the window restarts
    await vi.advanceTimersByTimeAsync(500);
    finishSoon(finishLookup, 3);
    await settleFake();
    expect(lookups).toEqual([['a'], ['b'], ['c'], ['d']]);
    await vi.advanceTimersByTimeAsync(1000);
    finishSoon(finishInsert, 1); // b done, 1.5 s after the window opened and 1 s after the hold: no sample spanning the hold
    await settleFake();
    expect(q.measuredRate()).toBeNull();
    // c and d go in one INSERT now; e (its turn at once: the interval since d's has passed) waits for it.
    offer('e', 100);
    finishSoon(finishLookup, 4);
    await settleFake();
    expect(inserts).toEqual([['a'], ['b'], ['c', 'd']]);
    await vi.advanceTimersByTimeAsync(1000);
    finishSoon(finishInsert, 2); // c and d done 1 s later with e waiting: 200 records in 1 s of a store that never waited
    await settleFake();
    expect(q.measuredRate()).toBeCloseTo(200, 6);
    finishSoon(finishInsert, 3);
    await settleFake();
  });
});

/** Finishes a stage without awaiting (the fake clock's advance settles it). */
function finishSoon(finish: (i: number) => Promise<void>, i: number): void {
  void finish(i);
}

