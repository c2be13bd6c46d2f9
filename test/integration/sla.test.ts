/**
 * Monthly SLA compliance on a real server and embedded ClickHouse, over a
 * hand-made 30-day month (43,200 minutes, Asia/Shanghai) in which every link
 * tells one story, one train per minute per direction, 10 packets each:
 *
 *   alfa~bravo     meets everything; 120 minutes of maintenance declared the day before (no data then)
 *   alfa~charlie   latency: 60 + 5 minutes over 2 ms (one direction each); 3 minutes with every packet lost
 *   alfa~delta     a day without data (coverage 0.9667); a window declared late over part of it
 *   bravo~charlie  loss: 1 of 10 packets lost one way for 700 + 300 minutes
 *   bravo~delta    capacity: one NIC at 40G for 30 minutes; one test at 94.5 Gb/s (floor 95), one failed
 *   charlie~echo   two trains only: 23:59:59.999 on the 30th and 00:00:00.000 on the 1st (local time)
 *
 * Every expected figure below is written out by hand from those stories.
 */
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import type {
  SlaAmendmentsResponse, SlaLinkDetailResponse, SlaMinutesResponse, SlaMonthResponse, SlaMonthsResponse, SlaReport, SlaScopeReport,
} from '../../api/contract.js';
import { canonicalJson, ReportSigner, verifySignedDocument } from '../../api/report-signing.js';
import { REPORT_COLUMNS } from '../../api/sla-csv.js';
import { computeMonthReport, reportChanges } from '../../api/sla-report.js';
import { SlaService } from '../../api/sla-service.js';
import { insertMaintenance, insertTrains, slaMonthOf } from '../../sql/index.js';
import { parseRfc4180 } from '../helpers/rfc4180.js';
import { insertAll, nic, recentThirtyDayMonth, slaTopology, throughput, train } from '../helpers/sla-month.js';
import { quietLogger, startTestServer, type TestServer } from '../helpers/stack.js';
import type { NicRow, ThroughputRow, TrainRow } from '../../sql/index.js';
import { generateKeyPairSync } from 'node:crypto';

const M = recentThirtyDayMonth();
const t = slaTopology();
let server: TestServer;

/** Microseconds at minute i of the month, plus `s` seconds. */
const at = (i: number, s = 30) => (M.startS + i * 60 + s) * 1e6;
const inRange = (i: number, from: number, to: number) => i >= from && i < to;

function buildMonth(): { trains: TrainRow[]; nics: NicRow[]; tests: ThroughputRow[] } {
  const trains: TrainRow[] = [];
  const nics: NicRow[] = [];
  for (let i = 0; i < M.minutes; i++) {
    // alfa~bravo: clean, except the maintenance window [10000, 10120) when nothing is measured
    if (!inRange(i, 10_000, 10_120)) {
      trains.push(train('alfa', 'bravo', at(i), 500), train('bravo', 'alfa', at(i), 500));
      nics.push(nic('alfa', 'bravo', at(i, 10), 100_000));
    }
    // alfa~charlie: a→c slow [5000, 5060); c→a slow [20000, 20005); everything lost [30000, 30003)
    if (inRange(i, 30_000, 30_003)) {
      trains.push(train('alfa', 'charlie', at(i), 500, 10, 10), train('charlie', 'alfa', at(i), 500, 10, 10));
    } else {
      trains.push(train('alfa', 'charlie', at(i), inRange(i, 5000, 5060) ? 3000 : 500));
      trains.push(train('charlie', 'alfa', at(i), inRange(i, 20_000, 20_005) ? 2500 : 520));
    }
    nics.push(nic('alfa', 'charlie', at(i, 10), 100_000));
    // alfa~delta: no trains for a day [40000, 41440)
    if (!inRange(i, 40_000, 41_440)) trains.push(train('alfa', 'delta', at(i), 700), train('delta', 'alfa', at(i), 700));
    nics.push(nic('delta', 'alfa', at(i, 10), 100_000));
    // bravo~charlie: charlie→bravo loses 1 of 10 in [1000, 1700) and [9000, 9300)
    const lossy = inRange(i, 1000, 1700) || inRange(i, 9000, 9300);
    trains.push(train('bravo', 'charlie', at(i), 600), train('charlie', 'bravo', at(i), 600, 10, lossy ? 1 : 0));
    nics.push(nic('bravo', 'charlie', at(i, 10), 100_000));
    // bravo~delta: delta's NIC renegotiated to 40G for [15000, 15030)
    trains.push(train('bravo', 'delta', at(i), 800), train('delta', 'bravo', at(i), 800));
    nics.push(nic('bravo', 'delta', at(i, 10), 100_000), nic('delta', 'bravo', at(i, 10), inRange(i, 15_000, 15_030) ? 40_000 : 100_000));
  }
  // charlie~echo: the month boundary, local time (UTC+8): 23:59:59.999 on the 30th, and 00:00:00.000 on the 1st
  const lastInstant = M.endS * 1e6 - 1000;
  const firstOfNext = M.endS * 1e6;
  trains.push(train('charlie', 'echo', lastInstant, 450), train('echo', 'charlie', lastInstant, 450));
  trains.push(train('charlie', 'echo', firstOfNext, 450), train('echo', 'charlie', firstOfNext, 450));
  const tests = [
    throughput('alfa', 'bravo', at(2000), 97.5, 96),
    throughput('bravo', 'alfa', at(30_000), 98, 99),
    throughput('alfa', 'charlie', at(2100), 97, 97),
    throughput('alfa', 'delta', at(2200), 96, 96),
    throughput('bravo', 'charlie', at(2300), 97, 97),
    throughput('bravo', 'delta', at(3000), 96, 97),
    throughput('delta', 'bravo', at(12_000), 98, 94.5),
    throughput('bravo', 'delta', at(25_000), null, null, 'unable to connect to server: Connection refused'),
  ];
  return { trains, nics, tests };
}

