/**
 * HTTP load driver for the queries benchmark, in a process of its own, as
 * k6 or an operator's browser is: what it allocates (response bodies, gzip
 * inflation) is collected by its own garbage collector, not by the server's.
 *
 * Why a process of its own: run inside the server's process, the requests'
 * garbage (a 125 KiB status inflated and parsed 400 times a second) made the
 * server's young generation collect about 15 times a second, 4-12 ms each
 * (measured with a PerformanceObserver on 'gc' beside an event-loop lateness
 * timer), and those pauses, not the route, set the p99 of every route
 * measured in that process, the bare ceiling's included.
 *
 * Variants are alternated request by request for the duration, so drift
 * (merges, refreshes, caches) hits them alike. A variant is one or more GETs
 * sent together; its time is from sending them to the last byte of the
 * last body (time to last byte, as k6's http_req_duration: the body is read,
 * not parsed). Anything but 200 counts as an error, with its first status
 * and body kept for the report.
 */
import { serveHelper } from '../lib/env.js';

export interface HttpVariant {
  name: string;
  /** Absolute URLs requested together (in parallel). */
  urls: string[];
}

export interface HttpLoadRequest {
  variants: HttpVariant[];
  headers: Record<string, string>;
  durationMs: number;
}

export interface HttpVariantResult {
  name: string;
  samplesMs: number[];
  /** Body bytes received per round (after inflation), from the last round. */
  bytes: number;
  errors: number;
  firstError: string | null;
}

async function fetchBody(url: string, headers: Record<string, string>): Promise<{ ok: boolean; bytes: number; detail: string }> {
  const res = await fetch(url, { headers });
  const body = await res.arrayBuffer();
  return {
    ok: res.status === 200,
    bytes: body.byteLength,
    detail: res.status === 200 ? '' : `GET ${url}: HTTP ${res.status} ${Buffer.from(body).toString('utf8', 0, 300)}`,
  };
}

/** Rounds of every variant sent before the clock starts: connections opened, the driver's own code compiled. */
const WARMUP_ROUNDS = 5;

async function runLoad(req: HttpLoadRequest): Promise<HttpVariantResult[]> {
  for (let i = 0; i < WARMUP_ROUNDS; i++) {
    for (const variant of req.variants) await Promise.all(variant.urls.map((url) => fetchBody(url, req.headers)));
  }
  const results: HttpVariantResult[] = req.variants.map((v) => ({ name: v.name, samplesMs: [], bytes: 0, errors: 0, firstError: null }));
  const end = performance.now() + req.durationMs;
  while (performance.now() < end) {
    for (const [k, variant] of req.variants.entries()) {
      const result = results[k]!;
      const t = performance.now();
      try {
        const answers = await Promise.all(variant.urls.map((url) => fetchBody(url, req.headers)));
        result.samplesMs.push(performance.now() - t);
        result.bytes = answers.reduce((sum, a) => sum + a.bytes, 0);
        const failed = answers.find((a) => !a.ok);
        if (failed) {
          result.errors++;
          result.firstError ??= failed.detail;
        }
      } catch (error) {
        result.errors++;
        result.firstError ??= (error as Error).message;
      }
    }
  }
  return results;
}

serveHelper(async (m) => runLoad(m as unknown as HttpLoadRequest));
