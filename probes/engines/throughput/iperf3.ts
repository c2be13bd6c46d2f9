/**
 * iperf3 throughput engine: drives the real `iperf3` binary with `--json`
 * and turns its report into a ThroughputResult; plus a supervisor for the
 * probe's own iperf3 server.
 *
 * Facts this relies on (checked against iperf 3.12):
 * - With `--json`, a failed client still prints a JSON object with a
 *   top-level `error` string, and 3.12 then exits with status 0: the exit
 *   code alone does not tell failure, the `error` field does.
 * - `end.sum_received` is the receiver's count (goodput); `end.sum_sent` the
 *   sender's. Omitted (-O) seconds are already left out of both.
 * - With -R, `sum_sent` is the server's sending side (`"sender": false`).
 * - With --bidir, the server→client channel is in `sum_sent_bidir_reverse` /
 *   `sum_received_bidir_reverse`, and each `end.streams[]` entry's
 *   `sender.sender` says which side sent it (true: the client).
 * - `mean_rtt` is tcpi_rtt in µs, reported only by the sending host (0 when
 *   the sender is the remote end and it did not pass it back).
 * - An iperf3 server runs one test at a time; a second client gets
 *   "the server is busy running a test. try again later".
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import {
  NULL_CPU,
  failedResult,
  normaliseOptions,
  type LegDirection,
  type ThroughputCpu,
  type ThroughputDirection,
  type ThroughputLeg,
  type ThroughputOptions,
  type ThroughputResult,
  type ThroughputStream,
} from './types.js';
import { clipText } from '../../../protocol/index.js';

export const DEFAULT_IPERF3_PORT = 5201;

/** How to start iperf3: the binary, and an optional wrapper (e.g. `['ip', 'netns', 'exec', 'ns1']`). */
export interface Iperf3Command {
  /** Binary name or path. Default 'iperf3'. */
  command?: string | undefined;
  /** Argv placed before the command, e.g. to run it inside a network namespace. */
  commandPrefix?: readonly string[] | undefined;
}

export interface Iperf3RunOptions extends ThroughputOptions, Iperf3Command {
  /** Use sendfile(2) (`-Z`): much less sender CPU at high rates. */
  zerocopy?: boolean | undefined;
  /** Force the address family (`-4` / `-6`). */
  family?: 4 | 6 | undefined;
}

/** Context the JSON may lack (it has none at all when iperf3 failed early). */
export interface Iperf3ParseContext {
  host?: string | null | undefined;
  port?: number | null | undefined;
  direction?: ThroughputDirection | undefined;
  streams?: number | undefined;
  omitSeconds?: number | undefined;
}

// ---------------------------------------------------------------- parsing

type Json = Record<string, unknown>;

function obj(v: unknown): Json | null {
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : null;
}
function num(v: unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}
function str(v: unknown): string | null {
  return typeof v === 'string' ? v : null;
}

/** iperf3's own words, with a hint where its message is terse. */
function iperf3Error(message: string): string {
  const m = message.trim();
  if (/server is busy/i.test(m)) return `iperf3: ${m} (an iperf3 server runs one test at a time)`;
  return `iperf3: ${m}`;
}

interface Sum {
  seconds: number;
  bytes: number;
  bps: number;
  retransmits: number | null;
}

function readSum(v: unknown): Sum | null {
  const o = obj(v);
  if (!o) return null;
  const seconds = num(o.seconds);
  const bytes = num(o.bytes);
  const bps = num(o.bits_per_second);
  if (seconds === null || bytes === null || bps === null) return null;
  return { seconds, bytes, bps, retransmits: num(o.retransmits) };
}

function leg(direction: LegDirection, sent: Sum, received: Sum): ThroughputLeg {
  return {
    direction,
    seconds: received.seconds,
    sentBytes: sent.bytes,
    receivedBytes: received.bytes,
    sentBps: sent.bps,
    receivedBps: received.bps,
    retransmits: sent.retransmits,
  };
}

function readCpu(v: unknown): ThroughputCpu {
  const o = obj(v);
  if (!o) return { ...NULL_CPU };
  return {
    localPercent: num(o.host_total),
    localUserPercent: num(o.host_user),
    localSystemPercent: num(o.host_system),
    remotePercent: num(o.remote_total),
    remoteUserPercent: num(o.remote_user),
    remoteSystemPercent: num(o.remote_system),
  };
}

