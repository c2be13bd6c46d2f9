/**
 * Userspace delay relay: the fibre of the fabric's links, since this kernel
 * has no netem.
 *
 * Design (TUN-free, no raw sockets): one relay process runs in each centre's
 * namespace and owns the centre's *service address* (the topology's
 * `probe.host`) on the STAMP port (UDP) and the throughput port (TCP). The
 * probe itself listens on 127.0.0.1 in its namespace (`listen_address`), so
 * whatever a peer sends to the centre crosses the relay first. A peer reaches
 * the service address only over its direct link (a /32 route via that link),
 * so the packet's source address says which link it came over; the relay
 * looks the link up by that address and applies the link's settings:
 *
 * - delay: every packet (UDP) or chunk (TCP) is held `delayUs` on the way in
 *   (peer -> centre) and again on the way out (reply -> peer): one link
 *   crossing each way, so a round trip gains exactly 2 x delayUs (UDP also
 *   gets a fixed 250 µs per crossing at any delay, 0 included: see floorUs);
 * - loss: each UDP packet is dropped with probability `loss`, independently
 *   on each leg (round-trip loss 1 - (1 - loss)^2). TCP is a byte stream here
 *   (the relay terminates it), so loss is not applied to TCP;
 * - black-hole windows [fromMs, toMs) (wall clock): UDP packets arriving in
 *   one are dropped on both legs; TCP data is held until the window ends
 *   (as a real TCP would deliver it after retransmitting).
 *
 * UDP (STAMP) goes through the C relay (udp-relay.c, built on first use by
 * native-relay.ts) wherever a C compiler exists: it takes each packet's
 * arrival from the kernel's receive timestamp and releases it at arrival +
 * hold from a timerfd with 1 ns slack at SCHED_FIFO priority, so the hold is
 * exact to microseconds even on a busy host (Node's path: 90-150 µs late
 * quiet, 0.7-1.5 ms under load). Without a compiler the Node path below
 * carries UDP too, and the relay says so.
 *
 * Hold times are sub-millisecond, below what Node timers resolve, so the
 * hold queue is driven by a small timer thread that sleeps until the next
 * due time with microsecond resolution and wakes the event loop (which keeps
 * serving sockets meanwhile, and burns no CPU waiting). Each release records
 * how late it went out against its due time: the relay reports its own
 * accuracy.
 *
 * ICMP is not relayed (no raw sockets in Node): an ICMP echo to the service
 * address is answered by the centre's kernel after crossing the bare veth,
 * so the ICMP engine measures the bare path and STAMP the relayed path.
 *
 * A control channel on a Unix socket (JSON lines) changes delay/loss, adds
 * black-hole windows and reads per-link counters while the relay runs.
 */
import { createSocket, type RemoteInfo, type Socket as UdpSocket } from 'node:dgram';
import { readFileSync, rmSync } from 'node:fs';
import { connect as tcpConnect, createServer, type Server, type Socket } from 'node:net';
import { Worker } from 'node:worker_threads';
import { nativeRelayBinary, NativeUdpRelay, type NativeRelayState } from './native-relay.js';

export interface RelayLinkConfig {
  /** Peer centre id. */
  peer: string;
  /** The peer's address on the direct link: packets from it came over this link. */
  peerAddress: string;
  /** One-way hold per link crossing, µs. */
  delayUs: number;
  /** Drop probability per UDP packet and leg, 0..1. */
  loss: number;
}

export interface RelayForward {
  /** Port the relay listens on (at `listenHost`). */
  port: number;
  /** Where it forwards to (the probe's reflector or throughput server). */
  targetHost: string;
  targetPort: number;
}

export interface RelayConfig {
  centre: string;
  /** The centre's service address (what peers target). */
  listenHost: string;
  udp: RelayForward[];
  tcp: RelayForward[];
  links: RelayLinkConfig[];
  /** Unix socket for the control channel (optional). */
  controlPath?: string;
  /** Seed of the loss PRNG (reproducible drop patterns). */
  seed?: number;
  /**
   * Fixed hold added to every UDP packet on each leg, µs (default 250), on
   * top of the link's delay. With it every packet, at delay 0 as at any
   * other, takes the same timed path through the hold queue (the timer
   * thread is already spinning when the packet falls due), so a base RTT
   * measured at delay 0 differs from a delayed one by exactly the delay.
   * It is part of the fabric's bare path, like a switch's latency.
   */
  floorUs?: number;
  /** UDP through the C relay ('native', the default where it builds) or Node's hold queue ('node'). */
  udpEngine?: 'native' | 'node';
}

