/**
 * Alert conditions, evaluated in ClickHouse where the data is, and the
 * alerting records (events, silences, notification log; migration 0007).
 *
 * Every condition is judged per bucket and the buckets are summarised as a
 * "run": the latest bucket with data decides whether the condition holds now
 * (`active`), and the run of consecutive breaching buckets that ends there
 * says since when (`runStart`). Buckets without data neither break nor extend
 * a run (missing data is the business of the link-down and probe-silent
 * rules). Everything is bounded by an explicit clock (`nowMs`): rows at or
 * after it are not seen, so an evaluation is a function of the store and the
 * clock alone. Every value is a bound parameter.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { directionBucketsSql, levelIndex } from './direction-buckets.js';
import { loadedBucketsSql } from './load-windows.js';

/** A link and the threshold it is judged against (µs for latency, ratio for loss, bit/s for throughput). */
export interface AlertLinkInput {
  a: string;
  b: string;
  threshold: number;
  /** Percentile level for latency: 0.5, 0.9, 0.95 or 0.99. */
  percentile?: number;
}

/** The bucket-run summary of one link or centre. Times in ms. */
export interface AlertRun {
  /** The latest bucket with data breaches. */
  active: boolean;
  /** Start of the first bucket of the breaching run that ends with the latest bucket (meaningful when active). */
  runStartMs: number;
  /** Start of the latest bucket with data. */
  lastBucketMs: number;
  /** The latest bucket's value (see each query for the unit). */
  value: number;
  /** A second figure of the latest bucket (see each query). */
  extra: number;
  /** When not active: start of the first good bucket after the last breaching one, or null when none breached. */
  recoveredAtMs: number | null;
}

export interface LinkRun extends AlertRun {
  a: string;
  b: string;
}

export interface CentreRun extends AlertRun {
  centre: string;
}

/**
 * The run summary over `judged` (key columns, bucket, state 0 ok / 1 breach /
 * 2 no data, value, extra). `scale` turns a bucket into milliseconds.
 */
function runSummary(keys: string, judged: string, scale: number): string {
  return `
runs AS (
    SELECT ${keys}, arraySort(x -> x.1, groupArray((bucket, state, value, extra))) AS s
    FROM (${judged})
    WHERE state < 2
    GROUP BY ${keys}
)
SELECT ${keys},
       s[-1].2 = 1 AS active,
       toFloat64(s[-1].3) AS value,
       toFloat64(s[-1].4) AS extra,
       toInt64(s[-1].1) * ${scale} AS last_bucket_ms,
       toInt64(s[arrayLastIndex(x -> x.2 = 0, s) + 1].1) * ${scale} AS run_start_ms,
       if(s[-1].2 = 0 AND arrayLastIndex(x -> x.2 = 1, s) > 0, toInt64(s[arrayLastIndex(x -> x.2 = 1, s) + 1].1) * ${scale}, 0) AS recovered_ms
FROM runs`;
}

interface RunColumns {
  active: boolean | number;
  value: number;
  extra: number;
  last_bucket_ms: number;
  run_start_ms: number;
  recovered_ms: number;
}

function toRun(r: RunColumns): AlertRun {
  return {
    active: Boolean(r.active),
    runStartMs: Number(r.run_start_ms),
    lastBucketMs: Number(r.last_bucket_ms),
    value: Number(r.value),
    extra: Number(r.extra),
    recoveredAtMs: Number(r.recovered_ms) > 0 ? Number(r.recovered_ms) : null,
  };
}

const LINKS_CTE = `
links AS (
    SELECT l.1 AS a, l.2 AS b, l.3 AS threshold, l.4 AS q_index
    FROM (SELECT arrayJoin(arrayZip({la:Array(String)}, {lb:Array(String)}, {threshold:Array(Float64)}, {qi:Array(UInt8)})) AS l)
)`;

export type LinkRunKind = 'latency' | 'loss' | 'down';

export interface LinkRunsQuery {
  kind: LinkRunKind;
  /** Whose trains count; '' = every engine (a link carrying any probe packet is up). */
  engine: string;
  stepS: number;
  /** 'rollup' reads latency_1m (stepS must be 60); 'raw' reads latency_trains. */
  source: 'raw' | 'rollup';
  /** Start of the lookback, Unix seconds (a multiple of stepS). */
  fromS: number;
  nowMs: number;
  links: AlertLinkInput[];
  /**
   * Guard around our own throughput tests' load windows, ms. Latency and loss
   * buckets a test loaded are left out (no data: they neither start, extend
   * nor end a run); link-down still sees them (a test does not stop packets).
   */
  loadGuardMs: number;
}