/**
 * Parse the output of `iperf3 -c … --json`. Pure: never throws, a report
 * that is not a complete successful test becomes `ok: false` with the reason.
 */
export function parseIperf3Json(text: string, context: Iperf3ParseContext = {}): ThroughputResult {
  let doc: Json | null;
  try {
    doc = obj(JSON.parse(text));
  } catch {
    doc = null;
  }
  const base = {
    host: context.host ?? null,
    port: context.port ?? null,
    direction: context.direction ?? 'forward',
    streams: context.streams ?? 1,
    omitSeconds: context.omitSeconds ?? 0,
  };
  if (!doc) {
    const excerpt = clipText(text.trim(), 300);
    return failedResult('iperf3', excerpt ? `iperf3: output is not a JSON report: ${excerpt}` : 'iperf3: no output', base);
  }

  const start = obj(doc.start) ?? {};
  const end = obj(doc.end) ?? {};
  const testStart = obj(start.test_start);
  const connectingTo = obj(start.connecting_to);
  const timestamp = obj(start.timestamp);
  const timesecs = num(timestamp?.timesecs);

  const hasBidir = end.sum_sent_bidir_reverse !== undefined || end.sum_received_bidir_reverse !== undefined;
  const direction: ThroughputDirection = testStart
    ? hasBidir || num(testStart.bidir) === 1
      ? 'bidir'
      : num(testStart.reverse) === 1
        ? 'reverse'
        : 'forward'
    : base.direction;
  const common = {
    host: str(connectingTo?.host) ?? base.host,
    port: num(connectingTo?.port) ?? base.port,
    direction,
    streams: num(testStart?.num_streams) ?? base.streams,
    omitSeconds: num(testStart?.omit) ?? base.omitSeconds,
    startedAtMs: timesecs !== null ? timesecs * 1000 : null,
    engineVersion: str(start.version),
    cpu: readCpu(end.cpu_utilization_percent),
  };

  const error = str(doc.error);
  if (error !== null) return failedResult('iperf3', iperf3Error(error), common);

  if (str(testStart?.protocol) && str(testStart?.protocol) !== 'TCP') {
    return failedResult('iperf3', `iperf3: unsupported protocol ${String(testStart?.protocol)} (this engine reads TCP reports)`, common);
  }
  const sent = readSum(end.sum_sent);
  const received = readSum(end.sum_received);
  if (!sent || !received) return failedResult('iperf3', 'iperf3: report has no end.sum_sent / end.sum_received (test did not finish)', common);

  const legs: ThroughputLeg[] = [leg(direction === 'reverse' ? 'reverse' : 'forward', sent, received)];
  if (direction === 'bidir') {
    const rs = readSum(end.sum_sent_bidir_reverse);
    const rr = readSum(end.sum_received_bidir_reverse);
    if (!rs || !rr) return failedResult('iperf3', 'iperf3: bidir report lacks the reverse channel sums', common);
    legs.push(leg('reverse', rs, rr));
  }
  for (const l of legs) {
    if (l.receivedBytes <= 0) {
      return failedResult('iperf3', `iperf3: the test ran but the receiver counted 0 bytes in the ${l.direction} direction`, common);
    }
  }

  const perStream: ThroughputStream[] = [];
  const streams = Array.isArray(end.streams) ? end.streams : [];
  for (const s of streams) {
    const so = obj(s);
    const snd = obj(so?.sender);
    const rcv = obj(so?.receiver);
    if (!snd && !rcv) continue;
    // `sender` inside each half says whether the client is the sending side.
    const clientSends = (snd?.sender ?? rcv?.sender) !== false;
    const meanRtt = num(snd?.mean_rtt);
    perStream.push({
      id: num(snd?.socket) ?? num(rcv?.socket) ?? perStream.length,
      direction: clientSends ? 'forward' : 'reverse',
      sentBytes: num(snd?.bytes),
      receivedBytes: num(rcv?.bytes),
      sentBps: num(snd?.bits_per_second),
      receivedBps: num(rcv?.bits_per_second),
      retransmits: num(snd?.retransmits),
      meanRttUs: meanRtt !== null && meanRtt > 0 ? meanRtt : null,
    });
  }

  const primary = legs[0]!;
  return {
    engine: 'iperf3',
    engineVersion: common.engineVersion,
    ok: true,
    error: null,
    host: common.host,
    port: common.port,
    direction,
    streams: common.streams,
    seconds: primary.seconds,
    omitSeconds: common.omitSeconds,
    startedAtMs: common.startedAtMs,
    sentBps: primary.sentBps,
    receivedBps: primary.receivedBps,
    sentBytes: primary.sentBytes,
    receivedBytes: primary.receivedBytes,
    retransmits: primary.retransmits,
    legs,
    perStream,
    cpu: common.cpu,
    congestion: { sender: str(end.sender_tcp_congestion), receiver: str(end.receiver_tcp_congestion) },
    notes: [],
  };
}

