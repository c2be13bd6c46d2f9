/**
 * What a reflector answers. A reflector answers packets from the open
 * network, so every datagram passes these checks first, in this order, and
 * each refusal is counted by reason (the native datapath, probes/native/
 * stamp.c reflect_one, applies the same rules in the same order):
 *
 * - tooShort: under 44 octets. The reply is exactly as long as the request
 *   and a reflector packet needs 44, so answering less would amplify.
 * - srcPortZero: source port 0 cannot be answered (and used to crash Node).
 * - fromReflectorPort: the source port is one of ours (a reflector's own
 *   port: a packet sent from itself to itself, or from a peer reflector).
 * - notSenderPacket: octets 16..43 are MBZ in a Session-Sender packet
 *   (RFC 8762 §4.2.1, RFC 8972 uses 14..15 only) and carry T2, the sender's
 *   seq and T1 in every reflector's reply. Refusing them means no two
 *   reflectors can ever reflect each other's replies: a spoofed request
 *   src = A, dst = B earns one reply to A, which A drops here.
 * - notAllowed: the source is not a plan peer (or an allowed prefix).
 * - rateLimited: the source's token bucket is empty.
 */
import { BlockList, isIP } from 'node:net';

export const DROP_REASONS = [
  'tooShort', 'srcPortZero', 'fromReflectorPort', 'notSenderPacket', 'notAllowed', 'rateLimited', 'truncated', 'sendError',
] as const;
export type DropReason = (typeof DROP_REASONS)[number];

export const MIN_REQUEST_OCTETS = 44;

export interface ReflectorPolicy {
  /** Answer any source (still rate limited); otherwise only `allow`. */
  allowAny: boolean;
  /** Addresses or CIDR prefixes answered when allowAny is false. */
  allow: string[];
  /** Source ports never answered (our own reflector port is always among them). */
  denyPorts: number[];
  /** Replies per second per source address; 0 = unlimited. */
  ratePps: number;
  /** Bucket depth, replies. */
  burst: number;
}

/** A standalone reflector (`citymesh reflect`, tests): any source, rate limited. */
export const OPEN_POLICY: ReflectorPolicy = { allowAny: true, allow: [], denyPorts: [], ratePps: 5000, burst: 1000 };

/** "127.0.0.0/8", "2001:db8::/32", "127.0.0.3" → [address, prefix bits]; throws naming the bad entry. */
export function parsePrefix(text: string): [string, number] {
  const [address = '', bits, extra] = text.trim().split('/');
  const family = isIP(address);
  const max = family === 6 ? 128 : 32;
  const n = bits === undefined ? max : Number(bits);
  if (!family || extra !== undefined || !Number.isInteger(n) || n < 0 || n > max) {
    throw new Error(`"${text}" is not an IP address or CIDR prefix (e.g. 127.0.0.0/8, 2001:db8::/32)`);
  }
  return [address, n];
}

export function emptyDrops(): Record<DropReason, number> {
  return Object.fromEntries(DROP_REASONS.map((r) => [r, 0])) as Record<DropReason, number>;
}

/** The JavaScript datapath's copy of the rules (the native one is in C). */
export class PolicyGate {
  #allowAny: boolean;
  #allow = new BlockList();
  #deny: Set<number>;
  #ratePps: number;
  #burst: number;
  #buckets = new Map<string, { tokens: number; lastMs: number }>();

  constructor(policy: ReflectorPolicy, ownPort: number) {
    this.#allowAny = policy.allowAny;
    for (const entry of policy.allow) {
      const [address, bits] = parsePrefix(entry);
      this.#allow.addSubnet(address, bits, isIP(address) === 6 ? 'ipv6' : 'ipv4');
    }
    this.#deny = new Set([...policy.denyPorts, ownPort]);
    this.#ratePps = policy.ratePps;
    this.#burst = Math.max(1, policy.burst);
  }

  /** The reason to drop this datagram, or null to answer it. */
  check(msg: Buffer, address: string, port: number, nowMs: number): DropReason | null {
    if (msg.length < MIN_REQUEST_OCTETS) return 'tooShort';
    if (port === 0) return 'srcPortZero';
    if (this.#deny.has(port)) return 'fromReflectorPort';
    for (let i = 16; i < MIN_REQUEST_OCTETS; i++) if (msg[i] !== 0) return 'notSenderPacket';
    if (!this.#allowAny && !this.#allowed(address)) return 'notAllowed';
    if (!this.#take(address, nowMs)) return 'rateLimited';
    return null;
  }

  #allowed(address: string): boolean {
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1];
    const plain = mapped ?? address;
    return this.#allow.check(plain, isIP(plain) === 6 ? 'ipv6' : 'ipv4');
  }

  #take(address: string, nowMs: number): boolean {
    if (this.#ratePps <= 0) return true;
    let b = this.#buckets.get(address);
    if (!b) {
      // Bounded like the native table: a flood of spoofed sources cannot grow memory.
      if (this.#buckets.size >= 4096) this.#buckets.delete(this.#buckets.keys().next().value as string);
      b = { tokens: this.#burst, lastMs: nowMs };
      this.#buckets.set(address, b);
    } else {
      b.tokens = Math.min(this.#burst, b.tokens + ((nowMs - b.lastMs) * this.#ratePps) / 1000);
      b.lastMs = nowMs;
    }
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }
}
