/**
 * Accepts probe connections (WebSocket) and HTTP batches, authenticates them,
 * validates every message, stores each batch with one deduplicated INSERT,
 * acknowledges only what is stored, and publishes stored trains live.
 *
 * Under pressure it refuses rather than queues: inserts in flight are bounded
 * per connection and in total, and a refused batch stays in the probe's spool.
 * Nothing is acknowledged that ClickHouse has not accepted.
 */
import { hostname } from 'node:os';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { WebSocketServer, type WebSocket, type RawData } from 'ws';
import { createHash } from 'node:crypto';
import {
  batchContentHashes, insertBatchLedger, insertDiagnostics, insertLoadWindows, insertNic, insertThroughput, insertTrains, formatDateTime64, storedRecordIds,
  type LoadWindowRow, type NicRow, type Store, type ThroughputRow, type TrainRow,
} from '../sql/index.js';
import { findCentreByToken, tokenMatches } from '../topology/index.js';
import type { FailedAuthLimiter } from './auth-limits.js';
import type { LiveHub, LiveTrain } from './live-hub.js';
import type { CollectorMetrics } from './metrics.js';
import { planFor } from './plan.js';
import {
  MAX_MESSAGE_BYTES,
  batchTimeSpanUs,
  outOfWindow,
  parseProbeMessage,
  type CollectorAck,
  type CollectorError,
  type CollectorMessage,
  type ErrorCode,
  type NicSampleRecord,
  type ProbeBatch,
  type ThroughputRun,
  type ThroughputSampleRecord,
  type TrainSample,
} from '../protocol/index.js';
import { SelfLoadMarker } from './self-load.js';
import { selfLoadGuardMs, ThroughputCoordinator, type LoadRecord, type TestStatus } from './throughput-coordinator.js';
import { DiagnosticsDispatcher, toDiagnosticsRow } from './diagnostics.js';
import { ProbeReports } from './probe-reports.js';
import type { DiagnoseRequest } from '../protocol/index.js';
import { StoreQueue } from './store-queue.js';
import { TokenBucket } from './token-bucket.js';
import type { Topology } from '../topology/index.js';

export interface CollectorLimits {
  /** Seconds a new connection has to say hello. */
  helloTimeoutS: number;
  /** Authenticated connections one centre may hold at once. */
  maxConnectionsPerCentre: number;
  /** Batches being stored for one connection at once. */
  maxInflightPerConnection: number;
  /** Batches being stored across all probes at once. */
  maxInflightTotal: number;
  /** Batches stored (looked up and inserted) at once; the others wait their turn (store-queue.ts). */
  maxConcurrentStores: number;
  /**
   * Longest time a batch may be expected to spend in the server, by the
   * store's measured rate; a batch expected to take longer is refused (busy):
   * the probe holding it (it keeps it until acked) is better than a queue growing here.
   */
  maxStoreWaitS: number;
  /** Sustained messages per second per connection, and the burst allowed above it. */
  messagesPerSecond: number;
  messageBurst: number;
  /** Connections not yet authenticated, from one address and in total (beyond: the upgrade is answered 429). */
  maxUnauthenticatedPerAddress: number;
  maxUnauthenticatedTotal: number;
  /** Largest message read before a connection has authenticated: a hello. Larger ones are not parsed; the connection is closed. */
  maxHelloBytes: number;
}

export const defaultCollectorLimits: CollectorLimits = {
  helloTimeoutS: 10,
  maxConnectionsPerCentre: 2,
  maxInflightPerConnection: 8,
  maxInflightTotal: 64,
  maxConcurrentStores: 4,
  maxStoreWaitS: 1.5,
  messagesPerSecond: 50,
  messageBurst: 200,
  maxUnauthenticatedPerAddress: 8,
  maxUnauthenticatedTotal: 256,
  maxHelloBytes: 8 * 1024,
};

export interface CollectorOptions {
  store: Store;
  topology: Topology;
  hub: LiveHub;
  logger: Logger;
  metrics: CollectorMetrics;
  limits?: Partial<CollectorLimits>;
  /** Failed-authentication budgets shared with the HTTP API; hellos are attempts too. */
  authLimiter?: FailedAuthLimiter;
}

export type IngestOutcome =
  | { ok: true; ack: CollectorAck }
  | { ok: false; status: number; error: CollectorError };

