/**
 * Network metrics scraped by the real Prometheus (Debian's), started on
 * 127.0.0.1 with a temporary data directory. Trains with known RTTs go
 * through the real ingest path (POST /v1/ingest with each centre's token);
 * PromQL over the histograms citymesh publishes must give each link's p99
 * within the histogram's bucket error of citymesh's own exact figure, in
 * both exposition formats (OpenMetrics, which Prometheus asks for first, and
 * text 0.0.4, forced with ?format=prometheus), and the counters must equal
 * what was stored.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RTT_BUCKET_BOUNDS_US } from '../../sql/index.js';
import type { StatusResponse } from '../../api/contract.js';
import { Rng } from '../helpers/fuzz.js';
import { dashboardQueries } from '../helpers/grafana.js';
import { promQuery, missingPrometheus, startPrometheus, type RunningTool } from '../helpers/prometheus.js';
import { removeTempDirs } from '../helpers/processes.js';
import { skipReason } from '../helpers/requirements.js';
import { getJson, startTestServer, testTopology, waitFor, type TestServer, ingestFetch } from '../helpers/stack.js';

const skip = skipReason(missingPrometheus());
const topo = testTopology(['alfa', 'bravo', 'charlie'], '127.0.75');
/** Base RTT per link, µs: metro distances of the Shanghai plan (Pudong–Xuhui, Jinshan–Songjiang, Lingang–Songjiang). */
const BASE_US: Record<string, number> = { 'alfa~bravo': 230, 'alfa~charlie': 510, 'bravo~charlie': 1020 };
const TRAINS = 30;
const PACKETS = 20;

interface Direction {
  src: string;
  dst: string;
  link: string;
  rtts: number[];
  sent: number;
  lost: number;
}

const directions: Direction[] = [];
let server: TestServer;
let prometheus: RunningTool | null = null;
const batches: { src: string; body: string }[] = [];
const jobs = ['citymesh-network', 'citymesh-network-text'];
let status: StatusResponse;
let observedAtS = 0;

function makeTrains(nowMs: number): void {
  const rng = new Rng(17); // deterministic, so a failure can be replayed
  const next = () => rng.next();
  const normal = () => Math.sqrt(-2 * Math.log(1 - next())) * Math.cos(2 * Math.PI * next());
  for (const [link, base] of Object.entries(BASE_US)) {
    const [a, b] = link.split('~') as [string, string];
    for (const [src, dst] of [[a, b], [b, a]] as const) {
      const d: Direction = { src, dst, link, rtts: [], sent: 0, lost: 0 };
      const samples = [];
      for (let t = 0; t < TRAINS; t++) {
        const lost = t % 7 === 3 ? 1 : 0;
        const rtts = Array.from({ length: PACKETS - lost }, () => {
          // Log-normal spread around the base, and a 2 % tail of queueing up to +1.5 ms.
          const tail = next() < 0.02 ? next() * 1500 : 0;
          return Math.fround(Math.round((base * Math.exp(0.08 * normal()) + tail) * 10) / 10);
        });
        d.rtts.push(...rtts);
        d.sent += PACKETS;
        d.lost += lost;
        const sorted = [...rtts].sort((x, y) => x - y);
        samples.push({
          trainId: `prom-${src}-${dst}-${t}-${nowMs}`, dst, engine: 'stamp', startedAtUs: (nowMs - 20_000 + t * 500) * 1000, flow: t % 2,
          srcPort: 40000 + (t % 2), dscp: 46, sent: PACKETS, received: rtts.length, lost, duplicated: 0, reordered: 0,
          rttMinUs: sorted[0], rttMedianUs: sorted[Math.floor(sorted.length / 2)], rttP99Us: sorted[sorted.length - 1], rttMaxUs: sorted[sorted.length - 1],
          jitterUs: 12.5, rttsUs: rtts, synced: false, errorEstimateUs: 1000, fwdUs: [], revUs: [],
          // alfa's probe says how it stamped; the others are too old to say (unknown).
          ...(src === 'alfa' ? { senderTimestamping: 'kernel', reflectorTimestamping: 'hardware' } : {}),
        });
      }
      directions.push(d);
      // alfa also reports its NIC towards bravo and a throughput test it ran against bravo.
      const capacity = src === 'alfa' && dst === 'bravo' ? {
        nic: [{
          sampleId: `nic-alfa-${nowMs}`, interface: 'ens1f0', peer: 'bravo', atUs: (nowMs - 5000) * 1000, intervalS: 10, speedMbps: 100_000, operState: 'up',
          reset: false, rxBps: 30e9, txBps: 42e9, rxPps: 1e6, txPps: 1e6, rxErrorsPs: 0, txErrorsPs: 0, rxDropsPs: 0, txDropsPs: 0, utilisation: 0.42,
        }],
        throughput: [{
          testId: `tp-alfa-${nowMs}`, dst: 'bravo', trigger: 'schedule', startedAtUs: (nowMs - 15_000) * 1000, engine: 'iperf3', engineVersion: '3.12', ok: true,
          error: null, direction: 'bidir', streams: 8, seconds: 10, forwardBps: 96e9, reverseBps: 94.5e9, retransmits: 0, cpuLocalPct: 40, cpuRemotePct: 38,
        }],
      } : {};
      batches.push({ src, body: JSON.stringify({ type: 'batch', batchId: `prom-${src}-${dst}-${nowMs}`, samples, ...capacity }) });
    }
  }
}

