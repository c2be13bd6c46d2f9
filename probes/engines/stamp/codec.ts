/**
 * Byte-exact STAMP (RFC 8762) unauthenticated test packets, network byte order.
 * Decoding is lenient in length so TWAMP-Light / OWAMP-format peers interoperate
 * (RFC 5357 App. I: sender packets may be as short as 14 octets, reflector
 * packets as short as 41); every MBZ octet we write is zero.
 *
 * Sender (44):    0 seq | 4 T1 | 12 EE | 14..43 MBZ
 * Reflector (44): 0 seq | 4 T3 | 12 EE | 14 MBZ(2) | 16 T2 | 24 sender seq |
 *                 28 sender T1 | 36 sender EE | 38 MBZ(2) | 40 TTL | 41 MBZ(3)
 */

/** Raw 64-bit timestamp as it travels: NTP (Z=0) or PTPv2 truncated (Z=1). */
export type NtpTimestamp = { seconds: number; fraction: number };

export const STAMP_PACKET_SIZE = 44;
export const MIN_SENDER_SIZE = 14;
export const MIN_REFLECTOR_SIZE = 41;

/** Seconds from 1900-01-01 (NTP epoch) to 1970-01-01 (Unix epoch). */
export const NTP_UNIX_OFFSET_S = 2_208_988_800n;
const NS_PER_S = 1_000_000_000n;
const TWO_32 = 4_294_967_296n;

// ---------------------------------------------------------------- timestamps

/** Unix ns → NTP 64-bit (fraction in units of 2^-32 s, rounded to nearest). */
export function unixNsToNtp(ns: bigint): NtpTimestamp {
  const secs = floorDiv(ns, NS_PER_S);
  const rem = ns - secs * NS_PER_S;
  // rem <= 999 999 999 so the rounded fraction stays below 2^32 (no carry).
  const fraction = (rem * TWO_32 + NS_PER_S / 2n) / NS_PER_S;
  // Seconds wrap modulo 2^32 (NTP era 1 begins 2036-02-07).
  const seconds = (((secs + NTP_UNIX_OFFSET_S) % TWO_32) + TWO_32) % TWO_32;
  return { seconds: Number(seconds), fraction: Number(fraction) };
}

/**
 * NTP 64-bit → Unix ns (rounded to nearest ns). Seconds values below 2^31 are
 * taken as NTP era 1 (2036..2104), the RFC 4330 §3 convention, so the decoder
 * keeps working past the 2036 rollover.
 */
export function ntpToUnixNs(ts: NtpTimestamp): bigint {
  let secs = BigInt(ts.seconds >>> 0);
  if (secs < TWO_32 / 2n) secs += TWO_32;
  const frac = BigInt(ts.fraction >>> 0);
  return (secs - NTP_UNIX_OFFSET_S) * NS_PER_S + (frac * NS_PER_S + TWO_32 / 2n) / TWO_32;
}

/** Unix ns → PTPv2 truncated (32-bit Unix seconds + 32-bit nanoseconds). */
export function unixNsToPtp(ns: bigint): NtpTimestamp {
  const secs = floorDiv(ns, NS_PER_S);
  return { seconds: Number(((secs % TWO_32) + TWO_32) % TWO_32), fraction: Number(ns - secs * NS_PER_S) };
}

/** PTPv2 truncated (Z=1): `fraction` holds nanoseconds, epoch is Unix. */
export function ptpToUnixNs(ts: NtpTimestamp): bigint {
  return BigInt(ts.seconds >>> 0) * NS_PER_S + BigInt(ts.fraction >>> 0);
}

/**
 * Decode a timestamp per the Z bit of the Error Estimate that travels with it
 * (RFC 8186 §2.3), never per our own preference: peers that mix formats
 * would otherwise produce delays off by 70 years.
 */
export function decodeTimestamp(ts: NtpTimestamp, zBit: boolean | 0 | 1): bigint {
  return zBit ? ptpToUnixNs(ts) : ntpToUnixNs(ts);
}

// ------------------------------------------------------------ error estimate

export interface ErrorEstimate {
  synchronized: boolean;
  /** Z bit: timestamps in this packet are PTPv2 truncated rather than NTP. */
  ptp: boolean;
  scale: number;
  multiplier: number;
  errorSeconds: number;
}

/**
 * Error Estimate, RFC 4656 §4.1.2: S | Z | Scale(6) | Multiplier(8), error =
 * Multiplier × 2^(Scale−32) s. Picks the smallest Scale whose Multiplier
 * ceil(err × 2^(32−Scale)) fits 1..255, i.e. the finest bound not below err.
 * Multiplier is never 0 (the RFC forbids it); values beyond 255 × 2^31 s,
 * NaN and Infinity clamp to the largest representable bound.
 */
