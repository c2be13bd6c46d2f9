import type { Migration } from './index.js';

/**
 * How each number was taken.
 *
 * - latency_trains.sender_ts / reflector_ts: the timestamping of each end of
 *   a train: 'hardware', 'kernel', 'user' (JavaScript on the event loop) or
 *   'unknown' (a foreign reflector; rows stored before this migration). The
 *   probe reports its own; the server fills in a peer reflector's from what
 *   that peer's probe reports (probe_reports).
 *
 * - probe_reports: what each probe says about itself (hello and batches):
 *   its STAMP datapath (native or the JavaScript fallback, and why), its
 *   reflector's timestamping and counters, engines it cannot run. Written
 *   when something other than the counters changes, else at most once a
 *   minute per centre, so every server (they are stateless) and /v1/status
 *   see the latest. Small and recent: 30 days.
 */
export const timestamping: Migration = {
  version: 13,
  name: 'timestamping',
  statements: [
    `ALTER TABLE latency_trains ADD COLUMN IF NOT EXISTS sender_ts LowCardinality(String) DEFAULT 'unknown' AFTER error_estimate_us`,
    `ALTER TABLE latency_trains ADD COLUMN IF NOT EXISTS reflector_ts LowCardinality(String) DEFAULT 'unknown' AFTER sender_ts`,
    `CREATE TABLE IF NOT EXISTS probe_reports
(
    reported_at           DateTime64(3, 'UTC'),
    centre                LowCardinality(String),
    datapath              LowCardinality(String),
    datapath_reason       String,
    reflector_ts          LowCardinality(String),
    engines_unavailable   Map(String, String),
    reflector_received    UInt64,
    reflector_reflected   UInt64,
    reflector_drops       Map(String, UInt64)
)
ENGINE = MergeTree
ORDER BY (centre, reported_at)
TTL toDateTime(reported_at) + INTERVAL 30 DAY`,
  ],
};
