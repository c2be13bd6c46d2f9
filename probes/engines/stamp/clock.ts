/**
 * Time for STAMP: a wall clock that never steps backwards inside the process,
 * and the host's real synchronisation state, which decides the S bit and the
 * Error Estimate we put on the wire and whether one-way delays may be reported.
 */
import { execFile } from 'node:child_process';
import { performance } from 'node:perf_hooks';

// Anchor the monotonic clock to wall time once. performance.timeOrigin is the
// wall time at process start (µs resolution) and performance.now() the
// monotonic time since then, so their sum is the wall time "now" on the same
// monotonic scale as hrtime. Differences of nowNs() are pure monotonic
// intervals; NTP slewing still applies (CLOCK_MONOTONIC is slewed), but a
// step of the system clock after start-up is deliberately not followed.
const ANCHOR_HR_NS = process.hrtime.bigint();
const ANCHOR_WALL_NS =
  BigInt(Math.round(performance.timeOrigin * 1e3)) * 1000n + BigInt(Math.round(performance.now() * 1e6));

/** Current wall-clock time, Unix nanoseconds, monotonic within the process. */
export function nowNs(): bigint {
  return ANCHOR_WALL_NS + (process.hrtime.bigint() - ANCHOR_HR_NS);
}

export interface ClockSync {
  /** The kernel/daemon says the clock is disciplined to an external source. */
  synchronized: boolean;
  /** Bound on |clock − UTC|, seconds. At least 1 s when not synchronised. */
  errorSeconds: number;
  source: 'chrony' | 'adjtimex' | 'none';
  detail: string;
}

/** What we claim when nothing can be read: unsynchronised, 1 s. */
export const UNKNOWN_SYNC: ClockSync = { synchronized: false, errorSeconds: 1, source: 'none', detail: 'no clock status available' };

const EXEC_TIMEOUT_MS = 2000;
const SYNCED_LEAP = new Set(['Normal', 'Insert second', 'Delete second']);

/**
 * Parse `chronyc -c tracking` (fields: ref id, name, stratum, ref time,
 * system time offset, last offset, RMS offset, frequency, residual freq, skew,
 * root delay, root dispersion, update interval, leap status). Bound =
 * |system time offset| + root dispersion + root delay / 2, chrony's own
 * maximum-error formula. Returns null when the text is not such a line.
 */
export function parseChronyTracking(csv: string): ClockSync | null {
  const f = (csv.trim().split('\n')[0] ?? '').split(',');
  if (f.length < 14) return null;
  const offset = Number(f[4]);
  const rootDelay = Number(f[10]);
  const rootDispersion = Number(f[11]);
  const leap = (f[13] ?? '').trim();
  if (![offset, rootDelay, rootDispersion].every(Number.isFinite)) return null;
  const synchronized = SYNCED_LEAP.has(leap);
  const bound = Math.abs(offset) + rootDispersion + rootDelay / 2;
  return {
    synchronized,
    errorSeconds: synchronized ? bound : Math.max(bound, 1),
    source: 'chrony',
    detail: `chrony ref=${f[1]} stratum=${f[2]} leap=${leap} offset=${offset}s rootDelay=${rootDelay}s rootDispersion=${rootDispersion}s`,
  };
}

/**
 * Parse the JSON our adjtimex helper prints: {ret, maxerror, esterror, status}
 * (maxerror/esterror in µs). Unsynchronised when adjtimex returns TIME_ERROR
 * (5) or status has STA_UNSYNC (0x40). maxerror is the kernel's own bound.
 */
