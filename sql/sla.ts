/**
 * Monthly SLA arithmetic, in ClickHouse where the data is. Every figure of a
 * report comes from one of these named queries; handlers only shape JSON.
 *
 * Unit of evidence: the link-minute. Per minute and direction, the 1-minute
 * rollup (latency_1m) gives packet counts and a t-digest of the raw RTTs; the
 * same figures can be recomputed from the raw trains (latency_trains) with
 * exact percentiles (`source: 'raw'`), and the two must agree (tested).
 *
 * For each link (a < b) and minute m of the period, not excluded by an
 * advance-declared maintenance window nor by our own load (a minute a
 * citymesh throughput test loaded the link, guarded: sql/load-windows.ts;
 * listed as its own category, "self_load"):
 *   covered       both directions have at least one train with packets sent
 *   available     covered, and both directions received at least one packet
 *   p             worst direction's per-minute percentile RTT (policy level)
 *   latency breach   available and p > target
 *   loss breach      available and lost > ceiling x sent (that minute, both directions)
 *   availability breach   covered and not available
 * Month figures are counts of those minutes; the longest breach is the
 * longest run of consecutive clock minutes that each breached (an excluded
 * or uncovered minute ends a run).
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { directionBucketsSql, levelIndex, ROLLUP_LEVELS, type RollupMinutesTable } from './direction-buckets.js';
import { loadedBucketsSql } from './load-windows.js';
import { queryParamsBudget } from './store.js';

export type SlaSource = 'rollup' | 'raw';
export type SlaVerdictCode = 'met' | 'breach' | 'insufficient_data';


/** One link and the policy it is judged by, as bound parameters. */
export interface SlaLinkInput {
  a: string;
  b: string;
  rttTargetUs: number;
  /** One of ROLLUP_LEVELS. */
  percentile: number;
  latencyMinutesMin: number;
  lossRatioMax: number;
  availabilityMin: number;
  coverageMin: number;
  committedMbps: number;
  floorBps: number;
}

export interface SlaQuery {
  /** Unix seconds, whole minutes; [startS, endS). */
  startS: number;
  endS: number;
  engine: string;
  source: SlaSource;
  links: SlaLinkInput[];
  /** Guard added around each of our throughput tests' load windows, ms (collector's selfLoadGuardMs). */
  loadGuardMs: number;
  /**
   * false: read every settled link-hour's minutes from sla_minutes, never a
   * link-hour summary (migration 0018), as the month was computed before
   * them. The figures are the same either way (tested); summaries are faster.
   */
  linkHours?: boolean;
  /**
   * The largest plan (bytes of its lists) handed from the plan query to the
   * evidence query (default: what the client's parameter budget leaves
   * beside the links, see queryParamsBudget); a larger one, or any with 0,
   * is computed inside the month's one query. The figures are the same
   * either way (tested).
   */
  stagedPlanMaxBytes?: number;
}

/** Start and end (exclusive) of a calendar month in a time zone, computed by ClickHouse. */
export async function slaMonthBounds(client: ClickHouseClient, month: string, timezone: string): Promise<{ startS: number; endS: number }> {
  const result = await client.query({
    query: `
SELECT toUInt32(toUnixTimestamp(m_start)) AS start_s, toUInt32(toUnixTimestamp(addMonths(m_start, 1))) AS end_s
FROM (SELECT toDateTime(concat({month:String}, '-01 00:00:00'), {tz:String}) AS m_start)`,
    query_params: { month, tz: timezone },
    format: 'JSONEachRow',
  });
  const [row] = await result.json<{ start_s: number; end_s: number }>();
  if (!row) throw new Error(`no bounds for month ${month}`);
  return { startS: Number(row.start_s), endS: Number(row.end_s) };
}

/**
 * Calendar months (in `timezone`) holding latency minutes, newest first.
 * First and last minute of each partition (one UTC month, which overlaps at
 * most two local months, the ones of its first and last minute). GROUP BY
 * the partition key with only min/max of its column is answered by the
 * parts' minmax index (the implicit _minmax_count_projection), not by
 * scanning the rollup, on one server and on every shard of a cluster alike;
 * system.parts would see neither latency_1m (Distributed there, its parts are
 * latency_1m_local's) nor other shards' parts.
 */
export async function slaMonthsWithData(client: ClickHouseClient, timezone: string): Promise<string[]> {
  const result = await client.query({
    query: `
SELECT DISTINCT formatDateTime(toStartOfMonth(arrayJoin([first_minute, last_minute]), {tz:String}), '%Y-%m') AS month
FROM (SELECT min(minute) AS first_minute, max(minute) AS last_minute FROM latency_1m GROUP BY toYYYYMM(minute))
ORDER BY month DESC`,
    query_params: { tz: timezone },
    format: 'JSONEachRow',
  });
  return (await result.json<{ month: string }>()).map((r) => r.month);
}

/** The calendar month (YYYY-MM, in `timezone`) of an instant given in Unix microseconds. */
export async function slaMonthOf(client: ClickHouseClient, unixMicros: number, timezone: string): Promise<string> {
  const result = await client.query({
    query: `SELECT formatDateTime(toStartOfMonth(fromUnixTimestamp64Micro({us:Int64}, 'UTC'), {tz:String}), '%Y-%m') AS month`,
    query_params: { us: Math.round(unixMicros), tz: timezone },
    format: 'JSONEachRow',
  });
  const [row] = await result.json<{ month: string }>();
  return row!.month;
}

/** The links CTE's columns, in the order linkParams writes each link's JSON row. */
const LINK_COLUMNS = 'a String, b String, rtt_target_us Float64, q_index UInt8, latency_min Float64, loss_max Float64, ' +
  'availability_min Float64, coverage_min Float64, committed_mbps Float64, floor_bps Float64';

/** The links and their policy, a CTE. */
const LINKS = `links AS (
    -- one string parameter, not ten arrays: a query's parameters are literals in every copy of a CTE, and the analyser
    -- folded ten arrays of every link in each of links' seven copies (about 0.3 s at 190 links, growing with the links)
    SELECT a, b, concat(a, '~', b) AS link, rtt_target_us, q_index, latency_min, loss_max, availability_min, coverage_min, committed_mbps, floor_bps
    FROM format(JSONCompactEachRow, '${LINK_COLUMNS}', {links:String})
)`;

/** Policy numbers arrive as JSON text: parsed to the nearest double, as a Float64 parameter is, not by the faster approximate parser. */
const EXACT_FLOATS = 'precise_float_parsing = 1';

/**
 * Settings of every month query. Two of the analyser's rewrites cost a month
 * more than they could save, over its whole tree at every analysis:
 * fusing aggregates of one argument (sum and count into sumCount) and adding
 * comparisons implied by an AND chain. Without them the evidence query of a
 * closed 20-centre month took 372 ms against 560 (medians of 7, interleaved),
 * with the same output; the query's work is unchanged.
 */
const MONTH_SETTINGS = `join_use_nulls = 0, ${EXACT_FLOATS}, optimize_syntax_fuse_functions = 0, optimize_and_compare_chain = 0`;

function linkParams(q: SlaQuery): Record<string, unknown> & { links: string } {
  for (const l of q.links) {
    for (const [name, v] of Object.entries({ rttTargetUs: l.rttTargetUs, latencyMinutesMin: l.latencyMinutesMin, lossRatioMax: l.lossRatioMax,
      availabilityMin: l.availabilityMin, coverageMin: l.coverageMin, committedMbps: l.committedMbps, floorBps: l.floorBps })) {
      if (!Number.isFinite(v)) throw new Error(`SLA policy of link ${l.a}~${l.b}: ${name} is ${v}, not a finite number`);
    }
  }
  return {
    start: q.startS,
    end: q.endS,
    minutes: Math.round((q.endS - q.startS) / 60),
    engine: q.engine,
    links: q.links.map((l) => JSON.stringify([
      l.a, l.b, l.rttTargetUs, levelIndex(l.percentile), l.latencyMinutesMin, l.lossRatioMax, l.availabilityMin, l.coverageMin, l.committedMbps, l.floorBps,
    ])).join('\n'),
    load_guard_ms: Math.round(q.loadGuardMs),
    link_hours: q.linkHours === false ? 0 : 1,
  };
}

/** Longest run of consecutive values in a sorted UInt array (0 when empty). */
const longestRun = (idx: string) =>
  `if(empty(${idx}), 0, arrayMax(arrayMap(r -> length(r), arraySplit((v, d) -> d != 1, ${idx}, arrayDifference(${idx})))))`;

