/**
 * Shapes the SLA figures ClickHouse computes (sql/sla.ts) into the monthly
 * report, and compares two reports field by field (amendments). No
 * arithmetic beyond unit conversion happens here.
 */
import { selfLoadGuardMs } from '../collector/index.js';
import { type Link, type Topology } from '../topology/index.js';
import {
  loadWindowsBetween, maintenanceWindows, slaCompliance, slaMonthBounds,
  type LoadWindow, type MaintenanceWindow, type SlaLinkInput, type SlaScopeRow, type SlaSource,
} from '../sql/index.js';
import type { ClickHouseClient } from '@clickhouse/client';
import type {
  SlaChange, SlaCriterionResult, SlaLinkPolicyView, SlaMaintenanceView, SlaReport, SlaScopeReport, SlaSelfLoadView,
} from './contract.js';

export { MONTH_PATTERN, monthProblem } from './month.js';
import { MONTH_PATTERN } from './month.js';

export class MonthNotStartedError extends Error {
  constructor(readonly month: string) {
    super(`month ${month} has not started yet`);
  }
}

export interface MonthPeriod {
  month: string;
  startS: number;
  /** End of the calendar month (exclusive). */
  endS: number;
  /** min(endS, now rounded down to a minute). */
  effectiveEndS: number;
  complete: boolean;
}

export async function monthPeriod(client: ClickHouseClient, topology: Topology, month: string, nowMs: number): Promise<MonthPeriod> {
  if (!MONTH_PATTERN.test(month)) throw new Error(`month: "${month}" is not YYYY-MM`);
  const { startS, endS } = await slaMonthBounds(client, month, topology.sla.timezone);
  const nowS = Math.floor(nowMs / 60_000) * 60;
  return { month, startS, endS, effectiveEndS: Math.min(endS, nowS), complete: nowS >= endS };
}

export function linkInput(l: Link): SlaLinkInput {
  return {
    a: l.a, b: l.b, rttTargetUs: l.sla.rttTargetMs * 1000, percentile: l.sla.percentile, latencyMinutesMin: l.sla.latencyMinutesMin,
    lossRatioMax: l.sla.lossRatioMax, availabilityMin: l.sla.availabilityMin, coverageMin: l.sla.coverageMin,
    committedMbps: l.sla.capacityGbps * 1000, floorBps: l.sla.throughputFloorGbps * 1e9,
  };
}

export interface ComputeOptions {
  source: SlaSource;
  nowMs: number;
  status?: SlaReport['status'];
  finalised?: SlaReport['finalised'];
  /** Only these links (one link's detail); centres and the total then cover only them. */
  links?: Link[];
}

/** The month's report computed now from the store (rollup or raw). */
export async function computeMonthReport(client: ClickHouseClient, topology: Topology, month: string, options: ComputeOptions): Promise<SlaReport> {
  const period = await monthPeriod(client, topology, month, options.nowMs);
  if (period.effectiveEndS <= period.startS) throw new MonthNotStartedError(month);
  const links = options.links ?? topology.links;
  const loadGuardMs = selfLoadGuardMs(topology.probing);
  const [rows, windows, loads] = await Promise.all([
    slaCompliance(client, {
      startS: period.startS, endS: period.effectiveEndS, engine: topology.sla.engine, source: options.source,
      links: links.map(linkInput), loadGuardMs,
    }),
    maintenanceWindows(client, period.startS, period.effectiveEndS),
    loadWindowsBetween(client, { fromS: period.startS, toS: period.effectiveEndS, guardMs: loadGuardMs, links }),
  ]);
  const minutes = (period.effectiveEndS - period.startS) / 60;
  const linkById = new Map(topology.links.map((l) => [l.id, l]));
  const scope = (row: SlaScopeRow): SlaScopeReport => scopeReport(row, minutes, topology, linkById.get(row.id) ?? null);
  const total = rows.find((r) => r.kind === 'network');
  return {
    format: 'citymesh-sla-report/1',
    network: topology.name,
    month,
    timezone: topology.sla.timezone,
    period: {
      start: iso(period.startS), end: iso(period.effectiveEndS), minutes, complete: period.effectiveEndS === period.endS,
    },
    status: options.status ?? 'provisional',
    source: options.source,
    engine: topology.sla.engine,
    finalised: options.finalised ?? null,
    links: rows.filter((r) => r.kind === 'link').map(scope),
    centres: rows.filter((r) => r.kind === 'centre').map(scope),
    total: total ? scope(total) : emptyTotal(topology),
    maintenance: windows.filter((w) => relevant(w, topology)).map((w) => maintenanceView(w)),
    selfLoad: loads.map((w) => selfLoadView(w, loadGuardMs)),
  };
}

