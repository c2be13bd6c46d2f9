/**
 * The alert rules: what each one asks of the store (sql/alerts.ts), and how a
 * link's or centre's answer becomes a condition with Alertmanager labels and
 * annotations. Thresholds are the SLA policy's (per link, defaults with
 * overrides), so an alert and the monthly verdict judge by the same numbers.
 *
 *   LinkLatencyHigh     worse direction's percentile RTT (the SLA's level) > the link's RTT target
 *   LinkPacketLoss      packets lost / sent, both directions, > the link's loss ceiling
 *                       (both leave out what our own throughput tests loaded, as the SLA does)
 *   LinkDown            packets sent but none received in either direction, while both probes keep reporting
 *   LinkThroughputLow   newest successful throughput test, slower direction, < the link's floor
 *   ProbeSilent         no trains stored from a centre
 *   ProbeClockUnsynced  none of a centre's STAMP trains synchronised, or its best error estimate above a bound
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { formatDuration, type AlertRulePolicy, type AlertsPolicy, type Link, type Topology } from '../../topology/index.js';
import { selfLoadGuardMs } from '../../collector/index.js';
import { alertCentresLastSeen, alertClockRuns, alertLinkRuns, alertThroughputRuns, type AlertLinkInput, type LinkRun } from '../../sql/index.js';
import { fingerprint, type Labels } from './fingerprint.js';

export type RuleKey = keyof AlertsPolicy['rules'];

export const ALERT_NAMES: Record<RuleKey, string> = {
  latency: 'LinkLatencyHigh',
  loss: 'LinkPacketLoss',
  linkDown: 'LinkDown',
  throughput: 'LinkThroughputLow',
  probeSilent: 'ProbeSilent',
  clockUnsynced: 'ProbeClockUnsynced',
};

export interface Condition {
  rule: RuleKey;
  alertname: string;
  labels: Labels;
  fingerprint: string;
  link: string | null;
  centre: string | null;
  forMs: number;
  /** The condition holds at the evaluation's clock (pending, or firing once it has held for `forMs`). */
  active: boolean;
  /** Since when it holds; null when unknown (a centre never heard from). */
  activeAtMs: number | null;
  /** When a condition that no longer holds stopped holding, or null when unknown. */
  recoveredAtMs: number | null;
  value: number | null;
  threshold: number | null;
  unit: string;
  annotations: Record<string, string>;
  /** Where an operator sees it on the dashboard. */
  generatorPath: string;
}

/** How far back a centre's silence is looked for in the 1-minute rollup. */
export const SILENCE_HORIZON_MS = 7 * 86_400_000;
/** Throughput tests older than this are not evidence any more (as for placement). */
const THROUGHPUT_HORIZON_MS = 30 * 86_400_000;
/** A centre quiet for less than this is between two trains, not silent. */
const SILENT_PENDING_AFTER_MS = 60_000;

/**
 * Bucket width for a rule's `for`: at least five buckets per `for`, so `for`
 * is judged to within a fifth of itself; one minute (the rollup) from five
 * minutes up. Always a divisor of 60 so buckets align with minutes.
 */
export function bucketStepS(forMs: number): number {
  if (forMs >= 300_000) return 60;
  return [30, 20, 15, 10, 5, 2, 1].find((s) => s * 5000 <= forMs) ?? 1;
}

/**
 * Start of the lookback (Unix s, on a bucket boundary): twice the `for`
 * window (at least a minute) and a bucket more, so a run's start is exact
 * for runs up to twice `for`; an older run counts from the lookback's start
 * ("at least since"), which only a server starting in mid-breach ever sees.
 */
export function lookbackStartS(nowMs: number, forMs: number, stepS: number): number {
  const windowMs = 2 * Math.max(forMs, 60_000);
  return Math.floor((nowMs - windowMs) / 1000 / stepS) * stepS - stepS;
}

interface RuleContext {
  client: ClickHouseClient;
  topology: Topology;
  policy: AlertsPolicy;
  nowMs: number;
}