export interface LegCounters {
  /** UDP packets that arrived on this leg. */
  packets: number;
  forwarded: number;
  droppedLoss: number;
  droppedBlackhole: number;
  /** TCP payload bytes carried and connections accepted (inbound leg only). */
  tcpBytes: number;
  tcpConnections: number;
  /** Release lateness against the due time, µs (UDP and TCP). */
  lateSumUs: number;
  lateMaxUs: number;
  releases: number;
  /** UDP through the C relay: release error percentiles, µs (1 µs buckets). */
  lateP50Us?: number;
  lateP99Us?: number;
}

export interface RelayLinkState extends RelayLinkConfig {
  blackholes: { fromMs: number; toMs: number }[];
  /** in: peer -> centre (requests), out: centre -> peer (replies). */
  counters: { in: LegCounters; out: LegCounters };
}

export type ControlRequest =
  | { op: 'ping' }
  | { op: 'get' }
  | { op: 'set'; peer: string; delayUs?: number; loss?: number }
  | { op: 'blackhole'; peer: string; fromMs: number; toMs: number }
  | { op: 'reset' };

export type ControlResponse =
  | {
    ok: true; centre: string; links?: RelayLinkState[]; udpEngine?: 'native' | 'node'; udpEngineNote?: string | null;
    /** Packets from addresses that are no link's peer (never forwarded), on every path. */
    unknownSource?: number;
  }
  | { ok: false; error: string };

const newCounters = (): LegCounters => ({
  packets: 0, forwarded: 0, droppedLoss: 0, droppedBlackhole: 0, tcpBytes: 0, tcpConnections: 0, lateSumUs: 0, lateMaxUs: 0, releases: 0,
});

/** mulberry32: small, fast, seedable; good enough for Bernoulli drops. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Held {
  due: number;
  seq: number;
  release: (lateMs: number) => void;
}

/** Monotonic clock in milliseconds with sub-microsecond resolution, the same in every thread. */
export const nowMs = (): number => Number(process.hrtime.bigint()) / 1e6;

/**
 * The timer thread: sleeps in a futex (Atomics.wait, microsecond timeout)
 * until the earliest due time, then wakes the main thread with a message.
 * Node's own timers have millisecond resolution; spinning on setImmediate
 * instead would work on an idle machine but, under CPU contention, the
 * scheduler penalises a spinning process and delays it by whole time
 * slices, while a sleeping one is woken promptly (the thread spins only the
 * last 0.15 ms, to absorb the kernel's timer slack). Shared words: [0] a
 * generation the main thread bumps whenever the due time changes, [1] stop;
 * then the due time (float64, nowMs() timebase; Infinity when idle).
 */
const TIMER_THREAD = `
const { parentPort, workerData } = require('node:worker_threads');
const i32 = new Int32Array(workerData.shared, 0, 2);
const f64 = new Float64Array(workerData.shared, 8, 1);
const now = () => Number(process.hrtime.bigint()) / 1e6;
const LEAD_MS = workerData.spinMs;
for (;;) {
  if (Atomics.load(i32, 1) !== 0) break;
  const gen = Atomics.load(i32, 0);
  const due = f64[0];
  if (!(due < Infinity)) { Atomics.wait(i32, 0, gen); continue; }
  const left = due - now();
  // Sleep to just short of the due time (a futex timeout carries the kernel's timer slack), then spin
  // the last stretch here, on this thread, so the main thread is woken on time.
  if (left > LEAD_MS) { Atomics.wait(i32, 0, gen, left - LEAD_MS); continue; }
  while (now() < due && Atomics.load(i32, 0) === gen) {}
  if (Atomics.load(i32, 0) !== gen) continue;
  parentPort.postMessage(gen);
  Atomics.wait(i32, 0, gen);
}
`;

/**
 * Releases callbacks at due times (nowMs() milliseconds) with
 * sub-millisecond precision; equal due times keep their push order.
 */
export class HoldQueue {
  private readonly heap: Held[] = [];
  private seq = 0;
  private closed = false;
  private readonly shared = new SharedArrayBuffer(16);
  private readonly gen = new Int32Array(this.shared, 0, 2);
  private readonly due = new Float64Array(this.shared, 8, 1);
  private readonly worker: Worker;
  /** Resolves once the timer thread runs (items pushed before are held until then). */
  readonly ready: Promise<void>;

