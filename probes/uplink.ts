/**
 * The probe's link to the collector: one WebSocket at a time, hello with the
 * probe's report, heartbeats, and the spool's batches sent oldest first with
 * a bounded window of unacknowledged ones. A batch leaves the spool only when
 * acknowledged; one the collector defers (busy, store away, rate limited)
 * goes again after a back-off; one it will never take is dropped as a gap; a
 * reused id is renewed. Reconnects back off exponentially with full jitter so
 * a restarted server is not stampeded; given several collector URLs, the
 * uplink stays on one while it works and moves to the next when the
 * connection fails, and what was not acknowledged goes again there.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import WebSocket from 'ws';
import { PROTOCOL_VERSION, type CollectorMessage, type ProbeMessage, type ProbePlan, type ProbeReport } from '../protocol/index.js';
import type { EngineRequest } from './engines/registration.js';
import type { Spool } from './spool.js';

export interface UplinkOptions {
  serverUrls: readonly string[];
  centre: string;
  token: string;
  version: string;
  logger: Logger;
  spool: Spool;
  /** PEM file of the CA that signed the server certificate (wss with a private CA). */
  caFile?: string | undefined;
  /** How this probe measures now: sent in the hello and with every batch. */
  report: () => ProbeReport;
  /** A plan arrived (the connection is authenticated from now on). */
  onPlan: (plan: ProbePlan) => void;
  /** The collector asks an engine for work. */
  onRequest: (message: EngineRequest) => void;
  /** The collector refused our credentials (close 4401): true when handled, so no reconnect is tried. */
  onRefused: (reason: string) => boolean;
}

export interface UplinkStats {
  connected: boolean;
  /** The collector URL in use (or being tried). */
  server: string;
  /** Times the uplink moved on to another collector URL. */
  failovers: number;
  batchesSent: number;
  batchesAcked: number;
}

const RECONNECT_MIN_MS = 500;
const RECONNECT_MAX_MS = 30_000;
/** A collector that accepted the connection but sends no plan is treated as failed. */
const PLAN_TIMEOUT_MS = 15_000;
/** WebSocket ping interval; a connection with no pong for two intervals is dead (a vanished host sends no RST). */
const HEARTBEAT_MS = 15_000;
/** Unacknowledged batches on the wire at once; the rest wait in the spool. */
const SEND_WINDOW = 4;

/**
 * A collector's retry hint as the probe takes it: a finite number of ms, at
 * most the back-off ceiling; anything else (absent, negative, not a number,
 * a string) is no hint, and the probe backs off as it would without one.
 */
export function retryHintMs(value: unknown): number | undefined {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) return undefined;
  return Math.min(RECONNECT_MAX_MS, value);
}

/**
 * How long a probe holds the spool after the collector deferred a round of
 * batches, and its back-off after: with the collector's hint, the hint plus
 * up to half again (probes told the same moment spread out) and the back-off
 * unchanged; without, half to all of the back-off, which then doubles (up to
 * the ceiling). `random` in [0, 1). The benchmarks' simulated probes hold by
 * the same rule.
 */
export function deferralHold(hintMs: number | undefined, backoffMs: number, random = Math.random()): { holdMs: number; nextBackoffMs: number } {
  if (hintMs !== undefined) return { holdMs: Math.min(RECONNECT_MAX_MS, Math.round(hintMs + random * (hintMs / 2))), nextBackoffMs: backoffMs };
  return { holdMs: Math.round(backoffMs / 2 + random * (backoffMs / 2)), nextBackoffMs: Math.min(RECONNECT_MAX_MS, backoffMs * 2) };
}

/** The back-off after a deferral starts here (and returns here on every ack). */
export const DEFERRAL_BACKOFF_MIN_MS = RECONNECT_MIN_MS;

export class Uplink {
  private ws: WebSocket | null = null;
  /** Batch ids sent on this connection and not yet answered. */
  private readonly onWire = new Set<string>();
  private sealTimer: NodeJS.Timeout | null = null;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  /** A stop is sending what is spooled: retries still run until its drain window ends. */
  private draining = false;
  private reconnectDelay = RECONNECT_MIN_MS;
  private retryDelay = RECONNECT_MIN_MS;
  private stopping = false;
  /** True once this connection's hello was answered with a plan. */
  private authenticated = false;
  private pumping = false;
  private drained: (() => void) | null = null;
  private readonly ca: Buffer | undefined;
  private serverIndex: number;
  private readonly counters = { failovers: 0, batchesSent: 0, batchesAcked: 0 };

  constructor(private readonly options: UplinkOptions) {
    if (options.serverUrls.length === 0) throw new Error('no collector URL given');
    this.serverIndex = collectorStartIndex(options.centre, options.serverUrls.length);
    this.ca = options.caFile ? readFileSync(options.caFile) : undefined;
  }