interface Session {
  centre: string | null;
  /** The client's address (no port): the key of its pre-authentication budget. */
  address: string;
  remote: string;
  /** Gives back this connection's place in the pre-authentication budget (once; on hello or close). */
  releasePreAuth: () => void;
  inflight: number;
  bucket: TokenBucket;
}


/** Close codes in the 4000 range: application-defined (RFC 6455 §7.4.2). */
const CLOSE_AUTH_FAILED = 4401;
const CLOSE_HELLO_TIMEOUT = 4408;
const CLOSE_TOO_MANY = 4429;
/** RFC 6455: a message too big to process. */
const CLOSE_TOO_BIG = 1009;

const httpStatus: Partial<Record<ErrorCode, number>> = {
  bad_token: 401,
  unknown_centre: 401,
  not_authenticated: 401,
  too_large: 413,
  busy: 503,
  rate_limited: 429,
  too_many_connections: 429,
  store_unavailable: 503,
  batch_conflict: 409,
};

export class Collector {
  private readonly wss: WebSocketServer;
  private readonly limits: CollectorLimits;
  private readonly inflight = new Set<Promise<unknown>>();
  /** Record ids (per centre) and batch keys of batches being stored now: a second batch holding one waits (busy). */
  private readonly recordsInFlight = new Set<string>();
  private readonly recentBatches = new Map<string, true>();
  private readonly storeQueue: StoreQueue;
  private readonly connectionsByCentre = new Map<string, number>();
  /** Connections (and upgrades in progress) that have not said a valid hello, by address. */
  private readonly unauthenticated = new Map<string, number>();
  private unauthenticatedTotal = 0;
  /** The newest authenticated connection of each centre: where throughput test requests go. */
  private readonly probeSockets = new Map<string, WebSocket>();
  private closing = false;
  readonly throughput: ThroughputCoordinator;
  /** Sends operator requests for diagnostics (stored in ClickHouse by any server) to the probes connected here. */
  readonly diagnostics: DiagnosticsDispatcher;
  /** What probes report about how they measure (datapath, reflector, engines). */
  readonly reports: ProbeReports;
  /** Marks trains measured during our own throughput tests as they are stored. */
  private readonly selfLoad: SelfLoadMarker;

  constructor(private readonly options: CollectorOptions) {
    this.limits = { ...defaultCollectorLimits, ...options.limits };
    this.selfLoad = new SelfLoadMarker(() => options.store.client, selfLoadGuardMs(options.topology.probing));
    this.storeQueue = new StoreQueue({ concurrency: this.limits.maxConcurrentStores, maxWaitS: this.limits.maxStoreWaitS });
    this.throughput = new ThroughputCoordinator(
      options.topology,
      (centre, message) => this.sendTo(centre, message),
      options.logger.child({ part: 'throughput' }),
      (ended) => {
        // Tracked like a batch, so close() waits for it: the store closes right after.
        const stored = this.storeServerFailure(ended);
        this.track(stored);
        return stored;
      },
      (record) => this.track(this.storeLoad(record)),
    );
    this.diagnostics = new DiagnosticsDispatcher({
      store: options.store, send: (centre, message) => this.sendTo(centre, message), logger: options.logger.child({ part: 'diagnostics' }),
    });
    this.reports = new ProbeReports(options.store, options.metrics, options.logger.child({ part: 'reports' }));
    this.wss = new WebSocketServer({ noServer: true, maxPayload: MAX_MESSAGE_BYTES });
    this.wss.on('connection', (ws, request) => this.accept(ws, request));
  }

