/**
 * Storing validated batches: the checks that need the centre's links, after
 * which the batch's trains are published live (tentatively, see "The live
 * feed" below); a turn at the store shared with every batch ready meanwhile
 * (group commit, store-queue.ts): one lookup of what is already stored for
 * the whole group; then one deduplicated INSERT per table carrying the rows
 * of every batch looked up meanwhile, and the acks.
 * Nothing is acknowledged that the store has not accepted; two batches
 * holding the same record are never stored side by side; a batch refused for
 * its own fault is refused alone.
 */
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import {
  insertBatchLedger, insertDiagnostics, insertLoadWindows, insertNic, insertThroughput, insertTrains, formatDateTime64, lookUpBatches, trainArraysJson,
  type BatchLedgerRow, type DiagnosticsRow, type LoadWindowRow, type NicRow, type Store, type ThroughputRow, type TrainRow, type TrainRowToInsert,
} from '../sql/index.js';
import { batchTimeSpanUs, outOfWindow, type ProbeBatch, type TrainSample } from '../protocol/index.js';
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
  limits: { maxConcurrentStores: number; maxStoreWaitS: number; maxInflightTotal: number; maxGroupTrains: number; maxGroupBytes: number; minStoreTurnIntervalMs: number };
  /** Work the collector's close() waits for (shared with its other background work: maxInflightTotal counts both). */
  inflight: Set<Promise<unknown>>;
  track(work: Promise<void>): void;
  isClosing(): boolean;
  /** Throughput test ids whose rows are now stored: a test is reported done only then (collector/throughput-coordinator.ts). */
  throughputStored(centre: string, testIds: string[]): void;
}

/** A validated batch holding its claims, waiting for its group's turn at the store. */
interface ReadyBatch {
  centre: string;
  batch: ProbeBatch;
  log: Logger;
  /** centre/batchId */
  key: string;
  sha: string;
  /** This batch's own deduplication token, bound to its content. */
  token: string;
  claims: string[];
  rows: TrainRowToInsert[];
  nicRows: NicRow[];
  throughputRows: ThroughputRow[];
  loadRows: LoadWindowRow[];
  diagnosticsRows: DiagnosticsRow[];
  /** Records held (the store queue counts these) and message bytes (it bounds a group by these). */
  trains: number;
  bytes: number;
  /** Answers the probe; called once. */
  settle(outcome: IngestOutcome): void;
  /** Once looked up: whether the ledger holds this batch's content already. */
  known: boolean;
  /** Its trains on the live feed, published tentatively and not yet settled: retracted if the batch is not stored after all. */
  published: LiveTrain[];
  /** Its trains not published at validation (too old for the hub to vouch it never showed them): decided by the lookup. */
  withheld: LiveTrain[];
  answered: boolean;
}

/**
 * How far a probe's clock may run ahead of this server's beyond what its
 * batch's createdAtUs shows, µs: the time between the probe stamping a batch
 * and this server validating it (loopback or LAN, a busy event loop).
 */
const CLOCK_TOLERANCE_US = 10e6;

/** Why a batch is refused busy, and (when the store is behind) when it would be admitted. */
export interface BusyReason {
  error: string;
  retryAfterMs?: number;
}

/** The shortest and longest hold a busy refusal asks for: below the one, jitter dominates; beyond the other, a probe's own back-off ceiling. */
const RETRY_AFTER_MIN_MS = 100;
const RETRY_AFTER_MAX_MS = 30_000;

/**
 * When a batch refused because the store is behind would be admitted: the
 * queue expects to hold `expectedS` of work and admits up to `maxWaitS`, so
 * after (expectedS − maxWaitS) at the measured rate (others arriving
 * meanwhile aside: the probe adds jitter), in whole ms rounded up from µs
 * (so float noise never adds one). Undefined when the rate is not
 * measured yet (nothing to estimate from: the probe backs off as before).
 */
export function retryAfterMs(expectedS: number | null, maxWaitS: number): number | undefined {
  if (expectedS === null || !Number.isFinite(expectedS)) return undefined;
  return Math.min(RETRY_AFTER_MAX_MS, Math.max(RETRY_AFTER_MIN_MS, Math.ceil(Math.round((expectedS - maxWaitS) * 1e6) / 1000)));
}

