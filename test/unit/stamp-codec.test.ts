import { describe, expect, it } from 'vitest';
import {
  decodeErrorEstimate,
  decodeReflectorPacket,
  decodeSenderPacket,
  decodeTimestamp,
  encodeErrorEstimate,
  encodeReflectorPacket,
  encodeSenderPacket,
  ntpToUnixNs,
  ptpToUnixNs,
  unixNsToNtp,
  unixNsToPtp,
} from '../../probes/engines/stamp/codec.js';

const hex = (s: string) => s.replace(/[\s|]/g, '');

describe('sender packet (RFC 8762 §4.2.1)', () => {
  const pkt = {
    seq: 0x01020304,
    timestamp: { seconds: 0xe8f1a2b3, fraction: 0x80000000 },
    errorEstimate: 0x810f,
  };
  // seq | T1 seconds | T1 fraction | EE | 30 octets MBZ
  const expected = hex(`01020304 | e8f1a2b3 | 80000000 | 810f | ${'00'.repeat(30)}`);

  it('encodes 44 octets byte for byte', () => {
    const buf = encodeSenderPacket(pkt);
    expect(buf.length).toBe(44);
    expect(buf.toString('hex')).toBe(expected);
  });

  it('decodes what it encodes, and a 14-octet OWAMP-format packet', () => {
    expect(decodeSenderPacket(Buffer.from(expected, 'hex'))).toEqual(pkt);
    expect(decodeSenderPacket(Buffer.from(expected.slice(0, 28), 'hex'))).toEqual(pkt);
  });

  it('pads larger sizes with zeros', () => {
    const buf = encodeSenderPacket(pkt, 100);
    expect(buf.length).toBe(100);
    expect(buf.subarray(14).every((b) => b === 0)).toBe(true);
  });

  it('rejects short packets with a clear message', () => {
    expect(() => decodeSenderPacket(Buffer.alloc(13))).toThrow(/sender packet too short: 13 octets, need at least 14/);
  });
});

describe('reflector packet (RFC 8762 §4.3.1)', () => {
  const pkt = {
    seq: 7,
    timestamp: { seconds: 0xe8f1a2b4, fraction: 0x00000010 },
    errorEstimate: 0x8f84,
    receiveTimestamp: { seconds: 0xe8f1a2b4, fraction: 0x00000001 },
    senderSeq: 7,
    senderTimestamp: { seconds: 0xe8f1a2b3, fraction: 0x80000000 },
    senderErrorEstimate: 0x810f,
    senderTtl: 255,
  };
  // [offset, octets in hex, field] — the REFERENCE §1 table, row by row.
  const layout: Array<[number, string, string]> = [
    [0, '00000007', 'seq'],
    [4, 'e8f1a2b400000010', 'T3'],
    [12, '8f84', 'Error Estimate'],
    [14, '0000', 'MBZ'],
    [16, 'e8f1a2b400000001', 'T2'],
    [24, '00000007', 'Session-Sender seq'],
    [28, 'e8f1a2b380000000', 'Session-Sender T1'],
    [36, '810f', 'Session-Sender Error Estimate'],
    [38, '0000', 'MBZ'],
    [40, 'ff', 'Session-Sender TTL'],
    [41, '000000', 'MBZ'],
  ];
  const expected = layout.map(([, h]) => h).join('');

  it('encodes 44 octets byte for byte (TTL 255 at octet 40, MBZ zero)', () => {
    const buf = encodeReflectorPacket(pkt);
    expect(expected.length).toBe(88);
    for (const [off, h, field] of layout) {
      expect(buf.subarray(off, off + h.length / 2).toString('hex'), field).toBe(h);
    }
    expect(buf.toString('hex')).toBe(expected);
    expect(buf[40]).toBe(255);
    for (const off of [14, 15, 38, 39, 41, 42, 43]) expect(buf[off]).toBe(0);
  });

  it('decodes 44- and 41-octet packets, T1 from offset 28', () => {
    expect(decodeReflectorPacket(Buffer.from(expected, 'hex'))).toEqual(pkt);
    const short = decodeReflectorPacket(Buffer.from(expected.slice(0, 82), 'hex'));
    expect(short.senderTimestamp).toEqual(pkt.senderTimestamp);
    expect(short.senderTtl).toBe(255);
  });

  it('rejects short packets with a clear message', () => {
    expect(() => decodeReflectorPacket(Buffer.alloc(40))).toThrow(/reflector packet too short: 40 octets, need at least 41/);
  });
});

