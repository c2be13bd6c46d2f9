/**
 * STAMP Session-Sender (RFC 8762) as an Engine. Each flow is a long-lived UDP
 * socket, pooled by (source, host, port, flow): the source port stays stable
 * across trains (so ECMP keeps hashing the flow onto the same path) and the
 * session's sequence number keeps counting from 0 as the RFC requires.
 *
 * DSCP: set on the session socket (natively, or through ./dscp.ts on the
 * JavaScript path); each result records the DSCP its packets actually carried.
 *
 * Datapath: the native one (probes/native/stamp.c) when it loads: one call
 * per train, paced on its own thread, T1 from the kernel's transmit stamp
 * (else the clock read just before sendmsg), T4 the kernel's receive stamp.
 * Otherwise JavaScript, with timestamps taken on the event loop; every result
 * says which (senderTimestamping).
 */
import { createSocket, type Socket } from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { summariseTrain, type TrainArrival } from '../../train-stats.js';
import type { Engine, Timestamping, TrainResult, TrainTask } from '../types.js';
import { ClockSyncCache, nowNs } from './clock.js';
import { applyDscp } from './dscp.js';
import {
  decodeErrorEstimate,
  decodeReflectorPacket,
  decodeTimestamp,
  encodeErrorEstimate,
  encodeSenderPacket,
  MIN_REFLECTOR_SIZE,
  type ReflectorPacket,
  unixNsToNtp,
} from './codec.js';
import { stampDatapath, type NativeTrainResult, type StampDatapath } from './native.js';

/**
 * One-way delays are reported only when the combined clock error bound of both
 * ends is at most this fraction of the smallest one-way delay in the train;
 * otherwise the clock error could dominate what is being measured.
 */
export const ONE_WAY_MAX_ERROR_RATIO = 0.1;

/** Sent packets as a train sees them: relative index → local send time. */
interface Train {
  index: Map<number, number>;
  t1: bigint[];
  /** rawNs: T4 − T1 on our clock. */
  replies: Array<{ i: number; t4: bigint; rawNs: bigint; pkt: ReflectorPacket }>;
  /** How T1 and T4 were taken, the weakest over the train. */
  timestamping: Timestamping;
}

/** One pooled flow: a bound socket plus the session's sequence counter. */
interface Session {
  /** The JavaScript datapath's socket, or null on the native one. */
  socket: Socket | null;
  /** The native datapath's sender id. */
  native: { datapath: StampDatapath; id: number } | null;
  srcPort: number;
  /** DSCP the socket marks its packets with (0 when marking is unavailable). */
  dscp: number;
  nextSeq: number;
  /** Session-Sender seq → the train waiting for it (JavaScript datapath). */
  pending: Map<number, Train>;
  /** The reflector's address. */
  peer: string;
}

export class StampEngine implements Engine {
  readonly name = 'stamp' as const;
  #clock: ClockSyncCache;
  #ownsClock: boolean;
  #pool = new Map<string, Promise<Session>>();
  #closed = false;

  constructor(opts: { clock?: ClockSyncCache } = {}) {
    this.#clock = opts.clock ?? new ClockSyncCache();
    this.#ownsClock = !opts.clock;
  }

  async runTrain(task: TrainTask, signal?: AbortSignal): Promise<TrainResult[]> {
    if (this.#closed) throw new Error('StampEngine is closed');
    signal?.throwIfAborted();
    await this.#clock.ready();
    const address = isIP(task.host) ? task.host : (await lookup(task.host)).address;
    const flows = Math.max(1, Math.floor(task.flows));
    const results = await Promise.all(
      Array.from({ length: flows }, (_, flow) => this.#runFlow(task, flow, address, signal)),
    );
    signal?.throwIfAborted();
    return results;
  }

  async #runFlow(task: TrainTask, flow: number, address: string, signal?: AbortSignal): Promise<TrainResult> {
    const session = await this.#session(task, flow, address);
    const sync = this.#clock.current();
    const ourEE = encodeErrorEstimate({ synchronized: sync.synchronized, errorSeconds: sync.errorSeconds });
    const count = Math.max(0, Math.floor(task.count));
    const train = session.native
      ? await nativeTrain(session, session.native, count, task, ourEE, signal)
      : await this.#jsTrain(session, count, task, ourEE, signal);
    return this.#summarise(session, flow, train, decodeErrorEstimate(ourEE));
  }

  async #jsTrain(session: Session, count: number, task: TrainTask, ourEE: number, signal?: AbortSignal): Promise<Train> {
    const socket = session.socket!;
    const train: Train = { index: new Map(), t1: [], replies: [], timestamping: 'user' };
    const intervalNs = BigInt(Math.round(task.intervalMs * 1e6));
    const startNs = nowNs();
    try {
      for (let i = 0; i < count && !signal?.aborted; i++) {
        await waitUntil(startNs + BigInt(i) * intervalNs, signal);
        if (signal?.aborted) break;
        const seq = session.nextSeq;
        session.nextSeq = (seq + 1) >>> 0;
        train.index.set(seq, i);
        session.pending.set(seq, train);
        const t1 = nowNs();
        train.t1.push(t1);
        const pkt = encodeSenderPacket({ seq, timestamp: unixNsToNtp(t1), errorEstimate: ourEE });
        // A send error (unreachable, no route) just makes this packet lost.
        socket.send(pkt, task.port, session.peer, () => undefined);
      }
      await sleep(task.timeoutMs, signal);
    } finally {
      for (const seq of train.index.keys()) session.pending.delete(seq);
    }
    return train;
  }

