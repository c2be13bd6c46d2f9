import type { Migration } from './index.js';

/**
 * SLA inputs per link and minute, so a month is a scan of links x minutes,
 * never a merge of every minute's t-digest states (sql/sla-minutes.ts).
 *
 * - sla_minutes: one row per link (a < b, link = 'a~b'), engine and minute
 *   with data: both directions' train, packet and loss counts and the four
 *   percentile levels, and the worse direction's levels, exactly as the month
 *   query computes them from latency_1m (the same t-digest merge, done once).
 *   Written by the materialiser, a server job, for whole hours that have
 *   ended; a link-hour written again (late trains) replaces its minutes: the
 *   version is the link-hour's train count, which only grows.
 *
 * - sla_hours: per link, engine and hour, how many trains latency_1m holds
 *   (`trains`, fed by a view on every insert, seeded here from latency_1m)
 *   and how many the materialiser's minutes of that hour were computed from
 *   (`finalised_trains`). Where the two differ (the current hour, late trains,
 *   an hour not yet materialised) the month query reads latency_1m for that
 *   link-hour instead, so a figure never depends on how far the job got.
 *   A seed that overlaps an insert running during the migration counts that
 *   batch twice: its hours then never match and are always read from
 *   latency_1m (slower, never wrong).
 *
 * - latency_1h: the minute rollup's columns per hour, fed from the trains by
 *   its own view and seeded from latency_1m (the same seed caveat). A series
 *   over months asks for steps of hours; read from here it merges a state per
 *   hour (9,500 for 13 months) instead of one per minute (570,000).
 *
 * Same monthly partitions and retention as the minute rollup they summarise.
 */
