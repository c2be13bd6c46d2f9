/**
 * Stateless STAMP Session-Reflector (RFC 8762 §4): the reply's own sequence
 * number is a copy of the sender's, so no per-session state exists and any
 * STAMP sender can use it.
 *
 * Two datapaths with the same behaviour: the native one (probes/native/
 * stamp.c: kernel receive timestamp for T2, the received TTL, T3 read just
 * before sendmsg, on its own thread) and a JavaScript fallback (T2 when the
 * event loop gets to the packet, TTL unknown so 255 as RFC 5357 §4.2 asks).
 * Both refuse what reflector-policy.ts refuses and count why.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { isIP, type AddressInfo } from 'node:net';
import type { Timestamping } from '../types.js';
import { ClockSyncCache, nowNs, type ClockSync } from './clock.js';
import { decodeSenderPacket, encodeErrorEstimate, encodeReflectorPacket, unixNsToNtp } from './codec.js';
import { stampDatapath, type StampDatapath } from './native.js';
import { emptyDrops, OPEN_POLICY, parsePrefix, PolicyGate, type DropReason, type ReflectorPolicy } from './reflector-policy.js';

/** Node's dgram (libuv) does not expose the received TTL; RFC 5357 §4.2: a reflector that cannot read it MUST write 255. */
const UNKNOWN_TTL = 255;

export interface ReflectorOptions {
  port: number;
  /** Bind address; '0.0.0.0' by default, udp6 when it contains ':'. */
  host?: string;
  /** Sync state for our Error Estimate; a private one is created (and closed) otherwise. */
  clock?: ClockSyncCache;
  /** Whom to answer and how often (default: anyone, rate limited: OPEN_POLICY). */
  policy?: ReflectorPolicy;
}

export interface ReflectorStats {
  datapath: 'native' | 'js';
  /** How T2 is taken. */
  timestamping: Timestamping;
  /** Datagrams that arrived. */
  received: number;
  reflected: number;
  drops: Record<DropReason, number>;
}

interface Backend {
  address(): AddressInfo;
  stats(): ReflectorStats;
  setSync(sync: ClockSync): void;
  setPolicy(policy: ReflectorPolicy): void;
  close(): Promise<void>;
}

function errorEstimateOf(sync: ClockSync): number {
  return encodeErrorEstimate({ synchronized: sync.synchronized, errorSeconds: sync.errorSeconds });
}

class NativeBackend implements Backend {
  #closed = false;
  /**
   * The native socket is no libuv handle, so nothing would keep the process
   * alive for it; an open reflector must (as a dgram socket does), e.g. for
   * `citymesh reflect`. A long idle timer does that, cleared on close.
   */
  #keepAlive = setInterval(() => undefined, 2 ** 30);

  constructor(private readonly native: StampDatapath, private readonly id: number, private readonly host: string) {}

  address(): AddressInfo {
    const port = this.native.reflectorStats(this.id).port;
    return { address: this.host, family: isIP(this.host) === 6 ? 'IPv6' : 'IPv4', port };
  }

  stats(): ReflectorStats {
    const s = this.native.reflectorStats(this.id);
    const drops = emptyDrops();
    for (const reason of Object.keys(drops) as DropReason[]) drops[reason] = s.drops[reason] ?? 0;
    // Kernel stamps were asked for; if any packet came without one, say the weaker.
    const timestamping: Timestamping = s.rxUser > 0 ? 'user' : s.timestamping;
    return { datapath: 'native', timestamping, received: s.received, reflected: s.reflected, drops };
  }