/** Every condition the store shows at `nowMs` (links and centres without data are absent: nothing holds for them). */
export async function evaluateConditions(client: ClickHouseClient, topology: Topology, policy: AlertsPolicy, nowMs: number): Promise<Condition[]> {
  const ctx: RuleContext = { client, topology, policy, nowMs };
  const r = policy.rules;
  const parts = await Promise.all([
    r.latency.enabled ? latencyConditions(ctx, r.latency) : [],
    r.loss.enabled ? lossConditions(ctx, r.loss) : [],
    r.linkDown.enabled ? linkDownConditions(ctx, r.linkDown) : [],
    r.throughput.enabled ? throughputConditions(ctx, r.throughput) : [],
    r.probeSilent.enabled ? probeSilentConditions(ctx, r.probeSilent) : [],
    r.clockUnsynced.enabled ? clockConditions(ctx, r.clockUnsynced) : [],
  ]);
  return parts.flat();
}

function linkLabels(rule: RuleKey, policy: AlertRulePolicy, l: Link): Labels {
  return { alertname: ALERT_NAMES[rule], severity: policy.severity, link: l.id, src: l.a, dst: l.b };
}

function centreLabels(rule: RuleKey, policy: AlertRulePolicy, centre: string): Labels {
  return { alertname: ALERT_NAMES[rule], severity: policy.severity, centre };
}

const iso = (ms: number): string => new Date(ms).toISOString();
const fixed = (v: number): string => (Math.abs(v) >= 100 ? v.toFixed(0) : Math.abs(v) >= 10 ? v.toFixed(1) : Math.abs(v) >= 1 ? v.toFixed(2) : v.toFixed(3));
const percent = (ratio: number): string => `${Number((ratio * 100).toPrecision(3))}%`;
const level = (percentile: number): string => `p${Number((percentile * 100).toFixed(1))}`;
/** Where the dashboard shows an alert: the link's charts (its capacity view for throughput), else the front page. */
export function generatorPath(alertname: string, link: string | null): string {
  if (!link) return '/';
  const [a, b] = link.split('~');
  const view = alertname === ALERT_NAMES.throughput ? 'capacity:' : '';
  return `/#${encodeURIComponent(`${view}${a}>${b}`)}`;
}

function linkCondition(
  rule: RuleKey, policy: AlertRulePolicy, l: Link, run: LinkRun, active: boolean,
  figures: { value: number | null; threshold: number | null; unit: string; summary: string; description: string },
): Condition {
  const labels = linkLabels(rule, policy, l);
  return {
    rule, alertname: labels.alertname!, labels, fingerprint: fingerprint(labels), link: l.id, centre: null, forMs: policy.forMs,
    active, activeAtMs: active ? run.runStartMs : null, recoveredAtMs: active ? null : run.recoveredAtMs,
    value: figures.value, threshold: figures.threshold, unit: figures.unit,
    annotations: { summary: figures.summary, description: figures.description },
    generatorPath: generatorPath(labels.alertname!, l.id),
  };
}

function linkInputs(links: Link[], threshold: (l: Link) => number): AlertLinkInput[] {
  return links.map((l) => ({ a: l.a, b: l.b, threshold: threshold(l), percentile: l.sla.percentile }));
}

async function linkRuns(ctx: RuleContext, kind: 'latency' | 'loss' | 'down', policy: AlertRulePolicy, threshold: (l: Link) => number): Promise<{ runs: Map<string, LinkRun>; stepS: number }> {
  const stepS = bucketStepS(policy.forMs);
  const rows = await alertLinkRuns(ctx.client, {
    kind,
    engine: kind === 'down' ? '' : ctx.topology.sla.engine,
    stepS,
    source: kind === 'latency' && stepS === 60 ? 'rollup' : 'raw',
    fromS: lookbackStartS(ctx.nowMs, policy.forMs, stepS),
    nowMs: ctx.nowMs,
    links: linkInputs(ctx.topology.links, threshold),
    loadGuardMs: selfLoadGuardMs(ctx.topology.probing),
  });
  return { runs: new Map(rows.map((r) => [`${r.a}~${r.b}`, r])), stepS };
}