export const slaMinutesHourlyRollup: Migration = {
  version: 16,
  name: 'sla_minutes_hourly_rollup',
  statements: [
    `CREATE TABLE IF NOT EXISTS sla_hours
(
    engine            LowCardinality(String),
    a                 LowCardinality(String),
    b                 LowCardinality(String),
    hour              DateTime('UTC'),
    trains            SimpleAggregateFunction(sum, UInt64),
    finalised_trains  SimpleAggregateFunction(max, UInt64)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (engine, a, b, hour)
TTL hour + INTERVAL 800 DAY
SETTINGS non_replicated_deduplication_window = 100000, ttl_only_drop_parts = 1`,
    `CREATE MATERIALIZED VIEW IF NOT EXISTS sla_hours_mv TO sla_hours AS
SELECT engine, least(in_src, in_dst) AS a, greatest(in_src, in_dst) AS b, toStartOfHour(in_ts) AS hour,
       count() AS trains, toUInt64(0) AS finalised_trains
FROM (SELECT engine, src AS in_src, dst AS in_dst, toDateTime(ts, 'UTC') AS in_ts FROM latency_trains)
GROUP BY engine, a, b, hour`,
    `INSERT INTO sla_hours (engine, a, b, hour, trains, finalised_trains)
SELECT engine, least(in_src, in_dst), greatest(in_src, in_dst), toStartOfHour(in_minute), sum(in_trains), toUInt64(0)
FROM (SELECT engine, src AS in_src, dst AS in_dst, minute AS in_minute, trains AS in_trains FROM latency_1m)
GROUP BY engine, least(in_src, in_dst), greatest(in_src, in_dst), toStartOfHour(in_minute)`,
    `CREATE TABLE IF NOT EXISTS sla_minutes
(
    engine       LowCardinality(String),
    a            LowCardinality(String),
    b            LowCardinality(String),
    link         LowCardinality(String),
    minute       DateTime('UTC'),
    hour_trains  UInt64,
    ab_trains    UInt32,
    ab_sent      UInt32,
    ab_received  UInt32,
    ab_lost      UInt32,
    ab_q_us      Array(Float32),
    ba_trains    UInt32,
    ba_sent      UInt32,
    ba_received  UInt32,
    ba_lost      UInt32,
    ba_q_us      Array(Float32),
    dirs         UInt8,
    rx_dirs      UInt8,
    m_q_us       Array(Float32)
)
ENGINE = ReplacingMergeTree(hour_trains)
PARTITION BY toYYYYMM(minute)
ORDER BY (engine, link, minute)
TTL minute + INTERVAL 800 DAY
SETTINGS ttl_only_drop_parts = 1`,
    `CREATE TABLE IF NOT EXISTS latency_1h
(
    hour        DateTime('UTC') CODEC(Delta(4), ZSTD(1)),
    src         LowCardinality(String),
    dst         LowCardinality(String),
    engine      LowCardinality(String),
    trains      SimpleAggregateFunction(sum, UInt64),
    sent        SimpleAggregateFunction(sum, UInt64),
    received    SimpleAggregateFunction(sum, UInt64),
    lost        SimpleAggregateFunction(sum, UInt64),
    duplicated  SimpleAggregateFunction(sum, UInt64),
    reordered   SimpleAggregateFunction(sum, UInt64),
    rtt_min_us  AggregateFunction(minIf, Float32, UInt8),
    rtt_max_us  AggregateFunction(maxIf, Float32, UInt8),
    rtt_q_us    AggregateFunction(quantilesTDigestArray(0.5, 0.9, 0.95, 0.99), Array(Float32)),
    jitter_us   AggregateFunction(avgIf, Float32, UInt8)
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (src, dst, engine, hour)
TTL hour + INTERVAL 800 DAY
SETTINGS non_replicated_deduplication_window = 100000, ttl_only_drop_parts = 1`,
    `CREATE MATERIALIZED VIEW IF NOT EXISTS latency_1h_mv TO latency_1h AS
SELECT
    toStartOfHour(in_ts) AS hour,
    src,
    dst,
    engine,
    count() AS trains,
    sum(in_sent) AS sent,
    sum(in_received) AS received,
    sum(in_lost) AS lost,
    sum(in_duplicated) AS duplicated,
    sum(in_reordered) AS reordered,
    minIfState(assumeNotNull(in_min), in_received > 0) AS rtt_min_us,
    maxIfState(assumeNotNull(in_max), in_received > 0) AS rtt_max_us,
    quantilesTDigestArrayState(0.5, 0.9, 0.95, 0.99)(in_rtts) AS rtt_q_us,
    avgIfState(assumeNotNull(in_jitter), in_jitter IS NOT NULL) AS jitter_us
FROM
(
    SELECT toDateTime(ts, 'UTC') AS in_ts, src, dst, engine, sent AS in_sent, received AS in_received, lost AS in_lost,
           duplicated AS in_duplicated, reordered AS in_reordered, rtt_min_us AS in_min,
           rtt_max_us AS in_max, rtts_us AS in_rtts, jitter_us AS in_jitter
    FROM latency_trains
)
GROUP BY hour, src, dst, engine`,
    `INSERT INTO latency_1h (hour, src, dst, engine, trains, sent, received, lost, duplicated, reordered, rtt_min_us, rtt_max_us, rtt_q_us, jitter_us)
SELECT toStartOfHour(in_minute), src, dst, engine, sum(in_trains), sum(in_sent), sum(in_received), sum(in_lost), sum(in_duplicated), sum(in_reordered),
       minIfMergeState(in_min), maxIfMergeState(in_max), quantilesTDigestArrayMergeState(0.5, 0.9, 0.95, 0.99)(in_q), avgIfMergeState(in_jitter)
FROM
(
    SELECT minute AS in_minute, src, dst, engine, trains AS in_trains, sent AS in_sent, received AS in_received, lost AS in_lost,
           duplicated AS in_duplicated, reordered AS in_reordered, rtt_min_us AS in_min, rtt_max_us AS in_max, rtt_q_us AS in_q, jitter_us AS in_jitter
    FROM latency_1m
)
GROUP BY toStartOfHour(in_minute), src, dst, engine`,
  ],
};