/**
 * The deduplication token of a group's INSERTs: a group of one keeps its
 * batch's own token (so a lone batch is deduplicated exactly as before, also
 * against a second server storing the same batch at the same time); a larger
 * group's is a hash of its members' tokens, sorted, so the same members give
 * the same token whatever order they arrived in.
 *
 * Why exactly-once still holds when a retry lands in a different group (under
 * another token): every batch is looked up before it is stored (lookUpBatches:
 * each of its records, in its time span, for its centre), and records found
 * are removed from the rows to insert; the lookup sees every INSERT that
 * returned (they are synchronous), and no other batch holding one of its
 * records is stored by this server meanwhile (the claims). So a retry only
 * inserts what no earlier attempt stored, in whatever group. The token is what
 * makes the same group sent again (same members, same contents) a no-op for a
 * table its first attempt did store: the rows left after the lookup are then
 * a subset of what that attempt stored, found by the lookup, so none remain.
 * What tokens alone guarded before and groups weaken: two servers storing the
 * same batch at the very same time (a probe failing over while its first
 * server's INSERT still runs) dedup by token only when both store it in a
 * group of one; otherwise the window is one INSERT's duration.
 */
export function groupToken(memberTokens: readonly string[]): string {
  if (memberTokens.length === 1) return memberTokens[0]!;
  const hash = createHash('sha256');
  for (const token of [...memberTokens].sort()) hash.update(`${token}\n`);
  return `group/${memberTokens.length}/${hash.digest('hex').slice(0, 32)}`;
}

export class BatchIngest {
  /** Record ids (per centre) and batch keys of batches waiting or being stored now: a second batch holding one waits (busy). */
  private readonly recordsInFlight = new Set<string>();
  private readonly recentBatches = new Map<string, true>();
  private readonly storeQueue: StoreQueue<ReadyBatch>;

  constructor(private readonly deps: BatchIngestDeps) {
    this.storeQueue = new StoreQueue<ReadyBatch>({
      concurrency: deps.limits.maxConcurrentStores, maxWaitS: deps.limits.maxStoreWaitS,
      maxGroupTrains: deps.limits.maxGroupTrains, maxGroupBytes: deps.limits.maxGroupBytes, minTurnIntervalMs: deps.limits.minStoreTurnIntervalMs,
    }, { lookUp: (group) => this.lookUpGroup(group), insert: (group) => this.insertGroup(group) });
  }

  /** Whether a batch arriving now would be refused by the store queue, judged before it is read (store-queue.ts). */
  overloaded(): { expectedS: number | null } | null {
    return this.storeQueue.overloaded();
  }

  behind(expectedS: number | null): BusyReason {
    const retry = retryAfterMs(expectedS, this.deps.limits.maxStoreWaitS);
    return {
      error: `the store is behind (this batch would wait ${expectedS === null ? 'behind a full queue' : `about ${expectedS.toFixed(1)} s`}, ` +
        `more than ${this.deps.limits.maxStoreWaitS} s); keep the batch and retry${retry === undefined ? '' : ` in ${retry} ms`}`,
      ...(retry === undefined ? {} : { retryAfterMs: retry }),
    };
  }

  /** `bytes`: the message's size as received (bounds a group's INSERT); 0 when unknown. */
  ingest(centre: string, batch: ProbeBatch, log: Logger, bytes = 0): Promise<IngestOutcome> {
    if (this.deps.isClosing()) return Promise.resolve(refusal(this.deps.metrics, log, 'busy', 'server shutting down; retry later', undefined, batch.batchId));
    if (this.deps.inflight.size >= this.deps.limits.maxInflightTotal) {
      return Promise.resolve(refusal(this.deps.metrics, log, 'busy', 'collector at capacity; retry later', undefined, batch.batchId));
    }
    const records = batch.samples.length + (batch.nic?.length ?? 0) + (batch.throughput?.length ?? 0) + (batch.diagnostics?.length ?? 0);
    const refused = this.storeQueue.admit(records);
    if (refused) {
      const busy = this.behind(refused.expectedS);
      return Promise.resolve(refusal(this.deps.metrics, log, 'busy', busy.error, undefined, batch.batchId, busy.retryAfterMs));
    }
    // Admission, validation and enqueueing happen in one go (nothing awaited): what was admitted is what waits.
    return new Promise<IngestOutcome>((resolve) => {
      const ready = this.validate(centre, batch, log, records, bytes, resolve);
      if ('ok' in ready) resolve(ready);
      else this.storeQueue.enqueue(ready);
    });
  }