// ------------------------------------------------------------- detection

export interface Iperf3Detection {
  available: boolean;
  /** e.g. "iperf 3.12" */
  version: string | null;
  /** Why it is unavailable. */
  reason: string | null;
}

const detections = new Map<string, Promise<Iperf3Detection>>();

/** Run `iperf3 --version` once per command and remember the answer. */
export function detectIperf3(command = 'iperf3'): Promise<Iperf3Detection> {
  let p = detections.get(command);
  if (!p) {
    p = new Promise<Iperf3Detection>((resolve) => {
      let out = '';
      let child: ChildProcess;
      try {
        child = spawn(command, ['--version'], { stdio: ['ignore', 'pipe', 'pipe'] });
      } catch (err) {
        resolve({ available: false, version: null, reason: `iperf3: cannot run ${command}: ${(err as Error).message}` });
        return;
      }
      child.stdout?.on('data', (c: Buffer) => (out += c.toString('utf8')));
      child.stderr?.on('data', (c: Buffer) => (out += c.toString('utf8')));
      child.once('error', (err: NodeJS.ErrnoException) =>
        resolve({ available: false, version: null, reason: spawnErrorMessage(command, err) }),
      );
      child.once('close', (code) => {
        const m = /\biperf\s+(3\.[\w.+-]+)/.exec(out);
        if (code === 0 && m) resolve({ available: true, version: `iperf ${m[1]}`, reason: null });
        else resolve({ available: false, version: null, reason: `iperf3: ${command} --version did not identify iperf3 (${clipText(out.trim(), 200) || `exit ${code}`})` });
      });
    });
    detections.set(command, p);
  }
  return p;
}

function spawnErrorMessage(command: string, err: NodeJS.ErrnoException): string {
  if (err.code === 'ENOENT') return `iperf3: command not found: ${command} (install the Debian package iperf3, or use the native engine)`;
  return `iperf3: cannot run ${command}: ${err.message}`;
}

// ---------------------------------------------------------------- client

/** The argv of an iperf3 client run (without the command itself). */
export function iperf3ClientArgs(opts: Iperf3RunOptions): string[] {
  const n = normaliseOptions(opts);
  const args = [
    '-c', n.host,
    '-p', String(opts.port ?? DEFAULT_IPERF3_PORT),
    '-t', String(n.seconds),
    '-P', String(n.streams),
    '-O', String(n.omitSeconds),
    '--connect-timeout', String(Math.ceil(n.connectTimeoutMs)),
    '--json',
  ];
  if (n.direction === 'reverse') args.push('-R');
  if (n.direction === 'bidir') args.push('--bidir');
  if (opts.bindAddress) {
    if (opts.bindAddress.startsWith('-')) throw new Error(`invalid bindAddress: ${opts.bindAddress}`);
    args.push('-B', opts.bindAddress);
  }
  if (opts.zerocopy) args.push('-Z');
  if (opts.family === 4) args.push('-4');
  if (opts.family === 6) args.push('-6');
  return args;
}

/** Largest report we keep; a 1 h test with 128 streams stays far below. */
const MAX_OUTPUT = 64 * 1024 * 1024;
const KILL_GRACE_MS = 2000;

/**
 * Run one iperf3 client test. Never rejects: every failure (missing binary,
 * refused connection, busy server, hard timeout, abort, bad output) is a
 * result with `ok: false` and the reason.
 */
