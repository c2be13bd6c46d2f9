/**
 * CSV for regulators: RFC 4180 (CRLF after every record, a header record,
 * fields quoted when they hold a comma, a double quote, CR or LF, quotes
 * doubled), UTF-8. Column names are part of the API: add columns at the end,
 * never rename or reorder (README "Monthly SLA reports" lists them).
 */
import type { SlaBreachRun, SlaMinutesResponse, SlaMonthEntry, SlaReport } from './contract.js';

export type CsvValue = string | number | boolean | null | undefined;

export function csvField(value: CsvValue): string {
  if (value === null || value === undefined) return '';
  const text = typeof value === 'boolean' ? (value ? 'true' : 'false') : String(value);
  return /[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export function toCsv(header: readonly string[], rows: readonly CsvValue[][]): string {
  return [header, ...rows].map((r) => r.map(csvField).join(',') + '\r\n').join('');
}

/** One record per scope (link, centre, network) and criterion, plus an "overall" record per scope. */
export const REPORT_COLUMNS = [
  'month', 'timezone', 'state', 'scope', 'id', 'name', 'criterion', 'verdict', 'value', 'target', 'comparison', 'unit', 'rule',
  'breach_minutes', 'longest_breach_minutes', 'coverage', 'required_coverage',
  'month_minutes', 'excluded_minutes', 'sla_minutes', 'covered_minutes', 'evidence', 'self_load_minutes',
] as const;

export function reportCsv(report: SlaReport, state: 'finalised' | 'provisional'): string {
  const rows: CsvValue[][] = [];
  for (const s of [...report.links, ...report.centres, report.total]) {
    const common = [report.month, report.timezone, state, s.scope, s.id, s.name];
    const minutes = [s.minutes.month, s.minutes.excluded, s.minutes.sla, s.minutes.covered];
    const selfLoad = s.minutes.selfLoad ?? null;
    rows.push([...common, 'overall', s.verdict, null, null, null, null, null, null, null, s.coverage, s.policy?.coverageMin ?? null, ...minutes,
      `links=${s.links.total};met=${s.links.met};breach=${s.links.breach};insufficient_data=${s.links.insufficientData}`, selfLoad]);
    for (const c of s.criteria) {
      rows.push([
        ...common, c.criterion, c.verdict, c.value, c.target, c.comparison, c.unit, c.rule,
        c.breachMinutes, c.longestBreachMinutes, c.coverage, c.requiredCoverage, ...minutes,
        Object.entries(c.evidence).map(([k, v]) => `${k}=${v ?? ''}`).join(';'), selfLoad,
      ]);
    }
  }
  return toCsv(REPORT_COLUMNS, rows);
}

export const TIMELINE_COLUMNS = ['month', 'link', 'criterion', 'start', 'end', 'minutes'] as const;

export function timelineCsv(month: string, link: string, timeline: Record<string, SlaBreachRun[]>): string {
  const rows: CsvValue[][] = [];
  for (const [criterion, runs] of Object.entries(timeline)) {
    for (const r of runs) rows.push([month, link, criterion, r.start, r.end, r.minutes]);
  }
  rows.sort((x, y) => String(x[3]).localeCompare(String(y[3])) || String(x[2]).localeCompare(String(y[2])));
  return toCsv(TIMELINE_COLUMNS, rows);
}

export const MINUTE_COLUMNS = [
  'minute', 'excluded', 'ab_trains', 'ab_sent', 'ab_lost', 'ab_rtt_ms', 'ba_trains', 'ba_sent', 'ba_lost', 'ba_rtt_ms',
  'provisioned_gbps', 'covered', 'available', 'latency_breach', 'loss_breach', 'self_load',
] as const;

export function minutesCsv(m: SlaMinutesResponse): string {
  const rows: CsvValue[][] = m.t.map((t, i) => [
    new Date(t * 1000).toISOString(), m.excluded[i], m.abTrains[i], m.abSent[i], m.abLost[i], m.abRttMs[i],
    m.baTrains[i], m.baSent[i], m.baLost[i], m.baRttMs[i], m.provisionedGbps[i], m.covered[i], m.available[i],
    m.latencyBreach[i], m.lossBreach[i], m.selfLoad[i],
  ]);
  return toCsv(MINUTE_COLUMNS, rows);
}

export const MONTH_COLUMNS = ['month', 'start', 'end', 'state', 'finalised_at', 'finalised_by', 'report_sha256', 'amendments'] as const;

export function monthsCsv(months: SlaMonthEntry[]): string {
  return toCsv(MONTH_COLUMNS, months.map((m) => [m.month, m.start, m.end, m.state, m.finalisedAt, m.finalisedBy, m.reportSha256, m.amendments]));
}
