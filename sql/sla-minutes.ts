/**
 * The SLA minute materialiser (tables: migration 0016). A month's figures
 * need, per link and minute, both directions' packet counts and percentile
 * levels; from latency_1m that is a t-digest merge per direction-minute
 * (16 million of them for 20 centres), every time a month is read. Here each
 * link-hour is merged once, after it has ended, into sla_minutes, and marked
 * in sla_hours with the number of trains it was computed from.
 *
 * A month reads sla_minutes where that number still equals the trains the
 * view has counted for the link-hour, and latency_1m elsewhere (sql/sla.ts):
 * the figures are the same whichever way a minute is read, so they never
 * depend on how far this job got, and a late train only sends its link-hour
 * back to latency_1m until the job has merged it again.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { ROLLUP_LEVELS } from './direction-buckets.js';
import { directionMinutes, pairDirections } from './sla.js';

/** A link-hour whose minutes are to be (re)computed. */
export interface SlaHour {
  engine: string;
  a: string;
  b: string;
  /** Unix seconds, whole hours. */
  hourS: number;
}

export interface MaterialiseOptions {
  /** Only hours that ended at least `settleS` seconds before this instant (ms): trains of a train schedule arrive a batch later. */
  nowMs: number;
  /** Default 300 s. */
  settleS?: number;
  /** Link-hours per run (default 5,000: a day of 20 centres, an hour of 100), newest first. */
  limit?: number;
}

/** Link-hours whose minutes are missing or older than their trains, newest first. */
export async function slaHoursToMaterialise(client: ClickHouseClient, options: MaterialiseOptions): Promise<SlaHour[]> {
  const beforeS = Math.floor(options.nowMs / 1000) - (options.settleS ?? 300);
  const result = await client.query({
    query: `
SELECT engine, a, b, toUInt32(hour) AS hour_s
FROM sla_hours
WHERE hour + 3600 <= toDateTime({before:UInt32}, 'UTC')
GROUP BY engine, a, b, hour
HAVING sum(trains) != max(finalised_trains)
ORDER BY hour DESC, engine, a, b
LIMIT {limit:UInt32}`,
    query_params: { before: beforeS, limit: options.limit ?? 5000 },
    format: 'JSONEachRow',
  });
  const rows = await result.json<{ engine: string; a: string; b: string; hour_s: number }>();
  return rows.map((r) => ({ engine: r.engine, a: r.a, b: r.b, hourS: Number(r.hour_s) }));
}

/**
 * Merge the given link-hours (one engine at a time) into sla_minutes,
 * summarise each into sla_link_hours, then mark each with the trains its
 * minutes came from. Minutes and summaries first: a run cut short before the
 * mark leaves hours unmarked, which are read from latency_1m and merged
 * again by the next run (the rewrite replaces the same rows); a month only
 * takes the summary of the version the mark names.
 */
export async function materialiseSlaHours(client: ClickHouseClient, hours: SlaHour[]): Promise<void> {
  const engines = [...new Set(hours.map((h) => h.engine))];
  for (const engine of engines) {
    const mine = hours.filter((h) => h.engine === engine);
    if (mine.length === 0) continue;
    const params = {
      engine,
      start: Math.min(...mine.map((h) => h.hourS)),
      end: Math.max(...mine.map((h) => h.hourS)) + 3600,
      ha: mine.map((h) => h.a),
      hb: mine.map((h) => h.b),
      hs: mine.map((h) => h.hourS),
    };
    const todoHours = `engine = {engine:String} AND minute >= toDateTime({start:UInt32}, 'UTC') AND minute < toDateTime({end:UInt32}, 'UTC')
      AND (a, b, toUInt32(toStartOfHour(minute))) IN (SELECT arrayJoin(arrayZip({ha:Array(String)}, {hb:Array(String)}, {hs:Array(UInt32)})))`;
    const todo = `(least(src, dst), greatest(src, dst), toUInt32(toStartOfHour(minute))) IN
        (SELECT arrayJoin(arrayZip({ha:Array(String)}, {hb:Array(String)}, {hs:Array(UInt32)})))`;
    await client.command({
      query: `
INSERT INTO sla_minutes (engine, a, b, link, minute, hour_trains, ab_trains, ab_sent, ab_received, ab_lost, ab_q_us,
                         ba_trains, ba_sent, ba_received, ba_lost, ba_q_us, dirs, rx_dirs, m_q_us)
SELECT {engine:String}, la, lb, concat(la, '~', lb), minute,
       sum(m_trains) OVER (PARTITION BY la, lb, toStartOfHour(minute)) AS hour_trains,
       ab_trains, ab_sent, ab_received, ab_lost, ab_qs, ba_trains, ba_sent, ba_received, ba_lost, ba_qs, dirs, rx_dirs, m_qs
FROM (${pairDirections(directionMinutes('rollup', todo))}
)`,
      query_params: params,
    });
    await client.command({ query: summariseLinkHoursSql(todoHours), query_params: params });
    await client.command({
      query: `
INSERT INTO sla_hours (engine, a, b, hour, trains, finalised_trains)
SELECT engine, a, b, toStartOfHour(minute) AS hour, toUInt64(0), max(hour_trains)
FROM sla_minutes
WHERE engine = {engine:String} AND minute >= toDateTime({start:UInt32}, 'UTC') AND minute < toDateTime({end:UInt32}, 'UTC')
  AND (a, b, toUInt32(toStartOfHour(minute))) IN (SELECT arrayJoin(arrayZip({ha:Array(String)}, {hb:Array(String)}, {hs:Array(UInt32)})))
GROUP BY engine, a, b, hour`,
      query_params: params,
    });
  }
}

