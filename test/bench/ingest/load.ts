/**
 * Load generator (its own process, so it does not share the collector's
 * core): one WebSocket per simulated probe, hello, then batches of trains.
 *
 * - closed loop (`offeredPerS` absent): at most `window` unacknowledged batches
 *   per connection, a new one on every ack: the collector's maximum. After
 *   a deferral (busy) a new batch follows 20 ms later: holding the
 *   connection for a probe's doubling retry delay instead left the store
 *   idle between groups and halved the rate (tried, two pairs of adjacent
 *   15 s runs: 4,298 against 9,853 and 2,503 against 5,279 trains/s), and
 *   fewer, smaller groups cost more CPU per train.
 * - paced (`offeredPerS` set): each connection seals a batch on a fixed
 *   schedule (like a probe's batch interval) and sends it when fewer than
 *   `window` are unacknowledged; a batch waiting for the window waits like a
 *   spooled one would, and a batch the collector defers (busy) is held and
 *   sent again as a probe does: after the collector's retry hint (busy with
 *   the store behind), else after a delay of 0.25–0.5 s doubling on each
 *   round deferred in a row up to 30 s, reset by an ack.
 *
 * A batch's lag is sealed → ack, holding included; its server lag is its last
 * send → ack. The collector acks only after the synchronous INSERT returned,
 * so at ack time the rows are queryable.
 */
import WebSocket from 'ws';
import { DEFERRAL_BACKOFF_MIN_MS, deferralHold, retryHintMs } from '../../../probes/uplink.js';
import { ownCpuSeconds, serveHelper, wallMs } from '../lib/env.js';
import { batchJson, sampleJson } from './trains.js';

export interface LoadRequest {
  wsUrl: string;
  centres: { id: string; token: string; peers: string[] }[];
  batchSize: number;
  window: number;
  durationMs: number;
  /** Paced mode: trains per second offered in total. */
  offeredPerS?: number;
  /** Makes batch and train ids unique across runs. */
  tag: string;
}

export interface LoadResult {
  trains: number;
  batches: number;
  seconds: number;
  lagsMs: number[];
  /** When each batch of lagsMs was sealed, ms since the run began (same order): lets the run be cut into windows. */
  lagSealedAtMs: number[];
  /** Last send → ack, per acknowledged batch: the part of the lag spent in the server. */
  serverLagsMs: number[];
  refused: Record<string, number>;
  /** Paced mode: batches still waiting for the window when the run ended. */
  backlog: number;
  generatorCpuS: number;
  bytesSent: number;
}


