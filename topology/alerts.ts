/**
 * The topology file's optional `alerts:` section: which rules run, how long a
 * condition must hold before it fires (`for`), how often a firing alert is
 * re-sent, and the webhooks that receive Alertmanager-format notifications.
 * Thresholds are not here: every rule judges a link by its SLA policy
 * (`sla:` defaults with the link's overrides), so alerts and monthly verdicts
 * can never disagree about what "too slow" means.
 */
import { z } from 'zod';
import { clipText } from '../protocol/index.js';

/** `1h30m`, `5m`, `30s`, `250ms`, `1d`: the Alertmanager/Prometheus duration form (weeks and years left out). */
const DURATION_PATTERN = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$/;

/** Milliseconds of a duration written as "5m", "30s", "1h30m", or a number of seconds; null when it is neither. */
export function parseDurationMs(value: string | number): number | null {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? Math.round(value * 1000) : null;
  const text = value.trim();
  if (text === '0') return 0;
  const match = DURATION_PATTERN.exec(text);
  if (!match || text === '') return null;
  const [, d, h, m, s, ms] = match.map((part) => Number(part ?? 0)) as [number, number, number, number, number, number];
  return (((d * 24 + h) * 60 + m) * 60 + s) * 1000 + ms;
}

/** "5m", "1h30m", "45s", "250ms": the shortest exact spelling of a duration. */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  const parts: string[] = [];
  let rest = Math.round(ms);
  for (const [unit, size] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000], ['ms', 1]] as const) {
    if (rest >= size) {
      parts.push(`${Math.floor(rest / size)}${unit}`);
      rest %= size;
    }
  }
  return parts.join('');
}

function duration(minMs: number, maxMs: number) {
  const range = `between ${formatDuration(minMs)} and ${formatDuration(maxMs)}`;
  return z
    .union([z.string(), z.number()], { error: 'must be a duration like "30s", "5m" or "4h" (or a number of seconds)' })
    .transform((value, ctx) => {
      const ms = parseDurationMs(value);
      if (ms === null) {
        ctx.addIssue({ code: 'custom', message: `"${value}" is not a duration: write it like "30s", "5m", "1h30m" or "4h" (or a number of seconds)` });
        return z.NEVER;
      }
      if (ms < minMs || ms > maxMs) {
        // Beyond what an integer holds exactly, the value is named as written (clipped), not re-spelled.
        const given = Number.isSafeInteger(ms) ? formatDuration(ms) : `"${clipText(String(value), 40)}${String(value).length > 40 ? '…' : ''}"`;
        ctx.addIssue({ code: 'custom', message: `${given} is out of range: must be ${range}` });
        return z.NEVER;
      }
      return ms;
    });
}

const severity = z.enum(['critical', 'warning', 'info']);
const WEEK_MS = 7 * 86_400_000;

function rule(defaults: { enabled: boolean; forMs: number; severity: z.infer<typeof severity> }) {
  return z
    .object({
      enabled: z.boolean().default(defaults.enabled),
      /** How long the condition must hold before the alert fires (pending until then). */
      for: duration(0, WEEK_MS).default(defaults.forMs),
      severity: severity.default(defaults.severity),
    })
    .strict();
}

const latencyRule = rule({ enabled: true, forMs: 300_000, severity: 'warning' });
const lossRule = rule({ enabled: true, forMs: 300_000, severity: 'warning' });
const linkDownRule = rule({ enabled: true, forMs: 120_000, severity: 'critical' });
const throughputRule = rule({ enabled: true, forMs: 0, severity: 'warning' });
const probeSilentRule = rule({ enabled: true, forMs: 300_000, severity: 'critical' });
/**
 * Off by default: SLA verdicts judge round-trip times, which need no
 * synchronised clocks, and a network whose probes are not disciplined by
 * PTP/NTP would have this alert firing for ever, which teaches operators to
 * ignore alerts. A topology that relies on one-way delays turns it on.
 */
const clockRule = z
  .object({
    enabled: z.boolean().default(false),
    for: duration(0, WEEK_MS).default(600_000),
    severity: severity.default('warning'),
    /** A centre whose best (smallest) error estimate in a bucket exceeds this is unsynchronised, µs. */
    max_error_us: z.number().positive().max(1_000_000).default(100),
  })
  .strict();

