/**
 * Diagnostics on breach: towards one peer, a traceroute and a path-MTU check
 * (run side by side: they are a few small packets each), then a short STAMP
 * train at a high rate on the probe's own STAMP engine, summarised like every
 * train. Every failure (tool missing, timeout, no route, no reflector) is part
 * of the result with its reason; runDiagnostics never rejects. The whole run
 * is bounded well under 30 s: each tool is killed at TOOL_TIMEOUT_MS, and the
 * train lasts count x interval plus its reply timeout.
 */
import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import type { DiagnoseRequest, DiagnosticSampleRecord, DiagnosticsPolicy, FastTrainResult, PlanTask, ProbePlan } from '../../../protocol/index.js';
import type { Engine, TrainResult } from '../types.js';
import { BreachWatcher, judgeTrain } from './breach.js';
import { runTracepath } from './tracepath.js';
import { runTraceroute } from './traceroute.js';
import { clipText } from '../../../protocol/index.js';

export { BreachWatcher, judgeTrain, type BreachPolicy, type BreachVerdict } from './breach.js';
export { parseTraceroute, tracerouteReached, runTraceroute, type TracerouteParse, type TracerouteHop } from './traceroute.js';
export { parseTracepath, runTracepath, type TracepathParse } from './tracepath.js';
export { runTool, type ToolRun } from './tools.js';

/** Each tool's bound; they run in parallel, so together with the fast train a run stays under 30 s. */
export const TOOL_TIMEOUT_MS = 12_000;
/** How long the fast train waits for the last replies. */
const FAST_TRAIN_REPLY_TIMEOUT_MS = 1000;
/** Longest fast train accepted: count x interval. */
const FAST_TRAIN_MAX_MS = 10_000;

export interface DiagnosticsTarget {
  dst: string;
  host: string;
  /** The peer's STAMP reflector port. */
  stampPort: number;
  sourceAddress: string | null;
  dscp: number;
}

export interface DiagnosticsOptions {
  target: DiagnosticsTarget;
  maxHops: number;
  fastTrainCount: number;
  fastTrainIntervalMs: number;
  /** The probe's STAMP engine (its pooled sockets and clock); undefined: the fast train fails with that reason. */
  stamp: Engine | undefined;
  trigger: 'breach' | 'operator';
  requestId: string | null;
  reason: string;
  toolTimeoutMs?: number;
  /** Override the binaries (tests prove a missing tool becomes a reason). */
  commands?: { traceroute?: string; tracepath?: string };
  /** argv in front of both tools, e.g. `ip netns exec NS`. */
  commandPrefix?: readonly string[];
  signal?: AbortSignal | undefined;
}

export async function runDiagnostics(options: DiagnosticsOptions): Promise<DiagnosticSampleRecord> {
  const startedMs = Date.now();
  const { target } = options;
  const toolTimeoutMs = options.toolTimeoutMs ?? TOOL_TIMEOUT_MS;
  const [traceroute, pathMtu] = await Promise.all([
    runTraceroute({
      host: target.host, maxHops: options.maxHops, sourceAddress: target.sourceAddress, timeoutMs: toolTimeoutMs, signal: options.signal,
      ...(options.commands?.traceroute ? { command: options.commands.traceroute } : {}),
      ...(options.commandPrefix ? { commandPrefix: options.commandPrefix } : {}),
    }),
    runTracepath({
      host: target.host, maxHops: options.maxHops, timeoutMs: toolTimeoutMs, signal: options.signal,
      ...(options.commands?.tracepath ? { command: options.commands.tracepath } : {}),
      ...(options.commandPrefix ? { commandPrefix: options.commandPrefix } : {}),
    }),
  ]);
  const fastTrain = await runFastTrain(options);
  return {
    runId: `dg-${randomUUID()}`,
    dst: target.dst,
    trigger: options.trigger,
    requestId: options.requestId,
    reason: clipText(options.reason, 500),
    startedAtUs: startedMs * 1000,
    durationMs: Date.now() - startedMs,
    traceroute,
    pathMtu,
    fastTrain,
  };
}