  /** Hand over an HTTP upgrade request for the probe endpoint. */
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    const address = request.socket.remoteAddress ?? 'unknown';
    const fromAddress = this.unauthenticated.get(address) ?? 0;
    if (fromAddress >= this.limits.maxUnauthenticatedPerAddress || this.unauthenticatedTotal >= this.limits.maxUnauthenticatedTotal) {
      const reason = fromAddress >= this.limits.maxUnauthenticatedPerAddress
        ? `${this.limits.maxUnauthenticatedPerAddress} connections from ${address} have not said hello yet`
        : `${this.limits.maxUnauthenticatedTotal} connections have not said hello yet`;
      this.refuse(this.options.logger.child({ remote: address }), 'too_many_connections', reason);
      socket.end('HTTP/1.1 429 Too Many Requests\r\nRetry-After: 10\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n' +
        JSON.stringify({ error: 'too_many_connections', reason: `${reason}; authenticate or close them first` }));
      return;
    }
    // Counted from the upgrade on, so connections still in their handshake count too.
    this.countUnauthenticated(address, +1);
    let counted = true;
    const release = () => {
      if (counted) this.countUnauthenticated(address, -1);
      counted = false;
    };
    socket.once('close', release);
    this.wss.handleUpgrade(request, socket, head, (ws) => {
      this.wss.emit('connection', ws, request);
      const session = this.sessions.get(ws);
      if (session) session.releasePreAuth = release;
      else release();
    });
  }

  private readonly sessions = new WeakMap<WebSocket, Session>();

  private countUnauthenticated(address: string, delta: number): void {
    const n = (this.unauthenticated.get(address) ?? 0) + delta;
    if (n <= 0) this.unauthenticated.delete(address);
    else this.unauthenticated.set(address, n);
    this.unauthenticatedTotal = Math.max(0, this.unauthenticatedTotal + delta);
  }

  /** The centre a probe token belongs to (HTTP ingest), or null. Constant-time per centre. */
  centreForToken(token: string): string | null {
    return findCentreByToken(this.options.topology, token);
  }

  /** HTTP ingest: one batch message as text, from an authenticated centre. */
  async ingestText(centre: string, text: string): Promise<IngestOutcome> {
    let parsed: ReturnType<typeof parseProbeMessage>;
    try {
      parsed = parseProbeMessage(text);
    } catch (error) {
      this.options.logger.error({ err: (error as Error).message }, 'probe message handling failed');
      return this.refuse(this.options.logger, 'bad_message', 'message could not be processed');
    }
    if (!parsed.ok) return this.refuse(this.options.logger, parsed.code, parsed.error, parsed.field, parsed.batchId);
    if (parsed.message.type !== 'batch') {
      return this.refuse(this.options.logger, 'unknown_type', 'HTTP ingest takes batch messages only; say hello over WebSocket', 'type');
    }
    return this.ingestBatch(centre, parsed.message, this.options.logger);
  }

  /** Stop accepting, let in-flight inserts finish, then close every probe connection. */
  async close(): Promise<void> {
    this.reports.close();
    this.closing = true;
    await this.throughput.close();
    await this.diagnostics.close();
    await Promise.allSettled([...this.inflight]);
    for (const ws of this.wss.clients) ws.close(1001, 'server shutting down');
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }

  private accept(ws: WebSocket, request: IncomingMessage): void {
    const session: Session = {
      centre: null,
      address: request.socket.remoteAddress ?? 'unknown',
      releasePreAuth: () => {},
      remote: `${request.socket.remoteAddress}:${request.socket.remotePort}`,
      inflight: 0,
      bucket: new TokenBucket(this.limits.messagesPerSecond, this.limits.messageBurst),
    };
    this.sessions.set(ws, session);
    const log = this.options.logger.child({ remote: session.remote });
    const helloTimer = setTimeout(() => {
      if (!session.centre) {
        this.send(ws, this.refuse(log, 'not_authenticated', 'no hello received in time').error);
        ws.close(CLOSE_HELLO_TIMEOUT, 'hello timeout');
      }
    }, this.limits.helloTimeoutS * 1000);
    helloTimer.unref();
    ws.on('close', () => {
      clearTimeout(helloTimer);
      if (!session.centre) return;
      this.countConnection(session.centre, -1);
      if (this.probeSockets.get(session.centre) === ws) {
        this.probeSockets.delete(session.centre);
        this.throughput.disconnected(session.centre);
      }
    });
    ws.on('error', (error) => log.warn({ err: error.message }, 'probe connection error'));
    ws.on('message', (data, isBinary) => {
      if (!session.bucket.take()) {
        this.send(ws, this.refuse(log, 'rate_limited', `more than ${this.limits.messagesPerSecond} messages/s; slow down`).error);
        return;
      }
      if (isBinary) {
        this.send(ws, this.refuse(log, 'bad_message', 'binary frames are not accepted; send JSON text').error);
        return;
      }
      // Before a valid hello, only a hello-sized message is read: nothing unauthenticated costs a large parse.
      if (!session.centre && rawLength(data) > this.limits.maxHelloBytes) {
        this.send(ws, this.refuse(log, 'too_large', `before hello, messages are at most ${this.limits.maxHelloBytes} bytes; say hello first`).error);
        ws.close(CLOSE_TOO_BIG, 'say hello first');
        return;
      }
      try {
        this.onMessage(ws, session, log, rawText(data));
      } catch (error) {
        // Defence in depth: validation never throws by design; if it ever does, this message fails, not the server.
        log.error({ err: (error as Error).message }, 'probe message handling failed');
        this.send(ws, this.refuse(log, 'bad_message', 'message could not be processed').error);
      }
    });
  }

  private onMessage(ws: WebSocket, session: Session, log: Logger, text: string): void {
    const parsed = parseProbeMessage(text);
    if (!parsed.ok) {
      this.send(ws, this.refuse(log, parsed.code, parsed.error, parsed.field, parsed.batchId).error);
      return;
    }
    const message = parsed.message;
    if (message.type === 'hello') {
      if (session.centre) {
        this.send(ws, this.refuse(log, 'already_authenticated', `this connection already speaks for centre "${session.centre}"`, 'type').error);
        return;
      }
      // A hello is an authentication attempt: the same budgets as bearer tokens, keyed by the centre it claims.
      const limiter = this.options.authLimiter;
      const credential = `centre:${message.centre}`;
      const refusal = limiter?.check(session.address, credential);
      if (refusal) {
        this.send(ws, this.refuse(log, 'rate_limited', `too many failed hellos (${refusal.scope} budget); retry after ${refusal.retryAfterS} s`, 'token').error);
        ws.close(CLOSE_TOO_MANY, 'too many failed authentications');
        return;
      }
      const centre = this.options.topology.centre(message.centre);
      if (!centre) {
        limiter?.failed(session.address, credential);
        this.send(ws, this.refuse(log, 'unknown_centre', `unknown centre "${message.centre}"`, 'centre').error);
        ws.close(CLOSE_AUTH_FAILED, 'unknown centre');
        return;
      }
      if (!tokenMatches(message.token, centre.probe.tokenSha256s)) {
        limiter?.failed(session.address, credential);
        this.send(ws, this.refuse(log, 'bad_token', `token refused for centre "${message.centre}"`, 'token').error);
        ws.close(CLOSE_AUTH_FAILED, 'bad token');
        return;
      }
      limiter?.succeeded(session.address);
      if (message.check) {
        log.info({ centre: centre.id, version: message.version }, 'probe check: credentials accepted');
        this.send(ws, planFor(this.options.topology, centre.id));
        return;
      }
      if ((this.connectionsByCentre.get(centre.id) ?? 0) >= this.limits.maxConnectionsPerCentre) {
        this.send(ws, this.refuse(log, 'too_many_connections',
          `centre "${centre.id}" already has ${this.limits.maxConnectionsPerCentre} connections`, 'centre').error);
        ws.close(CLOSE_TOO_MANY, 'too many connections');
        return;
      }
      session.centre = centre.id;
      session.releasePreAuth();
      this.countConnection(centre.id, +1);
      this.probeSockets.set(centre.id, ws);
      this.diagnostics.probeConnected(centre.id);
      log.info({ centre: centre.id, version: message.version, datapath: message.report?.datapath }, 'probe connected');
      if (message.report) this.track(this.reports.update(centre.id, message.report));
      this.send(ws, planFor(this.options.topology, centre.id));
      return;
    }
    if (!session.centre) {
      const batchId = message.type === 'batch' ? message.batchId : undefined;
      this.send(ws, this.refuse(log, 'not_authenticated', 'say hello (centre, token, version) before sending batches', 'type', batchId).error);
      return;
    }
    if (message.type === 'throughput_done') {
      this.throughput.done(session.centre, message);
      return;
    }
    if (session.inflight >= this.limits.maxInflightPerConnection) {
      this.send(ws, this.refuse(log, 'busy', `more than ${this.limits.maxInflightPerConnection} batches in flight on this connection; wait for acks`, undefined, message.batchId).error);
      return;
    }
    session.inflight++;
    const centre = session.centre;
    void this.ingestBatch(centre, message, log).then((outcome) => {
      session.inflight--;
      this.send(ws, outcome.ok ? outcome.ack : outcome.error);
    });
  }

  private async ingestBatch(centre: string, batch: ProbeBatch, log: Logger): Promise<IngestOutcome> {
    if (this.closing) return this.refuse(log, 'busy', 'server shutting down; retry later', undefined, batch.batchId);
    if (this.inflight.size >= this.limits.maxInflightTotal) {
      return this.refuse(log, 'busy', 'collector at capacity; retry later', undefined, batch.batchId);
    }
    const records = batch.samples.length + (batch.nic?.length ?? 0) + (batch.throughput?.length ?? 0) + (batch.diagnostics?.length ?? 0);
    const turn = await this.storeQueue.run(records, () => this.validateAndStore(centre, batch, log));
    if (turn.admitted) return turn.value;
    return this.refuse(log, 'busy', `the store is behind (this batch would wait ${turn.expectedS === null ? 'behind a full queue' : `about ${turn.expectedS.toFixed(1)} s`}, ` +
      `more than ${this.limits.maxStoreWaitS} s); keep the batch and retry`, undefined, batch.batchId);
  }

  private async validateAndStore(centre: string, batch: ProbeBatch, log: Logger): Promise<IngestOutcome> {
    const window = outOfWindow(batch, Date.now() * 1000);
    if (window) return this.refuse(log, 'bad_message', window.error, window.field, batch.batchId);
    const peers = new Set(this.options.topology.peersOf(centre));
    for (const [i, t] of (batch.throughput ?? []).entries()) {
      if (!peers.has(t.dst)) {
        return this.refuse(log, 'unknown_destination', `throughput[${i}].dst: "${t.dst}" is not a centre linked to "${centre}"`, `throughput[${i}].dst`, batch.batchId);
      }
    }
    for (const [i, d] of (batch.diagnostics ?? []).entries()) {
      if (!peers.has(d.dst)) {
        return this.refuse(log, 'unknown_destination', `diagnostics[${i}].dst: "${d.dst}" is not a centre linked to "${centre}"`, `diagnostics[${i}].dst`, batch.batchId);
      }
    }
    for (const [i, n] of (batch.nic ?? []).entries()) {
      if (n.peer !== null && !peers.has(n.peer)) {
        return this.refuse(log, 'unknown_destination', `nic[${i}].peer: "${n.peer}" is not a centre linked to "${centre}"`, `nic[${i}].peer`, batch.batchId);
      }
    }
    const seen = new Set<string>();
    for (const [i, s] of batch.samples.entries()) {
      if (!peers.has(s.dst)) {
        return this.refuse(log, 'unknown_destination', `samples[${i}].dst: "${s.dst}" is not a centre linked to "${centre}"`, `samples[${i}].dst`, batch.batchId);
      }
      if (seen.has(s.trainId)) {
        return this.refuse(log, 'duplicate_train', `samples[${i}].trainId: "${s.trainId}" appears twice in this batch`, `samples[${i}].trainId`, batch.batchId);
      }
      seen.add(s.trainId);
    }
    if (batch.spool) {
      const m = this.options.metrics;
      m.spoolBatches.set({ centre }, batch.spool.batches);
      m.spoolBytes.set({ centre }, batch.spool.bytes);
      m.spoolDroppedTrains.set({ centre }, batch.spool.droppedTrains);
    }
    if (batch.report) this.track(this.reports.update(centre, batch.report));
    // A plan peer's reflector timestamping is what that peer's probe reports (the sender cannot know it).
    let rows = batch.samples.map((s) => toRow(centre, batch.batchId, s.engine === 'stamp' && (s.reflectorTimestamping ?? 'unknown') === 'unknown'
      ? { ...s, reflectorTimestamping: this.reports.reflectorTimestamping(s.dst) } : s));
    let nicRows = (batch.nic ?? []).map((n) => toNicRow(centre, batch.batchId, n));
    let throughputRows = (batch.throughput ?? []).map((t) => toThroughputRow(centre, batch.batchId, t));
    let loadRows = (batch.throughput ?? []).flatMap((t) => toLoadRow(centre, t));
    let diagnosticsRows = (batch.diagnostics ?? []).map((d) => toDiagnosticsRow(centre, batch.batchId, d));
    const key = `${centre}/${batch.batchId}`;
    const client = this.options.store.client;
    // Two batches of one centre holding the same record (or the same batch twice) are never stored side by side:
    // the second is deferred, and on its retry the lookup below finds what the first stored.
    const claims = [`batch:${key}`, ...[...rows.map((r) => r.train_id), ...nicRows.map((r) => r.sample_id),
      ...throughputRows.map((r) => r.test_id), ...diagnosticsRows.map((r) => r.run_id)].map((id) => `${centre}/${id}`)];
    if (claims.some((c) => this.recordsInFlight.has(c))) {
      return this.refuse(log, 'busy', 'a batch holding some of these records is being stored now; retry', undefined, batch.batchId);
    }
    for (const c of claims) this.recordsInFlight.add(c);
    try {
      const sha = batchContentSha256(batch);
      // A batch id is bound to its content: the same id with other content is refused, never acked and dropped.
      // Every record is looked up, for this centre only: a replay older than the deduplication window, or a
      // train id sent in two batches, is stored once. Judged by the records' own times (createdAtUs changes on resend).
      const span = batchTimeSpanUs(batch);
      let known: string[];
      let stored: Set<string>;
      try {
        // One after the other: the embedded engine's parameter binding misbehaves under concurrent bound queries.
        known = await batchContentHashes(client, centre, batch.batchId);
        stored = span
          ? await storedRecordIds(client, {
              centre, trains: rows.map((r) => r.train_id), nic: nicRows.map((r) => r.sample_id), throughput: throughputRows.map((r) => r.test_id),
              diagnostics: diagnosticsRows.map((r) => r.run_id), fromUs: span.oldestUs - 1e6, toUs: span.newestUs + 1e6,
            })
          : new Set<string>();
        // Which trains our own throughput tests loaded: decided now, for the counters (collector/self-load.ts).
        rows = await this.selfLoad.mark(rows, loadRows);
      } catch (error) {
        this.options.metrics.storeErrors.inc();
        log.error({ err: (error as Error).message, batchId: batch.batchId }, 'looking up a batch before storing it failed');
        return this.refuse(log, 'store_unavailable', 'storage failed; keep the batch and retry', undefined, batch.batchId);
      }
      if (known.length > 0 && !known.includes(sha)) {
        this.options.metrics.batchConflicts.inc({ centre });
        return this.refuse(log, 'batch_conflict',
          `batch id "${batch.batchId}" was already stored with other content; nothing of this batch was stored: send it again under a new id`,
          'batchId', batch.batchId);
      }
      if (this.closing) return this.refuse(log, 'busy', 'server shutting down; retry later', undefined, batch.batchId);
      const before = rows.length + nicRows.length + throughputRows.length + diagnosticsRows.length;
      rows = rows.filter((r) => !stored.has(r.train_id));
      nicRows = nicRows.filter((r) => !stored.has(r.sample_id));
      throughputRows = throughputRows.filter((r) => !stored.has(r.test_id));
      loadRows = loadRows.filter((r) => !stored.has(r.windowId));
      diagnosticsRows = diagnosticsRows.filter((r) => !stored.has(r.run_id));
      const replayed = before - (rows.length + nicRows.length + throughputRows.length + diagnosticsRows.length);
      if (replayed > 0) log.info({ batchId: batch.batchId, alreadyStored: replayed }, 'records already stored (a replay, or sent in another batch) are not stored again');
      // One INSERT per table, each deduplicated by a token bound to the batch's content: a retry after a partial
      // failure stores only what is missing; other content under the same id (a race between servers) is not dropped.
      const token = `${key}/${sha.slice(0, 16)}`;
      // Published now, while the INSERT runs: what is left after the lookups is exactly what this INSERT stores
      // (a conflicting id was refused above, records already stored were removed), so the only way a published
      // train ends up not stored is the INSERT failing, and then it is retracted (below).
      const published = this.publishLive(centre, batch, rows);
      const work = Promise.all([
        insertTrains(client, rows, token),
        insertNic(client, nicRows, token),
        insertThroughput(client, throughputRows, token),
        insertLoadWindows(client, loadRows, token),
        insertDiagnostics(client, diagnosticsRows, token),
      ]).then(() => insertBatchLedger(client, { centre, batch_id: batch.batchId, content_sha256: sha, stored_at: formatDateTime64(Date.now() * 1000).slice(0, 23) }, token));
      this.inflight.add(work);
      try {
        await work;
      } catch (error) {
        this.options.metrics.storeErrors.inc();
        // The probe keeps the batch and sends it again; the hub forgets these ids, so that resend publishes them anew.
        this.options.hub.retract(published);
        log.error({ err: (error as Error).message, batchId: batch.batchId }, 'storing batch failed');
        return this.refuse(log, 'store_unavailable', 'storage failed; keep the batch and retry', undefined, batch.batchId);
      } finally {
        this.inflight.delete(work);
      }
      if (loadRows.length > 0) this.selfLoad.invalidate();
      this.afterStored(centre, key, batch, rows);
      // A throughput test is reported done only once its row is stored (collector/throughput-coordinator.ts).
      if (batch.throughput?.length) this.throughput.stored(centre, batch.throughput.map((t) => t.testId));
    } finally {
      for (const c of claims) this.recordsInFlight.delete(c);
    }
    return { ok: true, ack: { type: 'ack', batchId: batch.batchId, stored: batch.samples.length + (batch.nic?.length ?? 0) + (batch.throughput?.length ?? 0) + (batch.diagnostics?.length ?? 0) } };
  }

  /** The trains this batch stores, to the live feed; returns those the hub published (it drops any it published before). */
  private publishLive(centre: string, batch: ProbeBatch, rows: readonly TrainRow[]): LiveTrain[] {
    if (rows.length === 0) return [];
    const fresh = rows.length === batch.samples.length ? null : new Set(rows.map((r) => r.train_id));
    const trains: LiveTrain[] = [];
    for (const s of batch.samples) {
      if (fresh && !fresh.has(s.trainId)) continue;
      trains.push({
        trainId: s.trainId, src: centre, dst: s.dst, engine: s.engine, flow: s.flow, startedAtUs: s.startedAtUs,
        sent: s.sent, received: s.received, rttMinUs: s.rttMinUs, rttMedianUs: s.rttMedianUs,
        rttP99Us: s.rttP99Us, rttMaxUs: s.rttMaxUs, jitterUs: s.jitterUs,
      });
    }
    return this.options.hub.publish(trains);
  }

  /** Metrics for a stored batch: only its trains stored now. */
  private afterStored(centre: string, key: string, batch: ProbeBatch, rows: TrainRow[]): void {
    if (batch.createdAtUs) this.options.metrics.ackLag.observe(Math.max(0, Date.now() / 1000 - batch.createdAtUs / 1e6));
    // A retried batch is dropped by ClickHouse's deduplication; do not count it again.
    if (!this.recentBatches.has(key)) {
      this.remember(key);
      this.options.metrics.batches.inc({ centre });
      this.options.metrics.trains.inc({ centre }, rows.length);
    }
  }

  private countConnection(centre: string, delta: number): void {
    const n = (this.connectionsByCentre.get(centre) ?? 0) + delta;
    if (n <= 0) this.connectionsByCentre.delete(centre);
    else this.connectionsByCentre.set(centre, n);
    this.options.metrics.probeConnections.set({ centre }, Math.max(0, n));
  }

  private remember(key: string): void {
    this.recentBatches.set(key, true);
    if (this.recentBatches.size > 10_000) {
      const oldest = this.recentBatches.keys().next().value;
      if (oldest !== undefined) this.recentBatches.delete(oldest);
    }
  }

  private refuse(log: Logger, code: ErrorCode, error: string, field?: string, batchId?: string): { ok: false; status: number; error: CollectorError } {
    this.options.metrics.rejected.inc({ reason: code });
    log.warn({ code, field, batchId }, `refused probe message: ${error}`);
    return {
      ok: false,
      status: httpStatus[code] ?? 400,
      error: { type: 'error', code, error, ...(field ? { field } : {}), ...(batchId ? { batchId } : {}) },
    };
  }

  /** Background store work close() waits for (the store closes right after). */
  private track(work: Promise<void>): void {
    this.inflight.add(work);
    void work.finally(() => this.inflight.delete(work));
  }

  /** The coordinator's planned or finished span of a test; a lost row is covered by the others (see load_windows). */
  private async storeLoad(r: LoadRecord): Promise<void> {
    const [a, b] = r.client < r.server ? [r.client, r.server] : [r.server, r.client];
    try {
      await insertLoadWindows(this.options.store.client, [{
        windowId: r.testId, a, b, startMs: r.startMs, endMs: r.endMs, source: r.source, trigger: r.trigger, recordedBy: `server:${hostname()}`,
      }], `load/${r.testId}/${r.source}`);
      this.selfLoad.invalidate();
    } catch (error) {
      this.options.metrics.storeErrors.inc();
      this.options.logger.error({ err: (error as Error).message, testId: r.testId }, `storing a throughput test's ${r.source} load window failed`);
    }
  }

  /** A test that failed without a probe result (absent, disconnected, expired) is still a stored failure. */
  private async storeServerFailure(test: TestStatus): Promise<void> {
    const policy = this.options.topology.probing.throughput;
    const row: ThroughputRow = {
      ts: formatDateTime64(Date.parse(test.startedAt ?? test.requestedAt) * 1000).slice(0, 23),
      src: test.client, dst: test.server, test_id: test.testId, trigger: test.trigger,
      engine: policy.engine === 'auto' ? 'iperf3' : policy.engine, engine_version: '', direction: policy.direction,
      streams: policy.streams, seconds: null, ok: false, error: `server: ${test.error ?? test.state}`,
      forward_bps: null, reverse_bps: null, retransmits: null, cpu_local_pct: null, cpu_remote_pct: null, batch_id: 'server',
    };
    try {
      await insertThroughput(this.options.store.client, [row], `server/${test.testId}`);
    } catch (error) {
      this.options.metrics.storeErrors.inc();
      this.options.logger.error({ err: (error as Error).message, testId: test.testId }, 'storing a failed throughput test failed');
    }
  }

  private sendTo(centre: string, message: ThroughputRun | DiagnoseRequest): boolean {
    const ws = this.probeSockets.get(centre);
    if (!ws || ws.readyState !== ws.OPEN) return false;
    ws.send(JSON.stringify(message));
    return true;
  }

  private send(ws: WebSocket, message: CollectorMessage): void {
    if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(message));
  }
}

