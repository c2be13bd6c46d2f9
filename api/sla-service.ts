/**
 * Monthly reports over time: which months exist, finalising one (freeze,
 * sign, store), amendments when late samples change a finalised month, and
 * the node-cron job that does both on its own. A finalised report is never
 * rewritten: later figures that differ become a new signed amendment.
 */
import cron, { type RunCoordinator, type ScheduledTask } from 'node-cron';
import type { Logger } from 'pino';
import type { Link, Topology } from '../topology/index.js';
import {
  insertSlaReport, samplesStoredSince, slaMonthOf, slaMonthsWithData, slaReportDocuments, slaReportIndex, type SlaReportRow, type Store,
} from '../sql/index.js';
import type {
  SlaAmendment, SlaAmendmentSummary, SlaAmendmentsResponse, SlaChange, SlaMonthEntry, SlaMonthResponse, SlaReport, SlaScopeReport,
} from './contract.js';
import type { ReportSigner, SignedDocument } from './report-signing.js';
import { computeMonthReport, iso, monthPeriod, reportChanges } from './sla-report.js';

export interface SlaServiceOptions {
  store: Store;
  topology: Topology;
  /** null: reports can be computed and read, not finalised (no key configured). */
  signer: ReportSigner | null;
  logger: Logger;
  now?: () => number;
  /** Decides which server runs each scheduled run (api/jobs.ts); absent: this process always runs it. */
  runCoordinator?: RunCoordinator;
  /** node-cron expression of the job (default SLA_JOB_SCHEDULE). */
  schedule?: string;
}

/** The hourly job: finalise months past end + grace, look for amendments. Seconds field first (node-cron). */
export const SLA_JOB_SCHEDULE = '0 5 * * * *';

/**
 * Finalised months are re-checked for late samples while raw trains can still
 * arrive (the collector refuses samples older than 399 days) and are still
 * stored (400-day TTL); older months are never recomputed, so expiry can
 * never pass for an amendment.
 */
const AMENDMENT_HORIZON_MS = 399 * 86_400_000;

/** Why the service refused a request; the HTTP routes map each reason to a status (api/routes/sla). */
export type SlaRefusalReason = 'no_signing_key' | 'already_finalised' | 'month_not_over' | 'not_finalised' | 'link_not_in_report';

/** A request the SLA service will not carry out, whoever asked (an operator over HTTP, or the cron job). */
export class SlaRefusal extends Error {
  constructor(
    readonly reason: SlaRefusalReason,
    message: string,
  ) {
    super(message);
    this.name = 'SlaRefusal';
  }
}

interface StoredDoc {
  row: SlaReportRow;
  /** The figures: the final report, or the recomputed report an amendment carries. */
  figures: SlaReport;
  changes: number;
}

export class SlaService {
  readonly store: Store;
  readonly topology: Topology;
  readonly signer: ReportSigner | null;
  private readonly logger: Logger;
  private readonly now: () => number;
  private readonly locks = new Map<string, Promise<unknown>>();
  /** Per finalised month: up to when (ms) late samples have been looked for. */
  private readonly checkedUpTo = new Map<string, number>();
  private task: ScheduledTask | null = null;
  private readonly runCoordinator: RunCoordinator | undefined;
  private readonly schedule: string;

  constructor(options: SlaServiceOptions) {
    this.runCoordinator = options.runCoordinator;
    this.schedule = options.schedule ?? SLA_JOB_SCHEDULE;
    this.store = options.store;
    this.topology = options.topology;
    this.signer = options.signer;
    this.logger = options.logger;
    this.now = options.now ?? Date.now;
  }

  get client() {
    return this.store.client;
  }

  /** One operation per month at a time in this process (finalise, amend). */
  private locked<T>(month: string, run: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(month) ?? Promise.resolve();
    const next = previous.then(run, run);
    this.locks.set(month, next.catch(() => undefined));
    return next;
  }

  async documents(month: string): Promise<StoredDoc[]> {
    const rows = await slaReportDocuments(this.client, month);
    return rows.map((row) => {
      const doc = JSON.parse(row.document) as SignedDocument<SlaReport | SlaAmendment>;
      const amendment = row.seq > 0 ? (doc.report as SlaAmendment) : null;
      return { row, figures: amendment ? amendment.report : (doc.report as SlaReport), changes: amendment ? amendment.changes.length : 0 };
    });
  }

  private static summary(d: StoredDoc): SlaAmendmentSummary {
    return { seq: d.row.seq, at: new Date(d.row.createdAtMs).toISOString(), by: d.row.createdBy, reportSha256: d.row.reportSha256, changes: d.changes };
  }

