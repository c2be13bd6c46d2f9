/**
 * Tools for attacking a test server on loopback the way an outsider would:
 * requests from chosen 127.x addresses, and a /healthz watcher that measures
 * how the server answers everyone else while an attack runs (printed, never
 * asserted: tests do not time things).
 */
import { request as httpRequest } from 'node:http';

export interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
}

/** One HTTP request from `localAddress` (any 127.0.0.0/8 address works on Linux loopback). */
export function requestFrom(
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: string | Buffer; localAddress?: string } = {},
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: options.method ?? 'GET', headers: options.headers, localAddress: options.localAddress }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (options.body !== undefined) req.write(options.body);
    req.end();
  });
}

export interface HealthFigures {
  samples: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Requests that got no 200 (errors count too). */
  failures: number;
}

/** Polls `${base}/healthz` one request at a time until stopped; the latencies say how the server treated others during an attack. */
export class HealthWatch {
  private readonly latencies: number[] = [];
  private failures = 0;
  private running = true;
  private readonly loop: Promise<void>;

  constructor(private readonly base: string) {
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    while (this.running) {
      const t0 = performance.now();
      try {
        const r = await fetch(`${this.base}/healthz`, { signal: AbortSignal.timeout(30_000) });
        await r.text();
        if (r.status !== 200) this.failures++;
      } catch {
        this.failures++;
      }
      this.latencies.push(performance.now() - t0);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  async stop(): Promise<HealthFigures> {
    this.running = false;
    await this.loop;
    const sorted = [...this.latencies].sort((a, b) => a - b);
    const rank = (q: number) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? NaN;
    return { samples: sorted.length, p50Ms: rank(0.5), p99Ms: rank(0.99), maxMs: sorted.at(-1) ?? NaN, failures: this.failures };
  }
}

/** Figures of one attack class, gathered for the closing summary. */
export interface AttackFigures {
  attacks: number;
  health: HealthFigures;
  note?: string;
}

export function printAttackSummary(title: string, rows: Record<string, AttackFigures>, extra: Record<string, string | number> = {}): void {
  const lines = Object.entries(rows).map(([cls, f]) =>
    `  ${cls.padEnd(34)} attacks ${String(f.attacks).padStart(5)}   /healthz p50 ${f.health.p50Ms.toFixed(1)} ms, p99 ${f.health.p99Ms.toFixed(1)} ms, max ${f.health.maxMs.toFixed(1)} ms (${f.health.samples} polls, ${f.health.failures} failed)${f.note ? `   ${f.note}` : ''}`);
  const more = Object.entries(extra).map(([k, v]) => `  ${k}: ${v}`);
  console.log([title, ...lines, ...more].join('\n'));
}
