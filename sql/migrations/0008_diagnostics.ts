import type { Migration } from './index.js';

/**
 * Diagnostics on breach.
 *
 * - diagnostics: one row per run of one probe towards one peer (traceroute,
 *   path MTU, fast STAMP train), stored from the probe's batch like every
 *   record, the batch id as the insert deduplication token. The hop list is
 *   kept column-wise per probe packet: hop_addresses[ttl][probe] ('' for a
 *   probe nobody answered, `*`), hop_rtts_us (NULL for those) and hop_flags
 *   ('!H', '!N', ... or ''); hop_ttls holds each hop's TTL. Path changes are
 *   computed from these arrays in SQL when read (sql/diagnostics.ts), so
 *   redefining "changed" never needs a rewrite of stored rows. Rare rows (a
 *   run per peer per breach, rate limited on the probe): plain codecs; same
 *   monthly partitions and 400-day retention as the raw trains they explain.
 *
 * - diagnostic_requests: operator requests to run diagnostics on a link now.
 *   Servers are stateless and the two probes of a link may be connected to
 *   other server processes than the one that took the request, so the request
 *   goes through here: every server polls recent rows and sends `diagnose` to
 *   the probes connected to it. Kept 7 days (a request older than a minute is
 *   no longer sent; the rows remain as an audit of who asked).
 */
export const diagnostics: Migration = {
  version: 8,
  name: 'diagnostics',
  statements: [
    `CREATE TABLE IF NOT EXISTS diagnostics
(
    ts                DateTime64(3, 'UTC') CODEC(Delta(8), ZSTD(1)),
    src               LowCardinality(String),
    dst               LowCardinality(String),
    run_id            String,
    request_id        String,
    trigger           LowCardinality(String),
    reason            String,
    duration_ms       UInt32,
    tr_ok             Bool,
    tr_error          String,
    tr_tool           LowCardinality(String),
    tr_max_hops       UInt8,
    tr_reached        Bool,
    hop_ttls          Array(UInt8),
    hop_addresses     Array(Array(String)),
    hop_rtts_us       Array(Array(Nullable(Float32))),
    hop_flags         Array(Array(String)),
    pmtu_ok           Bool,
    pmtu_error        String,
    pmtu_tool         LowCardinality(String),
    pmtu              Nullable(UInt32),
    pmtu_drop_ttl     Nullable(UInt8),
    pmtu_reached      Bool,
    ft_ok             Bool,
    ft_error          String,
    ft_count          UInt32,
    ft_interval_ms    Float32,
    ft_sent           UInt32,
    ft_received       UInt32,
    ft_rtt_min_us     Nullable(Float32),
    ft_rtt_median_us  Nullable(Float32),
    ft_rtt_p99_us     Nullable(Float32),
    ft_rtt_max_us     Nullable(Float32),
    ft_jitter_us      Nullable(Float32),
    batch_id          String,
    inserted_at       DateTime('UTC') DEFAULT now()
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (src, dst, ts)
TTL toDateTime(ts) + INTERVAL 400 DAY
SETTINGS non_replicated_deduplication_window = 100000, ttl_only_drop_parts = 1`,
    `CREATE TABLE IF NOT EXISTS diagnostic_requests
(
    requested_at  DateTime64(6, 'UTC'),
    request_id    String,
    a             LowCardinality(String),
    b             LowCardinality(String),
    requested_by  String
)
ENGINE = MergeTree
ORDER BY (requested_at, request_id)
TTL toDateTime(requested_at) + INTERVAL 7 DAY
SETTINGS non_replicated_deduplication_window = 100000`,
  ],
};
