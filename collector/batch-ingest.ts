/**
 * Storing one validated batch: its turn at the store (store-queue.ts), the
 * checks that need the centre's links, one lookup of what is already stored,
 * one deduplicated INSERT per table, the live feed published while it runs
 * (retracted if it fails), and the ack. Nothing is acknowledged that the
 * store has not accepted; two batches holding the same record are never
 * stored side by side.
 */
import type { Logger } from 'pino';
import {
  insertBatchLedger, insertDiagnostics, insertLoadWindows, insertNic, insertThroughput, insertTrains, formatDateTime64, lookUpBatch,
  type Store, type TrainRow,
} from '../sql/index.js';
import { batchTimeSpanUs, outOfWindow, type ProbeBatch } from '../protocol/index.js';
import type { Topology } from '../topology/index.js';
import { batchContentSha256 } from './batch-content.js';
import { toDiagnosticsRow } from './diagnostics.js';
import type { LiveHub, LiveTrain } from './live-hub.js';
import type { CollectorMetrics } from './metrics.js';
import type { ProbeReports } from './probe-reports.js';
import { refusal, type IngestOutcome } from './refusal.js';
import { toLoadRow, toNicRow, toRow, toThroughputRow } from './rows.js';
import type { SelfLoadMarker } from './self-load.js';
import { StoreQueue } from './store-queue.js';

export interface BatchIngestDeps {
  store: Store;
  topology: Topology;
  hub: LiveHub;
  metrics: CollectorMetrics;
  reports: ProbeReports;
  selfLoad: SelfLoadMarker;
  limits: { maxConcurrentStores: number; maxStoreWaitS: number; maxInflightTotal: number };
  /** Work the collector's close() waits for (shared with its other background work: maxInflightTotal counts both). */
  inflight: Set<Promise<unknown>>;
  track(work: Promise<void>): void;
  isClosing(): boolean;
  /** Throughput test ids whose rows are now stored: a test is reported done only then (collector/throughput-coordinator.ts). */
  throughputStored(centre: string, testIds: string[]): void;
}

export class BatchIngest {
  /** Record ids (per centre) and batch keys of batches being stored now: a second batch holding one waits (busy). */
  private readonly recordsInFlight = new Set<string>();
  private readonly recentBatches = new Map<string, true>();
  private readonly storeQueue: StoreQueue;

  constructor(private readonly deps: BatchIngestDeps) {
    this.storeQueue = new StoreQueue({ concurrency: deps.limits.maxConcurrentStores, maxWaitS: deps.limits.maxStoreWaitS });
  }

  /** Whether a batch arriving now would be refused by the store queue, judged before it is read (store-queue.ts). */
  overloaded(): { expectedS: number | null } | null {
    return this.storeQueue.overloaded();
  }

  behind(expectedS: number | null): string {
    return `the store is behind (this batch would wait ${expectedS === null ? 'behind a full queue' : `about ${expectedS.toFixed(1)} s`}, ` +
      `more than ${this.deps.limits.maxStoreWaitS} s); keep the batch and retry`;
  }

  async ingest(centre: string, batch: ProbeBatch, log: Logger): Promise<IngestOutcome> {
    if (this.deps.isClosing()) return refusal(this.deps.metrics, log, 'busy', 'server shutting down; retry later', undefined, batch.batchId);
    if (this.deps.inflight.size >= this.deps.limits.maxInflightTotal) {
      return refusal(this.deps.metrics, log, 'busy', 'collector at capacity; retry later', undefined, batch.batchId);
    }
    const records = batch.samples.length + (batch.nic?.length ?? 0) + (batch.throughput?.length ?? 0) + (batch.diagnostics?.length ?? 0);
    const turn = await this.storeQueue.run(records, () => this.validateAndStore(centre, batch, log));
    if (turn.admitted) return turn.value;
    return refusal(this.deps.metrics, log, 'busy', this.behind(turn.expectedS), undefined, batch.batchId);
  }