describe('NTP and PTP timestamps', () => {
  it('maps the Unix epoch and half seconds exactly', () => {
    expect(unixNsToNtp(0n)).toEqual({ seconds: 2_208_988_800, fraction: 0 });
    expect(unixNsToNtp(500_000_000n)).toEqual({ seconds: 2_208_988_800, fraction: 0x80000000 });
    expect(ntpToUnixNs({ seconds: 2_208_988_800, fraction: 0x40000000 })).toBe(250_000_000n);
  });

  it.each([
    0n,
    1n,
    1_700_000_000_123_456_789n,
    1_764_400_000_999_999_999n,
    1_764_400_000_000_000_001n,
    2_085_978_495_999_999_999n, // last second of NTP era 0 (2036-02-07)
    2_085_978_496_000_000_000n, // first instant of era 1
    2_100_000_000_333_333_333n,
  ])('round-trips %s ns within 1 ns', (ns) => {
    const back = ntpToUnixNs(unixNsToNtp(ns));
    expect(back - ns <= 1n && ns - back <= 1n).toBe(true);
  });

  it('wraps seconds into era 1 after 2036', () => {
    expect(unixNsToNtp(2_085_978_496_000_000_000n).seconds).toBe(0);
  });

  it('PTP truncated format is Unix seconds + nanoseconds', () => {
    const ns = 1_764_400_000_123_456_789n;
    expect(unixNsToPtp(ns)).toEqual({ seconds: 1_764_400_000, fraction: 123_456_789 });
    expect(ptpToUnixNs(unixNsToPtp(ns))).toBe(ns);
  });

  it('decodes per the Z bit', () => {
    const ts = { seconds: 1_764_400_000, fraction: 5 };
    expect(decodeTimestamp(ts, 1)).toBe(1_764_400_000_000_000_005n);
    expect(decodeTimestamp(unixNsToNtp(42n), false)).toBe(42n);
  });
});

describe('Error Estimate', () => {
  it('1 ms synchronised → Scale 15, Multiplier 132', () => {
    const raw = encodeErrorEstimate({ synchronized: true, errorSeconds: 1e-3 });
    expect(raw).toBe(0x8f84);
    const d = decodeErrorEstimate(raw);
    expect(d).toMatchObject({ synchronized: true, ptp: false, scale: 15, multiplier: 132 });
    expect(d.errorSeconds).toBe(132 * 2 ** -17);
    expect(d.errorSeconds).toBeGreaterThanOrEqual(1e-3);
  });

  it('1 s unsynchronised → S=0, Scale 25, Multiplier 128', () => {
    const raw = encodeErrorEstimate({ synchronized: false, errorSeconds: 1 });
    expect(raw).toBe(0x1980);
    expect(decodeErrorEstimate(raw)).toEqual({ synchronized: false, ptp: false, scale: 25, multiplier: 128, errorSeconds: 1 });
  });

  it('Z bit for PTP timestamps', () => {
    expect(encodeErrorEstimate({ synchronized: true, errorSeconds: 1e-3, ptp: true })).toBe(0xcf84);
    expect(decodeErrorEstimate(0xcf84).ptp).toBe(true);
  });

  it('tiny and zero errors keep Multiplier 1, never 0', () => {
    expect(encodeErrorEstimate({ synchronized: true, errorSeconds: 1e-12 })).toBe(0x8001);
    expect(encodeErrorEstimate({ synchronized: false, errorSeconds: 0 })).toBe(0x0001);
    expect(encodeErrorEstimate({ synchronized: false, errorSeconds: -3 })).toBe(0x0001);
  });

  it('picks the smallest scale at the 255 boundary', () => {
    expect(encodeErrorEstimate({ synchronized: false, errorSeconds: 255 * 2 ** -32 })).toBe(0x00ff);
    expect(encodeErrorEstimate({ synchronized: false, errorSeconds: 256 * 2 ** -32 })).toBe(0x0180);
  });

  it('clamps huge, infinite and NaN errors to the largest bound', () => {
    for (const errorSeconds of [1e12, Infinity, NaN]) {
      expect(encodeErrorEstimate({ synchronized: false, errorSeconds })).toBe(0x3fff);
    }
    expect(decodeErrorEstimate(0x3fff).errorSeconds).toBe(255 * 2 ** 31);
  });

  it('the encoded bound never understates and is within 1/128 above', () => {
    for (const e of [3.7e-9, 2e-6, 1.234e-4, 0.05, 0.999, 16, 3600]) {
      const d = decodeErrorEstimate(encodeErrorEstimate({ synchronized: true, errorSeconds: e }));
      expect(d.multiplier).toBeGreaterThan(0);
      expect(d.errorSeconds).toBeGreaterThanOrEqual(e);
      expect(d.errorSeconds).toBeLessThanOrEqual(e * (1 + 1 / 128));
    }
  });
});
