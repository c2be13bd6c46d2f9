import type { Migration } from './index.js';

/**
 * latency_1m_recent: the minute rollup of the current and the previous hour
 * only, in hourly partitions, for the month's link-hours not yet
 * materialised (sql/sla.ts: the current hour of a month to now, an hour
 * whose late trains came after its summary).
 *
 * Why: latency_1m is ordered by (src, dst, engine, minute) in monthly
 * partitions that merge into one part, so a direction's last hour shares its
 * 8,192-row granule with days of that direction's other minutes, and reading
 * the current hour of every direction decodes the t-digest states of the
 * whole month so far (2.5 M rows at 20 centres, 300-400 ms of a month query
 * to now). Here an hour's partition holds only that hour: 60 rows per
 * direction. latency_1m's granularity cannot change on an existing table
 * (index_granularity is read-only), and 8x smaller granules there would cost
 * 8x the primary index memory of 800 days.
 *
 * - Same columns and the same states as latency_1m, written by a view of the
 *   same SELECT from the same inserted blocks.
 * - The view copies only trains of the previous, the current or the next
 *   hour at insert time (the next: a probe's clock a little ahead): a
 *   backfill, a replayed spool of last week or a clock far off stays out (it
 *   would also create a partition per hour it spans, and an INSERT into more
 *   than max_partitions_per_insert_block partitions fails whole).
 * - A month reads its stale link-hours from here only when, for every one
 *   of them, the trains held here are as many as sla_hours counts (both
 *   views fire on every insert): with an hour whose trains came later than
 *   the next hour, a partition already dropped, or a seed overlapping an
 *   insert (counted twice), it reads them from latency_1m. Slower, never
 *   wrong.
 * - Partitions are dropped whole three hours after their hour; merges check
 *   for expired parts every 10 minutes. The table never grows with the
 *   months stored.
 * - Seeded from latency_1m's last two hours, so the hour running when the
 *   migration ran is read fast too.
 */
export const latency1mRecent: Migration = {
  version: 19,
  name: 'latency_1m_recent',
  statements: [
    `CREATE TABLE IF NOT EXISTS latency_1m_recent
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
PARTITION BY toStartOfHour(minute)
ORDER BY (src, dst, engine, minute)
TTL toStartOfHour(minute) + INTERVAL 3 HOUR
SETTINGS non_replicated_deduplication_window = 100000, ttl_only_drop_parts = 1, merge_with_ttl_timeout = 600`,
    `CREATE MATERIALIZED VIEW IF NOT EXISTS latency_1m_recent_mv TO latency_1m_recent AS
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
    WHERE ts >= toStartOfHour(now()) - INTERVAL 1 HOUR AND ts < toStartOfHour(now()) + INTERVAL 2 HOUR
)
GROUP BY minute, src, dst, engine`,
    `INSERT INTO latency_1m_recent (minute, src, dst, engine, trains, sent, received, lost, duplicated, reordered, rtt_min_us, rtt_max_us, rtt_q_us, jitter_us)
SELECT minute, src, dst, engine, trains, sent, received, lost, duplicated, reordered, rtt_min_us, rtt_max_us, rtt_q_us, jitter_us
FROM latency_1m
WHERE minute >= toStartOfHour(now()) - INTERVAL 1 HOUR AND minute < toStartOfHour(now()) + INTERVAL 2 HOUR
  AND (SELECT count() FROM latency_1m_recent) = 0`,
  ],
};
