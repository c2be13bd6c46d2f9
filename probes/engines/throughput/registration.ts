/**
 * Throughput as the probe runs it: the server its peers test against (from
 * the plan's `throughputServer`), and, when the collector sends a
 * `throughput_run`, one test at a time as the client end of a link, spooled
 * as a `throughput` record and answered with `throughput_done`.
 */
import { THROUGHPUT_KILL_SLACK_MS, type ProbePlan, type ThroughputRun, type ThroughputSampleRecord } from '../../../protocol/index.js';
import type { EngineContext, EngineRegistration, EngineRequest, RunningEngine } from '../registration.js';
import { runThroughput, serveThroughput, type ThroughputResult, type ThroughputServerHandle } from './index.js';

export type ThroughputConfig = NonNullable<ProbePlan['throughputServer']>;

export const throughputRegistration: EngineRegistration<'throughput', ThroughputConfig, RunningEngine<ThroughputConfig>> = {
  name: 'throughput',
  records: ['throughput'],
  messages: ['throughput_run'],
  configFrom: (plan) => plan.throughputServer,
  start: (context) => new ThroughputRunner(context),
};

class ThroughputRunner implements RunningEngine<ThroughputConfig> {
  private server: ThroughputServerHandle | null = null;
  private running: Promise<void> | null = null;

  constructor(private readonly context: EngineContext) {}

  async apply(wanted: ThroughputConfig | null): Promise<void> {
    if (this.server && (!wanted || wanted.port !== this.server.port)) {
      await this.server.stop();
      this.server = null;
    }
    if (wanted && !this.server) {
      try {
        this.server = await serveThroughput({
          engine: wanted.engine, port: wanted.port, host: wanted.listenAddress === '0.0.0.0' ? undefined : wanted.listenAddress,
        });
        this.context.logger.info({ engine: this.server.engine, port: this.server.port }, 'throughput server ready');
      } catch (error) {
        // Latency measurement goes on; peers' tests against us will fail with a clear error.
        this.context.logger.error({ err: (error as Error).message }, 'throughput server could not start');
      }
    }
  }

  handle(message: EngineRequest): void {
    if (message.type === 'throughput_run') this.run(message);
  }

  /** The server asked this probe (the client end of a link) to test it now; one test at a time. */
  private run(request: ThroughputRun): void {
    if (this.running || this.context.stopping()) {
      this.context.send({ type: 'throughput_done', testId: request.testId, ok: false, error: 'probe busy with another test or stopping' });
      return;
    }
    const log = this.context.logger.child({ testId: request.testId, dst: request.dst });
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
      await this.context.record({ kind: 'throughput', sample: record });
      log.info({ ok: record.ok, forwardBps: record.forwardBps, reverseBps: record.reverseBps, error: record.error }, 'throughput test finished');
      return { ok: record.ok, error: record.error, forwardBps: record.forwardBps, reverseBps: record.reverseBps };
    })().catch((error: Error) => {
      log.error({ err: error.message }, 'throughput test crashed');
      return { ok: false, error: `probe error: ${error.message}`, forwardBps: null, reverseBps: null };
    });
    this.running = work.then(async (outcome) => {
      // Free this probe before telling the server, which may send the next test at once.
      this.running = null;
      this.context.send({ type: 'throughput_done', testId: request.testId, ...outcome });
      await this.context.flush();
    });
  }

  /** A test in progress finishes and is spooled. */
  async stop(): Promise<void> {
    await this.running;
  }

  /** The server stays up until the spool drained: a peer's test against us may still be running. */
  async close(): Promise<void> {
    await this.server?.stop();
    this.server = null;
  }
}

/** `endedAtMs`: when the test's processes were done, so the record says exactly when the link was loaded. */
export function throughputRecord(request: ThroughputRun, r: ThroughputResult, endedAtMs: number): ThroughputSampleRecord {
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