async function ingest(batch: { src: string; body: string }): Promise<number> {
  const response = await ingestFetch(`${server.url}/v1/ingest`, {
    method: 'POST', headers: { authorization: `Bearer ${topo.tokens[batch.src]}`, 'content-type': 'application/json' }, body: batch.body,
  });
  expect(response.status, await response.clone().text()).toBe(200);
  return ((await response.json()) as { stored: number }).stored;
}

async function exposition(format: 'prometheus' | 'openmetrics' | null, accept?: string): Promise<Response> {
  const headers: Record<string, string> = { authorization: `Bearer ${topo.operatorToken}` };
  if (accept) headers.accept = accept;
  return fetch(`${server.url}/metrics/network${format ? `?format=${format}` : ''}`, { headers });
}

/** The [lowest, highest] value histogram_quantile may return for quantile q of `values`: the bucket(s) of the ranks PromQL and ClickHouse pick. */
function bucketRange(values: number[], q: number): [number, number] {
  const sorted = [...values].sort((x, y) => x - y);
  const n = sorted.length;
  const ranks = [Math.max(0, Math.ceil(q * n) - 1), Math.min(n - 1, Math.floor(q * n))];
  const bucket = (v: number) => RTT_BUCKET_BOUNDS_US.findIndex((b) => v <= b);
  const lo = Math.min(...ranks.map((r) => bucket(sorted[r]!)));
  const hi = Math.max(...ranks.map((r) => bucket(sorted[r]!)));
  return [(lo === 0 ? 0 : RTT_BUCKET_BOUNDS_US[lo - 1]!) / 1e6, RTT_BUCKET_BOUNDS_US[hi]! / 1e6];
}

