/**
 * The probe agent: connects to the collector, says hello, receives its plan,
 * runs the reflector and the scheduled trains, and streams results.
 *
 * Every train goes to the disk spool first (probes/spool.ts); batches are
 * sealed on the plan's interval and sent with a bounded window of
 * unacknowledged batches; a batch leaves the spool only when acknowledged. On
 * reconnect the spool is replayed in order. Reconnects back off
 * exponentially with jitter so a restarted server is not stampeded.
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import WebSocket from 'ws';
import type { CollectorMessage, PlanTask, ProbePlan, TrainSample } from '../collector/index.js';
import { PROTOCOL_VERSION } from '../collector/index.js';
import { ClockSyncCache } from './engines/stamp/clock.js';
import { dscpUnavailable } from './engines/stamp/dscp.js';
import { StampReflector } from './engines/stamp/reflector.js';
import { createEngine } from './engines/registry.js';
import type { Engine, EngineName, TrainResult } from './engines/types.js';
import { Scheduler } from './scheduler.js';
import { Spool, type SpoolStats } from './spool.js';

export interface AgentOptions {
  /** Collector URL, e.g. wss://citymesh.example/v1/probe. */
  serverUrl: string;
  centre: string;
  token: string;
  version: string;
  logger: Logger;
  /** Directory of the disk spool (one per centre). */
  spoolDir: string;
  /** Spool bound, bytes (default 256 MiB). */
  spoolMaxBytes?: number;
  /** PEM file of the CA that signed the server certificate (wss with a private CA). */
  caFile?: string | undefined;
  /** How long stop() waits for outstanding acknowledgements, ms. */
  drainTimeoutMs?: number;
  /** Called after each train is durable in the spool (tests and audit logs). */
  onTrainSpooled?: (trainId: string) => void;
}

export class AuthRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AuthRefusedError';
  }
}

export interface AgentStats {
  connected: boolean;
  trains: number;
  batchesSent: number;
  batchesAcked: number;
  spool: SpoolStats;
}

const RECONNECT_MIN_MS = 500;
const RECONNECT_MAX_MS = 30_000;
/** Unacknowledged batches on the wire at once; the rest wait in the spool. */
const SEND_WINDOW = 4;

export class ProbeAgent {
  private ws: WebSocket | null = null;
  private plan: ProbePlan | null = null;
  private scheduler: Scheduler | null = null;
  private reflector: StampReflector | null = null;
  private readonly clock = new ClockSyncCache();
  private readonly engines = new Map<EngineName, Engine>();
  private readonly spool: Spool;
  /** Batch ids sent on this connection and not yet answered. */
  private readonly onWire = new Set<string>();
  private sealTimer: NodeJS.Timeout | null = null;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private reconnectDelay = RECONNECT_MIN_MS;
  private retryDelay = RECONNECT_MIN_MS;
  private stopping = false;
  /** True once this connection's hello was answered with a plan. */
  private authenticated = false;
  private pumping = false;
  private readonly counters = { trains: 0, batchesSent: 0, batchesAcked: 0 };
  private firstPlan: { resolve: () => void; reject: (e: Error) => void } | null = null;
  private drained: (() => void) | null = null;
  private readonly ca: Buffer | undefined;

  constructor(private readonly options: AgentOptions) {
    this.spool = Spool.open({ dir: options.spoolDir, centre: options.centre, maxBytes: options.spoolMaxBytes ?? 256 * 1024 * 1024 });
    this.ca = options.caFile ? readFileSync(options.caFile) : undefined;
    const recovered = this.spool.stats();
    if (recovered.batches > 0) options.logger.info({ batches: recovered.batches }, 'spool holds batches from before; they are sent first');
  }

