import type { Migration } from './index.js';

/**
 * What several stateless servers on one ClickHouse need to cooperate, kept in
 * ClickHouse itself (no second coordination system to run):
 *
 * - job_claims: "exactly one server runs this job for this slot" (monthly
 *   report finalisation, an alert evaluation tick). A server claims a slot by
 *   inserting its row with insert_deduplication_token = job/slot; ClickHouse's
 *   insert deduplication keeps only the first such block (under the table's
 *   parts lock on one node, in Keeper on a replicated cluster), so the holder
 *   is whoever then reads its own row. The window holds 100,000 claims (a
 *   15-second job claims 5,760 slots a day: 17 days, far longer than a slot
 *   matters). Claims expire after 90 days.
 *
 * - live_trains: the live feed across servers. A probe's batch is stored by
 *   whichever server it reached; every other server tails this table (cheap:
 *   ordered by the time of storing, one hour kept) and forwards new trains to
 *   its own browsers. Fed by a materialized view, so the collector writes once;
 *   stored_at is the insert time on the node that stored the block. The dedup
 *   window keeps a retried batch (dropped by latency_trains) out of here too.
 */
export const coordination: Migration = {
  version: 6,
  name: 'coordination',
  statements: [
    `CREATE TABLE IF NOT EXISTS job_claims
(
    job        LowCardinality(String),
    slot       String,
    holder     String,
    claimed_at DateTime64(3, 'UTC')
)
ENGINE = MergeTree
ORDER BY (job, slot)
TTL toDateTime(claimed_at) + INTERVAL 90 DAY
SETTINGS non_replicated_deduplication_window = 100000`,
    `CREATE TABLE IF NOT EXISTS live_trains
(
    stored_at     DateTime64(3, 'UTC'),
    train_id      String,
    src           LowCardinality(String),
    dst           LowCardinality(String),
    engine        LowCardinality(String),
    flow          UInt16,
    ts            DateTime64(6, 'UTC'),
    sent          UInt32,
    received      UInt32,
    rtt_min_us    Nullable(Float32),
    rtt_median_us Nullable(Float32),
    rtt_p99_us    Nullable(Float32),
    rtt_max_us    Nullable(Float32),
    jitter_us     Nullable(Float32)
)
ENGINE = MergeTree
ORDER BY stored_at
TTL toDateTime(stored_at) + INTERVAL 1 HOUR
SETTINGS non_replicated_deduplication_window = 100000`,
    `CREATE MATERIALIZED VIEW IF NOT EXISTS live_trains_mv TO live_trains AS
SELECT
    now64(3, 'UTC') AS stored_at,
    train_id, src, dst, engine, flow, ts, sent, received,
    rtt_min_us, rtt_median_us, rtt_p99_us, rtt_max_us, jitter_us
FROM latency_trains`,
  ],
};