/** Environment variable names, bounded so a refused one is never a megabyte of message. */
const envName = z.string().regex(/^[A-Z_][A-Z0-9_]{0,127}$/, 'must be an environment variable name (A-Z, 0-9, _; at most 128 characters)');

const MAX_URL_CHARS = 2048;

/**
 * An http(s) URL citymesh will post to: `problem` when it is not one (or
 * fails `more`); longer than 2048 characters, holding spaces or control
 * characters, or credentials (`user:password@`, which would be logged with
 * the URL; bearer_token_env is the way) are refused with their own reason.
 */
function httpUrl(problem: string, more: (value: string) => boolean = () => true) {
  return z.string().superRefine((value, ctx) => {
    const fail = (message: string) => ctx.addIssue({ code: 'custom', message });
    if (value.length > MAX_URL_CHARS) return fail(`must be at most ${MAX_URL_CHARS} characters (this one has ${value.length})`);
    if (!isHttpUrl(value) || !more(value)) return fail(problem);
    // The URL parser drops or encodes these silently; a URL written with them is a mistake (or a header injection).
    if (/[\u0000-\u0020\u007f-\u009f]/.test(value)) return fail('must not hold spaces or control characters');
    const url = new URL(value);
    if (url.username || url.password) fail('must not hold credentials (user:password@): they would be logged with the URL; give a token with bearer_token_env');
  });
}

/** A list whose length is judged before its entries: ten thousand bad entries are one problem, not ten thousand. */
function boundedList<T extends z.ZodType>(item: T, max: number, message: string) {
  return z.array(z.unknown()).refine((list) => list.length <= max, message).pipe(z.array(item));
}

const webhookSchema = z
  .object({
    name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'must be 1-64 characters of A-Z a-z 0-9 . _ - (it names the receiver)'),
    url: httpUrl('must be an http:// or https:// URL, e.g. "https://hooks.example/alertmanager"'),
    send_resolved: z.boolean().default(true),
    /** Environment variable holding a token sent as `Authorization: Bearer …` (never the token itself). */
    bearer_token_env: envName.optional(),
    timeout: duration(100, 120_000).default(10_000),
  })
  .strict();

/** An Alertmanager citymesh posts alerts to, as Prometheus does (`<url>/api/v2/alerts`). */
const alertmanagerSchema = z
  .object({
    /** Base URL, e.g. "http://alertmanager-1:9093" (a path prefix such as "/alertmanager" is kept). */
    url: httpUrl('must be an http:// or https:// base URL without query, e.g. "http://alertmanager-1:9093"', (v) => !v.includes('?') && !v.includes('#')),
    /** Environment variable holding a token sent as `Authorization: Bearer …` (never the token itself). */
    bearer_token_env: envName.optional(),
    timeout: duration(100, 60_000).default(10_000),
  })
  .strict();

export const alertsSchema = z
  .object({
    /** The dashboard's address as operators reach it: the base of externalURL and every alert's generatorURL. */
    external_url: z.string().refine(isHttpUrl, 'must be an http:// or https:// URL of the dashboard').optional(),
    /** A firing alert is sent again this often (Alertmanager's repeat_interval). */
    resend_interval: duration(10_000, WEEK_MS).default(4 * 3_600_000),
    rules: z
      .object({
        latency: latencyRule.default(latencyRule.parse({})),
        loss: lossRule.default(lossRule.parse({})),
        link_down: linkDownRule.default(linkDownRule.parse({})),
        throughput: throughputRule.default(throughputRule.parse({})),
        probe_silent: probeSilentRule.default(probeSilentRule.parse({})),
        clock_unsynced: clockRule.default(clockRule.parse({})),
      })
      .strict()
      .default({
        latency: latencyRule.parse({}), loss: lossRule.parse({}), link_down: linkDownRule.parse({}),
        throughput: throughputRule.parse({}), probe_silent: probeSilentRule.parse({}), clock_unsynced: clockRule.parse({}),
      }),
    webhooks: boundedList(webhookSchema, 20, 'at most 20 webhooks').default([]),
    /**
     * Alertmanagers (all members of one Alertmanager cluster): every firing alert is
     * posted to each of them, re-posted every minute while it fires, and resolved by endsAt.
     */
    alertmanagers: boundedList(alertmanagerSchema, 10, 'at most 10 Alertmanagers').default([]),
  })
  .strict();