/** Runs of consecutive minutes as [first minute (Unix s), length]. */
const runs = (idx: string) =>
  `arrayMap(r -> (toUInt32(r[1] * 60), length(r)), arraySplit((v, d) -> d != 1, ${idx}, arrayDifference(${idx})))`;

/**
 * Per minute and direction: packets and the four percentile levels, from the
 * raw trains (exact) or from latency_1m (t-digest). `where` narrows the
 * rollup's rows further (SQL over minute, src, dst).
 */
export function directionMinutes(source: SlaSource, where = '1', rollupTable: RollupMinutesTable = 'latency_1m'): string {
  const period = source === 'rollup'
    ? 'minute >= toDateTime({start:UInt32}) AND minute < toDateTime({end:UInt32})'
    : 'ts >= toDateTime64({start:UInt32}, 6) AND ts < toDateTime64({end:UInt32}, 6)';
  return `
    SELECT bucket_time AS minute, la, lb, dir_src, d_trains, d_sent, d_received, d_lost, d_qs
    FROM (${directionBucketsSql({ source, engine: 'engine = {engine:String}', period, where, rollupTable })}
    )`;
}

/**
 * Both directions of a link-minute side by side, from per-direction rows: the
 * month's unit of evidence (`dirs` / `rx_dirs`: directions that sent /
 * received; m_qs: the worse direction's levels). The materialiser stores
 * exactly these rows (sql/sla-minutes.ts).
 */
export function pairDirections(directions: string): string {
  return `
    SELECT minute, la, lb,
           sumIf(d_trains, dir_src = la) AS ab_trains, sumIf(d_sent, dir_src = la) AS ab_sent,
           sumIf(d_received, dir_src = la) AS ab_received, sumIf(d_lost, dir_src = la) AS ab_lost, anyIf(d_qs, dir_src = la) AS ab_qs,
           sumIf(d_trains, dir_src = lb) AS ba_trains, sumIf(d_sent, dir_src = lb) AS ba_sent,
           sumIf(d_received, dir_src = lb) AS ba_received, sumIf(d_lost, dir_src = lb) AS ba_lost, anyIf(d_qs, dir_src = lb) AS ba_qs,
           countIf(d_sent > 0) AS dirs, countIf(d_received > 0) AS rx_dirs,
           sum(d_sent) AS m_sent, sum(d_lost) AS m_lost, maxForEach(d_qs) AS m_qs, sum(d_trains) AS m_trains
    FROM (${directions}
    )
    GROUP BY minute, la, lb`;
}

/**
 * Link-hours of the period (engine {engine}) as sla_hours counts them.
 * stale: materialised minutes missing or older than the trains latency_1m
 * holds, read from the minute rollup (STALE_SPLIT). settled: materialised from every train
 * latency_1m holds; `version` is the trains its minutes (sla_minutes) and
 * summary (sla_link_hours) came from, which picks their current rows
 * without FINAL (older versions carry fewer trains).
 */
const HOUR_STATE_ONLY = `
hour_state AS (
    SELECT a, b, hour, sum(trains) AS h_trains, max(finalised_trains) AS h_finalised FROM sla_hours
    WHERE engine = {engine:String} AND hour >= toStartOfHour(toDateTime({start:UInt32}, 'UTC')) AND hour < toDateTime({end:UInt32}, 'UTC')
    GROUP BY a, b, hour
)`;

/** sla_minutes rows of the current version of the settled link-hours in \`hours\` (a CTE of a, b, hour, version), once each. */
const settledMinutes = (hours: string) => `(a, b, toStartOfHour(minute), hour_trains) IN (SELECT a, b, hour, version FROM ${hours})`;

/** Rollup rows of the link-hours in `hours` (a CTE of a, b, hour) only; the time bounds let the primary key skip the rest. */
const inHours = (hours: string) => `minute >= (SELECT min(hour) FROM ${hours}) AND minute < (SELECT max(hour) FROM ${hours}) + 3600
        AND (least(src, dst), greatest(src, dst), toStartOfHour(minute)) IN (SELECT a, b, hour FROM ${hours})`;

/**
 * The whole hours the period touches, in latency_1m_recent: its few hourly partitions are pruned by them (finer bounds
 * are not worth their subqueries), and a link-hour's trains are counted whole, as sla_hours counts them, also those
 * measured after the period's end (the current minute of a month to now).
 */
const IN_RECENT_PERIOD = `minute >= toStartOfHour(toDateTime({start:UInt32}, 'UTC'))
        AND minute < toStartOfHour(toDateTime({end:UInt32} - 1, 'UTC')) + INTERVAL 1 HOUR`;

/**
 * recent_whole: whether latency_1m_recent (the last hours alone, migration
 * 0019) holds every train sla_hours counts for every stale link-hour (a CTE
 * \`stale\` of a, b, hour and those trains). Then the stale link-hours are
 * read there (the current hour of a month to now: 60 rows per direction);
 * otherwise (late trains into an older hour, hours gone from
 * latency_1m_recent) all of them from latency_1m, where the current hour of
 * every direction shares its granules with days of that direction's other
 * minutes (the whole month so far decoded). All or nothing, decided once (a
 * scalar): splitting link-hour by link-hour costs more analysis (a CTE is a
 * copy at every use) than it saves. The same states either way, written from
 * the same inserted blocks by the same SELECT; merged in another order
 * (hourly parts here, monthly there), a t-digest's levels may differ in their
 * last digits, as latency_1m's own do before and after one of its merges.
 */
const STALE_SPLIT = `(
    SELECT count() = 0
    FROM stale AS s
    LEFT JOIN (
        SELECT least(src, dst) AS r_a, greatest(src, dst) AS r_b, toStartOfHour(minute) AS r_hour, sum(trains) AS r_trains
        FROM latency_1m_recent
        WHERE engine = {engine:String} AND ${IN_RECENT_PERIOD}
        GROUP BY r_a, r_b, r_hour
    ) AS r ON r.r_a = s.a AND r.r_b = s.b AND r.r_hour = s.hour
    WHERE r.r_trains != s.trains
) AS recent_whole`;

const HOUR_STATE = `${HOUR_STATE_ONLY},
stale AS (SELECT a, b, hour, h_trains AS trains FROM hour_state WHERE h_trains != h_finalised),
${STALE_SPLIT},
settled AS (SELECT a, b, hour, h_finalised AS version FROM hour_state WHERE h_trains = h_finalised)`;

/** Per minute and direction (directionMinutes' rows) of the stale link-hours, from where STALE_SPLIT says; \`where\` narrows them. */
const staleDirectionMinutes = (where = '1') => `
    SELECT * FROM (${directionMinutes('rollup', `NOT recent_whole AND ${where} AND ${inHours('stale')}`)}
    )
    UNION ALL
    SELECT * FROM (${directionMinutes('rollup', `recent_whole AND ${where} AND (least(src, dst), greatest(src, dst), toStartOfHour(minute)) IN (SELECT a, b, hour FROM stale)`, 'latency_1m_recent')}
    )`;


/**
 * One row per link-minute with data: minute, la, lb, link ('a~b'), dirs,
 * rx_dirs, m_sent, m_lost, m_qs. From the rollup: the materialised minutes
 * (sla_minutes) of the settled link-hours their summaries do not decide,
 * the minute rollup for the stale ones (STALE_SPLIT; the same figures
 * either way); from the raw trains: computed now.
 */
function linkMinutes(source: SlaSource): string {
  if (source === 'raw') {
    return `
    SELECT minute, la, lb, concat(la, '~', lb) AS link, dirs, rx_dirs, m_sent, m_lost, m_qs
    FROM (${pairDirections(directionMinutes('raw'))}
    )`;
  }
  return `
    SELECT * FROM (
        SELECT minute, a AS la, b AS lb, link, dirs, rx_dirs, toUInt64(ab_sent) + ba_sent AS m_sent, toUInt64(ab_lost) + ba_lost AS m_lost, m_q_us AS m_qs
        FROM sla_minutes
        WHERE engine = {engine:String} AND minute >= toDateTime({start:UInt32}) AND minute < toDateTime({end:UInt32})
          -- bounds on the sort key (engine, link, minute) first: where (nearly) every hour is summarised, few granules are read
          AND link IN (SELECT link FROM minute_hours)
          AND minute >= (SELECT min(hour) FROM minute_hours) AND minute < (SELECT max(hour) FROM minute_hours) + 3600
          AND ${settledMinutes('minute_hours')}
        LIMIT 1 BY link, minute
    )
    UNION ALL
    SELECT minute, la, lb, concat(la, '~', lb) AS link, dirs, rx_dirs, m_sent, m_lost, m_qs
    FROM (${pairDirections(staleDirectionMinutes())}
    )`;
}

