/**
 * Pure summary of one packet train on one flow. Both engines feed it the raw
 * arrivals they observed, so loss, duplicate, reordering and delay statistics
 * mean exactly the same thing for STAMP and ICMP.
 *
 * Definitions (the input's `seq` is relative to the train, 0..sent-1; arrivals
 * with a seq outside that range are stale and ignored):
 * - received: distinct seqs that arrived. lost = sent - received.
 * - duplicated: arrivals of a seq that had already arrived (RFC 7680 style:
 *   duplicates never cancel loss).
 * - reordered (RFC 4737 §3.3): a FIRST arrival whose seq is lower than the
 *   highest seq already received. Duplicates are never counted as reordered.
 * - RTT samples: the first arrival of each seq only (a duplicate's delay says
 *   nothing about the path the original took).
 * - rttMin/Max: extremes; rttMedian: middle value, mean of the two middle
 *   values for an even count; rttP99: nearest-rank, sorted[ceil(0.99*n)-1].
 *   All null when nothing was received.
 * - jitterUs: mean |rtt[k+1] - rtt[k]| over pairs of CONSECUTIVE sequence
 *   numbers that both arrived (RFC 3393 IPDV, consecutive selection; a pair
 *   spanning a lost packet is undefined and skipped). Null when no pair exists.
 * - rttsUs / fwdUs / revUs: per received seq, in sequence order, microseconds
 *   as floats. fwd/rev are reported only when every received seq has them.
 */

export interface TrainArrival {
  seq: number;
  rttNs: number;
  fwdNs?: number | undefined;
  revNs?: number | undefined;
}

export interface TrainInput {
  sent: number;
  /** In ARRIVAL order. */
  arrivals: TrainArrival[];
}

export interface TrainStats {
  sent: number;
  /** Distinct sequence numbers answered within the timeout. */
  received: number;
  /** sent - received. */
  lost: number;
  /** Extra replies for a sequence number already answered. */
  duplicated: number;
  /** Replies that arrived after one with a higher sequence number (RFC 4737). */
  reordered: number;
  /** Net RTT statistics in microseconds; null when nothing was received. */
  rttMinUs: number | null;
  rttMedianUs: number | null;
  rttP99Us: number | null;
  rttMaxUs: number | null;
  /** Mean |IPDV| of consecutive received packets, microseconds (RFC 3393, consecutive selection). */
  jitterUs: number | null;
  /** Net RTT of every received packet, microseconds, in sequence-number order. */
  rttsUs: number[];
  /** One-way forward (sender to reflector) delays, microseconds; empty unless synced. */
  fwdUs: number[];
  /** One-way reverse delays, microseconds; empty unless synced. */
  revUs: number[];
}

/**
 * Nearest-rank percentile of an ascending array: sorted[ceil(p/100 * n) - 1].
 * `p` is in percent (0 < p <= 100); p <= 0 yields the minimum.
 * Throws RangeError on an empty array.
 */
export function percentileNearestRank(sorted: readonly number[], p: number): number {
  const n = sorted.length;
  if (n === 0) throw new RangeError('percentileNearestRank: empty sample');
  // p * n / 100 rather than (p / 100) * n: exact for integer p and n.
  const rank = Math.min(n, Math.max(1, Math.ceil((p * n) / 100)));
  return sorted[rank - 1] as number;
}

/** Median of an ascending array; mean of the two middle values for even n. */
export function median(sorted: readonly number[]): number {
  const n = sorted.length;
  if (n === 0) throw new RangeError('median: empty sample');
  const mid = n >> 1;
  if (n % 2 === 1) return sorted[mid] as number;
  return ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

export function summariseTrain(input: TrainInput): TrainStats {
  const { sent } = input;
  const first = new Map<number, TrainArrival>();
  let duplicated = 0;
  let reordered = 0;
  let highest = -1;

  for (const a of input.arrivals) {
    if (!Number.isInteger(a.seq) || a.seq < 0 || a.seq >= sent) continue;
    if (first.has(a.seq)) {
      duplicated++;
      continue;
    }
    if (a.seq < highest) reordered++;
    else highest = a.seq;
    first.set(a.seq, a);
  }

  const inOrder = [...first.values()].sort((x, y) => x.seq - y.seq);
  const rttsUs = inOrder.map((a) => a.rttNs / 1000);
  const withOneWay = inOrder.every((a) => a.fwdNs !== undefined && a.revNs !== undefined);
  const fwdUs = withOneWay ? inOrder.map((a) => (a.fwdNs as number) / 1000) : [];
  const revUs = withOneWay ? inOrder.map((a) => (a.revNs as number) / 1000) : [];

  let ipdvSum = 0;
  let ipdvPairs = 0;
  for (let k = 1; k < inOrder.length; k++) {
    const prev = inOrder[k - 1] as TrainArrival;
    const cur = inOrder[k] as TrainArrival;
    if (cur.seq !== prev.seq + 1) continue;
    ipdvSum += Math.abs(cur.rttNs - prev.rttNs) / 1000;
    ipdvPairs++;
  }

  const sorted = [...rttsUs].sort((x, y) => x - y);
  const received = inOrder.length;
  const any = received > 0;
  return {
    sent,
    received,
    lost: sent - received,
    duplicated,
    reordered,
    rttMinUs: any ? (sorted[0] as number) : null,
    rttMedianUs: any ? median(sorted) : null,
    rttP99Us: any ? percentileNearestRank(sorted, 99) : null,
    rttMaxUs: any ? (sorted[received - 1] as number) : null,
    jitterUs: ipdvPairs > 0 ? ipdvSum / ipdvPairs : null,
    rttsUs,
    fwdUs,
    revUs,
  };
}