async function api(path: string, token: string | null, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  if (token) headers.set('authorization', `Bearer ${token}`);
  return fetch(`${server.url}${path}`, { ...init, headers });
}
async function json<T>(path: string, token: string | null = t.regulatorToken): Promise<T> {
  const response = await api(path, token);
  const text = await response.text();
  expect(response.status, text.slice(0, 300)).toBe(200);
  return JSON.parse(text) as T;
}

const link = (r: SlaReport, id: string) => r.links.find((l) => l.id === id)!;
const crit = (s: SlaScopeReport, c: string) => s.criteria.find((x) => x.criterion === c)!;

beforeAll(async () => {
  server = await startTestServer(t.topology);
  const { trains, nics, tests } = buildMonth();
  await insertAll(server.store.client, trains, nics, tests, 'sla-month');
  // Declared the day before the month: excluded.
  await insertMaintenance(server.store.client, {
    id: 'w-advance', scope: 'link', a: 'alfa', b: 'bravo', startS: M.startS + 10_000 * 60, endS: M.startS + 10_120 * 60,
    reason: 'fibre splice', declaredAtMs: (M.startS - 86_400) * 1000, declaredBy: 'noc',
  });
  // Declared an hour after it started (after the fact): listed, not excluded.
  await insertMaintenance(server.store.client, {
    id: 'w-late', scope: 'centre', a: 'delta', b: '', startS: M.startS + 40_000 * 60, endS: M.startS + 40_600 * 60,
    reason: 'power work at delta', declaredAtMs: (M.startS + 40_000 * 60 + 3600) * 1000, declaredBy: 'noc',
  });
}, 240_000);

afterAll(async () => {
  await server?.stop();
  if (server) rmSync(`${server.dataDir}-keys`, { recursive: true, force: true });
});

