/**
 * Accepts probe connections, authenticates them, validates every message,
 * stores each batch with one deduplicated INSERT, acknowledges only what is
 * stored, and publishes the stored trains to the live hub.
 */
import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { ClickHouseClient } from '@clickhouse/client';
import type { Logger } from 'pino';
import { WebSocketServer, type WebSocket, type RawData } from 'ws';
import { insertTrains, formatDateTime64, type TrainRow } from '../sql/index.js';
import type { LiveHub } from './live-hub.js';
import { planFor } from './plan.js';
import {
  MAX_MESSAGE_BYTES,
  parseProbeMessage,
  type CollectorMessage,
  type ErrorCode,
  type ProbeBatch,
  type TrainSample,
} from './protocol.js';
import { hashToken, type Topology } from './topology/index.js';

export interface CollectorOptions {
  client: ClickHouseClient;
  topology: Topology;
  hub: LiveHub;
  logger: Logger;
  /** Seconds a new connection has to say hello. */
  helloTimeoutS?: number;
}

export interface CollectorStats {
  connections: number;
  batchesStored: number;
  trainsStored: number;
  batchesRejected: number;
  storeErrors: number;
}

interface Session {
  centre: string | null;
  remote: string;
}

/** Close codes in the 4000 range: application-defined (RFC 6455 §7.4.2). */
const CLOSE_AUTH_FAILED = 4401;
const CLOSE_HELLO_TIMEOUT = 4408;

export class Collector {
  private readonly wss: WebSocketServer;
  private readonly inflight = new Set<Promise<void>>();
  private readonly recentBatches = new Map<string, true>();
  private readonly counters: CollectorStats = { connections: 0, batchesStored: 0, trainsStored: 0, batchesRejected: 0, storeErrors: 0 };

  constructor(private readonly options: CollectorOptions) {
    this.wss = new WebSocketServer({ noServer: true, maxPayload: MAX_MESSAGE_BYTES });
    this.wss.on('connection', (ws, request) => this.accept(ws, request));
  }

