/**
 * The probe agent: connects to the collector, says hello, receives its plan,
 * runs the reflector and the scheduled trains, and streams results in
 * batches. A batch stays in memory until the collector acknowledges it and
 * is re-sent after a reconnect, so a dropped connection loses nothing.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import WebSocket from 'ws';
import type { CollectorMessage, PlanTask, ProbeBatch, ProbePlan, TrainSample } from '../collector/index.js';
import { PROTOCOL_VERSION, MAX_BATCH_SAMPLES } from '../collector/index.js';
import { ClockSyncCache } from './engines/stamp/clock.js';
import { dscpUnavailable } from './engines/stamp/dscp.js';
import { StampReflector } from './engines/stamp/reflector.js';
import { createEngine } from './engines/registry.js';
import type { Engine, EngineName, TrainResult } from './engines/types.js';
import { Scheduler } from './scheduler.js';

export interface AgentOptions {
  /** Collector URL, e.g. ws://127.0.0.1:8080/v1/probe. */
  serverUrl: string;
  centre: string;
  token: string;
  version: string;
  logger: Logger;
  /** How long stop() waits for outstanding acknowledgements, ms. */
  drainTimeoutMs?: number;
}

export class AuthRefusedError extends Error {
  constructor(readonly code: string, message: string) {
    super(message);
    this.name = 'AuthRefusedError';
  }
}

export interface AgentStats {
  connected: boolean;
  trains: number;
  batchesSent: number;
  batchesAcked: number;
  pendingSamples: number;
  unackedBatches: number;
}

const RECONNECT_MIN_MS = 500;
const RECONNECT_MAX_MS = 30_000;

export class ProbeAgent {
  private ws: WebSocket | null = null;
  private plan: ProbePlan | null = null;
  private scheduler: Scheduler | null = null;
  private reflector: StampReflector | null = null;
  private readonly clock = new ClockSyncCache();
  private readonly engines = new Map<EngineName, Engine>();
  private pending: TrainSample[] = [];
  private readonly unacked = new Map<string, ProbeBatch>();
  private flushTimer: NodeJS.Timeout | null = null;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private reconnectDelay = RECONNECT_MIN_MS;
  private batchSeq = 0;
  private readonly runId = randomBytes(4).toString('hex');
  private stopping = false;
  /** True once this connection's hello was answered with a plan. */
  private authenticated = false;
  private readonly counters = { trains: 0, batchesSent: 0, batchesAcked: 0 };
  private firstPlan: { resolve: () => void; reject: (e: Error) => void } | null = null;
  private drained: (() => void) | null = null;

  constructor(private readonly options: AgentOptions) {}

