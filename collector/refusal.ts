/** How the collector says no: an error message for the probe, its HTTP status, a counted and logged reason. */
import type { Logger } from 'pino';
import type { CollectorAck, CollectorError, ErrorCode } from '../protocol/index.js';
import type { CollectorMetrics } from './metrics.js';

export type Refusal = { ok: false; status: number; error: CollectorError };

export type IngestOutcome =
  | { ok: true; ack: CollectorAck }
  | Refusal;

const httpStatus: Partial<Record<ErrorCode, number>> = {
  bad_token: 401,
  unknown_centre: 401,
  not_authenticated: 401,
  too_large: 413,
  busy: 503,
  rate_limited: 429,
  too_many_connections: 429,
  store_unavailable: 503,
  batch_conflict: 409,
};

/** `retryAfterMs`: busy only, when the store is behind: when a batch would be admitted (see retryAfterMs in batch-ingest.ts). */
export function refusal(metrics: CollectorMetrics, log: Logger, code: ErrorCode, error: string, field?: string, batchId?: string, retryAfterMs?: number): Refusal {
  metrics.rejected.inc({ reason: code });
  log.warn({ code, field, batchId, retryAfterMs }, `refused probe message: ${error}`);
  return {
    ok: false,
    status: httpStatus[code] ?? 400,
    error: { type: 'error', code, error, ...(field ? { field } : {}), ...(batchId ? { batchId } : {}), ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) },
  };
}