export async function runIperf3(opts: Iperf3RunOptions): Promise<ThroughputResult> {
  const command = opts.command ?? 'iperf3';
  const port = opts.port ?? DEFAULT_IPERF3_PORT;
  let args: string[];
  let n: ReturnType<typeof normaliseOptions>;
  try {
    n = normaliseOptions(opts);
    args = iperf3ClientArgs(opts);
  } catch (err) {
    return failedResult('iperf3', `iperf3: invalid options: ${(err as Error).message}`, { host: opts.host ?? null, port });
  }
  const context: Iperf3ParseContext = { host: n.host, port, direction: n.direction, streams: n.streams, omitSeconds: n.omitSeconds };
  const killAfterMs = opts.killAfterMs ?? (n.seconds + n.omitSeconds) * 1000 + n.connectTimeoutMs + 10_000;
  const startedAtMs = Date.now();
  if (opts.signal?.aborted) return failedResult('iperf3', 'iperf3: aborted before start', { ...context, startedAtMs });

  const prefix = opts.commandPrefix ?? [];
  const argv = [...prefix, command, ...args];
  return new Promise<ThroughputResult>((resolve) => {
    let stdout = '';
    let stderr = '';
    let killedFor: string | null = null;
    let settled = false;
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });

    const kill = (why: string) => {
      if (killedFor !== null || child.exitCode !== null) return;
      killedFor = why;
      child.kill('SIGTERM');
      const hard = setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS);
      hard.unref();
      child.once('close', () => clearTimeout(hard));
    };
    const timer = setTimeout(() => kill(`no result within ${killAfterMs} ms (hard timeout); killed`), killAfterMs);
    const onAbort = () => kill('aborted');
    opts.signal?.addEventListener('abort', onAbort, { once: true });

    const finish = (r: ThroughputResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      resolve(r);
    };

    child.stdout.on('data', (c: Buffer) => {
      if (stdout.length < MAX_OUTPUT) stdout += c.toString('utf8');
    });
    child.stderr.on('data', (c: Buffer) => {
      if (stderr.length < 64 * 1024) stderr += c.toString('utf8');
    });
    child.once('error', (err: NodeJS.ErrnoException) => {
      finish(failedResult('iperf3', spawnErrorMessage(argv[0]!, err), { ...context, startedAtMs }));
    });
    child.once('close', (code, sig) => {
      const parsed = parseIperf3Json(stdout, context);
      if (parsed.startedAtMs === null) parsed.startedAtMs = startedAtMs;
      if (killedFor !== null) {
        const inner = parsed.error ? ` (${parsed.error.replace(/^iperf3: /, '')})` : '';
        finish({ ...failedResult('iperf3', `iperf3: ${killedFor}${inner}`, { ...context, startedAtMs, engineVersion: parsed.engineVersion }) });
        return;
      }
      if (parsed.ok && (code !== 0 || sig !== null)) {
        finish(failedResult('iperf3', `iperf3: exited with ${sig ?? `code ${code}`} after a complete report`, { ...context, startedAtMs }));
        return;
      }
      if (!parsed.ok && stdout.trim() === '') {
        const why = clipText(stderr.trim(), 300) || `exited with ${sig ?? `code ${code}`} and no output`;
        finish(failedResult('iperf3', `iperf3: ${why}`, { ...context, startedAtMs }));
        return;
      }
      finish(parsed);
    });
  });
}

// ---------------------------------------------------------------- server

export type Iperf3ServerState = 'stopped' | 'starting' | 'idle' | 'testing' | 'backoff';

export interface Iperf3ServerOptions extends Iperf3Command {
  /** TCP port to listen on. Default 5201. */
  port?: number | undefined;
  /** Listen address (`-B`); all addresses when absent. */
  bindAddress?: string | undefined;
  /** How long start() waits for "Server listening", ms. Default 5000. */
  startTimeoutMs?: number | undefined;
  /** First restart delay, doubled on each consecutive failure. Default 500 ms. */
  restartInitialMs?: number | undefined;
  /** Ceiling of the restart delay. Default 30 s. */
  restartMaxMs?: number | undefined;
  /** A process that stayed up this long resets the backoff. Default 10 s. */
  stableAfterMs?: number | undefined;
}

