/**
 * The collector's side of diagnostics on breach: stored rows from probe
 * records, and delivery of operator requests to probes across servers.
 *
 * Delivery:
 *
 * Servers are stateless and several may run behind a load balancer: the server
 * that takes `POST /v1/links/A/B/diagnostics` stores the request in ClickHouse
 * (diagnostic_requests), and every server polls that table every couple of
 * seconds and sends `diagnose` to whichever of the link's probes are connected
 * to it. The cursor re-reads a short overlap (a row inserted by another server
 * may become visible after rows with later timestamps; server clocks differ a
 * little) and remembers what it delivered, so nothing is missed and nothing is
 * sent twice to one connection. A probe that connects here while a request is
 * still fresh gets it then; the probe ignores a request id it already ran, so a
 * probe that moves between servers runs each request once.
 */
import type { Logger } from 'pino';
import { diagnosticRequestsSince, formatDateTime64, type DiagnosticsRow, type Store } from '../sql/index.js';
import type { DiagnoseRequest, DiagnosticSampleRecord } from '../protocol/index.js';

/** A probe's diagnostics record as stored; `src` is the probe's authenticated centre. */
export function toDiagnosticsRow(src: string, batchId: string, d: DiagnosticSampleRecord): DiagnosticsRow {
  const { traceroute: t, pathMtu: p, fastTrain: f } = d;
  return {
    ts: formatDateTime64(d.startedAtUs).slice(0, 23),
    src, dst: d.dst, run_id: d.runId, request_id: d.requestId ?? '', trigger: d.trigger, reason: d.reason, duration_ms: d.durationMs,
    tr_ok: t.ok, tr_error: t.error ?? '', tr_tool: t.tool ?? '', tr_max_hops: t.maxHops, tr_reached: t.reached,
    hop_ttls: t.hops.map((h) => h.ttl),
    hop_addresses: t.hops.map((h) => h.probes.map((x) => x.address ?? '')),
    hop_rtts_us: t.hops.map((h) => h.probes.map((x) => x.rttUs)),
    hop_flags: t.hops.map((h) => h.probes.map((x) => x.flag ?? '')),
    pmtu_ok: p.ok, pmtu_error: p.error ?? '', pmtu_tool: p.tool ?? '', pmtu: p.pmtu, pmtu_drop_ttl: p.dropAtTtl, pmtu_reached: p.reached,
    ft_ok: f.ok, ft_error: f.error ?? '', ft_count: f.count, ft_interval_ms: f.intervalMs, ft_sent: f.sent, ft_received: f.received,
    ft_rtt_min_us: f.rttMinUs, ft_rtt_median_us: f.rttMedianUs, ft_rtt_p99_us: f.rttP99Us, ft_rtt_max_us: f.rttMaxUs, ft_jitter_us: f.jitterUs,
    batch_id: batchId,
  };
}

export interface DiagnosticsDispatcherOptions {
  store: Store;
  /** Sends to the centre's probe if it is connected to this server; false otherwise. */
  send: (centre: string, message: DiagnoseRequest) => boolean;
  logger: Logger;
  /** Poll period, ms (default 2000). */
  pollMs?: number;
  /** A request older than this is no longer delivered, ms (default 60 s): diagnostics are about now. */
  maxAgeMs?: number;
}

/** Re-read behind the cursor: visibility delays of other servers' inserts and clock differences between servers. */
const OVERLAP_US = 10_000_000;

export class DiagnosticsDispatcher {
  private cursorUs: number;
  /** `${requestId}/${centre}` → when the request was made (µs), for forgetting. */
  private readonly delivered = new Map<string, number>();
  private timer: NodeJS.Timeout | null = null;
  private polling: Promise<number> | null = null;
  private readonly pollMs: number;
  private readonly maxAgeUs: number;

  constructor(private readonly options: DiagnosticsDispatcherOptions) {
    this.pollMs = options.pollMs ?? 2000;
    this.maxAgeUs = (options.maxAgeMs ?? 60_000) * 1000;
    this.cursorUs = Date.now() * 1000 - this.maxAgeUs;
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.poll(), this.pollMs);
    this.timer.unref();
  }

  /** A probe (re)connected: requests still fresh are delivered to it on the next poll. */
  probeConnected(centre: string): void {
    for (const key of this.delivered.keys()) if (key.endsWith(`/${centre}`)) this.delivered.delete(key);
  }

  /** One poll: deliver fresh requests to the probes connected here. Resolves with the messages sent. */
  poll(): Promise<number> {
    this.polling ??= this.pollOnce().finally(() => (this.polling = null));
    return this.polling;
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.polling;
  }

  private async pollOnce(): Promise<number> {
    const nowUs = Date.now() * 1000;
    const oldestUs = nowUs - this.maxAgeUs;
    let requests;
    try {
      requests = await diagnosticRequestsSince(this.options.store.client, Math.max(this.cursorUs - OVERLAP_US, oldestUs));
    } catch (error) {
      this.options.logger.warn({ err: (error as Error).message }, 'polling diagnostic requests failed; retrying');
      return 0;
    }
    let sent = 0;
    for (const r of requests) {
      this.cursorUs = Math.max(this.cursorUs, r.requestedAtUs);
      if (r.requestedAtUs < oldestUs) continue;
      for (const [centre, peer] of [[r.a, r.b], [r.b, r.a]] as const) {
        const key = `${r.requestId}/${centre}`;
        if (this.delivered.has(key)) continue;
        if (this.options.send(centre, { type: 'diagnose', requestId: r.requestId, dst: peer, requestedBy: r.requestedBy })) {
          this.delivered.set(key, r.requestedAtUs);
          sent++;
          this.options.logger.info({ requestId: r.requestId, centre, dst: peer }, 'diagnostics requested from probe');
        }
      }
    }
    for (const [key, at] of this.delivered) if (at < oldestUs - OVERLAP_US) this.delivered.delete(key);
    return sent;
  }
}