  /** Connect and resolve once the first plan is running; rejects if the collector refuses us. */
  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.firstPlan = { resolve, reject };
      this.connect();
    });
  }

  stats(): AgentStats {
    return {
      connected: this.ws?.readyState === WebSocket.OPEN,
      ...this.counters,
      pendingSamples: this.pending.length,
      unackedBatches: this.unacked.size,
    };
  }

  currentPlan(): ProbePlan | null {
    return this.plan;
  }

  /** Stop measuring, send what is buffered, wait for its acks, then disconnect. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    await this.scheduler?.stop();
    this.flush();
    if (this.unacked.size > 0 && this.ws?.readyState === WebSocket.OPEN) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.options.drainTimeoutMs ?? 5000);
        this.drained = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    if (this.unacked.size > 0) {
      this.options.logger.warn({ batches: this.unacked.size }, 'stopping with unacknowledged batches (no disk spool yet)');
    }
    if (this.flushTimer) clearInterval(this.flushTimer);
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.ws?.close(1000, 'probe stopping');
    await this.reflector?.close();
    await Promise.all([...this.engines.values()].map((e) => e.close()));
    this.clock.close();
  }

  private connect(): void {
    const log = this.options.logger;
    this.authenticated = false;
    const ws = new WebSocket(this.options.serverUrl, { handshakeTimeout: 10_000, maxPayload: 4 * 1024 * 1024 });
    this.ws = ws;
    ws.on('open', () => {
      this.reconnectDelay = RECONNECT_MIN_MS;
      ws.send(JSON.stringify({
        type: 'hello', centre: this.options.centre, token: this.options.token,
        version: this.options.version, protocol: PROTOCOL_VERSION,
      }));
    });
    ws.on('message', (data) => this.onMessage(String(data)));
    ws.on('error', (error) => log.warn({ err: error.message }, 'collector connection error'));
    ws.on('close', (code, reason) => {
      this.ws = null;
      if (this.stopping) return;
      if (code === 4401) {
        const error = new AuthRefusedError('auth', `collector refused centre "${this.options.centre}": ${reason.toString() || 'authentication failed'}`);
        if (this.firstPlan) {
          this.firstPlan.reject(error);
          this.firstPlan = null;
          return;
        }
        log.error(error.message);
      }
      log.info({ code, retryInMs: this.reconnectDelay }, 'collector connection closed; reconnecting');
      this.reconnectTimer = setTimeout(() => this.connect(), this.reconnectDelay);
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
          this.options.logger.error({ err: error }, 'cannot apply plan');
          this.firstPlan?.reject(error);
          this.firstPlan = null;
        });
        break;
      case 'ack':
        if (this.unacked.delete(message.batchId)) this.counters.batchesAcked++;
        if (this.unacked.size === 0) this.drained?.();
        break;
      case 'error':
        this.onCollectorError(message);
        break;
    }
  }

  private onCollectorError(message: Extract<CollectorMessage, { type: 'error' }>): void {
    const log = this.options.logger;
    if (message.code === 'not_authenticated' && message.batchId) return; // resent after the plan arrives
    if (message.code === 'store_unavailable' && message.batchId) {
      log.warn({ batchId: message.batchId }, 'collector could not store a batch; retrying soon');
      const batch = this.unacked.get(message.batchId);
      if (batch) setTimeout(() => this.send(batch), 1000).unref();
      return;
    }
    if (message.batchId && this.unacked.delete(message.batchId)) {
      // The collector will never accept this batch; resending it would loop forever.
      log.error({ batchId: message.batchId, code: message.code }, `collector rejected a batch: ${message.error}`);
      if (this.unacked.size === 0) this.drained?.();
      return;
    }
    log.error({ code: message.code }, `collector error: ${message.error}`);
  }

  private async applyPlan(plan: ProbePlan): Promise<void> {
    const same = this.plan && JSON.stringify(this.plan) === JSON.stringify(plan);
    this.plan = plan;
    this.authenticated = true;
    if (!same) {
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
      this.flushTimer ??= setInterval(() => this.flush(), plan.batchIntervalMs);
      this.options.logger.info({ tasks: plan.tasks.length, reflector: plan.reflector }, 'plan applied');
    }
    // After a reconnect, everything not yet acknowledged goes again (the batch id makes it idempotent).
    for (const batch of this.unacked.values()) this.send(batch);
    this.firstPlan?.resolve();
    this.firstPlan = null;
  }

  private collect(task: PlanTask, results: TrainResult[]): void {
    for (const r of results) {
      this.counters.trains++;
      this.pending.push({ dst: task.dst, ...r, rttsUs: r.rttsUs.map(round3), fwdUs: r.fwdUs.map(round3), revUs: r.revUs.map(round3) });
    }
    if (this.pending.length >= MAX_BATCH_SAMPLES) this.flush();
  }

  private flush(): void {
    while (this.pending.length > 0) {
      const samples = this.pending.splice(0, MAX_BATCH_SAMPLES);
      const batch: ProbeBatch = { type: 'batch', batchId: `${this.options.centre}.${this.runId}.${++this.batchSeq}`, samples };
      this.unacked.set(batch.batchId, batch);
      this.send(batch);
    }
  }

  private send(batch: ProbeBatch): void {
    if (this.ws?.readyState !== WebSocket.OPEN || !this.authenticated) return;
    this.counters.batchesSent++;
    this.ws.send(JSON.stringify(batch));
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