describe(`hand-computed month ${M.month} (43,200 minutes)`, () => {
  let report: SlaReport;
  beforeAll(async () => {
    const body = await json<SlaMonthResponse>(`/v1/sla/months/${M.month}`);
    expect(body.state).toBe('provisional');
    report = body.report;
    expect(report.period).toEqual({ start: new Date(M.startS * 1000).toISOString(), end: new Date(M.endS * 1000).toISOString(), minutes: 43_200, complete: true });
  });

  it('alfa~bravo meets everything; the advance maintenance window is excluded and listed', () => {
    const l = link(report, 'alfa~bravo');
    expect(l.verdict).toBe('met');
    expect(l.minutes).toEqual({ month: 43_200, excluded: 120, selfLoad: 0, sla: 43_080, covered: 43_080, available: 43_080 });
    expect(l.coverage).toBe(1);
    expect(crit(l, 'latency')).toMatchObject({ verdict: 'met', value: 1, target: 0.999, breachMinutes: 0, longestBreachMinutes: 0, coverage: 1, requiredCoverage: 0.99 });
    expect(crit(l, 'latency').evidence).toEqual({ assessedMinutes: 43_080, thresholdMs: 2, percentile: 0.99, worstMinuteMs: 0.5 });
    expect(crit(l, 'loss')).toMatchObject({ verdict: 'met', value: 0, target: 0.001, breachMinutes: 0, evidence: { packetsSent: 861_600, packetsLost: 0 } });
    expect(crit(l, 'availability')).toMatchObject({ verdict: 'met', value: 1, breachMinutes: 0 });
    expect(crit(l, 'capacity_provisioned')).toMatchObject({ verdict: 'met', value: 100, target: 100, breachMinutes: 0, coverage: 1, evidence: { nicMinutes: 43_080 } });
    expect(crit(l, 'capacity_tested')).toMatchObject({
      verdict: 'met', value: 96, target: 95, breachMinutes: null, coverage: null,
      evidence: { tests: 2, successfulTests: 2, failedTests: 0, testsBelowFloor: 0 },
    });
    expect(report.maintenance.map((w) => [w.id, w.target, w.declaredLate, w.excluded])).toEqual([
      ['w-advance', 'alfa~bravo', false, true],
      ['w-late', 'delta', true, false],
    ]);
  });

  it('alfa~charlie breaches latency for 65 minutes (longest 60); 3 unavailable minutes stay within the floor', () => {
    const l = link(report, 'alfa~charlie');
    expect(l.verdict).toBe('breach');
    expect(l.minutes).toEqual({ month: 43_200, excluded: 0, selfLoad: 0, sla: 43_200, covered: 43_200, available: 43_197 });
    expect(crit(l, 'latency')).toMatchObject({ verdict: 'breach', value: (43_197 - 65) / 43_197, breachMinutes: 65, longestBreachMinutes: 60 });
    expect(crit(l, 'latency').evidence.worstMinuteMs).toBe(3);
    expect(crit(l, 'loss')).toMatchObject({ verdict: 'met', value: 0, evidence: { packetsSent: 863_940, packetsLost: 0 } });
    expect(crit(l, 'availability')).toMatchObject({ verdict: 'met', value: 43_197 / 43_200, target: 0.999, breachMinutes: 3, longestBreachMinutes: 3 });
    expect(crit(l, 'capacity_provisioned').verdict).toBe('met');
    expect(crit(l, 'capacity_tested')).toMatchObject({ verdict: 'met', value: 97 });
  });

  it('alfa~delta lacks a day of data: insufficient data, never met; the late window changes nothing', () => {
    const l = link(report, 'alfa~delta');
    expect(l.verdict).toBe('insufficient_data');
    expect(l.minutes).toEqual({ month: 43_200, excluded: 0, selfLoad: 0, sla: 43_200, covered: 41_760, available: 41_760 });
    expect(l.coverage).toBe(41_760 / 43_200);
    for (const c of ['latency', 'loss', 'availability']) {
      expect(crit(l, c), c).toMatchObject({ verdict: 'insufficient_data', coverage: 41_760 / 43_200, requiredCoverage: 0.99 });
    }
    expect(crit(l, 'latency')).toMatchObject({ value: 1, breachMinutes: 0 }); // what data there is looks fine: still not "met"
    expect(crit(l, 'capacity_provisioned').verdict).toBe('met');
    expect(crit(l, 'capacity_tested')).toMatchObject({ verdict: 'met', value: 96 });
  });

  it('bravo~charlie breaches loss: 1,000 of 864,000 packets (longest run 700 minutes)', () => {
    const l = link(report, 'bravo~charlie');
    expect(l.verdict).toBe('breach');
    expect(crit(l, 'loss')).toMatchObject({
      verdict: 'breach', value: 1000 / 864_000, target: 0.001, breachMinutes: 1000, longestBreachMinutes: 700,
      evidence: { packetsSent: 864_000, packetsLost: 1000 },
    });
    expect(crit(l, 'latency')).toMatchObject({ verdict: 'met', value: 1 });
    expect(crit(l, 'availability')).toMatchObject({ verdict: 'met', value: 1 });
  });

  it('bravo~delta is under capacity: 40 Gb/s for 30 minutes, and a test at 94.5 Gb/s; the failed test is not a zero', () => {
    const l = link(report, 'bravo~delta');
    expect(l.verdict).toBe('breach');
    expect(crit(l, 'capacity_provisioned')).toMatchObject({ verdict: 'breach', value: 40, target: 100, breachMinutes: 30, longestBreachMinutes: 30, coverage: 1 });
    expect(crit(l, 'capacity_tested')).toMatchObject({
      verdict: 'breach', value: 94.5, target: 95, evidence: { tests: 3, successfulTests: 2, failedTests: 1, testsBelowFloor: 1 },
    });
    for (const c of ['latency', 'loss', 'availability']) expect(crit(l, c).verdict, c).toBe('met');
  });

  it('charlie~echo has one covered minute (the 30th, 23:59 local): insufficient data everywhere', () => {
    const l = link(report, 'charlie~echo');
    expect(l.name).toBe('Charlie, "the" – Echo 回声');
    expect(l.verdict).toBe('insufficient_data');
    expect(l.minutes).toMatchObject({ covered: 1, available: 1 });
    expect(l.criteria.map((c) => c.verdict)).toEqual(Array(5).fill('insufficient_data'));
    expect(crit(l, 'capacity_provisioned').value).toBeNull();
    expect(crit(l, 'capacity_tested')).toMatchObject({ value: null, evidence: { tests: 0 } });
  });

  it('a centre is judged on all its links, the network on every link', () => {
    const alfa = report.centres.find((c) => c.id === 'alfa')!;
    expect(alfa.verdict).toBe('breach');
    expect(alfa.links).toEqual({ total: 3, met: 1, breach: 1, insufficientData: 1 });
    expect(alfa.minutes).toEqual({ month: 129_600, excluded: 120, selfLoad: 0, sla: 129_480, covered: 128_040, available: 128_037 });
    expect(alfa.criteria.map((c) => [c.criterion, c.verdict])).toEqual([
      ['latency', 'breach'], ['loss', 'insufficient_data'], ['availability', 'insufficient_data'],
      ['capacity_provisioned', 'met'], ['capacity_tested', 'met'],
    ]);
    expect(crit(alfa, 'latency')).toMatchObject({ value: (128_037 - 65) / 128_037, breachMinutes: 65, longestBreachMinutes: 60, target: null });
    const echo = report.centres.find((c) => c.id === 'echo')!;
    expect(echo.verdict).toBe('insufficient_data');

    const total = report.total;
    expect(total.verdict).toBe('breach');
    expect(total.links).toEqual({ total: 6, met: 1, breach: 3, insufficientData: 2 });
    expect(total.minutes).toEqual({ month: 259_200, excluded: 120, selfLoad: 0, sla: 259_080, covered: 214_441, available: 214_438 });
    expect(crit(total, 'loss')).toMatchObject({ verdict: 'breach', value: 1000 / 4_288_760, evidence: { packetsSent: 4_288_760, packetsLost: 1000 } });
    expect(crit(total, 'capacity_provisioned')).toMatchObject({ verdict: 'breach', value: 40, breachMinutes: 30 });
    expect(crit(total, 'capacity_tested')).toMatchObject({ verdict: 'breach', value: 94.5, evidence: { tests: 8, successfulTests: 7, failedTests: 1, testsBelowFloor: 1 } });
    process.stdout.write(
      `SLA ${M.month}: ` + report.links.map((l) => `${l.id} ${l.verdict} [${l.criteria.map((c) => `${c.criterion}=${c.verdict}`).join(' ')}]`).join('; ') +
        `; network ${total.verdict}\n`,
    );
  });

  it('the same month from the raw trains (exact percentiles) agrees with the rollup (t-digest)', async () => {
    const raw = await json<SlaMonthResponse>(`/v1/sla/months/${M.month}?source=raw`);
    expect(raw.report.source).toBe('raw');
    expect(reportChanges(report, raw.report)).toEqual([]);
    for (const l of report.links) {
      const a = crit(l, 'latency').evidence.worstMinuteMs ?? null;
      const b = crit(link(raw.report, l.id), 'latency').evidence.worstMinuteMs ?? null;
      if (a === null || b === null) expect(a).toBe(b);
      else expect(Math.abs(a - b) / b, l.id).toBeLessThanOrEqual(0.01);
    }
  });

  it('re-running the computation gives the same figures, also after ClickHouse merges the parts', async () => {
    const once = await computeMonthReport(server.store.client, t.topology, M.month, { source: 'rollup', nowMs: Date.now() });
    const twice = await computeMonthReport(server.store.client, t.topology, M.month, { source: 'rollup', nowMs: Date.now() });
    expect(canonicalJson(twice)).toBe(canonicalJson(once));
    for (const table of ['latency_1m', 'latency_trains', 'nic_1m']) await server.store.client.command({ query: `OPTIMIZE TABLE ${table} FINAL` });
    const merged = await computeMonthReport(server.store.client, t.topology, M.month, { source: 'rollup', nowMs: Date.now() });
    expect(canonicalJson(merged)).toBe(canonicalJson(once));
  });

  it('a link shows its breach timeline, tests and minute-level evidence', async () => {
    const detail = await json<SlaLinkDetailResponse>(`/v1/sla/months/${M.month}/links/charlie/alfa`);
    const iso = (i: number) => new Date((M.startS + i * 60) * 1000).toISOString();
    expect(detail.link.id).toBe('alfa~charlie');
    expect(detail.timeline.latency).toEqual([
      { start: iso(5000), end: iso(5060), minutes: 60 },
      { start: iso(20_000), end: iso(20_005), minutes: 5 },
    ]);
    expect(detail.timeline.availability).toEqual([{ start: iso(30_000), end: iso(30_003), minutes: 3 }]);
    expect(detail.timeline.loss).toEqual([]);
    expect(detail.tests).toEqual([{ at: new Date(at(2100) / 1000).toISOString(), client: 'alfa', ok: true, error: null, abGbps: 97, baGbps: 97 }]);

    const minutes = await json<SlaMinutesResponse>(`/v1/sla/months/${M.month}/links/alfa/charlie/minutes`);
    expect(minutes.t.length).toBe(43_200);
    expect(minutes.latencyBreach.reduce((s, v) => s + v, 0)).toBe(65);
    expect([minutes.abRttMs[5000], minutes.baRttMs[5000], minutes.abRttMs[4999]]).toEqual([3, 0.52, 0.5]);
    expect([minutes.available[30_000], minutes.covered[30_000], minutes.abRttMs[30_000]]).toEqual([0, 1, null]);

    const lossy = await json<SlaLinkDetailResponse>(`/v1/sla/months/${M.month}/links/bravo/charlie`);
    expect(lossy.timeline.loss).toEqual([{ start: iso(1000), end: iso(1700), minutes: 700 }, { start: iso(9000), end: iso(9300), minutes: 300 }]);
    const slow = await json<SlaLinkDetailResponse>(`/v1/sla/months/${M.month}/links/bravo/delta`);
    expect(slow.timeline.capacity_provisioned).toEqual([{ start: iso(15_000), end: iso(15_030), minutes: 30 }]);
    expect(slow.maintenance.map((w) => w.id)).toEqual(['w-late']);
  });
});

