/**
 * The network metrics at the size of config/shanghai.yaml: every direction of
 * every link measured by both engines, a NIC sample per link end and a
 * throughput test per link, all sent through the real ingest (POST
 * /v1/ingest with each centre's token). Then /metrics/network is scraped over
 * real HTTP in both formats: families, series, bytes (plain and gzip, which
 * Prometheus asks for) and time per scrape. Ceiling: the same figures read
 * from ClickHouse without HTTP, rendering or gzip (collectNetworkFamilies).
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { collectNetworkFamilies } from '../../../api/network-metrics/collect.js';
import { parseTopology } from '../../../topology/index.js';
import { startTestServer } from '../../helpers/stack.js';
import { size, sleep, wallMs } from '../lib/env.js';
import { emit, note } from '../lib/figures.js';
import { percentile } from '../lib/stats.js';

const B = 'metrics';
const FILE = 'config/shanghai.yaml';
const TRAINS = size(20, 3);
const PACKETS = 20;
const SCRAPES = size(20, 3);

export async function run(): Promise<void> {
  const text = readFileSync(FILE, 'utf8');
  // Each centre's token from the environment variable the file names, made up for this run.
  const tokens = new Map([...text.matchAll(/token_env:\s*(\S+)/g)].map((m) => [m[1]!, randomBytes(24).toString('hex')]));
  const topology = parseTopology(text, FILE, { env: { ...process.env, ...Object.fromEntries(tokens) } });
  const tokenOf = (centre: string) => {
    const m = new RegExp(`id: ${centre}\\n(?:.*\\n)*?\\s+token_env: (\\S+)`).exec(text);
    return tokens.get(m![1]!)!;
  };
  const server = await startTestServer(topology);
  try {
    const nowMs = Math.round(wallMs()); // whole microseconds on the wire: the ingest refuses a fraction
    let stored = 0;
    for (const c of topology.centres) {
      const peers = topology.peersOf(c.id);
      const samples = peers.flatMap((dst, p) => (['stamp', 'icmp'] as const).flatMap((engine) => Array.from({ length: TRAINS }, (_, t) => {
        const rtts = Array.from({ length: PACKETS }, (_, i) => 300 + ((p * 131 + t * 17 + i * 7) % 900));
        return {
          trainId: `m-${c.id}-${dst}-${engine}-${t}`, dst, engine, startedAtUs: (nowMs - 30_000 + t * 1000) * 1000, flow: 0, srcPort: 40000, dscp: 46,
          sent: PACKETS, received: PACKETS, lost: 0, duplicated: 0, reordered: 0, rttMinUs: Math.min(...rtts), rttMedianUs: rtts[10]!,
          rttP99Us: Math.max(...rtts), rttMaxUs: Math.max(...rtts), jitterUs: 10, rttsUs: rtts, synced: false, errorEstimateUs: 1000, fwdUs: [], revUs: [],
          senderTimestamping: engine === 'stamp' ? 'kernel' : 'user',
        };
      })));
      const nic = peers.map((peer, i) => ({
        sampleId: `nic-${c.id}-${peer}`, interface: `ens${i}`, peer, atUs: (nowMs - 5000) * 1000, intervalS: 10, speedMbps: 100_000, operState: 'up',
        reset: false, rxBps: 3e10, txBps: 4e10, rxPps: 1e6, txPps: 1e6, rxErrorsPs: 0, txErrorsPs: 0, rxDropsPs: 0, txDropsPs: 0, utilisation: 0.4,
      }));
      const r = await fetch(`${server.url}/v1/ingest`, {
        method: 'POST', headers: { authorization: `Bearer ${tokenOf(c.id)}`, 'content-type': 'application/json' },
        body: JSON.stringify({ type: 'batch', batchId: `m-${c.id}`, samples, nic }),
      });
      if (r.status !== 200) throw new Error(`ingest for ${c.id}: ${r.status} ${await r.text()}`);
      stored += samples.length;
    }
    note(B, `${FILE}: ${topology.centres.length} centres, ${topology.links.length} links; ${stored} trains (STAMP and ICMP, both directions) and a NIC sample per link end stored through POST /v1/ingest`);

    const operator = [...text.matchAll(/token_env:\s*(\S+)/g)].map((m) => m[1]!).find((n) => /OPERATOR/i.test(n));
    const headers = { authorization: `Bearer ${tokens.get(operator!)}` };
    for (const format of ['openmetrics', 'prometheus'] as const) {
      const times: number[] = [];
      const ceilings: number[] = [];
      let body = '';
      let wire = 0;
      for (let i = 0; i < SCRAPES + 2; i++) {
        await sleep(1100); // past the window in which scrapes share one read (HA Prometheus pairs), so each scrape reads
        const t0 = performance.now();
        const r = await fetch(`${server.url}/metrics/network?format=${format}`, { headers: { ...headers, 'accept-encoding': 'gzip' } });
        body = await r.text();
        const ms = performance.now() - t0;
        const t1 = performance.now();
        await collectNetworkFamilies(server.store, topology, wallMs() + i); // a new instant: not the shared read
        const direct = performance.now() - t1;
        if (i >= 2) {
          times.push(ms);
          ceilings.push(direct);
        }
        wire = Number(r.headers.get('content-length') ?? 0) || gzipSync(body).length;
      }
      const families = body.match(/^# TYPE /gm)?.length ?? 0;
      const series = body.split('\n').filter((l) => l !== '' && !l.startsWith('#')).length;
      note(B, `${format}: ${families} families, ${series} series, ${body.length} bytes, ${gzipSync(body).length} bytes gzipped (wire ${wire})`);
      emit({ name: `metrics.${format}.families`, value: families, unit: 'families', better: 'lower' });
      emit({ name: `metrics.${format}.series`, value: series, unit: 'series', better: 'lower' });
      emit({ name: `metrics.${format}.bytes`, value: body.length, unit: 'bytes', better: 'lower', ceiling: gzipSync(body).length, note: 'ceiling = gzipped' });
      emit({
        name: `metrics.${format}.scrape`, value: percentile(times, 0.5), unit: 'ms', better: 'lower', ceiling: percentile(ceilings, 0.5),
        note: `p50 of ${SCRAPES} scrapes over HTTP with gzip (p99 ${percentile(times, 0.99)!.toFixed(1)} ms); ceiling = the ClickHouse reads alone`,
      });
    }
  } finally {
    await server.stop();
  }
}
