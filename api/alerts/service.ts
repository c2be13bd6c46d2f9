/**
 * The alert engine. Servers are stateless apart from ClickHouse and take
 * turns (one evaluation per 15-second slot, whoever claims it), so every
 * decision is read back from the store: conditions from the measurements,
 * episodes from alert_events, silences from alert_silences, what was sent
 * from alert_notifications. `evaluate(now)` is a function of the store and
 * the clock; a server taking over the next slot continues exactly where the
 * last one stopped.
 *
 * An episode: the condition holds for `for` → firing event (startsAt = when
 * it began + `for`, so two servers agree on it) → … → the condition stops
 * holding → resolved event. Notifications: one when it fires, again every
 * resend interval while it fires, one when it resolves (send_resolved, and
 * only to receivers told it fired); none while a silence matches it (it is
 * still stored and shown, as silenced). Delivery is at least once: a server
 * that dies between a POST and its log row lets the next one send again.
 */
import { randomUUID } from 'node:crypto';
import cron, { type ScheduledTask } from 'node-cron';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { AlertsPolicy, AlertWebhook, Topology } from '../../topology/index.js';
import {
  alertEventsBetween, insertAlertEvent, insertNotification, insertSilence, latestAlertEpisodes, notificationStates, silences,
  type AlertEventRow, type NotificationState, type SilenceMatcher, type SilenceRow, type Store,
} from '../../sql/index.js';
import type { AlertEventView, AlertsResponse, AlertView, ResolvedAlertView, SilenceView } from '../contract.js';
import type { Labels } from './fingerprint.js';
import {
  ALERTMANAGER_RESEND_MS, ENDS_AT_RESENDS, postableAlert, postToAlertmanagers, RESOLVED_RETENTION_MS, type AlertmanagerOutcome, type PostableAlert,
} from './alertmanager.js';
import { createAlertMetrics, type AlertMetrics } from './metrics.js';
import { buildWebhookMessage } from './payload.js';
import { evaluateConditions, generatorPath, type Condition } from './rules.js';
import { matchersProblem, silencedBy, silenceState } from './silences.js';
import { DEFAULT_DELIVERY, deliver, type DeliveryOptions, type DeliveryOutcome } from './webhook.js';

/** Evaluation slots: every 15 s on the wall clock, the same boundaries on every server. */
export const ALERT_SLOT_MS = 15_000;
export const ALERT_SCHEDULE = '*/15 * * * * *';
/** A resolved episode whose notification failed is retried this long after it resolved. */
const RESOLVED_NOTIFY_WINDOW_MS = 3_600_000;
/** After a failed delivery, the next try waits this long (the delivery itself already retried). */
const RETRY_AFTER_FAILURE_MS = 60_000;
/** Recently resolved episodes shown by GET /v1/alerts. */
const RECENT_RESOLVED_MS = 86_400_000;
/** Longest silence accepted. */
const MAX_SILENCE_MS = 90 * 86_400_000;
/** Snapshots for GET /v1/alerts are shared by requests within this many ms. */
const SNAPSHOT_TTL_MS = 3_000;

/** An alert that has just started firing (the lead wires this to breach diagnostics). */
export interface FiringAlert {
  fingerprint: string;
  alertname: string;
  labels: Labels;
  annotations: Record<string, string>;
  link: string | null;
  centre: string | null;
  startsAtMs: number;
  activeAtMs: number | null;
  value: number | null;
  threshold: number | null;
  unit: string;
  silenced: boolean;
}

export interface AlertServiceOptions {
  store: Store;
  topology: Topology;
  logger: Logger;
  /** The server's Prometheus registry; a private one when absent. */
  registry?: Registry;
  /**
   * Decides which server evaluates a slot: called as claim('alerts', slotStartMs)
   * before each tick. The default, always true, is right for a single server;
   * several servers pass a ClickHouse-backed lease.
   */
  claim?: (job: string, slot: string) => Promise<boolean>;
  /**
   * Called once per episode when it starts firing (errors are logged, never
   * thrown). A returned promise is awaited: an evaluation ends once what its
   * new alerts set off (a diagnostics request) is stored.
   */
  onFiring?: (alert: FiringAlert) => void | Promise<unknown>;
  /** The dashboard's URL when the topology's alerts.external_url is not set (read at send time). */
  externalUrl?: () => string;
  delivery?: Partial<DeliveryOptions>;
  now?: () => number;
}

