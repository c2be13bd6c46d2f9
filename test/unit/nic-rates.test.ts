/**
 * NIC counters → rates, on a fake sysfs tree in a temp dir (normal, 32-bit
 * wrap, interface reset, unknown speed) and on the real `lo`.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, connect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  NIC_COUNTERS,
  NIC_COUNTER_FILES,
  NicSampler,
  computeNicRates,
  counterStep,
  formatNicSamples,
  listInterfaces,
  measureNic,
  nicSamplesToJson,
  parseSpeed,
  readNicSnapshot,
  type NicCounterName,
} from '../../probes/engines/nic/index.js';

const TWO_32 = 2n ** 32n;
type Counters = Partial<Record<NicCounterName, bigint | number>>;

let root: string;

async function writeIface(name: string, opts: { speed?: string | null; operstate?: string; counters?: Counters }): Promise<void> {
  const dir = join(root, name);
  await mkdir(join(dir, 'statistics'), { recursive: true });
  if (opts.speed !== undefined && opts.speed !== null) await writeFile(join(dir, 'speed'), `${opts.speed}\n`);
  if (opts.operstate) await writeFile(join(dir, 'operstate'), `${opts.operstate}\n`);
  await setCounters(name, opts.counters ?? {});
}

async function setCounters(name: string, counters: Counters): Promise<void> {
  for (const c of NIC_COUNTERS) {
    const v = counters[c];
    if (v !== undefined) await writeFile(join(root, name, 'statistics', NIC_COUNTER_FILES[c]), `${v}\n`);
  }
}

const allCounters = (v: bigint | number): Counters => Object.fromEntries(NIC_COUNTERS.map((c) => [c, v]));

/** A clock the test moves by hand, so rates are exact. */
function manualClock() {
  let mono = 1000;
  const now = () => ({ monoMs: mono, atMs: 1_700_000_000_000 + mono });
  return { now, advance: (ms: number) => void (mono += ms) };
}

// Each test gets its own fake sysfs tree and writes the interfaces it reads: any test runs alone.
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'citymesh-sysfs-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

/** A 1 Gb/s interface that is up, with every counter at `value`. */
const writeUp1g = (name: string, value: bigint | number = 0) => writeIface(name, { speed: '1000', operstate: 'up', counters: allCounters(value) });

describe('reading a sysfs tree', () => {
  it('speed: Mb/s, or null with the reason (−1, absent); never 0', async () => {
    expect(parseSpeed('100000\n')).toEqual({ speedMbps: 100000, reason: null });
    expect(parseSpeed('-1')).toEqual({ speedMbps: null, reason: '-1' });
    expect(parseSpeed('0')).toEqual({ speedMbps: null, reason: '0' });
    expect(parseSpeed('fast').speedMbps).toBeNull();

    await writeIface('fake100g', { speed: '100000', operstate: 'up', counters: allCounters(7) });
    await writeIface('fakeunk', { speed: '-1', operstate: 'down', counters: allCounters(0) });
    await writeIface('fakenospeed', { speed: null, operstate: 'unknown', counters: allCounters(0) });
    const opts = { sysfsRoot: root };
    expect(await readNicSnapshot('fake100g', opts)).toMatchObject({ speedMbps: 100000, speedUnknownReason: null, operstate: 'up' });
    expect(await readNicSnapshot('fakeunk', opts)).toMatchObject({ speedMbps: null, speedUnknownReason: '-1', operstate: 'down' });
    expect(await readNicSnapshot('fakenospeed', opts)).toMatchObject({ speedMbps: null, speedUnknownReason: 'ENOENT' });
    const snap = await readNicSnapshot('fake100g', opts);
    expect(snap.counters).toEqual(Object.fromEntries(NIC_COUNTERS.map((c) => [c, 7n])));
  });

  it('listInterfaces lists directories with statistics, sorted, ignoring plain files', async () => {
    for (const name of ['fakeunk', 'fake100g', 'fakenospeed']) await writeUp1g(name);
    await writeFile(join(root, 'bonding_masters'), '\n');
    await mkdir(join(root, 'notaniface'), { recursive: true });
    expect(await listInterfaces(root)).toEqual(['fake100g', 'fakenospeed', 'fakeunk']);
  });

  it('a missing interface or a path-like name is an error', async () => {
    await expect(readNicSnapshot('nosuchif', { sysfsRoot: root })).rejects.toThrow(/interface nosuchif not found/);
    await expect(readNicSnapshot('../etc', { sysfsRoot: root })).rejects.toThrow(/invalid interface name/);
  });
});

