/**
 * Run settings shared by every benchmark, and process measurements (CPU and
 * memory from /proc, so they cover every thread of a process, ClickHouse's
 * included).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/** CITYMESH_BENCH_SMOKE=1: every benchmark tiny (seconds), for CI. */
export const SMOKE = /^(1|true|yes)$/i.test(process.env.CITYMESH_BENCH_SMOKE ?? '');

/** `full` normally, `smoke` in smoke mode. */
export function size<T>(full: T, smoke: T): T {
  return SMOKE ? smoke : full;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Wall clock in ms with sub-ms resolution, comparable across processes on this host. */
export function wallMs(): number {
  return performance.timeOrigin + performance.now();
}

const TICKS = 100; // USER_HZ on Linux

/** CPU seconds in user and kernel mode (all threads) a process has used so far; null if it is gone. */
export function cpuTimesOf(pid: number): { user: number; system: number } | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is field 3 (state): utime is field 14, stime field 15.
    return { user: Number(fields[11]) / TICKS, system: Number(fields[12]) / TICKS };
  } catch {
    return null;
  }
}

/**
 * CPU seconds of each live thread of a process, summed by thread name (comm),
 * from /proc/PID/task/TID/schedstat (nanoseconds on a CPU, not 10 ms ticks);
 * empty if it is gone.
 */
export function threadCpuOf(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      const name = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      const onCpuNs = Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
      out.set(name, (out.get(name) ?? 0) + onCpuNs / 1e9);
    } catch {
      // the thread ended between the listing and the read
    }
  }
  return out;
}

/** CPU seconds (user + system, all threads) a process has used so far; null if it is gone. */
export function cpuSecondsOf(pid: number): number | null {
  const t = cpuTimesOf(pid);
  return t ? t.user + t.system : null;
}

/** This process's CPU seconds (user + system, all threads), µs resolution. */
export function ownCpuSeconds(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

/** Resident set size of a process, bytes (VmRSS). */
export function rssOf(pid: number): number | null {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/** Samples this process's RSS every `everyMs` until stopped; returns the peak in bytes. */
export function rssPeakSampler(everyMs = 100): { stop(): number } {
  let peak = process.memoryUsage.rss();
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, everyMs);
  return {
    stop() {
      clearInterval(timer);
      return Math.max(peak, process.memoryUsage.rss());
    },
  };
}

/**
 * A helper process (load generator, clients) started with an IPC channel:
 * `request(msg)` sends one message and resolves with the next one it answers.
 */
export interface Helper {
  child: ChildProcess;
  request<T>(message: unknown, timeoutMs?: number): Promise<T>;
  stop(): Promise<void>;
}

export async function startHelper(moduleUrl: URL, args: string[] = []): Promise<Helper> {
  const child = fork(moduleUrl, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const waiting: ((m: unknown) => void)[] = [];
  child.on('message', (m) => waiting.shift()?.(m));
  await new Promise<void>((resolve, reject) => {
    waiting.push(() => resolve());
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`helper ${moduleUrl.pathname} exited (${code}) before it was ready`)));
  });
  return {
    child,
    request<T>(message: unknown, timeoutMs = 600_000) {
      return new Promise<T>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`helper ${moduleUrl.pathname}: no answer within ${timeoutMs} ms`)), timeoutMs);
        const onExit = (code: number | null) => reject(new Error(`helper ${moduleUrl.pathname} exited (${code})`));
        child.once('exit', onExit);
        waiting.push((m) => {
          clearTimeout(timer);
          child.off('exit', onExit);
          const error = (m as { error?: string }).error;
          if (error) reject(new Error(`helper ${moduleUrl.pathname}: ${error}`));
          else resolve(m as T);
        });
        child.send(message as object);
      });
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGTERM');
      const hard = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(hard);
    },
  };
}

/**
 * The helper side: announce readiness, then answer each request with the
 * handler's result (or `{error}`), one at a time.
 */
export function serveHelper(handler: (message: Record<string, unknown>) => Promise<unknown>): void {
  let chain = Promise.resolve();
  process.on('message', (m) => {
    chain = chain.then(async () => {
      try {
        process.send!((await handler(m as Record<string, unknown>)) ?? {});
      } catch (error) {
        process.send!({ error: (error as Error).stack ?? String(error) });
      }
    });
  });
  process.send!({ ready: true });
}