/** Per minute and direction of one link ({a}, {b}): rows as directionMinutes gives them, from the same sources as linkMinutes. */
function oneLinkDirectionMinutes(source: SlaSource): string {
  if (source === 'raw') return `SELECT * FROM (${directionMinutes('raw')}) WHERE la = {a:String} AND lb = {b:String}`;
  return `
    SELECT * FROM (
        SELECT minute, a AS la, b AS lb, d.1 AS dir_src, toUInt64(d.2) AS d_trains, toUInt64(d.3) AS d_sent, toUInt64(d.4) AS d_received,
               toUInt64(d.5) AS d_lost, d.6 AS d_qs
        FROM sla_minutes
        ARRAY JOIN [(a, ab_trains, ab_sent, ab_received, ab_lost, ab_q_us), (b, ba_trains, ba_sent, ba_received, ba_lost, ba_q_us)] AS d
        WHERE engine = {engine:String} AND link = concat({a:String}, '~', {b:String})
          AND minute >= toDateTime({start:UInt32}) AND minute < toDateTime({end:UInt32}) AND d.2 > 0 AND ${settledMinutes('settled')}
        LIMIT 1 BY minute, dir_src
    )
    UNION ALL
    SELECT minute, la, lb, dir_src, d_trains, d_sent, d_received, d_lost, d_qs
    FROM (${staleDirectionMinutes('src IN ({a:String}, {b:String}) AND dst IN ({a:String}, {b:String})')}
    )`;
}

/** Per minute and interface: negotiated speed (nic_1m, or the raw samples). */
function nicMinutes(source: SlaSource): string {
  return source === 'rollup'
    ? `
    SELECT minute, least(centre, peer) AS la, greatest(centre, peer) AS lb, min(assumeNotNull(speed_mbps)) AS speed
    FROM nic_1m
    WHERE minute >= toDateTime({start:UInt32}) AND minute < toDateTime({end:UInt32}) AND peer != '' AND speed_mbps IS NOT NULL
    GROUP BY minute, la, lb`
    : `
    SELECT toDateTime(toStartOfMinute(ts), 'UTC') AS minute, least(centre, peer) AS la, greatest(centre, peer) AS lb, min(assumeNotNull(speed_mbps)) AS speed
    FROM nic_samples
    WHERE ts >= toDateTime64({start:UInt32}, 3) AND ts < toDateTime64({end:UInt32}, 3) AND peer != '' AND speed_mbps IS NOT NULL
    GROUP BY minute, la, lb`;
}

/** Column-name stem of a rollup level in sla_link_hours (1-based level index → 'p50', 'p90', …). */
const levelStem = (index: number) => `p${Math.round(ROLLUP_LEVELS[index - 1]! * 100)}`;

/** The summary columns of the levels a month's links are judged at (only those are read). */
const levelColumns = (levels: number[]) => levels.map((i) => `top_${levelStem(i)}_us, top_${levelStem(i)}_minutes`).join(', ');

/** A summary's listed levels (`us`) or their minutes (`minutes`) at each link's own level. */
function levelPick(levels: number[], what: 'us' | 'minutes'): string {
  const column = (i: number) => `lh.top_${levelStem(i)}_${what}`;
  if (levels.length === 1) return column(levels[0]!);
  return `multiIf(${levels.slice(0, -1).map((i) => `links.q_index = ${i}, ${column(i)}`).join(', ')}, ${column(levels.at(-1)!)})`;
}

/**
 * The plan's lists as the plan query hands them to the evidence query: JSON
 * lines (JSONCompactEachRow, written by the engine, read back by it), one
 * string parameter each. excluded: runs of consecutive excluded minutes.
 */
interface StagedPlan {
  excluded: string;
  stale: string;
  minutes: string;
  summary: string;
}

/** Each list's parameter and columns, in the order the plan query writes them. */
const STAGED_LISTS = {
  excluded: { param: 'plan_excluded', columns: 'a String, b String, kind String, first_s UInt32, n UInt32' },
  stale: { param: 'plan_stale', columns: 'a String, b String, hour_s UInt32, trains UInt64' },
  minutes: { param: 'plan_minutes', columns: 'a String, b String, link String, hour_s UInt32, version UInt64' },
  summary: {
    param: 'plan_summary',
    columns: 'link String, a String, b String, covered UInt64, available UInt64, sent UInt64, lost UInt64, worst_p_us Float64, ' +
      'latency_idx Array(UInt32), loss_idx Array(UInt32), availability_idx Array(UInt32)',
  },
} as const satisfies Record<keyof StagedPlan, { param: string; columns: string }>;

/** The names of a list's columns (a name, a space, a type: no type here has ', ' inside). */
const columnNames = (columns: string) => columns.split(', ').map((c) => c.split(' ')[0]!).join(', ');

/** A link's summary totals, as plan_items, summary_links and the summary list all name them. */
const SUMMARY_NAMES = columnNames(STAGED_LISTS.summary.columns);

/**
 * Bytes per link a month's plan lists at least once the link has data (its
 * summary row, or its current hour's stale row): a plan that cannot fit the
 * client's parameter budget is not even computed apart.
 */
const PLAN_BYTES_PER_LINK = 40;

/** A list's rows as a table: the parameter read by format(), or no rows (format() of an empty string has no columns). */
function stagedList(plan: StagedPlan, list: keyof StagedPlan): string {
  const { param, columns } = STAGED_LISTS[list];
  return plan[list] === '' ? `null('${columns}')` : `format(JSONCompactEachRow, '${columns}', {${param}:String})`;
}

function stagedPlanLists(plan: StagedPlan): string {
  return `
excluded AS (SELECT a, b, toDateTime(first_s + 60 * arrayJoin(range(n)), 'UTC') AS minute, kind FROM ${stagedList(plan, 'excluded')}),
stale AS (SELECT a, b, toDateTime(hour_s, 'UTC') AS hour, trains FROM ${stagedList(plan, 'stale')}),
minute_hours AS (SELECT a, b, link, toDateTime(hour_s, 'UTC') AS hour, version FROM ${stagedList(plan, 'minutes')}),
summary_links AS (SELECT ${SUMMARY_NAMES} FROM ${stagedList(plan, 'summary')})`;
}

function stagedParams(plan: StagedPlan): Record<string, string> {
  return Object.fromEntries((Object.keys(STAGED_LISTS) as (keyof StagedPlan)[])
    .filter((list) => plan[list] !== '').map((list) => [STAGED_LISTS[list].param, plan[list]]));
}

/**
 * The plan query: the plan's lists as JSON lines, or null when they hold
 * more than \`maxBytes\` (then nothing larger than that crosses the wire).
 */
async function stagedPlan(client: ClickHouseClient, q: SlaQuery, maxBytes: number): Promise<StagedPlan | null> {
  const lines = (kind: string, columns: string) =>
    `arrayStringConcat(groupArrayIf(formatRow('JSONCompactEachRow', ${columns}), kind = '${kind}'), '') AS ${kind}_lines`;
  const result = await client.query({
    query: `
WITH
${LINKS},${planCtes(q)}
SELECT length(excluded_lines) + length(stale_lines) + length(minutes_lines) + length(summary_lines) AS bytes,
       bytes <= {max_bytes:UInt64} AS fits,
       if(fits, excluded_lines, '') AS excluded, if(fits, stale_lines, '') AS stale,
       if(fits, minutes_lines, '') AS minutes, if(fits, summary_lines, '') AS summary
FROM (
    SELECT (
        SELECT arrayStringConcat(groupArray(formatRow('JSONCompactEachRow', a, b, kind, r.1, r.2)), '')
        FROM (
            SELECT a, b, kind, arrayJoin(${runs('m')}) AS r
            FROM (SELECT a, b, kind, arraySort(groupArray(intDiv(toUInt32(minute), 60))) AS m FROM excluded GROUP BY a, b, kind)
        )
    ) AS excluded_lines,
    ${lines('stale', 'a, b, toUInt32(hour), trains')},
    ${lines('minutes', 'a, b, link, toUInt32(hour), version')},
    ${lines('summary', SUMMARY_NAMES)}
    FROM plan_items
)
SETTINGS ${MONTH_SETTINGS}`,
    query_params: { ...linkParams(q), max_bytes: maxBytes },
    format: 'JSONEachRow',
  });
  const [plan] = await result.json<StagedPlan & { fits: boolean | number }>();
  if (!plan || !plan.fits) return null;
  return { excluded: plan.excluded, stale: plan.stale, minutes: plan.minutes, summary: plan.summary };
}