export interface NotificationAttempt {
  receiver: string;
  fingerprint: string;
  alertname: string;
  status: 'firing' | 'resolved';
  outcome: DeliveryOutcome;
}

export interface EvaluationReport {
  atMs: number;
  pending: number;
  firing: number;
  silenced: number;
  /** State changes recorded by this evaluation. */
  events: AlertEventRow[];
  notifications: NotificationAttempt[];
  /** Posts to the configured Alertmanagers in this evaluation (one per Alertmanager, when anything was due). */
  alertmanagers: AlertmanagerOutcome[];
}

export interface SilenceInput {
  matchers: SilenceMatcher[];
  startsAtMs: number;
  endsAtMs: number;
  comment: string;
}

/** A silence the caller got wrong; `field` names what. */
export class SilenceInputError extends Error {
  constructor(readonly field: string, message: string) {
    super(`${field}: ${message}`);
    this.name = 'SilenceInputError';
  }
}

interface Episode {
  firing: AlertEventRow;
  resolved: AlertEventRow | null;
}

export class AlertService {
  readonly store: Store;
  readonly topology: Topology;
  readonly metrics: AlertMetrics;
  private readonly logger: Logger;
  private readonly claim: (job: string, slot: string) => Promise<boolean>;
  private readonly onFiring: ((alert: FiringAlert) => void | Promise<unknown>) | undefined;
  private readonly externalUrlFallback: () => string;
  private readonly delivery: DeliveryOptions;
  private readonly now: () => number;
  private task: ScheduledTask | null = null;
  private running: Promise<unknown> = Promise.resolve();
  private snapshotCache: { key: number; value: Promise<AlertsResponse> } | null = null;
  private lastVersion = 0;

  constructor(options: AlertServiceOptions) {
    this.store = options.store;
    this.topology = options.topology;
    this.logger = options.logger;
    this.metrics = createAlertMetrics(options.registry);
    // A single server needs no lease; several pass one (see the option's comment).
    this.claim = options.claim ?? (async () => true);
    this.onFiring = options.onFiring;
    this.externalUrlFallback = options.externalUrl ?? (() => '');
    this.delivery = { ...DEFAULT_DELIVERY, ...options.delivery };
    this.now = options.now ?? Date.now;
  }

  get policy(): AlertsPolicy | null {
    return this.topology.alerts;
  }

  get client() {
    return this.store.client;
  }

  externalUrl(): string {
    return (this.policy?.externalUrl ?? this.externalUrlFallback()).replace(/\/+$/, '');
  }

  /** Runs a tick every 15 s (wall clock) while the topology has an alerts section. */
  start(): void {
    if (this.task || !this.policy) return;
    this.task = cron.schedule(ALERT_SCHEDULE, () => {
      const run = this.tick().catch((error) => this.logger.error({ err: error }, 'alert evaluation failed'));
      this.running = run;
      return run.then(() => undefined);
    }, { name: 'alerts', noOverlap: true });
  }

  async stop(): Promise<void> {
    if (this.task) await this.task.stop();
    this.task = null;
    await this.running;
  }

  /** One slot: evaluate only when this server wins the slot's claim. */
  async tick(nowMs = this.now()): Promise<EvaluationReport | null> {
    const slot = Math.floor(nowMs / ALERT_SLOT_MS) * ALERT_SLOT_MS;
    if (!(await this.claim('alerts', String(slot)))) {
      this.metrics.evaluations.inc({ outcome: 'skipped' });
      return null;
    }
    try {
      const report = await this.evaluate(nowMs);
      this.metrics.evaluations.inc({ outcome: 'evaluated' });
      return report;
    } catch (error) {
      this.metrics.evaluations.inc({ outcome: 'failed' });
      throw error;
    }
  }