async function latencyConditions(ctx: RuleContext, policy: AlertRulePolicy): Promise<Condition[]> {
  const { runs, stepS } = await linkRuns(ctx, 'latency', policy, (l) => l.sla.rttTargetMs * 1000);
  return ctx.topology.links.flatMap((l) => {
    const run = runs.get(l.id);
    if (!run) return [];
    const p = level(l.sla.percentile);
    const valueMs = run.value / 1000;
    const target = l.sla.rttTargetMs;
    return [linkCondition('latency', policy, l, run, run.active, {
      value: valueMs, threshold: target, unit: 'ms',
      summary: `${p} RTT ${fixed(valueMs)} ms > ${target} ms on ${l.name}`,
      description:
        `The worse direction's ${p} round-trip time on ${l.name} is ${fixed(valueMs)} ms (latest ${stepS} s of ${ctx.topology.sla.engine} packets), ` +
        `above the link's target of ${target} ms` +
        (run.active ? ` since ${iso(run.runStartMs)}; it fires after ${formatDuration(policy.forMs)}.` : '; it is within target now.'),
    })];
  });
}

async function lossConditions(ctx: RuleContext, policy: AlertRulePolicy): Promise<Condition[]> {
  const { runs, stepS } = await linkRuns(ctx, 'loss', policy, (l) => l.sla.lossRatioMax);
  return ctx.topology.links.flatMap((l) => {
    const run = runs.get(l.id);
    if (!run) return [];
    const ceiling = l.sla.lossRatioMax;
    return [linkCondition('loss', policy, l, run, run.active, {
      value: run.value, threshold: ceiling, unit: 'ratio',
      summary: `Packet loss ${percent(run.value)} > ${percent(ceiling)} on ${l.name}`,
      description:
        `${percent(run.value)} of the ${run.extra} probe packets sent across ${l.name} in the latest ${stepS} s (both directions) were lost, ` +
        `above the link's ceiling of ${percent(ceiling)}` +
        (run.active ? ` since ${iso(run.runStartMs)}; it fires after ${formatDuration(policy.forMs)}.` : '.'),
    })];
  });
}

async function linkDownConditions(ctx: RuleContext, policy: AlertRulePolicy): Promise<Condition[]> {
  const { runs } = await linkRuns(ctx, 'down', policy, () => 0);
  return ctx.topology.links.flatMap((l) => {
    const run = runs.get(l.id);
    if (!run) return [];
    // Both probes must have stored trains since the silence began: a dead probe is ProbeSilent, not a dead link.
    const active = run.active && run.extra === 1;
    const downS = active ? Math.max(0, (ctx.nowMs - run.runStartMs) / 1000) : null;
    return [linkCondition('linkDown', policy, l, run, active, {
      value: downS, threshold: policy.forMs / 1000, unit: 's',
      summary: `${l.name} is down: no probe packet crossed it in either direction${downS === null ? '' : ` for ${formatDuration(Math.round(downS) * 1000)}`}`,
      description:
        `Probe packets (any engine) were sent across ${l.name} but none came back in either direction` +
        (active ? ` since ${iso(run.runStartMs)}, while both ${l.a} and ${l.b} keep reporting; it fires after ${formatDuration(policy.forMs)}.` : '.'),
    })];
  });
}

async function throughputConditions(ctx: RuleContext, policy: AlertRulePolicy): Promise<Condition[]> {
  const rows = await alertThroughputRuns(ctx.client, {
    fromMs: ctx.nowMs - THROUGHPUT_HORIZON_MS,
    nowMs: ctx.nowMs,
    links: linkInputs(ctx.topology.links, (l) => l.sla.throughputFloorGbps * 1e9),
  });
  const runs = new Map(rows.map((r) => [`${r.a}~${r.b}`, r]));
  return ctx.topology.links.flatMap((l) => {
    const run = runs.get(l.id);
    if (!run) return [];
    const gbps = run.value / 1e9;
    const floor = l.sla.throughputFloorGbps;
    return [linkCondition('throughput', policy, l, run, run.active, {
      value: gbps, threshold: floor, unit: 'Gb/s',
      summary: `Tested throughput ${fixed(gbps)} Gb/s < floor ${floor} Gb/s on ${l.name}`,
      description:
        `The newest successful throughput test of ${l.name} (${iso(run.lastBucketMs)}) moved ${fixed(gbps)} Gb/s in its slower direction, ` +
        (run.active ? `below the link's floor of ${floor} Gb/s; tests have been below it since ${iso(run.runStartMs)}.` : `at or above the floor of ${floor} Gb/s.`),
    })];
  });
}

