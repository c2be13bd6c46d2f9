import type { Migration } from './index.js';

/**
 * Our own load: when citymesh's throughput tests loaded a link. Latency and
 * loss taken on that link then measure our test, not the network, so those
 * minutes are left out of the SLA latency/loss verdicts (listed as their own
 * category, "self_load") and out of the latency/loss alerts (sql/load-windows.ts).
 *
 * A test is known from up to three rows with its test id, each written by
 * whoever knows it, so no single lost message leaves a test unmarked:
 * - planned:  the coordinator, before it asks the probe to start: start on the
 *             server's clock, end = start + the planned duration and slack.
 *             Written first, so trains arriving during the test are already
 *             covered, and it stands when no result ever comes back.
 * - finished: the coordinator, when the probe reports the test done.
 * - measured: the client probe's own start and end (in its batch, exactly once
 *             like its trains), also for tests the coordinator never saw.
 * The effective window is the earliest start to the latest finished or
 * measured end (the planned end only when neither exists).
 *
 * A control table on a cluster (every node holds all rows): SLA and alert
 * queries over sharded data join it, like maintenance windows. Kept as long
 * as the evidence it qualifies.
 */
export const loadWindows: Migration = {
  version: 9,
  name: 'load_windows',
  statements: [
    `CREATE TABLE IF NOT EXISTS load_windows
(
    window_id    String,
    a            LowCardinality(String),
    b            LowCardinality(String),
    starts_at    DateTime64(3, 'UTC'),
    ends_at      DateTime64(3, 'UTC'),
    source       LowCardinality(String),
    trigger      LowCardinality(String),
    recorded_by  String,
    recorded_at  DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(starts_at)
ORDER BY (a, b, starts_at, window_id)
TTL toDateTime(starts_at) + INTERVAL 800 DAY
SETTINGS non_replicated_deduplication_window = 100000, ttl_only_drop_parts = 1`,
  ],
};
