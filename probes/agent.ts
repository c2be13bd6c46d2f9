/**
 * The probe agent: connects to the collector, says hello, receives its plan,
 * runs the engines the plan asks for, and streams what they measure.
 *
 * Three parts, wired here: the uplink (probes/uplink.ts: the WebSocket,
 * hello, acknowledgements, resends, failover), plan application
 * (probes/plan-runner.ts: every registered engine given its part of each new
 * plan, trains on the shared scheduler), and the disk spool
 * (probes/spool.ts) between them. Every record goes to the spool first;
 * batches are sealed on the plan's interval and leave the spool only when
 * acknowledged, so a restart, a reconnect or another collector loses nothing.
 * Each train is checked against the wire schema before it is spooled.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { checkTrainSample, trainSampleSchema, type PlanTask, type ProbePlan, type ProbeReport, type TrainSample } from '../protocol/index.js';
import { ClockSyncCache } from './engines/stamp/clock.js';
import type { TrainResult } from './engines/types.js';
import { PlanRunner } from './plan-runner.js';
import { Spool, type SpoolStats } from './spool.js';
import { Uplink, type UplinkStats } from './uplink.js';

export { collectorStartIndex } from './uplink.js';

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

export interface AgentStats extends UplinkStats {
  trains: number;
  spool: SpoolStats;
}

export class ProbeAgent {
  private readonly clock = new ClockSyncCache();
  private readonly spool: Spool;
  private readonly uplink: Uplink;
  private readonly plans: PlanRunner;
  private stopping = false;
  private readonly counters = { trains: 0, trainsInvalid: 0 };
  private firstPlan: { resolve: () => void; reject: (e: Error) => void } | null = null;

  constructor(private readonly options: AgentOptions) {
    const serverUrls = typeof options.serverUrl === 'string' ? [options.serverUrl] : options.serverUrl;
    if (serverUrls.length === 0) throw new Error('no collector URL given');
    this.spool = Spool.open({ dir: options.spoolDir, centre: options.centre, maxBytes: options.spoolMaxBytes ?? 256 * 1024 * 1024 });
    this.uplink = new Uplink({
      serverUrls, centre: options.centre, token: options.token, version: options.version, logger: options.logger,
      spool: this.spool, caFile: options.caFile,
      report: () => this.report(),
      onPlan: (plan) => this.onPlan(plan),
      onRequest: (message) => this.plans.handle(message),
      onRefused: (reason) => {
        if (!this.firstPlan) return false;
        this.firstPlan.reject(new AuthRefusedError(`collector refused centre "${options.centre}": ${reason}`));
        this.firstPlan = null;
        return true;
      },
    });
    this.plans = new PlanRunner({
      logger: options.logger,
      clock: this.clock,
      record: (record) => this.spool.appendRecord(record),
      flush: () => this.uplink.flush(),
      send: (message) => this.uplink.send(message),
      stopping: () => this.stopping,
      sysfsNetRoot: options.sysfsNetRoot,
    }, (task, results) => this.spoolTrains(task, results), options.logger);
    const recovered = this.spool.stats();
    if (recovered.batches > 0) options.logger.info({ batches: recovered.batches }, 'spool holds batches from before; they are sent first');
  }

  /** Connect and resolve once the first plan is running; rejects if the collector refuses us. */
  start(): Promise<void> {
    this.plans.preflight();
    return new Promise((resolve, reject) => {
      this.firstPlan = { resolve, reject };
      this.uplink.connect();
    });
  }

  stats(): AgentStats {
    return { ...this.uplink.stats(), trains: this.counters.trains, spool: this.spool.stats() };
  }

  currentPlan(): ProbePlan | null {
    return this.plans.current();
  }

  /** How this probe measures now: sent in the hello and with every batch. */
  report(): ProbeReport {
    return { ...this.plans.engines.stamp.report(), enginesUnavailable: this.plans.engineStates() };
  }

  /** Stop measuring, seal and send what is spooled, wait (bounded) for acks, then disconnect. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.uplink.beginStop();
    await this.plans.stop(); // trains in flight, a NIC sample being read, a throughput test, a diagnostics run: all spooled
    await this.spool.seal();
    await this.uplink.drain(this.options.drainTimeoutMs ?? 5000);
    const left = this.spool.stats().batches;
    if (left > 0) this.options.logger.info({ batches: left }, 'unacknowledged batches stay in the spool for the next start');
    this.uplink.close();
    await this.plans.close();
    await this.spool.close();
    this.clock.close();
  }

  private onPlan(plan: ProbePlan): void {
    const applied = this.stopping ? Promise.resolve(false) : this.plans.apply(plan);
    void applied.then((changed) => {
      if (changed) {
        this.uplink.sealEvery(plan.batchIntervalMs);
        this.options.logger.info({ tasks: plan.tasks.length, reflector: plan.reflector }, 'plan applied');
      }
      // After a (re)connect everything still spooled goes again, oldest first.
      void this.uplink.pump();
      this.firstPlan?.resolve();
      this.firstPlan = null;
    }).catch((error: Error) => {
      this.options.logger.error({ err: error.message }, 'cannot apply plan');
      this.firstPlan?.reject(error);
      this.firstPlan = null;
    });
  }

  /** Each train checked against the wire schema, then made durable in the spool. */
  private spoolTrains(task: PlanTask, results: TrainResult[]): void {
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
      // A train the collector would refuse (an engine's bug) is dropped alone and said, instead of taking its whole batch with it.
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
}

/** Nanosecond resolution is all a microsecond field needs on the wire. */
function round3(us: number): number {
  return Math.round(us * 1000) / 1000;
}