/**
 * A month's CTEs: links (policy), the plan (which minutes are excluded, how
 * each link-hour is read) and the evidence (per-link figures and verdicts,
 * per_link). 'inline': the plan is computed in the same query; a
 * StagedPlan: the plan query's lists, read from parameters. Two queries cost
 * less than one: each use of the plan's lists in the evidence (about twenty)
 * re-analyses the plan's whole query inline, once it is read from a string
 * (about 40 % of an empty month's 0.4-0.9 s).
 */
function ctes(q: SlaQuery, plan: 'inline' | StagedPlan = 'inline'): string {
  return `
WITH
${LINKS},${plan === 'inline' ? `${planCtes(q)},
${INLINE_PLAN_LISTS}` : stagedPlanLists(plan)},
${STALE_SPLIT},${evidenceCtes(q.source)}`;
}

/**
 * The plan: which minutes are excluded (maintenance, self_load, excluded)
 * and how each link-hour is read (hour_plan), computed once as the scalar
 * \`plan\` and unrolled as plan_items.
 */
function planCtes(q: SlaQuery): string {
  const source = q.source;
  const levels = [...new Set(q.links.map((l) => levelIndex(l.percentile)))].sort((x, y) => x - y);
  return `
maintenance AS (
    SELECT DISTINCT links.a AS a, links.b AS b,
           toDateTime(arrayJoin(range(greatest(toUInt32(w.starts_at), {start:UInt32}), least(toUInt32(w.ends_at), {end:UInt32}), 60)), 'UTC') AS minute
    FROM links CROSS JOIN (
        SELECT scope AS w_scope, a AS w_a, b AS w_b, starts_at, ends_at
        FROM sla_maintenance
        WHERE declared_at < starts_at AND starts_at < toDateTime({end:UInt32}) AND ends_at > toDateTime({start:UInt32})
    ) AS w
    WHERE w.w_scope = 'network'
       OR (w.w_scope = 'centre' AND (w.w_a = links.a OR w.w_a = links.b))
       OR (w.w_scope = 'link' AND w.w_a = links.a AND w.w_b = links.b)
),
self_load AS (
    SELECT a, b, toDateTime(bucket, 'UTC') AS minute
    FROM (${loadedBucketsSql('{start:UInt32}', '{end:UInt32}', '60')}
    )
    WHERE (a, b) IN (SELECT a, b FROM links) AND (a, b, minute) NOT IN (SELECT a, b, minute FROM maintenance)
),
(
    -- excluded minutes computed and analysed once (a scalar subquery), then unrolled at each of excluded's five uses:
    -- a CTE is a copy of its query at every use, and these copies were half the month's fixed cost
    SELECT groupArray((a, b, minute, kind)) FROM (
        SELECT a, b, minute, 'maintenance' AS kind FROM maintenance
        UNION ALL
        SELECT a, b, minute, 'self_load' AS kind FROM self_load
    )
) AS excluded_rows,
excluded AS (SELECT e.1 AS a, e.2 AS b, e.3 AS minute, e.4 AS kind FROM (SELECT arrayJoin(excluded_rows) AS e)),
${HOUR_STATE_ONLY},
hour_plan AS (
    -- each link-hour of the period, how it is read: 'stale' (latency_1m), 'summary' (by its summary alone: wholly in
    -- the period, none of its minutes excluded, and its listed minutes hold every one that can breach the link's
    -- policy: see migration 0018), 'minutes' (sla_minutes: no summary of its finalised version, or one that cannot
    -- decide it). A summary's breach minutes are minute numbers (Unix minutes), as lat_minutes collects them.
    SELECT multiIf(hs.h_trains != hs.h_finalised, 'stale', lh.link = '', 'minutes',
                   hs.hour >= toDateTime({start:UInt32}) AND toUInt32(hs.hour) + 3600 <= {end:UInt32}
                   -- every unlisted available minute is at or under the last listed level
                   AND (length(top_us) >= lh.available OR toFloat64(arrayElement(top_us, -1)) <= links.rtt_target_us)
                   -- every unlisted lossy minute's ratio is at most the last listed one's: under the ceiling by more than rounding
                   AND links.loss_max >= 0
                   AND (length(lh.top_loss_lost) >= lh.lossy
                        OR links.loss_max > arrayElement(lh.top_loss_lost, -1) / arrayElement(lh.top_loss_sent, -1) * (1 + 1e-9))
                   AND (hs.a, hs.b, hs.hour) NOT IN (SELECT a, b, toStartOfHour(minute) FROM excluded), 'summary',
                   'minutes') AS kind,
           hs.a AS a, hs.b AS b, links.link AS link, hs.hour AS hour, hs.h_finalised AS version, hs.h_trains AS trains,
           lh.covered AS covered, lh.available AS available, lh.sent AS sent, lh.lost AS lost,
           ${levelPick(levels, 'us')} AS top_us, ${levelPick(levels, 'minutes')} AS top_minutes,
           toFloat64(arrayElement(top_us, 1)) AS worst_p_us,
           intDiv(toUInt32(hs.hour), 60) AS first_minute,
           arrayMap(m -> toUInt32(first_minute + m), arrayFilter((m, v) -> toFloat64(v) > links.rtt_target_us, top_minutes, top_us)) AS latency_idx,
           arrayMap(m -> toUInt32(first_minute + m),
                    arrayFilter((m, s, l) -> l > links.loss_max * s, lh.top_loss_minutes, lh.top_loss_sent, lh.top_loss_lost)) AS loss_idx,
           arrayMap(m -> toUInt32(first_minute + m), lh.unavailable_minutes) AS availability_idx
    FROM hour_state AS hs
    INNER JOIN links ON hs.a = links.a AND hs.b = links.b
    -- ANY: one summary row per link-hour and version (two copies of one version are the same row)
    ANY LEFT JOIN (
        SELECT link, a, b, hour, hour_trains, covered, available, sent, lost, unavailable_minutes, lossy, top_loss_minutes, top_loss_sent, top_loss_lost,
               ${levelColumns(levels)}
        FROM sla_link_hours
        WHERE {link_hours:UInt8} AND engine = {engine:String}
          AND hour >= toStartOfHour(toDateTime({start:UInt32}, 'UTC')) AND hour < toDateTime({end:UInt32}, 'UTC')
    ) AS lh ON lh.a = hs.a AND lh.b = hs.b AND lh.hour = hs.hour AND lh.hour_trains = hs.h_finalised
    WHERE ${source === 'rollup' ? '1' : '0'}
),
(
    SELECT groupArray((kind, a, b, link, p_hour, p_version, p_covered, p_available, p_sent, p_lost, p_worst, p_latency_idx, p_loss_idx, p_availability_idx, p_trains))
    FROM (
        SELECT kind, a, b, link, if(kind = 'summary', toDateTime(0, 'UTC'), hour) AS p_hour, any(version) AS p_version,
               sum(covered) AS p_covered, sum(available) AS p_available, sum(sent) AS p_sent, sum(lost) AS p_lost, max(worst_p_us) AS p_worst,
               groupArrayArray(latency_idx) AS p_latency_idx, groupArrayArray(loss_idx) AS p_loss_idx, groupArrayArray(availability_idx) AS p_availability_idx,
               any(trains) AS p_trains
        FROM hour_plan
        GROUP BY kind, a, b, link, p_hour
    )
) AS plan,
plan_items AS (
    -- the plan computed once (a scalar subquery is evaluated once per query; a CTE once per reference): the link-hours
    -- decided by their summaries as one total per link, every other link-hour on its own
    SELECT p.1 AS kind, p.2 AS a, p.3 AS b, p.4 AS link, p.5 AS hour, p.6 AS version, p.7 AS covered, p.8 AS available,
           p.9 AS sent, p.10 AS lost, p.11 AS worst_p_us, p.12 AS latency_idx, p.13 AS loss_idx, p.14 AS availability_idx,
           p.15 AS trains
    FROM (SELECT arrayJoin(plan) AS p)
)`;
}