describe('calendar months in Asia/Shanghai', () => {
  it('23:59:59.999 on the 30th is in this month, 00:00:00.000 on the 1st in the next', async () => {
    expect(await slaMonthOf(server.store.client, M.endS * 1e6 - 1000, 'Asia/Shanghai')).toBe(M.month);
    expect(await slaMonthOf(server.store.client, M.endS * 1e6, 'Asia/Shanghai')).toBe(M.next);
    // In UTC both instants are on the same day (the 30th, 15:59:59.999 and 16:00:00.000).
    expect(new Date(M.endS * 1000 - 1).toISOString().slice(0, 10)).toBe(new Date(M.endS * 1000).toISOString().slice(0, 10));

    const last = await json<SlaMinutesResponse>(`/v1/sla/months/${M.month}/links/charlie/echo/minutes`);
    expect(last.covered.indexOf(1)).toBe(43_199);
    const next = await json<SlaMonthResponse>(`/v1/sla/months/${M.next}`);
    expect(next.report.month).toBe(M.next);
    expect(link(next.report, 'charlie~echo').minutes.covered).toBe(1);
    const first = await json<SlaMinutesResponse>(`/v1/sla/months/${M.next}/links/charlie/echo/minutes`);
    expect(first.covered.indexOf(1)).toBe(0);
    expect(first.t[0]).toBe(M.endS);

    const months = await json<SlaMonthsResponse>('/v1/sla/months');
    expect(months.timezone).toBe('Asia/Shanghai');
    expect(months.months.map((m) => m.month)).toEqual(expect.arrayContaining([M.month, M.next]));
    expect(months.months.find((m) => m.month === M.month)).toMatchObject({ state: 'open', start: new Date(M.startS * 1000).toISOString(), autoFinaliseAt: null });
  });
});

