/** What a batch id is bound to: the hash of its records (the batch ledger keeps it per stored id). */
import { createHash } from 'node:crypto';
import type { ProbeBatch } from '../protocol/index.js';

/**
 * What a batch id promises stays the same on every resend: its records. The
 * fields a probe refreshes per send (createdAtUs, spool) are left out. Hashed
 * from the validated message, whose key order is the schema's, so the same
 * records hash the same however the JSON was written.
 */
export function batchContentSha256(batch: ProbeBatch): string {
  const content = JSON.stringify([batch.samples, batch.nic ?? [], batch.throughput ?? [], batch.diagnostics ?? []]);
  return createHash('sha256').update(content, 'utf8').digest('hex');
}