/**
 * The plan's lists the evidence reads (excluded, stale, minute_hours,
 * summary_links), picked from plan_items in the same query.
 * stale and minute_hours are used nine times between them: each a copy of its CTE, and a copy of plan_items re-resolves
 * the plan's whole query (its value is computed once, its analysis is not). Picked out once here as scalars, each copy
 * unrolls a constant: about 60-80 ms less per month query (20 centres).
 */
const INLINE_PLAN_LISTS = `
-- trains: what sla_hours counts of a stale link-hour (one row each: its p_hour is its own)
(SELECT groupArray((a, b, hour, trains)) FROM plan_items WHERE kind = 'stale') AS stale_rows,
stale AS (SELECT s.1 AS a, s.2 AS b, s.3 AS hour, s.4 AS trains FROM (SELECT arrayJoin(stale_rows) AS s)),
(SELECT groupArray((a, b, link, hour, version)) FROM plan_items WHERE kind = 'minutes') AS minute_rows,
minute_hours AS (SELECT m.1 AS a, m.2 AS b, m.3 AS link, m.4 AS hour, m.5 AS version FROM (SELECT arrayJoin(minute_rows) AS m)),
summary_links AS (SELECT ${SUMMARY_NAMES} FROM plan_items WHERE kind = 'summary')`;

/**
 * The evidence, from the plan's lists: lm (one row per link-minute read),
 * ev (judged), lat / cap / tput (per-link aggregates with sorted
 * breach-minute arrays), per_link (verdicts).
 */
function evidenceCtes(source: SlaSource): string {
  return `
lm AS (
    SELECT minute, la, lb, link, dirs, rx_dirs, m_sent, m_lost, m_qs
    FROM (${linkMinutes(source)}
    )
    -- the tuple lookup runs only for minutes some window excludes
    WHERE NOT (minute IN (SELECT minute FROM excluded) AND (la, lb, minute) IN (SELECT a, b, minute FROM excluded))
),
ev AS (
    SELECT links.link AS link, links.a AS link_a, links.b AS link_b, lm.minute AS minute, intDiv(toUInt32(lm.minute), 60) AS mi,
           lm.dirs = 2 AS covered,
           covered AND lm.rx_dirs = 2 AS available,
           toFloat64(arrayElement(lm.m_qs, links.q_index)) AS p_us,
           available AND p_us > links.rtt_target_us AS latency_breach,
           available AND lm.m_lost > links.loss_max * lm.m_sent AS loss_breach,
           covered AND NOT available AS availability_breach,
           if(available, lm.m_sent, 0) AS sent_av,
           if(available, lm.m_lost, 0) AS lost_av
    FROM lm INNER JOIN links ON lm.link = links.link
),
lat_minutes AS (
    -- one key (the link), not (a, b): grouping millions of link-minutes by two LowCardinality columns is several times slower
    SELECT link, any(link_a) AS a, any(link_b) AS b,
           countIf(covered) AS covered_minutes,
           countIf(available) AS available_minutes,
           countIf(latency_breach) AS latency_breach_minutes,
           countIf(loss_breach) AS loss_breach_minutes,
           countIf(availability_breach) AS availability_breach_minutes,
           arraySort(groupArrayIf(mi, latency_breach)) AS latency_idx,
           arraySort(groupArrayIf(mi, loss_breach)) AS loss_idx,
           arraySort(groupArrayIf(mi, availability_breach)) AS availability_idx,
           sum(sent_av) AS sent, sum(lost_av) AS lost,
           maxIf(p_us, available) AS worst_p_us
    FROM ev
    GROUP BY link
),
lat AS (
    SELECT link, any(a) AS a, any(b) AS b,
           sum(covered_minutes) AS covered_minutes, sum(available_minutes) AS available_minutes,
           sum(latency_breach_minutes) AS latency_breach_minutes, sum(loss_breach_minutes) AS loss_breach_minutes,
           sum(availability_breach_minutes) AS availability_breach_minutes,
           arraySort(groupArrayArray(latency_idx)) AS latency_idx, arraySort(groupArrayArray(loss_idx)) AS loss_idx,
           arraySort(groupArrayArray(availability_idx)) AS availability_idx,
           sum(sent) AS sent, sum(lost) AS lost, max(worst_p_us) AS worst_p_us
    FROM (
        SELECT * FROM lat_minutes
        UNION ALL
        SELECT link, a, b, covered, available, length(latency_idx), length(loss_idx), length(availability_idx),
               latency_idx, loss_idx, availability_idx, sent, lost, worst_p_us
        FROM summary_links
    )
    GROUP BY link
),
cap AS (
    SELECT links.a AS a, links.b AS b,
           count() AS nic_minutes,
           countIf(nic.speed < links.committed_mbps) AS nic_breach_minutes,
           arraySort(groupArrayIf(intDiv(toUInt32(nic.minute), 60), nic.speed < links.committed_mbps)) AS nic_idx,
           min(nic.speed) AS nic_min_mbps
    FROM (${nicMinutes(source)}
    ) AS nic
    INNER JOIN links ON nic.la = links.a AND nic.lb = links.b
    WHERE (nic.la, nic.lb, nic.minute) NOT IN (SELECT a, b, minute FROM excluded)
    GROUP BY a, b
),
tput AS (
    SELECT links.a AS a, links.b AS b,
           count() AS tests,
           countIf(NOT t.ok) AS tests_failed,
           countIf(t.worst_bps IS NOT NULL) AS tests_ok,
           countIf(t.worst_bps IS NOT NULL AND assumeNotNull(t.worst_bps) < links.floor_bps) AS tests_below,
           min(t.worst_bps) AS tested_min_bps
    FROM (
        SELECT least(src, dst) AS ta, greatest(src, dst) AS tb, ok, toDateTime(toStartOfMinute(ts), 'UTC') AS tminute,
               if(ok, least(coalesce(forward_bps, reverse_bps), coalesce(reverse_bps, forward_bps)), NULL) AS worst_bps
        FROM throughput_tests
        WHERE ts >= toDateTime64({start:UInt32}, 3) AND ts < toDateTime64({end:UInt32}, 3)
    ) AS t
    INNER JOIN links ON t.ta = links.a AND t.tb = links.b
    WHERE (t.ta, t.tb, t.tminute) NOT IN (SELECT a, b, minute FROM excluded WHERE kind = 'maintenance')
    GROUP BY a, b
),
excluded_count AS (
    SELECT a, b, count() AS excluded_minutes, countIf(kind = 'self_load') AS self_load_minutes FROM excluded GROUP BY a, b
),
per_link AS (
    SELECT a, b, rtt_target_us, q_index, latency_min, loss_max, availability_min, coverage_min, committed_mbps, floor_bps,
           excluded_minutes, self_load_minutes,
           toUInt64({minutes:UInt32} - excluded_minutes) AS sla_minutes,
           covered_minutes, available_minutes,
           latency_breach_minutes, ${longestRun('latency_idx')} AS latency_longest,
           loss_breach_minutes, ${longestRun('loss_idx')} AS loss_longest,
           availability_breach_minutes, ${longestRun('availability_idx')} AS availability_longest,
           sent, lost, if(available_minutes > 0, worst_p_us, NULL) AS worst_p,
           nic_minutes, nic_breach_minutes, ${longestRun('nic_idx')} AS nic_longest,
           if(nic_minutes > 0, nic_min_mbps, NULL) AS nic_min,
           tests, tests_ok, tests_failed, tests_below, tested_min_bps,
           sla_minutes > 0 AND covered_minutes >= coverage_min * sla_minutes AS enough,
           sla_minutes > 0 AND nic_minutes >= coverage_min * sla_minutes AS nic_enough,
           multiIf(NOT enough OR available_minutes = 0, 'insufficient_data',
                   available_minutes - latency_breach_minutes >= latency_min * available_minutes, 'met', 'breach') AS latency_verdict,
           multiIf(NOT enough OR sent = 0, 'insufficient_data', lost <= loss_max * sent, 'met', 'breach') AS loss_verdict,
           multiIf(NOT enough, 'insufficient_data', available_minutes >= availability_min * covered_minutes, 'met', 'breach') AS availability_verdict,
           multiIf(NOT nic_enough, 'insufficient_data', nic_breach_minutes = 0, 'met', 'breach') AS provisioned_verdict,
           multiIf(tests_ok = 0, 'insufficient_data', tests_below = 0, 'met', 'breach') AS tested_verdict,
           multiIf(has([latency_verdict, loss_verdict, availability_verdict, provisioned_verdict, tested_verdict], 'breach'), 'breach',
                   has([latency_verdict, loss_verdict, availability_verdict, provisioned_verdict, tested_verdict], 'insufficient_data'), 'insufficient_data',
                   'met') AS verdict
    FROM links
    LEFT JOIN lat USING (a, b)
    LEFT JOIN cap USING (a, b)
    LEFT JOIN tput USING (a, b)
    LEFT JOIN excluded_count USING (a, b)
)`;
}

