import type { Migration } from './index.js';

/**
 * The live state of every measured direction, kept small as data arrives, so
 * /v1/status and the matrix never read latency_trains (the raw trains of a
 * city grow by millions a day; the status needs the last minute of them).
 *
 * - path_latest: one row per direction and engine (after merges): when its
 *   newest train was measured. Lists a path that has gone quiet (as stale)
 *   without reading any history. Seeded from the last day of raw trains.
 *
 * - path_seconds: per direction, engine and whole second, what the status
 *   window needs: train, packet and loss counts, every packet's RTT (so the
 *   window's percentiles stay exact), the IPDV sum and count (its mean), the
 *   newest train's time and how its ends were timestamped. Only the last two
 *   hours are written (the view skips older trains: replayed history) and
 *   hourly partitions expire whole, so the table holds about two hours of
 *   RTTs whatever the retention of the raw trains. A status window is whole
 *   seconds: the last N s plus the start of the second it begins in.
 *
 * Both views keep the base table's deduplication window, so a retried batch
 * that latency_trains drops is not counted here either.
 */
export const pathLatest: Migration = {
  version: 14,
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
    `CREATE TABLE IF NOT EXISTS path_seconds
(
    second         DateTime('UTC'),
    src            LowCardinality(String),
    dst            LowCardinality(String),
    engine         LowCardinality(String),
    trains         SimpleAggregateFunction(sum, UInt64),
    sent           SimpleAggregateFunction(sum, UInt64),
    lost           SimpleAggregateFunction(sum, UInt64),
    rtts_us        SimpleAggregateFunction(groupArrayArray, Array(Float32)),
    jitter_sum_us  SimpleAggregateFunction(sum, Float64),
    jitter_trains  SimpleAggregateFunction(sum, UInt64),
    last_ts        SimpleAggregateFunction(max, DateTime64(6, 'UTC')),
    sender_ts      AggregateFunction(argMax, LowCardinality(String), DateTime64(6, 'UTC')),
    reflector_ts   AggregateFunction(argMax, LowCardinality(String), DateTime64(6, 'UTC'))
)
ENGINE = AggregatingMergeTree
PARTITION BY toStartOfHour(second)
ORDER BY (src, dst, engine, second)
TTL second + INTERVAL 3 HOUR
SETTINGS non_replicated_deduplication_window = 100000, ttl_only_drop_parts = 1, merge_with_ttl_timeout = 1800`,
    `CREATE MATERIALIZED VIEW IF NOT EXISTS path_seconds_mv TO path_seconds AS
SELECT
    toDateTime(in_ts, 'UTC') AS second,
    src,
    dst,
    engine,
    count() AS trains,
    sum(in_sent) AS sent,
    sum(in_lost) AS lost,
    groupArrayArray(in_rtts) AS rtts_us,
    sumIf(toFloat64(assumeNotNull(in_jitter)), in_jitter IS NOT NULL) AS jitter_sum_us,
    countIf(in_jitter IS NOT NULL) AS jitter_trains,
    max(in_ts) AS last_ts,
    argMaxState(in_sender_ts, in_ts) AS sender_ts,
    argMaxState(in_reflector_ts, in_ts) AS reflector_ts
FROM
(
    SELECT ts AS in_ts, src, dst, engine, sent AS in_sent, lost AS in_lost, rtts_us AS in_rtts, jitter_us AS in_jitter,
           sender_ts AS in_sender_ts, reflector_ts AS in_reflector_ts
    FROM latency_trains
    WHERE ts >= now64(6) - INTERVAL 2 HOUR
)
GROUP BY second, src, dst, engine`,
  ],
};