  async months(): Promise<SlaMonthEntry[]> {
    const nowMs = this.now();
    const { timezone } = this.topology.sla;
    const [withData, index, current] = await Promise.all([
      slaMonthsWithData(this.client, timezone),
      slaReportIndex(this.client),
      slaMonthOf(this.client, nowMs * 1000, timezone),
    ]);
    const months = [...new Set([current, ...withData, ...index.map((r) => r.month)])].filter((m) => m <= current).sort().reverse();
    const entries: SlaMonthEntry[] = [];
    for (const month of months) {
      const period = await monthPeriod(this.client, this.topology, month, nowMs);
      const final = index.find((r) => r.month === month && r.seq === 0);
      const graceMs = this.topology.sla.finaliseGraceHours * 3600_000;
      entries.push({
        month,
        start: iso(period.startS),
        end: iso(period.endS),
        state: final ? 'finalised' : period.complete ? 'open' : 'in_progress',
        finalisedAt: final ? new Date(final.createdAtMs).toISOString() : null,
        finalisedBy: final?.createdBy ?? null,
        reportSha256: final?.reportSha256 ?? null,
        amendments: index.filter((r) => r.month === month && r.seq > 0).length,
        autoFinaliseAt: !final && this.topology.sla.autoFinalise ? new Date(period.endS * 1000 + graceMs).toISOString() : null,
      });
    }
    return entries;
  }

  /** The stored report when the month is finalised (unless `recompute`), else the figures computed now. */
  async month(month: string, options: { recompute?: 'rollup' | 'raw' } = {}): Promise<SlaMonthResponse> {
    const docs = await this.documents(month);
    const final = docs.find((d) => d.row.seq === 0);
    const amendments = docs.filter((d) => d.row.seq > 0).map(SlaService.summary);
    if (final && !options.recompute) {
      return { month, state: 'finalised', report: final.figures, reportSha256: final.row.reportSha256, amendments };
    }
    const report = await this.compute(month, options.recompute ?? 'rollup');
    return { month, state: 'provisional', report, reportSha256: null, amendments };
  }

  /** One link's figures: frozen ones from a finalised month, else computed now for that link alone. */
  async linkView(month: string, link: Link): Promise<{ state: 'finalised' | 'provisional'; report: SlaReport; scope: SlaScopeReport }> {
    const final = (await this.documents(month)).find((d) => d.row.seq === 0);
    const report = final ? final.figures : await this.compute(month, 'rollup', this.now(), [link]);
    const scope = report.links.find((s) => s.id === link.id);
    if (!scope) throw new SlaRefusal('link_not_in_report', `${link.id} is not in the ${month} report`);
    return { state: final ? 'finalised' : 'provisional', report, scope };
  }

  /** Throws MonthNotStartedError for a month that has not begun. */
  async compute(month: string, source: 'rollup' | 'raw', nowMs = this.now(), links?: Link[]): Promise<SlaReport> {
    return await computeMonthReport(this.client, this.topology, month, { source, nowMs, ...(links ? { links } : {}) });
  }

  /** The signed document of a finalised month (seq 0) or an amendment, exactly as stored. */
  async document(month: string, seq = 0): Promise<string | null> {
    const rows = await slaReportDocuments(this.client, month);
    return rows.find((r) => r.seq === seq)?.document ?? null;
  }

  /**
   * Freeze, sign and store a complete month. Refused for a month still in
   * progress and for one already finalised (the stored report never changes).
   */
  async finalise(month: string, by: string): Promise<SlaReportRow> {
    return this.locked(month, async () => {
      if (!this.signer) throw new SlaRefusal('no_signing_key', 'this server has no report signing key; reports cannot be finalised');
      const existing = (await slaReportDocuments(this.client, month)).find((r) => r.seq === 0);
      if (existing) {
        throw new SlaRefusal('already_finalised', `${month} was finalised at ${new Date(existing.createdAtMs).toISOString()} by ${existing.createdBy}; later changes are recorded as amendments`);
      }
      const nowMs = this.now();
      const period = await monthPeriod(this.client, this.topology, month, nowMs);
      if (!period.complete) throw new SlaRefusal('month_not_over', `${month} ends at ${iso(period.endS)}; only a complete month can be finalised`);
      const at = new Date(nowMs).toISOString();
      const report = await computeMonthReport(this.client, this.topology, month, {
        source: 'rollup', nowMs, status: 'final', finalised: { at, by },
      });
      const { document, reportSha256 } = this.signer.sign(report);
      await insertSlaReport(this.client, {
        month, seq: 0, kind: 'final', document, reportSha256, publicKeyFingerprint: this.signer.fingerprint,
        publicKey: this.signer.publicKeyPem, createdAtMs: nowMs, createdBy: by,
      });
      const stored = (await slaReportDocuments(this.client, month)).find((r) => r.seq === 0)!;
      // Another server finalising the same month at the same moment (the in-process lock does not reach it):
      // the store keeps the first document only (one deduplication token per month and seq), so a server whose
      // document is not the stored one did not finalise the month and must not say it did.
      if (stored.document !== document) {
        throw new SlaRefusal('already_finalised', `${month} was finalised at ${new Date(stored.createdAtMs).toISOString()} by ${stored.createdBy} (another server, at the same time); later changes are recorded as amendments`);
      }
      this.checkedUpTo.set(month, nowMs);
      this.logger.info({ month, by, reportSha256: stored.reportSha256, verdict: report.total.verdict }, 'SLA report finalised');
      return stored;
    });
  }

