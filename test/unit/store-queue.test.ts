import { describe, expect, it } from 'vitest';
import { StoreQueue } from '../../collector/store-queue.js';

/** A unit of store work the test finishes by hand. */
function job(): { work: () => Promise<string>; finish: () => void; started: () => boolean } {
  let started = false;
  let finish: () => void = () => undefined;
  const done = new Promise<string>((resolve) => {
    finish = () => resolve('stored');
  });
  return { work: () => ((started = true), done), finish: () => finish(), started: () => started };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

describe('StoreQueue', () => {
  it('stores at most `concurrency` batches at once, the others in arrival order', async () => {
    const queue = new StoreQueue({ concurrency: 2, maxWaitS: 1 });
    const jobs = [job(), job(), job(), job()];
    const results = jobs.map((j) => queue.run(10, j.work));
    await settle();
    expect(jobs.map((j) => j.started())).toEqual([true, true, false, false]);
    jobs[1]!.finish();
    await settle();
    expect(jobs.map((j) => j.started())).toEqual([true, true, true, false]);
    jobs[0]!.finish();
    await settle();
    expect(jobs.map((j) => j.started())).toEqual([true, true, true, true]);
    jobs[2]!.finish();
    jobs[3]!.finish();
    expect(await Promise.all(results)).toEqual(jobs.map(() => ({ admitted: true, value: 'stored' })));
  });

  it('before any rate is measured, refuses once `concurrency` batches wait', async () => {
    const queue = new StoreQueue({ concurrency: 1, maxWaitS: 1 });
    const running = job();
    const waiting = job();
    const first = queue.run(10, running.work);
    const second = queue.run(10, waiting.work);
    expect(await queue.run(10, job().work)).toEqual({ admitted: false, expectedS: null });
    running.finish();
    waiting.finish();
    expect(await first).toMatchObject({ admitted: true });
    expect(await second).toMatchObject({ admitted: true });
  });

  it('measures the rate only while saturated, then refuses a batch expected to take longer than maxWaitS', async () => {
    let clock = 0;
    const queue = new StoreQueue({ concurrency: 2, maxWaitS: 2.5, now: () => clock });
    // Unsaturated completions (nothing waiting) teach nothing.
    const alone = job();
    const lone = queue.run(100, alone.work);
    clock += 5000;
    alone.finish();
    await lone;
    expect(queue.measuredRate()).toBeNull();
    // Saturated (two storing, two waiting): 1,000 trains complete per second of the test's clock.
    const jobs = Array.from({ length: 4 }, () => job());
    const runs = jobs.map((j) => queue.run(1000, j.work));
    for (const j of jobs.slice(0, 2)) {
      await settle();
      clock += 1000;
      j.finish();
    }
    await settle();
    expect(queue.measuredRate()).toBeCloseTo(1000, 6);
    // 2,000 trains storing: a small batch is expected to be done in 2.01 s and waits; a large one (3 s) is refused.
    expect(await queue.run(1000, job().work)).toEqual({ admitted: false, expectedS: 3 });
    const small = job();
    const fits = queue.run(10, small.work);
    jobs[2]!.finish();
    await settle();
    small.finish();
    jobs[3]!.finish();
    expect(await fits).toMatchObject({ admitted: true });
    expect((await Promise.all(runs)).every((r) => r.admitted)).toBe(true);
  });

  it('says it is overloaded, before a batch is read, when one the size of recent batches would be refused', async () => {
    let clock = 0;
    const queue = new StoreQueue({ concurrency: 1, maxWaitS: 2.5, now: () => clock });
    expect(queue.overloaded()).toBeNull();
    const jobs = Array.from({ length: 4 }, () => job());
    const runs = [queue.run(500, jobs[0]!.work)];
    // One storing, none waiting: room.
    expect(queue.overloaded()).toBeNull();
    runs.push(queue.run(500, jobs[1]!.work));
    // Unmeasured: full once `concurrency` wait.
    expect(queue.overloaded()).toEqual({ expectedS: null });
    expect(await queue.run(500, job().work)).toEqual({ admitted: false, expectedS: null });
    // Measured at saturation: 500 trains per second of the test's clock.
    await settle();
    clock += 1000;
    jobs[0]!.finish();
    await settle();
    runs.push(queue.run(500, jobs[2]!.work));
    clock += 1000;
    jobs[1]!.finish();
    await settle();
    expect(queue.measuredRate()).toBeCloseTo(500, 6);
    // 500 storing, batches of 500 lately: another would be done in 2 s, within 2.5 s.
    expect(queue.overloaded()).toBeNull();
    runs.push(queue.run(500, jobs[3]!.work));
    // 1,000 admitted: the next one of 500 would take 3 s.
    expect(queue.overloaded()).toEqual({ expectedS: 3 });
    expect(await queue.run(500, job().work)).toEqual({ admitted: false, expectedS: 3 });
    jobs[2]!.finish();
    await settle();
    jobs[3]!.finish();
    expect((await Promise.all(runs)).every((r) => r.admitted)).toBe(true);
    expect(queue.overloaded()).toBeNull();
  });

  it('forgets a rate measured during a burst once the queue has stood empty, so later light traffic is not refused on it', async () => {
    let clock = 0;
    const queue = new StoreQueue({ concurrency: 2, maxWaitS: 2, now: () => clock });
    // A slow burst (two storing, two waiting): 100 trains per second of the test's clock.
    const burst = Array.from({ length: 4 }, () => job());
    const runs = burst.map((j) => queue.run(100, j.work));
    for (const j of burst) {
      await settle();
      clock += 1000;
      j.finish();
    }
    await Promise.all(runs);
    expect(queue.measuredRate()).toBeCloseTo(100, 6);
    // Traffic at once after it is judged by that rate: two storing, one of 300 would take 5 s.
    const light = [job(), job()];
    const lightRuns = light.map((j) => queue.run(100, j.work));
    expect(await queue.run(300, job().work)).toEqual({ admitted: false, expectedS: 5 });
    for (const j of light) j.finish();
    await Promise.all(lightRuns);
    // The queue has stood unsaturated for longer than a rate is kept: it no longer judges by it.
    clock += 5000;
    const later = [job(), job(), job()];
    const laterRuns = later.map((j, i) => queue.run(i === 2 ? 300 : 100, j.work));
    expect(queue.measuredRate()).toBeNull();
    for (const j of later) {
      await settle();
      j.finish();
    }
    expect((await Promise.all(laterRuns)).every((r) => r.admitted)).toBe(true);
  });
});
