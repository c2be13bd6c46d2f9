/** What a batch id is bound to: the hash of its records (the batch ledger keeps it per stored id). */
import { createHash } from 'node:crypto';
import type { ProbeBatch } from '../protocol/index.js';

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
 */
export function batchContentSha256(batch: ProbeBatch): string {
  const hash = createHash('sha256');
  hash.update('[[');
  for (let i = 0; i < batch.samples.length; i++) {
    if (i > 0) hash.update(',');
    hash.update(JSON.stringify(batch.samples[i]), 'utf8');
  }
  hash.update(`],${JSON.stringify(batch.nic ?? [])},${JSON.stringify(batch.throughput ?? [])},${JSON.stringify(batch.diagnostics ?? [])}]`, 'utf8');
  return hash.digest('hex');
}
