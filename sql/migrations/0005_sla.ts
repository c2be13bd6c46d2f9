import type { Migration } from './index.js';

/**
 * Monthly SLA records: maintenance windows and signed reports. Both are
 * records a regulator relies on, so neither has a TTL and neither is ever
 * updated in place: a window is declared once, a report is frozen once, and
 * a later recomputation that differs becomes a new amendment row.
 *
 * - sla_maintenance: one row per declared window, whole minutes, scoped to a
 *   link (a < b), a centre (a = the centre, all its links) or the network.
 *   declared_at is the server's clock when the operator declared it: a window
 *   declared at or after its start is listed as "declared late" and never
 *   excluded from the SLA minutes.
 * - sla_reports: the signed envelope exactly as served (canonical JSON), one
 *   row per (month, seq): seq 0 is the finalised report, 1.. its amendments.
 *   Each insert carries insert_deduplication_token = month/seq, so two
 *   processes finalising the same month store one report (the first); readers
 *   take the earliest row per (month, seq) in any case.
 */
export const sla: Migration = {
  version: 5,
  name: 'sla',
  statements: [
    `CREATE TABLE IF NOT EXISTS sla_maintenance
(
    id           String,
    scope        LowCardinality(String),
    a            String,
    b            String,
    starts_at    DateTime('UTC'),
    ends_at      DateTime('UTC'),
    reason       String,
    declared_at  DateTime64(3, 'UTC'),
    declared_by  String
)
ENGINE = MergeTree
ORDER BY (starts_at, id)
SETTINGS non_replicated_deduplication_window = 1000`,
    `CREATE TABLE IF NOT EXISTS sla_reports
(
    month                   String,
    seq                     UInt32,
    kind                    LowCardinality(String),
    document                String CODEC(ZSTD(3)),
    report_sha256           String,
    public_key_fingerprint  String,
    public_key              String,
    created_at              DateTime64(3, 'UTC'),
    created_by              String
)
ENGINE = MergeTree
ORDER BY (month, seq)
SETTINGS non_replicated_deduplication_window = 1000`,
  ],
};