  /** A batch's own faults (refused alone, before it joins a group), then its rows and its claims. */
  private validate(
    centre: string, batch: ProbeBatch, log: Logger, records: number, bytes: number, settle: (outcome: IngestOutcome) => void,
  ): ReadyBatch | IngestOutcome {
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
    // Each train's delay arrays written as JSON once: the content hash and the INSERT both use that text.
    const arrays = batch.samples.map((s) => trainArraysJson(s.rttsUs, s.fwdUs, s.revUs));
    // A plan peer's reflector timestamping is what that peer's probe reports (the sender cannot know it).
    const rows = batch.samples.map((s, i) => toRow(centre, batch.batchId, s, s.engine === 'stamp' && (s.reflectorTimestamping ?? 'unknown') === 'unknown'
      ? this.deps.reports.reflectorTimestamping(s.dst) : undefined, arrays[i]));
    const nicRows = (batch.nic ?? []).map((n) => toNicRow(centre, batch.batchId, n));
    const throughputRows = (batch.throughput ?? []).map((t) => toThroughputRow(centre, batch.batchId, t));
    const loadRows = (batch.throughput ?? []).flatMap((t) => toLoadRow(centre, t));
    const diagnosticsRows = (batch.diagnostics ?? []).map((d) => toDiagnosticsRow(centre, batch.batchId, d));
    const key = `${centre}/${batch.batchId}`;
    // Two batches of one centre holding the same record (or the same batch twice) are never stored side by side
    // (nor in one group): the second is deferred, and on its retry the lookup finds what the first stored.
    const claims = [`batch:${key}`, ...[...rows.map((r) => r.train_id), ...nicRows.map((r) => r.sample_id),
      ...throughputRows.map((r) => r.test_id), ...diagnosticsRows.map((r) => r.run_id)].map((id) => `${centre}/${id}`)];
    if (claims.some((c) => this.recordsInFlight.has(c))) {
      return refusal(this.deps.metrics, log, 'busy', 'a batch holding some of these records is being stored now; retry', undefined, batch.batchId);
    }
    for (const c of claims) this.recordsInFlight.add(c);
    const sha = batchContentSha256(batch, arrays);
    const { published, withheld } = this.publishAtValidation(centre, batch);
    return {
      centre, batch, log, key, sha, token: `${key}/${sha.slice(0, 16)}`, claims, rows, nicRows, throughputRows, loadRows, diagnosticsRows,
      trains: records, bytes, settle, known: false, published, withheld, answered: false,
    };
  }