export function encodeErrorEstimate(e: { synchronized: boolean; errorSeconds: number; ptp?: boolean }): number {
  let scale = 63;
  let multiplier = 255;
  const err = Number.isNaN(e.errorSeconds) ? Infinity : Math.max(0, e.errorSeconds);
  for (let s = 0; s <= 63; s++) {
    // Multiplying by a power of two is exact, so ceil sees err's true value.
    const m = Math.max(1, Math.ceil(err * 2 ** (32 - s)));
    if (m <= 255) {
      scale = s;
      multiplier = m;
      break;
    }
  }
  return ((e.synchronized ? 0x8000 : 0) | (e.ptp ? 0x4000 : 0) | (scale << 8) | multiplier) & 0xffff;
}

export function decodeErrorEstimate(raw: number): ErrorEstimate {
  const scale = (raw >> 8) & 0x3f;
  const multiplier = raw & 0xff;
  return {
    synchronized: (raw & 0x8000) !== 0,
    ptp: (raw & 0x4000) !== 0,
    scale,
    multiplier,
    errorSeconds: multiplier * 2 ** (scale - 32),
  };
}

// ------------------------------------------------------------------- packets

export interface SenderPacket {
  seq: number;
  timestamp: NtpTimestamp;
  /** Raw 16-bit Error Estimate. */
  errorEstimate: number;
}

export interface ReflectorPacket {
  seq: number;
  /** T3, reflector transmit time. */
  timestamp: NtpTimestamp;
  errorEstimate: number;
  /** T2, reflector receive time. */
  receiveTimestamp: NtpTimestamp;
  senderSeq: number;
  /** T1 copied back verbatim. */
  senderTimestamp: NtpTimestamp;
  senderErrorEstimate: number;
  senderTtl: number;
}

export function encodeSenderPacket(p: SenderPacket, size = STAMP_PACKET_SIZE): Buffer {
  checkSize('sender', size, MIN_SENDER_SIZE);
  const buf = Buffer.alloc(size);
  buf.writeUInt32BE(p.seq >>> 0, 0);
  writeTimestamp(buf, 4, p.timestamp);
  buf.writeUInt16BE(p.errorEstimate & 0xffff, 12);
  return buf;
}

export function decodeSenderPacket(buf: Uint8Array): SenderPacket {
  const b = asBuffer(buf);
  if (b.length < MIN_SENDER_SIZE) {
    throw new Error(`STAMP sender packet too short: ${b.length} octets, need at least ${MIN_SENDER_SIZE}`);
  }
  return { seq: b.readUInt32BE(0), timestamp: readTimestamp(b, 4), errorEstimate: b.readUInt16BE(12) };
}

export function encodeReflectorPacket(p: ReflectorPacket, size = STAMP_PACKET_SIZE): Buffer {
  checkSize('reflector', size, MIN_REFLECTOR_SIZE);
  const buf = Buffer.alloc(size);
  buf.writeUInt32BE(p.seq >>> 0, 0);
  writeTimestamp(buf, 4, p.timestamp);
  buf.writeUInt16BE(p.errorEstimate & 0xffff, 12);
  writeTimestamp(buf, 16, p.receiveTimestamp);
  buf.writeUInt32BE(p.senderSeq >>> 0, 24);
  writeTimestamp(buf, 28, p.senderTimestamp);
  buf.writeUInt16BE(p.senderErrorEstimate & 0xffff, 36);
  buf.writeUInt8(p.senderTtl & 0xff, 40);
  return buf;
}

export function decodeReflectorPacket(buf: Uint8Array): ReflectorPacket {
  const b = asBuffer(buf);
  if (b.length < MIN_REFLECTOR_SIZE) {
    throw new Error(`STAMP reflector packet too short: ${b.length} octets, need at least ${MIN_REFLECTOR_SIZE}`);
  }
  return {
    seq: b.readUInt32BE(0),
    timestamp: readTimestamp(b, 4),
    errorEstimate: b.readUInt16BE(12),
    receiveTimestamp: readTimestamp(b, 16),
    senderSeq: b.readUInt32BE(24),
    senderTimestamp: readTimestamp(b, 28),
    senderErrorEstimate: b.readUInt16BE(36),
    senderTtl: b.readUInt8(40),
  };
}

// ------------------------------------------------------------------- helpers

function writeTimestamp(buf: Buffer, offset: number, ts: NtpTimestamp): void {
  buf.writeUInt32BE(ts.seconds >>> 0, offset);
  buf.writeUInt32BE(ts.fraction >>> 0, offset + 4);
}

function readTimestamp(buf: Buffer, offset: number): NtpTimestamp {
  return { seconds: buf.readUInt32BE(offset), fraction: buf.readUInt32BE(offset + 4) };
}

function checkSize(kind: string, size: number, min: number): void {
  if (!Number.isInteger(size) || size < min || size > 65_507) {
    throw new RangeError(`STAMP ${kind} packet size ${size} out of range ${min}..65507`);
  }
}

function asBuffer(u: Uint8Array): Buffer {
  return Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

function floorDiv(a: bigint, b: bigint): bigint {
  const q = a / b;
  return a % b < 0n ? q - 1n : q;
}