  /** spinMs: how long before a due time the timer thread stops sleeping and spins (0: never spins). */
  constructor(spinMs = 0.15) {
    this.due[0] = Infinity;
    this.worker = new Worker(TIMER_THREAD, { eval: true, workerData: { shared: this.shared, spinMs } });
    this.worker.on('message', () => this.run());
    this.worker.on('error', () => undefined);
    // Unreferenced once running (it must not keep a finished process alive), not before: a process
    // with nothing else to do yet would otherwise exit while waiting for it.
    this.ready = new Promise((resolve) => this.worker.once('online', () => {
      this.worker.unref();
      resolve();
    }));
  }

  get size(): number {
    return this.heap.length;
  }

  push(due: number, release: (lateMs: number) => void): void {
    if (this.closed) return;
    // Even an item due now goes through the timer thread: every delay, 0 included, takes the same
    // path, so a base RTT measured at delay 0 carries the relay's own overhead and the difference
    // to a delayed RTT is the hold alone.
    const item: Held = { due, seq: this.seq++, release };
    const h = this.heap;
    h.push(item);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
    if (h[0] === item) this.arm();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.heap.length = 0;
    Atomics.store(this.gen, 1, 1);
    Atomics.add(this.gen, 0, 1);
    Atomics.notify(this.gen, 0);
    void this.worker.terminate();
  }

  private pop(): Held {
    const h = this.heap;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && before(h[l]!, h[m]!)) m = l;
        if (r < h.length && before(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }

  /** Tell the timer thread the earliest due time (Infinity: nothing held). */
  private arm(): void {
    if (this.closed) return;
    this.due[0] = this.heap.length > 0 ? this.heap[0]!.due : Infinity;
    Atomics.add(this.gen, 0, 1);
    Atomics.notify(this.gen, 0);
  }

  private run(): void {
    if (this.closed) return;
    const now = nowMs();
    while (this.heap.length > 0 && this.heap[0]!.due <= now) {
      const item = this.pop();
      try {
        item.release(now - item.due);
      } catch {
        // a closed socket: the packet is simply gone
      }
    }
    this.arm();
  }
}

function before(a: Held, b: Held): boolean {
  return a.due < b.due || (a.due === b.due && a.seq < b.seq);
}

interface UdpSession {
  socket: UdpSocket;
  client: RemoteInfo;
  link: RelayLinkState;
  lastUsed: number;
}

const TCP_HIGH_WATER = 1 << 20;
const TCP_LOW_WATER = 256 << 10;
const UDP_SESSION_IDLE_MS = 120_000;

export class DelayRelay {
  readonly links = new Map<string, RelayLinkState>();
  private readonly byAddress = new Map<string, RelayLinkState>();
  /** UDP (STAMP): released to within microseconds. */
  private readonly queue = new HoldQueue();
  /** TCP (throughput): many chunks, no need for microseconds; its timer thread never spins. */
  private readonly streamQueue = new HoldQueue(0);
  private readonly random: () => number;
  private readonly udpSockets: UdpSocket[] = [];
  private readonly tcpServers: Server[] = [];
  private readonly tcpSockets = new Set<Socket>();
  private readonly sessions = new Map<string, UdpSession>();
  private control: Server | null = null;
  private sweeper: NodeJS.Timeout | null = null;
  /** Packets from addresses that are no link's peer (never forwarded). */
  unknownSource = 0;
  private readonly floorUs: number;
  private readonly natives: NativeUdpRelay[] = [];
  private readonly nativeBinary: string | null;
  /** Who carries UDP, and why not the C relay when it does not. */
  readonly udpEngine: 'native' | 'node';
  readonly udpEngineNote: string | null;

  private constructor(readonly config: RelayConfig) {
    this.random = prng(config.seed ?? 0x5eed);
    this.floorUs = config.floorUs ?? 250;
    // CITYMESH_FABRIC_UDP_ENGINE=node keeps UDP in Node (to compare the two paths).
    const engine = config.udpEngine ?? (process.env.CITYMESH_FABRIC_UDP_ENGINE === 'node' ? 'node' : 'native');
    const build = engine === 'node' ? null : nativeRelayBinary();
    this.udpEngine = build?.ok ? 'native' : 'node';
    this.udpEngineNote = build === null ? 'node UDP path requested' : build.ok ? null : build.reason;
    this.nativeBinary = build?.ok ? build.path : null;
    for (const l of config.links) {
      const state: RelayLinkState = { ...l, blackholes: [], counters: { in: newCounters(), out: newCounters() } };
      this.links.set(l.peer, state);
      this.byAddress.set(normalise(l.peerAddress), state);
    }
  }

