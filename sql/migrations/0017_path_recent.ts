import type { Migration } from './index.js';

/**
 * path_recent: the trains of the last hour or so, ordered by measurement
 * time, with only the columns the live window reads (/v1/status, the
 * matrix, the network metrics' gauges and window histogram). latency_trains
 * is ordered by (src, dst, engine, ts): a window of the last 60 s over every
 * direction is an index search per direction through months of parts; here
 * it is one range at the end of one or two small parts, whatever the number
 * of directions or the days stored.
 *
 * - The view copies only trains measured within the hour before the insert
 *   (a replayed spool of last week, a backfill, a test writing a month in one
 *   INSERT do not belong to any live window; they stay in latency_trains).
 * - Hourly partitions dropped whole two hours after their hour (the window
 *   is 60 s; the margin covers a clock step): the table never grows with the
 *   days stored. Merges check for expired parts every 10 minutes.
 * - self_load as the collector marked it (migration 0014), beside the load
 *   windows the queries still check at read time.
 * - Seeded from the last hour of trains not already copied by the view: a
 *   batch stored while this migration runs may be counted twice in the
 *   window for at most a minute (the window then moves past it).
 */
export const pathRecent: Migration = {
  version: 17,
  name: 'path_recent',
  statements: [
    `CREATE TABLE IF NOT EXISTS path_recent
(
    ts            DateTime64(6, 'UTC'),
    src           LowCardinality(String),
    dst           LowCardinality(String),
    engine        LowCardinality(String),
    train_id      String,
    self_load     UInt8,
    sent          UInt32,
    received      UInt32,
    lost          UInt32,
    jitter_us     Nullable(Float32),
    rtts_us       Array(Float32),
    sender_ts     LowCardinality(String),
    reflector_ts  LowCardinality(String),
    synced        Bool,
    fwd_us        Array(Float32)
)
ENGINE = MergeTree
PARTITION BY toStartOfHour(toDateTime(ts, 'UTC'))
ORDER BY (ts, src, dst, engine)
TTL toStartOfHour(toDateTime(ts, 'UTC')) + INTERVAL 2 HOUR
SETTINGS ttl_only_drop_parts = 1, merge_with_ttl_timeout = 600, non_replicated_deduplication_window = 100000`,
    `CREATE MATERIALIZED VIEW IF NOT EXISTS path_recent_mv TO path_recent AS
SELECT ts, src, dst, engine, train_id, self_load, sent, received, lost, jitter_us, rtts_us, sender_ts, reflector_ts, synced, fwd_us
FROM latency_trains
WHERE ts >= now64(6) - INTERVAL 1 HOUR`,
    `INSERT INTO path_recent (ts, src, dst, engine, train_id, self_load, sent, received, lost, jitter_us, rtts_us, sender_ts, reflector_ts, synced, fwd_us)
SELECT ts, src, dst, engine, train_id, self_load, sent, received, lost, jitter_us, rtts_us, sender_ts, reflector_ts, synced, fwd_us
FROM latency_trains
WHERE ts >= now64(6) - INTERVAL 1 HOUR
  AND train_id NOT IN (SELECT train_id FROM path_recent WHERE ts >= now64(6) - INTERVAL 2 HOUR)`,
  ],
};
