/**
 * Accepts probe connections (WebSocket) and HTTP batches, authenticates them,
 * holds each connection to its limits, reads and validates every message and
 * hands batches to the ingest (batch-ingest.ts: batches ready together are
 * stored together, one deduplicated INSERT per table, each acknowledged only
 * once stored, published live meanwhile).
 *
 * Under pressure it refuses rather than queues: inserts in flight are bounded
 * per connection and in total, an overloaded server refuses a batch before
 * reading it, and a refused batch stays in the probe's spool.
 */
import { hostname } from 'node:os';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { WebSocketServer, type WebSocket } from 'ws';
import { formatDateTime64, insertLoadWindows, insertThroughput, throughputTestById, type Store, type ThroughputRow } from '../sql/index.js';
import { findCentreByToken, tokenMatches } from '../topology/index.js';
import type { FailedAuthLimiter } from './auth-limits.js';
import type { LiveHub } from './live-hub.js';
import type { CollectorMetrics } from './metrics.js';
import { planFor } from './plan.js';
import { MAX_MESSAGE_BYTES, parseProbeMessage, type CollectorMessage, type ErrorCode, type ThroughputRun } from '../protocol/index.js';
import { SelfLoadMarker } from './self-load.js';
import { selfLoadGuardMs, ThroughputCoordinator, type LoadRecord, type StoredResult, type TestStatus } from './throughput-coordinator.js';
import { DiagnosticsDispatcher } from './diagnostics.js';
import { ProbeReports } from './probe-reports.js';
import type { DiagnoseRequest } from '../protocol/index.js';
import { BatchIngest, type BusyReason } from './batch-ingest.js';
import { refusal, type IngestOutcome, type Refusal } from './refusal.js';
import { peekBatchId, rawHead, rawLength, rawText } from './frames.js';
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
  /**
   * Store turns at once; batches ready while every turn is taken wait and are
   * stored together in the next one (group commit, store-queue.ts).
   */
  maxConcurrentStores: number;
  /** Records (trains, NIC samples, tests, runs) one store turn may carry: one INSERT stays bounded. */
  maxGroupTrains: number;
  /** Message bytes one store turn may carry (a batch larger alone is stored alone). */
  maxGroupBytes: number;
  /**
   * Least time between the starts of two store turns unless a group's worth
   * waits (store-queue.ts): batches arriving sooner wait for the rest of it
   * and go together. Each turn costs the engine tens of milliseconds of CPU
   * however few rows it carries; the live feed does not wait for this.
   */
  minStoreTurnIntervalMs: number;
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
  maxGroupTrains: 5000,
  maxGroupBytes: 8 * 1024 * 1024,
  minStoreTurnIntervalMs: 500,
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

export type { IngestOutcome } from './refusal.js';

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
/** How far before the server's start of a test its probe's clock may put the row (storedThroughputRow). */
const PROBE_CLOCK_MARGIN_MS = 24 * 3600 * 1000;


export class Collector {
  private readonly wss: WebSocketServer;
  private readonly limits: CollectorLimits;
  private readonly inflight = new Set<Promise<unknown>>();
  /** Stores validated batches (batch-ingest.ts). */
  private readonly batches: BatchIngest;
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
      (test) => this.storedThroughputRow(test),
    );
    this.diagnostics = new DiagnosticsDispatcher({
      store: options.store, send: (centre, message) => this.sendTo(centre, message), logger: options.logger.child({ part: 'diagnostics' }),
    });
    this.reports = new ProbeReports(options.store, options.metrics, options.logger.child({ part: 'reports' }));
    this.batches = new BatchIngest({
      store: options.store, topology: options.topology, hub: options.hub, metrics: options.metrics, reports: this.reports, selfLoad: this.selfLoad,
      limits: this.limits, inflight: this.inflight, track: (work) => this.track(work), isClosing: () => this.closing,
      throughputStored: (centre, testIds) => this.throughput.stored(centre, testIds),
    });
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
    const shed = this.shedBeforeParse(null);
    if (shed) return this.refuse(this.options.logger, 'busy', shed.error, undefined, peekBatchId(text), shed.retryAfterMs);
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
    return this.batches.ingest(centre, parsed.message, this.options.logger, Buffer.byteLength(text));
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
      // An overloaded server refuses a batch before reading it: parsing what will be refused is what overload cannot afford.
      // Only when the batch's id is at its head (where probes write it): the refusal must name it, or the probe would wait for a reply.
      if (session.centre && rawLength(data) > this.limits.maxHelloBytes) {
        const shed = this.shedBeforeParse(session);
        const batchId = shed ? peekBatchId(rawHead(data)) : undefined;
        if (shed && batchId) {
          this.send(ws, this.refuse(log, 'busy', shed.error, undefined, batchId, shed.retryAfterMs).error);
          return;
        }
      }
      try {
        this.onMessage(ws, session, log, rawText(data), rawLength(data));
      } catch (error) {
        // Defence in depth: validation never throws by design; if it ever does, this message fails, not the server.
        log.error({ err: (error as Error).message }, 'probe message handling failed');
        this.send(ws, this.refuse(log, 'bad_message', 'message could not be processed').error);
      }
    });
  }

  private onMessage(ws: WebSocket, session: Session, log: Logger, text: string, bytes: number): void {
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
    void this.batches.ingest(centre, message, log, bytes).then((outcome) => {
      session.inflight--;
      this.send(ws, outcome.ok ? outcome.ack : outcome.error);
    });
  }

  /**
   * Why a batch arriving now would be refused busy whatever it holds, or null:
   * checks that need nothing from the message, made before it is parsed.
   */
  private shedBeforeParse(session: Session | null): BusyReason | null {
    if (this.closing) return { error: 'server shutting down; retry later' };
    if (session && session.inflight >= this.limits.maxInflightPerConnection) {
      return { error: `more than ${this.limits.maxInflightPerConnection} batches in flight on this connection; wait for acks` };
    }
    if (this.inflight.size >= this.limits.maxInflightTotal) return { error: 'collector at capacity; retry later' };
    const overloaded = this.batches.overloaded();
    if (overloaded) return this.batches.behind(overloaded.expectedS);
    return null;
  }

  private countConnection(centre: string, delta: number): void {
    const n = (this.connectionsByCentre.get(centre) ?? 0) + delta;
    if (n <= 0) this.connectionsByCentre.delete(centre);
    else this.connectionsByCentre.set(centre, n);
    this.options.metrics.probeConnections.set({ centre }, Math.max(0, n));
  }

  private refuse(log: Logger, code: ErrorCode, error: string, field?: string, batchId?: string, retryAfterMs?: number): Refusal {
    return refusal(this.options.metrics, log, code, error, field, batchId, retryAfterMs);
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

  /**
   * A test's row, stored by whichever server its probe delivered it to. The
   * row's time is the probe's start by the probe's clock: a day's margin
   * before the server's start keeps a probe with a wrong clock findable
   * while the read stays within the link's recent parts.
   */
  private async storedThroughputRow(test: TestStatus): Promise<StoredResult | null> {
    const startedMs = Date.parse(test.startedAt ?? test.requestedAt);
    try {
      return await throughputTestById(this.options.store.client, test.client, test.server, test.testId, (startedMs - PROBE_CLOCK_MARGIN_MS) * 1000);
    } catch (error) {
      this.options.metrics.storeErrors.inc(); // the coordinator logs it and asks again
      throw error;
    }
  }

  /** A test that failed without a probe result (absent, expired) is still a stored failure. */
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