  stats(): UplinkStats {
    return { connected: this.ws?.readyState === WebSocket.OPEN, server: this.server(), ...this.counters };
  }

  server(): string {
    return this.options.serverUrls[this.serverIndex]!;
  }

  /** Seal the batch being filled on the plan's interval and send it. */
  sealEvery(intervalMs: number): void {
    if (this.sealTimer) clearInterval(this.sealTimer);
    this.sealTimer = setInterval(() => void this.flush(), intervalMs);
  }

  /** Seal what is spooled into a batch now and send it. */
  async flush(): Promise<void> {
    await this.options.spool.seal();
    void this.pump();
  }

  /** Send a message now when connected (what must arrive goes through the spool instead). */
  send(message: ProbeMessage): void {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  }

  connect(): void {
    const log = this.options.logger;
    this.authenticated = false;
    this.onWire.clear();
    const url = this.server();
    const ws = new WebSocket(url, {
      handshakeTimeout: 10_000,
      maxPayload: 4 * 1024 * 1024,
      ...(this.ca ? { ca: this.ca } : {}),
    });
    this.ws = ws;
    let planTimer: NodeJS.Timeout | undefined;
    let heartbeat: NodeJS.Timeout | undefined;
    let answered = true;
    ws.on('open', () => {
      planTimer = setTimeout(() => {
        if (this.authenticated || this.ws !== ws) return;
        log.warn({ server: url }, `collector sent no plan within ${PLAN_TIMEOUT_MS} ms; giving up on this connection`);
        ws.terminate();
      }, PLAN_TIMEOUT_MS);
      heartbeat = setInterval(() => {
        if (!answered) {
          log.warn({ server: url }, 'collector stopped answering pings; connection considered dead');
          ws.terminate();
          return;
        }
        answered = false;
        ws.ping();
      }, HEARTBEAT_MS);
      ws.send(JSON.stringify({
        type: 'hello', centre: this.options.centre, token: this.options.token,
        version: this.options.version, protocol: PROTOCOL_VERSION, report: this.options.report(),
      }));
    });
    ws.on('pong', () => (answered = true));
    ws.on('message', (data) => this.onMessage(String(data)));
    ws.on('error', (error) => log.warn({ err: error.message, server: url }, 'collector connection error'));
    ws.on('close', (code, reason) => {
      clearTimeout(planTimer);
      clearInterval(heartbeat);
      if (this.ws === ws) this.ws = null;
      this.authenticated = false;
      if (this.stopping) {
        this.drained?.(); // no collector to drain to any more: stop now, the spool keeps the rest
        return;
      }
      if (code === 4401 && this.options.onRefused(reason.toString() || 'authentication failed')) return;
      // Next collector in the list; what was not acknowledged is resent there from the spool.
      if (this.options.serverUrls.length > 1) {
        this.serverIndex = (this.serverIndex + 1) % this.options.serverUrls.length;
        this.counters.failovers++;
      }
      // Full jitter: a fleet of probes reconnecting after a server restart spreads out.
      const delay = Math.round(Math.random() * this.reconnectDelay);
      log.info({ code, server: url, next: this.server(), retryInMs: delay }, 'collector connection closed; reconnecting');
      this.reconnectTimer = setTimeout(() => {
        this.reconnectTimer = null;
        this.connect();
      }, delay);
      this.reconnectDelay = Math.min(RECONNECT_MAX_MS, this.reconnectDelay * 2);
    });
  }

  /** The probe began to stop: a lost connection is not retried, only a drain may still send. */
  beginStop(): void {
    this.stopping = true;
  }

  /**
   * Send what is spooled and wait (at most `timeoutMs`) for its acknowledgements,
   * while a collector is, or is about to be, there: connected, or mid-handshake,
   * or with a reconnect already scheduled (a stop right after a network cut must
   * not leave the last batches behind just because the plan had not arrived yet).
   */
  async drain(timeoutMs: number): Promise<void> {
    const reachable = this.authenticated || this.ws !== null || this.reconnectTimer !== null;
    if (this.options.spool.pending().length === 0 || !reachable) return;
    // A back-off from before the stop (the store was away, the server busy) must not sit out the drain:
    // retry at once, then briefly, until the drain window ends.
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.draining = true;
    void this.pump();
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      this.drained = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    this.draining = false;
  }

  /** Stop every timer and close the connection. */
  close(): void {
    for (const timer of [this.reconnectTimer, this.retryTimer]) if (timer) clearTimeout(timer);
    if (this.sealTimer) clearInterval(this.sealTimer);
    this.ws?.close(1000, 'probe stopping');
  }