describe('CSV', () => {
  it('is RFC 4180 with the documented columns, and round-trips the JSON figures', async () => {
    const response = await api(`/v1/sla/months/${M.month}?format=csv`, t.regulatorToken);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/csv/);
    const text = await response.text();
    expect(text.endsWith('\r\n')).toBe(true);
    expect(text.replace(/\r\n/g, '').includes('\n')).toBe(false); // no bare LF anywhere
    const [header, ...rows] = parseRfc4180(text);
    expect(header).toEqual([...REPORT_COLUMNS]);
    expect(rows.length).toBe((6 + 5 + 1) * 6);
    const col = (name: string) => header!.indexOf(name);
    const row = (id: string, criterion: string) => rows.find((r) => r[col('id')] === id && r[col('criterion')] === criterion)!;
    expect(row('charlie~echo', 'overall')[col('name')]).toBe('Charlie, "the" – Echo 回声');
    expect(row('alfa~charlie', 'latency')[col('rule')]).toBe('p99 RTT <= 2 ms (worst direction) in >= 99.9% of assessed minutes');
    const { report } = await json<SlaMonthResponse>(`/v1/sla/months/${M.month}`);
    for (const l of report.links) {
      expect(row(l.id, 'overall')[col('verdict')]).toBe(l.verdict);
      for (const c of l.criteria) {
        const r = row(l.id, c.criterion);
        expect(r[col('verdict')]).toBe(c.verdict);
        expect(r[col('value')] === '' ? null : Number(r[col('value')])).toBe(c.value);
        expect(r[col('breach_minutes')] === '' ? null : Number(r[col('breach_minutes')])).toBe(c.breachMinutes);
      }
    }
    const viaAccept = await api(`/v1/sla/months/${M.month}`, t.regulatorToken, { headers: { accept: 'text/csv' } });
    expect(await viaAccept.text()).toBe(text);
    const timeline = await api(`/v1/sla/months/${M.month}/links/alfa/charlie?format=csv`, t.regulatorToken);
    expect(parseRfc4180(await timeline.text())).toEqual([
      ['month', 'link', 'criterion', 'start', 'end', 'minutes'],
      [M.month, 'alfa~charlie', 'latency', new Date((M.startS + 5000 * 60) * 1000).toISOString(), new Date((M.startS + 5060 * 60) * 1000).toISOString(), '60'],
      [M.month, 'alfa~charlie', 'latency', new Date((M.startS + 20_000 * 60) * 1000).toISOString(), new Date((M.startS + 20_005 * 60) * 1000).toISOString(), '5'],
      [M.month, 'alfa~charlie', 'availability', new Date((M.startS + 30_000 * 60) * 1000).toISOString(), new Date((M.startS + 30_003 * 60) * 1000).toISOString(), '3'],
    ]);
  });
});