/**
 * Per link, buckets of both directions together:
 *   latency  value = the worse direction's percentile RTT (µs), breach when > threshold; no data when nothing was received
 *   loss     value = lost / sent (both directions), breach when > threshold; extra = packets sent
 *   down     value = packets sent, breach when some were sent and none received either way; extra = 1 when both
 *            centres stored trains after the run began (the probes are alive: it is the link that is down)
 */
export async function alertLinkRuns(client: ClickHouseClient, q: LinkRunsQuery): Promise<LinkRun[]> {
  if (q.links.length === 0) return [];
  if (q.source === 'rollup' && q.stepS !== 60) throw new Error('the 1-minute rollup has 60 s buckets');
  const latency = q.kind === 'latency';
  const dir = `
    SELECT la, lb, dir_src AS d_src, toUInt32(bucket_time) AS bucket, d_sent, d_received, d_lost, d_qs
    FROM (${directionBucketsSql({
      source: q.source,
      engine: `{engine:String} = '' OR engine = {engine:String}`,
      period: q.source === 'rollup'
        ? `minute >= toDateTime({from_s:UInt32}) AND minute <= fromUnixTimestamp64Milli({now_ms:Int64}, 'UTC')`
        : `ts >= toDateTime64({from_s:UInt32}, 6) AND ts < fromUnixTimestamp64Milli({now_ms:Int64}, 'UTC')`,
      stepS: '{step:UInt32}',
      levels: latency,
    })}
    )`;
  const judge =
    q.kind === 'latency'
      ? `arrayMax(arrayMap(qs_dir -> toFloat64(qs_dir[q_index]), if(empty(qs), [[nan, nan, nan, nan]], qs))) AS value, 0 AS extra,
         multiIf(received = 0, 2, value > threshold, 1, 0) AS state`
      : q.kind === 'loss'
        ? `if(sent > 0, lost / sent, 0) AS value, sent AS extra, multiIf(sent = 0, 2, lost > threshold * sent, 1, 0) AS state`
        : `toFloat64(sent) AS value, 0 AS extra, multiIf(sent = 0, 2, received = 0, 1, 0) AS state`;
  const judged = `
        SELECT links.a AS a, links.b AS b, bucket, ${judge}
        FROM (
            SELECT la, lb, bucket, sum(d_sent) AS sent, sum(d_received) AS received, sum(d_lost) AS lost,
                   groupArrayIf(d_qs, d_received > 0) AS qs
            FROM (${dir}
            )
            ${q.kind === 'down' ? '' : `WHERE (la, lb, bucket) NOT IN (${loadedBucketsSql('{from_s:UInt32}', 'intDiv({now_ms:Int64} + 999, 1000)', '{step:UInt32}')}
            )`}
            GROUP BY la, lb, bucket
        ) AS per_bucket
        INNER JOIN links ON per_bucket.la = links.a AND per_bucket.lb = links.b`;
  const summary = runSummary('a, b', judged, 1000);
  const query =
    q.kind === 'down'
      ? `
WITH ${LINKS_CTE},
seen AS (
    SELECT src AS centre, toInt64(toUnixTimestamp(max(ts))) * 1000 AS last_ms
    FROM latency_trains
    WHERE ts >= toDateTime64({from_s:UInt32}, 6) AND ts < fromUnixTimestamp64Milli({now_ms:Int64}, 'UTC')
    GROUP BY src
),
summary AS (
    WITH ${summary.trimStart()}
)
SELECT summary.a AS a, summary.b AS b, active, value,
       toFloat64(ifNull(sa.last_ms, 0) >= run_start_ms AND ifNull(sb.last_ms, 0) >= run_start_ms) AS extra,
       last_bucket_ms, run_start_ms, recovered_ms
FROM summary
LEFT JOIN seen AS sa ON sa.centre = summary.a
LEFT JOIN seen AS sb ON sb.centre = summary.b
SETTINGS join_use_nulls = 0`
      : `WITH ${LINKS_CTE},${summary}`;
  const result = await client.query({
    query,
    query_params: {
      la: q.links.map((l) => l.a), lb: q.links.map((l) => l.b), threshold: q.links.map((l) => l.threshold),
      qi: q.links.map((l) => levelIndex(l.percentile ?? 0.99)),
      engine: q.engine, step: q.stepS, from_s: q.fromS, now_ms: Math.round(q.nowMs), load_guard_ms: Math.round(q.loadGuardMs),
    },
    format: 'JSONEachRow',
  });
  const rows = await result.json<RunColumns & { a: string; b: string }>();
  return rows.map((r) => ({ a: r.a, b: r.b, ...toRun(r) }));
}

