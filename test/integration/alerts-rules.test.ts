/**
 * Every alert rule against embedded ClickHouse: trains and throughput tests
 * written with the sql/ insert functions, one story per link or centre, then
 * evaluate(now) with an explicit clock (t = seconds after a minute-aligned t0).
 *
 *   alfa~bravo    all packets lost both ways during [60, 130) while both probes report: LinkDown (and loss), resolved at 130
 *   alfa~charlie  charlie's probe dies at 60 (its reflector with it): ProbeSilent for charlie, not LinkDown
 *   alfa~delta    2 of 10 packets lost from 60: LinkPacketLoss, not LinkDown
 *   alfa~echo     newest throughput test 40 Gb/s (floor 95): LinkThroughputLow
 *   bravo~delta   a test below the floor, then a newer one above it: nothing
 *   bravo~echo    p99 9 ms (target 5) from -420: LinkLatencyHigh, judged from raw trains (for 30 s) and from the rollup (for 5 m)
 *   delta         no STAMP train synchronised; echo: synchronised but error estimate 0.5 ms > 0.1 ms: ProbeClockUnsynced
 *   foxtrot       never reported: shown pending with no start, never fires
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AlertService } from '../../api/alerts/service.js';
import { bucketStepS, lookbackStartS } from '../../api/alerts/rules.js';
import { parseTopology, type Topology } from '../../topology/index.js';
import { formatDateTime64, insertThroughput, insertTrains, migrate, openStore, type Store, type TrainRow } from '../../sql/index.js';
import { throughput } from '../helpers/sla-month.js';
import { quietLogger, testTopology } from '../helpers/stack.js';

const ids = ['alfa', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot'];
const base = testTopology(ids, '127.0.72');
const t0 = Math.floor((Date.now() - 3 * 3_600_000) / 60_000) * 60_000;
const at = (s: number) => t0 + s * 1000;
const iso = (s: number) => new Date(at(s)).toISOString();

function withAlerts(latency: string): Topology {
  return parseTopology(`${base.yaml}alerts:
  rules:
    latency: ${latency}
    loss: { for: 30s }
    link_down: { for: 30s }
    throughput: { for: 0s }
    probe_silent: { for: 60s }
    clock_unsynced: { enabled: true, for: 30s, max_error_us: 100 }
`, 'alerts-rules.yaml');
}

let seq = 0;
function train(src: string, dst: string, s: number, o: { lost?: number; rttUs?: number; synced?: boolean; errorUs?: number } = {}): TrainRow {
  const sent = 10;
  const lost = o.lost ?? 0;
  const received = sent - lost;
  const rtt = o.rttUs ?? 500;
  const has = received > 0;
  const synced = (o.synced ?? true) && has;
  return {
    ts: formatDateTime64(at(s) * 1000), src, dst, engine: 'stamp', flow: 0, src_port: 40000, dscp: 46, batch_id: 'rules', train_id: `rules-${++seq}`,
    sent, received, lost, duplicated: 0, reordered: 0, rtt_min_us: has ? rtt : null, rtt_median_us: has ? rtt : null, rtt_p99_us: has ? rtt : null,
    rtt_max_us: has ? rtt : null, jitter_us: has ? 0 : null, synced, error_estimate_us: o.errorUs ?? 50, rtts_us: Array(received).fill(rtt),
    fwd_us: synced ? Array(received).fill(rtt / 2) : [], rev_us: synced ? Array(received).fill(rtt / 2) : [],
  };
}

/** Each centre's own clock story: delta never synchronised, echo synchronised but imprecise. */
const clockOf = (src: string) => (src === 'delta' ? { synced: false, errorUs: 1000 } : src === 'echo' ? { errorUs: 500 } : {});

let dir: string;
let store: Store;
let short: AlertService;
let long: AlertService;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'citymesh-alert-rules-'));
  store = await openStore({ dataDir: dir });
  await migrate(store.client);
  const rows: TrainRow[] = [];
  for (let s = -900; s < 180; s += 5) {
    const both = (a: string, b: string, o: Parameters<typeof train>[3] = {}) =>
      rows.push(train(a, b, s + 1, { ...clockOf(a), ...o }), train(b, a, s + 1, { ...clockOf(b), ...o }));
    if (s >= -120) {
      both('alfa', 'bravo', s >= 60 && s < 130 ? { lost: 10 } : {});
      rows.push(train('alfa', 'charlie', s + 1, s >= 60 ? { lost: 10 } : {}));
      if (s < 60) rows.push(train('charlie', 'alfa', s + 1));
      both('alfa', 'delta', s >= 60 ? { lost: 2 } : {});
      both('alfa', 'echo');
    }
    both('bravo', 'echo', { rttUs: s >= -420 ? 9000 : 500 });
  }
  await insertTrains(store.client, rows, `rules-trains-${t0}`);
  const us = (s: number) => at(s) * 1000;
  await insertThroughput(store.client, [
    throughput('alfa', 'echo', us(10), 98, 97),
    throughput('echo', 'alfa', us(70), 40, 41),
    throughput('bravo', 'delta', us(10), 30, 99),
    throughput('delta', 'bravo', us(70), 96, 99),
    throughput('delta', 'bravo', us(80), null, null, 'connection refused'), // a failure is not a measurement
  ], `rules-tests-${t0}`);
  short = new AlertService({ store, topology: withAlerts('{ for: 30s }'), logger: quietLogger });
  // Another severity gives other labels, so the five-minute rule's episode is its own.
  long = new AlertService({ store, topology: withAlerts('{ for: 5m, severity: critical }'), logger: quietLogger });
});