/** Most minutes a link-hour summary lists per rollup level and for loss (migration 0018); the month reads the rest of an hour's minutes only when its policy needs more. */
const SUMMARY_TOP = 8;

/**
 * INSERT … SELECT of the link-hour summaries (migration 0018) of the
 * sla_minutes rows matching `where` (SQL over engine, a, b, link, minute),
 * each link-hour from its newest version. A link-hour whose minutes are
 * stored twice at that version (two runs merged it at once) is left out:
 * the month reads its minutes instead.
 */
export function summariseLinkHoursSql(where: string): string {
  const available = 'dirs = 2 AND rx_dirs = 2';
  const offset = 'toUInt8(toMinute(minute))';
  const sent = 'toUInt64(ab_sent) + ba_sent';
  const lost = 'toUInt64(ab_lost) + ba_lost';
  // Highest first; ties by the later minute (tuples compare element by element).
  const top = (tuple: string, cond: string) => `arraySlice(arrayReverseSort(groupArrayIf(${tuple}, ${cond})), 1, ${SUMMARY_TOP})`;
  const levels = ROLLUP_LEVELS.map((l, i) => ({ name: `p${Math.round(l * 100)}`, index: i + 1 }));
  return `
INSERT INTO sla_link_hours (engine, a, b, link, hour, hour_trains, covered, available, sent, lost, unavailable_minutes,
                            ${levels.map((l) => `top_${l.name}_us, top_${l.name}_minutes`).join(', ')},
                            lossy, top_loss_minutes, top_loss_sent, top_loss_lost)
SELECT engine, a, b, link, hour, hour_trains, covered, available, sent, lost, unavailable_minutes,
       ${levels.map((l) => `arrayMap(x -> x.1, top_${l.name}), arrayMap(x -> x.2, top_${l.name})`).join(',\n       ')},
       lossy, arrayMap(x -> x.2, top_loss), arrayMap(x -> x.3, top_loss), arrayMap(x -> x.4, top_loss)
FROM (
    SELECT engine, a, b, link, toStartOfHour(minute) AS hour, hour_trains,
           countIf(dirs = 2) AS covered, countIf(${available}) AS available,
           sumIf(${sent}, ${available}) AS sent, sumIf(${lost}, ${available}) AS lost,
           arraySort(groupArrayIf(${offset}, dirs = 2 AND rx_dirs != 2)) AS unavailable_minutes,
           ${levels.map((l) => `${top(`(toFloat32(arrayElement(m_q_us, ${l.index})), ${offset})`, available)} AS top_${l.name}`).join(',\n           ')},
           countIf(${available} AND ${lost} > 0) AS lossy,
           ${top(`((${lost}) / (${sent}), ${offset}, ${sent}, ${lost})`, `${available} AND ${lost} > 0`)} AS top_loss
    FROM sla_minutes
    WHERE ${where}
      AND (engine, link, toStartOfHour(minute), hour_trains) IN
          (SELECT engine, link, toStartOfHour(minute), max(hour_trains) FROM sla_minutes WHERE ${where} GROUP BY engine, link, toStartOfHour(minute))
    GROUP BY engine, a, b, link, hour, hour_trains
    HAVING count() = uniqExact(minute)
)`;
}

/**
 * Summarise every materialised link-hour of `engine` in [startS, endS) again
 * (for minutes written by other means than the materialiser, as the
 * benchmark generates them). Rows of a version already summarised are
 * replaced by merges and read once.
 */
export async function summariseSlaLinkHours(client: ClickHouseClient, engine: string, startS: number, endS: number): Promise<void> {
  await client.command({
    query: summariseLinkHoursSql(`engine = {engine:String} AND minute >= toDateTime({start:UInt32}, 'UTC') AND minute < toDateTime({end:UInt32}, 'UTC')`),
    query_params: { engine, start: startS, end: endS },
  });
}

/** One run of the job: the newest `limit` link-hours that need it. Returns how many were merged. */
export async function materialiseSlaMinutes(client: ClickHouseClient, options: MaterialiseOptions): Promise<number> {
  const hours = await slaHoursToMaterialise(client, options);
  if (hours.length > 0) await materialiseSlaHours(client, hours);
  return hours.length;
}