  /**
   * One evaluation at `nowMs`: conditions, state changes (stored), and the
   * notifications they call for (sent, and logged).
   */
  async evaluate(nowMs: number): Promise<EvaluationReport> {
    const policy = this.policy;
    const report: EvaluationReport = { atMs: nowMs, pending: 0, firing: 0, silenced: 0, events: [], notifications: [], alertmanagers: [] };
    if (!policy) return report;
    const [conditions, rows, activeSilences] = await Promise.all([
      evaluateConditions(this.client, this.topology, policy, nowMs),
      latestAlertEpisodes(this.client),
      silences(this.client, { endsAfterMs: nowMs }),
    ]);
    const episodes = episodesOf(rows);
    const byFingerprint = new Map(conditions.map((c) => [c.fingerprint, c]));

    // Firing episodes whose condition no longer holds (or whose rule or link is gone) resolve.
    for (const [fp, episode] of episodes) {
      if (episode.resolved) continue;
      const condition = byFingerprint.get(fp);
      if (condition?.active) continue;
      const f = episode.firing;
      const endsAtMs = Math.min(nowMs, Math.max(f.startsAtMs, condition?.recoveredAtMs ?? nowMs));
      const resolved: AlertEventRow = {
        ...f, status: 'resolved', endsAtMs, eventAtMs: nowMs,
        value: condition?.value ?? f.value, threshold: condition?.threshold ?? f.threshold,
        silencedBy: silencedBy(activeSilences, f.labels, nowMs),
      };
      await insertAlertEvent(this.client, resolved);
      episode.resolved = resolved;
      report.events.push(resolved);
    }

    // Conditions that have held for `for` start an episode, unless one is already firing.
    const started: AlertEventRow[] = [];
    for (const c of conditions) {
      if (!c.active || c.activeAtMs === null || nowMs - c.activeAtMs < c.forMs) continue;
      const previous = episodes.get(c.fingerprint);
      if (previous && !previous.resolved) continue;
      // A new episode starts after the previous one ended, whatever the data says, so it is a new row.
      const floor = previous ? Math.max(previous.firing.startsAtMs, previous.resolved?.endsAtMs ?? 0) + 1 : 0;
      const firing: AlertEventRow = {
        fingerprint: c.fingerprint, alertname: c.alertname, status: 'firing',
        startsAtMs: Math.min(nowMs, Math.max(c.activeAtMs + c.forMs, floor)), activeAtMs: c.activeAtMs, endsAtMs: null, eventAtMs: nowMs,
        labels: c.labels, annotations: c.annotations, value: c.value, threshold: c.threshold, unit: c.unit,
        silencedBy: silencedBy(activeSilences, c.labels, nowMs), link: c.link ?? '', centre: c.centre ?? '',
      };
      await insertAlertEvent(this.client, firing);
      episodes.set(c.fingerprint, { firing, resolved: null });
      started.push(firing);
      report.events.push(firing);
    }

    for (const c of conditions) {
      if (!c.active) continue;
      const episode = episodes.get(c.fingerprint);
      const firing = episode !== undefined && episode.resolved === null;
      if (silencedBy(activeSilences, c.labels, nowMs).length > 0) report.silenced++;
      else if (firing) report.firing++;
      else report.pending++;
    }
    this.metrics.alerts.set({ state: 'pending' }, report.pending);
    this.metrics.alerts.set({ state: 'firing' }, report.firing);
    this.metrics.alerts.set({ state: 'silenced' }, report.silenced);

    if (report.events.length > 0) this.snapshotCache = null;
    await Promise.all(started.map((f) => this.announce(f, byFingerprint.get(f.fingerprint)!)));
    if (policy.webhooks.length > 0) report.notifications = await this.notify(policy, episodes, activeSilences, nowMs);
    if (policy.alertmanagers.length > 0) report.alertmanagers = await this.postAlerts(policy, episodes, byFingerprint, report.events, nowMs);
    return report;
  }

