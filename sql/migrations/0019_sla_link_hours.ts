import type { Migration } from './index.js';

/**
 * SLA inputs per link-hour, so a month reads one row per link and hour
 * instead of sixty (sql/sla.ts, sql/sla-minutes.ts).
 *
 * - sla_link_hours: for each link-hour the materialiser has merged into
 *   sla_minutes, what the month's verdicts need from its minutes, whatever
 *   the link's policy: minutes with data, covered and available minutes,
 *   packets sent and lost in available minutes, and, over available
 *   minutes, the highest loss ratio and the highest RTT at each of the four
 *   rollup levels (exact maxima of the stored minute levels, so no new
 *   estimate enters); and the hour's minutes themselves, as arrays (the
 *   minute of the hour, directions that sent and received, packets sent and
 *   lost, the worse direction's levels). A month takes an hour by its
 *   totals when none of its minutes can breach the link's policy (every
 *   level at or under the target, every loss ratio under the ceiling, every
 *   covered minute available) and none is excluded; otherwise it reads the
 *   hour's minute arrays, so counts and longest breach runs are exactly
 *   those of the minutes. Granules of 64 link-hours: the few hours read
 *   minute by minute are found by the sort key, not by a scan of the month.
 *
 *   Written by the materialiser from the minutes it has just written, once
 *   per version: hour_trains is the trains those minutes came from (the
 *   version sla_hours marks as finalised), and a month only takes the row
 *   whose hour_trains equals the link-hour's finalised trains, one row per
 *   link-hour (LIMIT 1 BY), so a late train (a new version) or two servers
 *   writing the same version never count twice; older versions are dropped
 *   by merges.
 *
 * The seed summarises the minutes already materialised (each link-hour's
 * newest version), as the materialiser does (sql/sla-minutes.ts; this copy
 * is frozen with the migration). A link-hour whose minutes are stored twice
 * at one version (two servers merged it at once) gets no row here, nor does
 * one materialised while the migration runs: the month reads its minutes
 * (slower, never wrong).
 */
export const slaLinkHours: Migration = {
  version: 19,
  name: 'sla_link_hours',
  statements: [
    `CREATE TABLE IF NOT EXISTS sla_link_hours
(
    engine          LowCardinality(String),
    a               LowCardinality(String),
    b               LowCardinality(String),
    link            LowCardinality(String),
    hour            DateTime('UTC'),
    hour_trains     UInt64,
    minutes         UInt8,
    covered         UInt8,
    available       UInt8,
    sent            UInt64,
    lost            UInt64,
    max_loss_ratio  Float64,
    max_q_us        Array(Float64),
    minute_offsets  Array(UInt8),
    m_dirs          Array(UInt8),
    m_rx_dirs       Array(UInt8),
    m_sent          Array(UInt64),
    m_lost          Array(UInt64),
    m_q_us          Array(Array(Float32))
)
ENGINE = ReplacingMergeTree(hour_trains)
PARTITION BY toYYYYMM(hour)
ORDER BY (engine, link, hour)
TTL hour + INTERVAL 800 DAY
SETTINGS ttl_only_drop_parts = 1, index_granularity = 64`,
    `INSERT INTO sla_link_hours (engine, a, b, link, hour, hour_trains, minutes, covered, available, sent, lost, max_loss_ratio, max_q_us,
                            minute_offsets, m_dirs, m_rx_dirs, m_sent, m_lost, m_q_us)
SELECT engine, a, b, link, hour, hour_trains, minutes, covered, available, sent, lost, max_loss_ratio, max_q_us,
       arrayMap(x -> x.1, by_minute), arrayMap(x -> x.2, by_minute), arrayMap(x -> x.3, by_minute),
       arrayMap(x -> x.4, by_minute), arrayMap(x -> x.5, by_minute), arrayMap(x -> x.6, by_minute)
FROM (
    SELECT engine, a, b, link, toStartOfHour(minute) AS hour, hour_trains,
           count() AS minutes, countIf(dirs = 2) AS covered, countIf(dirs = 2 AND rx_dirs = 2) AS available,
           sumIf(toUInt64(ab_sent) + ba_sent, dirs = 2 AND rx_dirs = 2) AS sent,
           sumIf(toUInt64(ab_lost) + ba_lost, dirs = 2 AND rx_dirs = 2) AS lost,
           maxIf((toUInt64(ab_lost) + ba_lost) / (toUInt64(ab_sent) + ba_sent), dirs = 2 AND rx_dirs = 2) AS max_loss_ratio,
           [maxIf(toFloat64(arrayElement(m_q_us, 1)), dirs = 2 AND rx_dirs = 2), maxIf(toFloat64(arrayElement(m_q_us, 2)), dirs = 2 AND rx_dirs = 2), maxIf(toFloat64(arrayElement(m_q_us, 3)), dirs = 2 AND rx_dirs = 2), maxIf(toFloat64(arrayElement(m_q_us, 4)), dirs = 2 AND rx_dirs = 2)] AS max_q_us,
           arraySort(x -> x.1, groupArray((toUInt8(toMinute(minute)), dirs, rx_dirs, toUInt64(ab_sent) + ba_sent, toUInt64(ab_lost) + ba_lost, m_q_us))) AS by_minute
    FROM sla_minutes
    WHERE (engine, link, toStartOfHour(minute), hour_trains) IN
          (SELECT engine, link, toStartOfHour(minute), max(hour_trains) FROM sla_minutes GROUP BY engine, link, toStartOfHour(minute))
    GROUP BY engine, a, b, link, hour, hour_trains
    HAVING count() = uniqExact(minute)
)`,
  ],
};
