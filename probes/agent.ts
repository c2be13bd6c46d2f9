/**
 * The probe agent: connects to the collector, says hello, receives its plan,
 * runs the reflector and the scheduled trains, and streams results.
 *
 * Every train goes to the disk spool first (probes/spool.ts); batches are
 * sealed on the plan's interval and sent with a bounded window of
 * unacknowledged batches; a batch leaves the spool only when acknowledged. On
 * reconnect the spool is replayed in order. Reconnects back off
 * exponentially with jitter so a restarted server is not stampeded. Given
 * several collector URLs, the agent stays on one while it works and moves to
 * the next when the connection fails; unacknowledged batches go again there.
 */
import { createHash, randomUUID } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import type { Logger } from 'pino';
import WebSocket from 'ws';
import type { CollectorMessage, NicSampleRecord, PlanTask, ProbePlan, ProbeReport, ThroughputRun, ThroughputSampleRecord, TrainSample } from '../protocol/index.js';
import { PROTOCOL_VERSION, THROUGHPUT_KILL_SLACK_MS, trainSampleSchema } from '../protocol/index.js';
import { checkTrainSample } from '../protocol/index.js';
import { ClockSyncCache } from './engines/stamp/clock.js';
import { dscpUnavailable } from './engines/stamp/dscp.js';
import { datapathStatus } from './engines/stamp/native.js';
import { StampReflector } from './engines/stamp/reflector.js';
import { OPEN_POLICY, type ReflectorPolicy } from './engines/stamp/reflector-policy.js';
import { NicSampler, type NicSample } from './engines/nic/index.js';
import { DiagnosticsRunner } from './engines/diagnostics/index.js';
import { createEngine } from './engines/registry.js';
import { runThroughput, serveThroughput, type ThroughputResult, type ThroughputServerHandle } from './engines/throughput/index.js';
import type { Engine, EngineName, TrainResult } from './engines/types.js';
import { Scheduler } from './scheduler.js';
import { Spool, type SpoolStats } from './spool.js';

export interface AgentOptions {
  /**
   * Collector URL, e.g. wss://citymesh.example/v1/probe, or several: the agent
   * uses one at a time and moves to the next when the connection fails.
   */
  serverUrl: string | readonly string[];
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
  /** Where to read NIC counters (default /sys/class/net; tests point it into a namespace). */
  sysfsNetRoot?: string | undefined;
}

export class AuthRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AuthRefusedError';
  }
}

export interface AgentStats {
  connected: boolean;
  /** The collector URL in use (or being tried). */
  server: string;
  /** Times the agent moved on to another collector URL. */
  failovers: number;
  trains: number;
  batchesSent: number;
  batchesAcked: number;
  spool: SpoolStats;
}