async function probeSilentConditions(ctx: RuleContext, policy: AlertRulePolicy): Promise<Condition[]> {
  const seen = await alertCentresLastSeen(ctx.client, {
    rawFromMs: ctx.nowMs - 2 * policy.forMs - 600_000,
    horizonS: (ctx.nowMs - SILENCE_HORIZON_MS) / 1000,
    nowMs: ctx.nowMs,
    centres: ctx.topology.centres.map((c) => c.id),
  });
  const pendingAfter = Math.min(policy.forMs, SILENT_PENDING_AFTER_MS);
  return seen.map(({ centre, lastSeenMs }) => {
    const name = ctx.topology.centre(centre)?.name ?? centre;
    const quietMs = lastSeenMs === null ? null : Math.max(0, ctx.nowMs - lastSeenMs);
    const active = quietMs === null || quietMs >= pendingAfter;
    const labels = centreLabels('probeSilent', policy, centre);
    return {
      rule: 'probeSilent', alertname: labels.alertname!, labels, fingerprint: fingerprint(labels), link: null, centre, forMs: policy.forMs,
      active, activeAtMs: active ? lastSeenMs : null, recoveredAtMs: active ? null : lastSeenMs,
      value: quietMs === null ? null : quietMs / 1000, threshold: policy.forMs / 1000, unit: 's',
      annotations: quietMs === null
        ? {
            summary: `No samples from ${name} (${centre}) in the last ${formatDuration(SILENCE_HORIZON_MS)}`,
            description: `The probe of ${name} has not stored a train in the last ${formatDuration(SILENCE_HORIZON_MS)}: is it installed and running? (Shown, not notified: a centre is notified about once it has reported.)`,
          }
        : {
            summary: `No samples from ${name} (${centre}) for ${formatDuration(Math.floor(quietMs / 1000) * 1000)}`,
            description: `The probe of ${name} stored its last train at ${iso(lastSeenMs!)}; the rule fires after ${formatDuration(policy.forMs)} without samples. Check the probe service and its path to the server.`,
          },
      generatorPath: '/',
    } satisfies Condition;
  });
}

async function clockConditions(ctx: RuleContext, policy: AlertRulePolicy & { maxErrorUs: number }): Promise<Condition[]> {
  const stepS = bucketStepS(policy.forMs);
  const runs = await alertClockRuns(ctx.client, {
    stepS,
    fromS: lookbackStartS(ctx.nowMs, policy.forMs, stepS),
    nowMs: ctx.nowMs,
    maxErrorUs: policy.maxErrorUs,
    centres: ctx.topology.centres.map((c) => c.id),
  });
  return runs.map((run) => {
    const name = ctx.topology.centre(run.centre)?.name ?? run.centre;
    const labels = centreLabels('clockUnsynced', policy, run.centre);
    const errorMs = run.value / 1000;
    const boundMs = policy.maxErrorUs / 1000;
    return {
      rule: 'clockUnsynced', alertname: labels.alertname!, labels, fingerprint: fingerprint(labels), link: null, centre: run.centre,
      forMs: policy.forMs, active: run.active, activeAtMs: run.active ? run.runStartMs : null, recoveredAtMs: run.active ? null : run.recoveredAtMs,
      value: errorMs, threshold: boundMs, unit: 'ms',
      annotations: {
        summary: `Clock of ${name} (${run.centre}) is not synchronised: best error estimate ${fixed(errorMs)} ms (bound ${boundMs} ms)`,
        description:
          `${percent(run.extra)} of the STAMP trains ${name} sent in the latest ${stepS} s were synchronised; the smallest error estimate was ` +
          `${fixed(errorMs)} ms against a bound of ${boundMs} ms. One-way delays from this centre are not trustworthy; RTT verdicts are unaffected.` +
          (run.active ? ` Since ${iso(run.runStartMs)}.` : ''),
      },
      generatorPath: '/',
    } satisfies Condition;
  });
}