/**
 * What a batch id promises stays the same on every resend: its records. The
 * fields a probe refreshes per send (createdAtUs, spool) are left out. Hashed
 * from the validated message, whose key order is the schema's, so the same
 * records hash the same however the JSON was written.
 */
export function batchContentSha256(batch: ProbeBatch): string {
  const content = JSON.stringify([batch.samples, batch.nic ?? [], batch.throughput ?? [], batch.diagnostics ?? []]);
  return createHash('sha256').update(content, 'utf8').digest('hex');
}

function rawLength(data: RawData): number {
  if (Array.isArray(data)) return data.reduce((n, b) => n + b.length, 0);
  return data instanceof ArrayBuffer ? data.byteLength : data.length;
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
    train_id: s.trainId,
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
    sender_ts: s.senderTimestamping ?? 'unknown',
    reflector_ts: s.reflectorTimestamping ?? 'unknown',
  };
}

function toNicRow(centre: string, batchId: string, n: NicSampleRecord): NicRow {
  return {
    ts: formatDateTime64(n.atUs).slice(0, 23),
    centre,
    interface: n.interface,
    peer: n.peer ?? '',
    interval_s: n.intervalS,
    speed_mbps: n.speedMbps,
    oper_state: n.operState ?? '',
    reset: n.reset,
    rx_bps: n.rxBps,
    tx_bps: n.txBps,
    rx_pps: n.rxPps,
    tx_pps: n.txPps,
    rx_errors_ps: n.rxErrorsPs,
    tx_errors_ps: n.txErrorsPs,
    rx_drops_ps: n.rxDropsPs,
    tx_drops_ps: n.txDropsPs,
    utilisation: n.utilisation,
    sample_id: n.sampleId,
    batch_id: batchId,
  };
}