  /**
   * The live feed, at validation: a batch's trains are published now, while
   * its lookup and INSERT are still to come, so a delivery does not wait for
   * the store's turn. Why this never shows a train that is not stored, nor
   * one twice (on this server's feed; what the live feed counts as shown is
   * net of retractions):
   *
   * - Refusals before this point (bad_message, out of window,
   *   unknown_destination, duplicate_train, busy: admission or records in
   *   flight) publish nothing.
   * - Refusals after it: batch_conflict (the lookup finds the id stored with
   *   other content), store_unavailable (the lookup, an INSERT or the ledger
   *   INSERT fails), busy (the server closes meanwhile). Each retracts what
   *   the batch published and is not stored (hub.retract: the hub forgets
   *   those ids, so the probe's resend shows them again).
   * - Records the lookup finds already stored are not stored again. Of
   *   those, a train the hub knows was shown already (this server stored it,
   *   or the tail read it back from another server): the hub does not
   *   publish it twice. A train the hub does not know but that was stored
   *   before must not be shown if this server showed it before and has
   *   forgotten it: so a train is published here only if it cannot have
   *   reached this server before the hub's memory begins
   *   (hub.rememberedSinceUs()), judged by its start time on the probe's
   *   clock, corrected by how far that clock runs ahead of ours (createdAtUs,
   *   stamped at each send, against our clock) plus CLOCK_TOLERANCE_US. Then
   *   if it is found stored, this server never showed it: it stays shown
   *   (settled, once). Older trains are withheld until the lookup and shown
   *   only if they are not stored yet (replays of stored trains stay unshown:
   *   never twice wins over once). A batch without createdAtUs withholds all.
   * - A train this batch published that the tail meanwhile read back stored
   *   by another server (a probe that failed over while its first server
   *   stored the batch) is no longer retracted if this server's own INSERT
   *   fails: it is stored (hub.publish marks it so).
   *
   * Where it cannot hold: a probe whose clock runs ahead of ours by more than
   * its createdAtUs shows plus CLOCK_TOLERANCE_US (a batch stamped, then
   * delayed over 10 s before validation, or a clock stepped between sends)
   * resending a train this server showed and forgot (over 30 s before) shows
   * it a second time. Dashboards draw a retraction by reloading from the
   * store; a train retracted is gone from them until its resend is stored.
   */
  private publishAtValidation(centre: string, batch: ProbeBatch): { published: LiveTrain[]; withheld: LiveTrain[] } {
    if (batch.samples.length === 0) return { published: [], withheld: [] };
    const nowUs = Date.now() * 1000;
    const aheadUs = batch.createdAtUs === undefined ? null : Math.max(0, batch.createdAtUs - nowUs);
    const newerThanUs = aheadUs === null ? Infinity : this.deps.hub.rememberedSinceUs() + aheadUs + CLOCK_TOLERANCE_US;
    const fresh: LiveTrain[] = [];
    const withheld: LiveTrain[] = [];
    for (const s of batch.samples) (s.startedAtUs > newerThanUs ? fresh : withheld).push(liveTrain(centre, s));
    return { published: this.deps.hub.publishTentative(fresh), withheld };
  }

  /**
   * Answers a batch (once) and releases its claims. What it showed on the live
   * feed and had not settled yet is settled with it: kept when acked (stored),
   * retracted when refused, whatever the refusal (the one place every answer
   * after validation passes, so no refusal can leave a train shown).
   */
  private answer(member: ReadyBatch, outcome: IngestOutcome): void {
    if (member.answered) return;
    member.answered = true;
    if (outcome.ok) this.deps.hub.settled(member.published);
    else this.deps.hub.retract(member.published);
    member.published = [];
    for (const c of member.claims) this.recordsInFlight.delete(c);
    member.settle(outcome);
  }

  private refuse(member: ReadyBatch, code: 'busy' | 'store_unavailable', error: string): void {
    if (!member.answered) this.answer(member, refusal(this.deps.metrics, member.log, code, error, undefined, member.batch.batchId));
  }

  /** Runs a stage as work close() waits for (the store is closed only after it); a batch it left unanswered is refused. */
  private async stage<T>(group: ReadyBatch[], what: string, run: () => Promise<T>, fallback: T): Promise<T> {
    const work = run();
    this.deps.inflight.add(work);
    try {
      return await work;
    } catch (error) {
      // Defence in depth: each stage answers the batches it drops itself.
      this.deps.metrics.storeErrors.inc();
      group[0]?.log.error({ err: (error as Error).message, batches: group.length }, `${what} failed`);
      for (const m of group) {
        if (m.answered) continue;
        this.refuse(m, 'store_unavailable', 'storage failed; keep the batch and retry');
      }
      return fallback;
    } finally {
      this.deps.inflight.delete(work);
    }
  }

