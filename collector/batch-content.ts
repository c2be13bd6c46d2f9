/** What a batch id is bound to: the hash of its records (the batch ledger keeps it per stored id). */
import { createHash } from 'node:crypto';
import type { ProbeBatch, TrainSample } from '../protocol/index.js';
import type { TrainArraysJson } from '../sql/index.js';

/**
 * What a batch id promises stays the same on every resend: its records. The
 * fields a probe refreshes per send (createdAtUs, spool) are left out. Hashed
 * from the validated message, whose key order is the schema's, so the same
 * records hash the same however the JSON was written.
 *
 * The bytes hashed are JSON.stringify([samples, nic, throughput, diagnostics])
 * (ledgers already hold hashes of exactly that), fed to the hash one sample
 * at a time: the same digest without building a megabyte string per batch
 * (half the hash's cost, measured in-process, and that much less garbage).
 *
 * `arrays`: each sample's delay arrays already written as JSON (same order as
 * batch.samples): the text the insert reuses, so the numbers, most of a
 * sample's text, are written once per batch instead of twice.
 */
export function batchContentSha256(batch: ProbeBatch, arrays?: readonly TrainArraysJson[]): string {
  const hash = createHash('sha256');
  hash.update('[[');
  for (let i = 0; i < batch.samples.length; i++) {
    if (i > 0) hash.update(',');
    const a = arrays?.[i];
    hash.update(a ? sampleJson(batch.samples[i]!, a) : JSON.stringify(batch.samples[i]), 'utf8');
  }
  hash.update(`],${JSON.stringify(batch.nic ?? [])},${JSON.stringify(batch.throughput ?? [])},${JSON.stringify(batch.diagnostics ?? [])}]`, 'utf8');
  return hash.digest('hex');
}

/** `"key":` for each key seen (a sample's keys are the schema's: a handful). */
const keyPrefixes = new Map<string, string>();

function keyPrefix(key: string): string {
  let prefix = keyPrefixes.get(key);
  if (prefix === undefined) {
    prefix = `${JSON.stringify(key)}:`;
    if (keyPrefixes.size < 64) keyPrefixes.set(key, prefix);
  }
  return prefix;
}

/**
 * JSON.stringify(s), its delay arrays taken as written: the same text, key by
 * key in the object's order (undefined values left out, as JSON.stringify
 * does).
 */
function sampleJson(s: TrainSample, arrays: TrainArraysJson): string {
  let out = '';
  for (const key in s) {
    const value: unknown = s[key as keyof TrainSample];
    if (value === undefined) continue;
    const json = key === 'rttsUs' ? arrays.rtts : key === 'fwdUs' ? arrays.fwd : key === 'revUs' ? arrays.rev : JSON.stringify(value);
    out += `${out.length > 0 ? ',' : ''}${keyPrefix(key)}${json}`;
  }
  return `{${out}}`;
}