/** A month's CTEs and their parameters: the plan handed over by the plan query when it is small enough, else inline. */
async function monthCtes(client: ClickHouseClient, q: SlaQuery): Promise<{ ctes: string; params: Record<string, unknown> }> {
  const params = linkParams(q);
  const given = q.stagedPlanMaxBytes;
  if (given !== undefined && (!Number.isSafeInteger(given) || given < 0)) throw new Error(`stagedPlanMaxBytes is ${given}, not a whole number of bytes`);
  const left = queryParamsBudget(client) - Buffer.byteLength(params.links);
  const maxBytes = given ?? (left > PLAN_BYTES_PER_LINK * q.links.length ? left : 0);
  const plan = maxBytes > 0 ? await stagedPlan(client, q, maxBytes) : null;
  return plan ? { ctes: ctes(q, plan), params: { ...params, ...stagedParams(plan) } } : { ctes: ctes(q), params };
}

/** Worst verdict over the links of a scope: any breach, else any insufficient data, else met. */
const worst = (col: string) =>
  `multiIf(countIf(${col} = 'breach') > 0, 'breach', countIf(${col} = 'insufficient_data') > 0, 'insufficient_data', 'met')`;

/**
 * One row per scope: each link, each centre (all its links) and the whole
 * network. Minute figures of a centre or the network are link-minutes (sums
 * over its links); ratios are pooled; verdicts are the worst of its links'.
 */
export interface SlaScopeRow {
  kind: 'link' | 'centre' | 'network';
  id: string;
  links: number;
  links_met: number;
  links_breach: number;
  links_insufficient: number;
  verdict: SlaVerdictCode;
  latency_verdict: SlaVerdictCode;
  loss_verdict: SlaVerdictCode;
  availability_verdict: SlaVerdictCode;
  provisioned_verdict: SlaVerdictCode;
  tested_verdict: SlaVerdictCode;
  sla_minutes: number;
  excluded_minutes: number;
  /** Of excluded_minutes, those excluded because our own throughput test loaded the link. */
  self_load_minutes: number;
  covered_minutes: number;
  available_minutes: number;
  coverage: number | null;
  latency_breach_minutes: number;
  latency_longest: number;
  latency_value: number | null;
  worst_p_us: number | null;
  loss_breach_minutes: number;
  loss_longest: number;
  loss_value: number | null;
  sent: number;
  lost: number;
  availability_breach_minutes: number;
  availability_longest: number;
  availability_value: number | null;
  nic_minutes: number;
  nic_coverage: number | null;
  nic_breach_minutes: number;
  nic_longest: number;
  nic_min_mbps: number | null;
  tests: number;
  tests_ok: number;
  tests_failed: number;
  tests_below: number;
  tested_min_bps: number | null;
}

/** How a month query reads its link-hours (see hour_plan): counts of each way. */
export interface SlaReadPlan {
  /** Counted from their summaries in sla_link_hours alone. */
  summary: number;
  /** Read minute by minute from sla_minutes (cut by the period, an excluded minute, or a summary that cannot decide). */
  minutes: number;
  /** Not materialised from every train yet: read from the minute rollup. */
  stale: number;
  /** Of the stale ones, those read from latency_1m_recent (the last hours alone): all of them or none (STALE_SPLIT). */
  recent: number;
}

/**
 * How slaCompliance would read the period's link-hours, from the same plan
 * (rollup source only): what an operator or a benchmark asks when a month
 * query costs more than its summaries should.
 */
export async function slaReadPlan(client: ClickHouseClient, q: SlaQuery): Promise<SlaReadPlan> {
  const plan: SlaReadPlan = { summary: 0, minutes: 0, stale: 0, recent: 0 };
  if (q.links.length === 0) return plan;
  const rows = await client.query({
    query: `${ctes(q)}
SELECT kind, count() AS n FROM hour_plan GROUP BY kind
UNION ALL
SELECT 'recent' AS kind, if(recent_whole, (SELECT count() FROM stale), 0) AS n
SETTINGS ${MONTH_SETTINGS}`,
    query_params: linkParams(q),
    format: 'JSONEachRow',
  }).then((r) => r.json<{ kind: keyof SlaReadPlan; n: string }>());
  for (const row of rows) plan[row.kind] = Number(row.n);
  return plan;
}

/** The month's compliance, every scope, from the rollups (default) or the raw trains. */
export async function slaCompliance(client: ClickHouseClient, q: SlaQuery): Promise<SlaScopeRow[]> {
  if (q.links.length === 0) return [];
  const month = await monthCtes(client, q);
  const result = await client.query({
    query: `${month.ctes}
SELECT
    kind, id, links, links_met, links_breach, links_insufficient,
    g_verdict AS verdict, g_latency_verdict AS latency_verdict, g_loss_verdict AS loss_verdict,
    g_availability_verdict AS availability_verdict, g_provisioned_verdict AS provisioned_verdict, g_tested_verdict AS tested_verdict,
    g_sla_minutes AS sla_minutes, g_excluded AS excluded_minutes, g_self_load AS self_load_minutes, g_covered AS covered_minutes, g_available AS available_minutes,
    if(g_sla_minutes > 0, g_covered / g_sla_minutes, NULL) AS coverage,
    g_latency_breach AS latency_breach_minutes, g_latency_longest AS latency_longest,
    if(g_available > 0, (g_available - g_latency_breach) / g_available, NULL) AS latency_value,
    g_worst_p AS worst_p_us,
    g_loss_breach AS loss_breach_minutes, g_loss_longest AS loss_longest,
    if(g_sent > 0, g_lost / g_sent, NULL) AS loss_value, g_sent AS sent, g_lost AS lost,
    g_availability_breach AS availability_breach_minutes, g_availability_longest AS availability_longest,
    if(g_covered > 0, g_available / g_covered, NULL) AS availability_value,
    g_nic_minutes AS nic_minutes, if(g_sla_minutes > 0, g_nic_minutes / g_sla_minutes, NULL) AS nic_coverage,
    g_nic_breach AS nic_breach_minutes, g_nic_longest AS nic_longest, g_nic_min AS nic_min_mbps,
    g_tests AS tests, g_tests_ok AS tests_ok, g_tests_failed AS tests_failed, g_tests_below AS tests_below, g_tested_min AS tested_min_bps
FROM
(
    SELECT
        scope.1 AS kind, scope.2 AS id,
        count() AS links,
        countIf(verdict = 'met') AS links_met,
        countIf(verdict = 'breach') AS links_breach,
        countIf(verdict = 'insufficient_data') AS links_insufficient,
        ${worst('verdict')} AS g_verdict,
        ${worst('latency_verdict')} AS g_latency_verdict,
        ${worst('loss_verdict')} AS g_loss_verdict,
        ${worst('availability_verdict')} AS g_availability_verdict,
        ${worst('provisioned_verdict')} AS g_provisioned_verdict,
        ${worst('tested_verdict')} AS g_tested_verdict,
        sum(sla_minutes) AS g_sla_minutes, sum(excluded_minutes) AS g_excluded, sum(self_load_minutes) AS g_self_load,
        sum(covered_minutes) AS g_covered, sum(available_minutes) AS g_available,
        sum(latency_breach_minutes) AS g_latency_breach, max(latency_longest) AS g_latency_longest,
        max(worst_p) AS g_worst_p,
        sum(loss_breach_minutes) AS g_loss_breach, max(loss_longest) AS g_loss_longest,
        sum(sent) AS g_sent, sum(lost) AS g_lost,
        sum(availability_breach_minutes) AS g_availability_breach, max(availability_longest) AS g_availability_longest,
        sum(nic_minutes) AS g_nic_minutes, sum(nic_breach_minutes) AS g_nic_breach, max(nic_longest) AS g_nic_longest,
        min(nic_min) AS g_nic_min,
        sum(tests) AS g_tests, sum(tests_ok) AS g_tests_ok, sum(tests_failed) AS g_tests_failed, sum(tests_below) AS g_tests_below,
        min(tested_min_bps) AS g_tested_min
    FROM per_link
    ARRAY JOIN [('link', concat(a, '~', b)), ('centre', a), ('centre', b), ('network', '')] AS scope
    GROUP BY scope
)
ORDER BY multiIf(kind = 'link', 0, kind = 'centre', 1, 2), id
SETTINGS ${MONTH_SETTINGS}`,
    query_params: month.params,
    format: 'JSONEachRow',
  });
  const rows = await result.json<SlaScopeRow>();
  return rows.map(numberRow);
}

