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

/**
 * What the feeder did: batches acknowledged, sends refused (by code), and
 * batches still held (refused, not yet acknowledged) when it stopped.
 */
export interface FeedResult {
  batches: number;
  refused: Record<string, number>;
  resent: number;
  unacked: number;
  /** Batches not sent at once, or sent again: deferred by the collector, or sealed while the probe held deferred ones. */
  deferredIds: string[];
}

/** A probe's retry delay after a deferral: doubling from this, up to the maximum (probes/agent.ts RECONNECT_MIN_MS/MAX_MS). */
const RETRY_MIN_MS = 500;
const RETRY_MAX_MS = 30_000;

async function feed(req: FeedRequest): Promise<FeedResult> {
  let batches = 0;
  let resent = 0;
  let unacked = 0;
  const refused: Record<string, number> = {};
  const deferredIds = new Set<string>();
  const stopAt = wallMs() + req.durationMs;
  await Promise.all(
    req.centres.map(
      (centre, index) =>
        new Promise<void>((resolve, reject) => {
          const ws = new WebSocket(req.wsUrl, { perMessageDeflate: false });
          let seq = 0;
          let timer: NodeJS.Timeout | undefined;
          /** Sent, not yet acknowledged, by batch id: a batch the collector defers is held and sent again, as a probe does. */
          const unackedBatches = new Map<string, string>();
          /** Refused batches waiting for the retry, and batches sealed meanwhile: a probe sends nothing while it waits to retry. */
          const held: string[] = [];
          let retry: NodeJS.Timeout | undefined;
          let retryDelay = RETRY_MIN_MS;
          let closed = false;
          const finish = (force = false) => {
            if (closed || (unackedBatches.size > 0 && !force)) return; // still owed an answer (or a resend)
            closed = true;
            unacked += unackedBatches.size;
            clearInterval(timer);
            clearTimeout(retry);
            ws.close();
          };
          // Bounded: what is still unacknowledged this long after the end is counted, not waited for.
          const guard = setTimeout(() => finish(true), req.durationMs + 10_000);
          const send = () => {
            if (wallMs() >= stopAt) {
              clearInterval(timer);
              finish();
              return;
            }
            const id = `${req.tag}-${centre.id}-${seq++}`;
            const nowUs = Math.round(wallMs() * 1000);
            const samples = centre.peers.map((peer, i) => sampleJson(`${id}.${i}`, peer, nowUs, 0));
            const text = batchJson(id, samples, nowUs);
            unackedBatches.set(id, text);
            if (retry) {
              held.push(text);
              deferredIds.add(id);
            } else {
              ws.send(text);
            }
          };
          ws.on('open', () => ws.send(JSON.stringify({ type: 'hello', centre: centre.id, token: centre.token, version: 'bench' })));
          ws.on('message', (data) => {
            const m = JSON.parse(String(data)) as { type: string; error?: string; code?: string; batchId?: string };
            if (m.type === 'plan') {
              // Probes are not in phase: spread the centres over the second.
              setTimeout(() => {
                send();
                timer = setInterval(send, 1000);
              }, (1000 * index) / req.centres.length);
            } else if (m.type === 'ack') {
              batches++;
              retryDelay = RETRY_MIN_MS;
              if (m.batchId) unackedBatches.delete(m.batchId);
              if (wallMs() >= stopAt) finish();
            } else if (m.type === 'error') {
              refused[m.code ?? 'unknown'] = (refused[m.code ?? 'unknown'] ?? 0) + 1;
              if (seq === 0) reject(new Error(`${centre.id}: ${m.error}`));
              const text = m.batchId ? unackedBatches.get(m.batchId) : undefined;
              if (text && (m.code === 'busy' || m.code === 'store_unavailable' || m.code === 'rate_limited')) {
                // Held, then the same batch (same id, same trains and times) again after the probe's delay: half to all of
                // one that doubles on each deferral in a row, from 0.5 s up to 30 s, reset by an ack (probes/agent.ts).
                held.unshift(text);
                resent++;
                deferredIds.add(m.batchId!);
                if (!retry) {
                  retry = setTimeout(() => {
                    retry = undefined;
                    for (const t of held.splice(0)) ws.send(t);
                  }, retryDelay / 2 + Math.random() * (retryDelay / 2));
                  retryDelay = Math.min(RETRY_MAX_MS, retryDelay * 2);
                }
              } else if (m.batchId) {
                unackedBatches.delete(m.batchId);
              }
            }
          });
          ws.on('close', () => {
            clearTimeout(guard);
            resolve();
          });
          ws.on('error', reject);
        }),
    ),
  );
  return { batches, refused, resent, unacked, deferredIds: [...deferredIds] };
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
