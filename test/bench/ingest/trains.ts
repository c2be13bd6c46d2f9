/**
 * Synthetic STAMP trains of 100 RTTs, valid for the collector's schema, built
 * as JSON text (what a probe sends) from a small pool of precomputed RTT
 * arrays, so the generator spends its time on ids and timestamps only.
 */
import { toRow } from '../../../collector/index.js';
import { type TrainSample } from '../../../protocol/index.js';
import type { TrainRow } from '../../../sql/index.js';

export const RTTS_PER_TRAIN = 100;
const VARIANTS = 32;

interface Variant {
  /** JSON text from `"sent"` to the end of the object (without the closing brace). */
  tail: string;
}

function makeVariants(): Variant[] {
  const out: Variant[] = [];
  let seed = 12345;
  const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  for (let v = 0; v < VARIANTS; v++) {
    const rtts = Array.from({ length: RTTS_PER_TRAIN }, () => Math.round((300 + rand() * 400 + (rand() < 0.02 ? 2000 : 0)) * 10) / 10);
    const sorted = [...rtts].sort((a, b) => a - b);
    let jitter = 0;
    for (let i = 1; i < rtts.length; i++) jitter += Math.abs(rtts[i]! - rtts[i - 1]!);
    jitter = Math.round((jitter / (rtts.length - 1)) * 10) / 10;
    const stats = {
      sent: RTTS_PER_TRAIN, received: RTTS_PER_TRAIN, lost: 0, duplicated: 0, reordered: 0,
      rttMinUs: sorted[0], rttMedianUs: sorted[RTTS_PER_TRAIN / 2], rttP99Us: sorted[Math.ceil(0.99 * RTTS_PER_TRAIN) - 1],
      rttMaxUs: sorted[RTTS_PER_TRAIN - 1], jitterUs: jitter, rttsUs: rtts, synced: false, errorEstimateUs: 1_000_000, fwdUs: [], revUs: [],
    };
    out.push({ tail: JSON.stringify(stats).slice(1, -1) });
  }
  return out;
}

const variants = makeVariants();

/** One train sample as the JSON text a probe would put in `samples[]`. */
export function sampleJson(trainId: string, dst: string, startedAtUs: number, n: number): string {
  return `{"trainId":"${trainId}","dst":"${dst}","engine":"stamp","startedAtUs":${startedAtUs},"flow":${n % 8},"srcPort":${40000 + (n % 8)},"dscp":46,${variants[n % VARIANTS]!.tail}}`;
}

/** A whole batch message, as text. */
export function batchJson(batchId: string, samples: string[], createdAtUs: number): string {
  return `{"type":"batch","batchId":"${batchId}","createdAtUs":${createdAtUs},"samples":[${samples.join(',')}]}`;
}

/** The rows the collector would store for the same samples (for the client.insert ceiling). */
export function rowsFor(src: string, batchId: string, samples: string[]): TrainRow[] {
  return samples.map((s) => toRow(src, batchId, JSON.parse(s) as TrainSample));
}
