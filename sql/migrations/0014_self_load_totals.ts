import type { Migration } from './index.js';
import { RTT_BUCKET_NEGATED_BOUNDS } from './0012_latency_totals.js';

/**
 * Our own load out of the network's counters.
 *
 * A train measured while citymesh's own throughput test loaded its link
 * (sql/load-windows.ts) measures our test, not the network: the SLA and the
 * alerts leave it out, and so must the Prometheus counters and histogram a
 * NOC's rules are written on. A counter cannot leave anything out after the
 * fact (it must only go up), so the collector decides when it stores a train:
 * latency_trains.self_load is 1 when the train began inside a guarded load
 * window known at that moment, and the totals keep the two kinds apart.
 *
 * These tables replace latency_totals and latency_totals_le (migration 0012,
 * whose views are dropped here so ingest does not count everything twice):
 * the same columns and bucketing plus self_load. Counting starts again at
 * zero when this migration runs, which Prometheus reads as one counter reset.
 */
export const selfLoadTotals: Migration = {
  version: 14,
  name: 'self_load_totals',
  statements: [
    `ALTER TABLE latency_trains ADD COLUMN IF NOT EXISTS self_load UInt8 DEFAULT 0 AFTER reflector_ts`,
    `CREATE TABLE IF NOT EXISTS path_totals
(
    src         LowCardinality(String),
    dst         LowCardinality(String),
    engine      LowCardinality(String),
    self_load   UInt8,
    trains      SimpleAggregateFunction(sum, UInt64),
    sent        SimpleAggregateFunction(sum, UInt64),
    received    SimpleAggregateFunction(sum, UInt64),
    lost        SimpleAggregateFunction(sum, UInt64),
    rtt_count   SimpleAggregateFunction(sum, UInt64),
    rtt_sum_us  SimpleAggregateFunction(sum, Float64)
)
ENGINE = AggregatingMergeTree
ORDER BY (src, dst, engine, self_load)
SETTINGS non_replicated_deduplication_window = 100000`,
    `CREATE MATERIALIZED VIEW IF NOT EXISTS path_totals_mv TO path_totals AS
SELECT
    src,
    dst,
    engine,
    in_self_load AS self_load,
    count() AS trains,
    sum(in_sent) AS sent,
    sum(in_received) AS received,
    sum(in_lost) AS lost,
    sum(length(in_rtts)) AS rtt_count,
    sum(arraySum(in_rtts)) AS rtt_sum_us
FROM
(
    SELECT src, dst, engine, self_load AS in_self_load, sent AS in_sent, received AS in_received, lost AS in_lost, rtts_us AS in_rtts
    FROM latency_trains
)
GROUP BY src, dst, engine, self_load`,
    `CREATE TABLE IF NOT EXISTS path_totals_le
(
    src         LowCardinality(String),
    dst         LowCardinality(String),
    engine      LowCardinality(String),
    self_load   UInt8,
    le_us       UInt32,
    packets     SimpleAggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree
ORDER BY (src, dst, engine, self_load, le_us)
SETTINGS non_replicated_deduplication_window = 100000`,
    `CREATE MATERIALIZED VIEW IF NOT EXISTS path_totals_le_mv TO path_totals_le AS
SELECT
    src,
    dst,
    engine,
    in_self_load AS self_load,
    toUInt32(-roundDown(-toFloat64(in_rtt), CAST([${RTT_BUCKET_NEGATED_BOUNDS.join(', ')}], 'Array(Float64)'))) AS le_us,
    count() AS packets
FROM
(
    SELECT src, dst, engine, self_load AS in_self_load, rtts_us AS in_rtts
    FROM latency_trains
)
ARRAY JOIN in_rtts AS in_rtt
GROUP BY src, dst, engine, self_load, le_us`,
    `DROP VIEW IF EXISTS latency_totals_mv`,
    `DROP VIEW IF EXISTS latency_totals_le_mv`,
    `DROP TABLE IF EXISTS latency_totals`,
    `DROP TABLE IF EXISTS latency_totals_le`,
  ],
};