export function parseAdjtimex(json: string): ClockSync | null {
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch {
    return null;
  }
  if (typeof v !== 'object' || v === null) return null;
  const { ret, maxerror, esterror, status } = v as Record<string, unknown>;
  if (![ret, maxerror, esterror, status].every((x) => typeof x === 'number' && Number.isFinite(x))) return null;
  const r = ret as number;
  const st = status as number;
  const synchronized = r >= 0 && r !== 5 && (st & 0x40) === 0;
  const bound = (maxerror as number) / 1e6;
  return {
    synchronized,
    errorSeconds: synchronized ? bound : Math.max(bound, 1),
    source: 'adjtimex',
    detail: `adjtimex state=${r} status=0x${st.toString(16)} maxerror=${maxerror}us esterror=${esterror}us`,
  };
}

// struct timex on LP64 Linux (x86_64, aarch64): modes u32 @0, offset @8,
// freq @16, maxerror long @24, esterror long @32, status int @40.
const ADJTIMEX_PY = [
  'import ctypes, json, struct',
  'libc = ctypes.CDLL(None, use_errno=True)',
  'buf = ctypes.create_string_buffer(256)',
  'ret = libc.adjtimex(buf)',
  "maxerror, esterror = struct.unpack_from('<qq', buf, 24)",
  "status = struct.unpack_from('<i', buf, 40)[0]",
  "print(json.dumps({'ret': ret, 'maxerror': maxerror, 'esterror': esterror, 'status': status}))",
].join('\n');

function run(cmd: string, args: string[]): Promise<string | null> {
  return new Promise((resolve) => {
    try {
      execFile(cmd, args, { timeout: EXEC_TIMEOUT_MS, windowsHide: true }, (err, stdout) => {
        resolve(err ? null : String(stdout));
      });
    } catch {
      resolve(null);
    }
  });
}

/** The host's real sync state: chrony, else kernel adjtimex, else UNKNOWN_SYNC. Never throws. */
export async function readClockSync(): Promise<ClockSync> {
  const chrony = await run('chronyc', ['-c', 'tracking']);
  const fromChrony = chrony === null ? null : parseChronyTracking(chrony);
  if (fromChrony) return fromChrony;
  if (process.platform === 'linux' && (process.arch === 'x64' || process.arch === 'arm64')) {
    const adj = await run('python3', ['-c', ADJTIMEX_PY]);
    const fromKernel = adj === null ? null : parseAdjtimex(adj);
    if (fromKernel) return fromKernel;
  }
  return UNKNOWN_SYNC;
}

/**
 * Sync state for the packet path: reading it spawns processes, so it is
 * refreshed in the background (default every 60 s, timer unref'd so it never
 * keeps the process alive) and served synchronously by current().
 */
export class ClockSyncCache {
  #state: ClockSync = UNKNOWN_SYNC;
  #timer: NodeJS.Timeout;
  #first: Promise<ClockSync>;
  #read: () => Promise<ClockSync>;
  #closed = false;
  #listeners = new Set<(state: ClockSync) => void>();

  constructor(opts: { refreshMs?: number; read?: () => Promise<ClockSync> } = {}) {
    this.#read = opts.read ?? readClockSync;
    this.#first = this.refresh();
    this.#timer = setInterval(() => void this.refresh(), opts.refreshMs ?? 60_000);
    this.#timer.unref();
  }

  /** Latest known state (UNKNOWN_SYNC until the first read completes). */
  current(): ClockSync {
    return this.#state;
  }

  /** Resolves once the first read has completed. */
  ready(): Promise<ClockSync> {
    return this.#first;
  }

  async refresh(): Promise<ClockSync> {
    let next: ClockSync;
    try {
      next = await this.#read();
    } catch {
      next = UNKNOWN_SYNC;
    }
    if (!this.#closed) {
      const changed = JSON.stringify(next) !== JSON.stringify(this.#state);
      this.#state = next;
      if (changed) for (const listener of this.#listeners) listener(next);
    }
    return this.#state;
  }

  /** Call `listener` whenever the state changes (the native datapath keeps its own copy); returns the unsubscribe. */
  onChange(listener: (state: ClockSync) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  close(): void {
    this.#closed = true;
    clearInterval(this.#timer);
  }
}