  /**
   * The first stage of a group's turn: one lookup for the whole group; each
   * batch refused for its own fault (a conflicting id) is answered alone; the
   * others' records already stored are dropped and the rest published live.
   * Resolves to the batches to insert.
   */
  private lookUpGroup(group: ReadyBatch[]): Promise<ReadyBatch[]> {
    return this.stage(group, 'looking up a group of batches', () => this.lookUpMembers(group), []);
  }

  private async lookUpMembers(group: ReadyBatch[]): Promise<ReadyBatch[]> {
    if (this.deps.isClosing()) {
      for (const m of group) {
        this.refuse(m, 'busy', 'server shutting down; retry later');
      }
      return [];
    }
    const client = this.deps.store.client;
    let lookups: Awaited<ReturnType<typeof lookUpBatches>>;
    try {
      // One query for the whole group (the ledger and the records): one round trip on the way to the live feed.
      // Every record is looked up, for its own centre only: a replay older than the deduplication window, a train
      // id sent in two batches, or a retry in another group, is stored once. Judged by the records' own times
      // (createdAtUs changes on resend).
      lookups = await lookUpBatches(client, group.map((m) => {
        const span = batchTimeSpanUs(m.batch);
        return {
          centre: m.centre, batchId: m.batch.batchId,
          ids: span ? {
            trains: m.rows.map((r) => r.train_id), nic: m.nicRows.map((r) => r.sample_id), throughput: m.throughputRows.map((r) => r.test_id),
            diagnostics: m.diagnosticsRows.map((r) => r.run_id), fromUs: span.oldestUs - 1e6, toUs: span.newestUs + 1e6,
          } : null,
        };
      }));
      // Which trains our own throughput tests loaded: decided now, for the counters (collector/self-load.ts); in place.
      await this.deps.selfLoad.mark(group.flatMap((m) => m.rows), group.flatMap((m) => m.loadRows));
    } catch (error) {
      this.deps.metrics.storeErrors.inc();
      for (const m of group) {
        m.log.error({ err: (error as Error).message, batchId: m.batch.batchId }, 'looking up a batch before storing it failed');
        this.refuse(m, 'store_unavailable', 'storage failed; keep the batch and retry');
      }
      return [];
    }
    const kept: ReadyBatch[] = [];
    for (const [i, m] of group.entries()) {
      const { contentHashes: known, stored } = lookups[i]!;
      // A batch id is bound to its content: the same id with other content is refused (alone), never acked and dropped.
      if (known.length > 0 && !known.includes(m.sha)) {
        // Everything it showed is taken back (answer()), trains found stored too: what is stored under their ids may
        // be the other content (a dashboard redraws from the store on a retraction).
        this.deps.metrics.batchConflicts.inc({ centre: m.centre });
        this.answer(m, refusal(this.deps.metrics, m.log, 'batch_conflict',
          `batch id "${m.batch.batchId}" was already stored with other content; nothing of this batch was stored: send it again under a new id`,
          'batchId', m.batch.batchId));
        continue;
      }
      const before = m.rows.length + m.nicRows.length + m.throughputRows.length + m.diagnosticsRows.length;
      m.rows = m.rows.filter((r) => !stored.has(r.train_id));
      m.nicRows = m.nicRows.filter((r) => !stored.has(r.sample_id));
      m.throughputRows = m.throughputRows.filter((r) => !stored.has(r.test_id));
      m.loadRows = m.loadRows.filter((r) => !stored.has(r.windowId));
      m.diagnosticsRows = m.diagnosticsRows.filter((r) => !stored.has(r.run_id));
      const replayed = before - (m.rows.length + m.nicRows.length + m.throughputRows.length + m.diagnosticsRows.length);
      if (replayed > 0) m.log.info({ batchId: m.batch.batchId, alreadyStored: replayed }, 'records already stored (a replay, or sent in another batch) are not stored again');
      m.known = known.includes(m.sha);
      // Trains published at validation and found stored: this server never showed them (publishAtValidation), they
      // are stored, so they stay shown whatever becomes of this batch.
      if (m.published.some((t) => stored.has(t.trainId))) {
        this.deps.hub.settled(m.published.filter((t) => stored.has(t.trainId)));
        m.published = m.published.filter((t) => !stored.has(t.trainId));
      }
      // Trains withheld at validation that the INSERT will store: published now, before it (tentatively: retracted if
      // it fails). Those found stored stay unshown: this server may have shown them before and forgotten it.
      if (m.withheld.length > 0) {
        m.published.push(...this.deps.hub.publishTentative(m.withheld.filter((t) => !stored.has(t.trainId))));
        m.withheld = [];
      }
      kept.push(m);
    }
    return kept;
  }

