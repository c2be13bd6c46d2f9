/**
 * The live hub's memory of what it showed, on its own clock: ids are kept
 * for a time (not a count), bounded in number, and what it says it
 * remembers (rememberedSinceUs) is what it does; tentative trains (published
 * while their batch is stored) are the only ones a retraction takes back,
 * and a train read back stored from the store is never taken back.
 */
import { describe, expect, it } from 'vitest';
import { LiveHub, type LiveTrain } from '../../collector/index.js';

function train(trainId: string, src = 'alpha'): LiveTrain {
  return {
    trainId, src, dst: 'beta', engine: 'stamp', flow: 0, startedAtUs: 1, sent: 4, received: 4,
    rttMinUs: 300, rttMedianUs: 310, rttP99Us: 320, rttMaxUs: 320, jitterUs: 5,
  };
}

function hubWithClock(options: { memoryMs?: number; maxIdsPerGeneration?: number } = {}) {
  let nowUs = 1_000_000_000;
  const hub = new LiveHub({ ...options, nowUs: () => nowUs });
  const shown: string[] = [];
  const retracted: string[] = [];
  hub.subscribe((ts) => shown.push(...ts.map((t) => `${t.src}/${t.trainId}`)), (ts) => retracted.push(...ts.map((t) => `${t.src}/${t.trainId}`)));
  return { hub, shown, retracted, now: () => nowUs, advanceMs: (ms: number) => { nowUs += ms * 1000; } };
}

describe('the live hub remembers what it showed for a time', () => {
  it('a new hub vouches for everything (it showed nothing); an id is kept at least memoryMs, then forgotten, and rememberedSinceUs says which', () => {
    const { hub, shown, now, advanceMs } = hubWithClock({ memoryMs: 1000 });
    expect(hub.rememberedSinceUs()).toBe(0);
    const shownAt = now();
    expect(hub.publish([train('a')])).toHaveLength(1);
    advanceMs(999);
    expect(hub.publish([train('a')])).toHaveLength(0);
    expect(hub.rememberedSinceUs()).toBeLessThanOrEqual(shownAt);
    advanceMs(999);
    expect(hub.publish([train('a')])).toHaveLength(0);
    expect(hub.rememberedSinceUs()).toBeLessThanOrEqual(shownAt);
    advanceMs(1000);
    // Forgotten: and the hub no longer claims to remember that far back.
    expect(hub.rememberedSinceUs()).toBeGreaterThan(shownAt);
    expect(hub.publish([train('a')])).toHaveLength(1);
    expect(shown).toEqual(['alpha/a', 'alpha/a']);
  });

  it('ids are per source centre', () => {
    const { hub } = hubWithClock();
    expect(hub.publish([train('x', 'alpha'), train('x', 'beta'), train('x', 'alpha')])).toHaveLength(2);
  });

  it('a generation holds at most maxIdsPerGeneration ids; rotating early, the hub says its memory reaches less far', () => {
    const { hub, now, advanceMs } = hubWithClock({ memoryMs: 60_000, maxIdsPerGeneration: 3 });
    const at: Record<string, number> = {};
    for (const id of ['1', '2', '3', '4', '5', '6', '7']) {
      at[id] = now();
      hub.publish([train(id)]);
      advanceMs(1);
    }
    // 1-3 were dropped with their generation, well within memoryMs: the hub must not vouch for the time they were shown.
    const since = hub.rememberedSinceUs();
    expect(since).toBeGreaterThanOrEqual(at['3']!);
    expect(hub.publish([train('1')])).toHaveLength(1);
    // Every id published after that time is remembered.
    const after = Object.keys(at).filter((id) => at[id]! > since);
    expect(after).toEqual(['4', '5', '6', '7']);
    expect(hub.publish(after.map((id) => train(id)))).toHaveLength(0);
    expect(hub.stats().remembered).toBeLessThanOrEqual(6);
  });
});

describe('tentative trains', () => {
  it('are retracted (and forgotten, so a resend shows them again) until settled; settled ones and untentative ones are not', () => {
    const { hub, shown, retracted } = hubWithClock();
    const published = hub.publishTentative([train('t1'), train('t2')]);
    expect(published.map((t) => t.trainId)).toEqual(['t1', 't2']);
    hub.settled([train('t2')]);
    hub.retract([train('t1'), train('t2')]);
    expect(retracted).toEqual(['alpha/t1']);
    hub.retract([train('t1')]);
    expect(retracted).toEqual(['alpha/t1']);
    expect(hub.publishTentative([train('t1'), train('t2')]).map((t) => t.trainId)).toEqual(['t1']);
    hub.publish([train('s')]);
    hub.retract([train('s')]);
    expect(retracted).toEqual(['alpha/t1']);
    expect(shown).toEqual(['alpha/t1', 'alpha/t2', 'alpha/t1', 'alpha/s']);
    expect(hub.stats()).toMatchObject({ retracted: 1, tentative: 1 });
  });

  it('one read back stored (the tail: another server stored it) is not shown again and no longer retracted', () => {
    const { hub, shown, retracted } = hubWithClock();
    hub.publishTentative([train('f')]);
    expect(hub.publish([train('f')])).toHaveLength(0);
    hub.retract([train('f')]);
    expect(retracted).toEqual([]);
    expect(shown).toEqual(['alpha/f']);
  });

  it('are remembered while tentative, however long their batch waits', () => {
    const { hub, shown, retracted, advanceMs } = hubWithClock({ memoryMs: 1000 });
    hub.publishTentative([train('slow')]);
    advanceMs(5000);
    hub.publish([train('other')]);
    advanceMs(5000);
    expect(hub.publishTentative([train('slow')])).toHaveLength(0);
    hub.retract([train('slow')]);
    expect(retracted).toEqual(['alpha/slow']);
    expect(shown).toEqual(['alpha/slow', 'alpha/other']);
  });
});