  /**
   * Alertmanager as the receiver, the way Prometheus feeds it: every firing
   * episode and every episode resolved in the last 15 minutes, posted when its
   * state changed in this evaluation and again every minute (the slots whose
   * index is a multiple of four: the same slots on every server, so the
   * cadence holds whoever evaluates). citymesh's own silences do not apply
   * here: silences, inhibition, grouping and routing are Alertmanager's.
   */
  private async postAlerts(
    policy: AlertsPolicy, episodes: Map<string, Episode>, conditions: Map<string, Condition>, events: AlertEventRow[], nowMs: number,
  ): Promise<AlertmanagerOutcome[]> {
    const resendDue = Math.floor(nowMs / ALERT_SLOT_MS) % (ALERTMANAGER_RESEND_MS / ALERT_SLOT_MS) === 0;
    const changed = new Set(events.map((e) => e.fingerprint));
    const base = this.externalUrl();
    const alerts: PostableAlert[] = [];
    for (const [fp, { firing: f, resolved }] of episodes) {
      if (!resendDue && !changed.has(fp)) continue;
      if (resolved && (resolved.endsAtMs ?? nowMs) < nowMs - RESOLVED_RETENTION_MS) continue;
      const c = conditions.get(fp);
      alerts.push(postableAlert({
        labels: f.labels,
        annotations: !resolved && c?.active ? c.annotations : f.annotations,
        startsAtMs: f.startsAtMs,
        endsAtMs: resolved ? Math.max(f.startsAtMs, resolved.endsAtMs ?? nowMs) : nowMs + ENDS_AT_RESENDS * ALERTMANAGER_RESEND_MS,
        generatorURL: `${base}${generatorPath(f.alertname, f.link || null)}`,
      }));
    }
    const outcomes = await postToAlertmanagers(policy.alertmanagers, alerts, this.metrics);
    for (const o of outcomes) if (!o.ok) this.logger.warn({ alertmanager: o.alertmanager, alerts: o.alerts, err: o.error }, 'Alertmanager did not take the alerts');
    if (outcomes.length > 0 && outcomes.every((o) => !o.ok)) this.logger.error({ alerts: alerts.length }, 'no Alertmanager took the alerts; posting again within a minute');
    return outcomes;
  }

  private async announce(f: AlertEventRow, c: Condition): Promise<void> {
    if (!this.onFiring) return;
    try {
      await this.onFiring({
        fingerprint: f.fingerprint, alertname: f.alertname, labels: f.labels, annotations: f.annotations, link: c.link, centre: c.centre,
        startsAtMs: f.startsAtMs, activeAtMs: f.activeAtMs, value: f.value, threshold: f.threshold, unit: f.unit, silenced: f.silencedBy.length > 0,
      });
    } catch (error) {
      this.logger.error({ err: error, alert: f.alertname, fingerprint: f.fingerprint }, 'onFiring handler failed');
    }
  }