async function runFastTrain(options: DiagnosticsOptions): Promise<FastTrainResult> {
  const count = options.fastTrainCount;
  const intervalMs = options.fastTrainIntervalMs;
  const failed = (error: string): FastTrainResult => ({
    ok: false, error, count, intervalMs, sent: 0, received: 0,
    rttMinUs: null, rttMedianUs: null, rttP99Us: null, rttMaxUs: null, jitterUs: null,
  });
  if (!options.stamp) return failed('no STAMP engine on this probe');
  if (count * intervalMs > FAST_TRAIN_MAX_MS) return failed(`a fast train of ${count} x ${intervalMs} ms exceeds ${FAST_TRAIN_MAX_MS} ms`);
  let results: TrainResult[];
  try {
    results = await options.stamp.runTrain({
      host: options.target.host, port: options.target.stampPort, count, intervalMs, timeoutMs: FAST_TRAIN_REPLY_TIMEOUT_MS,
      dscp: options.target.dscp, flows: 1, sourceAddress: options.target.sourceAddress ?? undefined,
    }, options.signal);
  } catch (error) {
    return failed(`STAMP: ${(error as Error).message}`);
  }
  const r = results[0];
  if (!r) return failed('STAMP returned no flow');
  const ok = r.received > 0;
  return {
    ok, error: ok ? null : `no reply from the STAMP reflector at ${options.target.host}:${options.target.stampPort} (${r.sent} packets sent)`,
    count, intervalMs, sent: r.sent, received: r.received,
    rttMinUs: r.rttMinUs, rttMedianUs: r.rttMedianUs, rttP99Us: r.rttP99Us, rttMaxUs: r.rttMaxUs, jitterUs: r.jitterUs,
  };
}

export interface DiagnosticsRunnerOptions {
  logger: Logger;
  /** The probe's STAMP engine, when it has one. */
  stamp: () => Engine | undefined;
  /** Make a finished run durable (the agent spools it and sends it like any record). */
  record: (sample: DiagnosticSampleRecord) => Promise<void>;
  now?: () => number;
  commands?: { traceroute?: string; tracepath?: string };
}

/** Request ids remembered so a request delivered twice (by two polls or two servers) runs once. */
const REMEMBERED_REQUESTS = 10_000;

/**
 * The probe's diagnostics: watches its own trains for breaches, takes operator
 * requests from the server (deduplicated by request id), runs at most one
 * diagnostics run per peer at a time, and hands each result to the spool.
 */
export class DiagnosticsRunner {
  private policy: DiagnosticsPolicy | null = null;
  private targets = new Map<string, DiagnosticsTarget>();
  private readonly watcher = new BreachWatcher({ breachTrains: 3, minIntervalS: 600 });
  private readonly seenRequests = new Set<string>();
  private readonly perPeer = new Map<string, Promise<void>>();
  private readonly running = new Set<Promise<void>>();
  private readonly abort = new AbortController();
  private closed = false;

  constructor(private readonly options: DiagnosticsRunnerOptions) {}

  applyPlan(plan: Pick<ProbePlan, 'diagnostics' | 'tasks'>): void {
    this.policy = plan.diagnostics ?? null;
    if (this.policy) this.watcher.setPolicy(this.policy);
    const targets = new Map<string, DiagnosticsTarget>();
    for (const task of plan.tasks) {
      // The STAMP task names the peer's reflector; an ICMP-only peer still gets traceroute and PMTU.
      if (task.engine === 'stamp' || !targets.has(task.dst)) {
        targets.set(task.dst, { dst: task.dst, host: task.host, stampPort: task.engine === 'stamp' ? task.port : 0, sourceAddress: task.sourceAddress, dscp: task.dscp });
      }
    }
    this.targets = targets;
  }