export interface Iperf3ServerStatus {
  state: Iperf3ServerState;
  port: number;
  pid: number | null;
  /** Restarts after unexpected exits since start(). */
  restarts: number;
  /** Tests the server accepted (connections announced by iperf3). */
  testsAccepted: number;
  /** Last error iperf3 printed, or how it exited. */
  lastError: string | null;
}

/**
 * Supervises `iperf3 -s` for the peers of this probe.
 *
 * Flags: `iperf3 -s -p PORT [-B ADDR] --forceflush`. Not `--json`: a JSON
 * server prints nothing until a test ends, so neither readiness nor "a test
 * is running" could be seen; the text output announces both ("Server
 * listening on …", "Accepted connection from …") and --forceflush makes it
 * arrive line by line. Not `-1` (one-off): between two tests nothing would
 * listen and peers would see "connection refused".
 *
 * iperf3 serves one test at a time; `state === 'testing'` (also `busy`)
 * says so here, and a second client gets iperf3's own "server is busy".
 *
 * Events: 'listening' (pid), 'state' (state), 'test' (peer text),
 * 'exit' ({code, signal}), 'restart' ({attempt, delayMs}), 'log' (line).
 */
export class Iperf3Server extends EventEmitter {
  readonly port: number;
  #opts: Iperf3ServerOptions;
  #child: ChildProcess | null = null;
  #state: Iperf3ServerState = 'stopped';
  #restarts = 0;
  #failures = 0;
  #tests = 0;
  #lastError: string | null = null;
  #timer: NodeJS.Timeout | null = null;
  #stopping = false;
  #spawnedAt = 0;
  #startupError: string | null = null;
  /** Last output line while starting: the reason when a wrapper (e.g. ip netns exec) failed. */
  #startupLastLine: string | null = null;

  constructor(opts: Iperf3ServerOptions = {}) {
    super();
    this.#opts = opts;
    this.port = opts.port ?? DEFAULT_IPERF3_PORT;
    if (opts.bindAddress?.startsWith('-')) throw new Error(`invalid bindAddress: ${opts.bindAddress}`);
  }

  get state(): Iperf3ServerState {
    return this.#state;
  }
  get busy(): boolean {
    return this.#state === 'testing';
  }
  get pid(): number | null {
    return this.#child?.pid ?? null;
  }

  status(): Iperf3ServerStatus {
    return {
      state: this.#state,
      port: this.port,
      pid: this.pid,
      restarts: this.#restarts,
      testsAccepted: this.#tests,
      lastError: this.#lastError,
    };
  }

