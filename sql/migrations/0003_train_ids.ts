import type { Migration } from './index.js';

/**
 * Every train carries an id assigned by the probe when it is measured, so a
 * regulator (and the reliability tests) can prove no train is stored twice:
 * `SELECT train_id, count() ... HAVING count() > 1` must be empty. The bloom
 * filter makes a lookup by id cheap without changing the sort key.
 */
export const trainIds: Migration = {
  version: 3,
  name: 'train_ids',
  statements: [
    `ALTER TABLE latency_trains ADD COLUMN IF NOT EXISTS train_id String DEFAULT '' CODEC(ZSTD(1)) AFTER batch_id`,
    `ALTER TABLE latency_trains ADD INDEX IF NOT EXISTS train_id_bloom train_id TYPE bloom_filter(0.01) GRANULARITY 4`,
  ],
};