async function runLoad(req: LoadRequest): Promise<LoadResult> {
  const lags: number[] = [];
  const lagSealedAt: number[] = [];
  const serverLags: number[] = [];
  const refused: Record<string, number> = {};
  let trains = 0;
  let batches = 0;
  let bytes = 0;
  let backlog = 0;
  let firstSend = Infinity;
  let lastAck = 0;
  const cpu0 = ownCpuSeconds();
  const startedAt = wallMs();
  const stopAt = startedAt + req.durationMs;
  const perConnEveryMs = req.offeredPerS ? (req.batchSize * req.centres.length * 1000) / req.offeredPerS : 0;

  const one = (centre: LoadRequest['centres'][number], index: number) =>
    new Promise<void>((resolve, reject) => {
      const ws = new WebSocket(req.wsUrl, { perMessageDeflate: false });
      interface Sealed { id: string; sealed: number; text: string }
      const inflight = new Map<string, Sealed & { sent: number }>();
      const waiting: Sealed[] = [];
      let seq = 0;
      let open = false;
      let ticker: NodeJS.Timeout | undefined;
      /** After a deferral, nothing is sent before this (wall ms). */
      let holdUntil = 0;
      let retry: NodeJS.Timeout | undefined;
      let retryDelay = DEFERRAL_BACKOFF_MIN_MS;
      const seal = (): Sealed => {
        const id = `${req.tag}-${centre.id}-${seq++}`;
        const nowUs = Math.round(wallMs() * 1000);
        const samples: string[] = [];
        for (let i = 0; i < req.batchSize; i++) {
          samples.push(sampleJson(`${id}.${i}`, centre.peers[i % centre.peers.length]!, nowUs - req.batchSize + i, i));
        }
        return { id, sealed: wallMs(), text: batchJson(id, samples, nowUs) };
      };
      const send = (b: Sealed) => {
        firstSend = Math.min(firstSend, wallMs());
        inflight.set(b.id, { ...b, sent: wallMs() });
        bytes += b.text.length;
        ws.send(b.text);
      };
      const pump = () => {
        const done = wallMs() >= stopAt;
        if (req.offeredPerS) {
          if (wallMs() < holdUntil) return;
          while (inflight.size < req.window && waiting.length > 0) send(waiting.shift()!);
        } else if (!done) {
          while (inflight.size < req.window) send(seal());
        }
        if (done && inflight.size === 0 && (waiting.length === 0 || !req.offeredPerS)) ws.close();
      };
      ws.on('open', () => ws.send(JSON.stringify({ type: 'hello', centre: centre.id, token: centre.token, version: 'bench' })));
      ws.on('message', (data) => {
        const m = JSON.parse(String(data)) as { type: string; batchId?: string; code?: string; error?: string; retryAfterMs?: unknown };
        if (m.type === 'plan') {
          open = true;
          if (req.offeredPerS) {
            const tick = () => {
              if (wallMs() >= stopAt) {
                clearInterval(ticker);
                clearTimeout(retry);
                retry = undefined;
                holdUntil = 0;
                backlog += waiting.length;
                // Never acknowledged within the run: their lag is at least this long.
                for (const b of waiting) {
                  lags.push(wallMs() - b.sealed);
                  lagSealedAt.push(b.sealed - startedAt);
                }
                waiting.length = 0; // what never got sent is counted, not sent after the run
                pump();
                return;
              }
              waiting.push(seal());
              pump();
            };
            // Probes are not in phase: spread the first batches over one interval.
            setTimeout(() => {
              tick();
              ticker = setInterval(tick, perConnEveryMs);
            }, (perConnEveryMs * index) / req.centres.length);
          } else {
            pump();
          }
          return;
        }
        if (m.type === 'ack' && m.batchId) {
          const s = inflight.get(m.batchId);
          if (!s) return;
          inflight.delete(m.batchId);
          const now = wallMs();
          lags.push(now - s.sealed);
          lagSealedAt.push(s.sealed - startedAt);
          serverLags.push(now - s.sent);
          lastAck = Math.max(lastAck, now);
          retryDelay = DEFERRAL_BACKOFF_MIN_MS;
          trains += req.batchSize;
          batches++;
          pump();
          return;
        }
        if (m.type === 'error') {
          refused[m.code ?? 'unknown'] = (refused[m.code ?? 'unknown'] ?? 0) + 1;
          const b = m.batchId ? inflight.get(m.batchId) : undefined;
          if (m.batchId) inflight.delete(m.batchId);
          if (!open) {
            reject(new Error(`${centre.id}: ${m.error}`));
          } else if (req.offeredPerS && b && (m.code === 'busy' || m.code === 'store_unavailable' || m.code === 'rate_limited')) {
            // Held like a probe holds a deferred batch (it stays in its spool), then sent again by the probe's rule
            // (probes/uplink.ts deferralHold): one retry pending at a time, so the deferrals of one round back off once.
            waiting.unshift(b);
            if (retry === undefined) {
              const hold = deferralHold(m.code === 'busy' ? retryHintMs(m.retryAfterMs) : undefined, retryDelay);
              retryDelay = hold.nextBackoffMs;
              holdUntil = Math.max(holdUntil, wallMs() + hold.holdMs);
              retry = setTimeout(() => {
                retry = undefined;
                pump();
              }, hold.holdMs);
            }
          } else {
            setTimeout(pump, 20); // closed loop: go on shortly with a new batch
          }
        }
      });
      // Bounded: a connection that never sees its last acks still ends.
      const guard = setTimeout(() => ws.terminate(), req.durationMs + 60_000);
      ws.on('close', () => {
        clearTimeout(guard);
        clearInterval(ticker);
        clearTimeout(retry);
        resolve();
      });
      ws.on('error', reject);
    });

  await Promise.all(req.centres.map(one));
  return {
    trains, batches, seconds: (lastAck - firstSend) / 1000, lagsMs: lags, lagSealedAtMs: lagSealedAt, serverLagsMs: serverLags, refused, backlog,
    generatorCpuS: ownCpuSeconds() - cpu0, bytesSent: bytes,
  };
}

serveHelper(async (m) => runLoad(m as unknown as LoadRequest));