/** The span a probe's test loaded its link, on the probe's clock (none from a probe too old to report its end). */
function toLoadRow(centre: string, t: ThroughputSampleRecord): LoadWindowRow[] {
  if (t.endedAtUs === undefined) return [];
  const [a, b] = centre < t.dst ? [centre, t.dst] : [t.dst, centre];
  return [{
    windowId: t.testId, a, b, startMs: t.startedAtUs / 1000, endMs: t.endedAtUs / 1000, source: 'measured', trigger: t.trigger,
    recordedBy: `probe:${centre}`,
  }];
}

function toThroughputRow(centre: string, batchId: string, t: ThroughputSampleRecord): ThroughputRow {
  return {
    ts: formatDateTime64(t.startedAtUs).slice(0, 23),
    src: centre,
    dst: t.dst,
    test_id: t.testId,
    trigger: t.trigger,
    engine: t.engine,
    engine_version: t.engineVersion ?? '',
    direction: t.direction,
    streams: t.streams,
    seconds: t.seconds,
    ok: t.ok,
    error: t.error ?? '',
    forward_bps: t.forwardBps,
    reverse_bps: t.reverseBps,
    retransmits: t.retransmits,
    cpu_local_pct: t.cpuLocalPct,
    cpu_remote_pct: t.cpuRemotePct,
    batch_id: batchId,
  };
}