/**
 * Per link, the successful throughput tests since `fromMs` in time order:
 * a test breaches when its worse direction is below the link's floor.
 * value = the newest test's worse direction (bit/s); buckets are the tests' times.
 */
export async function alertThroughputRuns(
  client: ClickHouseClient,
  q: { fromMs: number; nowMs: number; links: AlertLinkInput[] },
): Promise<LinkRun[]> {
  if (q.links.length === 0) return [];
  const judged = `
        SELECT links.a AS a, links.b AS b, at_ms AS bucket, toUInt8(worse_bps < threshold) AS state, worse_bps AS value, 0 AS extra
        FROM (
            SELECT least(src, dst) AS la, greatest(src, dst) AS lb, toUnixTimestamp64Milli(ts) AS at_ms,
                   assumeNotNull(least(coalesce(forward_bps, reverse_bps), coalesce(reverse_bps, forward_bps))) AS worse_bps
            FROM throughput_tests
            WHERE ok AND (forward_bps IS NOT NULL OR reverse_bps IS NOT NULL)
              AND ts >= fromUnixTimestamp64Milli({from_ms:Int64}, 'UTC') AND ts < fromUnixTimestamp64Milli({now_ms:Int64}, 'UTC')
        ) AS tests
        INNER JOIN links ON tests.la = links.a AND tests.lb = links.b`;
  const result = await client.query({
    query: `WITH ${LINKS_CTE},${runSummary('a, b', judged, 1)}`,
    query_params: {
      la: q.links.map((l) => l.a), lb: q.links.map((l) => l.b), threshold: q.links.map((l) => l.threshold),
      qi: q.links.map(() => 4), from_ms: Math.round(q.fromMs), now_ms: Math.round(q.nowMs),
    },
    format: 'JSONEachRow',
  });
  const rows = await result.json<RunColumns & { a: string; b: string }>();
  return rows.map((r) => ({ a: r.a, b: r.b, ...toRun(r) }));
}

/**
 * Per centre, buckets of its STAMP trains (as sender): a bucket breaches when
 * none of its trains was synchronised, or when even the best error estimate
 * exceeds `maxErrorUs` (a train's estimate is the sum of both ends' errors,
 * so the smallest one bounds the centre's own). value = best error estimate
 * (µs), extra = share of synchronised trains.
 */
export async function alertClockRuns(
  client: ClickHouseClient,
  q: { stepS: number; fromS: number; nowMs: number; maxErrorUs: number; centres: string[] },
): Promise<CentreRun[]> {
  if (q.centres.length === 0) return [];
  const judged = `
        SELECT src AS centre, toUInt32(intDiv(toUnixTimestamp(ts), {step:UInt32}) * {step:UInt32}) AS bucket,
               toUInt8(countIf(synced) = 0 OR min(error_estimate_us) > {max_error:Float64}) AS state,
               toFloat64(min(error_estimate_us)) AS value, countIf(synced) / count() AS extra
        FROM latency_trains
        WHERE engine = 'stamp' AND src IN {centres:Array(String)}
          AND ts >= toDateTime64({from_s:UInt32}, 6) AND ts < fromUnixTimestamp64Milli({now_ms:Int64}, 'UTC')
        GROUP BY centre, bucket`;
  const result = await client.query({
    query: `WITH ${runSummary('centre', judged, 1000).trimStart()}`,
    query_params: { step: q.stepS, from_s: q.fromS, now_ms: Math.round(q.nowMs), max_error: q.maxErrorUs, centres: q.centres },
    format: 'JSONEachRow',
  });
  const rows = await result.json<RunColumns & { centre: string }>();
  return rows.map((r) => ({ centre: r.centre, ...toRun(r) }));
}

/**
 * When each centre last stored a train (as sender, any engine): exact from
 * the raw trains since `rawFromMs`, else the last minute with trains in the
 * rollup since `horizonS` (start of that minute), else null (never, as far
 * as the horizon goes).
 */
