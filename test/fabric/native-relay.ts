/**
 * The C UDP relay (udp-relay.c): built once per source version with the
 * system's C compiler, and driven over its stdin/stdout by the fabric's
 * DelayRelay. Where no compiler is found the fabric keeps its Node UDP path
 * and says why (`nativeRelayBinary()` returns the reason).
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { join } from 'node:path';
import { packageRoot } from '../../api/version.js';
import { buildCProgram } from '../helpers/c-program.js';
import type { LegCounters } from './relay.js';

export type NativeRelayBuild = { ok: true; path: string } | { ok: false; reason: string };

/** The compiled relay (cached by source hash under the temp directory), or why there is none. */
export function nativeRelayBinary(): NativeRelayBuild {
  return buildCProgram(join(packageRoot(), 'test', 'fabric', 'udp-relay.c'), 'the C UDP relay');
}

export interface NativeLegCounters extends Omit<LegCounters, 'tcpBytes' | 'tcpConnections'> {
  droppedFull: number;
  /** Release error percentiles over this leg's releases (1 µs buckets; -1 when none). */
  lateP50Us: number;
  lateP99Us: number;
}

export interface NativeRelayState {
  unknownSource: number;
  held: number;
  links: { peer: string; in: NativeLegCounters; out: NativeLegCounters }[];
}

export interface NativeRelayOptions {
  listenHost: string;
  port: number;
  targetHost: string;
  targetPort: number;
  floorUs: number;
  seed: number;
  links: { peerAddress: string; delayUs: number; loss: number }[];
}

/** One running C relay for one UDP forward. Commands are answered in order, one line each. */
export class NativeUdpRelay {
  private buffer = '';
  private readonly waiting: ((line: string) => void)[] = [];
  private exited = false;

  private constructor(private readonly child: ChildProcessWithoutNullStreams) {
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      this.buffer += d;
      let nl: number;
      while ((nl = this.buffer.indexOf('\n')) >= 0) {
        const line = this.buffer.slice(0, nl);
        this.buffer = this.buffer.slice(nl + 1);
        this.waiting.shift()?.(line);
      }
    });
    child.on('exit', () => {
      this.exited = true;
      for (const w of this.waiting.splice(0)) w('error relay exited');
    });
  }

  static async start(binary: string, o: NativeRelayOptions): Promise<NativeUdpRelay> {
    const args = [o.listenHost, String(o.port), o.targetHost, String(o.targetPort), String(o.floorUs), String(o.seed >>> 0),
      ...o.links.map((l) => `${l.peerAddress}=${l.delayUs},${l.loss}`)];
    const child = spawn(binary, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => {
      stderr += d;
      // "SCHED_FIFO not permitted" and the like: said once, not fatal.
      if (stderr.length < 4096) process.stderr.write(d);
    });
    const relay = new NativeUdpRelay(child);
    const ready = await new Promise<string>((resolve) => {
      relay.waiting.push(resolve);
      child.once('error', (e) => resolve(`error ${e.message}`));
    });
    if (!ready.startsWith('ready ')) {
      child.kill();
      throw new Error(`C UDP relay on ${o.listenHost}:${o.port} did not start: ${ready} ${stderr.trim()}`);
    }
    return relay;
  }

  private request(line: string): Promise<string> {
    if (this.exited) return Promise.resolve('error relay exited');
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      this.child.stdin.write(`${line}\n`);
    });
  }

  async set(peerAddress: string, delayUs: number, loss: number): Promise<void> {
    const r = await this.request(`set ${peerAddress} ${delayUs} ${loss}`);
    if (r !== 'ok') throw new Error(`C UDP relay: set ${peerAddress}: ${r}`);
  }

  async blackhole(peerAddress: string, fromMs: number, toMs: number): Promise<void> {
    const r = await this.request(`blackhole ${peerAddress} ${Math.round(fromMs)} ${Math.round(toMs)}`);
    if (r !== 'ok') throw new Error(`C UDP relay: blackhole ${peerAddress}: ${r}`);
  }

  async reset(): Promise<void> {
    await this.request('reset');
  }

  async state(): Promise<NativeRelayState> {
    const r = await this.request('get');
    if (!r.startsWith('{')) throw new Error(`C UDP relay: get: ${r}`);
    return JSON.parse(r) as NativeRelayState;
  }

  close(): void {
    if (!this.exited) this.child.stdin.end();
    const child = this.child;
    setTimeout(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }, 2000).unref();
  }
}
