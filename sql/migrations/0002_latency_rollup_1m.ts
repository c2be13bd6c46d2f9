import type { Migration } from './index.js';

/**
 * One-minute rollup for dashboards and SLA minutes. The materialized view is a
 * trigger on each inserted block of latency_trains (it does not backfill).
 * Percentiles are t-digest states over the raw per-packet RTTs (not an average
 * of per-train percentiles), so merging minutes into hours stays meaningful.
 * The target keeps its own deduplication window so a retried batch that the
 * base table drops is not counted twice here either.
 */
export const latencyRollup1m: Migration = {
  version: 2,
  name: 'latency_rollup_1m',
  statements: [
    `CREATE TABLE IF NOT EXISTS latency_1m
(
    minute      DateTime('UTC') CODEC(Delta(4), ZSTD(1)),
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
PARTITION BY toYYYYMM(minute)
ORDER BY (src, dst, engine, minute)
TTL minute + INTERVAL 800 DAY
SETTINGS non_replicated_deduplication_window = 100000, ttl_only_drop_parts = 1`,
    // Inputs are renamed in the inner SELECT because the outputs reuse their
    // names, and ClickHouse resolves a name to the alias before the column.
    `CREATE MATERIALIZED VIEW IF NOT EXISTS latency_1m_mv TO latency_1m AS
SELECT
    toStartOfMinute(ts) AS minute,
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
    SELECT ts, src, dst, engine, sent AS in_sent, received AS in_received, lost AS in_lost,
           duplicated AS in_duplicated, reordered AS in_reordered, rtt_min_us AS in_min,
           rtt_max_us AS in_max, rtts_us AS in_rtts, jitter_us AS in_jitter
    FROM latency_trains
)
GROUP BY minute, src, dst, engine`,
  ],
};
