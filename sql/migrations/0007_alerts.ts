import type { Migration } from './index.js';

/**
 * Alerts: everything a server needs to continue another server's alerting,
 * kept in ClickHouse (servers are stateless and take turns evaluating).
 *
 * - alert_events: one row per state change of an alert episode (firing, then
 *   resolved), never updated. An episode is (fingerprint, starts_at); the
 *   fingerprint is Alertmanager's hash of the labels. Each insert carries
 *   insert_deduplication_token = fingerprint/starts_at/status, so a retried
 *   insert, or two servers recording the same change, store one row.
 * - alert_silences: operators' silences. Expiring one writes a new version of
 *   its row (same id, later `version`). ReplacingMergeTree(version) only
 *   collapses versions when parts merge, at an unknown later time, so readers
 *   never rely on it: they take argMax(column, version) per id, which is right
 *   before and after a merge; the engine just keeps old versions from piling up.
 * - alert_notifications: the notification log, one row when a delivery starts
 *   (`sending`) and one with its outcome (`sent` / `failed`, HTTP status or
 *   error), per receiver and episode. The resend interval and "never twice"
 *   are decided from this log, so they hold whichever server sends next; a
 *   `sending` row without an outcome marks a delivery still in flight on
 *   another server.
 * No partitions (a few rows per state change); a 400-day TTL like the raw
 * measurements, so the history an operator can dig into matches the data.
 */
export const alerts: Migration = {
  version: 7,
  name: 'alerts',
  statements: [
    `CREATE TABLE IF NOT EXISTS alert_events
(
    fingerprint  String,
    alertname    LowCardinality(String),
    status       LowCardinality(String),
    starts_at    DateTime64(3, 'UTC'),
    active_at    Nullable(DateTime64(3, 'UTC')),
    ends_at      Nullable(DateTime64(3, 'UTC')),
    event_at     DateTime64(3, 'UTC'),
    labels       Map(String, String),
    annotations  Map(String, String),
    value        Nullable(Float64),
    threshold    Nullable(Float64),
    unit         LowCardinality(String),
    silenced_by  Array(String),
    link         String,
    centre       String
)
ENGINE = MergeTree
ORDER BY (fingerprint, starts_at, status)
TTL toDateTime(event_at) + INTERVAL 400 DAY
SETTINGS non_replicated_deduplication_window = 10000`,
    `CREATE TABLE IF NOT EXISTS alert_silences
(
    id          String,
    matchers    Array(Tuple(name String, value String, is_regex Bool, is_equal Bool)),
    starts_at   DateTime64(3, 'UTC'),
    ends_at     DateTime64(3, 'UTC'),
    created_by  String,
    comment     String,
    updated_at  DateTime64(3, 'UTC'),
    updated_by  String,
    version     UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY id
SETTINGS non_replicated_deduplication_window = 10000`,
    `CREATE TABLE IF NOT EXISTS alert_notifications
(
    fingerprint  String,
    starts_at    DateTime64(3, 'UTC'),
    receiver     LowCardinality(String),
    status       LowCardinality(String),
    attempt_at   DateTime64(3, 'UTC'),
    outcome      LowCardinality(String),
    http_status  UInt16,
    attempts     UInt8,
    error        String,
    alertname    LowCardinality(String),
    logged_at    DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
ORDER BY (fingerprint, starts_at, receiver, attempt_at)
TTL toDateTime(attempt_at) + INTERVAL 400 DAY
SETTINGS non_replicated_deduplication_window = 10000`,
  ],
};