  /** One train of a plan task finished: count it towards the breach trigger. */
  observe(task: PlanTask, results: readonly TrainResult[]): void {
    if (this.closed || !this.policy?.enabled || !task.target || results.length === 0) return;
    const reason = this.watcher.observe(task.dst, judgeTrain(results, task.target), (this.options.now ?? Date.now)());
    if (reason) this.start(task.dst, 'breach', null, reason);
  }

  /** The server asked for diagnostics towards a peer; a request id already seen is ignored. */
  request(message: DiagnoseRequest): boolean {
    if (this.closed || this.seenRequests.has(message.requestId)) return false;
    this.seenRequests.add(message.requestId);
    if (this.seenRequests.size > REMEMBERED_REQUESTS) this.seenRequests.delete(this.seenRequests.values().next().value!);
    this.start(message.dst, 'operator', message.requestId, `requested by ${message.requestedBy}`);
    return true;
  }

  /** Runs in progress have finished (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.running.size > 0) await Promise.allSettled([...this.running]);
  }

  /** Stop starting runs; cut the ones in progress short (their partial results are still recorded). */
  async close(): Promise<void> {
    this.closed = true;
    this.abort.abort();
    await this.idle();
  }

  private start(dst: string, trigger: 'breach' | 'operator', requestId: string | null, reason: string): void {
    const log = this.options.logger.child({ part: 'diagnostics', dst, trigger, ...(requestId ? { requestId } : {}) });
    const previous = this.perPeer.get(dst) ?? Promise.resolve();
    const work = previous.then(async () => {
      const target = this.targets.get(dst);
      const policy = this.policy;
      log.info({ reason }, 'diagnostics starting');
      const sample = target
        ? await runDiagnostics({
          target,
          maxHops: policy?.maxHops ?? 16,
          fastTrainCount: policy?.fastTrainCount ?? 200,
          fastTrainIntervalMs: policy?.fastTrainIntervalMs ?? 1,
          stamp: target.stampPort > 0 ? this.options.stamp() : undefined,
          trigger, requestId, reason, signal: this.abort.signal,
          ...(this.options.commands ? { commands: this.options.commands } : {}),
        })
        : notRun({ dst, trigger, requestId, reason, maxHops: policy?.maxHops ?? 16 }, `no plan task towards "${dst}" on this probe`);
      await this.options.record(sample);
      log.info({
        runId: sample.runId, hops: sample.traceroute.hops.length, reached: sample.traceroute.reached, pmtu: sample.pathMtu.pmtu,
        fastP99Us: sample.fastTrain.rttP99Us, durationMs: sample.durationMs,
      }, 'diagnostics finished');
    }).catch((error: Error) => log.error({ err: error.message }, 'diagnostics run could not be recorded'));
    this.perPeer.set(dst, work);
    this.running.add(work);
    void work.finally(() => {
      this.running.delete(work);
      if (this.perPeer.get(dst) === work) this.perPeer.delete(dst);
    });
  }
}

/** A run that could not start (e.g. a peer the plan does not name): still a result, with the reason. */
export function notRun(
  run: { dst: string; trigger: 'breach' | 'operator'; requestId: string | null; reason: string; maxHops: number },
  error: string,
): DiagnosticSampleRecord {
  return {
    runId: `dg-${randomUUID()}`, dst: run.dst, trigger: run.trigger, requestId: run.requestId, reason: clipText(run.reason, 500),
    startedAtUs: Date.now() * 1000, durationMs: 0,
    traceroute: { ok: false, error, tool: null, maxHops: run.maxHops, reached: false, hops: [] },
    pathMtu: { ok: false, error, tool: null, pmtu: null, dropAtTtl: null, reached: false },
    fastTrain: {
      ok: false, error, count: 0, intervalMs: 0, sent: 0, received: 0,
      rttMinUs: null, rttMedianUs: null, rttP99Us: null, rttMaxUs: null, jitterUs: null,
    },
  };
}