  static async start(config: RelayConfig): Promise<DelayRelay> {
    const relay = new DelayRelay(config);
    try {
      await Promise.all([relay.queue.ready, relay.streamQueue.ready]);
      for (const f of config.udp) await relay.listenUdp(f);
      for (const f of config.tcp) await relay.listenTcp(f);
      if (config.controlPath) await relay.listenControl(config.controlPath);
    } catch (error) {
      await relay.close();
      throw error;
    }
    relay.sweeper = setInterval(() => relay.sweep(), 30_000);
    relay.sweeper.unref();
    return relay;
  }

  /** Apply a control request (also what the Unix-socket channel calls). */
  async handle(req: ControlRequest): Promise<ControlResponse> {
    switch (req.op) {
      case 'ping':
        return { ok: true, centre: this.config.centre, udpEngine: this.udpEngine, udpEngineNote: this.udpEngineNote };
      case 'get': {
        const links = [...this.links.values()].map((l) => structuredClone(l));
        let unknownSource = this.unknownSource;
        for (const state of await Promise.all(this.natives.map((n) => n.state()))) {
          mergeNative(links, state);
          unknownSource += state.unknownSource;
        }
        return { ok: true, centre: this.config.centre, links, udpEngine: this.udpEngine, udpEngineNote: this.udpEngineNote, unknownSource };
      }
      case 'reset':
        for (const l of this.links.values()) l.counters = { in: newCounters(), out: newCounters() };
        await Promise.all(this.natives.map((n) => n.reset()));
        return { ok: true, centre: this.config.centre };
      case 'set': {
        const link = this.links.get(req.peer);
        if (!link) return { ok: false, error: `no link to "${req.peer}" at ${this.config.centre}` };
        if (req.delayUs !== undefined) {
          if (!(req.delayUs >= 0 && req.delayUs <= 10_000_000)) return { ok: false, error: 'delayUs: must be 0..10 s' };
          link.delayUs = req.delayUs;
        }
        if (req.loss !== undefined) {
          if (!(req.loss >= 0 && req.loss <= 1)) return { ok: false, error: 'loss: must be 0..1' };
          link.loss = req.loss;
        }
        await Promise.all(this.natives.map((n) => n.set(normalise(link.peerAddress), link.delayUs, link.loss)));
        return { ok: true, centre: this.config.centre };
      }
      case 'blackhole': {
        const link = this.links.get(req.peer);
        if (!link) return { ok: false, error: `no link to "${req.peer}" at ${this.config.centre}` };
        if (!(req.toMs > req.fromMs)) return { ok: false, error: 'blackhole: toMs must be after fromMs' };
        link.blackholes.push({ fromMs: req.fromMs, toMs: req.toMs });
        await Promise.all(this.natives.map((n) => n.blackhole(normalise(link.peerAddress), req.fromMs, req.toMs)));
        return { ok: true, centre: this.config.centre };
      }
      default:
        return { ok: false, error: `unknown op ${(req as { op?: unknown }).op as string}` };
    }
  }

  async close(): Promise<void> {
    if (this.sweeper) clearInterval(this.sweeper);
    this.queue.close();
    this.streamQueue.close();
    for (const n of this.natives) n.close();
    for (const s of this.sessions.values()) s.socket.close();
    this.sessions.clear();
    for (const s of this.udpSockets) s.close();
    for (const s of this.tcpSockets) s.destroy();
    await Promise.all([...this.tcpServers, ...(this.control ? [this.control] : [])].map((s) => new Promise<void>((r) => s.close(() => r()))));
    if (this.config.controlPath) rmSync(this.config.controlPath, { force: true });
  }

  /** Milliseconds a black-hole window still covers at wall time `nowMs` (0 when none). */
  private blackholeLeftMs(link: RelayLinkState, nowMs: number): number {
    let left = 0;
    for (const w of link.blackholes) if (nowMs >= w.fromMs && nowMs < w.toMs) left = Math.max(left, w.toMs - nowMs);
    return left;
  }

  private note(leg: LegCounters, lateMs: number): void {
    const us = lateMs * 1000;
    leg.releases++;
    leg.lateSumUs += us;
    if (us > leg.lateMaxUs) leg.lateMaxUs = us;
  }