  setSync(sync: ClockSync): void {
    if (!this.#closed) this.native.reflectorConfigure(this.id, { errorEstimate: errorEstimateOf(sync) });
  }

  setPolicy(policy: ReflectorPolicy): void {
    const own = this.native.reflectorStats(this.id).port;
    this.native.reflectorConfigure(this.id, {
      allowAny: policy.allowAny, allow: policy.allow.map(parsePrefix), denyPorts: [...new Set([...policy.denyPorts, own])],
      ratePps: policy.ratePps, burst: policy.burst,
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#keepAlive);
    this.native.close(this.id);
  }
}

class JsBackend implements Backend {
  #received = 0;
  #reflected = 0;
  #drops = emptyDrops();
  #gate: PolicyGate;
  #errorEstimate: number;

  constructor(private readonly socket: Socket, policy: ReflectorPolicy, sync: ClockSync) {
    this.#gate = new PolicyGate(policy, socket.address().port);
    this.#errorEstimate = errorEstimateOf(sync);
    socket.on('message', (msg, rinfo) => this.#onMessage(msg, rinfo));
    // A send failure (e.g. the sender vanished) must not kill the reflector.
    socket.on('error', () => undefined);
  }

  #onMessage(msg: Buffer, rinfo: RemoteInfo): void {
    const t2 = nowNs();
    this.#received++;
    const drop = this.#gate.check(msg, rinfo.address, rinfo.port, Number(t2 / 1_000_000n));
    if (drop) {
      this.#drops[drop]++;
      return;
    }
    const req = decodeSenderPacket(msg);
    const fields = {
      seq: req.seq,
      errorEstimate: this.#errorEstimate,
      receiveTimestamp: unixNsToNtp(t2),
      senderSeq: req.seq,
      senderTimestamp: req.timestamp,
      senderErrorEstimate: req.errorEstimate,
      senderTtl: UNKNOWN_TTL,
    };
    // T3 is read last so the hold time T3 − T2 covers all our processing; the reply is as long as the request.
    const reply = encodeReflectorPacket({ ...fields, timestamp: unixNsToNtp(nowNs()) }, msg.length);
    try {
      this.socket.send(reply, rinfo.port, rinfo.address, (error) => {
        if (error) this.#drops.sendError++;
      });
      this.#reflected++;
    } catch {
      this.#drops.sendError++; // never let one datagram take the process down
    }
  }

  address(): AddressInfo {
    return this.socket.address();
  }

  stats(): ReflectorStats {
    return { datapath: 'js', timestamping: 'user', received: this.#received, reflected: this.#reflected, drops: { ...this.#drops } };
  }

  setSync(sync: ClockSync): void {
    this.#errorEstimate = errorEstimateOf(sync);
  }

  setPolicy(policy: ReflectorPolicy): void {
    this.#gate = new PolicyGate(policy, this.socket.address().port);
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      try {
        this.socket.close(() => resolve());
      } catch {
        resolve(); // already closed
      }
    });
  }
}

export class StampReflector {
  #backend: Backend;
  #clock: ClockSyncCache;
  #ownsClock: boolean;
  #unsubscribe: () => void;

  private constructor(backend: Backend, clock: ClockSyncCache, ownsClock: boolean) {
    this.#backend = backend;
    this.#clock = clock;
    this.#ownsClock = ownsClock;
    this.#unsubscribe = clock.onChange((sync) => backend.setSync(sync));
  }

  static async listen(opts: ReflectorOptions): Promise<StampReflector> {
    const host = opts.host ?? '0.0.0.0';
    const policy = opts.policy ?? OPEN_POLICY;
    const clock = opts.clock ?? new ClockSyncCache();
    // The first packets should already carry the host's real S bit and bound.
    await clock.ready();
    let backend: Backend;
    try {
      backend = await openBackend(host, opts.port, policy, clock.current());
    } catch (err) {
      if (!opts.clock) clock.close();
      throw err;
    }
    return new StampReflector(backend, clock, !opts.clock);
  }

  address(): AddressInfo {
    return this.#backend.address();
  }

  stats(): ReflectorStats {
    return this.#backend.stats();
  }

  /** Change whom we answer (a new plan) without closing the socket. */
  setPolicy(policy: ReflectorPolicy): void {
    this.#backend.setPolicy(policy);
  }

  async close(): Promise<void> {
    this.#unsubscribe();
    if (this.#ownsClock) this.#clock.close();
    await this.#backend.close();
  }
}

async function openBackend(host: string, port: number, policy: ReflectorPolicy, sync: ClockSync): Promise<Backend> {
  const native = stampDatapath();
  if (native && isIP(host)) {
    const id = native.reflectorOpen({ host, port });
    const backend = new NativeBackend(native, id, host);
    try {
      backend.setSync(sync);
      backend.setPolicy(policy);
    } catch (error) {
      await backend.close();
      throw error;
    }
    return backend;
  }
  const socket = createSocket({ type: host.includes(':') ? 'udp6' : 'udp4' });
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(port, host, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    return new JsBackend(socket, policy, sync);
  } catch (err) {
    socket.close();
    throw err;
  }
}
