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
 * Same monthly partitions and retention as the minute rollup they summarise.
 */
export const slaMinutes: Migration = {
  version: 15,
  name: 'sla_minutes',
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
  ],
};