function exactQuantileUs(values: number[], q: number): number {
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

beforeAll(async () => {
  if (skip) return;
  server = await startTestServer(topo.topology);
  prometheus = await startPrometheus(`global:
  scrape_interval: 2s
  scrape_timeout: 2s
  evaluation_interval: 2s
rule_files: ['$DIR/citymesh-rules.yml']
scrape_configs:
  - job_name: citymesh-network
    metrics_path: /metrics/network
    authorization: { credentials: ${topo.operatorToken} }
    static_configs: [{ targets: ['${server.url.replace('http://', '')}'] }]
  - job_name: citymesh-network-text
    metrics_path: /metrics/network
    params: { format: [prometheus] }
    authorization: { credentials: ${topo.operatorToken} }
    static_configs: [{ targets: ['${server.url.replace('http://', '')}'] }]
`, { 'citymesh-rules.yml': readFileSync('deploy/prometheus/citymesh-rules.yml', 'utf8') });
  // A scrape before any train, so increase() starts from zero.
  for (const job of jobs) {
    await waitFor(`${job}: a first scrape`, async () => (await promQuery(prometheus!, `citymesh_packets_sent_total{job="${job}"}`)).length === 6);
  }
  makeTrains(Date.now()); // measured over the last 20 s, so the 60 s window holds them all for a while
  for (const batch of batches) await ingest(batch);
  // A replayed batch is dropped by its deduplication token: the totals do not move.
  await ingest(batches[0]!);
  const storedMs = Date.now();
  const received = directions.reduce((n, d) => n + d.rtts.length, 0);
  for (const job of jobs) {
    await waitFor(`${job}: the trains in a scrape`, async () =>
      Number((await promQuery(prometheus!, `sum(citymesh_rtt_seconds_count{job="${job}"})`))[0]?.value[1] ?? 0) === received
      && (job !== jobs[0] || Number((await promQuery(prometheus!, `sum(citymesh_rtt_window_seconds_gcount{job="${job}"})`))[0]?.value[1] ?? 0) === received), 60_000);
  }
  // citymesh's own figures and the PromQL instant, both while every train is inside the 60 s window.
  observedAtS = Date.now() / 1000;
  // /v1/status judges whole seconds a little behind the clock: the one judged after the trains were stored.
  status = await waitFor('a status judged after the trains were stored', async () => {
    const { body } = await getJson<StatusResponse>(`${server.url}/v1/status`, topo.operatorToken);
    return Date.parse(body.asOf) >= storedMs ? body : undefined;
  });
}, 150_000);

afterAll(async () => {
  await prometheus?.stop();
  await server?.stop();
  removeTempDirs();
});

describe.skipIf(skip)('network metrics in Prometheus', () => {
  it('serves text 0.0.4 that promtool accepts, OpenMetrics on request, operators only', async () => {
    expect((await fetch(`${server.url}/metrics/network`)).status).toBe(401);
    const bad = await exposition(null);
    expect(bad.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
    const wrong = await fetch(`${server.url}/metrics/network?format=json`, { headers: { authorization: `Bearer ${topo.operatorToken}` } });
    expect(wrong.status).toBe(400);
    expect(await wrong.json()).toMatchObject({ error: 'bad_request', reason: expect.stringContaining('format: "json"') });

    const text = await (await exposition('prometheus')).text();
    const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    expect(check.stdout + check.stderr, 'promtool check metrics').toBe('');
    expect(check.status).toBe(0);
    // Every family has help text and a type.
    const helped = new Set([...text.matchAll(/^# HELP (\S+) \S/gm)].map((m) => m[1]));
    const typed = [...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => m[1]);
    expect(typed.filter((name) => !helped.has(name))).toEqual([]);

    const om = await exposition(null, 'application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5');
    expect(om.headers.get('content-type')).toBe('application/openmetrics-text; version=1.0.0; charset=utf-8');
    const omText = await om.text();
    expect(omText.endsWith('# EOF\n')).toBe(true);
    expect(omText).toMatch(/^# TYPE citymesh_rtt_window_seconds gaugehistogram$/m);
    expect(omText).toMatch(/^# TYPE citymesh_packets_sent counter$/m);
    expect(omText).toMatch(/^citymesh_packets_sent_total\{link="alfa~bravo",src="alfa",dst="bravo",engine="stamp"\} \d+$/m);
  });

  it('gives PromQL p99 within the bucket error of citymesh\'s own p99, counters equal to what was stored', async () => {
    const figures: string[] = [];
    for (const d of directions) {
      const sel = `src="${d.src}",dst="${d.dst}",engine="stamp"`;
      const own = status.paths.find((p) => p.src === d.src && p.dst === d.dst && p.engine === 'stamp')!;
      // citymesh's own p99 is the exact quantile over every packet of the window.
      expect(own.rttP99Ms! * 1000).toBeCloseTo(exactQuantileUs(d.rtts, 0.99), 1);
      const [lo, hi] = bucketRange(d.rtts, 0.99);
      for (const job of jobs) {
        // The window's gauge histogram exists in OpenMetrics only (0.0.4 has no such type).
        const windowP99 = job === jobs[0]
          ? Number((await promQuery(prometheus!, `histogram_quantile(0.99, citymesh_rtt_window_seconds_bucket{job="${job}",${sel}})`, observedAtS))[0]!.value[1])
          : null;
        const rateP99 = Number((await promQuery(prometheus!, `histogram_quantile(0.99, sum by (le) (increase(citymesh_rtt_seconds_bucket{job="${job}",${sel}}[5m])))`))[0]!.value[1]);
        for (const [what, v] of [['window', windowP99], ['increase', rateP99]] as const) {
          if (v === null) continue;
          expect(v, `${job} ${what} p99 ${d.src}>${d.dst}`).toBeGreaterThanOrEqual(lo);
          expect(v, `${job} ${what} p99 ${d.src}>${d.dst}`).toBeLessThanOrEqual(hi);
        }
        if (job === jobs[0]) figures.push(`${d.src}>${d.dst}: citymesh p99 ${(own.rttP99Ms! * 1000).toFixed(1)} µs, PromQL window ${(windowP99! * 1e6).toFixed(1)} µs, increase ${(rateP99 * 1e6).toFixed(1)} µs, bucket [${lo * 1e6}, ${hi * 1e6}] µs`);
      }
      for (const job of jobs) {
        const one = async (expr: string) => Number((await promQuery(prometheus!, expr))[0]!.value[1]);
        expect(await one(`citymesh_packets_sent_total{job="${job}",${sel}}`)).toBe(d.sent);
        expect(await one(`citymesh_packets_lost_total{job="${job}",${sel}}`)).toBe(d.lost);
        expect(await one(`citymesh_packets_received_total{job="${job}",${sel}}`)).toBe(d.sent - d.lost);
        expect(await one(`citymesh_jitter_seconds{job="${job}",${sel}}`)).toBeCloseTo(12.5e-6, 9);
      }
    }
    // Every RTT here is far below the last finite bound (2.5 s), so in every scrape taken since
    // the trains went in, +Inf (the count) must equal that bucket: a count read apart from its
    // buckets (one view of an INSERT seen, the other not yet) is what PromQL reads as packets
    // above 2.5 s, a p99 of 2.5 s.
    for (const job of jobs) {
      const excess = await promQuery(prometheus!, `max(max_over_time((sum by (src, dst, engine) (citymesh_rtt_seconds_bucket{job="${job}",le="+Inf"}) - sum by (src, dst, engine) (citymesh_rtt_seconds_bucket{job="${job}",le="2.5"}))[5m:1s]))`);
      expect(Number(excess[0]?.value[1] ?? NaN), `${job}: packets counted above 2.5 s in some scrape`).toBe(0);
    }
    // Every link has exactly one live state, and it is the one /v1/status shows for its worse direction.
    const states = await promQuery(prometheus!, 'citymesh_link_state{job="citymesh-network"} == 1');
    expect(states.map((s) => [s.metric.link, s.metric.state]).sort()).toEqual(
      Object.keys(BASE_US).map((link) => {
        const [a, b] = link.split('~');
        const rank = ['ok', 'warn', 'stale', 'breach'];
        const both = status.paths.filter((p) => p.engine === 'stamp' && [`${a}>${b}`, `${b}>${a}`].includes(`${p.src}>${p.dst}`)).map((p) => p.state);
        return [link, both.sort((x, y) => rank.indexOf(y) - rank.indexOf(x))[0]];
      }).sort(),
    );
    expect((await promQuery(prometheus!, 'sum(citymesh_probe_up{job="citymesh-network"})'))[0]!.value[1]).toBe('3');
    // The timestamping of each end of each direction: one info series per end, its mode as a label.
    for (const job of jobs) {
      const modes = await promQuery(prometheus!, `citymesh_probe_timestamping_info{job="${job}",engine="stamp"}`, observedAtS);
      expect(modes.map((m) => `${m.metric.src}>${m.metric.dst}/${m.metric.end}=${m.metric.mode}:${m.value[1]}`).sort(), job).toEqual(
        directions.flatMap((d) => ['sender', 'reflector'].map((end) =>
          `${d.src}>${d.dst}/${end}=${d.src === 'alfa' ? (end === 'sender' ? 'kernel' : 'hardware') : 'unknown'}:1`)).sort());
    }
    // Nothing here ran a throughput test: nothing was left out as our own load.
    expect((await promQuery(prometheus!, 'sum(citymesh_self_load_packets_sent_total{job="citymesh-network"})'))[0]!.value[1]).toBe('0');
    const capacity = async (expr: string) => (await promQuery(prometheus!, expr)).map((r) => [r.metric.src ?? r.metric.centre, Number(r.value[1])]).sort();
    expect(await capacity('citymesh_link_tested_throughput_bytes_per_second{job="citymesh-network"}')).toEqual([['alfa', 96e9 / 8], ['bravo', 94.5e9 / 8]]);
    expect(await capacity('citymesh_interface_utilisation_ratio{job="citymesh-network"}')).toEqual([['alfa', 0.42]]);
    expect(await capacity('citymesh_link_provisioned_capacity_bytes_per_second{job="citymesh-network",link="alfa~bravo"}')).toEqual([[undefined, 100e9 / 8]]);
    const size = await promQuery(prometheus!, 'scrape_samples_scraped{job="citymesh-network"}');
    const took = await promQuery(prometheus!, 'scrape_duration_seconds{job="citymesh-network"}');
    process.stdout.write(`prometheus: ${figures.join('\n  ')}\n  scrape: ${size[0]!.value[1]} samples in ${took[0]!.value[1]} s\n`);
  }, 90_000);

  it('answers every Grafana panel query and the recording rules of deploy/ with data', async () => {
    const dashboard = JSON.parse(readFileSync('deploy/grafana/citymesh-network.json', 'utf8'));
    const queries = dashboardQueries(dashboard);
    // Recording rules over rate(...[5m]) need two scrapes with the data and a rule evaluation after them.
    let empty: string[] = [];
    await waitFor('every panel query to return series', async () => {
      empty = [];
      for (const q of queries) if ((await promQuery(prometheus!, q.expr)).length === 0) empty.push(`${q.panel}: ${q.expr}`);
      return empty.length === 0;
    }, 60_000).catch(() => undefined);
    expect(empty, 'panel queries without data').toEqual([]);
    // The recording rule agrees with the query it records, once evaluated over samples that hold
    // the trains: an evaluation between the empty first scrape and the next one rates nothing
    // (0/0, NaN) and stays the newest value for one evaluation interval.
    let recorded: Awaited<ReturnType<typeof promQuery>> = [];
    await waitFor('the recording rule evaluated over the trains', async () => {
      recorded = await promQuery(prometheus!, 'citymesh:link_rtt_target:ratio_5m');
      return recorded.length > 0 && recorded.every((r) => Number.isFinite(Number(r.value[1])));
    }, 60_000).catch(() => undefined);
    expect(recorded.map((r) => r.metric.link).sort()).toEqual(Object.keys(BASE_US).sort());
    for (const r of recorded) expect(Number(r.value[1])).toBeGreaterThan(0);
  }, 90_000);
});