afterAll(async () => {
  await store?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const key = (e: { alertname: string; link: string | null; centre: string | null }) => `${e.alertname} ${e.link || e.centre}`;

describe('alert rules', () => {
  it('buckets `for` in fifths (a minute from five minutes) and looks back over twice it', () => {
    expect([0, 5_000, 30_000, 60_000, 120_000, 299_000, 300_000, 3_600_000].map(bucketStepS)).toEqual([1, 1, 5, 10, 20, 30, 60, 60]);
    expect(lookbackStartS(at(120), 30_000, 5)).toBe(at(120) / 1000 - 125); // twice at least a minute, plus a bucket
    expect(lookbackStartS(at(120), 600_000, 60)).toBe(at(120) / 1000 - 1260);
  });

  it('fires each rule on its story, and only there', async () => {
    const report = await short.evaluate(at(120));
    expect(report.events.every((e) => e.status === 'firing')).toBe(true);
    expect(report.events.map(key).sort()).toEqual([
      'LinkDown alfa~bravo',
      'LinkLatencyHigh bravo~echo',
      'LinkPacketLoss alfa~bravo',
      'LinkPacketLoss alfa~charlie',
      'LinkPacketLoss alfa~delta',
      'LinkThroughputLow alfa~echo',
      'ProbeClockUnsynced delta',
      'ProbeClockUnsynced echo',
      'ProbeSilent charlie',
    ]);
    const event = (k: string) => report.events.find((e) => key(e) === k)!;
    expect(event('LinkDown alfa~bravo')).toMatchObject({ activeAtMs: at(60), startsAtMs: at(90), value: 60, threshold: 30, unit: 's' });
    expect(event('LinkDown alfa~bravo').labels).toEqual({ alertname: 'LinkDown', severity: 'critical', link: 'alfa~bravo', src: 'alfa', dst: 'bravo' });
    expect(event('LinkPacketLoss alfa~delta')).toMatchObject({ activeAtMs: at(60), value: 0.2, threshold: 0.001, unit: 'ratio' });
    expect(event('LinkPacketLoss alfa~delta').annotations.summary).toBe('Packet loss 20% > 0.1% on alfa–delta');
    expect(event('LinkThroughputLow alfa~echo')).toMatchObject({ activeAtMs: at(70), startsAtMs: at(70), value: 40, threshold: 95, unit: 'Gb/s' });
    expect(event('LinkThroughputLow alfa~echo').annotations.summary).toBe('Tested throughput 40.0 Gb/s < floor 95 Gb/s on alfa–echo');
    expect(event('ProbeSilent charlie')).toMatchObject({ activeAtMs: at(56), startsAtMs: at(116), threshold: 60, unit: 's' });
    expect(event('ProbeSilent charlie').value).toBeCloseTo(64, 6);
    expect(event('ProbeSilent charlie').labels).toEqual({ alertname: 'ProbeSilent', severity: 'critical', centre: 'charlie' });
    expect(event('ProbeClockUnsynced delta')).toMatchObject({ value: 1, threshold: 0.1, unit: 'ms' });
    expect(event('ProbeClockUnsynced echo')).toMatchObject({ value: 0.5, threshold: 0.1, unit: 'ms' });
    expect(event('LinkLatencyHigh bravo~echo')).toMatchObject({ value: 9, threshold: 5, unit: 'ms' });

    // foxtrot never reported: listed as pending, with no start, and never fires.
    const snapshot = await short.snapshot(at(120));
    const foxtrot = snapshot.alerts.find((a) => a.centre === 'foxtrot')!;
    expect(foxtrot).toMatchObject({ state: 'pending', alertname: 'ProbeSilent', since: null, startsAt: null, value: null });
    expect(foxtrot.annotations.summary).toMatch(/No samples from Centre foxtrot \(foxtrot\) in the last 7d/);
    expect(snapshot.alerts.filter((a) => a.state === 'firing').map(key).sort()).toEqual(report.events.map(key).sort());
    expect(snapshot.alerts.find((a) => a.alertname === 'LinkDown')!.generatorURL).toBe('/#alfa%3Ebravo');
    expect(snapshot.alerts.find((a) => a.alertname === 'LinkThroughputLow')!.generatorURL).toBe('/#capacity%3Aalfa%3Eecho');
  });

  it('resolves when the link carries packets again, at the first good bucket', async () => {
    const report = await short.evaluate(at(140));
    expect(report.events.map((e) => [key(e), e.status, e.endsAtMs! - t0])).toEqual([
      ['LinkDown alfa~bravo', 'resolved', 130_000],
      ['LinkPacketLoss alfa~bravo', 'resolved', 130_000],
    ]);
  });

  it('records nothing new when evaluated again at the same instant', async () => {
    expect((await short.evaluate(at(140))).events).toEqual([]);
  });

  it('judges a five-minute `for` on the one-minute rollup; an alert whose rule changed labels ends', async () => {
    const report = await long.evaluate(at(140));
    const latency = report.events.filter((e) => e.alertname === 'LinkLatencyHigh');
    expect(latency.map((e) => [e.labels.severity, e.status]).sort()).toEqual([['critical', 'firing'], ['warning', 'resolved']].sort());
    const critical = latency.find((e) => e.status === 'firing')!;
    expect(critical).toMatchObject({ link: 'bravo~echo', activeAtMs: at(-420), startsAtMs: at(-120), value: 9, threshold: 5 });
    expect(critical.annotations.description).toContain('latest 60 s');
  });
});