describe('rates from two snapshots', () => {
  it('normal interval: exact rates and utilisation per direction', async () => {
    const clock = manualClock();
    const opts = { sysfsRoot: root, now: clock.now };
    await writeIface('eth1g', {
      speed: '1000',
      operstate: 'up',
      counters: { rxBytes: 1_000_000, txBytes: 2_000_000, rxPackets: 1000, txPackets: 2000, rxErrors: 1, txErrors: 0, rxDropped: 3, txDropped: 0 },
    });
    const a = await readNicSnapshot('eth1g', opts);
    clock.advance(2000);
    await setCounters('eth1g', { rxBytes: 26_000_000, txBytes: 2_500_000, rxPackets: 21_000, txPackets: 2400, rxErrors: 5, rxDropped: 7 });
    const b = await readNicSnapshot('eth1g', opts);
    const r = computeNicRates(a, b);
    expect(r).toMatchObject({
      interface: 'eth1g',
      intervalSeconds: 2,
      speedMbps: 1000,
      reset: false,
      wrapped: [],
      rxBytesPerSec: 12_500_000,
      txBytesPerSec: 250_000,
      rxBitsPerSec: 100_000_000,
      txBitsPerSec: 2_000_000,
      rxPacketsPerSec: 10_000,
      txPacketsPerSec: 200,
      rxErrorsPerSec: 2,
      txErrorsPerSec: 0,
      rxDropsPerSec: 2,
      txDropsPerSec: 0,
      rxUtilisation: 0.1,
      txUtilisation: 0.002,
      utilisation: 0.1,
    });
    expect(r.toMs - r.fromMs).toBe(2000);
  });

  it('32-bit wrap: a decrease from below 2^32 is counted across the wrap', async () => {
    const clock = manualClock();
    const opts = { sysfsRoot: root, now: clock.now };
    await writeIface('wrap32', { speed: '10000', operstate: 'up', counters: { ...allCounters(100), rxBytes: TWO_32 - 1000n, txBytes: 4_000_000_000 } });
    const a = await readNicSnapshot('wrap32', opts);
    clock.advance(1000);
    await setCounters('wrap32', { rxBytes: 500, txBytes: 4_000_100_000 });
    const r = computeNicRates(a, await readNicSnapshot('wrap32', opts));
    expect(r.reset).toBe(false);
    expect(r.wrapped).toEqual(['rxBytes']);
    expect(r.deltas.rxBytes).toBe(1500);
    expect(r.rxBytesPerSec).toBe(1500);
    expect(r.txBytesPerSec).toBe(100_000);
    expect(r.rxUtilisation).toBeCloseTo((1500 * 8) / 1e10, 15);
  });

  it('interface reset: a decrease from at or above 2^32 nulls every rate of that interval, then rates resume', async () => {
    const clock = manualClock();
    const sampler = new NicSampler({ sysfsRoot: root, now: clock.now });
    await writeIface('reset64', { speed: '100000', operstate: 'up', counters: { ...allCounters(10), rxBytes: TWO_32 * 3n, txBytes: TWO_32 * 5n } });
    const [first] = await sampler.sample(['reset64']);
    expect(first?.rates).toBeNull();
    expect(first?.snapshot?.counters.rxBytes).toBe(TWO_32 * 3n);

    clock.advance(1000);
    await setCounters('reset64', allCounters(0)); // the driver re-created the device
    await setCounters('reset64', { rxBytes: 4000, txBytes: 2000 });
    const [second] = await sampler.sample(['reset64']);
    expect(second?.rates).toMatchObject({
      reset: true,
      wrapped: [],
      rxBytesPerSec: null,
      txBytesPerSec: null,
      rxBitsPerSec: null,
      rxPacketsPerSec: null,
      rxErrorsPerSec: null,
      rxDropsPerSec: null,
      rxUtilisation: null,
      utilisation: null,
    });
    expect(Object.values(second?.rates?.deltas ?? {})).toEqual(NIC_COUNTERS.map(() => null));

    clock.advance(1000);
    await setCounters('reset64', { rxBytes: 14_000, txBytes: 2000, rxPackets: 10 });
    const [third] = await sampler.sample(['reset64']);
    expect(third?.rates).toMatchObject({ reset: false, rxBytesPerSec: 10_000, txBytesPerSec: 0, rxPacketsPerSec: 10 });
  });

  it('a "wrap" the link could not have carried is a reset (small counters after a driver reload)', async () => {
    const clock = manualClock();
    const opts = { sysfsRoot: root, now: clock.now };
    // 1 Gb/s link, 1 s: a wrap of rx_bytes from 3e9 would mean ~1.3 GB in one second.
    await writeIface('reload', { speed: '1000', operstate: 'up', counters: { ...allCounters(5), rxBytes: 3_000_000_000, txBytes: 1_000_000 } });
    const a = await readNicSnapshot('reload', opts);
    clock.advance(1000);
    await setCounters('reload', { ...allCounters(0), rxBytes: 100, txBytes: 50 });
    const r = computeNicRates(a, await readNicSnapshot('reload', opts));
    expect(r.reset).toBe(true);
    expect(r.rxBitsPerSec).toBeNull();
    expect(r.rxErrorsPerSec).toBeNull();

    // The same step with the speed unknown follows the plain rule: below 2^32 → wrap.
    expect(counterStep(3_000_000_000n, 100n, null)).toEqual({ kind: 'wrap32', delta: TWO_32 - 3_000_000_000n + 100n });
    expect(counterStep(5n, 0n, 2_000_000n)).toEqual({ kind: 'reset' });
    expect(counterStep(TWO_32 + 1n, 0n, null)).toEqual({ kind: 'reset' });
    expect(counterStep(10n, TWO_32 + 5n, null)).toEqual({ kind: 'ok', delta: TWO_32 - 5n });
    expect(counterStep(null, 5n)).toEqual({ kind: 'unknown' });
  });

  it('64-bit counters beyond 2^53 keep exact deltas', async () => {
    const clock = manualClock();
    const opts = { sysfsRoot: root, now: clock.now };
    const big = 2n ** 60n + 12345n;
    await writeIface('big', { speed: '100000', operstate: 'up', counters: { ...allCounters(0), rxBytes: big } });
    const a = await readNicSnapshot('big', opts);
    clock.advance(1000);
    await setCounters('big', { rxBytes: big + 1234n });
    expect(computeNicRates(a, await readNicSnapshot('big', opts)).rxBytesPerSec).toBe(1234);
  });

  it('unknown speed: rates yes, utilisation null; an unreadable counter nulls only its own rate', async () => {
    const clock = manualClock();
    const opts = { sysfsRoot: root, now: clock.now };
    await writeIface('veth-ish', { speed: '-1', operstate: 'up', counters: { rxBytes: 0, txBytes: 0, rxPackets: 0, txPackets: 0 } });
    const a = await readNicSnapshot('veth-ish', opts);
    expect(a.counters.rxErrors).toBeNull();
    clock.advance(500);
    await setCounters('veth-ish', { rxBytes: 1000, txBytes: 500, rxPackets: 10, txPackets: 5 });
    const r = computeNicRates(a, await readNicSnapshot('veth-ish', opts));
    expect(r).toMatchObject({ speedMbps: null, rxBitsPerSec: 16_000, txBitsPerSec: 8000, rxUtilisation: null, txUtilisation: null, utilisation: null });
    expect(r.rxErrorsPerSec).toBeNull();
    expect(r.reset).toBe(false);
  });

  it('snapshots out of order or of different interfaces are refused', async () => {
    await writeUp1g('eth1g');
    await writeUp1g('big');
    const a = await readNicSnapshot('eth1g', { sysfsRoot: root, now: () => ({ monoMs: 10, atMs: 10 }) });
    const b = await readNicSnapshot('eth1g', { sysfsRoot: root, now: () => ({ monoMs: 5, atMs: 5 }) });
    expect(() => computeNicRates(a, b)).toThrow(/not in time order/);
    const c = await readNicSnapshot('big', { sysfsRoot: root, now: () => ({ monoMs: 20, atMs: 20 }) });
    expect(() => computeNicRates(a, c)).toThrow(/different interfaces/);
  });

  it('the sampler reports an interface that vanished as an error, and others normally', async () => {
    await writeUp1g('eth1g');
    const sampler = new NicSampler({ sysfsRoot: root });
    const out = await sampler.sample(['eth1g', 'gone0']);
    expect(out.map((s) => s.interface)).toEqual(['eth1g', 'gone0']);
    expect(out[0]?.error).toBeNull();
    expect(out[1]).toMatchObject({ snapshot: null, rates: null });
    expect(out[1]?.error).toMatch(/interface gone0 not found/);
  });

  it('samples convert to JSON with counters as decimal strings', async () => {
    const rxBytes = 2n ** 60n + 12345n; // beyond 2^53: a JSON number would round it
    await writeIface('big', { speed: '100000', operstate: 'up', counters: { ...allCounters(0), rxBytes } });
    const sampler = new NicSampler({ sysfsRoot: root });
    const json = nicSamplesToJson(await sampler.sample(['big']));
    const text = JSON.stringify(json);
    expect(JSON.parse(text)[0].snapshot.counters.rxBytes).toBe(rxBytes.toString());
    expect(json[0]?.snapshot?.counters.txDropped).toBe('0');
  });

  it('measureNic takes two snapshots and formats a table', async () => {
    await writeUp1g('eth1g', 100);
    await writeIface('fakeunk', { speed: '-1', operstate: 'down', counters: allCounters(0) });
    const samples = await measureNic({ sysfsRoot: root, interfaces: ['eth1g', 'fakeunk'], intervalMs: 20 });
    expect(samples.map((s) => s.rates?.rxBytesPerSec)).toEqual([0, 0]);
    const table = formatNicSamples(samples);
    expect(table.split('\n')[0]).toMatch(/^interface\s+state\s+speed\s+rx bit\/s/);
    expect(table).toMatch(/eth1g\s+up\s+1000 Mb\/s\s+0\s+0\s+0\.00 %/);
    expect(table).toMatch(/fakeunk\s+down\s+unknown \(-1\)/);
  });
});