export function selfLoadView(w: LoadWindow, guardMs: number): SlaSelfLoadView {
  return {
    testId: w.windowId, link: `${w.a}~${w.b}`, trigger: w.trigger,
    start: new Date(w.startMs).toISOString(), end: new Date(w.endMs).toISOString(), guardMs, minutes: w.minutes, sources: w.sources,
  };
}

function relevant(w: MaintenanceWindow, topology: Topology): boolean {
  if (w.scope === 'network') return true;
  if (w.scope === 'centre') return topology.centre(w.a) !== undefined;
  return topology.linkBetween(w.a, w.b) !== undefined;
}

export function maintenanceView(w: MaintenanceWindow): SlaMaintenanceView {
  return {
    id: w.id,
    scope: w.scope,
    target: w.scope === 'link' ? `${w.a}~${w.b}` : w.scope === 'centre' ? w.a : 'network',
    start: iso(w.startS),
    end: iso(w.endS),
    reason: w.reason,
    declaredAt: new Date(w.declaredAtMs).toISOString(),
    declaredBy: w.declaredBy,
    declaredLate: w.declaredLate,
    excluded: !w.declaredLate,
  };
}

export function iso(unixS: number): string {
  return new Date(unixS * 1000).toISOString();
}

const pct = (share: number) => `${Number((share * 100).toPrecision(6))}%`;

function scopeReport(row: SlaScopeRow, periodMinutes: number, topology: Topology, link: Link | null): SlaScopeReport {
  const p = link?.sla ?? null;
  // The report carries the policy exactly as the topology resolved it (a copy: the report is frozen and signed).
  const policy: SlaLinkPolicyView | null = p ? { ...p } : null;
  const pName = p ? `p${Math.round(p.percentile * 100)}` : '';
  const minuteCoverage = row.coverage;
  const required = p ? p.coverageMin : null;
  const criteria: SlaCriterionResult[] = [
    {
      criterion: 'latency',
      verdict: row.latency_verdict,
      value: row.latency_value,
      target: p ? p.latencyMinutesMin : null,
      comparison: '>=',
      unit: 'share_of_minutes',
      rule: p ? `${pName} RTT <= ${p.rttTargetMs} ms (worst direction) in >= ${pct(p.latencyMinutesMin)} of assessed minutes` : null,
      breachMinutes: row.latency_breach_minutes,
      longestBreachMinutes: row.latency_longest,
      coverage: minuteCoverage,
      requiredCoverage: required,
      evidence: {
        assessedMinutes: row.available_minutes,
        thresholdMs: p ? p.rttTargetMs : null,
        percentile: p ? p.percentile : null,
        worstMinuteMs: row.worst_p_us === null ? null : Math.round(row.worst_p_us) / 1000,
      },
    },
    {
      criterion: 'loss',
      verdict: row.loss_verdict,
      value: row.loss_value,
      target: p ? p.lossRatioMax : null,
      comparison: '<=',
      unit: 'ratio',
      rule: p ? `packets lost / sent <= ${p.lossRatioMax} over available minutes, both directions` : null,
      breachMinutes: row.loss_breach_minutes,
      longestBreachMinutes: row.loss_longest,
      coverage: minuteCoverage,
      requiredCoverage: required,
      evidence: { packetsSent: row.sent, packetsLost: row.lost },
    },
    {
      criterion: 'availability',
      verdict: row.availability_verdict,
      value: row.availability_value,
      target: p ? p.availabilityMin : null,
      comparison: '>=',
      unit: 'share_of_minutes',
      rule: p ? `probe packets received in both directions in >= ${pct(p.availabilityMin)} of covered minutes` : null,
      breachMinutes: row.availability_breach_minutes,
      longestBreachMinutes: row.availability_longest,
      coverage: minuteCoverage,
      requiredCoverage: required,
      evidence: { coveredMinutes: row.covered_minutes, availableMinutes: row.available_minutes },
    },
    {
      criterion: 'capacity_provisioned',
      verdict: row.provisioned_verdict,
      value: row.nic_min_mbps === null ? null : row.nic_min_mbps / 1000,
      target: p ? p.capacityGbps : null,
      comparison: '>=',
      unit: 'Gbps',
      rule: p ? `lowest negotiated interface speed >= ${p.capacityGbps} Gb/s in every minute a probe reported a speed (minutes without one are missing data, never a breach)` : null,
      breachMinutes: row.nic_breach_minutes,
      longestBreachMinutes: row.nic_longest,
      coverage: row.nic_coverage,
      requiredCoverage: required,
      evidence: { nicMinutes: row.nic_minutes },
    },
    {
      criterion: 'capacity_tested',
      verdict: row.tested_verdict,
      value: row.tested_min_bps === null ? null : row.tested_min_bps / 1e9,
      target: p ? p.throughputFloorGbps : null,
      comparison: '>=',
      unit: 'Gbps',
      rule: p ? `every successful throughput test of the month >= ${p.throughputFloorGbps} Gb/s in its worse direction` : null,
      breachMinutes: null,
      longestBreachMinutes: null,
      coverage: null,
      requiredCoverage: null,
      evidence: { tests: row.tests, successfulTests: row.tests_ok, failedTests: row.tests_failed, testsBelowFloor: row.tests_below },
    },
  ];
  const id = row.kind === 'network' ? 'network' : row.id;
  const name = row.kind === 'link' ? (link?.name ?? row.id) : row.kind === 'centre' ? (topology.centre(row.id)?.name ?? row.id) : topology.name;
  return {
    scope: row.kind,
    id,
    name,
    verdict: row.verdict,
    links: { total: row.links, met: row.links_met, breach: row.links_breach, insufficientData: row.links_insufficient },
    minutes: {
      month: periodMinutes * row.links, excluded: row.excluded_minutes, selfLoad: row.self_load_minutes, sla: row.sla_minutes,
      covered: row.covered_minutes, available: row.available_minutes,
    },
    coverage: minuteCoverage,
    policy,
    criteria,
  };
}