export async function alertCentresLastSeen(
  client: ClickHouseClient,
  q: { rawFromMs: number; horizonS: number; nowMs: number; centres: string[] },
): Promise<{ centre: string; lastSeenMs: number | null }[]> {
  if (q.centres.length === 0) return [];
  const result = await client.query({
    query: `
WITH
raw AS (
    SELECT src AS centre, toUnixTimestamp64Milli(max(ts)) AS last_ms
    FROM latency_trains
    WHERE src IN {centres:Array(String)}
      AND ts >= fromUnixTimestamp64Milli({raw_from_ms:Int64}, 'UTC') AND ts < fromUnixTimestamp64Milli({now_ms:Int64}, 'UTC')
    GROUP BY src
),
rolled AS (
    SELECT src AS centre, toInt64(toUnixTimestamp(max(minute))) * 1000 AS last_ms
    FROM latency_1m
    WHERE src IN {centres:Array(String)}
      AND minute >= toDateTime({horizon_s:UInt32}) AND minute <= fromUnixTimestamp64Milli({now_ms:Int64}, 'UTC')
    GROUP BY src
)
SELECT c.centre AS centre, raw.last_ms AS raw_ms, rolled.last_ms AS rolled_ms
FROM (SELECT arrayJoin({centres:Array(String)}) AS centre) AS c
LEFT JOIN raw ON raw.centre = c.centre
LEFT JOIN rolled ON rolled.centre = c.centre
SETTINGS join_use_nulls = 0`,
    query_params: { centres: q.centres, raw_from_ms: Math.round(q.rawFromMs), horizon_s: Math.max(0, Math.floor(q.horizonS)), now_ms: Math.round(q.nowMs) },
    format: 'JSONEachRow',
  });
  const rows = await result.json<{ centre: string; raw_ms: number; rolled_ms: number }>();
  return rows.map((r) => {
    const raw = Number(r.raw_ms);
    const rolled = Number(r.rolled_ms);
    return { centre: r.centre, lastSeenMs: raw > 0 ? raw : rolled > 0 ? rolled : null };
  });
}

// ---------------------------------------------------------------------------
// Events

export type AlertStatus = 'firing' | 'resolved';

export interface AlertEventRow {
  fingerprint: string;
  alertname: string;
  status: AlertStatus;
  /** The episode: when it started firing. */
  startsAtMs: number;
  /** When its condition began (pending since); null when unknown. */
  activeAtMs: number | null;
  endsAtMs: number | null;
  /** When the change was recorded (the evaluation's clock). */
  eventAtMs: number;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  value: number | null;
  threshold: number | null;
  unit: string;
  silencedBy: string[];
  link: string;
  centre: string;
}

const ms3 = (ms: number): string => new Date(Math.round(ms)).toISOString().replace('T', ' ').slice(0, 23);

/** One state change; retried or repeated by another server, it is stored once (token: fingerprint/episode/status). */
export async function insertAlertEvent(client: ClickHouseClient, e: AlertEventRow): Promise<void> {
  await client.insert({
    table: 'alert_events',
    values: [{
      fingerprint: e.fingerprint, alertname: e.alertname, status: e.status, starts_at: ms3(e.startsAtMs),
      active_at: e.activeAtMs === null ? null : ms3(e.activeAtMs), ends_at: e.endsAtMs === null ? null : ms3(e.endsAtMs),
      event_at: ms3(e.eventAtMs), labels: e.labels, annotations: e.annotations, value: finiteOrNull(e.value),
      threshold: finiteOrNull(e.threshold), unit: e.unit, silenced_by: e.silencedBy, link: e.link, centre: e.centre,
    }],
    format: 'JSONEachRow',
    clickhouse_settings: { insert_deduplication_token: `alert/${e.fingerprint}/${Math.round(e.startsAtMs)}/${e.status}`, async_insert: 0 },
  });
}

const EVENT_COLUMNS = `fingerprint, alertname, status, toUnixTimestamp64Milli(starts_at) AS starts_ms,
       toUnixTimestamp64Milli(active_at) AS active_ms, toUnixTimestamp64Milli(ends_at) AS ends_ms,
       toUnixTimestamp64Milli(event_at) AS event_ms, labels, annotations, value, threshold, unit, silenced_by, link, centre`;

interface EventColumns {
  fingerprint: string; alertname: string; status: string; starts_ms: number; active_ms: number | null; ends_ms: number | null;
  event_ms: number; labels: Record<string, string>; annotations: Record<string, string>; value: number | null;
  threshold: number | null; unit: string; silenced_by: string[]; link: string; centre: string;
}

