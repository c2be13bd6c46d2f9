/**
 * Our own load is not the network's fault: a real throughput test (native
 * engine, real TCP on loopback) driven through a running stack loads its link;
 * the window it loaded is known (planned and finished by the coordinator,
 * measured by the probe), shown as an annotation, its minutes are excluded
 * from the SLA as "self load", and the alert rules' query leaves its trains
 * out while it still judges a link that was not under test. The network
 * metrics leave them out too: the collector marked them as it stored them
 * (the counters and histogram of /metrics/network count them apart, as
 * citymesh_self_load_packets_*), and the live window and verdict judge
 * without them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AnnotationsResponse, SelfLoadAnnotation } from '../../api/contract.js';
import { computeMonthReport, linkInput, monthPeriod } from '../../api/sla-report.js';
import { selfLoadGuardMs, type TestStatus } from '../../collector/index.js';
import type { ProbeAgent } from '../../probes/agent.js';
import { alertLinkRuns, latestPathStatus, pathWindows, slaLinkMinutes, slaMonthOf, trainsBetween } from '../../sql/index.js';
import { capacityOverrides, getJson, startAgents, startTestServer, testTopology, waitFor, type TestServer } from '../helpers/stack.js';

const throughputPort = 30_000 + Math.floor(Math.random() * 10_000);
const capacity = capacityOverrides(throughputPort);
// Trains every second, and a test long enough to carry several of them.
const topo = testTopology(['alfa', 'bravo', 'charlie'], '127.0.91', {
  ...capacity,
  schedule: '* * * * * *',
  probingExtra: capacity.probingExtra!.replace('seconds: 1\n', 'seconds: 3\n'),
});
const guardMs = selfLoadGuardMs(topo.topology.probing);

let server: TestServer;
const agents: ProbeAgent[] = [];

beforeAll(async () => {
  server = await startTestServer(topo.topology);
  agents.push(...(await startAgents(server, topo, ['alfa', 'bravo', 'charlie'])));
}, 120_000);
afterAll(async () => {
  await Promise.all(agents.map((a) => a.stop()));
  await server?.stop();
}, 120_000);

describe('a throughput test marks the link it loads', () => {
  it('is annotated, excluded from the SLA as self load, left out of the latency and loss alert queries and of the network metrics', async () => {
    const started = await fetch(`${server.url}/v1/links/alfa/bravo/throughput-tests`, {
      method: 'POST', headers: { authorization: `Bearer ${topo.operatorToken}` },
    });
    expect(started.status).toBe(202);
    const { testId } = (await started.json()) as TestStatus;
    const done = await waitFor('the test to finish', async () => {
      const s = (await getJson<TestStatus>(`${server.url}/v1/throughput-tests/${testId}`, topo.operatorToken)).body;
      return s.state !== 'queued' && s.state !== 'running' ? s : undefined;
    }, 60_000);
    expect(done, JSON.stringify(done)).toMatchObject({ state: 'done', error: null });

    // Known from all three sources once the probe's result is stored.
    const window = await waitFor('the load window from all three sources', async () => {
      const { body } = await getJson<AnnotationsResponse>(`${server.url}/v1/links/alfa/bravo/annotations`, topo.operatorToken);
      const a = body.annotations.find((x): x is SelfLoadAnnotation => x.kind === 'self_load' && x.testId === testId);
      return a && a.sources.length === 3 ? a : undefined;
    });
    expect(window.sources).toEqual(['finished', 'measured', 'planned']);
    expect(window.guardMs).toBe(guardMs);
    expect(window.tEnd).toBeGreaterThan(window.t);
    // The other links carry no window.
    const other = (await getJson<AnnotationsResponse>(`${server.url}/v1/links/bravo/charlie/annotations`, topo.operatorToken)).body;
    expect(other.annotations.filter((x) => x.kind === 'self_load')).toEqual([]);

    const fromMs = window.t * 1000 - guardMs;
    const toMs = window.tEnd * 1000 + guardMs;
    const client = server.store.client;
    // Trains of both directions of the tested link and of a link not under test ran during the window, and
    // after it, within the span the unguarded alert query below reads (from the first whole second after the window).
    const afterFromUs = (Math.floor(toMs / 1000) + 1) * 1e6;
    await waitFor('trains stored past the window in every direction', async () => {
      const counts = await Promise.all([['alfa', 'bravo'], ['bravo', 'alfa'], ['bravo', 'charlie'], ['charlie', 'bravo']].map(async ([src, dst]) =>
        (await trainsBetween(client, { src: src!, dst: dst!, fromUs: afterFromUs, toUs: (toMs + 60_000) * 1000, limit: 10 })).length));
      return counts.every((n) => n > 0);
    }, 90_000);
    for (const [src, dst] of [['alfa', 'bravo'], ['bravo', 'alfa'], ['bravo', 'charlie']]) {
      const during = await trainsBetween(client, { src: src!, dst: dst!, fromUs: fromMs * 1000, toUs: toMs * 1000, limit: 1000 });
      expect(during.length, `${src} → ${dst} trains in the window`).toBeGreaterThan(0);
    }

    // The alert rules' query, asked at the window's end with thresholds every bucket with data breaches:
    // the tested link has nothing left to judge in the window, the other link breaches.
    const fromS = Math.floor(fromMs / 1000);
    for (const kind of ['latency', 'loss'] as const) {
      const runs = await alertLinkRuns(client, {
        kind, engine: 'stamp', stepS: 1, source: 'raw', fromS, nowMs: toMs, loadGuardMs: guardMs,
        links: [{ a: 'alfa', b: 'bravo', threshold: -1, percentile: 0.99 }, { a: 'bravo', b: 'charlie', threshold: -1, percentile: 0.99 }],
      });
      expect(runs.map((r) => `${r.a}~${r.b}:${r.active}`), kind).toEqual(['bravo~charlie:true']);
      // Without the windows (no guard and none stored would be the same) the tested link would be judged too.
      const unguarded = await alertLinkRuns(client, {
        kind, engine: 'stamp', stepS: 1, source: 'raw', fromS: Math.floor(toMs / 1000) + 1, nowMs: toMs + 60_000, loadGuardMs: guardMs,
        links: [{ a: 'alfa', b: 'bravo', threshold: -1, percentile: 0.99 }],
      });
      expect(unguarded.map((r) => `${r.a}~${r.b}:${r.active}`), `${kind} after the window`).toEqual(['alfa~bravo:true']);
    }

    // The SLA: the window's minutes are excluded as self load, listed in the month's report. Computed
    // as the API does, with the clock past the window's last minute (the API counts whole minutes only).
    const firstMinute = Math.floor(fromMs / 60_000) * 60;
    const lastMinute = Math.floor((toMs - 1) / 60_000) * 60;
    const nowMs = (lastMinute + 60) * 1000;
    const month = await slaMonthOf(client, window.t * 1e6, topo.topology.sla.timezone);
    const l = topo.topology.linkBetween('alfa', 'bravo')!;
    const period = await monthPeriod(client, topo.topology, month, nowMs);
    // The link's trains per minute as stored, counted before and after the SLA's read (the probes still run,
    // so a minute's count may only grow between the two). A guarded window can reach into a minute before the
    // probes' first train; such a minute is excluded all the same and carries none.
    const storedPerMinute = async (): Promise<Map<number, number>> => {
      const rows = await (await client.query({
        query: `SELECT toUInt32(toStartOfMinute(ts)) AS minute, count() AS trains FROM latency_trains
                WHERE engine = 'stamp' AND ((src = 'alfa' AND dst = 'bravo') OR (src = 'bravo' AND dst = 'alfa'))
                  AND ts >= fromUnixTimestamp64Milli({from:Int64}, 'UTC') AND ts < fromUnixTimestamp64Milli({to:Int64}, 'UTC')
                GROUP BY minute`,
        query_params: { from: firstMinute * 1000, to: (lastMinute + 60) * 1000 },
        format: 'JSONEachRow',
      })).json<{ minute: number; trains: string }>();
      return new Map(rows.map((r) => [Number(r.minute), Number(r.trains)]));
    };
    const storedBefore = await storedPerMinute();
    const minutes = await slaLinkMinutes(client, {
      startS: period.startS, endS: period.effectiveEndS, engine: 'stamp', source: 'rollup', links: [linkInput(l)], loadGuardMs: guardMs,
    });
    const storedAfter = await storedPerMinute();
    const loaded = minutes.t.filter((_, i) => minutes.selfLoad[i] === 1);
    expect(loaded[0]).toBe(firstMinute);
    expect(loaded[loaded.length - 1]).toBe(lastMinute);
    let loadedTrains = 0;
    for (const t of loaded) {
      const i = minutes.t.indexOf(t);
      expect(minutes.excluded[i]).toBe(1);
      expect(minutes.covered[i]).toBe(0);
      expect(minutes.latencyBreach[i]).toBe(0);
      const trains = minutes.abTrains[i]! + minutes.baTrains[i]!;
      expect(trains, `the excluded minute ${t} counts the trains stored in it`).toBeGreaterThanOrEqual(storedBefore.get(t) ?? 0);
      expect(trains, `the excluded minute ${t} counts the trains stored in it`).toBeLessThanOrEqual(storedAfter.get(t) ?? 0);
      loadedTrains += trains;
    }
    expect(loadedTrains, 'the excluded minutes did carry trains').toBeGreaterThan(0);
    const report = await computeMonthReport(client, topo.topology, month, { source: 'rollup', nowMs });
    expect(report.selfLoad?.map((w) => [w.testId, w.link, w.minutes])).toEqual([[testId, 'alfa~bravo', loaded.length]]);
    const ab = report.links.find((x) => x.id === 'alfa~bravo')!;
    expect(ab.minutes.selfLoad).toBe(loaded.length);
    expect(ab.minutes.excluded).toBe(loaded.length);
    expect(report.links.find((x) => x.id === 'bravo~charlie')!.minutes.selfLoad).toBe(0);
    // And the regulator's minute CSV says which minutes were ours.
    const csv = await fetch(`${server.url}/v1/sla/months/${month}/links/alfa/bravo/minutes?format=csv`, { headers: { authorization: `Bearer ${topo.regulatorToken}` } });
    expect(csv.status).toBe(200);
    expect((await csv.text()).split('\r\n')[0]!.split(',').at(-1)).toBe('self_load');

    // The network metrics. The probes stop first, so what is stored and what a scrape shows can be compared.
    await Promise.all(agents.map((a) => a.stop()));
    const stored = await (await client.query({
      query: `SELECT src, dst, engine, toUnixTimestamp64Milli(ts) AS ts_ms, self_load, sent, lost, length(rtts_us) AS packets
              FROM latency_trains ORDER BY ts`,
      format: 'JSONEachRow',
    })).json<{ src: string; dst: string; engine: string; ts_ms: string; self_load: number; sent: number; lost: number; packets: number }>();
    const onLink = (t: { src: string; dst: string }) => [t.src, t.dst].sort().join('~') === 'alfa~bravo';
    const inside = (t: { ts_ms: string }, from: number, to: number) => Number(t.ts_ms) >= from && Number(t.ts_ms) < to;
    // Marked as they were stored: every train that began while the test ran (the planned window was stored
    // before the probe was asked to start), none outside the guarded window, none on the other links.
    const during = stored.filter((t) => onLink(t) && inside(t, window.t * 1000, window.tEnd * 1000));
    expect(during.length, 'trains measured during the test').toBeGreaterThan(0);
    expect(during.filter((t) => t.self_load !== 1)).toEqual([]);
    expect(stored.filter((t) => t.self_load === 1 && !(onLink(t) && inside(t, fromMs, toMs)))).toEqual([]);

    // The scrape: counters and the histogram's count are the unmarked trains', our own load apart.
    const scraped = await fetch(`${server.url}/metrics/network?format=prometheus`, { headers: { authorization: `Bearer ${topo.operatorToken}` } });
    expect(scraped.status).toBe(200);
    const text = await scraped.text();
    const sample = (name: string, src: string, dst: string, engine: string): number => {
      const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(`src="${src}",dst="${dst}",engine="${engine}"}`));
      expect(line, `${name} ${src}>${dst} ${engine}`).toBeDefined();
      return Number(line!.slice(line!.lastIndexOf(' ') + 1));
    };
    const directions = [...new Set(stored.map((t) => `${t.src}>${t.dst}>${t.engine}`))];
    for (const d of directions) {
      const [src, dst, engine] = d.split('>') as [string, string, string];
      const mine = stored.filter((t) => t.src === src && t.dst === dst && t.engine === engine);
      const sum = (rows: typeof mine, f: 'sent' | 'lost' | 'packets') => rows.reduce((n, t) => n + Number(t[f]), 0);
      const network = mine.filter((t) => t.self_load === 0);
      const ours = mine.filter((t) => t.self_load === 1);
      expect(sample('citymesh_packets_sent_total', src, dst, engine), `${d} sent`).toBe(sum(network, 'sent'));
      expect(sample('citymesh_packets_lost_total', src, dst, engine), `${d} lost`).toBe(sum(network, 'lost'));
      expect(sample('citymesh_rtt_seconds_count', src, dst, engine), `${d} RTTs`).toBe(sum(network, 'packets'));
      expect(sample('citymesh_self_load_packets_sent_total', src, dst, engine), `${d} our own load`).toBe(sum(ours, 'sent'));
      if (onLink({ src, dst }) && engine === 'stamp') expect(sum(ours, 'sent'), `${d}: packets of ours`).toBeGreaterThan(0);
    }

    // The live window and verdict judge at query time, by the guarded window: with the clock at the
    // window's end, the tested link's window holds only the trains outside it; the other link holds all.
    const windows = await pathWindows(client, 60, toMs, guardMs);
    const statuses = await latestPathStatus(client, 3600, guardMs);
    for (const [src, dst] of [['alfa', 'bravo'], ['bravo', 'alfa'], ['bravo', 'charlie']] as const) {
      const mine = stored.filter((t) => t.src === src && t.dst === dst && t.engine === 'stamp');
      const lastMinute = mine.filter((t) => inside(t, toMs - 60_000 + 1, toMs + 1));
      const judged = lastMinute.filter((t) => !(onLink(t) && inside(t, fromMs, toMs)));
      const w = windows.find((x) => x.src === src && x.dst === dst && x.engine === 'stamp')!;
      expect(w.rttCount, `${src}>${dst} window packets`).toBe(judged.reduce((n, t) => n + Number(t.packets), 0));
      expect(w.trains, `${src}>${dst} window trains`).toBe(judged.length);
      const status = statuses.find((x) => x.src === src && x.dst === dst && x.engine === 'stamp')!;
      const ourTrains = mine.filter((t) => onLink(t) && inside(t, fromMs, toMs)).length;
      expect([status.trains, status.selfLoadTrains], `${src}>${dst} trains judged and left out by the status`).toEqual([mine.length - ourTrains, ourTrains]);
    }
  }, 180_000);
});