  /** Start and resolve once iperf3 listens; rejects (and stays stopped) if the first start fails. */
  async start(): Promise<void> {
    if (this.#state !== 'stopped') throw new Error('Iperf3Server already started');
    this.#stopping = false;
    this.#restarts = 0;
    this.#failures = 0;
    const timeoutMs = this.#opts.startTimeoutMs ?? 5000;
    await new Promise<void>((resolve, reject) => {
      const cleanup = () => {
        clearTimeout(t);
        this.off('listening', onListening);
        this.off('exit', onExit);
      };
      const onListening = () => {
        cleanup();
        resolve();
      };
      const onExit = () => {
        cleanup();
        const why = this.#lastError ?? 'exited before listening';
        void this.stop().finally(() => reject(new Error(`iperf3 server on port ${this.port} did not start: ${why}`)));
      };
      const t = setTimeout(() => {
        cleanup();
        void this.stop().finally(() =>
          reject(new Error(`iperf3 server on port ${this.port} did not report listening within ${timeoutMs} ms${this.#lastError ? `: ${this.#lastError}` : ''}`)),
        );
      }, timeoutMs);
      this.on('listening', onListening);
      this.on('exit', onExit);
      this.#spawn();
    });
  }

  /** Resolve when the server is in `state` (now or later). */
  waitForState(state: Iperf3ServerState, timeoutMs = 10_000): Promise<void> {
    if (this.#state === state) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const onState = (s: Iperf3ServerState) => {
        if (s !== state) return;
        clearTimeout(t);
        this.off('state', onState);
        resolve();
      };
      const t = setTimeout(() => {
        this.off('state', onState);
        reject(new Error(`iperf3 server did not reach state ${state} within ${timeoutMs} ms (now ${this.#state})`));
      }, timeoutMs);
      this.on('state', onState);
    });
  }

  /** Stop supervising and end the process (SIGTERM, then SIGKILL after 2 s). */
  async stop(): Promise<void> {
    this.#stopping = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    const child = this.#child;
    if (child && child.exitCode === null && child.signalCode === null) {
      await new Promise<void>((resolve) => {
        const hard = setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS);
        child.once('close', () => {
          clearTimeout(hard);
          resolve();
        });
        child.kill('SIGTERM');
      });
    }
    this.#child = null;
    this.#setState('stopped');
  }

  #setState(s: Iperf3ServerState): void {
    if (this.#state === s) return;
    this.#state = s;
    this.emit('state', s);
  }

  #spawn(): void {
    const command = this.#opts.command ?? 'iperf3';
    const args = ['-s', '-p', String(this.port), '--forceflush'];
    if (this.#opts.bindAddress) args.push('-B', this.#opts.bindAddress);
    const argv = [...(this.#opts.commandPrefix ?? []), command, ...args];
    this.#setState('starting');
    this.#startupError = null;
    this.#startupLastLine = null;
    this.#spawnedAt = Date.now();
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    this.#child = child;
    let buf = '';
    const onData = (c: Buffer) => {
      buf += c.toString('utf8');
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        this.#onLine(buf.slice(0, i).trim());
        buf = buf.slice(i + 1);
      }
      if (buf.length > 64 * 1024) buf = '';
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    let spawnError: string | null = null;
    child.once('error', (err: NodeJS.ErrnoException) => {
      spawnError = spawnErrorMessage(argv[0]!, err);
    });
    child.once('close', (code, signal) => {
      if (this.#child === child) this.#child = null;
      if (this.#stopping) {
        this.emit('exit', { code, signal });
        return;
      }
      const how = `exited with ${signal ?? `code ${code}`}`;
      // An error line printed while starting (e.g. "unable to start listener …
      // Address already in use") is the reason; otherwise say how it ended.
      this.#lastError =
        spawnError ??
        (this.#state === 'starting' && (this.#startupError ?? this.#startupLastLine)
          ? `${this.#startupError ?? this.#startupLastLine} (${how})`
          : `iperf3 server ${how}`);
      this.emit('exit', { code, signal });
      if (this.#stopping) return; // start() gave up on a first start that failed
      this.#scheduleRestart();
    });
  }

  #onLine(line: string): void {
    if (!line) return;
    this.emit('log', line);
    if (this.#state === 'starting' && !/^-+$/.test(line)) this.#startupLastLine = line;
    if (/^Server listening on\b/.test(line)) {
      const first = this.#state === 'starting';
      this.#setState('idle');
      if (first) this.emit('listening', this.pid);
    } else if (/^Accepted connection from\b/.test(line)) {
      this.#tests++;
      this.#setState('testing');
      this.emit('test', line.replace(/^Accepted connection from\s*/, ''));
    } else if ((/^iperf3: /.test(line) || /\berror\b/i.test(line)) && !/^iperf3: exiting$/.test(line)) {
      // Keep the first error of a failed start: it is the cause, what follows is the consequence.
      if (this.#state === 'starting') this.#startupError ??= line;
      else this.#lastError = line;
    }
  }

  #scheduleRestart(): void {
    const uptime = Date.now() - this.#spawnedAt;
    if (uptime >= (this.#opts.stableAfterMs ?? 10_000)) this.#failures = 0;
    const initial = this.#opts.restartInitialMs ?? 500;
    const max = this.#opts.restartMaxMs ?? 30_000;
    const delayMs = Math.min(max, initial * 2 ** Math.min(this.#failures, 20));
    this.#failures++;
    this.#setState('backoff');
    this.#timer = setTimeout(() => {
      this.#timer = null;
      if (this.#stopping) return;
      this.#restarts++;
      this.emit('restart', { attempt: this.#restarts, delayMs });
      this.#spawn();
    }, delayMs);
  }
}