/** Breach runs of one link: [start (Unix s), minutes] per criterion. */
export interface SlaTimeline {
  latency: [number, number][];
  loss: [number, number][];
  availability: [number, number][];
  provisioned: [number, number][];
}

export async function slaLinkTimeline(client: ClickHouseClient, q: SlaQuery): Promise<SlaTimeline> {
  if (q.links.length !== 1) throw new Error('slaLinkTimeline takes exactly one link');
  const month = await monthCtes(client, q);
  const result = await client.query({
    query: `${month.ctes}
SELECT ${runs('latency_idx')} AS latency, ${runs('loss_idx')} AS loss,
       ${runs('availability_idx')} AS availability, ${runs('nic_idx')} AS provisioned
FROM links
LEFT JOIN lat USING (a, b)
LEFT JOIN cap USING (a, b)
SETTINGS ${MONTH_SETTINGS}`,
    query_params: month.params,
    format: 'JSONEachRow',
  });
  const [row] = await result.json<{ latency: [number, number][] | null; loss: [number, number][] | null; availability: [number, number][] | null; provisioned: [number, number][] | null }>();
  const fix = (v: [number, number][] | null | undefined): [number, number][] => (v ?? []).map(([s, n]) => [Number(s), Number(n)]);
  return { latency: fix(row?.latency), loss: fix(row?.loss), availability: fix(row?.availability), provisioned: fix(row?.provisioned) };
}

/** Minute-level evidence of one link, columnar, one entry per minute of the period. */
export interface SlaMinuteColumns {
  t: number[];
  excluded: number[];
  /** Trains, packets sent, packets lost, percentile RTT (µs) a → b and b → a. */
  abTrains: number[];
  abSent: number[];
  abLost: number[];
  abPUs: (number | null)[];
  baTrains: number[];
  baSent: number[];
  baLost: number[];
  baPUs: (number | null)[];
  /** Provisioned speed that minute (lowest interface), Mb/s. */
  speedMbps: (number | null)[];
  covered: number[];
  available: number[];
  latencyBreach: number[];
  lossBreach: number[];
  /** 1 where the minute is excluded because our own throughput test loaded the link (also 1 in `excluded`). */
  selfLoad: number[];
}

export async function slaLinkMinutes(client: ClickHouseClient, q: SlaQuery): Promise<SlaMinuteColumns> {
  if (q.links.length !== 1) throw new Error('slaLinkMinutes takes exactly one link');
  const link = q.links[0]!;
  const result = await client.query({
    query: `
WITH
excluded AS (
    SELECT DISTINCT toDateTime(arrayJoin(range(greatest(toUInt32(starts_at), {start:UInt32}), least(toUInt32(ends_at), {end:UInt32}), 60)), 'UTC') AS minute
    FROM sla_maintenance
    WHERE declared_at < starts_at AND starts_at < toDateTime({end:UInt32}) AND ends_at > toDateTime({start:UInt32})
      AND (scope = 'network' OR (scope = 'centre' AND a IN ({a:String}, {b:String})) OR (scope = 'link' AND a = {a:String} AND b = {b:String}))
),
self_load AS (
    SELECT toDateTime(bucket, 'UTC') AS minute
    FROM (${loadedBucketsSql('{start:UInt32}', '{end:UInt32}', '60')}
    )
    WHERE a = {a:String} AND b = {b:String} AND minute NOT IN (SELECT minute FROM excluded)
),
${HOUR_STATE},
dir AS (
    SELECT minute, dir_src, d_trains, d_sent, d_received, d_lost, toFloat64(arrayElement(d_qs, {qi:UInt8})) AS d_p
    FROM (${oneLinkDirectionMinutes(q.source)}
    )
),
nic AS (
    SELECT minute, speed FROM (${nicMinutes(q.source)}
    ) WHERE la = {a:String} AND lb = {b:String}
)
SELECT
    toUInt32(grid.minute) AS t,
    grid.minute IN (SELECT minute FROM excluded) OR grid.minute IN (SELECT minute FROM self_load) AS is_excluded,
    ab.d_trains AS ab_trains, ab.d_sent AS ab_sent, ab.d_lost AS ab_lost, if(ab.d_received > 0, ab.d_p, NULL) AS ab_p,
    ba.d_trains AS ba_trains, ba.d_sent AS ba_sent, ba.d_lost AS ba_lost, if(ba.d_received > 0, ba.d_p, NULL) AS ba_p,
    if(nic.minute = grid.minute, nic.speed, NULL) AS speed,
    NOT is_excluded AND ab.d_sent > 0 AND ba.d_sent > 0 AS covered,
    covered AND ab.d_received > 0 AND ba.d_received > 0 AS available,
    available AND greatest(ab.d_p, ba.d_p) > {rtt_us:Float64} AS latency_breach,
    available AND (ab.d_lost + ba.d_lost) > {loss_max:Float64} * (ab.d_sent + ba.d_sent) AS loss_breach,
    grid.minute IN (SELECT minute FROM self_load) AS is_self_load
FROM (SELECT toDateTime({start:UInt32} + number * 60, 'UTC') AS minute FROM numbers({minutes:UInt32})) AS grid
LEFT JOIN (SELECT * FROM dir WHERE dir_src = {a:String}) AS ab ON ab.minute = grid.minute
LEFT JOIN (SELECT * FROM dir WHERE dir_src = {b:String}) AS ba ON ba.minute = grid.minute
LEFT JOIN nic ON nic.minute = grid.minute
ORDER BY t
SETTINGS join_use_nulls = 0`,
    query_params: {
      start: q.startS, end: q.endS, minutes: Math.round((q.endS - q.startS) / 60), engine: q.engine,
      a: link.a, b: link.b, qi: levelIndex(link.percentile), rtt_us: link.rttTargetUs, loss_max: link.lossRatioMax,
      load_guard_ms: Math.round(q.loadGuardMs),
    },
    format: 'JSONCompactEachRow',
  });
  const rows = await result.json<[number, number, number, number, number, number | null, number, number, number, number | null, number | null, number, number, number, number, number]>();
  const cols: SlaMinuteColumns = {
    t: [], excluded: [], abTrains: [], abSent: [], abLost: [], abPUs: [], baTrains: [], baSent: [], baLost: [], baPUs: [],
    speedMbps: [], covered: [], available: [], latencyBreach: [], lossBreach: [], selfLoad: [],
  };
  for (const r of rows) {
    cols.t.push(Number(r[0]));
    cols.excluded.push(Number(r[1]));
    cols.abTrains.push(Number(r[2]));
    cols.abSent.push(Number(r[3]));
    cols.abLost.push(Number(r[4]));
    cols.abPUs.push(finite(r[5]));
    cols.baTrains.push(Number(r[6]));
    cols.baSent.push(Number(r[7]));
    cols.baLost.push(Number(r[8]));
    cols.baPUs.push(finite(r[9]));
    cols.speedMbps.push(r[10] === null ? null : Number(r[10]));
    cols.covered.push(Number(r[11]));
    cols.available.push(Number(r[12]));
    cols.latencyBreach.push(Number(r[13]));
    cols.lossBreach.push(Number(r[14]));
    cols.selfLoad.push(Number(r[15]));
  }
  return cols;
}

// ---------------------------------------------------------------------------
// Maintenance windows

export interface MaintenanceRow {
  id: string;
  scope: 'link' | 'centre' | 'network';
  /** link: the lower centre id; centre: the centre; network: ''. */
  a: string;
  /** link: the higher centre id; otherwise ''. */
  b: string;
  startS: number;
  endS: number;
  reason: string;
  declaredAtMs: number;
  declaredBy: string;
}

export interface MaintenanceWindow extends MaintenanceRow {
  /** Declared at or after its start: listed, never excluded. */
  declaredLate: boolean;
}

