/**
 * One-shot troubleshooting tools: a single train to a target, printed for a
 * human or as JSON, and a standalone STAMP reflector.
 */
import { ClockSyncCache } from './engines/stamp/clock.js';
import { StampReflector } from './engines/stamp/reflector.js';
import { createEngine } from './engines/registry.js';
import type { EngineName, TrainResult, TrainTask } from './engines/types.js';

export interface MeasureFlags {
  target: string;
  count: string;
  intervalMs: string;
  timeoutMs: string;
  flows: string;
  dscp: string;
  source?: string;
  json?: boolean;
}

export function parseTarget(engine: EngineName, target: string): { host: string; port: number } {
  if (engine === 'icmp') return { host: target, port: 0 };
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(target);
  const port = Number(match?.[3]);
  if (!match || port < 1 || port > 65535) {
    throw new Error(`--target: "${target}" must be HOST:PORT (e.g. 127.0.0.1:862, [::1]:862)`);
  }
  return { host: (match[1] ?? match[2])!, port };
}

function intFlag(name: string, text: string, min: number, max: number): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value < min || value > max) throw new Error(`--${name}: "${text}" must be a number from ${min} to ${max}`);
  return value;
}

export async function measure(engineName: EngineName, flags: MeasureFlags): Promise<TrainResult[]> {
  const { host, port } = parseTarget(engineName, flags.target);
  const task: TrainTask = {
    host,
    port,
    count: intFlag('count', flags.count, 1, 10_000),
    intervalMs: intFlag('interval-ms', flags.intervalMs, engineName === 'icmp' ? 2 : 0.1, 60_000),
    timeoutMs: intFlag('timeout-ms', flags.timeoutMs, 1, 60_000),
    flows: intFlag('flows', flags.flows, 1, 64),
    dscp: intFlag('dscp', flags.dscp, 0, 63),
    sourceAddress: flags.source,
  };
  const clock = new ClockSyncCache();
  const engine = createEngine(engineName, { clock });
  try {
    await clock.ready();
    return await engine.runTrain(task);
  } finally {
    await engine.close();
    clock.close();
  }
}

export function formatResults(target: string, results: TrainResult[]): string {
  const f = (us: number | null) => (us === null ? '-' : `${(us / 1000).toFixed(3)} ms`);
  const lines = [`${results[0]?.engine ?? ''} to ${target}`];
  for (const r of results) {
    lines.push(
      `  flow ${r.flow}${r.srcPort ? ` (src port ${r.srcPort})` : ''}: sent ${r.sent}, received ${r.received}, lost ${r.lost}, ` +
        `dup ${r.duplicated}, reordered ${r.reordered}`,
      `    rtt min ${f(r.rttMinUs)}  median ${f(r.rttMedianUs)}  p99 ${f(r.rttP99Us)}  max ${f(r.rttMaxUs)}  jitter(ipdv) ${f(r.jitterUs)}`,
      `    clocks ${r.synced ? 'synchronised' : 'not synchronised (one-way delay not reported)'}, error bound ${f(r.errorEstimateUs)}`,
    );
  }
  return lines.join('\n');
}

export async function reflect(port: number, host: string): Promise<StampReflector> {
  const clock = new ClockSyncCache();
  return StampReflector.listen({ port, host, clock });
}
