/**
 * ICMP echo engine: one system `ping` process per train via the npm `ping`
 * package (0.4.4). That package only summarises times, so we parse its raw
 * `output` ourselves to keep per-sequence loss, duplicates and reordering,
 * and feed the same summariseTrain as STAMP.
 *
 * Limits, accepted by design:
 * - iputils prints per-reply times with reduced precision (3 decimals at
 *   sub-ms, fewer as latency grows), so RTTs are quantised.
 * - One flow only (ICMP has no ports): `task.flows` is ignored, srcPort is 0.
 * - No clock exchange: synced is false, errorEstimateUs 0, no one-way delays.
 * - `-W` is whole seconds (the package formats it with %d), and iputils waits
 *   at most ~2 RTTs for stragglers once some replies arrived, so timeoutMs is
 *   a lower bound on the wait only when nothing answers.
 * - The package exposes no handle on the child: an abort settles the promise
 *   at once while the bounded ping process runs to completion; close() waits.
 * - Side effect of the package: it sets process.env.LANG = 'C' on each spawn.
 */
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import ping from 'ping';
import { summariseTrain, type TrainArrival } from '../../train-stats.js';
import { EngineUnavailableError, type Engine, type TrainResult, type TrainTask } from '../types.js';

export interface PingParse {
  /** Replies in output (arrival) order; seq 0-based (icmp_seq − 1). */
  arrivals: Array<TrainArrival & { duplicate: boolean }>;
  /** "N packets transmitted" from the summary, null when absent. */
  transmitted: number | null;
}

const REPLY = /\bbytes from .*?\bicmp_seq=(\d+)\b.*?\btime[=<]\s*([\d.]+)\s*ms(.*)$/;
const SUMMARY = /^(\d+) packets transmitted\b/;

/** Parse iputils ping output, e.g. `64 bytes from 127.0.0.1: icmp_seq=3 ttl=64 time=0.041 ms (DUP!)`. */
export function parsePingOutput(text: string): PingParse {
  const arrivals: PingParse['arrivals'] = [];
  let transmitted: number | null = null;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    const m = REPLY.exec(line);
    if (m) {
      const ms = Number(m[2]);
      if (!Number.isFinite(ms)) continue;
      arrivals.push({ seq: Number(m[1]) - 1, rttNs: Math.round(ms * 1e6), duplicate: /\(DUP!\)/.test(m[3] ?? '') });
      continue;
    }
    const s = SUMMARY.exec(line);
    if (s) transmitted = Number(s[1]);
  }
  return { arrivals, transmitted };
}

/** The `ping` the npm package will spawn (it runs `ping` from PATH on Linux), or null. */
export function findPing(path = process.env.PATH ?? ''): string | null {
  for (const dir of path.split(delimiter)) {
    if (!dir) continue;
    const file = join(dir, 'ping');
    try {
      if (!statSync(file).isFile()) continue;
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  return null;
}

export const PING_MISSING = 'the ping program is not installed (Debian: apt-get install iputils-ping)';

export class IcmpEngine implements Engine {
  readonly name = 'icmp' as const;
  #inflight = new Set<Promise<unknown>>();
  #closed = false;

  /** Looked up on every call (a few stat calls), so installing ping later is noticed without a restart. */
  unavailable(): string | null {
    return findPing() ? null : PING_MISSING;
  }

  async runTrain(task: TrainTask, signal?: AbortSignal): Promise<TrainResult[]> {
    if (this.#closed) throw new Error('IcmpEngine is closed');
    signal?.throwIfAborted();
    const missing = this.unavailable();
    if (missing) throw new EngineUnavailableError('icmp', missing);
    // shell:false already prevents injection, but a host like "-f" would still be read as an option.
    if (task.host.startsWith('-')) throw new Error(`invalid host: ${task.host}`);
    const count = Math.max(1, Math.floor(task.count));
    const extra = ['-i', String(task.intervalMs / 1000), '-Q', String((task.dscp & 0x3f) << 2)];
    const startedAtUs = Math.round((performance.timeOrigin + performance.now()) * 1000);
    const probe = ping.promise.probe(task.host, {
      min_reply: count,
      timeout: Math.max(1, Math.ceil(task.timeoutMs / 1000)),
      extra,
      ...(task.sourceAddress ? { sourceAddr: task.sourceAddress } : {}),
    });
    this.#inflight.add(probe);
    void probe.catch(() => undefined).finally(() => this.#inflight.delete(probe));

    const res = await abortable(probe, signal);
    const parsed = parsePingOutput(res.output);
    const stats = summariseTrain({ sent: parsed.transmitted ?? count, arrivals: parsed.arrivals });
    return [
      {
        engine: 'icmp',
        startedAtUs,
        flow: 0,
        srcPort: 0,
        dscp: task.dscp,
        ...stats,
        synced: false,
        errorEstimateUs: 0,
        fwdUs: [],
        revUs: [],
        // iputils ping stamps the reply in the kernel (SO_TIMESTAMP) but the request in user space before sendmsg.
        senderTimestamping: 'user',
        // The far end's kernel answers the echo; there are no T2/T3, its turnaround is inside the RTT.
        reflectorTimestamping: 'kernel',
      },
    ];
  }

  async close(): Promise<void> {
    this.#closed = true;
    await Promise.allSettled([...this.#inflight]);
  }
}

/** Settle with the signal's reason as soon as it aborts. */
function abortable<T>(p: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return p;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
