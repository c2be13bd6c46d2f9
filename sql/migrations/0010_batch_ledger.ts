import type { Migration } from './index.js';

/**
 * batch_ledger: which content each stored batch id carried, per centre.
 *
 * A batch id is the probe's promise that a resend is the same batch; the
 * insert deduplication token relies on it. A probe whose spool was reset (or a
 * broken one) can reuse an id for different content, which deduplication would
 * drop while the collector acknowledged it. The collector records the sha-256
 * of each stored batch's content here (after its rows are stored) and refuses
 * a batch whose id is known with other content (`batch_conflict`); the probe
 * then sends the same data under a new id, so nothing is lost.
 *
 * Looked up by (centre, batch_id): the sort key. Kept 400 days, as long as the
 * raw data a replay could duplicate. A control table on a cluster (every node
 * holds all of it): one small row per batch.
 */
export const batchLedger: Migration = {
  version: 10,
  name: 'batch_ledger',
  statements: [
    `CREATE TABLE IF NOT EXISTS batch_ledger
(
    centre         LowCardinality(String),
    batch_id       String,
    content_sha256 FixedString(64),
    stored_at      DateTime64(3, 'UTC')
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(stored_at)
ORDER BY (centre, batch_id)
TTL toDateTime(stored_at) + INTERVAL 400 DAY DELETE
SETTINGS non_replicated_deduplication_window = 100000, ttl_only_drop_parts = 1`,
  ],
};