  /** Decide the fate of one UDP packet on a leg: the due time, or null when dropped. */
  private admit(link: RelayLinkState, leg: LegCounters): number | null {
    leg.packets++;
    if (this.blackholeLeftMs(link, Date.now()) > 0) {
      leg.droppedBlackhole++;
      return null;
    }
    if (link.loss > 0 && this.random() < link.loss) {
      leg.droppedLoss++;
      return null;
    }
    return nowMs() + (this.floorUs + link.delayUs) / 1000;
  }

  private async listenUdp(f: RelayForward): Promise<void> {
    if (this.nativeBinary) {
      this.natives.push(await NativeUdpRelay.start(this.nativeBinary, {
        listenHost: this.config.listenHost, port: f.port, targetHost: f.targetHost, targetPort: f.targetPort, floorUs: this.floorUs,
        seed: (this.config.seed ?? 0x5eed) + this.natives.length,
        links: [...this.links.values()].map((l) => ({ peerAddress: normalise(l.peerAddress), delayUs: l.delayUs, loss: l.loss })),
      }));
      return;
    }
    const pub = createSocket({ type: 'udp4' });
    await new Promise<void>((resolve, reject) => {
      pub.once('error', reject);
      pub.bind({ port: f.port, address: this.config.listenHost }, () => {
        pub.off('error', reject);
        resolve();
      });
    });
    pub.on('error', () => undefined);
    this.udpSockets.push(pub);
    pub.on('message', (msg, rinfo) => {
      const link = this.byAddress.get(normalise(rinfo.address));
      if (!link) {
        this.unknownSource++;
        return;
      }
      const due = this.admit(link, link.counters.in);
      if (due === null) return;
      const session = this.session(pub, f, rinfo, link);
      this.queue.push(due, (late) => {
        session.socket.send(msg, f.targetPort, f.targetHost);
        link.counters.in.forwarded++;
        this.note(link.counters.in, late);
      });
    });
  }

  /** One upstream socket per client address and port, so replies find their way back. */
  private session(pub: UdpSocket, f: RelayForward, client: RemoteInfo, link: RelayLinkState): UdpSession {
    const key = `${f.port}|${client.address}|${client.port}`;
    let s = this.sessions.get(key);
    if (!s) {
      const socket = createSocket({ type: 'udp4' });
      socket.on('error', () => undefined);
      const session: UdpSession = { socket, client: { ...client }, link, lastUsed: Date.now() };
      socket.on('message', (msg) => {
        session.lastUsed = Date.now();
        const due = this.admit(link, link.counters.out);
        if (due === null) return;
        this.queue.push(due, (late) => {
          pub.send(msg, session.client.port, session.client.address);
          link.counters.out.forwarded++;
          this.note(link.counters.out, late);
        });
      });
      socket.bind(0);
      this.sessions.set(key, session);
      s = session;
    }
    s.lastUsed = Date.now();
    return s;
  }

  private sweep(): void {
    const cutoff = Date.now() - UDP_SESSION_IDLE_MS;
    for (const [key, s] of this.sessions) {
      if (s.lastUsed < cutoff) {
        s.socket.close();
        this.sessions.delete(key);
      }
    }
  }

