/**
 * Throughput engines behind one call: iperf3 (the reference operators
 * trust) when the host has it, else the native Node TCP engine. The result
 * always says which engine ran. The two engines do not speak each other's
 * protocol: the peer must run the matching server (see `serveThroughput`).
 */
import {
  DEFAULT_IPERF3_PORT,
  Iperf3Server,
  detectIperf3,
  runIperf3,
  type Iperf3Command,
  type Iperf3Detection,
} from './iperf3.js';
import { DEFAULT_NATIVE_PORT, NativeThroughputServer, runNativeTest } from './native.js';
import { type ThroughputEngineName, type ThroughputOptions, type ThroughputResult } from './types.js';

export * from './types.js';
export {
  DEFAULT_IPERF3_PORT,
  Iperf3Server,
  detectIperf3,
  iperf3ClientArgs,
  parseIperf3Json,
  runIperf3,
  type Iperf3Command,
  type Iperf3Detection,
  type Iperf3ParseContext,
  type Iperf3RunOptions,
  type Iperf3ServerOptions,
  type Iperf3ServerState,
  type Iperf3ServerStatus,
} from './iperf3.js';
export {
  DEFAULT_NATIVE_PORT,
  NATIVE_ENGINE_VERSION,
  NativeThroughputServer,
  runNativeTest,
  type NativeServerOptions,
  type NativeTestOptions,
} from './native.js';

export type ThroughputEngineChoice = ThroughputEngineName | 'auto';

export const throughputEngineNames: readonly ThroughputEngineName[] = ['iperf3', 'native'];

export function defaultPort(engine: ThroughputEngineName): number {
  return engine === 'iperf3' ? DEFAULT_IPERF3_PORT : DEFAULT_NATIVE_PORT;
}

export interface RunThroughputOptions extends ThroughputOptions {
  /** Default 'auto': iperf3 when this host has it, else native. */
  engine?: ThroughputEngineChoice | undefined;
  /** How to run iperf3 (binary, wrapper such as `ip netns exec NS`, zerocopy, family). */
  iperf3?: (Iperf3Command & { zerocopy?: boolean | undefined; family?: 4 | 6 | undefined }) | undefined;
}

export interface EngineChoice {
  engine: ThroughputEngineName;
  /** Why this engine, when it was not asked for by name. */
  note: string | null;
}

/** Resolve 'auto' (iperf3 detection runs once per command and is cached). */
export async function chooseThroughputEngine(choice: ThroughputEngineChoice = 'auto', iperf3Command = 'iperf3'): Promise<EngineChoice> {
  if (choice === 'iperf3' || choice === 'native') return { engine: choice, note: null };
  const d: Iperf3Detection = await detectIperf3(iperf3Command);
  if (d.available) return { engine: 'iperf3', note: `auto: ${d.version ?? 'iperf3'} found, ran iperf3` };
  return { engine: 'native', note: `auto: ${d.reason ?? 'iperf3 unavailable'}; ran the native engine` };
}

/**
 * Run one throughput test with the chosen engine. Measurement failures (bad
 * options, missing iperf3, refused, busy, timeout, abort) are `ok: false`
 * results with `error` set and all figures null; it rejects only for an
 * engine name outside iperf3|native|auto (a programming error).
 */
export async function runThroughput(opts: RunThroughputOptions): Promise<ThroughputResult> {
  const choice = opts.engine ?? 'auto';
  if (choice !== 'auto' && choice !== 'iperf3' && choice !== 'native') {
    throw new TypeError(`unknown throughput engine ${String(choice)} (expected iperf3, native or auto)`);
  }
  const { engine, note } = await chooseThroughputEngine(choice, opts.iperf3?.command ?? 'iperf3');
  const { engine: _requested, iperf3, ...rest } = opts;
  const port = opts.port ?? defaultPort(engine);
  const result =
    engine === 'iperf3'
      ? await runIperf3({ ...rest, port, ...(iperf3 ?? {}) })
      : await runNativeTest({ ...rest, port });
  if (note) result.notes.push(note);
  return result;
}

// ------------------------------------------------------------------ server