function toEvent(r: EventColumns): AlertEventRow {
  return {
    fingerprint: r.fingerprint, alertname: r.alertname, status: r.status === 'resolved' ? 'resolved' : 'firing',
    startsAtMs: Number(r.starts_ms), activeAtMs: r.active_ms === null ? null : Number(r.active_ms),
    endsAtMs: r.ends_ms === null ? null : Number(r.ends_ms), eventAtMs: Number(r.event_ms), labels: r.labels,
    annotations: r.annotations, value: r.value, threshold: r.threshold, unit: r.unit, silencedBy: r.silenced_by,
    link: r.link, centre: r.centre,
  };
}

/** Every row of each fingerprint's latest episode (its firing row, and its resolved row once resolved). */
export async function latestAlertEpisodes(client: ClickHouseClient): Promise<AlertEventRow[]> {
  const result = await client.query({
    query: `
SELECT ${EVENT_COLUMNS}
FROM alert_events
WHERE (fingerprint, starts_at) IN (SELECT fingerprint, max(starts_at) FROM alert_events GROUP BY fingerprint)
ORDER BY fingerprint, status`,
    format: 'JSONEachRow',
  });
  return (await result.json<EventColumns>()).map(toEvent);
}

/** Events recorded in [fromMs, toMs), newest first, optionally of one link (`a~b`). */
export async function alertEventsBetween(
  client: ClickHouseClient,
  q: { fromMs: number; toMs: number; link: string | null; limit: number },
): Promise<AlertEventRow[]> {
  const result = await client.query({
    query: `
SELECT ${EVENT_COLUMNS}
FROM alert_events
WHERE event_at >= fromUnixTimestamp64Milli({from_ms:Int64}, 'UTC') AND event_at < fromUnixTimestamp64Milli({to_ms:Int64}, 'UTC')
  AND ({link:String} = '' OR link = {link:String})
ORDER BY event_at DESC, fingerprint, starts_at DESC, status DESC
LIMIT {limit:UInt32}`,
    query_params: { from_ms: Math.round(q.fromMs), to_ms: Math.round(q.toMs), link: q.link ?? '', limit: q.limit },
    format: 'JSONEachRow',
  });
  return (await result.json<EventColumns>()).map(toEvent);
}

// ---------------------------------------------------------------------------
// Silences

export interface SilenceMatcher {
  name: string;
  value: string;
  isRegex: boolean;
  isEqual: boolean;
}

export interface SilenceRow {
  id: string;
  matchers: SilenceMatcher[];
  startsAtMs: number;
  endsAtMs: number;
  createdBy: string;
  comment: string;
  updatedAtMs: number;
  updatedBy: string;
  /** Later versions of the same id replace earlier ones. */
  version: number;
}

export async function insertSilence(client: ClickHouseClient, s: SilenceRow): Promise<void> {
  await client.insert({
    table: 'alert_silences',
    values: [{
      id: s.id, matchers: s.matchers.map((m) => ({ name: m.name, value: m.value, is_regex: m.isRegex, is_equal: m.isEqual })),
      starts_at: ms3(s.startsAtMs), ends_at: ms3(s.endsAtMs), created_by: s.createdBy, comment: s.comment,
      updated_at: ms3(s.updatedAtMs), updated_by: s.updatedBy, version: s.version,
    }],
    format: 'JSONEachRow',
    clickhouse_settings: { insert_deduplication_token: `silence/${s.id}/${s.version}`, async_insert: 0 },
  });
}

/** Two edits racing to the same version: the later edit, then the content, wins, whatever the read order. */
const NEWEST_SILENCE =
  '(version, updated_at, cityHash64(matchers, starts_at, ends_at, alert_silences.created_by, alert_silences.comment, alert_silences.updated_by))';