export type AlertsDocument = z.infer<typeof alertsSchema>;

function isHttpUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.hostname !== '';
  } catch {
    return false;
  }
}

export type AlertSeverity = z.infer<typeof severity>;

export interface AlertRulePolicy {
  enabled: boolean;
  forMs: number;
  severity: AlertSeverity;
}

export interface AlertWebhook {
  name: string;
  url: string;
  sendResolved: boolean;
  /** The bearer token read from `bearer_token_env` at load time, or null. */
  bearerToken: string | null;
  timeoutMs: number;
}

export interface AlertmanagerTarget {
  /** The base URL as configured (trailing slashes removed): names it in logs and metrics. */
  url: string;
  bearerToken: string | null;
  timeoutMs: number;
}

export interface AlertsPolicy {
  externalUrl: string | null;
  resendIntervalMs: number;
  rules: {
    latency: AlertRulePolicy;
    loss: AlertRulePolicy;
    linkDown: AlertRulePolicy;
    throughput: AlertRulePolicy;
    probeSilent: AlertRulePolicy;
    clockUnsynced: AlertRulePolicy & { maxErrorUs: number };
  };
  webhooks: AlertWebhook[];
  alertmanagers: AlertmanagerTarget[];
}

/** The checked `alerts:` section in the form the server uses; problems are reported with their path under `alerts`. */
export function buildAlertsPolicy(
  doc: AlertsDocument,
  env: NodeJS.ProcessEnv,
  requireTokens: boolean,
  report: (path: (string | number)[], message: string) => void,
): AlertsPolicy {
  const names = new Map<string, number>();
  const webhooks = doc.webhooks.map((w, i): AlertWebhook => {
    if (names.has(w.name)) report(['webhooks', i, 'name'], `duplicate webhook name "${w.name}" (first at webhooks[${names.get(w.name)}])`);
    names.set(w.name, i);
    let bearerToken: string | null = null;
    if (w.bearer_token_env) {
      bearerToken = env[w.bearer_token_env] || null;
      if (!bearerToken && requireTokens) report(['webhooks', i, 'bearer_token_env'], `environment variable ${w.bearer_token_env} is not set`);
    }
    return { name: w.name, url: w.url, sendResolved: w.send_resolved, bearerToken, timeoutMs: w.timeout };
  });
  const seen = new Map<string, number>();
  const alertmanagers = doc.alertmanagers.map((a, i): AlertmanagerTarget => {
    const url = a.url.replace(/\/+$/, '');
    if (seen.has(url)) report(['alertmanagers', i, 'url'], `duplicate Alertmanager "${url}" (first at alertmanagers[${seen.get(url)}])`);
    seen.set(url, i);
    let bearerToken: string | null = null;
    if (a.bearer_token_env) {
      bearerToken = env[a.bearer_token_env] || null;
      if (!bearerToken && requireTokens) report(['alertmanagers', i, 'bearer_token_env'], `environment variable ${a.bearer_token_env} is not set`);
    }
    return { url, bearerToken, timeoutMs: a.timeout };
  });
  const r = doc.rules;
  const plain = (x: { enabled: boolean; for: number; severity: AlertSeverity }): AlertRulePolicy => ({ enabled: x.enabled, forMs: x.for, severity: x.severity });
  return {
    externalUrl: doc.external_url ? doc.external_url.replace(/\/+$/, '') : null,
    resendIntervalMs: doc.resend_interval,
    rules: {
      latency: plain(r.latency),
      loss: plain(r.loss),
      linkDown: plain(r.link_down),
      throughput: plain(r.throughput),
      probeSilent: plain(r.probe_silent),
      clockUnsynced: { ...plain(r.clock_unsynced), maxErrorUs: r.clock_unsynced.max_error_us },
    },
    webhooks,
    alertmanagers,
  };
}