  private async listenTcp(f: RelayForward): Promise<void> {
    const server = createServer({ allowHalfOpen: true }, (client) => {
      const link = this.byAddress.get(normalise(client.remoteAddress ?? ''));
      if (!link) {
        this.unknownSource++;
        client.destroy();
        return;
      }
      link.counters.in.tcpConnections++;
      const upstream = tcpConnect({ host: f.targetHost, port: f.targetPort, allowHalfOpen: true });
      for (const s of [client, upstream]) {
        s.setNoDelay(true);
        this.tcpSockets.add(s);
        s.on('error', () => {
          client.destroy();
          upstream.destroy();
        });
        s.on('close', (hadError) => {
          this.tcpSockets.delete(s);
          // A reset on one side resets the other.
          if (hadError) (s === client ? upstream : client).destroy();
        });
      }
      this.pipeDelayed(client, upstream, link, link.counters.in);
      this.pipeDelayed(upstream, client, link, link.counters.out);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ port: f.port, host: this.config.listenHost }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.tcpServers.push(server);
  }

  /** Copy src to dst, each chunk held the link's delay (and any black-hole), order kept, bounded buffering. */
  private pipeDelayed(src: Socket, dst: Socket, link: RelayLinkState, leg: LegCounters): void {
    let lastDue = 0;
    let held = 0;
    let paused = false;
    const dueNow = () => {
      const due = nowMs() + link.delayUs / 1000 + this.blackholeLeftMs(link, Date.now());
      lastDue = Math.max(due, lastDue);
      return lastDue;
    };
    const maybeResume = () => {
      if (paused && held + dst.writableLength < TCP_LOW_WATER) {
        paused = false;
        src.resume();
      }
    };
    dst.on('drain', maybeResume);
    src.on('data', (chunk: Buffer) => {
      held += chunk.length;
      leg.tcpBytes += chunk.length;
      this.streamQueue.push(dueNow(), (late) => {
        held -= chunk.length;
        this.note(leg, late);
        if (!dst.destroyed) dst.write(chunk);
        maybeResume();
      });
      if (!paused && held + dst.writableLength > TCP_HIGH_WATER) {
        paused = true;
        src.pause();
      }
    });
    src.on('end', () => {
      this.streamQueue.push(dueNow(), () => {
        if (!dst.destroyed) dst.end();
      });
    });
  }

  private async listenControl(path: string): Promise<void> {
    rmSync(path, { force: true });
    const server = createServer((conn) => {
      let buffer = '';
      conn.setEncoding('utf8');
      conn.on('error', () => undefined);
      conn.on('data', (d: string) => {
        buffer += d;
        let nl: number;
        while ((nl = buffer.indexOf('\n')) >= 0) {
          const line = buffer.slice(0, nl);
          buffer = buffer.slice(nl + 1);
          void (async () => {
            let res: ControlResponse;
            try {
              res = await this.handle(JSON.parse(line) as ControlRequest);
            } catch (error) {
              res = { ok: false, error: `bad request: ${(error as Error).message}` };
            }
            if (!conn.destroyed) conn.write(JSON.stringify(res) + '\n');
          })();
        }
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.control = server;
  }
}

/** Add the C relay's UDP counters to the links' (TCP and any Node UDP stay as counted here). */
function mergeNative(links: RelayLinkState[], state: NativeRelayState): void {
  for (const n of state.links) {
    const link = links.find((l) => normalise(l.peerAddress) === n.peer);
    if (!link) continue;
    for (const leg of ['in', 'out'] as const) {
      const c = link.counters[leg];
      const x = n[leg];
      c.packets += x.packets;
      c.forwarded += x.forwarded;
      c.droppedLoss += x.droppedLoss;
      c.droppedBlackhole += x.droppedBlackhole;
      c.lateSumUs += x.lateSumUs;
      c.lateMaxUs = Math.max(c.lateMaxUs, x.lateMaxUs);
      c.releases += x.releases;
      // UDP percentiles come from the C relay alone (TCP chunk lateness is not in them).
      if (x.releases > 0) {
        c.lateP50Us = Math.max(c.lateP50Us ?? 0, x.lateP50Us);
        c.lateP99Us = Math.max(c.lateP99Us ?? 0, x.lateP99Us);
      }
    }
  }
}

/** IPv4-mapped IPv6 addresses (TCP sockets on dual-stack) compare as plain IPv4. */
function normalise(address: string): string {
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}

/** Send one control request over the relay's Unix socket and wait for the answer. */
export function relayControl(path: string, req: ControlRequest, timeoutMs = 5000): Promise<ControlResponse> {
  return new Promise((resolve, reject) => {
    const conn = tcpConnect({ path });
    let buffer = '';
    const timer = setTimeout(() => {
      conn.destroy();
      reject(new Error(`relay control ${path}: no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    conn.setEncoding('utf8');
    conn.on('connect', () => conn.write(JSON.stringify(req) + '\n'));
    conn.on('data', (d: string) => {
      buffer += d;
      const nl = buffer.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      conn.end();
      try {
        resolve(JSON.parse(buffer.slice(0, nl)) as ControlResponse);
      } catch (error) {
        reject(error as Error);
      }
    });
    conn.on('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`relay control ${path}: ${error.message}`));
    });
  });
}

/** Child-process entry: `relay CONFIG.json`; prints "relay ready" once listening, stops on SIGTERM/SIGINT. */
export async function relayMain(args: string[]): Promise<void> {
  const file = args[0];
  if (!file) throw new Error('usage: relay CONFIG.json');
  const config = JSON.parse(readFileSync(file, 'utf8')) as RelayConfig;
  const relay = await DelayRelay.start(config);
  process.stdout.write(
    `relay ready: ${config.centre} ${config.listenHost} udp ${config.udp.map((u) => u.port).join(',')} tcp ${config.tcp.map((t) => t.port).join(',')}` +
      ` udp engine ${relay.udpEngine}${relay.udpEngineNote ? ` (${relay.udpEngineNote})` : ''}\n`,
  );
  const stop = () => void relay.close().then(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}
