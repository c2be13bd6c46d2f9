import type { Migration } from './index.js';

/**
 * One row per packet train (per flow), with the raw per-packet RTTs so any
 * percentile over any window can be recomputed exactly.
 *
 * - ORDER BY (src, dst, engine, ts): every dashboard and SLA query filters on a
 *   directed path first, then on time; low cardinality columns lead.
 * - PARTITION BY month: SLA reports are per calendar month and retention drops
 *   whole months; partitions are a data-management tool, not an index.
 * - TTL 400 days with ttl_only_drop_parts: a regulator can re-derive the last 13
 *   monthly reports from raw packets; expiry drops whole parts, never rewrites.
 * - Codecs: timestamps are near-monotonic within a part (Delta + ZSTD); the RTT
 *   arrays are the bulk of the bytes and compress well with ZSTD(3); summary
 *   floats change slowly (Gorilla).
 * - non_replicated_deduplication_window: the collector passes each probe batch
 *   id as insert_deduplication_token, so a retried batch is stored once.
 */
export const latencyTrains: Migration = {
  version: 1,
  name: 'latency_trains',
  statements: [
    `CREATE TABLE IF NOT EXISTS latency_trains
(
    ts                DateTime64(6, 'UTC') CODEC(Delta(8), ZSTD(1)),
    src               LowCardinality(String),
    dst               LowCardinality(String),
    engine            LowCardinality(String),
    flow              UInt16,
    src_port          UInt16,
    dscp              UInt8,
    batch_id          String CODEC(ZSTD(1)),
    sent              UInt32 CODEC(T64, ZSTD(1)),
    received          UInt32 CODEC(T64, ZSTD(1)),
    lost              UInt32 CODEC(T64, ZSTD(1)),
    duplicated        UInt32 CODEC(T64, ZSTD(1)),
    reordered         UInt32 CODEC(T64, ZSTD(1)),
    rtt_min_us        Nullable(Float32) CODEC(Gorilla, ZSTD(1)),
    rtt_median_us     Nullable(Float32) CODEC(Gorilla, ZSTD(1)),
    rtt_p99_us        Nullable(Float32) CODEC(Gorilla, ZSTD(1)),
    rtt_max_us        Nullable(Float32) CODEC(Gorilla, ZSTD(1)),
    jitter_us         Nullable(Float32) CODEC(Gorilla, ZSTD(1)),
    synced            Bool,
    error_estimate_us Float32 CODEC(Gorilla, ZSTD(1)),
    rtts_us           Array(Float32) CODEC(ZSTD(3)),
    fwd_us            Array(Float32) CODEC(ZSTD(3)),
    rev_us            Array(Float32) CODEC(ZSTD(3)),
    inserted_at       DateTime('UTC') DEFAULT now() CODEC(Delta(4), ZSTD(1))
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (src, dst, engine, ts)
TTL toDateTime(ts) + INTERVAL 400 DAY
SETTINGS non_replicated_deduplication_window = 100000, ttl_only_drop_parts = 1`,
  ],
};
