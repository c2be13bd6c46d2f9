import type { Migration } from './index.js';

/**
 * Capacity: scheduled throughput tests and passive NIC counters.
 *
 * - throughput_tests: one row per test (both directions of a bidirectional test
 *   in one row). A failed test is a row with ok = 0 and its error, never a zero
 *   rate. Small table (a test per link every few minutes at most): plain codecs.
 * - nic_samples: one row per interface per sampling interval, rates already
 *   computed on the probe (it alone sees counter wraps and resets). Speed is
 *   Nullable: virtual interfaces report none, and unknown is not zero.
 * - nic_1m: per-minute peak and mean utilisation for dashboards and SLA.
 * Same month partitioning and retention reasoning as latency_trains; the batch
 * id is the dedup token for these tables too.
 */
export const capacity: Migration = {
  version: 4,
  name: 'capacity',
  statements: [
    `CREATE TABLE IF NOT EXISTS throughput_tests
(
    ts              DateTime64(3, 'UTC') CODEC(Delta(8), ZSTD(1)),
    src             LowCardinality(String),
    dst             LowCardinality(String),
    test_id         String,
    trigger         LowCardinality(String),
    engine          LowCardinality(String),
    engine_version  String,
    direction       LowCardinality(String),
    streams         UInt16,
    seconds         Nullable(Float32),
    ok              Bool,
    error           String,
    forward_bps     Nullable(Float64),
    reverse_bps     Nullable(Float64),
    retransmits     Nullable(UInt64),
    cpu_local_pct   Nullable(Float32),
    cpu_remote_pct  Nullable(Float32),
    batch_id        String,
    inserted_at     DateTime('UTC') DEFAULT now()
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (src, dst, ts)
TTL toDateTime(ts) + INTERVAL 800 DAY
SETTINGS non_replicated_deduplication_window = 100000, ttl_only_drop_parts = 1`,
    `CREATE TABLE IF NOT EXISTS nic_samples
(
    ts              DateTime64(3, 'UTC') CODEC(Delta(8), ZSTD(1)),
    centre          LowCardinality(String),
    interface       LowCardinality(String),
    peer            LowCardinality(String),
    interval_s      Float32,
    speed_mbps      Nullable(UInt32),
    oper_state      LowCardinality(String),
    reset           Bool,
    rx_bps          Nullable(Float64) CODEC(Gorilla, ZSTD(1)),
    tx_bps          Nullable(Float64) CODEC(Gorilla, ZSTD(1)),
    rx_pps          Nullable(Float64) CODEC(Gorilla, ZSTD(1)),
    tx_pps          Nullable(Float64) CODEC(Gorilla, ZSTD(1)),
    rx_errors_ps    Nullable(Float64) CODEC(Gorilla, ZSTD(1)),
    tx_errors_ps    Nullable(Float64) CODEC(Gorilla, ZSTD(1)),
    rx_drops_ps     Nullable(Float64) CODEC(Gorilla, ZSTD(1)),
    tx_drops_ps     Nullable(Float64) CODEC(Gorilla, ZSTD(1)),
    utilisation     Nullable(Float32) CODEC(Gorilla, ZSTD(1)),
    sample_id       String,
    batch_id        String
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (centre, interface, ts)
TTL toDateTime(ts) + INTERVAL 400 DAY
SETTINGS non_replicated_deduplication_window = 100000, ttl_only_drop_parts = 1`,
    `CREATE TABLE IF NOT EXISTS nic_1m
(
    minute          DateTime('UTC'),
    centre          LowCardinality(String),
    interface       LowCardinality(String),
    peer            LowCardinality(String),
    samples         SimpleAggregateFunction(sum, UInt64),
    speed_mbps      SimpleAggregateFunction(anyLast, Nullable(UInt32)),
    util_max        SimpleAggregateFunction(max, Nullable(Float32)),
    util_avg        AggregateFunction(avg, Nullable(Float32)),
    rx_bps_avg      AggregateFunction(avg, Nullable(Float64)),
    tx_bps_avg      AggregateFunction(avg, Nullable(Float64))
)
ENGINE = AggregatingMergeTree
PARTITION BY toYYYYMM(minute)
ORDER BY (centre, interface, peer, minute)
TTL minute + INTERVAL 800 DAY
SETTINGS non_replicated_deduplication_window = 100000, ttl_only_drop_parts = 1`,
    `CREATE MATERIALIZED VIEW IF NOT EXISTS nic_1m_mv TO nic_1m AS
SELECT
    toStartOfMinute(ts) AS minute,
    centre,
    interface,
    peer,
    count() AS samples,
    anyLast(in_speed) AS speed_mbps,
    max(in_util) AS util_max,
    avgState(in_util) AS util_avg,
    avgState(in_rx) AS rx_bps_avg,
    avgState(in_tx) AS tx_bps_avg
FROM
(
    SELECT ts, centre, interface, peer, speed_mbps AS in_speed, utilisation AS in_util, rx_bps AS in_rx, tx_bps AS in_tx
    FROM nic_samples
)
GROUP BY minute, centre, interface, peer`,
  ],
};