const RECONNECT_MIN_MS = 500;
const RECONNECT_MAX_MS = 30_000;
/** A collector that accepted the connection but sends no plan is treated as failed. */
const PLAN_TIMEOUT_MS = 15_000;
/** WebSocket ping interval; a connection with no pong for two intervals is dead (a vanished host sends no RST). */
const HEARTBEAT_MS = 15_000;
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
  /** Traceroute, path MTU and a fast train towards a peer: on breach, or when the server asks. */
  private readonly diagnostics: DiagnosticsRunner;
  /** Batch ids sent on this connection and not yet answered. */
  private readonly onWire = new Set<string>();
  private sealTimer: NodeJS.Timeout | null = null;
  private nicTimer: NodeJS.Timeout | null = null;
  /** A NIC sample being read: stop() waits for it, so its record is in the last batch, not left in a journal. */
  private nicSampling: Promise<void> | null = null;
  private nicSampler: NicSampler | null = null;
  private throughputServer: ThroughputServerHandle | null = null;
  private throughputRunning: Promise<void> | null = null;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  /** stop() is sending what is spooled: retries still run until its drain window ends. */
  private draining = false;
  private reconnectDelay = RECONNECT_MIN_MS;
  private retryDelay = RECONNECT_MIN_MS;
  private stopping = false;
  /** True once this connection's hello was answered with a plan. */
  private authenticated = false;
  private pumping = false;
  private readonly counters = { trains: 0, batchesSent: 0, batchesAcked: 0, trainsInvalid: 0 };
  private firstPlan: { resolve: () => void; reject: (e: Error) => void } | null = null;
  private drained: (() => void) | null = null;
  private readonly ca: Buffer | undefined;
  private readonly serverUrls: readonly string[];
  private serverIndex: number;
  private failovers = 0;

  constructor(private readonly options: AgentOptions) {
    this.serverUrls = typeof options.serverUrl === 'string' ? [options.serverUrl] : options.serverUrl;
    if (this.serverUrls.length === 0) throw new Error('no collector URL given');
    this.serverIndex = collectorStartIndex(options.centre, this.serverUrls.length);
    this.spool = Spool.open({ dir: options.spoolDir, centre: options.centre, maxBytes: options.spoolMaxBytes ?? 256 * 1024 * 1024 });
    this.diagnostics = new DiagnosticsRunner({
      logger: options.logger,
      stamp: () => this.engines.get('stamp'),
      // Sealed at once: an operator is waiting for this result, not for the next batch interval.
      record: async (sample) => {
        await this.spool.appendRecord({ kind: 'diagnostics', sample });
        await this.spool.seal();
        void this.pump();
      },
    });
    this.ca = options.caFile ? readFileSync(options.caFile) : undefined;
    const recovered = this.spool.stats();
    if (recovered.batches > 0) options.logger.info({ batches: recovered.batches }, 'spool holds batches from before; they are sent first');
  }

  /** Connect and resolve once the first plan is running; rejects if the collector refuses us. */
  start(): Promise<void> {
    const { datapath, reason } = datapathStatus();
    if (datapath === 'js') this.options.logger.warn(`STAMP runs on the JavaScript fallback: ${reason}`);
    const noPing = createEngine('icmp').unavailable?.();
    if (noPing) this.options.logger.warn(`icmp engine unavailable: ${noPing}; ICMP paths are reported as such until it is installed`);
    return new Promise((resolve, reject) => {
      this.firstPlan = { resolve, reject };
      this.connect();
    });
  }

  stats(): AgentStats {
    return {
      connected: this.ws?.readyState === WebSocket.OPEN, server: this.serverUrls[this.serverIndex]!, failovers: this.failovers,
      ...this.counters, spool: this.spool.stats(),
    };
  }

  currentPlan(): ProbePlan | null {
    return this.plan;
  }

  /** How this probe measures now: sent in the hello and with every batch. */
  report(): ProbeReport {
    const { datapath, reason } = datapathStatus();
    const reflector = this.reflector?.stats() ?? null;
    return {
      datapath,
      datapathReason: reason,
      reflectorTimestamping: reflector?.timestamping ?? (datapath === 'native' ? 'kernel' : 'user'),
      enginesUnavailable: this.scheduler?.engineStates() ?? {},
      reflector: reflector ? { received: reflector.received, reflected: reflector.reflected, drops: reflector.drops } : null,
    };
  }

  /** Stop measuring, seal and send what is spooled, wait (bounded) for acks, then disconnect. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    await this.scheduler?.stop();
    if (this.nicTimer) clearInterval(this.nicTimer);
    await this.nicSampling;
    await this.throughputRunning; // a test in progress finishes and is spooled
    await this.diagnostics.close(); // a run in progress is cut short; what it found is spooled
    await this.spool.seal();
    // Drain what is spooled while a collector is, or is about to be, there: connected, or
    // mid-handshake, or with a reconnect already scheduled (a stop right after a network
    // cut must not leave the last batches behind just because the plan had not arrived yet).
    const reachable = this.authenticated || this.ws !== null || this.reconnectTimer !== null;
    if (this.spool.pending().length > 0 && reachable) {
      // A back-off from before the stop (the store was away, the server busy) must not sit out the drain:
      // retry at once, then briefly, until the drain window ends.
      if (this.retryTimer) clearTimeout(this.retryTimer);
      this.retryTimer = null;
      this.draining = true;
      void this.pump();
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.options.drainTimeoutMs ?? 5000);
        this.drained = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.draining = false;
    }
    const left = this.spool.stats().batches;
    if (left > 0) this.options.logger.info({ batches: left }, 'unacknowledged batches stay in the spool for the next start');
    for (const timer of [this.sealTimer, this.reconnectTimer, this.retryTimer]) if (timer) clearTimeout(timer);
    if (this.sealTimer) clearInterval(this.sealTimer);
    if (this.nicTimer) clearInterval(this.nicTimer);
    await this.throughputServer?.stop();
    this.ws?.close(1000, 'probe stopping');
    await this.reflector?.close();
    await Promise.all([...this.engines.values()].map((e) => e.close()));
    await this.spool.close();
    this.clock.close();
  }

  private connect(): void {
    const log = this.options.logger;
    this.authenticated = false;
    this.onWire.clear();
    const url = this.serverUrls[this.serverIndex]!;
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
        version: this.options.version, protocol: PROTOCOL_VERSION, report: this.report(),
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
      if (code === 4401 && this.firstPlan) {
        this.firstPlan.reject(new AuthRefusedError(`collector refused centre "${this.options.centre}": ${reason.toString() || 'authentication failed'}`));
        this.firstPlan = null;
        return;
      }
      // Next collector in the list; what was not acknowledged is resent there from the spool.
      if (this.serverUrls.length > 1) {
        this.serverIndex = (this.serverIndex + 1) % this.serverUrls.length;
        this.failovers++;
      }
      // Full jitter: a fleet of probes reconnecting after a server restart spreads out.
      const delay = Math.round(Math.random() * this.reconnectDelay);
      log.info({ code, server: url, next: this.serverUrls[this.serverIndex], retryInMs: delay }, 'collector connection closed; reconnecting');
      this.reconnectTimer = setTimeout(() => {
        this.reconnectTimer = null;
        this.connect();
      }, delay);
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
      case 'diagnose':
        this.diagnostics.request(message);
        break;
      case 'throughput_run':
        this.runThroughputTest(message);
        break;
    }
  }

  /** The server asked this probe (the client end of a link) to test it now; one test at a time. */
  private runThroughputTest(request: ThroughputRun): void {
    if (this.throughputRunning || this.stopping) {
      this.sendJson({ type: 'throughput_done', testId: request.testId, ok: false, error: 'probe busy with another test or stopping' });
      return;
    }
    const log = this.options.logger.child({ testId: request.testId, dst: request.dst });
    log.info('throughput test starting');
    const work = (async () => {
      const result = await runThroughput({
        engine: request.engine,
        host: request.host,
        port: request.port,
        streams: request.streams,
        seconds: request.seconds,
        omitSeconds: request.omitSeconds,
        reverse: request.direction === 'reverse',
        bidir: request.direction === 'bidir',
        bindAddress: request.sourceAddress ?? undefined,
        killAfterMs: (request.seconds + request.omitSeconds) * 1000 + THROUGHPUT_KILL_SLACK_MS,
      });
      const record = throughputRecord(request, result, Date.now());
      await this.spool.appendRecord({ kind: 'throughput', sample: record });
      log.info({ ok: record.ok, forwardBps: record.forwardBps, reverseBps: record.reverseBps, error: record.error }, 'throughput test finished');
      return { ok: record.ok, error: record.error, forwardBps: record.forwardBps, reverseBps: record.reverseBps };
    })().catch((error: Error) => {
      log.error({ err: error.message }, 'throughput test crashed');
      return { ok: false, error: `probe error: ${error.message}`, forwardBps: null, reverseBps: null };
    });
    this.throughputRunning = work.then(async (outcome) => {
      // Free this probe before telling the server, which may send the next test at once.
      this.throughputRunning = null;
      this.sendJson({ type: 'throughput_done', testId: request.testId, ...outcome });
      await this.spool.seal();
      void this.pump();
    });
  }

  private sendJson(message: unknown): void {
    if (this.ws?.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
  }

  private async sampleNics(interfaces: { name: string; peer: string | null }[], intervalS: number): Promise<void> {
    const samples = await this.nicSampler!.sample(interfaces.map((i) => i.name));
    for (const sample of samples) {
      const record = nicRecord(sample, interfaces.find((i) => i.name === sample.interface)?.peer ?? null, intervalS);
      if (record) await this.spool.appendRecord({ kind: 'nic', sample: record });
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
      case 'batch_conflict':
        // The id was stored before with other content (a reset or copied spool reuses ids): same records, new id.
        if (id) {
          void this.spool.renew(id).then((renewed) => {
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
          void this.spool.discard(id).then(() => this.pump());
          return;
        }
        log.error({ code: message.code }, `collector error: ${message.error}`);
    }
  }

  private scheduleRetry(): void {
    if (this.retryTimer || (this.stopping && !this.draining)) return;
    // While a stop drains the spool its window is short: retry every ~200 ms rather than backing off past it.
    const delay = this.draining ? 150 + Math.round(Math.random() * 100) : Math.round(this.retryDelay / 2 + Math.random() * (this.retryDelay / 2));
    if (!this.draining) this.retryDelay = Math.min(RECONNECT_MAX_MS, this.retryDelay * 2);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.pump();
    }, delay);
  }

  private async applyPlan(plan: ProbePlan): Promise<void> {
    const same = this.plan && JSON.stringify(this.plan) === JSON.stringify(plan);
    this.plan = plan;
    if (!this.authenticated) this.options.logger.info({ server: this.serverUrls[this.serverIndex] }, 'collector connected: plan received');
    this.authenticated = true;
    if (!same && !this.stopping) {
      await this.scheduler?.stop();
      const policy = await reflectorPolicy(plan, this.options.logger);
      if (!this.reflector || !sameReflector(this.reflector, plan)) {
        await this.reflector?.close();
        this.reflector = await StampReflector.listen({ port: plan.reflector.port, host: plan.reflector.listenAddress, clock: this.clock, policy });
      } else {
        this.reflector.setPolicy(policy);
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
      this.diagnostics.applyPlan(plan);
      await this.applyCapacityPlan(plan);
      if (this.sealTimer) clearInterval(this.sealTimer);
      this.sealTimer = setInterval(() => void this.spool.seal().then(() => this.pump()), plan.batchIntervalMs);
      this.options.logger.info({ tasks: plan.tasks.length, reflector: plan.reflector }, 'plan applied');
    }
    // After a (re)connect everything still spooled goes again, oldest first.
    void this.pump();
    this.firstPlan?.resolve();
    this.firstPlan = null;
  }

  /** The throughput server peers test against, and the passive NIC sampler. */
  private async applyCapacityPlan(plan: ProbePlan): Promise<void> {
    const wanted = plan.throughputServer;
    if (this.throughputServer && (!wanted || wanted.port !== this.throughputServer.port)) {
      await this.throughputServer.stop();
      this.throughputServer = null;
    }
    if (wanted && !this.throughputServer) {
      try {
        this.throughputServer = await serveThroughput({
          engine: wanted.engine, port: wanted.port, host: wanted.listenAddress === '0.0.0.0' ? undefined : wanted.listenAddress,
        });
        this.options.logger.info({ engine: this.throughputServer.engine, port: this.throughputServer.port }, 'throughput server ready');
      } catch (error) {
        // Latency measurement goes on; peers' tests against us will fail with a clear error.
        this.options.logger.error({ err: (error as Error).message }, 'throughput server could not start');
      }
    }
    if (this.nicTimer) clearInterval(this.nicTimer);
    this.nicTimer = null;
    if (plan.nic) {
      const { interfaces, intervalS } = plan.nic;
      this.nicSampler = new NicSampler(this.options.sysfsNetRoot ? { sysfsRoot: this.options.sysfsNetRoot } : {});
      await this.nicSampler.sample(interfaces.map((i) => i.name)); // first snapshot: rates start at the next tick
      this.nicTimer = setInterval(() => {
        const sampling = this.sampleNics(interfaces, intervalS).catch((error: Error) => this.options.logger.warn({ err: error.message }, 'NIC sampling failed'));
        this.nicSampling = sampling;
        void sampling.finally(() => {
          if (this.nicSampling === sampling) this.nicSampling = null;
        });
      }, intervalS * 1000);
    }
  }

  private collect(task: PlanTask, results: TrainResult[]): void {
    this.diagnostics.observe(task, results);
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
      // Checked against the wire schema before it is spooled: a train the collector would refuse
      // (an engine's bug) is dropped alone and said, instead of taking its whole batch with it.
      if (!checkTrainSample(sample)) {
        const parsed = trainSampleSchema.safeParse(sample);
        if (!parsed.success) {
          this.counters.trainsInvalid++;
          const issue = parsed.error.issues[0];
          // The first, then every 100th: an engine that is wrong every time must not flood the log.
          if (this.counters.trainsInvalid % 100 === 1) this.options.logger.error({ task: task.id, field: issue?.path.join('.'), trainsInvalid: this.counters.trainsInvalid },
            `measured train not valid for the collector (${issue?.path.join('.')}: ${issue?.message}); dropped, not sent`);
          continue;
        }
      }
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
        batch.report = this.report();
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

/**
 * The plan's reflector policy with peer host names resolved to addresses (a
 * name that does not resolve is logged and left out: that peer's packets are
 * then refused and counted as notAllowed). A plan from an older server has
 * none: answer anyone, rate limited.
 */
async function reflectorPolicy(plan: ProbePlan, logger: Logger): Promise<ReflectorPolicy> {
  const p = plan.reflector.policy;
  if (!p) return OPEN_POLICY;
  const allow: string[] = [];
  for (const entry of new Set(p.allow)) {
    if (isIP(entry.split('/')[0] ?? '')) {
      allow.push(entry);
      continue;
    }
    try {
      allow.push(...(await lookup(entry, { all: true })).map((a) => a.address));
    } catch (error) {
      logger.warn({ host: entry, err: (error as Error).message }, 'reflector: peer host name does not resolve; its packets will be refused');
    }
  }
  return { allowAny: p.allowAny, allow, denyPorts: [], ratePps: p.ratePps, burst: p.burst };
}

function sameReflector(reflector: StampReflector, plan: ProbePlan): boolean {
  const address = reflector.address();
  return address.port === plan.reflector.port && address.address === plan.reflector.listenAddress;
}

/** Nanosecond resolution is all a microsecond field needs on the wire. */
function round3(us: number): number {
  return Math.round(us * 1000) / 1000;
}

/** `endedAtMs`: when the test's processes were done, so the record says exactly when the link was loaded. */
function throughputRecord(request: ThroughputRun, r: ThroughputResult, endedAtMs: number): ThroughputSampleRecord {
  const leg = (direction: 'forward' | 'reverse') => r.legs.find((l) => l.direction === direction)?.receivedBps ?? null;
  const ok = r.ok && (leg('forward') !== null || leg('reverse') !== null);
  return {
    testId: request.testId,
    dst: request.dst,
    trigger: request.trigger,
    startedAtUs: Math.round((r.startedAtMs ?? endedAtMs) * 1000),
    endedAtUs: Math.round(endedAtMs * 1000),
    engine: r.engine,
    engineVersion: r.engineVersion,
    ok,
    error: ok ? null : (r.error ?? `${r.engine}: no direction carried data`),
    direction: r.direction,
    streams: r.streams,
    seconds: r.seconds,
    forwardBps: ok ? leg('forward') : null,
    reverseBps: ok ? leg('reverse') : null,
    retransmits: ok ? r.retransmits : null,
    cpuLocalPct: r.cpu.localPercent,
    cpuRemotePct: r.cpu.remotePercent,
  };
}

function nicRecord(sample: NicSample, peer: string | null, intervalS: number): NicSampleRecord | null {
  if (!sample.snapshot || !sample.rates) return null;
  const r = sample.rates;
  return {
    sampleId: randomUUID(),
    interface: sample.interface,
    peer,
    atUs: Math.round(sample.snapshot.atMs * 1000),
    intervalS: r.intervalSeconds > 0 ? r.intervalSeconds : intervalS,
    speedMbps: sample.snapshot.speedMbps,
    operState: sample.snapshot.operstate,
    reset: r.reset,
    rxBps: r.rxBitsPerSec, txBps: r.txBitsPerSec, rxPps: r.rxPacketsPerSec, txPps: r.txPacketsPerSec,
    rxErrorsPs: r.rxErrorsPerSec, txErrorsPs: r.txErrorsPerSec, rxDropsPs: r.rxDropsPerSec, txDropsPs: r.txDropsPerSec,
    utilisation: r.utilisation,
  };
}