export async function insertMaintenance(client: ClickHouseClient, row: MaintenanceRow): Promise<void> {
  if (row.startS % 60 !== 0 || row.endS % 60 !== 0) throw new Error('maintenance windows start and end on whole minutes');
  if (row.endS <= row.startS) throw new Error('a maintenance window must end after it starts');
  await client.insert({
    table: 'sla_maintenance',
    values: [{
      id: row.id, scope: row.scope, a: row.a, b: row.b, starts_at: row.startS, ends_at: row.endS, reason: row.reason,
      declared_at: (row.declaredAtMs / 1000).toFixed(3), declared_by: row.declaredBy,
    }],
    format: 'JSONEachRow',
    clickhouse_settings: { insert_deduplication_token: `maintenance/${row.id}`, async_insert: 0 },
  });
}

/** Windows overlapping [fromS, toS), oldest first, late ones flagged (decided in SQL, as the computation does). */
export async function maintenanceWindows(client: ClickHouseClient, fromS: number, toS: number): Promise<MaintenanceWindow[]> {
  const result = await client.query({
    query: `
SELECT id, scope, a, b, toUInt32(starts_at) AS start_s, toUInt32(ends_at) AS end_s, reason,
       toUnixTimestamp64Milli(declared_at) AS declared_ms, declared_by, NOT (declared_at < starts_at) AS late
FROM sla_maintenance
WHERE starts_at < toDateTime({to:UInt32}) AND ends_at > toDateTime({from:UInt32})
ORDER BY starts_at, id, declared_at, ends_at, scope, a, b, reason, declared_by
LIMIT 1 BY id`,
    query_params: { from: fromS, to: toS },
    format: 'JSONEachRow',
  });
  const rows = await result.json<{
    id: string; scope: MaintenanceRow['scope']; a: string; b: string; start_s: number; end_s: number; reason: string;
    declared_ms: number; declared_by: string; late: boolean | number;
  }>();
  return rows.map((r) => ({
    id: r.id, scope: r.scope, a: r.a, b: r.b, startS: Number(r.start_s), endS: Number(r.end_s), reason: r.reason,
    declaredAtMs: Number(r.declared_ms), declaredBy: r.declared_by, declaredLate: Boolean(Number(r.late)),
  }));
}

// ---------------------------------------------------------------------------
// Signed reports and amendments

export interface SlaReportRow {
  month: string;
  /** 0 = the finalised report; 1.. = amendments in order. */
  seq: number;
  kind: 'final' | 'amendment';
  /** The signed envelope, canonical JSON, exactly as served. */
  document: string;
  reportSha256: string;
  publicKeyFingerprint: string;
  publicKey: string;
  createdAtMs: number;
  createdBy: string;
}

/** Store a signed document; a second insert of the same (month, seq) is deduplicated (the first stays). */
export async function insertSlaReport(client: ClickHouseClient, row: SlaReportRow): Promise<void> {
  await client.insert({
    table: 'sla_reports',
    values: [{
      month: row.month, seq: row.seq, kind: row.kind, document: row.document, report_sha256: row.reportSha256,
      public_key_fingerprint: row.publicKeyFingerprint, public_key: row.publicKey,
      created_at: (row.createdAtMs / 1000).toFixed(3), created_by: row.createdBy,
    }],
    format: 'JSONEachRow',
    clickhouse_settings: { insert_deduplication_token: `sla-report/${row.month}/${row.seq}`, async_insert: 0 },
  });
}

export type SlaReportSummary = Omit<SlaReportRow, 'document' | 'publicKey'>;

/**
 * Every stored report and amendment (earliest row per month and seq), without documents.
 * The hash is always computed from the stored document (the exact bytes GET …/report serves),
 * also for rows written when the column held the hash of the inner `report` value.
 */
export async function slaReportIndex(client: ClickHouseClient): Promise<SlaReportSummary[]> {
  const result = await client.query({
    query: `
SELECT month, seq, argMin(kind, (created_at, report_sha256)) AS kind, lower(hex(SHA256(argMin(document, (created_at, report_sha256))))) AS sha,
       argMin(public_key_fingerprint, (created_at, report_sha256)) AS fp, toUnixTimestamp64Milli(min(created_at)) AS created_ms,
       argMin(created_by, (created_at, report_sha256)) AS by
FROM sla_reports
GROUP BY month, seq
ORDER BY month DESC, seq`,
    format: 'JSONEachRow',
  });
  const rows = await result.json<{ month: string; seq: number; kind: 'final' | 'amendment'; sha: string; fp: string; created_ms: number; by: string }>();
  return rows.map((r) => ({
    month: r.month, seq: Number(r.seq), kind: r.kind, reportSha256: r.sha, publicKeyFingerprint: r.fp,
    createdAtMs: Number(r.created_ms), createdBy: r.by,
  }));
}

/** The stored documents of one month (report and amendments), oldest seq first. */
export async function slaReportDocuments(client: ClickHouseClient, month: string): Promise<SlaReportRow[]> {
  const result = await client.query({
    query: `
-- Two rows stored at the same millisecond (a replay outside the deduplication window): the hash breaks the tie.
SELECT month, seq, argMin(kind, (created_at, report_sha256)) AS kind, argMin(document, (created_at, report_sha256)) AS doc, lower(hex(SHA256(doc))) AS sha,
       argMin(public_key_fingerprint, (created_at, report_sha256)) AS fp, argMin(public_key, (created_at, report_sha256)) AS pk,
       toUnixTimestamp64Milli(min(created_at)) AS created_ms, argMin(created_by, (created_at, report_sha256)) AS by
FROM sla_reports
WHERE month = {month:String}
GROUP BY month, seq
ORDER BY seq`,
    query_params: { month },
    format: 'JSONEachRow',
  });
  const rows = await result.json<{ month: string; seq: number; kind: 'final' | 'amendment'; doc: string; sha: string; fp: string; pk: string; created_ms: number; by: string }>();
  return rows.map((r) => ({
    month: r.month, seq: Number(r.seq), kind: r.kind, document: r.doc, reportSha256: r.sha, publicKeyFingerprint: r.fp,
    publicKey: r.pk, createdAtMs: Number(r.created_ms), createdBy: r.by,
  }));
}

/**
 * Samples of a period stored after a given instant (latency trains and
 * throughput tests carry inserted_at): a cheap test for "did anything arrive
 * late?" before recomputing a finalised month.
 */
export async function samplesStoredSince(client: ClickHouseClient, startS: number, endS: number, sinceMs: number): Promise<number> {
  const result = await client.query({
    query: `
SELECT
    (SELECT count() FROM latency_trains
     WHERE ts >= toDateTime64({start:UInt32}, 6) AND ts < toDateTime64({end:UInt32}, 6) AND inserted_at >= toDateTime(intDiv({since:UInt64}, 1000))) +
    (SELECT count() FROM throughput_tests
     WHERE ts >= toDateTime64({start:UInt32}, 3) AND ts < toDateTime64({end:UInt32}, 3) AND inserted_at >= toDateTime(intDiv({since:UInt64}, 1000))) AS n`,
    query_params: { start: startS, end: endS, since: Math.floor(sinceMs) },
    format: 'JSONEachRow',
  });
  const [row] = await result.json<{ n: number }>();
  return Number(row?.n ?? 0);
}

function finite(v: number | null | undefined): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}

const numericKeys: (keyof SlaScopeRow)[] = [
  'links', 'links_met', 'links_breach', 'links_insufficient', 'sla_minutes', 'excluded_minutes', 'self_load_minutes', 'covered_minutes', 'available_minutes',
  'latency_breach_minutes', 'latency_longest', 'loss_breach_minutes', 'loss_longest', 'sent', 'lost',
  'availability_breach_minutes', 'availability_longest', 'nic_minutes', 'nic_breach_minutes', 'nic_longest',
  'tests', 'tests_ok', 'tests_failed', 'tests_below',
];
const nullableKeys: (keyof SlaScopeRow)[] = [
  'coverage', 'latency_value', 'worst_p_us', 'loss_value', 'availability_value', 'nic_coverage', 'nic_min_mbps', 'tested_min_bps',
];

function numberRow(row: SlaScopeRow): SlaScopeRow {
  const out = { ...row } as Record<string, unknown>;
  for (const k of numericKeys) out[k] = Number(row[k]);
  for (const k of nullableKeys) out[k] = finite(row[k] as number | null) ;
  return out as unknown as SlaScopeRow;
}
