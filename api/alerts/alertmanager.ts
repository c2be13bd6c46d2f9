/**
 * citymesh as an alert source for Alertmanager, the way Prometheus is one:
 * POST <url>/api/v2/alerts with a list of alerts (labels, annotations,
 * startsAt, endsAt, generatorURL). A firing alert carries an endsAt a few
 * resend intervals ahead and is posted again before it passes, so
 * Alertmanager resolves it by itself if citymesh goes away; a resolved one
 * carries the time it ended. Every Alertmanager of the list gets every post
 * (members of one Alertmanager cluster, which deduplicate notifications among
 * themselves): as long as one answers, the alert is delivered. One attempt per
 * Alertmanager per post; the next post (within a minute) is the retry.
 */
import type { AlertmanagerTarget } from '../../topology/index.js';
import type { Labels } from './fingerprint.js';
import type { AlertMetrics } from './metrics.js';
import { rfc3339 } from './payload.js';

/** How often a firing or recently resolved alert is posted again (Prometheus's --rules.alert.resend-delay). */
export const ALERTMANAGER_RESEND_MS = 60_000;
/** A firing alert's endsAt: this many resend intervals ahead (Prometheus uses 4). */
export const ENDS_AT_RESENDS = 4;
/** A resolved alert is posted for this long after it resolved (Prometheus keeps sending for 15 minutes). */
export const RESOLVED_RETENTION_MS = 15 * 60_000;

/** Alertmanager's postableAlert (API v2). */
export interface PostableAlert {
  labels: Labels;
  annotations: Record<string, string>;
  startsAt: string;
  endsAt: string;
  generatorURL: string;
}

export interface AlertmanagerOutcome {
  alertmanager: string;
  ok: boolean;
  /** The HTTP status, 0 when no answer came. */
  httpStatus: number;
  alerts: number;
  error: string;
}

export function postableAlert(a: { labels: Labels; annotations: Record<string, string>; startsAtMs: number; endsAtMs: number; generatorURL: string }): PostableAlert {
  return {
    labels: { ...a.labels }, annotations: { ...a.annotations }, startsAt: rfc3339(a.startsAtMs), endsAt: rfc3339(a.endsAtMs), generatorURL: a.generatorURL,
  };
}

/** Posts `alerts` to every Alertmanager at once; never throws. */
export async function postToAlertmanagers(targets: AlertmanagerTarget[], alerts: PostableAlert[], metrics: AlertMetrics): Promise<AlertmanagerOutcome[]> {
  if (alerts.length === 0) return [];
  const body = JSON.stringify(alerts);
  return Promise.all(targets.map(async (target) => {
    const outcome = await post(target, body, alerts.length);
    metrics.alertmanagerPosts.inc({ alertmanager: target.url, outcome: outcome.ok ? 'sent' : 'failed' });
    if (outcome.ok) metrics.alertmanagerAlerts.inc({ alertmanager: target.url }, alerts.length);
    return outcome;
  }));
}

async function post(target: AlertmanagerTarget, body: string, count: number): Promise<AlertmanagerOutcome> {
  const headers: Record<string, string> = { 'content-type': 'application/json', 'user-agent': 'citymesh-alerts/1' };
  if (target.bearerToken) headers.authorization = `Bearer ${target.bearerToken}`;
  const timeout = AbortSignal.timeout(target.timeoutMs);
  const base = { alertmanager: target.url, alerts: count };
  try {
    const response = await fetch(`${target.url}/api/v2/alerts`, { method: 'POST', headers, body, signal: timeout });
    const text = await response.text().catch(() => '');
    if (response.ok) return { ...base, ok: true, httpStatus: response.status, error: '' };
    return { ...base, ok: false, httpStatus: response.status, error: `${target.url}: HTTP ${response.status}${text.trim() ? `: ${text.trim().slice(0, 200)}` : ''}` };
  } catch (error) {
    if (timeout.aborted) return { ...base, ok: false, httpStatus: 0, error: `${target.url}: no answer within ${target.timeoutMs} ms` };
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    return { ...base, ok: false, httpStatus: 0, error: `${target.url}: ${cause?.code ?? cause?.message ?? (error as Error).message}` };
  }
}
