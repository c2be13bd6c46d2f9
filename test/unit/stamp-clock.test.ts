import { describe, expect, it } from 'vitest';
import {
  ClockSyncCache,
  nowNs,
  parseAdjtimex,
  parseChronyTracking,
  readClockSync,
  UNKNOWN_SYNC,
} from '../../probes/engines/stamp/clock.js';

describe('parseChronyTracking', () => {
  it('synchronised chrony: bound = |offset| + dispersion + delay/2', () => {
    const csv =
      'C0A80001,ntp1.example.net,3,1764400000.123456789,-0.000012000,0.000001000,0.000020000,-7.123,0.001,0.050,0.000400000,0.000100000,64.2,Normal\n';
    const s = parseChronyTracking(csv);
    expect(s).not.toBeNull();
    expect(s?.synchronized).toBe(true);
    expect(s?.source).toBe('chrony');
    expect(s?.errorSeconds).toBeCloseTo(0.000012 + 0.0001 + 0.0002, 12);
    expect(s?.detail).toContain('ntp1.example.net');
  });

  it('unsynchronised chrony claims at least 1 s', () => {
    const csv = '00000000,,0,0.000000000,0.000000000,0.000000000,0.000000000,0.000,0.000,0.000,1.000000000,1.000000000,0.0,Not synchronised';
    const s = parseChronyTracking(csv);
    expect(s?.synchronized).toBe(false);
    expect(s?.errorSeconds).toBeGreaterThanOrEqual(1);
  });

  it('rejects non-CSV output', () => {
    expect(parseChronyTracking('506 Cannot talk to daemon')).toBeNull();
    expect(parseChronyTracking('')).toBeNull();
  });
});

describe('parseAdjtimex', () => {
  it('TIME_ERROR with STA_UNSYNC is unsynchronised', () => {
    const s = parseAdjtimex('{"ret": 5, "maxerror": 16000000, "esterror": 16000000, "status": 64}');
    expect(s).toMatchObject({ synchronized: false, errorSeconds: 16, source: 'adjtimex' });
  });

  it('TIME_OK without STA_UNSYNC is synchronised with maxerror as the bound', () => {
    const s = parseAdjtimex('{"ret": 0, "maxerror": 1500, "esterror": 20, "status": 8193}');
    expect(s?.synchronized).toBe(true);
    expect(s?.errorSeconds).toBeCloseTo(0.0015, 12);
  });

  it('STA_UNSYNC alone is enough to be unsynchronised', () => {
    expect(parseAdjtimex('{"ret": 0, "maxerror": 1500, "esterror": 20, "status": 65}')?.synchronized).toBe(false);
  });

  it('rejects garbage', () => {
    expect(parseAdjtimex('Traceback (most recent call last):')).toBeNull();
    expect(parseAdjtimex('{"ret": 0}')).toBeNull();
    expect(parseAdjtimex('null')).toBeNull();
  });
});

describe('readClockSync on this machine', () => {
  it('returns a well-formed object', async () => {
    const s = await readClockSync();
    expect(typeof s.synchronized).toBe('boolean');
    expect(Number.isFinite(s.errorSeconds)).toBe(true);
    expect(s.errorSeconds).toBeGreaterThanOrEqual(0);
    expect(['chrony', 'adjtimex', 'none']).toContain(s.source);
    expect(typeof s.detail).toBe('string');
  });
});

describe('ClockSyncCache', () => {
  it('serves UNKNOWN_SYNC until the first read, then the read value', async () => {
    const value = { synchronized: true, errorSeconds: 0.001, source: 'chrony' as const, detail: 'fake' };
    const cache = new ClockSyncCache({ read: async () => value });
    expect(cache.current()).toEqual(UNKNOWN_SYNC);
    await cache.ready();
    expect(cache.current()).toEqual(value);
    cache.close();
  });

  it('a failing reader falls back to UNKNOWN_SYNC', async () => {
    const cache = new ClockSyncCache({ read: () => Promise.reject(new Error('boom')) });
    await expect(cache.ready()).resolves.toEqual(UNKNOWN_SYNC);
    cache.close();
  });
});

describe('nowNs', () => {
  it('is monotonic over a loop and within 1 s of Date.now()', () => {
    let prev = nowNs();
    let backwards = 0;
    for (let i = 0; i < 100_000; i++) {
      const t = nowNs();
      if (t < prev) backwards++;
      prev = t;
    }
    expect(backwards).toBe(0);
    const diff = Number(nowNs() / 1_000_000n) - Date.now();
    expect(Math.abs(diff)).toBeLessThan(1000);
  });
});