  private async validateAndStore(centre: string, batch: ProbeBatch, log: Logger): Promise<IngestOutcome> {
    const window = outOfWindow(batch, Date.now() * 1000);
    if (window) return refusal(this.deps.metrics, log, 'bad_message', window.error, window.field, batch.batchId);
    const peers = new Set(this.deps.topology.peersOf(centre));
    for (const [i, t] of (batch.throughput ?? []).entries()) {
      if (!peers.has(t.dst)) {
        return refusal(this.deps.metrics, log, 'unknown_destination', `throughput[${i}].dst: "${t.dst}" is not a centre linked to "${centre}"`, `throughput[${i}].dst`, batch.batchId);
      }
    }
    for (const [i, d] of (batch.diagnostics ?? []).entries()) {
      if (!peers.has(d.dst)) {
        return refusal(this.deps.metrics, log, 'unknown_destination', `diagnostics[${i}].dst: "${d.dst}" is not a centre linked to "${centre}"`, `diagnostics[${i}].dst`, batch.batchId);
      }
    }
    for (const [i, n] of (batch.nic ?? []).entries()) {
      if (n.peer !== null && !peers.has(n.peer)) {
        return refusal(this.deps.metrics, log, 'unknown_destination', `nic[${i}].peer: "${n.peer}" is not a centre linked to "${centre}"`, `nic[${i}].peer`, batch.batchId);
      }
    }
    const seen = new Set<string>();
    for (const [i, s] of batch.samples.entries()) {
      if (!peers.has(s.dst)) {
        return refusal(this.deps.metrics, log, 'unknown_destination', `samples[${i}].dst: "${s.dst}" is not a centre linked to "${centre}"`, `samples[${i}].dst`, batch.batchId);
      }
      if (seen.has(s.trainId)) {
        return refusal(this.deps.metrics, log, 'duplicate_train', `samples[${i}].trainId: "${s.trainId}" appears twice in this batch`, `samples[${i}].trainId`, batch.batchId);
      }
      seen.add(s.trainId);
    }
    if (batch.spool) {
      const m = this.deps.metrics;
      m.spoolBatches.set({ centre }, batch.spool.batches);
      m.spoolBytes.set({ centre }, batch.spool.bytes);
      m.spoolDroppedTrains.set({ centre }, batch.spool.droppedTrains);
    }
    if (batch.report) this.deps.track(this.deps.reports.update(centre, batch.report));
    // A plan peer's reflector timestamping is what that peer's probe reports (the sender cannot know it).
    let rows = batch.samples.map((s) => toRow(centre, batch.batchId, s.engine === 'stamp' && (s.reflectorTimestamping ?? 'unknown') === 'unknown'
      ? { ...s, reflectorTimestamping: this.deps.reports.reflectorTimestamping(s.dst) } : s));
    let nicRows = (batch.nic ?? []).map((n) => toNicRow(centre, batch.batchId, n));
    let throughputRows = (batch.throughput ?? []).map((t) => toThroughputRow(centre, batch.batchId, t));
    let loadRows = (batch.throughput ?? []).flatMap((t) => toLoadRow(centre, t));
    let diagnosticsRows = (batch.diagnostics ?? []).map((d) => toDiagnosticsRow(centre, batch.batchId, d));
    const key = `${centre}/${batch.batchId}`;
    const client = this.deps.store.client;
    // Two batches of one centre holding the same record (or the same batch twice) are never stored side by side:
    // the second is deferred, and on its retry the lookup below finds what the first stored.
    const claims = [`batch:${key}`, ...[...rows.map((r) => r.train_id), ...nicRows.map((r) => r.sample_id),
      ...throughputRows.map((r) => r.test_id), ...diagnosticsRows.map((r) => r.run_id)].map((id) => `${centre}/${id}`)];
    if (claims.some((c) => this.recordsInFlight.has(c))) {
      return refusal(this.deps.metrics, log, 'busy', 'a batch holding some of these records is being stored now; retry', undefined, batch.batchId);
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
        // One query for both (the ledger and the records): one round trip on the way to the live feed.
        ({ contentHashes: known, stored } = await lookUpBatch(client, centre, batch.batchId, span
          ? {
              centre, trains: rows.map((r) => r.train_id), nic: nicRows.map((r) => r.sample_id), throughput: throughputRows.map((r) => r.test_id),
              diagnostics: diagnosticsRows.map((r) => r.run_id), fromUs: span.oldestUs - 1e6, toUs: span.newestUs + 1e6,
            }
          : null));
        // Which trains our own throughput tests loaded: decided now, for the counters (collector/self-load.ts).
        rows = await this.deps.selfLoad.mark(rows, loadRows);
      } catch (error) {
        this.deps.metrics.storeErrors.inc();
        log.error({ err: (error as Error).message, batchId: batch.batchId }, 'looking up a batch before storing it failed');
        return refusal(this.deps.metrics, log, 'store_unavailable', 'storage failed; keep the batch and retry', undefined, batch.batchId);
      }
      if (known.length > 0 && !known.includes(sha)) {
        this.deps.metrics.batchConflicts.inc({ centre });
        return refusal(this.deps.metrics, log, 'batch_conflict',
          `batch id "${batch.batchId}" was already stored with other content; nothing of this batch was stored: send it again under a new id`,
          'batchId', batch.batchId);
      }
      if (this.deps.isClosing()) return refusal(this.deps.metrics, log, 'busy', 'server shutting down; retry later', undefined, batch.batchId);
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
      this.deps.inflight.add(work);
      try {
        await work;
      } catch (error) {
        this.deps.metrics.storeErrors.inc();
        // The probe keeps the batch and sends it again; the hub forgets these ids, so that resend publishes them anew.
        this.deps.hub.retract(published);
        log.error({ err: (error as Error).message, batchId: batch.batchId }, 'storing batch failed');
        return refusal(this.deps.metrics, log, 'store_unavailable', 'storage failed; keep the batch and retry', undefined, batch.batchId);
      } finally {
        this.deps.inflight.delete(work);
      }
      if (loadRows.length > 0) this.deps.selfLoad.invalidate();
      this.afterStored(centre, key, batch, rows);
      if (batch.throughput?.length) this.deps.throughputStored(centre, batch.throughput.map((t) => t.testId));
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
    return this.deps.hub.publish(trains);
  }

  /** Metrics for a stored batch: only its trains stored now. */
  private afterStored(centre: string, key: string, batch: ProbeBatch, rows: TrainRow[]): void {
    if (batch.createdAtUs) this.deps.metrics.ackLag.observe(Math.max(0, Date.now() / 1000 - batch.createdAtUs / 1e6));
    // A retried batch is dropped by ClickHouse's deduplication; do not count it again.
    if (!this.recentBatches.has(key)) {
      this.remember(key);
      this.deps.metrics.batches.inc({ centre });
      this.deps.metrics.trains.inc({ centre }, rows.length);
    }
  }

  private remember(key: string): void {
    this.recentBatches.set(key, true);
    if (this.recentBatches.size > 10_000) {
      const oldest = this.recentBatches.keys().next().value;
      if (oldest !== undefined) this.recentBatches.delete(oldest);
    }
  }
}
