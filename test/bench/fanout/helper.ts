/**
 * Helper process for the fan-out benchmark, started twice: once as the
 * feeder (20 simulated probes, each storing one train per peer every second,
 * staggered: 380 links updating once a second) and once as the dashboard
 * clients (N WebSockets on /v1/live). Both stamp time with the host's wall
 * clock, so a delivery's delay is its arrival minus the train's send time:
 * the train is stamped `startedAtUs` = the moment its batch is written to
 * the collector's socket.
 */
import WebSocket from 'ws';
import { ownCpuSeconds, serveHelper, sleep, wallMs } from '../lib/env.js';
import { Histogram } from '../lib/stats.js';
import { batchJson, sampleJson } from '../ingest/trains.js';

interface FeedRequest { cmd: 'feed'; wsUrl: string; centres: { id: string; token: string; peers: string[] }[]; durationMs: number; tag: string }
interface ConnectRequest { cmd: 'connect'; url: string; clients: number }
interface MeasureRequest { cmd: 'measure'; ms: number }

const sockets: WebSocket[] = [];
let histogram: Histogram | null = null;
let deliveries = 0;

function onMessage(data: Buffer): void {
  if (!histogram) return;
  // A frame carries every train of one stored batch; each is one delivery.
  const now = wallMs();
  for (let i = data.indexOf(',"t":'); i >= 0; i = data.indexOf(',"t":', i + 5)) {
    const t = parseFloat(data.toString('latin1', i + 5, i + 30));
    histogram.add(now - t * 1000);
    deliveries++;
  }
}

async function connect(req: ConnectRequest): Promise<{ connected: number; refused: number; reasons: string[] }> {
  let refused = 0;
  const reasons = new Set<string>();
  const one = () =>
    new Promise<void>((resolve) => {
      const ws = new WebSocket(req.url, { perMessageDeflate: false, skipUTF8Validation: true });
      ws.on('open', () => {
        sockets.push(ws);
        resolve();
      });
      ws.on('message', (data) => onMessage(data as Buffer));
      ws.on('unexpected-response', (_r, res) => {
        refused++;
        reasons.add(`HTTP ${res.statusCode}`);
        res.resume();
        resolve();
      });
      ws.on('error', (e) => {
        reasons.add(e.message);
        resolve();
      });
    });
  // A few at a time, like browsers arriving.
  for (let i = 0; i < req.clients; i += 25) await Promise.all(Array.from({ length: Math.min(25, req.clients - i) }, one));
  return { connected: sockets.length, refused, reasons: [...reasons] };
}

async function measure(req: MeasureRequest): Promise<{ histogram: ReturnType<Histogram['toJSON']>; deliveries: number; cpuS: number; seconds: number }> {
  histogram = new Histogram(0.05, 10_000);
  deliveries = 0;
  const cpu0 = ownCpuSeconds();
  const t0 = performance.now();
  await sleep(req.ms);
  const h = histogram;
  histogram = null;
  return { histogram: h.toJSON(), deliveries, cpuS: ownCpuSeconds() - cpu0, seconds: (performance.now() - t0) / 1000 };
}

async function feed(req: FeedRequest): Promise<{ batches: number; refused: number }> {
  let batches = 0;
  let refused = 0;
  const stopAt = wallMs() + req.durationMs;
  await Promise.all(
    req.centres.map(
      (centre, index) =>
        new Promise<void>((resolve, reject) => {
          const ws = new WebSocket(req.wsUrl, { perMessageDeflate: false });
          let seq = 0;
          let timer: NodeJS.Timeout | undefined;
          const send = () => {
            if (wallMs() >= stopAt) {
              clearInterval(timer);
              ws.close();
              return;
            }
            const id = `${req.tag}-${centre.id}-${seq++}`;
            const nowUs = Math.round(wallMs() * 1000);
            const samples = centre.peers.map((peer, i) => sampleJson(`${id}.${i}`, peer, nowUs, 0));
            ws.send(batchJson(id, samples, nowUs));
          };
          ws.on('open', () => ws.send(JSON.stringify({ type: 'hello', centre: centre.id, token: centre.token, version: 'bench' })));
          ws.on('message', (data) => {
            const m = JSON.parse(String(data)) as { type: string; error?: string };
            if (m.type === 'plan') {
              // Probes are not in phase: spread the centres over the second.
              setTimeout(() => {
                send();
                timer = setInterval(send, 1000);
              }, (1000 * index) / req.centres.length);
            } else if (m.type === 'ack') batches++;
            else if (m.type === 'error') {
              refused++;
              if (seq === 0) reject(new Error(`${centre.id}: ${m.error}`));
            }
          });
          ws.on('close', () => resolve());
          ws.on('error', reject);
        }),
    ),
  );
  return { batches, refused };
}

serveHelper(async (m) => {
  if (m.cmd === 'feed') return feed(m as unknown as FeedRequest);
  if (m.cmd === 'connect') return connect(m as unknown as ConnectRequest);
  if (m.cmd === 'measure') return measure(m as unknown as MeasureRequest);
  if (m.cmd === 'close') {
    for (const ws of sockets.splice(0)) ws.terminate();
    return {};
  }
  throw new Error(`unknown command ${String(m.cmd)}`);
});
