/**
 * Passive NIC telemetry from sysfs: `/sys/class/net/IF/{speed,operstate}`
 * and `statistics/{rx,tx}_{bytes,packets,errors,dropped}`, turned into rates
 * between two snapshots, and utilisation = bit rate / (speed × 10⁶) per
 * direction (full duplex).
 *
 * - `speed` is in Mb/s. Reading it fails with EINVAL when the interface is
 *   not running or has no speed (e.g. `lo`), and reads −1 when the driver
 *   does not know: both are `speedMbps: null` (unknown), never 0, and
 *   utilisation is then null.
 * - Counters are read as bigint (they are 64-bit; Number loses precision
 *   above 2^53).
 * - A counter that went down: when the previous value was < 2^32 and the
 *   new one is too, the driver has 32-bit counters that wrapped, and the
 *   delta is cur + 2^32 − prev — unless that delta is more than the link
 *   could have carried in the interval at 1.5 × its speed (when the speed is
 *   known), which only an interface reset explains. Any other decrease is an
 *   interface reset (driver reload, device re-created): every rate of that
 *   interval is null and `reset: true`; the next interval is normal again.
 *
 * The sysfs root is injectable so tests can use a fake tree in a temp dir.
 * Note: /sys/class/net shows the network namespace /sys was mounted in; to
 * read another namespace, point the root at `/proc/PID/root/sys/class/net`
 * of a process that runs inside it under `ip netns exec`.
 */
