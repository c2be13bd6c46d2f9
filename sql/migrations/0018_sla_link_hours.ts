import type { Migration } from './index.js';

/**
 * SLA inputs per link-hour, so a month reads one narrow row per link and
 * hour instead of sixty minutes (sql/sla.ts, sql/sla-minutes.ts).
 *
 * - sla_link_hours: for each link-hour the materialiser has merged into
 *   sla_minutes, what the month's verdicts need from its minutes, whatever
 *   the link's policy:
 *   - totals: covered and available minutes, packets sent and lost in
 *     available minutes;
 *   - unavailable_minutes: the minutes (of the hour, 0-59) covered but not
 *     available, every one (availability breaches need no policy);
 *   - top_pNN_us / top_pNN_minutes, one pair per rollup level: the available
 *     minutes with the highest level, highest first (ties: later minute
 *     first), at most eight, and each one's minute of the hour. Whatever the
 *     target, the latency breaches of the hour are exactly the listed
 *     minutes above it when the list holds every available minute or its
 *     last level is at or under the target (every unlisted minute is at or
 *     under that level); otherwise the month reads the hour's minutes;
 *   - lossy: available minutes that lost packets; top_loss_*: the lossy
 *     minutes with the highest loss ratio (lost / sent, highest first), at
 *     most eight, with their packets sent and lost, so the breach test is
 *     the month's own `lost > ceiling x sent` on the same integers; an
 *     unlisted lossy minute's ratio is at most the last listed one's.
 *   Levels are the stored minute levels (Float32), ratios are not stored:
 *   no new estimate enters.
 *
 *   Default granularity: a month reads every summary row of its period, and
 *   only these narrow columns; the minutes of an hour its summary cannot
 *   decide are read from sla_minutes (sorted by link and minute).
 *
 *   Written by the materialiser from the minutes it has just written, once
 *   per version: hour_trains is the trains those minutes came from (the
 *   version sla_hours marks as finalised), and a month only takes the row
 *   whose hour_trains equals the link-hour's finalised trains, one row per
 *   link-hour, so a late train (a new version) or two servers writing the
 *   same version never count twice; older versions are dropped by merges.
 *
 * The seed summarises the minutes already materialised (each link-hour's
 * newest version), as the materialiser does (sql/sla-minutes.ts; this copy
 * is frozen with the migration). A link-hour whose minutes are stored twice
 * at one version (two servers merged it at once) gets no row here, nor does
 * one materialised while the migration runs: the month reads its minutes
 * (slower, never wrong).
 */
export const slaLinkHours: Migration = {
  version: 18,
  name: 'sla_link_hours',
  statements: [
    `CREATE TABLE IF NOT EXISTS sla_link_hours
(
    engine               LowCardinality(String),
    a                    LowCardinality(String),
    b                    LowCardinality(String),
    link                 LowCardinality(String),
    hour                 DateTime('UTC'),
    hour_trains          UInt64,
    covered              UInt8,
    available            UInt8,
    sent                 UInt64,
    lost                 UInt64,
    unavailable_minutes  Array(UInt8),
    top_p50_us           Array(Float32),
    top_p50_minutes      Array(UInt8),
    top_p90_us           Array(Float32),
    top_p90_minutes      Array(UInt8),
    top_p95_us           Array(Float32),
    top_p95_minutes      Array(UInt8),
    top_p99_us           Array(Float32),
    top_p99_minutes      Array(UInt8),
    lossy                UInt8,
    top_loss_minutes     Array(UInt8),
    top_loss_sent        Array(UInt64),
    top_loss_lost        Array(UInt64)
)
ENGINE = ReplacingMergeTree(hour_trains)
PARTITION BY toYYYYMM(hour)
ORDER BY (engine, link, hour)
TTL hour + INTERVAL 800 DAY
SETTINGS ttl_only_drop_parts = 1`,
    `INSERT INTO sla_link_hours (engine, a, b, link, hour, hour_trains, covered, available, sent, lost, unavailable_minutes,
                            top_p50_us, top_p50_minutes, top_p90_us, top_p90_minutes, top_p95_us, top_p95_minutes, top_p99_us, top_p99_minutes,
                            lossy, top_loss_minutes, top_loss_sent, top_loss_lost)
SELECT engine, a, b, link, hour, hour_trains, covered, available, sent, lost, unavailable_minutes,
       arrayMap(x -> x.1, top1), arrayMap(x -> x.2, top1), arrayMap(x -> x.1, top2), arrayMap(x -> x.2, top2),
       arrayMap(x -> x.1, top3), arrayMap(x -> x.2, top3), arrayMap(x -> x.1, top4), arrayMap(x -> x.2, top4),
       lossy, arrayMap(x -> x.2, top_loss), arrayMap(x -> x.3, top_loss), arrayMap(x -> x.4, top_loss)
FROM (
    SELECT engine, a, b, link, toStartOfHour(minute) AS hour, hour_trains,
           countIf(dirs = 2) AS covered, countIf(dirs = 2 AND rx_dirs = 2) AS available,
           sumIf(toUInt64(ab_sent) + ba_sent, dirs = 2 AND rx_dirs = 2) AS sent,
           sumIf(toUInt64(ab_lost) + ba_lost, dirs = 2 AND rx_dirs = 2) AS lost,
           arraySort(groupArrayIf(toUInt8(toMinute(minute)), dirs = 2 AND rx_dirs != 2)) AS unavailable_minutes,
           arraySlice(arrayReverseSort(groupArrayIf((toFloat32(arrayElement(m_q_us, 1)), toUInt8(toMinute(minute))), dirs = 2 AND rx_dirs = 2)), 1, 8) AS top1,
           arraySlice(arrayReverseSort(groupArrayIf((toFloat32(arrayElement(m_q_us, 2)), toUInt8(toMinute(minute))), dirs = 2 AND rx_dirs = 2)), 1, 8) AS top2,
           arraySlice(arrayReverseSort(groupArrayIf((toFloat32(arrayElement(m_q_us, 3)), toUInt8(toMinute(minute))), dirs = 2 AND rx_dirs = 2)), 1, 8) AS top3,
           arraySlice(arrayReverseSort(groupArrayIf((toFloat32(arrayElement(m_q_us, 4)), toUInt8(toMinute(minute))), dirs = 2 AND rx_dirs = 2)), 1, 8) AS top4,
           countIf(dirs = 2 AND rx_dirs = 2 AND toUInt64(ab_lost) + ba_lost > 0) AS lossy,
           arraySlice(arrayReverseSort(groupArrayIf(((toUInt64(ab_lost) + ba_lost) / (toUInt64(ab_sent) + ba_sent), toUInt8(toMinute(minute)),
                                                     toUInt64(ab_sent) + ba_sent, toUInt64(ab_lost) + ba_lost),
                                                    dirs = 2 AND rx_dirs = 2 AND toUInt64(ab_lost) + ba_lost > 0)), 1, 8) AS top_loss
    FROM sla_minutes
    WHERE (engine, link, toStartOfHour(minute), hour_trains) IN
          (SELECT engine, link, toStartOfHour(minute), max(hour_trains) FROM sla_minutes GROUP BY engine, link, toStartOfHour(minute))
    GROUP BY engine, a, b, link, hour, hour_trains
    HAVING count() = uniqExact(minute)
)`,
  ],
};