  /** Hand over an HTTP upgrade request for the probe endpoint. */
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    this.wss.handleUpgrade(request, socket, head, (ws) => this.wss.emit('connection', ws, request));
  }

  stats(): CollectorStats {
    return { ...this.counters, connections: this.wss.clients.size };
  }

  /** Stop accepting, let in-flight inserts finish, then close every probe connection. */
  async close(): Promise<void> {
    await Promise.allSettled([...this.inflight]);
    for (const ws of this.wss.clients) ws.close(1001, 'server shutting down');
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }

  private accept(ws: WebSocket, request: IncomingMessage): void {
    const session: Session = { centre: null, remote: `${request.socket.remoteAddress}:${request.socket.remotePort}` };
    const log = this.options.logger.child({ remote: session.remote });
    const helloTimer = setTimeout(() => {
      if (!session.centre) {
        this.send(ws, { type: 'error', code: 'not_authenticated', error: 'no hello received in time' });
        ws.close(CLOSE_HELLO_TIMEOUT, 'hello timeout');
      }
    }, (this.options.helloTimeoutS ?? 10) * 1000);
    helloTimer.unref();
    ws.on('close', () => clearTimeout(helloTimer));
    ws.on('error', (error) => log.warn({ err: error }, 'probe connection error'));
    ws.on('message', (data, isBinary) => {
      if (isBinary) {
        this.reject(ws, log, 'bad_message', 'binary frames are not accepted; send JSON text');
        return;
      }
      this.onMessage(ws, session, log, rawText(data));
    });
  }

  private onMessage(ws: WebSocket, session: Session, log: Logger, text: string): void {
    const parsed = parseProbeMessage(text);
    if (!parsed.ok) {
      this.reject(ws, log, parsed.code, parsed.error, parsed.field, parsed.batchId);
      return;
    }
    const message = parsed.message;
    if (message.type === 'hello') {
      if (session.centre) {
        this.reject(ws, log, 'already_authenticated', `this connection already speaks for centre "${session.centre}"`, 'type');
        return;
      }
      const centre = this.options.topology.centre(message.centre);
      if (!centre) {
        this.reject(ws, log, 'unknown_centre', `unknown centre "${message.centre}"`, 'centre');
        ws.close(CLOSE_AUTH_FAILED, 'unknown centre');
        return;
      }
      if (!centre.probe.tokenSha256 || !sameHash(hashToken(message.token), centre.probe.tokenSha256)) {
        this.reject(ws, log, 'bad_token', `token refused for centre "${message.centre}"`, 'token');
        ws.close(CLOSE_AUTH_FAILED, 'bad token');
        return;
      }
      session.centre = centre.id;
      log.info({ centre: centre.id, version: message.version }, 'probe connected');
      this.send(ws, planFor(this.options.topology, centre.id));
      return;
    }
    if (!session.centre) {
      this.reject(ws, log, 'not_authenticated', 'say hello (centre, token, version) before sending batches', 'type', message.batchId);
      return;
    }
    this.track(this.storeBatch(ws, session.centre, message, log));
  }

  private async storeBatch(ws: WebSocket, centre: string, batch: ProbeBatch, log: Logger): Promise<void> {
    const peers = new Set(this.options.topology.peersOf(centre));
    const badDst = batch.samples.findIndex((s) => !peers.has(s.dst));
    if (badDst >= 0) {
      this.reject(
        ws, log, 'unknown_destination',
        `samples[${badDst}].dst: "${batch.samples[badDst]!.dst}" is not a centre linked to "${centre}"`,
        `samples[${badDst}].dst`, batch.batchId,
      );
      return;
    }
    const rows = batch.samples.map((s) => toRow(centre, batch.batchId, s));
    const key = `${centre}/${batch.batchId}`;
    try {
      await insertTrains(this.options.client, rows, key);
    } catch (error) {
      this.counters.storeErrors++;
      log.error({ err: error, batchId: batch.batchId }, 'storing batch failed');
      this.send(ws, { type: 'error', code: 'store_unavailable', error: 'storage failed; keep the batch and retry', batchId: batch.batchId });
      return;
    }
    this.send(ws, { type: 'ack', batchId: batch.batchId, stored: rows.length });
    // A retried batch is dropped by ClickHouse's deduplication; do not replay it live either.
    if (this.recentBatches.has(key)) return;
    this.remember(key);
    this.counters.batchesStored++;
    this.counters.trainsStored += rows.length;
    for (const s of batch.samples) {
      this.options.hub.publish({
        src: centre, dst: s.dst, engine: s.engine, flow: s.flow, startedAtUs: s.startedAtUs,
        sent: s.sent, received: s.received, rttMinUs: s.rttMinUs, rttMedianUs: s.rttMedianUs,
        rttP99Us: s.rttP99Us, rttMaxUs: s.rttMaxUs, jitterUs: s.jitterUs,
      });
    }
  }

  private remember(key: string): void {
    this.recentBatches.set(key, true);
    if (this.recentBatches.size > 10_000) {
      const oldest = this.recentBatches.keys().next().value;
      if (oldest !== undefined) this.recentBatches.delete(oldest);
    }
  }

  private track(work: Promise<void>): void {
    this.inflight.add(work);
    void work.finally(() => this.inflight.delete(work));
  }

  private reject(ws: WebSocket, log: Logger, code: ErrorCode, error: string, field?: string, batchId?: string): void {
    this.counters.batchesRejected++;
    log.warn({ code, field, batchId }, `rejected probe message: ${error}`);
    this.send(ws, { type: 'error', code, error, ...(field ? { field } : {}), ...(batchId ? { batchId } : {}) });
  }

  private send(ws: WebSocket, message: CollectorMessage): void {
    if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(message));
  }
}

function sameHash(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.length === y.length && timingSafeEqual(x, y);
}

function rawText(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  if (data instanceof ArrayBuffer) return Buffer.from(data).toString('utf8');
  return data.toString('utf8');
}

export function toRow(src: string, batchId: string, s: TrainSample): TrainRow {
  return {
    ts: formatDateTime64(s.startedAtUs),
    src,
    dst: s.dst,
    engine: s.engine,
    flow: s.flow,
    src_port: s.srcPort,
    dscp: s.dscp,
    batch_id: batchId,
    sent: s.sent,
    received: s.received,
    lost: s.lost,
    duplicated: s.duplicated,
    reordered: s.reordered,
    rtt_min_us: s.rttMinUs,
    rtt_median_us: s.rttMedianUs,
    rtt_p99_us: s.rttP99Us,
    rtt_max_us: s.rttMaxUs,
    jitter_us: s.jitterUs,
    synced: s.synced,
    error_estimate_us: s.errorEstimateUs,
    rtts_us: s.rttsUs,
    fwd_us: s.fwdUs,
    rev_us: s.revUs,
  };
}