export interface ThroughputServerHandle {
  engine: ThroughputEngineName;
  port: number;
  /** True while a test runs (both servers serve one test at a time). */
  readonly busy: boolean;
  stop(): Promise<void>;
}

export interface ServeThroughputOptions {
  engine?: ThroughputEngineChoice | undefined;
  /** Default: 5201 for iperf3, 5301 for native. */
  port?: number | undefined;
  /** Listen address; all addresses when absent. */
  host?: string | undefined;
  iperf3?: Iperf3Command | undefined;
}

/**
 * Start the server peers test against: a supervised `iperf3 -s` (restarted
 * with backoff if it dies) or the native server.
 */
export async function serveThroughput(opts: ServeThroughputOptions = {}): Promise<ThroughputServerHandle> {
  const { engine } = await chooseThroughputEngine(opts.engine ?? 'auto', opts.iperf3?.command ?? 'iperf3');
  const port = opts.port ?? defaultPort(engine);
  if (engine === 'iperf3') {
    const server = new Iperf3Server({ ...(opts.iperf3 ?? {}), port, bindAddress: opts.host });
    await server.start();
    return {
      engine,
      port,
      get busy() {
        return server.busy;
      },
      stop: () => server.stop(),
    };
  }
  const server = await NativeThroughputServer.listen({ port, host: opts.host });
  return {
    engine,
    port: server.port,
    get busy() {
      return server.busy;
    },
    stop: () => server.close(),
  };
}

// --------------------------------------------------------------- CLI helpers

/**
 * Parse a CLI target: `host`, `host:port`, `[v6]:port` or a bare IPv6
 * literal. Throws with a readable message on a bad port.
 */
export function parseThroughputTarget(target: string): { host: string; port: number | undefined } {
  const t = target.trim();
  if (!t) throw new Error('target is empty');
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(t);
  if (bracket) return { host: bracket[1]!, port: bracket[2] !== undefined ? checkPort(bracket[2], target) : undefined };
  const colons = t.split(':').length - 1;
  if (colons === 0) return { host: t, port: undefined };
  if (colons > 1) return { host: t, port: undefined }; // bare IPv6 literal
  const [host, p] = t.split(':') as [string, string];
  if (!host) throw new Error(`target ${target}: host is empty`);
  return { host, port: checkPort(p, target) };
}

function checkPort(p: string, target: string): number {
  const port = Number(p);
  if (!/^\d+$/.test(p) || port < 1 || port > 65535) throw new Error(`target ${target}: port must be 1..65535`);
  return port;
}

function bps(v: number | null): string {
  if (v === null) return '—';
  if (v >= 1e9) return `${(v / 1e9).toFixed(2)} Gbit/s`;
  if (v >= 1e6) return `${(v / 1e6).toFixed(1)} Mbit/s`;
  return `${(v / 1e3).toFixed(1)} kbit/s`;
}

function pct(v: number | null): string {
  return v === null ? '—' : `${v.toFixed(1)} %`;
}

/** Human-readable lines for `citymesh measure throughput` without --json. */
export function formatThroughputResult(r: ThroughputResult): string {
  const head = `${r.engine}${r.engineVersion ? ` (${r.engineVersion})` : ''} → ${r.host ?? '?'}:${r.port ?? '?'} ${r.direction}, ${r.streams} stream(s)`;
  const lines = [head];
  if (!r.ok) {
    lines.push(`FAILED: ${r.error ?? 'unknown error'}`);
  } else {
    lines.push(`measured ${r.seconds?.toFixed(2) ?? '—'} s after ${r.omitSeconds} s warm-up`);
    for (const l of r.legs) {
      const retr = l.retransmits === null ? '' : `, ${l.retransmits} retransmits`;
      lines.push(`${l.direction.padEnd(7)} received ${bps(l.receivedBps)} (sent ${bps(l.sentBps)}${retr})`);
    }
    lines.push(`cpu local ${pct(r.cpu.localPercent)}, remote ${pct(r.cpu.remotePercent)}`);
  }
  for (const n of r.notes) lines.push(`note: ${n}`);
  return lines.join('\n');
}
