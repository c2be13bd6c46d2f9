import type { Migration } from './index.js';

/**
 * Upper bounds (`le`) of the RTT histogram citymesh exposes to Prometheus, in
 * seconds as written in the exposition. Chosen for metro links: 20 µs steps
 * where kernel-stamped loopback and short fibre sit, ~10 % steps from 150 µs
 * to 2 ms (where every link's SLA target lies, 1–2 ms RTT), then coarser to
 * 2.5 s for outages and timeouts. They are written into the view below, so
 * changing them is a new migration (and a new table), never an edit here.
 */
export const RTT_BUCKET_BOUNDS_S: readonly string[] = [
  '0.00002', '0.00004', '0.00006', '0.00008', '0.0001', '0.000125', '0.00015', '0.000175', '0.0002', '0.00025',
  '0.0003', '0.00035', '0.0004', '0.00045', '0.0005', '0.0006', '0.0007', '0.0008', '0.0009', '0.001',
  '0.0011', '0.0012', '0.0013', '0.0014', '0.0015', '0.00175', '0.002', '0.0025', '0.003', '0.004',
  '0.005', '0.0075', '0.01', '0.025', '0.05', '0.1', '0.25', '0.5', '1', '2.5',
];

/** The same bounds in microseconds, the unit RTTs are stored in. */
export const RTT_BUCKET_BOUNDS_US: readonly number[] = RTT_BUCKET_BOUNDS_S.map((s) => Math.round(Number(s) * 1e6));

/** Stored as the `le` of the +Inf bucket. */
export const RTT_BUCKET_INF_US = 4_294_967_295;

/**
 * Running totals per measured direction and engine, for Prometheus counters.
 *
 * A Prometheus counter must only go up, and every server answering a scrape
 * must give the same figure, or a scrape through a load balancer that lands on
 * another server would look like a counter reset. Totals kept in ClickHouse
 * (fed by materialized views on every insert, a row per path, or per path and
 * bucket, after merges) are that: the same on every server, across restarts,
 * never decreasing (no TTL here, unlike the raw trains and minute rollup whose
 * expiry would lower a sum). A retried batch is dropped here as in the base
 * table (same deduplication window). Counting starts when this migration runs
 * (a view does not backfill); Prometheus only ever uses increases.
 *
 * latency_totals_le counts packets per bucket (not cumulative): each RTT goes
 * to the smallest bound at or above it, found by roundDown over the negated
 * bounds (a binary search; a lambda per bound over every train's packets made
 * ingest ten times slower), the +Inf bucket stored as RTT_BUCKET_INF_US.
 */
export const RTT_BUCKET_NEGATED_BOUNDS: readonly number[] = [-RTT_BUCKET_INF_US, ...[...RTT_BUCKET_BOUNDS_US].reverse().map((b) => -b)];

export const latencyTotals: Migration = {
  version: 12,
  name: 'latency_totals',
  statements: [
    `CREATE TABLE IF NOT EXISTS latency_totals
(
    src         LowCardinality(String),
    dst         LowCardinality(String),
    engine      LowCardinality(String),
    trains      SimpleAggregateFunction(sum, UInt64),
    sent        SimpleAggregateFunction(sum, UInt64),
    received    SimpleAggregateFunction(sum, UInt64),
    lost        SimpleAggregateFunction(sum, UInt64),
    rtt_count   SimpleAggregateFunction(sum, UInt64),
    rtt_sum_us  SimpleAggregateFunction(sum, Float64)
)
ENGINE = AggregatingMergeTree
ORDER BY (src, dst, engine)
SETTINGS non_replicated_deduplication_window = 100000`,
    `CREATE MATERIALIZED VIEW IF NOT EXISTS latency_totals_mv TO latency_totals AS
SELECT
    src,
    dst,
    engine,
    count() AS trains,
    sum(in_sent) AS sent,
    sum(in_received) AS received,
    sum(in_lost) AS lost,
    sum(length(in_rtts)) AS rtt_count,
    sum(arraySum(in_rtts)) AS rtt_sum_us
FROM
(
    SELECT src, dst, engine, sent AS in_sent, received AS in_received, lost AS in_lost, rtts_us AS in_rtts
    FROM latency_trains
)
GROUP BY src, dst, engine`,
    `CREATE TABLE IF NOT EXISTS latency_totals_le
(
    src         LowCardinality(String),
    dst         LowCardinality(String),
    engine      LowCardinality(String),
    le_us       UInt32,
    packets     SimpleAggregateFunction(sum, UInt64)
)
ENGINE = AggregatingMergeTree
ORDER BY (src, dst, engine, le_us)
SETTINGS non_replicated_deduplication_window = 100000`,
    `CREATE MATERIALIZED VIEW IF NOT EXISTS latency_totals_le_mv TO latency_totals_le AS
SELECT
    src,
    dst,
    engine,
    toUInt32(-roundDown(-toFloat64(in_rtt), CAST([${RTT_BUCKET_NEGATED_BOUNDS.join(', ')}], 'Array(Float64)'))) AS le_us,
    count() AS packets
FROM
(
    SELECT src, dst, engine, rtts_us AS in_rtts
    FROM latency_trains
)
ARRAY JOIN in_rtts AS in_rtt
GROUP BY src, dst, engine, le_us`,
  ],
};