  /** Decides, from the notification log, what each receiver must be told now, and tells it. */
  private async notify(policy: AlertsPolicy, episodes: Map<string, Episode>, activeSilences: SilenceRow[], nowMs: number): Promise<NotificationAttempt[]> {
    const due: { webhook: AlertWebhook; episode: Episode; status: 'firing' | 'resolved' }[] = [];
    const candidates = [...episodes.values()].filter((e) => !e.resolved || (e.resolved.endsAtMs ?? nowMs) >= nowMs - RESOLVED_NOTIFY_WINDOW_MS);
    if (candidates.length === 0) return [];
    const log = new Map<string, NotificationState>();
    for (const s of await notificationStates(this.client, candidates.map((e) => e.firing.fingerprint))) {
      log.set(logKey(s.fingerprint, s.startsAtMs, s.receiver, s.status), s);
    }
    for (const episode of candidates) {
      const f = episode.firing;
      if (silencedBy(activeSilences, f.labels, nowMs).length > 0) continue;
      for (const webhook of policy.webhooks) {
        const fired = log.get(logKey(f.fingerprint, f.startsAtMs, webhook.name, 'firing'));
        if (episode.resolved) {
          if (!webhook.sendResolved || !fired || fired.lastSentMs === 0) continue;
          const told = log.get(logKey(f.fingerprint, f.startsAtMs, webhook.name, 'resolved'));
          if (told && (told.lastSentMs > 0 || this.busy(told, webhook, nowMs))) continue;
          due.push({ webhook, episode, status: 'resolved' });
        } else {
          if (fired && this.busy(fired, webhook, nowMs)) continue;
          if (fired && fired.lastSentMs > 0 && nowMs - fired.lastSentMs < policy.resendIntervalMs) continue;
          due.push({ webhook, episode, status: 'firing' });
        }
      }
    }
    return Promise.all(due.map((d) => this.send(d.webhook, d.episode, d.status, nowMs)));
  }

  /** A delivery still in flight (possibly on another server), or one that failed a moment ago. */
  private busy(s: NotificationState, webhook: AlertWebhook, nowMs: number): boolean {
    const inFlightMs = webhook.timeoutMs * this.delivery.attempts + this.delivery.backoffMs * 2 ** this.delivery.attempts + 5000;
    if (s.lastStartedMs > s.lastOutcomeMs && nowMs - s.lastStartedMs < inFlightMs) return true;
    return s.lastFailedMs > s.lastSentMs && s.lastFailedMs === s.lastOutcomeMs && nowMs - s.lastFailedMs < RETRY_AFTER_FAILURE_MS;
  }

  private async send(webhook: AlertWebhook, episode: Episode, status: 'firing' | 'resolved', nowMs: number): Promise<NotificationAttempt> {
    const f = episode.firing;
    const row = {
      fingerprint: f.fingerprint, startsAtMs: f.startsAtMs, receiver: webhook.name, status, attemptAtMs: nowMs,
      httpStatus: 0, attempts: 0, error: '', alertname: f.alertname,
    };
    await insertNotification(this.client, { ...row, outcome: 'sending' });
    const base = this.externalUrl();
    const message = buildWebhookMessage(webhook.name, base, {
      status, fingerprint: f.fingerprint, labels: f.labels, annotations: f.annotations, startsAtMs: f.startsAtMs,
      endsAtMs: episode.resolved?.endsAtMs ?? null, generatorURL: `${base}${generatorPath(f.alertname, f.link || null)}`,
    });
    const outcome = await deliver(webhook, message, this.metrics, this.delivery);
    this.metrics.notifications.inc({ receiver: webhook.name, status, outcome: outcome.ok ? 'sent' : 'failed' });
    if (!outcome.ok) this.logger.warn({ receiver: webhook.name, alert: f.alertname, fingerprint: f.fingerprint, status, attempts: outcome.attempts, err: outcome.error }, 'alert notification failed');
    await insertNotification(this.client, {
      ...row, outcome: outcome.ok ? 'sent' : 'failed', httpStatus: outcome.httpStatus, attempts: outcome.attempts, error: outcome.error,
    });
    return { receiver: webhook.name, fingerprint: f.fingerprint, alertname: f.alertname, status, outcome };
  }

  // -------------------------------------------------------------------------
  // Reads for the API

  /** Active alerts (firing, silenced, pending) and recently resolved ones, at `nowMs`. */
  snapshot(nowMs = this.now()): Promise<AlertsResponse> {
    const key = Math.floor(nowMs / SNAPSHOT_TTL_MS);
    if (this.snapshotCache?.key === key) return this.snapshotCache.value;
    const value = this.computeSnapshot(nowMs);
    this.snapshotCache = { key, value };
    value.catch(() => {
      if (this.snapshotCache?.value === value) this.snapshotCache = null;
    });
    return value;
  }

