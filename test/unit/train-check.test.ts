/**
 * The hand-written train check (collector/train-check.ts) against the schema
 * it stands in for. It may decline what the schema accepts (the schema then
 * decides), but it must never accept what the schema refuses, and what it
 * accepts must be exactly what the schema returns, key order included (the
 * batch content hash is computed from it). And it must accept every valid
 * sample, or the fast path would be dead code.
 */
import { describe, expect, it } from 'vitest';
import { checkTrainSample, parseProbeMessage, parseProbeMessageBySchema, trainSampleSchema, unstorableText } from '../../protocol/index.js';
import { fuzzSeed, IdSource, mutateBatch, Rng, SAMPLE_KEYS, validBatch, validSample, type FuzzCentre, type Json, type JsonObject } from '../helpers/fuzz.js';

const SEED = fuzzSeed();
const who: FuzzCentre = { centre: 'alpha', peers: ['beta', 'gamma'], all: ['alpha', 'beta', 'gamma'] };
const NOW_US = Date.now() * 1000;

/** What the schema path says of one sample: its output as JSON text, or null when refused. */
function bySchema(sample: unknown): string | null {
  if (unstorableText(sample)) return null;
  const parsed = trainSampleSchema.safeParse(sample);
  return parsed.success ? JSON.stringify(parsed.data) : null;
}

/** The fast check agrees: declines what the schema refuses, returns what the schema returns. */
function agree(sample: unknown): 'accepted' | 'refused' | 'declined' {
  const fast = checkTrainSample(sample);
  const reference = bySchema(sample);
  if (fast === null) return reference === null ? 'refused' : 'declined';
  expect(reference, `fast check accepted what the schema refuses: ${JSON.stringify(sample)?.slice(0, 300)}`).not.toBeNull();
  expect(JSON.stringify(fast)).toBe(reference);
  return 'accepted';
}

/** Values at and around every boundary the schema draws, of every JSON type. */
const EDGES: Json[] = [
  0, -0, 1, -1, 0.5, -0.001, 63, 64, 65535, 65536, 10_000, 10_001, 60_000_000, 60_000_000.001, -60_000_000, -60_000_000.001,
  3_600_000_000, 3_600_000_000.5, 2 ** 53 - 1, 2 ** 53, 2 ** 60, 1e300, -1e300, Number.MIN_VALUE, Number.MAX_VALUE,
  '', 'x', 'beta', 'stamp', 'icmp', 'hardware', 'kernel', 'user', 'unknown', 'abcdefgh', 'a'.repeat(64), 'a'.repeat(65), 'x'.repeat(33),
  'beta\ud800', '\udfffbeta', 'train-\ud83d\ude00', true, false, null, [], [1], [-1], [60_000_001], ['1'], [null], {}, { 0: 1, length: 1 },
];

describe('checkTrainSample against trainSampleSchema', () => {
  it(`accepts every valid sample exactly as the schema returns it (seed ${SEED})`, () => {
    const rng = new Rng(SEED);
    const ids = new IdSource('tc');
    for (let i = 0; i < 2000; i++) {
      const sample = validSample(rng, ids.trainId(), rng.pick(who.peers), NOW_US);
      if (rng.chance(0.3)) sample.senderTimestamping = rng.pick(['hardware', 'kernel', 'user', 'unknown']);
      if (rng.chance(0.3)) sample.reflectorTimestamping = rng.pick(['hardware', 'kernel', 'user', 'unknown']);
      // Wire order is not the schema's order: the result must be reordered all the same.
      const shuffled = rng.chance(0.5) ? Object.fromEntries(Object.entries(sample).reverse()) : sample;
      expect(agree(JSON.parse(JSON.stringify(shuffled)))).toBe('accepted');
    }
  });

  it('never accepts what the schema refuses: every field set to every edge value, every field removed, keys added', () => {
    const rng = new Rng(SEED + 1);
    const ids = new IdSource('te');
    const counts = { accepted: 0, refused: 0, declined: 0 };
    const keys = [...SAMPLE_KEYS, 'senderTimestamping', 'reflectorTimestamping'];
    for (const key of keys) {
      for (const edge of EDGES) {
        for (const received of [0, 3]) {
          const sample = validSample(rng, ids.trainId(), 'beta', NOW_US);
          if (received === 0) Object.assign(sample, { received: 0, lost: sample.sent, rttsUs: [], fwdUs: [], revUs: [], rttMinUs: null, rttMedianUs: null, rttP99Us: null, rttMaxUs: null });
          sample[key] = edge;
          counts[agree(JSON.parse(JSON.stringify(sample)))]++;
        }
      }
      const without = validSample(rng, ids.trainId(), 'beta', NOW_US);
      delete without[key];
      counts[agree(without)]++;
    }
    for (const extra of ['extra', '__proto__', 'constructor', 'toString', 'trainid']) {
      const sample = validSample(rng, ids.trainId(), 'beta', NOW_US);
      counts[agree(JSON.parse(`${JSON.stringify(sample).slice(0, -1)},${JSON.stringify(extra)}:1}`))]++;
    }
    for (const notObject of [null, 1, 'sample', [], [validSample(rng, ids.trainId(), 'beta', NOW_US)]]) counts[agree(notObject)]++;
    // The edges include valid values (both outcomes happen), and the check never needs the schema for a valid one.
    expect(counts.refused).toBeGreaterThan(0);
    expect(counts.accepted).toBeGreaterThan(0);
    expect(counts.declined).toBe(0);
  });

  it(`agrees on the fuzzer's mutated batches, sample by sample and whole messages (seed ${SEED})`, () => {
    const rng = new Rng(SEED + 2);
    const ids = new IdSource('tf');
    let samples = 0;
    for (let i = 0; i < 3000; i++) {
      const mutant = mutateBatch(rng, ids, who, NOW_US);
      const text = typeof mutant.payload === 'string' ? mutant.payload : mutant.payload.toString('utf8');
      // The whole message: same verdict, same error naming the same field, same message.
      expect(JSON.stringify(parseProbeMessage(text)), mutant.mutator).toBe(JSON.stringify(parseProbeMessageBySchema(text)));
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch {
        continue;
      }
      const list = (value as { samples?: unknown } | null)?.samples;
      if (!Array.isArray(list)) continue;
      for (const sample of list) {
        agree(sample);
        samples++;
      }
    }
    expect(samples).toBeGreaterThan(3000);
  });

  it('valid batches parse to the same message by either path (the fast path taken), with NIC and spool beside the trains', () => {
    const rng = new Rng(SEED + 3);
    const ids = new IdSource('tb');
    for (let i = 0; i < 300; i++) {
      const batch: JsonObject = validBatch(rng, ids, who, NOW_US, rng.int(1, 50));
      if (rng.chance(0.3)) {
        batch.nic = [{
          sampleId: ids.trainId(), interface: 'eth0', peer: 'beta', atUs: NOW_US - 1e6, intervalS: 10, speedMbps: 100_000, operState: 'up', reset: false,
          rxBps: 1, txBps: 2, rxPps: 3, txPps: 4, rxErrorsPs: 0, txErrorsPs: 0, rxDropsPs: 0, txDropsPs: 0, utilisation: 0.1,
        }];
      }
      const text = JSON.stringify(batch);
      const fast = parseProbeMessage(text);
      expect(fast.ok).toBe(true);
      expect(JSON.stringify(fast)).toBe(JSON.stringify(parseProbeMessageBySchema(text)));
    }
  });
});