function emptyTotal(topology: Topology): SlaScopeReport {
  return {
    scope: 'network', id: 'network', name: topology.name, verdict: 'insufficient_data',
    links: { total: 0, met: 0, breach: 0, insufficientData: 0 },
    minutes: { month: 0, excluded: 0, selfLoad: 0, sla: 0, covered: 0, available: 0 }, coverage: null, policy: null, criteria: [],
  };
}

/**
 * Estimates that may differ between two computations on the same data
 * (t-digest merges depend on part layout) and so are not compared.
 */
const ESTIMATES = new Set(['worstMinuteMs']);

/** Every figure that differs between two reports of the same month (verdicts, counts, ratios, minutes). */
export function reportChanges(before: SlaReport, after: SlaReport): SlaChange[] {
  const changes: SlaChange[] = [];
  const add = (path: string, from: unknown, to: unknown) => {
    const scalar = (v: unknown) => (v === undefined ? null : (v as string | number | null));
    if (from !== to) changes.push({ path, from: scalar(from), to: scalar(to) });
  };
  const scopes = (r: SlaReport) => new Map([...r.links, ...r.centres, r.total].map((s) => [`${s.scope}:${s.id}`, s]));
  const a = scopes(before);
  const b = scopes(after);
  for (const key of new Set([...a.keys(), ...b.keys()])) {
    const x = a.get(key);
    const y = b.get(key);
    const base = key.replace(':', '[') + ']';
    if (!x || !y) {
      add(`${base}`, x ? x.verdict : null, y ? y.verdict : null);
      continue;
    }
    add(`${base}.verdict`, x.verdict, y.verdict);
    for (const k of Object.keys(x.minutes) as (keyof SlaScopeReport['minutes'])[]) add(`${base}.minutes.${k}`, x.minutes[k], y.minutes[k]);
    add(`${base}.coverage`, x.coverage, y.coverage);
    for (const cx of x.criteria) {
      const cy = y.criteria.find((c) => c.criterion === cx.criterion);
      const cbase = `${base}.${cx.criterion}`;
      if (!cy) {
        add(cbase, cx.verdict, null);
        continue;
      }
      for (const field of ['verdict', 'value', 'target', 'breachMinutes', 'longestBreachMinutes', 'coverage'] as const) {
        add(`${cbase}.${field}`, cx[field], cy[field]);
      }
      for (const k of new Set([...Object.keys(cx.evidence), ...Object.keys(cy.evidence)])) {
        if (!ESTIMATES.has(k)) add(`${cbase}.evidence.${k}`, cx.evidence[k], cy.evidence[k]);
      }
    }
  }
  const windows = (r: SlaReport) => r.maintenance.map((w) => `${w.id}:${w.excluded}`).sort().join(',');
  add('maintenance', windows(before), windows(after));
  const loads = (r: SlaReport) => (r.selfLoad ?? []).map((w) => `${w.testId}:${w.minutes}`).sort().join(',');
  add('selfLoad', loads(before), loads(after));
  return changes;
}
