import { describe, expect, it } from 'vitest';
import { median, percentileNearestRank, summariseTrain } from '../../probes/train-stats.js';

/** Arrivals in the given order with RTTs in microseconds. */
function arr(pairs: Array<[seq: number, rttUs: number]>) {
  return pairs.map(([seq, us]) => ({ seq, rttNs: us * 1000 }));
}

describe('summariseTrain', () => {
  it('no loss: counts, order statistics and jitter', () => {
    const s = summariseTrain({ sent: 4, arrivals: arr([[0, 100], [1, 300], [2, 200], [3, 400]]) });
    expect(s).toMatchObject({ sent: 4, received: 4, lost: 0, duplicated: 0, reordered: 0 });
    expect(s.rttMinUs).toBe(100);
    expect(s.rttMaxUs).toBe(400);
    expect(s.rttMedianUs).toBe(250); // even count: (200 + 300) / 2
    expect(s.rttP99Us).toBe(400); // ceil(0.99*4) = 4 → 4th
    // |300-100| + |200-300| + |400-200| = 200 + 100 + 200 → 500 / 3
    expect(s.jitterUs).toBeCloseTo(500 / 3, 10);
    expect(s.rttsUs).toEqual([100, 300, 200, 400]);
    expect(s.fwdUs).toEqual([]);
  });

  it('loss in the middle: IPDV skips the pair spanning the gap', () => {
    const s = summariseTrain({ sent: 5, arrivals: arr([[0, 10], [1, 20], [3, 100], [4, 130]]) });
    expect(s).toMatchObject({ received: 4, lost: 1, reordered: 0, duplicated: 0 });
    // pairs (0,1)=10 and (3,4)=30; (1,3) is not consecutive
    expect(s.jitterUs).toBe(20);
    expect(s.rttsUs).toEqual([10, 20, 100, 130]);
    expect(s.rttMedianUs).toBe(60);
  });

  it('duplicates: counted, ignored for RTT, never reordered', () => {
    const s = summariseTrain({ sent: 3, arrivals: arr([[0, 50], [1, 60], [1, 999], [0, 999], [2, 70]]) });
    expect(s).toMatchObject({ received: 3, lost: 0, duplicated: 2, reordered: 0 });
    expect(s.rttsUs).toEqual([50, 60, 70]);
    expect(s.rttMaxUs).toBe(70);
  });

  it('reordering per RFC 4737: arrival order 0,2,1,3 gives 1', () => {
    const s = summariseTrain({ sent: 4, arrivals: arr([[0, 1], [2, 3], [1, 2], [3, 4]]) });
    expect(s.reordered).toBe(1);
    expect(s.rttsUs).toEqual([1, 2, 3, 4]);
    expect(s.jitterUs).toBe(1);
  });

  it('reordering counts every late first arrival: 3,0,1,2 gives 3', () => {
    const s = summariseTrain({ sent: 4, arrivals: arr([[3, 1], [0, 1], [1, 1], [2, 1]]) });
    expect(s.reordered).toBe(3);
  });

  it('all lost: null statistics', () => {
    const s = summariseTrain({ sent: 7, arrivals: [] });
    expect(s).toEqual({
      sent: 7, received: 0, lost: 7, duplicated: 0, reordered: 0,
      rttMinUs: null, rttMedianUs: null, rttP99Us: null, rttMaxUs: null, jitterUs: null,
      rttsUs: [], fwdUs: [], revUs: [],
    });
  });

  it('single packet: no IPDV pair', () => {
    const s = summariseTrain({ sent: 2, arrivals: arr([[1, 42]]) });
    expect(s.jitterUs).toBeNull();
    expect(s.rttMedianUs).toBe(42);
    expect(s.rttP99Us).toBe(42);
  });

  it('ignores arrivals outside the train', () => {
    const s = summariseTrain({ sent: 2, arrivals: arr([[-1, 5], [0, 10], [2, 5], [1, 20]]) });
    expect(s).toMatchObject({ received: 2, lost: 0, duplicated: 0, reordered: 0 });
  });

  it('p99 over 100 samples is the 99th smallest', () => {
    // RTTs 1..100 µs delivered in reverse order of value
    const arrivals = Array.from({ length: 100 }, (_, i) => ({ seq: i, rttNs: (100 - i) * 1000 }));
    const s = summariseTrain({ sent: 100, arrivals });
    expect(s.rttP99Us).toBe(99);
    expect(s.rttMedianUs).toBe(50.5);
    expect(s.rttMinUs).toBe(1);
    expect(s.rttMaxUs).toBe(100);
  });

  it('p99 over 5 samples is the maximum', () => {
    const s = summariseTrain({ sent: 5, arrivals: arr([[0, 5], [1, 1], [2, 4], [3, 2], [4, 3]]) });
    expect(s.rttP99Us).toBe(5);
    expect(s.rttMedianUs).toBe(3);
  });

  it('one-way delays only when present for every received seq', () => {
    const both = summariseTrain({
      sent: 2,
      arrivals: [
        { seq: 1, rttNs: 3000, fwdNs: 1000, revNs: 2000 },
        { seq: 0, rttNs: 4000, fwdNs: 1500, revNs: 2500 },
      ],
    });
    expect(both.fwdUs).toEqual([1.5, 1]);
    expect(both.revUs).toEqual([2.5, 2]);
    const partial = summariseTrain({
      sent: 2,
      arrivals: [{ seq: 0, rttNs: 3000, fwdNs: 1000, revNs: 2000 }, { seq: 1, rttNs: 3000 }],
    });
    expect(partial.fwdUs).toEqual([]);
    expect(partial.revUs).toEqual([]);
  });

  it('keeps sub-microsecond precision', () => {
    const s = summariseTrain({ sent: 1, arrivals: [{ seq: 0, rttNs: 41_250 }] });
    expect(s.rttsUs).toEqual([41.25]);
  });
});

describe('helpers', () => {
  it('median of even and odd counts', () => {
    expect(median([1, 2, 3, 10])).toBe(2.5);
    expect(median([1, 2, 10])).toBe(2);
    expect(() => median([])).toThrow(RangeError);
  });

  it('nearest-rank percentile', () => {
    const xs = Array.from({ length: 20 }, (_, i) => i + 1);
    expect(percentileNearestRank(xs, 95)).toBe(19);
    expect(percentileNearestRank(xs, 50)).toBe(10);
    expect(percentileNearestRank(xs, 100)).toBe(20);
    expect(percentileNearestRank(xs, 0)).toBe(1);
    expect(() => percentileNearestRank([], 99)).toThrow(RangeError);
  });
});