import { readFile, readdir, readlink, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

export const DEFAULT_SYSFS_NET = '/sys/class/net';

export const NIC_COUNTERS = ['rxBytes', 'txBytes', 'rxPackets', 'txPackets', 'rxErrors', 'txErrors', 'rxDropped', 'txDropped'] as const;
export type NicCounterName = (typeof NIC_COUNTERS)[number];

/** sysfs file under statistics/ for each counter. */
export const NIC_COUNTER_FILES: Readonly<Record<NicCounterName, string>> = Object.freeze({
  rxBytes: 'rx_bytes',
  txBytes: 'tx_bytes',
  rxPackets: 'rx_packets',
  txPackets: 'tx_packets',
  rxErrors: 'rx_errors',
  txErrors: 'tx_errors',
  rxDropped: 'rx_dropped',
  txDropped: 'tx_dropped',
});

const TWO_32 = 1n << 32n;
/** Slack over the link speed before a "wrap" is judged impossible. */
const WRAP_PLAUSIBILITY = 1.5;
/** Smallest Ethernet frame on the wire (64 + preamble 8 + gap 12), bytes. */
const MIN_WIRE_FRAME = 84;

export interface NicSnapshot {
  interface: string;
  /** Wall clock of the read, Unix ms. */
  atMs: number;
  /** Monotonic clock of the read, ms (performance.now); intervals use this. */
  monoMs: number;
  /** Negotiated speed in Mb/s; null when unknown (EINVAL, −1, absent). */
  speedMbps: number | null;
  /** Why speedMbps is null, e.g. "EINVAL" or "-1". */
  speedUnknownReason: string | null;
  /** up, down, unknown, lowerlayerdown, dormant, notpresent, testing; null when unreadable. */
  operstate: string | null;
  /** True for /sys/devices/virtual interfaces (lo, veth, bridges); null when not determinable. */
  virtual: boolean | null;
  /** Raw counters; null when that file could not be read. */
  counters: Record<NicCounterName, bigint | null>;
}

export interface NicRates {
  interface: string;
  fromMs: number;
  toMs: number;
  intervalSeconds: number;
  speedMbps: number | null;
  operstate: string | null;
  /** A counter went backwards in a way only an interface reset explains; all rates are null. */
  reset: boolean;
  /** Counters that wrapped at 2^32 in this interval (their deltas are corrected). */
  wrapped: NicCounterName[];
  /** Counter increase over the interval; null on reset or unreadable counter. */
  deltas: Record<NicCounterName, number | null>;
  rxBytesPerSec: number | null;
  txBytesPerSec: number | null;
  rxBitsPerSec: number | null;
  txBitsPerSec: number | null;
  rxPacketsPerSec: number | null;
  txPacketsPerSec: number | null;
  rxErrorsPerSec: number | null;
  txErrorsPerSec: number | null;
  rxDropsPerSec: number | null;
  txDropsPerSec: number | null;
  /** rxBitsPerSec / (speed × 10⁶); null when the speed is unknown. */
  rxUtilisation: number | null;
  txUtilisation: number | null;
  /** max(rx, tx) utilisation: how full the busier direction is. */
  utilisation: number | null;
}

// ------------------------------------------------------------------ reading

function errCode(err: unknown): string {
  return (err as NodeJS.ErrnoException)?.code ?? 'error';
}

async function readText(path: string): Promise<string> {
  return (await readFile(path, 'utf8')).trim();
}

/** Parse the content of a `speed` file: Mb/s, or null with the reason. */
export function parseSpeed(text: string): { speedMbps: number | null; reason: string | null } {
  const t = text.trim();
  if (!/^-?\d+$/.test(t)) return { speedMbps: null, reason: `unreadable speed ${JSON.stringify(t.slice(0, 20))}` };
  const v = Number(t);
  if (v <= 0) return { speedMbps: null, reason: t };
  return { speedMbps: v, reason: null };
}

/** Interfaces under the sysfs root (entries with a statistics directory), sorted. */
export async function listInterfaces(sysfsRoot: string = DEFAULT_SYSFS_NET): Promise<string[]> {
  const entries = await readdir(sysfsRoot);
  const names: string[] = [];
  for (const name of entries) {
    // /sys/class/net may also hold plain files such as bonding_masters.
    try {
      if ((await stat(join(sysfsRoot, name, 'statistics'))).isDirectory()) names.push(name);
    } catch {
      /* not an interface */
    }
  }
  return names.sort();
}

export interface NicReadOptions {
  sysfsRoot?: string | undefined;
  /** Clock override for tests: both clocks in ms. */
  now?: (() => { monoMs: number; atMs: number }) | undefined;
}

function validName(ifname: string): boolean {
  return ifname.length > 0 && ifname.length <= 64 && !ifname.includes('/') && ifname !== '.' && ifname !== '..';
}

/** Read one interface's speed, state and counters. Throws only when the interface does not exist. */
export async function readNicSnapshot(ifname: string, opts: NicReadOptions = {}): Promise<NicSnapshot> {
  const root = opts.sysfsRoot ?? DEFAULT_SYSFS_NET;
  if (!validName(ifname)) throw new Error(`nic: invalid interface name ${JSON.stringify(ifname)}`);
  const dir = join(root, ifname);
  try {
    await stat(join(dir, 'statistics'));
  } catch {
    throw new Error(`nic: interface ${ifname} not found under ${root}`);
  }
  const entries = await Promise.all(
    NIC_COUNTERS.map(async (c): Promise<[NicCounterName, bigint | null]> => {
      try {
        const t = await readText(join(dir, 'statistics', NIC_COUNTER_FILES[c]));
        return [c, /^\d+$/.test(t) ? BigInt(t) : null];
      } catch {
        return [c, null];
      }
    }),
  );
  const clock = opts.now?.() ?? { monoMs: performance.now(), atMs: Date.now() };

  let speedMbps: number | null = null;
  let speedUnknownReason: string | null = null;
  try {
    const s = parseSpeed(await readText(join(dir, 'speed')));
    speedMbps = s.speedMbps;
    speedUnknownReason = s.reason;
  } catch (err) {
    speedUnknownReason = errCode(err);
  }
  let operstate: string | null = null;
  try {
    operstate = await readText(join(dir, 'operstate'));
  } catch {
    operstate = null;
  }
  // /sys/class/net/IF is a symlink into /sys/devices/…; read the link itself
  // (not realpath), which also works through /proc/PID/root/sys/class/net.
  let virtual: boolean | null = null;
  try {
    const target = await readlink(dir);
    virtual = target.includes('/devices/virtual/') ? true : target.includes('/devices/') ? false : null;
  } catch {
    virtual = null;
  }
  return {
    interface: ifname,
    atMs: clock.atMs,
    monoMs: clock.monoMs,
    speedMbps,
    speedUnknownReason,
    operstate,
    virtual,
    counters: Object.fromEntries(entries) as Record<NicCounterName, bigint | null>,
  };
}

// -------------------------------------------------------------------- rates

export type CounterStep = { kind: 'ok'; delta: bigint } | { kind: 'wrap32'; delta: bigint } | { kind: 'reset' } | { kind: 'unknown' };

/**
 * Classify one counter's step. `maxDelta` is the largest increase the link
 * could have produced in the interval (null = no bound known).
 */
export function counterStep(prev: bigint | null, cur: bigint | null, maxDelta: bigint | null = null): CounterStep {
  if (prev === null || cur === null) return { kind: 'unknown' };
  if (cur >= prev) return { kind: 'ok', delta: cur - prev };
  if (prev < TWO_32 && cur < TWO_32) {
    const delta = cur + TWO_32 - prev;
    if (maxDelta === null || delta <= maxDelta) return { kind: 'wrap32', delta };
  }
  return { kind: 'reset' };
}

function maxDeltaFor(counter: NicCounterName, speedMbps: number | null, seconds: number): bigint | null {
  if (speedMbps === null || !(seconds > 0)) return null;
  const bytes = ((speedMbps * 1e6) / 8) * seconds * WRAP_PLAUSIBILITY;
  const perUnit = counter === 'rxBytes' || counter === 'txBytes' ? 1 : MIN_WIRE_FRAME;
  return BigInt(Math.ceil(bytes / perUnit));
}

/** Rates between two snapshots of the same interface (prev older than cur). */
export function computeNicRates(prev: NicSnapshot, cur: NicSnapshot): NicRates {
  if (prev.interface !== cur.interface) throw new Error(`nic: snapshots of different interfaces (${prev.interface}, ${cur.interface})`);
  const seconds = (cur.monoMs - prev.monoMs) / 1000;
  const speed = cur.speedMbps ?? prev.speedMbps;
  if (!(seconds > 0)) throw new Error(`nic: ${cur.interface}: snapshots are not in time order (interval ${seconds} s)`);
  const deltas = {} as Record<NicCounterName, number | null>;
  const wrapped: NicCounterName[] = [];
  let reset = false;
  for (const c of NIC_COUNTERS) {
    const step = counterStep(prev.counters[c], cur.counters[c], maxDeltaFor(c, speed, seconds));
    if (step.kind === 'reset') reset = true;
    if (step.kind === 'wrap32') wrapped.push(c);
    deltas[c] = step.kind === 'ok' || step.kind === 'wrap32' ? Number(step.delta) : null;
  }
  if (reset) for (const c of NIC_COUNTERS) deltas[c] = null;
  const rate = (c: NicCounterName): number | null => {
    const d = deltas[c];
    return d === null ? null : d / seconds;
  };
  const rxBytesPerSec = rate('rxBytes');
  const txBytesPerSec = rate('txBytes');
  const rxBitsPerSec = rxBytesPerSec === null ? null : rxBytesPerSec * 8;
  const txBitsPerSec = txBytesPerSec === null ? null : txBytesPerSec * 8;
  const util = (bits: number | null) => (bits === null || cur.speedMbps === null ? null : bits / (cur.speedMbps * 1e6));
  const rxUtilisation = util(rxBitsPerSec);
  const txUtilisation = util(txBitsPerSec);
  return {
    interface: cur.interface,
    fromMs: prev.atMs,
    toMs: cur.atMs,
    intervalSeconds: seconds,
    speedMbps: cur.speedMbps,
    operstate: cur.operstate,
    reset,
    wrapped: reset ? [] : wrapped,
    deltas,
    rxBytesPerSec,
    txBytesPerSec,
    rxBitsPerSec,
    txBitsPerSec,
    rxPacketsPerSec: rate('rxPackets'),
    txPacketsPerSec: rate('txPackets'),
    rxErrorsPerSec: rate('rxErrors'),
    txErrorsPerSec: rate('txErrors'),
    rxDropsPerSec: rate('rxDropped'),
    txDropsPerSec: rate('txDropped'),
    rxUtilisation,
    txUtilisation,
    utilisation: rxUtilisation === null || txUtilisation === null ? null : Math.max(rxUtilisation, txUtilisation),
  };
}

export interface NicSample {
  interface: string;
  snapshot: NicSnapshot | null;
  /** Rates since the previous sample of this interface; null on the first one. */
  rates: NicRates | null;
  /** Why the interface could not be read (e.g. it disappeared). */
  error: string | null;
}

/**
 * Keeps the last snapshot per interface and turns each new one into rates.
 * Call `sample()` at a fixed interval (the scheduler owns the timer).
 */
export class NicSampler {
  #opts: NicReadOptions;
  #last = new Map<string, NicSnapshot>();

  constructor(opts: NicReadOptions = {}) {
    this.#opts = opts;
  }

  get sysfsRoot(): string {
    return this.#opts.sysfsRoot ?? DEFAULT_SYSFS_NET;
  }

  /** Sample the given interfaces (default: every interface present now). */
  async sample(interfaces?: readonly string[]): Promise<NicSample[]> {
    const names = interfaces ?? (await listInterfaces(this.sysfsRoot));
    const out: NicSample[] = [];
    for (const name of names) {
      let snapshot: NicSnapshot;
      try {
        snapshot = await readNicSnapshot(name, this.#opts);
      } catch (err) {
        this.#last.delete(name);
        out.push({ interface: name, snapshot: null, rates: null, error: (err as Error).message });
        continue;
      }
      const prev = this.#last.get(name);
      this.#last.set(name, snapshot);
      out.push({ interface: name, snapshot, rates: prev ? computeNicRates(prev, snapshot) : null, error: null });
    }
    return out;
  }

  /** Forget an interface's previous snapshot (its next sample starts afresh). */
  forget(name: string): void {
    this.#last.delete(name);
  }
}

export interface MeasureNicOptions extends NicReadOptions {
  /** Interfaces to measure; every interface when absent. */
  interfaces?: readonly string[] | undefined;
  /** Time between the two snapshots, ms. Default 1000. */
  intervalMs?: number | undefined;
}

/** Two snapshots `intervalMs` apart, for `citymesh measure nic`. */
export async function measureNic(opts: MeasureNicOptions = {}): Promise<NicSample[]> {
  const sampler = new NicSampler(opts);
  const names = opts.interfaces ?? (await listInterfaces(sampler.sysfsRoot));
  await sampler.sample(names);
  await new Promise((r) => setTimeout(r, opts.intervalMs ?? 1000));
  return sampler.sample(names);
}

/** A snapshot with its bigint counters as decimal strings (JSON.stringify cannot write bigint). */
export type NicSnapshotJson = Omit<NicSnapshot, 'counters'> & { counters: Record<NicCounterName, string | null> };
export type NicSampleJson = Omit<NicSample, 'snapshot'> & { snapshot: NicSnapshotJson | null };

/** JSON-safe copy of samples, for `--json` output and the uplink. */
export function nicSamplesToJson(samples: readonly NicSample[]): NicSampleJson[] {
  return samples.map((s) => ({
    ...s,
    snapshot: s.snapshot
      ? {
          ...s.snapshot,
          counters: Object.fromEntries(NIC_COUNTERS.map((c) => [c, s.snapshot!.counters[c]?.toString() ?? null])) as Record<NicCounterName, string | null>,
        }
      : null,
  }));
}

function fmtBps(v: number | null): string {
  if (v === null) return '—';
  if (v >= 1e9) return `${(v / 1e9).toFixed(2)}G`;
  if (v >= 1e6) return `${(v / 1e6).toFixed(2)}M`;
  if (v >= 1e3) return `${(v / 1e3).toFixed(1)}k`;
  return v.toFixed(0);
}

/** Human-readable table for `citymesh measure nic` without --json. */
export function formatNicSamples(samples: readonly NicSample[]): string {
  const rows = [['interface', 'state', 'speed', 'rx bit/s', 'tx bit/s', 'rx util', 'tx util', 'err/s', 'drop/s', 'note']];
  for (const s of samples) {
    const r = s.rates;
    const snap = s.snapshot;
    const speed = snap?.speedMbps == null ? `unknown${snap?.speedUnknownReason ? ` (${snap.speedUnknownReason})` : ''}` : `${snap.speedMbps} Mb/s`;
    const util = (u: number | null | undefined) => (u == null ? '—' : `${(u * 100).toFixed(2)} %`);
    const sum = (a: number | null | undefined, b: number | null | undefined) => (a == null || b == null ? '—' : (a + b).toFixed(1));
    const note = s.error ?? (r?.reset ? 'counters reset' : r?.wrapped.length ? `32-bit wrap: ${r.wrapped.join(',')}` : '');
    rows.push([
      s.interface,
      snap?.operstate ?? '—',
      speed,
      fmtBps(r?.rxBitsPerSec ?? null),
      fmtBps(r?.txBitsPerSec ?? null),
      util(r?.rxUtilisation),
      util(r?.txUtilisation),
      sum(r?.rxErrorsPerSec, r?.txErrorsPerSec),
      sum(r?.rxDropsPerSec, r?.txDropsPerSec),
      note,
    ]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  return rows.map((row) => row.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}