describe('who may do what', () => {
  it('a regulator reads reports but cannot finalise, write, or reach operator endpoints', async () => {
    const post = (path: string, token: string | null, body?: unknown) =>
      api(path, token, { method: 'POST', headers: { 'content-type': 'application/json' }, body: body === undefined ? null : JSON.stringify(body) });
    const window = { link: 'alfa~bravo', start: '2099-01-01T00:00:00Z', end: '2099-01-01T01:00:00Z', reason: 'x' };
    for (const [path, status] of [
      [`/v1/sla/months/${M.month}/finalise`, 403], [`/v1/sla/months/${M.month}/amendments`, 403], ['/v1/sla/maintenance', 403],
    ] as const) {
      const response = await post(path, t.regulatorToken, window);
      expect(response.status, path).toBe(status);
      expect(await response.json()).toMatchObject({ error: 'forbidden' });
    }
    for (const path of ['/v1/status', '/v1/capacity', '/v1/links/alfa/bravo/series', '/v1/placement?from=alfa&max_rtt_ms=2&min_gbps=10', '/metrics']) {
      expect((await api(path, t.regulatorToken)).status, path).toBe(403);
    }
    for (const path of ['/v1/sla/months', `/v1/sla/months/${M.month}`, `/v1/sla/months/${M.month}/links/alfa/bravo`, '/v1/sla/maintenance']) {
      expect((await api(path, t.regulatorToken)).status, path).toBe(200);
      expect((await api(path, null)).status, path).toBe(401);
      expect((await api(path, `${t.probeToken}-alfa`)).status, path).toBe(403);
    }
    const key = await api('/v1/sla/public-key', null);
    expect(key.status).toBe(200);
    expect(await key.text()).toMatch(/^-----BEGIN PUBLIC KEY-----/);
  });

  it('operators declare maintenance: in advance it is excluded, after its start it is "declared late"', async () => {
    const post = (body: unknown) =>
      api('/v1/sla/maintenance', t.operatorToken, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const future = new Date(Math.ceil(Date.now() / 60_000) * 60_000 + 86_400_000);
    const reason = `planned'); DROP TABLE sla_reports; -- "quoted", 回声`;
    const advance = await post({ link: 'bravo~alfa', start: future.toISOString(), end: new Date(+future + 3600_000).toISOString(), reason });
    expect(advance.status).toBe(201);
    expect(await advance.json()).toMatchObject({ scope: 'link', target: 'alfa~bravo', declaredLate: false, excluded: true, declaredBy: 'noc', reason });
    const upcoming = await json<{ windows: { reason: string }[] }>('/v1/sla/maintenance');
    expect(upcoming.windows.map((w) => w.reason)).toContain(reason); // bound, stored verbatim
    for (const bad of [`${M.month}' OR 1=1`, '2026-9', '1999-12', `${M.month}%00`]) {
      expect((await api(`/v1/sla/months/${encodeURIComponent(bad)}`, t.regulatorToken)).status, bad).toBe(400);
    }
    const past = new Date(Math.floor(Date.now() / 60_000) * 60_000 - 3600_000);
    const late = await post({ centre: 'echo', start: past.toISOString(), end: new Date(+past + 1800_000).toISOString(), reason: 'unplanned' });
    expect(late.status).toBe(201);
    expect(await late.json()).toMatchObject({ scope: 'centre', target: 'echo', declaredLate: true, excluded: false, warning: expect.stringMatching(/declared late/) });
    for (const [body, reason] of [
      [{ link: 'alfa~bravo', start: '2099-01-01T00:00:30Z', end: '2099-01-01T01:00:00Z', reason: 'x' }, /whole minutes/],
      [{ link: 'alfa~echo', start: '2099-01-01T00:00:00Z', end: '2099-01-01T01:00:00Z', reason: 'x' }, /no link/],
      [{ link: 'alfa~bravo', centre: 'alfa', start: '2099-01-01T00:00:00Z', end: '2099-01-01T01:00:00Z', reason: 'x' }, /not both/],
      [{ start: '2099-01-01T01:00:00Z', end: '2099-01-01T00:00:00Z', reason: 'x' }, /after start/],
      [{ start: '2099-01-01T00:00:00Z', end: '2099-01-20T00:00:00Z', reason: 'x' }, /at most 7 days/],
    ] as const) {
      const response = await post(body);
      expect(response.status, JSON.stringify(body)).toBe(400);
      expect(((await response.json()) as { reason: string }).reason).toMatch(reason);
    }
    const listed = await json<{ windows: { id: string; declaredLate: boolean }[] }>(`/v1/sla/maintenance?month=${M.month}`);
    expect(listed.windows.map((w) => [w.id, w.declaredLate])).toEqual([['w-advance', false], ['w-late', true]]);
  });
});

describe('finalised, signed reports and amendments', () => {
  /**
   * The month is finalised once, by whichever test needs it first, so each
   * test runs alone too (a finalised report never changes, so it cannot be
   * done again per test).
   */
  let finalising: Promise<{ status: number; document: string; publicKeyPem: string }> | undefined;
  const finalised = () =>
    (finalising ??= (async () => {
      const response = await api(`/v1/sla/months/${M.month}/finalise`, t.operatorToken, { method: 'POST' });
      const document = await response.text();
      const publicKeyPem = await (await api('/v1/sla/public-key', null)).text();
      return { status: response.status, document, publicKeyPem };
    })());

  it('an operator finalises a complete month: frozen, signed, verifiable with the published key', async () => {
    const { status, document, publicKeyPem } = await finalised();
    expect(status, document).toBe(201);
    const key = await api('/v1/sla/public-key', null);
    const result = verifySignedDocument(document, publicKeyPem);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.fingerprint).toBe(key.headers.get('x-citymesh-key-fingerprint'));
    const signed = result.report as SlaReport;
    expect(signed).toMatchObject({ month: M.month, status: 'final', source: 'rollup', finalised: { by: 'noc' } });
    expect(link(signed, 'bravo~charlie').verdict).toBe('breach');

    const download = await api(`/v1/sla/months/${M.month}/report`, t.regulatorToken);
    expect(download.headers.get('content-disposition')).toContain(`citymesh-sla-${M.month}.signed.json`);
    expect(await download.text()).toBe(document);
    const altered = document.replace('"packetsLost":1000', '"packetsLost":999');
    expect(altered).not.toBe(document);
    expect(verifySignedDocument(altered, publicKeyPem).ok).toBe(false);

    expect((await api(`/v1/sla/months/${M.month}/finalise`, t.operatorToken, { method: 'POST' })).status).toBe(409);
    const view = await json<SlaMonthResponse>(`/v1/sla/months/${M.month}`);
    expect(view.state).toBe('finalised');
    expect(view.report).toEqual(signed);
    const months = await json<SlaMonthsResponse>('/v1/sla/months');
    expect(months.months.find((m) => m.month === M.month)).toMatchObject({ state: 'finalised', finalisedBy: 'noc', amendments: 0, reportSha256: view.reportSha256 });
    // reportSha256 is what `sha256sum` says of the downloaded file.
    const file = Buffer.from(await (await api(`/v1/sla/months/${M.month}/report`, t.regulatorToken)).arrayBuffer());
    expect(createHash('sha256').update(file).digest('hex')).toBe(view.reportSha256);
  });

  it('refuses to finalise a month that has not ended', async () => {
    const current = await slaMonthOf(server.store.client, Date.now() * 1000, 'Asia/Shanghai');
    const response = await api(`/v1/sla/months/${current}/finalise`, t.operatorToken, { method: 'POST' });
    expect(response.status).toBe(409);
    expect(await response.json()).toMatchObject({ error: 'month_not_over' });
    // The service itself (which the cron job runs too) refuses with a domain error; only the route makes it a 409.
    await expect(server.sla.finalise(current, 'cron')).rejects.toMatchObject({ name: 'SlaRefusal', reason: 'month_not_over' });
  });

  it('a late sample never changes the signed report: it is exposed, then recorded as a signed amendment', async () => {
    const { document, publicKeyPem } = await finalised();
    // One minute of alfa~delta's missing day arrives after finalisation.
    await insertTrains(server.store.client, [train('alfa', 'delta', at(40_500), 700), train('delta', 'alfa', at(40_500), 700)], 'late-sample');
    const view = await json<SlaMonthResponse>(`/v1/sla/months/${M.month}`);
    expect(view.state).toBe('finalised');
    expect(link(view.report, 'alfa~delta').minutes.covered).toBe(41_760);

    const pending = await json<SlaAmendmentsResponse>(`/v1/sla/months/${M.month}/amendments`);
    expect(pending.amendments).toEqual([]);
    expect(pending.current.differs).toBe(true);
    expect(pending.current.changes).toEqual(expect.arrayContaining([
      { path: 'link[alfa~delta].minutes.covered', from: 41_760, to: 41_761 },
      { path: 'network[network].minutes.covered', from: 214_441, to: 214_442 },
    ]));

    // The hourly job finds it (operators can also POST .../amendments).
    expect(await server.sla.runScheduled()).toEqual({ finalised: [], amended: [M.month] });
    const amendment = await api(`/v1/sla/months/${M.month}/amendments/1`, t.regulatorToken);
    const signed = verifySignedDocument(await amendment.text(), publicKeyPem);
    expect(signed.ok).toBe(true);
    if (signed.ok) {
      expect(signed.report).toMatchObject({ format: 'citymesh-sla-amendment/1', month: M.month, seq: 1, amends: { seq: 0, reportSha256: view.reportSha256 }, detectedBy: 'cron' });
    }
    const after = await json<SlaAmendmentsResponse>(`/v1/sla/months/${M.month}/amendments`);
    expect(after.amendments).toMatchObject([{ seq: 1, by: 'cron', changes: pending.current.changes.length }]);
    expect(after.current).toEqual({ differs: false, changes: [] });
    expect(await (await api(`/v1/sla/months/${M.month}/report`, t.regulatorToken)).text()).toBe(document);
    expect((await json<SlaMonthsResponse>('/v1/sla/months')).months.find((m) => m.month === M.month)!.amendments).toBe(1);
    const again = await api(`/v1/sla/months/${M.month}/amendments`, t.operatorToken, { method: 'POST' });
    expect(await again.json()).toMatchObject({ recorded: false });
    expect(await server.sla.runScheduled()).toEqual({ finalised: [], amended: [] });
  });

  it('the cron job finalises a month only once its grace period has passed', async () => {
    const nextEntry = (await json<SlaMonthsResponse>('/v1/sla/months')).months.find((m) => m.month === M.next)!;
    expect(nextEntry.start).toBe(new Date(M.endS * 1000).toISOString());
    let clock = Date.parse(nextEntry.end) + 71 * 3600_000;
    const job = new SlaService({
      store: server.store, topology: { ...t.topology, sla: { ...t.topology.sla, autoFinalise: true } },
      signer: new ReportSigner(generateKeyPairSync('ed25519').privateKey), logger: quietLogger, now: () => clock,
    });
    expect((await job.runScheduled()).finalised).toEqual([]);
    clock = Date.parse(nextEntry.end) + 73 * 3600_000;
    expect((await job.runScheduled()).finalised).toEqual([M.next]);
    const stored = await job.documents(M.next);
    expect(stored[0]!.figures).toMatchObject({ month: M.next, status: 'final', finalised: { by: 'cron' } });
    expect(link(stored[0]!.figures, 'charlie~echo').minutes.covered).toBe(1);
  });
});
