/**
 * The native helpers built by `npm install` (probes/native, node-gyp):
 * citymesh_tos (DSCP on a Node socket) and citymesh_stamp (the STAMP
 * datapath on its own thread, probes/native/stamp.c). Either may be missing
 * (no C compiler, another OS); callers then fall back to JavaScript and say so.
 *
 * CITYMESH_STAMP_DATAPATH=js forces the JavaScript datapath (to compare the
 * two, or to work around a faulty build).
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Timestamping } from '../types.js';

export interface Loaded<T> {
  module: T | null;
  /** Why the module is not available ('' when it is). */
  reason: string;
}

function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json')) && dirname(dir) !== dir) dir = dirname(dir);
  return dir;
}

const cache = new Map<string, Loaded<unknown>>();

/** Load probes/native/build/Release/<name>.node once; never throws. */
export function loadNative<T>(name: string, what: string): Loaded<T> {
  const hit = cache.get(name);
  if (hit) return hit as Loaded<T>;
  const path = join(repoRoot(), 'probes', 'native', 'build', 'Release', `${name}.node`);
  let loaded: Loaded<T>;
  try {
    loaded = { module: createRequire(import.meta.url)(path) as T, reason: '' };
  } catch (error) {
    loaded = { module: null, reason: `${what} not loadable (${path}): ${(error as Error).message.split('\n')[0]}; run npm install with a C compiler (Debian: build-essential)` };
  }
  cache.set(name, loaded);
  return loaded;
}

export interface NativeReflectorStats {
  port: number;
  timestamping: Timestamping;
  received: number;
  reflected: number;
  rxKernel: number;
  rxUser: number;
  drops: Record<string, number>;
}

export interface NativeSenderInfo {
  id: number;
  port: number;
  /** The TOS byte the socket actually marks with. */
  tos: number;
  /** Kernel software transmit timestamps are enabled (T1 from the kernel). */
  txStamps: boolean;
  timestamping: Timestamping;
}

/** One train's raw results; see deliver() in probes/native/stamp.c. */
export interface NativeTrainResult {
  sent: number;
  sendErrors: number;
  txKernel: number;
  /** Per packet: T1 in Unix ns (kernel stamp when it came, else the pre-send clock); 0n if not sent. */
  t1: BigInt64Array;
  t1Kernel: Uint8Array;
  arrivals: {
    index: Uint32Array;
    /** T4 − T1 on our clock, ns. */
    rawNs: BigInt64Array;
    t4: BigInt64Array;
    /** 1: T1 from the kernel, 2: T4 from the kernel, 4: wall clock stepped, monotonic interval used. */
    flags: Uint8Array;
    /** The first 44 octets of each reply, back to back. */
    bytes: Buffer;
  };
}

export interface StampDatapath {
  reflectorOpen(opts: { host: string; port: number }): number;
  reflectorConfigure(id: number, opts: {
    errorEstimate?: number; allowAny?: boolean; allow?: Array<[string, number]>; denyPorts?: number[]; ratePps?: number; burst?: number;
  }): void;
  reflectorStats(id: number): NativeReflectorStats;
  senderOpen(opts: { host: string; peer: string; peerPort: number; tos?: number }): NativeSenderInfo;
  senderTrain(id: number, opts: {
    firstSeq: number; count: number; intervalNs: number; timeoutNs: number; errorEstimate: number; size?: number;
  }, done: (result: NativeTrainResult) => void): void;
  close(id: number): void;
  realtimeNs(): bigint;
}

/** The native STAMP datapath, or null with the reason (see datapathStatus()). */
export function stampDatapath(): StampDatapath | null {
  if (/^js$/i.test(process.env.CITYMESH_STAMP_DATAPATH ?? '')) return null;
  return loadNative<StampDatapath>('citymesh_stamp', 'native STAMP datapath').module;
}

export interface DatapathStatus {
  datapath: 'native' | 'js';
  /** Why the JavaScript fallback is in use; null with the native datapath. */
  reason: string | null;
}

export function datapathStatus(): DatapathStatus {
  if (/^js$/i.test(process.env.CITYMESH_STAMP_DATAPATH ?? '')) {
    return { datapath: 'js', reason: 'CITYMESH_STAMP_DATAPATH=js forces the JavaScript datapath (timestamps taken in user space)' };
  }
  const loaded = loadNative<StampDatapath>('citymesh_stamp', 'native STAMP datapath');
  return loaded.module ? { datapath: 'native', reason: null } : { datapath: 'js', reason: `${loaded.reason}; timestamps are taken in user space` };
}
