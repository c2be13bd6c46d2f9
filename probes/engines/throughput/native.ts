/**
 * Native Node TCP throughput engine, for hosts without iperf3.
 *
 * Protocol (version 1), all on one TCP port:
 *
 *   control connection, newline-delimited JSON both ways:
 *     C→S {"v":1,"role":"control","test":ID,"streams":N,"seconds":S,"omit":O,"direction":"forward"|"reverse"|"bidir"}
 *     S→C {"ok":true,"version":"citymesh-native/1"}  or  {"ok":false,"busy":true|false,"error":"…"}
 *     (client opens the data connections)
 *     C→S {"cmd":"start"}   S→C {"event":"started"}   (once every data connection arrived)
 *     C→S {"cmd":"mark"}    end of the warm-up: both ends snapshot their counters
 *     C→S {"cmd":"end"}     both ends snapshot again and senders stop
 *     S→C {"event":"result","seconds":W,"streams":[{"stream","dir","sent","received"}],"cpu":{…}}
 *     S→C {"event":"error","error":"…"} at any point ends the test
 *   data connection: one header line, then raw bytes in one direction:
 *     C→S {"v":1,"role":"data","test":ID,"stream":I,"dir":"forward"|"reverse"}
 *
 * Streams 0..N-1 carry the first direction; with bidir, N..2N-1 carry
 * server→client. Each end counts the bytes it received, and the bytes its
 * writes handed to the kernel, between its own "mark" and "end" instants.
 * Goodput is the receiver's count over the receiver's window, so for a
 * forward test it is the server's figure (like iperf3's sum_received).
 *
 * Limits, stated rather than hidden: no retransmit or RTT figures (Node has
 * no TCP_INFO), and user-space copying makes it cost more CPU per Gb/s than
 * iperf3 (see the figures in the test output).
 */
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { createConnection, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import {
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

export const DEFAULT_NATIVE_PORT = 5301;
export const NATIVE_ENGINE_VERSION = 'citymesh-native/1';
const PROTOCOL_VERSION = 1;
/** Write size, as iperf3's TCP default (-l 128K). */
const BLOCK_SIZE = 128 * 1024;
const MAX_HEADER = 4096;
const MAX_STREAMS = 128;
const MAX_SECONDS = 3600;
const MAX_OMIT = 60;

// ------------------------------------------------------------ shared bits

interface StreamState {
  index: number;
  dir: LegDirection;
  socket: Socket;
  sending: boolean;
  sent: number;
  received: number;
}

interface Snapshot {
  t: number;
  cpu: NodeJS.CpuUsage;
  sent: number[];
  received: number[];
}

function snapshot(streams: readonly (StreamState | undefined)[]): Snapshot {
  return {
    t: performance.now(),
    cpu: process.cpuUsage(),
    sent: streams.map((s) => s?.sent ?? 0),
    received: streams.map((s) => s?.received ?? 0),
  };
}

interface CpuFigures {
  total: number;
  user: number;
  system: number;
}

function cpuBetween(a: Snapshot, b: Snapshot): CpuFigures {
  const wallUs = Math.max(1, (b.t - a.t) * 1000);
  const user = ((b.cpu.user - a.cpu.user) / wallUs) * 100;
  const system = ((b.cpu.system - a.cpu.system) / wallUs) * 100;
  return { total: user + system, user, system };
}

/** Write `block` for as long as `s.sending`, respecting backpressure. */
function pump(s: StreamState, block: Buffer): void {
  const onWritten = (err?: Error | null) => {
    if (!err) s.sent += block.length;
  };
  const loop = () => {
    while (s.sending && !s.socket.destroyed) {
      if (!s.socket.write(block, onWritten)) {
        s.socket.once('drain', loop);
        return;
      }
    }
  };
  loop();
}

function makeBlock(): Buffer {
  const b = Buffer.allocUnsafe(BLOCK_SIZE);
  for (let i = 0; i < b.length; i++) b[i] = (i * 31 + 7) & 0xff;
  return b;
}

function dirOf(direction: ThroughputDirection, index: number, streams: number): LegDirection {
  if (direction === 'forward') return 'forward';
  if (direction === 'reverse') return 'reverse';
  return index < streams ? 'forward' : 'reverse';
}

function totalStreams(direction: ThroughputDirection, streams: number): number {
  return direction === 'bidir' ? streams * 2 : streams;
}

function sendJson(socket: Socket, msg: unknown): void {
  if (!socket.destroyed && socket.writable) socket.write(`${JSON.stringify(msg)}\n`);
}

type Json = Record<string, unknown>;

function parseLine(line: string): Json | null {
  try {
    const v: unknown = JSON.parse(line);
    return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Json) : null;
  } catch {
    return null;
  }
}

/**
 * Read newline-terminated header/messages from a socket. `onLine` returns
 * false to stop reading lines (the rest of the bytes then go to `onRest`).
 */
function readLines(socket: Socket, onLine: (line: string) => boolean, onRest: (chunk: Buffer) => void, onOverflow: () => void): void {
  let buf: Buffer = Buffer.alloc(0);
  let lines = true;
  socket.on('data', (chunk: Buffer) => {
    if (!lines) {
      onRest(chunk);
      return;
    }
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
    let i: number;
    while (lines && (i = buf.indexOf(0x0a)) >= 0) {
      const line = buf.subarray(0, i).toString('utf8');
      buf = buf.subarray(i + 1);
      lines = onLine(line);
    }
    if (!lines) {
      if (buf.length) onRest(buf);
      buf = Buffer.alloc(0);
    } else if (buf.length > MAX_HEADER) {
      onOverflow();
    }
  });
}

// ----------------------------------------------------------------- server

export interface NativeServerOptions {
  /** TCP port; 0 picks a free one (see `.port`). Default 5301. */
  port?: number | undefined;
  /** Listen address; all addresses when absent. */
  host?: string | undefined;
  /** A connection that sends no header within this time is closed. Default 5000 ms. */
  handshakeTimeoutMs?: number | undefined;
}

interface ServerTest {
  id: string;
  peer: string;
  control: Socket;
  streams: number;
  seconds: number;
  omit: number;
  direction: ThroughputDirection;
  data: (StreamState | undefined)[];
  connected: number;
  startRequested: boolean;
  started: boolean;
  mark: Snapshot | null;
  ended: boolean;
  startTimer: NodeJS.Timeout | null;
  watchdog: NodeJS.Timeout;
}

/**
 * Serves native throughput tests, one at a time (like iperf3): a second
 * client while a test runs is told the server is busy.
 *
 * Events: 'test-start' ({id, peer, streams, seconds, direction}),
 * 'test-end' ({id, peer, ok, error, totalReceivedBytes, totalSentBytes}).
 */
export class NativeThroughputServer extends EventEmitter {
  #server: Server;
  #test: ServerTest | null = null;
  #sockets = new Set<Socket>();
  #handshakeTimeoutMs: number;
  #block = makeBlock();
  #served = 0;

  private constructor(server: Server, opts: NativeServerOptions) {
    super();
    this.#server = server;
    this.#handshakeTimeoutMs = opts.handshakeTimeoutMs ?? 5000;
    server.on('connection', (s) => this.#onConnection(s));
  }

  static async listen(opts: NativeServerOptions = {}): Promise<NativeThroughputServer> {
    const server = createServer();
    const self = new NativeThroughputServer(server, opts);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ port: opts.port ?? DEFAULT_NATIVE_PORT, host: opts.host }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    server.on('error', () => undefined);
    return self;
  }

  get port(): number {
    return (this.#server.address() as AddressInfo).port;
  }
  get address(): AddressInfo {
    return this.#server.address() as AddressInfo;
  }
  get busy(): boolean {
    return this.#test !== null;
  }
  /** Tests that reached a result. */
  get testsServed(): number {
    return this.#served;
  }

  async close(): Promise<void> {
    if (this.#test) this.#teardown(this.#test, 'server closing');
    for (const s of this.#sockets) s.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #onConnection(socket: Socket): void {
    this.#sockets.add(socket);
    socket.on('close', () => this.#sockets.delete(socket));
    socket.on('error', () => undefined);
    const peer = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    const timer = setTimeout(() => socket.destroy(), this.#handshakeTimeoutMs);
    timer.unref();
    socket.once('close', () => clearTimeout(timer));
    let stream: StreamState | null = null;
    let control: ServerTest | null = null;
    let first = true;
    readLines(
      socket,
      (line) => {
        if (control) {
          this.#onControlMessage(control, parseLine(line));
          return true;
        }
        if (!first) return false;
        first = false;
        clearTimeout(timer);
        const msg = parseLine(line);
        if (!msg || msg.v !== PROTOCOL_VERSION) {
          sendJson(socket, { ok: false, busy: false, error: `not a citymesh native v${PROTOCOL_VERSION} header` });
          socket.end();
          return false;
        }
        if (msg.role === 'control') {
          control = this.#onControlHello(socket, msg, peer);
          return control !== null;
        }
        if (msg.role === 'data') stream = this.#onDataHello(socket, msg);
        else socket.destroy();
        return false; // raw bytes follow
      },
      (chunk) => {
        if (stream) stream.received += chunk.length;
      },
      () => socket.destroy(),
    );
  }

  #onControlHello(socket: Socket, msg: Json, peer: string): ServerTest | null {
    const refuse = (error: string, busy = false) => {
      sendJson(socket, { ok: false, busy, error });
      socket.end();
      return null;
    };
    if (this.#test) return refuse('the server is busy running a test; try again later', true);
    const { test: id, streams, seconds, omit, direction } = msg;
    if (typeof id !== 'string' || id.length === 0 || id.length > 100) return refuse('bad test id');
    if (typeof streams !== 'number' || !Number.isInteger(streams) || streams < 1 || streams > MAX_STREAMS) {
      return refuse(`streams must be 1..${MAX_STREAMS}`);
    }
    if (typeof seconds !== 'number' || !(seconds > 0) || seconds > MAX_SECONDS) return refuse(`seconds must be in (0, ${MAX_SECONDS}]`);
    if (typeof omit !== 'number' || !(omit >= 0) || omit > MAX_OMIT) return refuse(`omit must be 0..${MAX_OMIT}`);
    if (direction !== 'forward' && direction !== 'reverse' && direction !== 'bidir') return refuse('bad direction');

    socket.setNoDelay(true);
    const test: ServerTest = {
      id,
      peer,
      control: socket,
      streams,
      seconds,
      omit,
      direction,
      data: new Array<StreamState | undefined>(totalStreams(direction, streams)).fill(undefined),
      connected: 0,
      startRequested: false,
      started: false,
      mark: null,
      ended: false,
      startTimer: null,
      // The client drives the clock; this only frees the server from a client that vanished.
      watchdog: setTimeout(() => this.#teardown(test, 'test overran its duration'), (omit + seconds) * 1000 + 30_000),
    };
    this.#test = test;
    socket.on('close', () => this.#teardown(test, test.ended ? null : 'control connection closed before the end of the test'));
    sendJson(socket, { ok: true, version: NATIVE_ENGINE_VERSION });
    this.emit('test-start', { id, peer, streams, seconds, direction });
    return test;
  }

  #onDataHello(socket: Socket, msg: Json): StreamState | null {
    const test = this.#test;
    const index = msg.stream;
    if (
      !test ||
      msg.test !== test.id ||
      typeof index !== 'number' ||
      !Number.isInteger(index) ||
      index < 0 ||
      index >= test.data.length ||
      test.data[index] !== undefined ||
      msg.dir !== dirOf(test.direction, index, test.streams)
    ) {
      socket.destroy();
      return null;
    }
    const s: StreamState = { index, dir: dirOf(test.direction, index, test.streams), socket, sending: false, sent: 0, received: 0 };
    test.data[index] = s;
    test.connected++;
    socket.on('close', () => {
      if (this.#test === test && !test.ended) this.#fail(test, `data stream ${index} closed during the test`);
    });
    if (test.startRequested) this.#maybeStart(test);
    return s;
  }

  #onControlMessage(test: ServerTest, msg: Json | null): void {
    if (this.#test !== test || test.ended) return;
    switch (msg?.cmd) {
      case 'start':
        test.startRequested = true;
        test.startTimer = setTimeout(() => this.#fail(test, `only ${test.connected} of ${test.data.length} data streams arrived`), 5000);
        this.#maybeStart(test);
        return;
      case 'mark':
        test.mark = snapshot(test.data);
        return;
      case 'end': {
        const end = snapshot(test.data);
        test.ended = true;
        for (const s of test.data) if (s) s.sending = false;
        const mark = test.mark ?? end;
        this.#served++;
        sendJson(test.control, {
          event: 'result',
          seconds: (end.t - mark.t) / 1000,
          streams: test.data.map((s, i) => ({
            stream: i,
            dir: s?.dir ?? dirOf(test.direction, i, test.streams),
            sent: (end.sent[i] ?? 0) - (mark.sent[i] ?? 0),
            received: (end.received[i] ?? 0) - (mark.received[i] ?? 0),
          })),
          cpu: cpuBetween(mark, end),
        });
        // The test is over once the result is sent: free the server now, so a
        // next test (from anyone) is not refused while this client closes.
        this.#teardown(test, null);
        return;
      }
      default:
        this.#fail(test, 'unexpected control message');
    }
  }

  #maybeStart(test: ServerTest): void {
    if (test.started || test.connected < test.data.length) return;
    test.started = true;
    if (test.startTimer) clearTimeout(test.startTimer);
    sendJson(test.control, { event: 'started' });
    for (const s of test.data) {
      if (s && s.dir === 'reverse') {
        s.sending = true;
        pump(s, this.#block);
      }
    }
  }

  #fail(test: ServerTest, error: string): void {
    sendJson(test.control, { event: 'error', error });
    this.#teardown(test, error);
  }

  #teardown(test: ServerTest, error: string | null): void {
    if (this.#test !== test) return;
    this.#test = null;
    clearTimeout(test.watchdog);
    if (test.startTimer) clearTimeout(test.startTimer);
    for (const s of test.data) {
      if (!s) continue;
      s.sending = false;
      s.socket.destroy();
    }
    test.control.end();
    setTimeout(() => test.control.destroy(), 1000).unref();
    const total = (k: 'sent' | 'received') => test.data.reduce((a, d) => a + (d?.[k] ?? 0), 0);
    this.emit('test-end', {
      id: test.id,
      peer: test.peer,
      ok: error === null,
      error,
      // Whole-connection totals, warm-up included (the result excludes it).
      totalReceivedBytes: total('received'),
      totalSentBytes: total('sent'),
    });
  }
}

// ----------------------------------------------------------------- client

export interface NativeTestOptions extends ThroughputOptions {}

class TestFailure extends Error {}

function describeConnectError(host: string, port: number, err: NodeJS.ErrnoException): string {
  const where = `${host}:${port}`;
  switch (err.code) {
    case 'ECONNREFUSED':
      return `native: unable to connect to ${where}: connection refused (is a citymesh native throughput server listening there?)`;
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return `native: unable to connect to ${where}: ${err.code === 'EHOSTUNREACH' ? 'host' : 'network'} unreachable`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `native: cannot resolve ${host}: ${err.code}`;
    case 'EADDRNOTAVAIL':
      return `native: cannot bind the local address: ${err.message}`;
    default:
      return `native: unable to connect to ${where}: ${err.message}`;
  }
}

function connect(host: string, port: number, localAddress: string | undefined, timeoutMs: number): Promise<Socket> {
  return new Promise<Socket>((resolve, reject) => {
    const socket = createConnection({ host, port, ...(localAddress ? { localAddress } : {}) });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new TestFailure(`native: connection to ${host}:${port} timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    const onError = (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      socket.destroy();
      reject(new TestFailure(describeConnectError(host, port, err)));
    };
    socket.once('error', onError);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.off('error', onError);
      // Never let a late error crash the process; the test attaches its own handlers.
      socket.on('error', () => undefined);
      resolve(socket);
    });
  });
}

/** The control channel seen from the client: JSON lines with waits. */
class ControlChannel {
  #queue: Json[] = [];
  #waiter: { resolve: (m: Json) => void; reject: (e: Error) => void } | null = null;
  #failure: Error | null = null;

  constructor(
    readonly socket: Socket,
    where: string,
  ) {
    let first = true;
    readLines(
      socket,
      (line) => {
        const msg = parseLine(line);
        if (!msg) {
          this.#fail(new TestFailure(`native: ${where} sent an unreadable control message`));
          return false;
        }
        first = false;
        this.#push(msg);
        return true;
      },
      () => undefined,
      () => this.#fail(new TestFailure(`native: ${where} sent an oversized control message`)),
    );
    // An iperf3 server answers a new connection with a binary state byte.
    socket.once('data', (chunk: Buffer) => {
      if (first && chunk[0] !== 0x7b /* { */) {
        this.#fail(new TestFailure(`native: ${where} did not answer with the citymesh native protocol (is it an iperf3 server or another service?)`));
      }
    });
    socket.on('error', (err) => this.#fail(new TestFailure(`native: control connection to ${where} failed: ${err.message}`)));
    socket.on('close', () => this.#fail(new TestFailure(`native: the server at ${where} closed the control connection before the test ended`)));
  }

  send(msg: Json): void {
    sendJson(this.socket, msg);
  }

  /** Next message from the server, or a rejection after `timeoutMs`. */
  next(timeoutMs: number, what: string): Promise<Json> {
    const queued = this.#queue.shift();
    if (queued) return Promise.resolve(queued);
    if (this.#failure) return Promise.reject(this.#failure);
    return new Promise<Json>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiter = null;
        reject(new TestFailure(`native: no ${what} from the server within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#waiter = {
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
    });
  }

  /** Why the channel failed, once it has. */
  get failure(): Error | null {
    return this.#failure;
  }

  #push(msg: Json): void {
    if (msg.event === 'error') {
      this.#fail(new TestFailure(`native: server reported: ${String(msg.error)}`));
      return;
    }
    const w = this.#waiter;
    if (w) {
      this.#waiter = null;
      w.resolve(msg);
    } else this.#queue.push(msg);
  }

  #fail(err: Error): void {
    if (this.#failure) return;
    this.#failure = err;
    const w = this.#waiter;
    this.#waiter = null;
    w?.reject(err);
    this.onFailure?.(err);
  }

  /** Called once when the channel (or, via the client, a data stream) fails; interrupts a running delay(). */
  onFailure: ((err: Error) => void) | null = null;
}

interface ServerResult {
  seconds: number;
  streams: Array<{ stream: number; dir: LegDirection; sent: number; received: number }>;
  cpu: CpuFigures | null;
}

function readServerResult(msg: Json): ServerResult | null {
  if (msg.event !== 'result' || typeof msg.seconds !== 'number' || !Array.isArray(msg.streams)) return null;
  const streams: ServerResult['streams'] = [];
  for (const s of msg.streams as unknown[]) {
    const o = s as Json;
    if (typeof o?.stream !== 'number' || (o.dir !== 'forward' && o.dir !== 'reverse') || typeof o.sent !== 'number' || typeof o.received !== 'number') {
      return null;
    }
    streams.push({ stream: o.stream, dir: o.dir, sent: o.sent, received: o.received });
  }
  const c = msg.cpu as Json | undefined;
  const cpu =
    c && typeof c.total === 'number' && typeof c.user === 'number' && typeof c.system === 'number'
      ? { total: c.total, user: c.user, system: c.system }
      : null;
  return { seconds: msg.seconds, streams, cpu };
}

function delay(ms: number, channel: ControlChannel): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (channel.failure) {
      reject(channel.failure);
      return;
    }
    const timer = setTimeout(() => {
      channel.onFailure = null;
      resolve();
    }, ms);
    channel.onFailure = (err) => {
      clearTimeout(timer);
      reject(err);
    };
  });
}

/**
 * Run one native test against a NativeThroughputServer. Never rejects: a
 * refused connection, timeout, busy server or broken stream is a result
 * with `ok: false` and the reason.
 */
export async function runNativeTest(opts: NativeTestOptions): Promise<ThroughputResult> {
  const port = opts.port ?? DEFAULT_NATIVE_PORT;
  let n: ReturnType<typeof normaliseOptions>;
  try {
    n = normaliseOptions(opts);
  } catch (err) {
    return failedResult('native', `native: invalid options: ${(err as Error).message}`, { host: opts.host ?? null, port });
  }
  const base = { host: n.host, port, direction: n.direction, streams: n.streams, omitSeconds: n.omitSeconds };
  const startedAtMs = Date.now();
  const killAfterMs = opts.killAfterMs ?? (n.seconds + n.omitSeconds) * 1000 + n.connectTimeoutMs + 10_000;
  const sockets: Socket[] = [];
  const streams: StreamState[] = [];
  let finished = false;
  /** Connect, and keep track of the socket so that it is closed whatever happens. */
  const open = async (): Promise<Socket> => {
    const s = await connect(n.host, port, opts.bindAddress, n.connectTimeoutMs);
    sockets.push(s);
    if (finished) s.destroy();
    return s;
  };

  let hardTimer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const guard = new Promise<never>((_, reject) => {
    hardTimer = setTimeout(() => reject(new TestFailure(`native: no result within ${killAfterMs} ms (hard timeout)`)), killAfterMs);
    onAbort = () => reject(new TestFailure('native: aborted'));
    if (opts.signal?.aborted) onAbort();
    else opts.signal?.addEventListener('abort', onAbort, { once: true });
  });

  const run = async (): Promise<ThroughputResult> => {
    const where = `${n.host}:${port}`;
    const controlSocket = await open();
    controlSocket.setNoDelay(true);
    const control = new ControlChannel(controlSocket, where);
    const id = randomUUID();
    control.send({ v: PROTOCOL_VERSION, role: 'control', test: id, streams: n.streams, seconds: n.seconds, omit: n.omitSeconds, direction: n.direction });
    const hello = await control.next(n.connectTimeoutMs, 'answer to the test request');
    if (hello.ok !== true) {
      if (hello.busy === true) throw new TestFailure(`native: the server at ${where} is busy running a test; try again later`);
      throw new TestFailure(`native: the server at ${where} refused the test: ${String(hello.error ?? 'no reason given')}`);
    }
    const version = typeof hello.version === 'string' ? hello.version : NATIVE_ENGINE_VERSION;

    const total = totalStreams(n.direction, n.streams);
    const dataSockets = await Promise.all(Array.from({ length: total }, () => open()));
    let streamFailure: Error | null = null;
    dataSockets.forEach((socket, index) => {
      const st: StreamState = { index, dir: dirOf(n.direction, index, n.streams), socket, sending: false, sent: 0, received: 0 };
      streams.push(st);
      socket.on('data', (c: Buffer) => {
        st.received += c.length;
      });
      const onBroken = (why: string) => {
        if (streamFailure) return;
        streamFailure = new TestFailure(`native: data stream ${index} to ${where} ${why}`);
        control.onFailure?.(streamFailure);
      };
      socket.on('error', (err) => onBroken(`failed: ${err.message}`));
      socket.on('close', () => onBroken('closed during the test'));
      sendJson(socket, { v: PROTOCOL_VERSION, role: 'data', test: id, stream: index, dir: st.dir });
    });

    control.send({ cmd: 'start' });
    const started = await control.next(n.connectTimeoutMs + 5000, 'start confirmation');
    if (started.event !== 'started') throw new TestFailure(`native: unexpected answer to start: ${clipText(JSON.stringify(started), 200)}`);
    const block = makeBlock();
    for (const s of streams) {
      if (s.dir === 'forward') {
        s.sending = true;
        pump(s, block);
      }
    }
    const checkStreams = () => {
      if (streamFailure) throw streamFailure;
    };

    await delay(n.omitSeconds * 1000, control);
    checkStreams();
    control.send({ cmd: 'mark' });
    const mark = snapshot(streams);
    await delay(n.seconds * 1000, control);
    checkStreams();
    const end = snapshot(streams);
    control.send({ cmd: 'end' });
    for (const s of streams) s.sending = false;
    const resultMsg = await control.next(n.connectTimeoutMs + 5000, 'result');
    const server = readServerResult(resultMsg);
    if (!server) throw new TestFailure(`native: the server sent an unreadable result: ${clipText(JSON.stringify(resultMsg), 200)}`);
    // From here on, closing streams is expected.
    streamFailure = new Error('done');
    control.onFailure = null;

    const clientSeconds = (end.t - mark.t) / 1000;
    const serverSeconds = server.seconds;
    const perStream: ThroughputStream[] = streams.map((s, i) => {
      const srv = server.streams.find((x) => x.stream === i);
      const clientSent = (end.sent[i] ?? 0) - (mark.sent[i] ?? 0);
      const clientReceived = (end.received[i] ?? 0) - (mark.received[i] ?? 0);
      // forward: the client sends, the server receives; reverse: the other way.
      const sentBytes = s.dir === 'forward' ? clientSent : (srv?.sent ?? null);
      const receivedBytes = s.dir === 'forward' ? (srv?.received ?? null) : clientReceived;
      const sendSeconds = s.dir === 'forward' ? clientSeconds : serverSeconds;
      const recvSeconds = s.dir === 'forward' ? serverSeconds : clientSeconds;
      return {
        id: i,
        direction: s.dir,
        sentBytes,
        receivedBytes,
        sentBps: sentBytes !== null && sendSeconds > 0 ? (sentBytes * 8) / sendSeconds : null,
        receivedBps: receivedBytes !== null && recvSeconds > 0 ? (receivedBytes * 8) / recvSeconds : null,
        retransmits: null,
        meanRttUs: null,
      };
    });

    const legDirs: LegDirection[] = n.direction === 'bidir' ? ['forward', 'reverse'] : [n.direction];
    const legs: ThroughputLeg[] = legDirs.map((dir) => {
      const ss = perStream.filter((p) => p.direction === dir);
      const sentBytes = ss.reduce((a, p) => a + (p.sentBytes ?? 0), 0);
      const receivedBytes = ss.reduce((a, p) => a + (p.receivedBytes ?? 0), 0);
      const sendSeconds = dir === 'forward' ? clientSeconds : serverSeconds;
      const recvSeconds = dir === 'forward' ? serverSeconds : clientSeconds;
      return {
        direction: dir,
        seconds: recvSeconds,
        sentBytes,
        receivedBytes,
        sentBps: sendSeconds > 0 ? (sentBytes * 8) / sendSeconds : 0,
        receivedBps: recvSeconds > 0 ? (receivedBytes * 8) / recvSeconds : 0,
        retransmits: null,
      };
    });
    const localCpu = cpuBetween(mark, end);
    const cpu: ThroughputCpu = {
      localPercent: localCpu.total,
      localUserPercent: localCpu.user,
      localSystemPercent: localCpu.system,
      remotePercent: server.cpu?.total ?? null,
      remoteUserPercent: server.cpu?.user ?? null,
      remoteSystemPercent: server.cpu?.system ?? null,
    };
    for (const l of legs) {
      if (!(l.seconds > 0)) throw new TestFailure(`native: empty measurement window in the ${l.direction} direction`);
      if (l.receivedBytes <= 0) {
        return failedResult('native', `native: the test ran but the receiver counted 0 bytes in the ${l.direction} direction`, {
          ...base,
          startedAtMs,
          engineVersion: version,
          cpu,
        });
      }
    }
    const primary = legs[0]!;
    return {
      engine: 'native',
      engineVersion: version,
      ok: true,
      error: null,
      host: n.host,
      port,
      direction: n.direction,
      streams: n.streams,
      seconds: primary.seconds,
      omitSeconds: n.omitSeconds,
      startedAtMs,
      sentBps: primary.sentBps,
      receivedBps: primary.receivedBps,
      sentBytes: primary.sentBytes,
      receivedBytes: primary.receivedBytes,
      retransmits: null,
      legs,
      perStream,
      cpu,
      congestion: { sender: null, receiver: null },
      notes: [],
    };
  };

  const running = run();
  running.catch(() => undefined); // settles after the guard when the guard wins
  try {
    return await Promise.race([running, guard]);
  } catch (err) {
    const msg = err instanceof TestFailure ? err.message : `native: ${(err as Error).message}`;
    return failedResult('native', msg, { ...base, startedAtMs });
  } finally {
    finished = true;
    clearTimeout(hardTimer);
    if (onAbort) opts.signal?.removeEventListener('abort', onAbort);
    for (const s of streams) s.sending = false;
    for (const s of sockets) s.destroy();
  }
}