describe('the real lo', () => {
  it('speed unknown (EINVAL), state unknown, virtual, and counters that move with loopback traffic', async () => {
    const sampler = new NicSampler();
    expect(await listInterfaces()).toContain('lo');
    const [before] = await sampler.sample(['lo']);
    expect(before?.snapshot).toMatchObject({ interface: 'lo', speedMbps: null, speedUnknownReason: 'EINVAL', operstate: 'unknown', virtual: true });
    for (const c of NIC_COUNTERS) expect(typeof before?.snapshot?.counters[c]).toBe('bigint');

    // Push 4 MiB through loopback with real sockets.
    const payload = Buffer.alloc(4 * 1024 * 1024, 1);
    const server = createServer((s) => s.resume());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    await new Promise<void>((resolve, reject) => {
      const c = connect(port, '127.0.0.1', () => c.end(payload));
      c.on('error', reject);
      c.on('close', () => resolve());
    });
    await new Promise<void>((resolve) => server.close(() => resolve()));

    const [after] = await sampler.sample(['lo']);
    const r = after?.rates;
    expect(r).not.toBeNull();
    expect(r?.reset).toBe(false);
    expect(r?.deltas.rxBytes).toBeGreaterThanOrEqual(payload.length);
    expect(r?.deltas.txBytes).toBeGreaterThanOrEqual(payload.length);
    expect(r?.rxBitsPerSec).toBeGreaterThan(0);
    expect(r?.rxUtilisation).toBeNull();
    expect(formatNicSamples([after!])).toMatch(/lo\s+unknown\s+unknown \(EINVAL\)/);
  });
});