  /** Connect and resolve once the first plan is running; rejects if the collector refuses us. */
  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.firstPlan = { resolve, reject };
      this.connect();
    });
  }

  stats(): AgentStats {
    return { connected: this.ws?.readyState === WebSocket.OPEN, ...this.counters, spool: this.spool.stats() };
  }

  currentPlan(): ProbePlan | null {
    return this.plan;
  }

  /** Stop measuring, seal and send what is spooled, wait (bounded) for acks, then disconnect. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    await this.scheduler?.stop();
    await this.spool.seal();
    if (this.spool.pending().length > 0 && this.authenticated) {
      void this.pump();
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.options.drainTimeoutMs ?? 5000);
        this.drained = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    const left = this.spool.stats().batches;
    if (left > 0) this.options.logger.info({ batches: left }, 'unacknowledged batches stay in the spool for the next start');
    for (const timer of [this.sealTimer, this.reconnectTimer, this.retryTimer]) if (timer) clearTimeout(timer);
    if (this.sealTimer) clearInterval(this.sealTimer);
    this.ws?.close(1000, 'probe stopping');
    await this.reflector?.close();
    await Promise.all([...this.engines.values()].map((e) => e.close()));
    await this.spool.flushed();
    this.clock.close();
  }

  private connect(): void {
    const log = this.options.logger;
    this.authenticated = false;
    this.onWire.clear();
    const ws = new WebSocket(this.options.serverUrl, {
      handshakeTimeout: 10_000,
      maxPayload: 4 * 1024 * 1024,
      ...(this.ca ? { ca: this.ca } : {}),
    });
    this.ws = ws;
    ws.on('open', () => {
      ws.send(JSON.stringify({
        type: 'hello', centre: this.options.centre, token: this.options.token,
        version: this.options.version, protocol: PROTOCOL_VERSION,
      }));
    });
    ws.on('message', (data) => this.onMessage(String(data)));
    ws.on('error', (error) => log.warn({ err: error.message }, 'collector connection error'));
    ws.on('close', (code, reason) => {
      if (this.ws === ws) this.ws = null;
      this.authenticated = false;
      if (this.stopping) return;
      if (code === 4401 && this.firstPlan) {
        this.firstPlan.reject(new AuthRefusedError(`collector refused centre "${this.options.centre}": ${reason.toString() || 'authentication failed'}`));
        this.firstPlan = null;
        return;
      }
      // Full jitter: a fleet of probes reconnecting after a server restart spreads out.
      const delay = Math.round(Math.random() * this.reconnectDelay);
      log.info({ code, retryInMs: delay }, 'collector connection closed; reconnecting');
      this.reconnectTimer = setTimeout(() => this.connect(), delay);
      this.reconnectDelay = Math.min(RECONNECT_MAX_MS, this.reconnectDelay * 2);
    });
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
        void this.applyPlan(message).catch((error: Error) => {
          this.options.logger.error({ err: error.message }, 'cannot apply plan');
          this.firstPlan?.reject(error);
          this.firstPlan = null;
        });
        break;
      case 'ack':
        this.onWire.delete(message.batchId);
        this.counters.batchesAcked++;
        this.reconnectDelay = RECONNECT_MIN_MS;
        this.retryDelay = RECONNECT_MIN_MS;
        void this.spool.ack(message.batchId).then(() => {
          if (this.spool.pending().length === 0) this.drained?.();
          return this.pump();
        });
        break;
      case 'error':
        this.onCollectorError(message);
        break;
    }
  }

  private onCollectorError(message: Extract<CollectorMessage, { type: 'error' }>): void {
    const log = this.options.logger;
    const id = message.batchId;
    if (id) this.onWire.delete(id);
    switch (message.code) {
      case 'not_authenticated':
      case 'store_unavailable':
      case 'busy':
      case 'rate_limited':
        // The collector could not take it now; it stays in the spool and goes again later.
        log.warn({ batchId: id, code: message.code }, `collector deferred a batch: ${message.error}`);
        this.scheduleRetry();
        return;
      default:
        if (id) {
          // The collector will never accept this batch; resending it would loop forever.
          log.error({ batchId: id, code: message.code }, `collector rejected a batch; dropped and counted as a gap: ${message.error}`);
          void this.spool.discard(id).then(() => this.pump());
          return;
        }
        log.error({ code: message.code }, `collector error: ${message.error}`);
    }
  }

  private scheduleRetry(): void {
    if (this.retryTimer || this.stopping) return;
    const delay = Math.round(this.retryDelay / 2 + Math.random() * (this.retryDelay / 2));
    this.retryDelay = Math.min(RECONNECT_MAX_MS, this.retryDelay * 2);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.pump();
    }, delay);
  }

  private async applyPlan(plan: ProbePlan): Promise<void> {
    const same = this.plan && JSON.stringify(this.plan) === JSON.stringify(plan);
    this.plan = plan;
    this.authenticated = true;
    if (!same && !this.stopping) {
      await this.scheduler?.stop();
      if (!this.reflector || !sameReflector(this.reflector, plan)) {
        await this.reflector?.close();
        this.reflector = await StampReflector.listen({ port: plan.reflector.port, host: plan.reflector.listenAddress, clock: this.clock });
      }
      for (const task of plan.tasks) {
        if (!this.engines.has(task.engine)) this.engines.set(task.engine, createEngine(task.engine, { clock: this.clock }));
      }
      const unmarked = dscpUnavailable();
      if (unmarked && plan.tasks.some((t) => t.engine === 'stamp' && t.dscp > 0)) {
        this.options.logger.warn(`STAMP packets will leave unmarked (DSCP 0): ${unmarked}`);
      }
      this.scheduler = new Scheduler(this.engines, (task, results) => this.collect(task, results), this.options.logger);
      this.scheduler.start(plan.tasks);
      if (this.sealTimer) clearInterval(this.sealTimer);
      this.sealTimer = setInterval(() => void this.spool.seal().then(() => this.pump()), plan.batchIntervalMs);
      this.options.logger.info({ tasks: plan.tasks.length, reflector: plan.reflector }, 'plan applied');
    }
    // After a (re)connect everything still spooled goes again, oldest first.
    void this.pump();
    this.firstPlan?.resolve();
    this.firstPlan = null;
  }

  private collect(task: PlanTask, results: TrainResult[]): void {
    for (const r of results) {
      this.counters.trains++;
      const sample: TrainSample = {
        trainId: randomUUID(),
        dst: task.dst,
        ...r,
        rttsUs: r.rttsUs.map(round3),
        fwdUs: r.fwdUs.map(round3),
        revUs: r.revUs.map(round3),
      };
      void this.spool.append(sample).then(
        () => this.options.onTrainSpooled?.(sample.trainId),
        (error: Error) => this.options.logger.error({ err: error.message }, 'spool write failed; train lost'),
      );
    }
  }

  /** Send spooled batches, oldest first, keeping at most SEND_WINDOW unacknowledged. */
  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      for (const { id } of this.spool.pending()) {
        if (!this.authenticated || this.onWire.size >= SEND_WINDOW || this.retryTimer) break;
        if (this.onWire.has(id)) continue;
        const stats = this.spool.stats();
        const batch = await this.spool.read(id, Date.now() * 1000);
        if (!batch || this.ws?.readyState !== WebSocket.OPEN) break;
        batch.spool = { batches: stats.batches, bytes: stats.bytes, droppedTrains: stats.droppedTrains };
        this.onWire.add(id);
        this.counters.batchesSent++;
        this.ws.send(JSON.stringify(batch));
      }
    } finally {
      this.pumping = false;
    }
  }
}

function sameReflector(reflector: StampReflector, plan: ProbePlan): boolean {
  const address = reflector.address();
  return address.port === plan.reflector.port && address.address === plan.reflector.listenAddress;
}

/** Nanosecond resolution is all a microsecond field needs on the wire. */
function round3(us: number): number {
  return Math.round(us * 1000) / 1000;
}
