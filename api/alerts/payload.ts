/**
 * The Alertmanager webhook message (webhook_config, payload version "4"),
 * field for field: receivers written for Alertmanager read citymesh's
 * notifications unchanged. Each alert is its own group (Alertmanager's
 * `group_by: ['...']`), so groupLabels, commonLabels and commonAnnotations
 * are the alert's own and the groupKey names its labels.
 */
import type { Labels } from './fingerprint.js';

/** Go's zero time, which Alertmanager sends as endsAt while an alert fires. */
export const ZERO_TIME = '0001-01-01T00:00:00Z';

export interface WebhookAlert {
  status: 'firing' | 'resolved';
  labels: Labels;
  annotations: Record<string, string>;
  startsAt: string;
  endsAt: string;
  generatorURL: string;
  fingerprint: string;
}

export interface WebhookMessage {
  version: '4';
  groupKey: string;
  truncatedAlerts: number;
  status: 'firing' | 'resolved';
  receiver: string;
  groupLabels: Labels;
  commonLabels: Labels;
  commonAnnotations: Record<string, string>;
  externalURL: string;
  alerts: WebhookAlert[];
}

/** What one notification says about one alert episode. */
export interface NoticeInput {
  status: 'firing' | 'resolved';
  fingerprint: string;
  labels: Labels;
  annotations: Record<string, string>;
  startsAtMs: number;
  /** Set for resolved notices. */
  endsAtMs: number | null;
  generatorURL: string;
}

/** RFC 3339 in UTC with milliseconds, as Go's time.Time marshals (`2026-11-29T06:46:55.123Z`). */
export function rfc3339(ms: number): string {
  return new Date(Math.round(ms)).toISOString();
}

/** Alertmanager's LabelSet.String(): `{a="x", b="y"}`, names sorted, values quoted as Go's %q. */
export function labelSetString(labels: Labels): string {
  const names = Object.keys(labels).sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
  return `{${names.map((n) => `${n}=${JSON.stringify(labels[n])}`).join(', ')}}`;
}

/** The groupKey of a one-alert group under the root route: `{}:{alertname="…", …}`. */
export function groupKey(labels: Labels): string {
  return `{}:${labelSetString(labels)}`;
}

export function buildWebhookMessage(receiver: string, externalURL: string, notice: NoticeInput): WebhookMessage {
  const alert: WebhookAlert = {
    status: notice.status,
    labels: { ...notice.labels },
    annotations: { ...notice.annotations },
    startsAt: rfc3339(notice.startsAtMs),
    endsAt: notice.status === 'resolved' && notice.endsAtMs !== null ? rfc3339(notice.endsAtMs) : ZERO_TIME,
    generatorURL: notice.generatorURL,
    fingerprint: notice.fingerprint,
  };
  return {
    version: '4',
    groupKey: groupKey(notice.labels),
    truncatedAlerts: 0,
    status: notice.status,
    receiver,
    groupLabels: { ...notice.labels },
    commonLabels: { ...notice.labels },
    commonAnnotations: { ...notice.annotations },
    externalURL,
    alerts: [alert],
  };
}
