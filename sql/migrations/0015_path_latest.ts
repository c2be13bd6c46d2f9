import type { Migration } from './index.js';

/**
 * path_latest: one row per measured direction and engine (after merges): when
 * its newest train was measured, kept by a view as trains arrive. /v1/status
 * lists every direction with a train in the last day from here (as stale when
 * its window is empty) instead of grouping a day of the minute rollup.
 * Seeded from the last day of raw trains (max: a batch counted twice by the
 * seed and the view changes nothing). Keeps the base table's deduplication
 * window, like every view target.
 */
export const pathLatest: Migration = {
  version: 15,
  name: 'path_latest',
  statements: [
    `CREATE TABLE IF NOT EXISTS path_latest
(
    src         LowCardinality(String),
    dst         LowCardinality(String),
    engine      LowCardinality(String),
    last_ts     SimpleAggregateFunction(max, DateTime64(6, 'UTC'))
)
ENGINE = AggregatingMergeTree
ORDER BY (src, dst, engine)
SETTINGS non_replicated_deduplication_window = 100000`,
    `CREATE MATERIALIZED VIEW IF NOT EXISTS path_latest_mv TO path_latest AS
SELECT src, dst, engine, max(in_ts) AS last_ts
FROM (SELECT src, dst, engine, ts AS in_ts FROM latency_trains)
GROUP BY src, dst, engine`,
    `INSERT INTO path_latest (src, dst, engine, last_ts)
SELECT src, dst, engine, max(in_ts)
FROM (SELECT src, dst, engine, ts AS in_ts FROM latency_trains WHERE ts >= now64(6) - INTERVAL 1 DAY)
GROUP BY src, dst, engine`,
  ],
};