  private async computeSnapshot(nowMs: number): Promise<AlertsResponse> {
    const policy = this.policy;
    const generatedAt = new Date(nowMs).toISOString();
    if (!policy) return { enabled: false, generatedAt, alerts: [], resolved: [] };
    const [conditions, rows, activeSilences] = await Promise.all([
      evaluateConditions(this.client, this.topology, policy, nowMs),
      latestAlertEpisodes(this.client),
      silences(this.client, { endsAfterMs: nowMs }),
    ]);
    const episodes = episodesOf(rows);
    const base = this.externalUrl();
    const alerts: AlertView[] = [];
    const shown = new Set<string>();
    for (const episode of episodes.values()) {
      if (episode.resolved) continue;
      const f = episode.firing;
      const c = conditions.find((x) => x.fingerprint === f.fingerprint);
      const by = silencedBy(activeSilences, f.labels, nowMs);
      shown.add(f.fingerprint);
      alerts.push({
        fingerprint: f.fingerprint, alertname: f.alertname, state: by.length > 0 ? 'silenced' : 'firing', severity: f.labels.severity ?? '',
        labels: f.labels, annotations: c?.active ? c.annotations : f.annotations, link: f.link || null, centre: f.centre || null,
        since: isoOrNull(f.activeAtMs ?? f.startsAtMs), startsAt: isoOrNull(f.startsAtMs),
        value: c?.active ? c.value : f.value, threshold: c?.active ? c.threshold : f.threshold, unit: f.unit,
        silencedBy: by, generatorURL: `${base}${generatorPath(f.alertname, f.link || null)}`,
      });
    }
    for (const c of conditions) {
      if (!c.active || shown.has(c.fingerprint)) continue;
      const by = silencedBy(activeSilences, c.labels, nowMs);
      alerts.push({
        fingerprint: c.fingerprint, alertname: c.alertname, state: by.length > 0 ? 'silenced' : 'pending', severity: c.labels.severity ?? '',
        labels: c.labels, annotations: c.annotations, link: c.link, centre: c.centre, since: isoOrNull(c.activeAtMs), startsAt: null,
        value: c.value, threshold: c.threshold, unit: c.unit, silencedBy: by, generatorURL: `${base}${c.generatorPath}`,
      });
    }
    const rank = (a: AlertView) => (a.state === 'pending' ? 1 : 0) * 10 + (SEVERITY_RANK[a.severity] ?? 3);
    alerts.sort((x, y) => rank(x) - rank(y) || (x.since ?? '').localeCompare(y.since ?? '') || x.fingerprint.localeCompare(y.fingerprint));
    const resolved: ResolvedAlertView[] = [...episodes.values()]
      .filter((e): e is { firing: AlertEventRow; resolved: AlertEventRow } => e.resolved !== null && (e.resolved.endsAtMs ?? 0) >= nowMs - RECENT_RESOLVED_MS)
      .sort((x, y) => (y.resolved.endsAtMs ?? 0) - (x.resolved.endsAtMs ?? 0))
      .slice(0, 50)
      .map(({ firing: f, resolved: r }) => ({
        fingerprint: f.fingerprint, alertname: f.alertname, severity: f.labels.severity ?? '', labels: f.labels, annotations: f.annotations,
        link: f.link || null, centre: f.centre || null, startsAt: new Date(f.startsAtMs).toISOString(), endsAt: isoOrNull(r.endsAtMs),
        value: r.value, threshold: r.threshold, unit: f.unit,
      }));
    return { enabled: true, generatedAt, alerts, resolved };
  }

  async events(q: { fromMs: number; toMs: number; link: string | null; limit: number }): Promise<AlertEventView[]> {
    const rows = await alertEventsBetween(this.client, q);
    return rows.map((e) => ({
      fingerprint: e.fingerprint, alertname: e.alertname, status: e.status, at: new Date(e.eventAtMs).toISOString(),
      startsAt: new Date(e.startsAtMs).toISOString(), endsAt: isoOrNull(e.endsAtMs), labels: e.labels, annotations: e.annotations,
      value: e.value, threshold: e.threshold, unit: e.unit, silencedBy: e.silencedBy,
    }));
  }