  #summarise(
    session: Session,
    flow: number,
    train: Train,
    ours: { synchronized: boolean; errorSeconds: number },
  ): TrainResult {
    let reflectorBound = 0;
    let reflectorSynced = true;
    let minOneWayNs = Infinity;
    const samples = train.replies.map(({ i, t4, rawNs: raw, pkt }) => {
      const ee = decodeErrorEstimate(pkt.errorEstimate);
      reflectorBound = Math.max(reflectorBound, ee.errorSeconds);
      reflectorSynced &&= ee.synchronized;
      const t1 = train.t1[i] as bigint;
      const t2 = decodeTimestamp(pkt.receiveTimestamp, ee.ptp);
      const t3 = decodeTimestamp(pkt.timestamp, ee.ptp);
      const hold = t3 - t2; // reflector clock at both ends
      // A negative or oversized hold time means a broken reflector clock;
      // fall back to the raw round trip rather than report nonsense.
      const rttNs = hold >= 0n && hold <= raw ? raw - hold : raw;
      const fwdNs = Number(t2 - t1);
      const revNs = Number(t4 - t3);
      minOneWayNs = Math.min(minOneWayNs, fwdNs, revNs);
      return { seq: i, rttNs: Number(rttNs), fwdNs, revNs };
    });
    const boundSeconds = ours.errorSeconds + reflectorBound;
    const synced =
      samples.length > 0 &&
      ours.synchronized &&
      reflectorSynced &&
      minOneWayNs > 0 &&
      boundSeconds * 1e9 <= ONE_WAY_MAX_ERROR_RATIO * minOneWayNs;
    const arrivals: TrainArrival[] = synced ? samples : samples.map(({ seq, rttNs }) => ({ seq, rttNs }));
    const stats = summariseTrain({ sent: train.t1.length, arrivals });
    const first = train.t1.find((t) => t > 0n) ?? nowNs();
    return {
      engine: 'stamp',
      startedAtUs: Number(first / 1000n),
      flow,
      srcPort: session.srcPort,
      dscp: session.dscp,
      ...stats,
      synced,
      errorEstimateUs: boundSeconds * 1e6,
      senderTimestamping: train.timestamping,
      // A plan peer's is filled in by the server (it knows what that probe reports); here we cannot know.
      reflectorTimestamping: 'unknown',
    };
  }

  /** The pooled socket for this flow, created (and bound) on first use. */
  #session(task: TrainTask, flow: number, address: string): Promise<Session> {
    const key = `${task.sourceAddress ?? '*'}|${task.host}|${task.port}|${flow}|${task.dscp}`;
    let s = this.#pool.get(key);
    if (!s) {
      s = openSession(isIP(address) === 6 ? 'udp6' : 'udp4', address, task.port, task.dscp, task.sourceAddress);
      this.#pool.set(key, s);
      s.then(
        (session) => session.socket?.once('close', () => this.#pool.delete(key)),
        () => this.#pool.delete(key),
      );
    }
    return s;
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#ownsClock) this.#clock.close();
    const sessions = await Promise.allSettled([...this.#pool.values()]);
    this.#pool.clear();
    await Promise.all(sessions.map((r) => (r.status === 'fulfilled' ? closeSession(r.value) : undefined)));
  }
}

async function openSession(type: 'udp4' | 'udp6', peer: string, peerPort: number, dscp: number, sourceAddress?: string): Promise<Session> {
  const datapath = stampDatapath();
  if (datapath) {
    const host = sourceAddress ?? (type === 'udp6' ? '::' : '0.0.0.0');
    const info = datapath.senderOpen({ host, peer, peerPort, tos: (dscp & 0x3f) << 2 });
    return {
      socket: null, native: { datapath, id: info.id }, srcPort: info.port, dscp: info.tos >> 2, nextSeq: 0, pending: new Map(), peer,
    };
  }
  const socket = createSocket({ type });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind({ port: 0, ...(sourceAddress ? { address: sourceAddress } : {}) }, () => {
      socket.off('error', reject);
      resolve();
    });
  }).catch((err: unknown) => {
    socket.close();
    throw err;
  });
  // OWAMP/TWAMP convention: send with TTL 255 so a reflector that can read
  // the received TTL can derive the hop count.
  socket.setTTL(255);
  // Pooled sockets must not keep an otherwise finished process alive; a train
  // in progress holds the loop open through its timers.
  socket.unref();
  socket.on('error', () => undefined);
  const marked = applyDscp(socket, type === 'udp6' ? 6 : 4, dscp);
  const session: Session = { socket, native: null, srcPort: socket.address().port, dscp: marked, nextSeq: 0, pending: new Map(), peer };
  socket.on('message', (msg, rinfo) => {
    const t4 = nowNs();
    if (rinfo.port !== peerPort || msg.length < MIN_REFLECTOR_SIZE) return;
    const pkt = decodeReflectorPacket(msg);
    const train = session.pending.get(pkt.senderSeq);
    const i = train?.index.get(pkt.senderSeq);
    if (train && i !== undefined) train.replies.push({ i, t4, rawNs: t4 - (train.t1[i] as bigint), pkt });
  });
  return session;
}