  /** Recorded amendments, and whether a recomputation now differs from the latest stored figures. */
  async amendments(month: string): Promise<SlaAmendmentsResponse> {
    const docs = await this.documents(month);
    const latest = docs.at(-1);
    if (!latest) return { month, finalised: false, amendments: [], current: { differs: false, changes: [] } };
    const changes = await this.changesSince(month, latest);
    return {
      month, finalised: true, amendments: docs.filter((d) => d.row.seq > 0).map(SlaService.summary),
      current: { differs: changes.length > 0, changes },
    };
  }

  private async changesSince(month: string, latest: StoredDoc): Promise<SlaChange[]> {
    const recomputed = await computeMonthReport(this.client, this.topology, month, { source: 'rollup', nowMs: this.now(), status: 'amendment' });
    return reportChanges(latest.figures, recomputed);
  }

  /**
   * Recompute a finalised month; when any figure differs from the latest
   * stored one, store a signed amendment (never touching the report).
   * Returns the new amendment, or null when nothing changed.
   */
  async recordAmendment(month: string, by: string): Promise<SlaReportRow | null> {
    return this.locked(month, async () => {
      if (!this.signer) throw new SlaRefusal('no_signing_key', 'this server has no report signing key; amendments cannot be recorded');
      const docs = await this.documents(month);
      const latest = docs.at(-1);
      if (!latest) throw new SlaRefusal('not_finalised', `${month} is not finalised; its figures are provisional and need no amendment`);
      const nowMs = this.now();
      const recomputed = await computeMonthReport(this.client, this.topology, month, { source: 'rollup', nowMs, status: 'amendment' });
      const changes = reportChanges(latest.figures, recomputed);
      this.checkedUpTo.set(month, nowMs);
      if (changes.length === 0) return null;
      const seq = latest.row.seq + 1;
      const amendment: SlaAmendment = {
        format: 'citymesh-sla-amendment/1', month, seq, amends: { seq: latest.row.seq, reportSha256: latest.row.reportSha256 },
        detectedAt: new Date(nowMs).toISOString(), detectedBy: by, changes, report: recomputed,
      };
      const { document, reportSha256 } = this.signer.sign(amendment);
      await insertSlaReport(this.client, {
        month, seq, kind: 'amendment', document, reportSha256, publicKeyFingerprint: this.signer.fingerprint,
        publicKey: this.signer.publicKeyPem, createdAtMs: nowMs, createdBy: by,
      });
      const stored = (await slaReportDocuments(this.client, month)).find((r) => r.seq === seq)!;
      // As in finalise(): another server recorded this amendment at the same moment and its document is the one stored.
      if (stored.document !== document) return null;
      this.logger.warn({ month, seq, changes: changes.length }, 'SLA amendment recorded: a finalised month changed');
      return stored;
    });
  }

  /**
   * The job's work, callable directly (tests pass a clock): finalise every
   * complete month past its grace period, then re-check finalised months
   * that received samples since they were last checked.
   */
  async runScheduled(): Promise<{ finalised: string[]; amended: string[] }> {
    const done = { finalised: [] as string[], amended: [] as string[] };
    const nowMs = this.now();
    const graceMs = this.topology.sla.finaliseGraceHours * 3600_000;
    for (const entry of await this.months()) {
      try {
        if (entry.state === 'open' && this.topology.sla.autoFinalise && nowMs >= Date.parse(entry.end) + graceMs) {
          await this.finalise(entry.month, 'cron');
          done.finalised.push(entry.month);
        } else if (entry.state === 'finalised' && nowMs - Date.parse(entry.end) < AMENDMENT_HORIZON_MS) {
          const docs = await this.documents(entry.month);
          const since = Math.max(docs.at(-1)!.row.createdAtMs, this.checkedUpTo.get(entry.month) ?? 0);
          const period = await monthPeriod(this.client, this.topology, entry.month, nowMs);
          const late = await samplesStoredSince(this.client, period.startS, period.endS, since);
          if (late === 0 && this.checkedUpTo.has(entry.month)) continue;
          if (await this.recordAmendment(entry.month, 'cron')) done.amended.push(entry.month);
        }
      } catch (error) {
        if (error instanceof SlaRefusal && error.reason === 'already_finalised') {
          this.logger.info({ month: entry.month, reason: error.message }, 'SLA month finalised by another server meanwhile');
        } else {
          this.logger.error({ err: error, month: entry.month }, 'SLA job failed for a month');
        }
      }
    }
    return done;
  }

  start(): void {
    if (this.task || !this.signer) return;
    this.task = cron.schedule(
      this.schedule,
      async (context) => {
        const done = await this.runScheduled();
        this.logger.info({ slot: context.date.toISOString(), ...done }, 'SLA job ran on this server');
      },
      {
        name: 'sla-reports', noOverlap: true,
        ...(this.runCoordinator ? { distributed: true, runCoordinator: this.runCoordinator, distributedLease: 3_600_000 } : {}),
      },
    );
  }

  async stop(): Promise<void> {
    if (this.task) await this.task.stop();
    this.task = null;
    await Promise.allSettled([...this.locks.values()]);
  }
}