  private onMessage(text: string): void {
    let message: CollectorMessage;
    try {
      message = JSON.parse(text) as CollectorMessage;
    } catch {
      this.options.logger.warn('collector sent a message that is not JSON; ignored');
      return;
    }
    switch (message.type) {
      case 'plan':
        if (!this.authenticated) this.options.logger.info({ server: this.server() }, 'collector connected: plan received');
        this.authenticated = true;
        this.options.onPlan(message);
        break;
      case 'ack':
        this.onWire.delete(message.batchId);
        this.counters.batchesAcked++;
        this.reconnectDelay = RECONNECT_MIN_MS;
        this.retryDelay = RECONNECT_MIN_MS;
        void this.options.spool.ack(message.batchId).then(() => {
          if (this.options.spool.pending().length === 0) this.drained?.();
          return this.pump();
        });
        break;
      case 'error':
        this.onCollectorError(message);
        break;
      case 'diagnose':
      case 'throughput_run':
        this.options.onRequest(message);
        break;
    }
  }

  private onCollectorError(message: Extract<CollectorMessage, { type: 'error' }>): void {
    const log = this.options.logger;
    const spool = this.options.spool;
    const id = message.batchId;
    if (id) this.onWire.delete(id);
    switch (message.code) {
      case 'not_authenticated':
      case 'store_unavailable':
      case 'busy':
      case 'rate_limited': {
        // The collector could not take it now; it stays in the spool and goes again later: when the collector said
        // it would take it (a busy store's estimate), else after a doubling back-off.
        const retryInMs = this.scheduleRetry(message.code === 'busy' ? retryHintMs(message.retryAfterMs) : undefined);
        log.warn({ batchId: id, code: message.code, retryInMs }, `collector deferred a batch: ${message.error}`);
        return;
      }
      case 'batch_conflict':
        // The id was stored before with other content (a reset or copied spool reuses ids): same records, new id.
        if (id) {
          void spool.renew(id).then((renewed) => {
            log.warn({ batchId: id, renewed, code: message.code }, `collector refused a reused batch id; sending the same records under a new id: ${message.error}`);
            return this.pump();
          }, (error: Error) => {
            log.error({ batchId: id, err: error.message }, 'could not give a refused batch a new id; it stays in the spool');
            this.scheduleRetry();
          });
          return;
        }
        log.error({ code: message.code }, `collector error: ${message.error}`);
        return;
      default:
        if (id) {
          // The collector will never accept this batch; resending it would loop forever.
          log.error({ batchId: id, code: message.code }, `collector rejected a batch; dropped and counted as a gap: ${message.error}`);
          void spool.discard(id).then(() => this.pump());
          return;
        }
        log.error({ code: message.code }, `collector error: ${message.error}`);
    }
  }

  /**
   * Send the spool again later (deferralHold; `hintMs`: when the collector expects to take a batch); returns in
   * how many ms (null: a retry is already scheduled, or the probe stops).
   */
  private scheduleRetry(hintMs?: number): number | null {
    if (this.retryTimer || (this.stopping && !this.draining)) return null;
    let delay: number;
    if (this.draining) {
      // While a stop drains the spool its window is short: retry every ~200 ms rather than backing off past it.
      delay = 150 + Math.round(Math.random() * 100);
    } else {
      const hold = deferralHold(hintMs, this.retryDelay);
      delay = hold.holdMs;
      this.retryDelay = hold.nextBackoffMs;
    }
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.pump();
    }, delay);
    return delay;
  }

  /** Send spooled batches, oldest first, keeping at most SEND_WINDOW unacknowledged. */
  async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    const spool = this.options.spool;
    try {
      for (const { id } of spool.pending()) {
        if (!this.authenticated || this.onWire.size >= SEND_WINDOW || this.retryTimer) break;
        if (this.onWire.has(id)) continue;
        const stats = spool.stats();
        const batch = await spool.read(id, Date.now() * 1000);
        if (!batch || this.ws?.readyState !== WebSocket.OPEN) break;
        batch.spool = { batches: stats.batches, bytes: stats.bytes, droppedTrains: stats.droppedTrains };
        batch.report = this.options.report();
        this.onWire.add(id);
        this.counters.batchesSent++;
        this.ws.send(JSON.stringify(batch));
      }
    } finally {
      this.pumping = false;
    }
  }
}

/**
 * Where a probe starts in its collector list: a hash of the centre id, so a
 * fleet given the same list spreads over the servers instead of all starting
 * on the first, and a probe returns to the same server after a restart.
 */
export function collectorStartIndex(centre: string, servers: number): number {
  return createHash('sha256').update(centre).digest().readUInt32BE(0) % servers;
}