/**
 * One train on the native datapath: submitted whole, paced and stamped on the
 * native thread, delivered once. An abort settles at once; the native train
 * finishes on its own (its sequence numbers stay used).
 */
function nativeTrain(
  session: Session, native: { datapath: StampDatapath; id: number }, count: number, task: TrainTask, ourEE: number, signal?: AbortSignal,
): Promise<Train> {
  const firstSeq = session.nextSeq;
  session.nextSeq = (firstSeq + count) >>> 0;
  return new Promise<Train>((resolve) => {
    const onAbort = () => resolve({ index: new Map(), t1: [], replies: [], timestamping: 'kernel' });
    signal?.addEventListener('abort', onAbort, { once: true });
    native.datapath.senderTrain(native.id, {
      firstSeq, count, intervalNs: Math.round(task.intervalMs * 1e6), timeoutNs: Math.round(task.timeoutMs * 1e6), errorEstimate: ourEE,
    }, (result) => {
      signal?.removeEventListener('abort', onAbort);
      resolve(fromNative(result, firstSeq));
    });
  });
}

function fromNative(result: NativeTrainResult, firstSeq: number): Train {
  const train: Train = { index: new Map(), t1: [], replies: [], timestamping: 'kernel' };
  for (let i = 0; i < result.t1.length; i++) {
    train.t1.push(result.t1[i]!);
    train.index.set((firstSeq + i) >>> 0, i);
  }
  const a = result.arrivals;
  for (let k = 0; k < a.index.length; k++) {
    const flags = a.flags[k]!;
    // T4 without a kernel stamp, or a clock step (monotonic interval used): not kernel precision.
    if ((flags & 2) === 0 || (flags & 4) !== 0) train.timestamping = 'user';
    const pkt = decodeReflectorPacket(a.bytes.subarray(k * 44, k * 44 + 44));
    train.replies.push({ i: a.index[k]!, t4: a.t4[k]!, rawNs: a.rawNs[k]!, pkt });
  }
  return train;
}

function closeSession(session: Session): Promise<void> {
  if (session.native) {
    session.native.datapath.close(session.native.id);
    return Promise.resolve();
  }
  return closeSocket(session.socket!);
}

function closeSocket(socket: Socket): Promise<void> {
  return new Promise((resolve) => {
    try {
      socket.close(() => resolve());
    } catch {
      resolve(); // already closed
    }
  });
}

/**
 * Pace packets on an absolute schedule (no drift accumulates). Timers only
 * have millisecond granularity, so the last sub-millisecond stretch yields to
 * the event loop with setImmediate instead; a packet already due goes at once.
 */
async function waitUntil(targetNs: bigint, signal?: AbortSignal): Promise<void> {
  for (;;) {
    const ms = Number(targetNs - nowNs()) / 1e6;
    if (ms <= 0 || signal?.aborted) return;
    if (ms >= 1) await sleep(ms - 0.5, signal);
    else await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

/** Sleep that ends early (without throwing) when the signal aborts. */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, Math.max(0, ms));
    signal?.addEventListener('abort', done, { once: true });
  });
}
