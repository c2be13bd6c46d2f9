/**
 * The hot path of ingest: a train sample checked by hand, field by field,
 * with exactly the rules of `trainSampleSchema` (protocol.ts) and the
 * storable-text rule (text.ts), in one pass and without building anything
 * but the result.
 *
 * It answers only "valid, here it is" or "not sure" (null). On null the
 * caller runs the schema, which finds the first problem and names the field,
 * so every refusal and every error message stays the schema's; this code
 * never has to describe a problem, only to never accept what the schema
 * refuses. test/unit/train-check.test.ts holds the two equal, on valid
 * samples and on the fuzzer's mutants.
 *
 * Why by hand: a batch of 1,000 trains of 100 RTTs is 100,000 numbers; the
 * schema walks each through a chain of checks and copies every array, and the
 * storable-text walk allocates a path step per number. Here a number costs a
 * typeof and two comparisons.
 */
import { isStorableText } from './text.js';
// A cycle (protocol.ts calls checkTrainSample): harmless, these are only read when a sample is checked.
import { MAX_TRAIN_PACKETS, type TrainSample, type Timestamping } from './wire.js';

const MICROS_MAX = 60_000_000;
const DELAY_LIMIT = 60_000_000;
const ERROR_ESTIMATE_MAX = 3_600_000_000;
const ID = /^[A-Za-z0-9._:-]{8,64}$/;
/** Keys every sample has; the two timestamping keys are optional. */
const REQUIRED_KEYS = 22;

/** z.number().int().min(lo).max(hi): NaN and ±Infinity fail Number.isInteger. */
function intIn(v: unknown, lo: number, hi: number): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= lo && v <= hi;
}

/** micros in protocol.ts: finite, 0 to 60 s. NaN fails both comparisons, Infinity the second. */
function isMicros(v: unknown): v is number {
  return typeof v === 'number' && v >= 0 && v <= MICROS_MAX;
}

function isNullableMicros(v: unknown): v is number | null {
  return v === null || isMicros(v);
}

function allMicros(a: unknown): a is number[] {
  if (!Array.isArray(a) || a.length > MAX_TRAIN_PACKETS) return false;
  for (let i = 0; i < a.length; i++) {
    const v: unknown = a[i];
    if (typeof v !== 'number' || !(v >= 0 && v <= MICROS_MAX)) return false;
  }
  return true;
}

function allDelays(a: unknown): a is number[] {
  if (!Array.isArray(a) || a.length > MAX_TRAIN_PACKETS) return false;
  for (let i = 0; i < a.length; i++) {
    const v: unknown = a[i];
    if (typeof v !== 'number' || !(v >= -DELAY_LIMIT && v <= DELAY_LIMIT)) return false;
  }
  return true;
}

function isTimestamping(v: unknown): v is Timestamping {
  return v === 'hardware' || v === 'kernel' || v === 'user' || v === 'unknown';
}

/**
 * The sample as the schema would return it (its keys in the schema's order,
 * which the batch content hash relies on), or null when anything is not as the
 * schema demands. The RTT arrays are the input's own (the schema copies them).
 */
export function checkTrainSample(value: unknown): TrainSample | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return null;
  const s = value as Record<string, unknown>;
  // Strict object: no key beyond the schema's. Parsed JSON has own keys only.
  let keys = 0;
  for (const _ in s) keys++;
  const senderTimestamping = s.senderTimestamping;
  const reflectorTimestamping = s.reflectorTimestamping;
  const optional = (senderTimestamping === undefined ? 0 : 1) + (reflectorTimestamping === undefined ? 0 : 1);
  if (keys !== REQUIRED_KEYS + optional) return null;
  if (senderTimestamping !== undefined && !isTimestamping(senderTimestamping)) return null;
  if (reflectorTimestamping !== undefined && !isTimestamping(reflectorTimestamping)) return null;

  const { trainId, dst, engine, startedAtUs, flow, srcPort, dscp, sent, received, lost, duplicated, reordered } = s;
  if (typeof trainId !== 'string' || !ID.test(trainId)) return null;
  if (typeof dst !== 'string' || dst.length < 1 || dst.length > 32 || !isStorableText(dst)) return null;
  if (engine !== 'stamp' && engine !== 'icmp') return null;
  if (typeof startedAtUs !== 'number' || !Number.isSafeInteger(startedAtUs) || startedAtUs <= 0) return null;
  if (!intIn(flow, 0, 63) || !intIn(srcPort, 0, 65535) || !intIn(dscp, 0, 63)) return null;
  if (!intIn(sent, 1, MAX_TRAIN_PACKETS) || !intIn(received, 0, MAX_TRAIN_PACKETS) || !intIn(lost, 0, MAX_TRAIN_PACKETS)) return null;
  if (!intIn(duplicated, 0, MAX_TRAIN_PACKETS) || !intIn(reordered, 0, MAX_TRAIN_PACKETS)) return null;

  const { rttMinUs, rttMedianUs, rttP99Us, rttMaxUs, jitterUs, rttsUs, synced, errorEstimateUs, fwdUs, revUs } = s;
  if (!isNullableMicros(rttMinUs) || !isNullableMicros(rttMedianUs) || !isNullableMicros(rttP99Us) || !isNullableMicros(rttMaxUs)) return null;
  if (!isNullableMicros(jitterUs)) return null;
  if (!allMicros(rttsUs) || typeof synced !== 'boolean') return null;
  if (typeof errorEstimateUs !== 'number' || !(errorEstimateUs >= 0 && errorEstimateUs <= ERROR_ESTIMATE_MAX)) return null;
  if (!allDelays(fwdUs) || !allDelays(revUs)) return null;

  // The schema's cross-field rules (its superRefine).
  if (received > sent || lost !== sent - received || rttsUs.length !== received) return null;
  const statsNull = (rttMinUs === null ? 1 : 0) + (rttMedianUs === null ? 1 : 0) + (rttP99Us === null ? 1 : 0) + (rttMaxUs === null ? 1 : 0);
  if (received === 0 ? statsNull !== 4 : statsNull !== 0) return null;
  if (synced ? fwdUs.length !== received || revUs.length !== received : fwdUs.length > 0 || revUs.length > 0) return null;

  const sample: TrainSample = {
    trainId, dst, engine, startedAtUs, flow, srcPort, dscp, sent, received, lost, duplicated, reordered,
    rttMinUs, rttMedianUs, rttP99Us, rttMaxUs, jitterUs, rttsUs, synced, errorEstimateUs, fwdUs, revUs,
  };
  if (senderTimestamping !== undefined) sample.senderTimestamping = senderTimestamping;
  if (reflectorTimestamping !== undefined) sample.reflectorTimestamping = reflectorTimestamping;
  return sample;
}