/** The newest version of every silence (of `id` only, when given) that ends at or after `endsAfterMs`, newest first. */
export async function silences(client: ClickHouseClient, q: { endsAfterMs: number; id?: string }): Promise<SilenceRow[]> {
  const result = await client.query({
    query: `
SELECT id, argMax(matchers, ${NEWEST_SILENCE}) AS m, toUnixTimestamp64Milli(argMax(starts_at, ${NEWEST_SILENCE})) AS starts_ms,
       toUnixTimestamp64Milli(argMax(ends_at, ${NEWEST_SILENCE})) AS ends_ms, argMax(created_by, ${NEWEST_SILENCE}) AS created_by,
       argMax(comment, ${NEWEST_SILENCE}) AS comment, toUnixTimestamp64Milli(argMax(updated_at, ${NEWEST_SILENCE})) AS updated_ms,
       argMax(updated_by, ${NEWEST_SILENCE}) AS updated_by, max(version) AS v
FROM alert_silences
WHERE {id:String} = '' OR id = {id:String}
GROUP BY id
HAVING ends_ms >= {after_ms:Int64}
ORDER BY starts_ms DESC, id`,
    query_params: { id: q.id ?? '', after_ms: Math.round(q.endsAfterMs) },
    format: 'JSONEachRow',
  });
  const rows = await result.json<{
    id: string; m: { name: string; value: string; is_regex: boolean; is_equal: boolean }[]; starts_ms: number; ends_ms: number;
    created_by: string; comment: string; updated_ms: number; updated_by: string; v: number;
  }>();
  return rows.map((r) => ({
    id: r.id,
    matchers: r.m.map((m) => ({ name: m.name, value: m.value, isRegex: Boolean(m.is_regex), isEqual: Boolean(m.is_equal) })),
    startsAtMs: Number(r.starts_ms), endsAtMs: Number(r.ends_ms), createdBy: r.created_by, comment: r.comment,
    updatedAtMs: Number(r.updated_ms), updatedBy: r.updated_by, version: Number(r.v),
  }));
}

// ---------------------------------------------------------------------------
// Notification log

export type NotificationOutcome = 'sending' | 'sent' | 'failed';

export interface NotificationRow {
  fingerprint: string;
  startsAtMs: number;
  receiver: string;
  status: AlertStatus;
  /** The evaluation clock of the delivery; its `sending` and outcome rows share it. */
  attemptAtMs: number;
  outcome: NotificationOutcome;
  httpStatus: number;
  attempts: number;
  error: string;
  alertname: string;
}

export async function insertNotification(client: ClickHouseClient, n: NotificationRow): Promise<void> {
  await client.insert({
    table: 'alert_notifications',
    values: [{
      fingerprint: n.fingerprint, starts_at: ms3(n.startsAtMs), receiver: n.receiver, status: n.status,
      attempt_at: ms3(n.attemptAtMs), outcome: n.outcome, http_status: n.httpStatus, attempts: n.attempts,
      error: n.error.slice(0, 2000), alertname: n.alertname,
    }],
    format: 'JSONEachRow',
    clickhouse_settings: {
      insert_deduplication_token: `notify/${n.receiver}/${n.fingerprint}/${Math.round(n.startsAtMs)}/${n.status}/${Math.round(n.attemptAtMs)}/${n.outcome}`,
      async_insert: 0,
    },
  });
}

/** What the log says about one (episode, receiver, status). Times in ms; 0 = never. */
export interface NotificationState {
  fingerprint: string;
  startsAtMs: number;
  receiver: string;
  status: AlertStatus;
  lastSentMs: number;
  lastFailedMs: number;
  lastStartedMs: number;
  lastOutcomeMs: number;
  sent: number;
}

export async function notificationStates(client: ClickHouseClient, fingerprints: string[]): Promise<NotificationState[]> {
  if (fingerprints.length === 0) return [];
  const result = await client.query({
    query: `
SELECT fingerprint, toUnixTimestamp64Milli(starts_at) AS starts_ms, receiver, status,
       toUnixTimestamp64Milli(maxIf(attempt_at, outcome = 'sent')) AS sent_ms,
       toUnixTimestamp64Milli(maxIf(attempt_at, outcome = 'failed')) AS failed_ms,
       toUnixTimestamp64Milli(maxIf(attempt_at, outcome = 'sending')) AS started_ms,
       toUnixTimestamp64Milli(maxIf(attempt_at, outcome != 'sending')) AS outcome_ms,
       countIf(outcome = 'sent') AS sent
FROM alert_notifications
WHERE fingerprint IN {fps:Array(String)}
GROUP BY fingerprint, starts_at, receiver, status`,
    query_params: { fps: fingerprints },
    format: 'JSONEachRow',
  });
  const rows = await result.json<{
    fingerprint: string; starts_ms: number; receiver: string; status: string; sent_ms: number; failed_ms: number;
    started_ms: number; outcome_ms: number; sent: number;
  }>();
  const positive = (v: number) => Math.max(0, Number(v));
  return rows.map((r) => ({
    fingerprint: r.fingerprint, startsAtMs: Number(r.starts_ms), receiver: r.receiver, status: r.status === 'resolved' ? 'resolved' : 'firing',
    lastSentMs: positive(r.sent_ms), lastFailedMs: positive(r.failed_ms), lastStartedMs: positive(r.started_ms),
    lastOutcomeMs: positive(r.outcome_ms), sent: Number(r.sent),
  }));
}

function finiteOrNull(v: number | null): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}