  // -------------------------------------------------------------------------
  // Silences

  /** Silences that end within the last week or later, newest first. */
  async silences(nowMs = this.now()): Promise<SilenceView[]> {
    const rows = await silences(this.client, { endsAfterMs: nowMs - 7 * 86_400_000 });
    return rows.map((s) => silenceView(s, nowMs));
  }

  async createSilence(input: SilenceInput, createdBy: string, nowMs = this.now()): Promise<SilenceView> {
    const problem = matchersProblem(input.matchers);
    if (problem) {
      const [field, ...rest] = problem.split(': ');
      throw new SilenceInputError(field!, rest.join(': '));
    }
    if (!(input.endsAtMs > input.startsAtMs)) throw new SilenceInputError('endsAt', 'must be after startsAt');
    if (!(input.endsAtMs > nowMs)) throw new SilenceInputError('endsAt', 'must be in the future');
    if (input.endsAtMs - input.startsAtMs > MAX_SILENCE_MS) throw new SilenceInputError('endsAt', `a silence lasts at most ${MAX_SILENCE_MS / 86_400_000} days`);
    const row: SilenceRow = {
      id: randomUUID(), matchers: input.matchers, startsAtMs: input.startsAtMs, endsAtMs: input.endsAtMs, createdBy,
      comment: input.comment, updatedAtMs: nowMs, updatedBy: createdBy, version: this.nextVersion(0),
    };
    await insertSilence(this.client, row);
    this.snapshotCache = null;
    return silenceView(row, nowMs);
  }

  /** Ends a silence now (a new version of its row); null when there is no such silence. */
  async expireSilence(id: string, by: string, nowMs = this.now()): Promise<SilenceView | null> {
    const [current] = await silences(this.client, { endsAfterMs: 0, id });
    if (!current) return null;
    if (current.endsAtMs <= nowMs) return silenceView(current, nowMs);
    const row: SilenceRow = {
      ...current, startsAtMs: Math.min(current.startsAtMs, nowMs), endsAtMs: nowMs, updatedAtMs: nowMs, updatedBy: by,
      version: this.nextVersion(current.version),
    };
    await insertSilence(this.client, row);
    this.snapshotCache = null;
    return silenceView(row, nowMs);
  }

  /** Wall-clock microseconds, above every version this process or the row has seen (never the evaluation clock). */
  private nextVersion(after: number): number {
    this.lastVersion = Math.max(Date.now() * 1000, this.lastVersion + 1, after + 1);
    return this.lastVersion;
  }
}

const SEVERITY_RANK: Record<string, number> = { critical: 0, warning: 1, info: 2 };

function episodesOf(rows: AlertEventRow[]): Map<string, Episode> {
  const map = new Map<string, Episode>();
  for (const row of rows) {
    if (row.status !== 'firing') continue;
    map.set(row.fingerprint, { firing: row, resolved: null });
  }
  for (const row of rows) {
    if (row.status !== 'resolved') continue;
    const episode = map.get(row.fingerprint);
    // A resolved row without its firing row (cannot happen unless rows were deleted) describes the episode well enough.
    if (episode) episode.resolved = row;
    else map.set(row.fingerprint, { firing: { ...row, status: 'firing' }, resolved: row });
  }
  return map;
}

function logKey(fingerprint: string, startsAtMs: number, receiver: string, status: string): string {
  return `${fingerprint}|${startsAtMs}|${receiver}|${status}`;
}

function isoOrNull(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}

function silenceView(s: SilenceRow, nowMs: number): SilenceView {
  return {
    id: s.id, matchers: s.matchers, startsAt: new Date(s.startsAtMs).toISOString(), endsAt: new Date(s.endsAtMs).toISOString(),
    createdBy: s.createdBy, comment: s.comment, updatedAt: new Date(s.updatedAtMs).toISOString(), state: silenceState(s, nowMs),
  };
}
