/**
 * What probes report about themselves (their hello and every batch): kept per
 * centre in memory for this server's metrics and for filling in a peer
 * reflector's timestamping on each stored train, and written to ClickHouse
 * (probe_reports) so every server and /v1/status see it whichever server the
 * probe talks to. A write happens when anything but the counters changed, or
 * at most once a minute per centre; reports of probes connected elsewhere are
 * read back every REFRESH_MS.
 */
import type { Logger } from 'pino';
import { insertProbeReport, latestProbeReports, type ProbeReportRow, type Store } from '../sql/index.js';
import type { CollectorMetrics } from './metrics.js';
import type { ProbeReport, Timestamping } from '../protocol/index.js';

const PERSIST_EVERY_MS = 60_000;
const REFRESH_MS = 15_000;

export class ProbeReports {
  private readonly latest = new Map<string, ProbeReportRow>();
  private readonly persisted = new Map<string, { key: string; atMs: number }>();
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly store: Store, private readonly metrics: CollectorMetrics, private readonly logger: Logger) {
    this.timer = setInterval(() => void this.refresh(), REFRESH_MS);
    this.timer.unref();
    void this.refresh();
  }

  /** A probe connected here reported; returns the write (callers may track it). */
  update(centre: string, report: ProbeReport): Promise<void> {
    const row: ProbeReportRow = { reportedAtUs: Date.now() * 1000, centre, ...report };
    this.latest.set(centre, row);
    this.export(row);
    const key = JSON.stringify([report.datapath, report.datapathReason, report.reflectorTimestamping, report.enginesUnavailable]);
    const last = this.persisted.get(centre);
    const nowMs = Date.now();
    if (last && last.key === key && nowMs - last.atMs < PERSIST_EVERY_MS) return Promise.resolve();
    this.persisted.set(centre, { key, atMs: nowMs });
    return insertProbeReport(this.store.client, row).catch((error: Error) => {
      this.persisted.delete(centre); // try again with the next report
      this.logger.warn({ centre, err: error.message }, 'storing a probe report failed');
    });
  }

  /** How the centre's reflector takes its timestamps, as its probe last said; unknown when it never did. */
  reflectorTimestamping(centre: string): Timestamping {
    const mode = this.latest.get(centre)?.reflectorTimestamping;
    return mode === 'hardware' || mode === 'kernel' || mode === 'user' ? mode : 'unknown';
  }

  all(): ProbeReportRow[] {
    return [...this.latest.values()];
  }

  close(): void {
    clearInterval(this.timer);
  }

  private async refresh(): Promise<void> {
    try {
      for (const row of await latestProbeReports(this.store.client)) {
        const mine = this.latest.get(row.centre);
        if (!mine || mine.reportedAtUs < row.reportedAtUs) this.latest.set(row.centre, row);
      }
    } catch (error) {
      this.logger.debug({ err: (error as Error).message }, 'reading probe reports failed; will retry');
    }
  }

  private export(row: ProbeReportRow): void {
    const m = this.metrics;
    m.probeDatapathNative.set({ centre: row.centre }, row.datapath === 'native' ? 1 : 0);
    for (const engine of ['stamp', 'icmp']) m.probeEngineUnavailable.set({ centre: row.centre, engine }, row.enginesUnavailable[engine] ? 1 : 0);
    if (!row.reflector) return;
    m.reflectorDatagrams.set({ centre: row.centre, outcome: 'received' }, row.reflector.received);
    m.reflectorDatagrams.set({ centre: row.centre, outcome: 'reflected' }, row.reflector.reflected);
    for (const [reason, n] of Object.entries(row.reflector.drops)) m.reflectorDatagrams.set({ centre: row.centre, outcome: `dropped_${reason}` }, n);
  }
}
