/**
 * Stateless STAMP Session-Reflector (RFC 8762 §4): the reply's own sequence
 * number is a copy of the sender's, so no per-session state exists and any
 * STAMP or TWAMP-Light sender (≥ 14-octet test packets) can use it.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { type AddressInfo } from 'node:net';
import { ClockSyncCache, nowNs } from './clock.js';
import {
  decodeSenderPacket,
  encodeErrorEstimate,
  encodeReflectorPacket,
  MIN_SENDER_SIZE,
  STAMP_PACKET_SIZE,
  unixNsToNtp,
} from './codec.js';

/**
 * Node's dgram (libuv) does not expose the received TTL / Hop Limit, and RFC
 * 5357 §4.2 says a reflector that cannot read it MUST write 255.
 */
const UNKNOWN_TTL = 255;

export interface ReflectorOptions {
  port: number;
  /** Bind address; '0.0.0.0' by default, udp6 when it contains ':'. */
  host?: string;
  /** Sync state for our Error Estimate; a private one is created (and closed) otherwise. */
  clock?: ClockSyncCache;
}

export interface ReflectorStats {
  reflected: number;
  malformed: number;
}

export class StampReflector {
  #socket: Socket;
  #clock: ClockSyncCache;
  #ownsClock: boolean;
  #reflected = 0;
  #malformed = 0;

  private constructor(socket: Socket, clock: ClockSyncCache, ownsClock: boolean) {
    this.#socket = socket;
    this.#clock = clock;
    this.#ownsClock = ownsClock;
    socket.on('message', (msg, rinfo) => this.#onMessage(msg, rinfo));
    // A send failure (e.g. the sender vanished) must not kill the reflector.
    socket.on('error', () => undefined);
  }

  static async listen(opts: ReflectorOptions): Promise<StampReflector> {
    const host = opts.host ?? '0.0.0.0';
    const clock = opts.clock ?? new ClockSyncCache();
    // The first packets should already carry the host's real S bit and bound.
    await clock.ready();
    const socket = createSocket({ type: host.includes(':') ? 'udp6' : 'udp4' });
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once('error', reject);
        socket.bind(opts.port, host, () => {
          socket.off('error', reject);
          resolve();
        });
      });
    } catch (err) {
      socket.close();
      if (!opts.clock) clock.close();
      throw err;
    }
    return new StampReflector(socket, clock, !opts.clock);
  }

  #onMessage(msg: Buffer, rinfo: RemoteInfo): void {
    const t2 = nowNs();
    if (msg.length < MIN_SENDER_SIZE) {
      this.#malformed++;
      return;
    }
    const req = decodeSenderPacket(msg);
    const sync = this.#clock.current();
    const errorEstimate = encodeErrorEstimate({ synchronized: sync.synchronized, errorSeconds: sync.errorSeconds });
    const fields = {
      seq: req.seq,
      errorEstimate,
      receiveTimestamp: unixNsToNtp(t2),
      senderSeq: req.seq,
      senderTimestamp: req.timestamp,
      senderErrorEstimate: req.errorEstimate,
      senderTtl: UNKNOWN_TTL,
    };
    const size = Math.max(STAMP_PACKET_SIZE, msg.length);
    // T3 is read last so the hold time T3 − T2 covers all our processing.
    const reply = encodeReflectorPacket({ ...fields, timestamp: unixNsToNtp(nowNs()) }, size);
    this.#socket.send(reply, rinfo.port, rinfo.address);
    this.#reflected++;
  }

  address(): AddressInfo {
    return this.#socket.address();
  }

  stats(): ReflectorStats {
    return { reflected: this.#reflected, malformed: this.#malformed };
  }

  close(): Promise<void> {
    if (this.#ownsClock) this.#clock.close();
    return new Promise((resolve) => {
      try {
        this.#socket.close(() => resolve());
      } catch {
        resolve(); // already closed
      }
    });
  }
}