  /**
   * The second stage: one INSERT per table carrying every row of the batches
   * looked up meanwhile, then one ledger INSERT; each batch acked once they
   * all returned, or every one refused (and retracted) if any failed.
   */
  private insertGroup(group: ReadyBatch[]): Promise<void> {
    this.deps.metrics.storeGroupBatches.observe(group.length);
    return this.stage(group, 'storing a group of batches', () => this.insertMembers(group), undefined);
  }

  private async insertMembers(members: ReadyBatch[]): Promise<void> {
    if (this.deps.isClosing()) {
      for (const m of members) {
        this.refuse(m, 'busy', 'server shutting down; retry later');
      }
      return;
    }
    const client = this.deps.store.client;
    // One INSERT per table for the whole group, deduplicated by the group's token (groupToken: why a retry in
    // another group is still stored once); then one ledger INSERT, for the batches whose id it does not hold yet.
    const token = groupToken(members.map((m) => m.token));
    const storedAt = formatDateTime64(Date.now() * 1000).slice(0, 23);
    const ledger: BatchLedgerRow[] = members.filter((m) => !m.known)
      .map((m) => ({ centre: m.centre, batch_id: m.batch.batchId, content_sha256: m.sha, stored_at: storedAt }));
    // Every table's INSERT is awaited, failed or not, before any member is answered: a member's claims are
    // released only then, so its resend is never looked up while part of this group is still being written.
    const tables = await Promise.allSettled([
      insertTrains(client, members.flatMap((m) => m.rows), token),
      insertNic(client, members.flatMap((m) => m.nicRows), token),
      insertThroughput(client, members.flatMap((m) => m.throughputRows), token),
      insertLoadWindows(client, members.flatMap((m) => m.loadRows), token),
      insertDiagnostics(client, members.flatMap((m) => m.diagnosticsRows), token),
    ]);
    try {
      const failed = tables.find((t) => t.status === 'rejected');
      if (failed) throw failed.reason;
      await insertBatchLedger(client, ledger, token);
    } catch (error) {
      this.deps.metrics.storeErrors.inc();
      for (const m of members) {
        // The probe keeps the batch and sends it again; answer() retracts what it showed and the hub forgets those
        // ids, so that resend publishes them anew.
        m.log.error({ err: (error as Error).message, batchId: m.batch.batchId, group: members.length }, 'storing batch failed');
        this.refuse(m, 'store_unavailable', 'storage failed; keep the batch and retry');
      }
      return;
    }
    if (members.some((m) => m.loadRows.length > 0)) this.deps.selfLoad.invalidate();
    for (const m of members) {
      this.afterStored(m.centre, m.key, m.batch, m.rows);
      if (m.batch.throughput?.length) this.deps.throughputStored(m.centre, m.batch.throughput.map((t) => t.testId));
      const b = m.batch;
      this.answer(m, { ok: true, ack: { type: 'ack', batchId: b.batchId, stored: b.samples.length + (b.nic?.length ?? 0) + (b.throughput?.length ?? 0) + (b.diagnostics?.length ?? 0) } });
    }
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

/** A sample as the live feed shows it. */
function liveTrain(centre: string, s: TrainSample): LiveTrain {
  return {
    trainId: s.trainId, src: centre, dst: s.dst, engine: s.engine, flow: s.flow, startedAtUs: s.startedAtUs,
    sent: s.sent, received: s.received, rttMinUs: s.rttMinUs, rttMedianUs: s.rttMedianUs,
    rttP99Us: s.rttP99Us, rttMaxUs: s.rttMaxUs, jitterUs: s.jitterUs,
  };
}
