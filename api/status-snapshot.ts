/**
 * The live status of every direction, judged once a second and served from
 * memory: /v1/status (and so the dashboard's matrix) never queries raw rows
 * per request.
 *
 * Design (issue 14; figures in `npm run bench -- queries`):
 *
 * - One judgement per whole second `asOf`, a little behind the clock
 *   (SETTLE_MS): the window (asOf − 60 s, asOf] of path_recent, judged by the
 *   same SQL and the same verdict code as before (sql/latency.ts
 *   latestPathStatus with that instant, api/path-status.ts judgePaths), so the
 *   verdicts and figures are those of a request at that instant: exact p50/p99
 *   over the window's packets, loss, jitter, one-way, our own load left out,
 *   stale/nodata, engineUnavailable.
 * - Several servers over one store agree: each answer carries its `asOf`, and
 *   two servers' answers for the same asOf are the same query over the same
 *   rows (a train stored after one server judged a second and before the
 *   other did is the only difference, as it was between two requests before).
 *   A plain TTL cache was rejected: two servers then judged different
 *   instants and disagreed at one moment.
 * - Refreshed in the background only while somebody reads: the first read
 *   after a quiet spell judges the current second itself (its reader waits one
 *   query, as every reader did before); then a refresh per second, for
 *   IDLE_MS after the last read, then nothing.
 * - A reader gets the whole snapshot or the previous one: a snapshot is built
 *   aside (paths, probes, the response body serialised once) and published
 *   by one assignment.
 * - A refresh that fails is reported, never hidden behind an old answer: while
 *   the newest refresh failed, readers get StatusUnavailableError (503
 *   store_unavailable, with the second that could not be judged); while
 *   refreshes run late, the answer says its asOf, and one more than
 *   MAX_LAG_MS behind the clock is refused the same way.
 *
 * Measured against the alternatives (bench queries): a ClickHouse aggregating
 * table of per-second quantilesExact states holds every RTT again (the state
 * of exact quantiles is the array of values), so it is path_recent with a
 * merge step, not a smaller read; per-direction windows fed by the live hub
 * would be judged on what each server happened to receive, not on the store.
 */
import type { Logger } from 'pino';
import type { Topology } from '../topology/index.js';
import { selfLoadGuardMs } from '../collector/index.js';
import { latestPathStatus, type Store } from '../sql/index.js';
import type { PathStatus, ProbeStatus, StatusResponse } from './contract.js';
import { judgePaths, probeStatuses, STALE_AFTER_S, STATUS_WINDOW_S } from './path-status.js';

/** How far behind the clock the judged second lies, so trains measured just before it have been stored. */
export const SETTLE_MS = 1000;
/** How long after the last read the snapshot keeps refreshing. */
export const IDLE_MS = 10_000;
/** The oldest judged second served while refreshes run late (a store that hangs); older is store_unavailable. */
export const MAX_LAG_MS = 10_000;

/** One judged second, immutable once published. */
export interface StatusSnapshot {
  /** The instant judged (a whole second, Unix ms): the window is (asOf − windowS, asOf]. */
  asOfMs: number;
  paths: readonly PathStatus[];
  probes: readonly ProbeStatus[];
  /** The response body without generatedAt, serialised once per snapshot (`{"asOf":…}`). */
  bodyJson: string;
  /** How long the refresh took, ms (queries and judging). */
  refreshMs: number;
}

export class StatusUnavailableError extends Error {
  constructor(readonly asOfMs: number, cause: Error) {
    super(`the status at ${new Date(asOfMs).toISOString()} could not be judged: ${cause.message.split('\n')[0]}`, { cause });
  }
}

export interface StatusSnapshotOptions {
  store: Store;
  topology: Topology;
  logger?: Logger;
  /** The clock (Unix ms); tests pass their own. */
  now?: () => number;
  settleMs?: number;
  idleMs?: number;
  maxLagMs?: number;
}

/** The whole second judged at `nowMs`: SETTLE_MS behind, rounded down. */
export function asOfAt(nowMs: number, settleMs = SETTLE_MS): number {
  return Math.floor((nowMs - settleMs) / 1000) * 1000;
}

export class StatusSnapshots {
  private current: StatusSnapshot | null = null;
  private failure: StatusUnavailableError | null = null;
  private inFlight: Promise<void> | null = null;
  /** The refresh a cold read started, which every reader until it ends waits for. */
  private cold: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private lastReadMs = -Infinity;
  private stopped = false;
  private readonly now: () => number;
  private readonly settleMs: number;
  private readonly idleMs: number;
  private readonly maxLagMs: number;
  /** Refreshes run, and how long each took: what the bench prints against directions. */
  readonly stats = { refreshes: 0, failures: 0, lastRefreshMs: 0 };

  constructor(private readonly options: StatusSnapshotOptions) {
    this.now = options.now ?? Date.now;
    this.settleMs = options.settleMs ?? SETTLE_MS;
    this.idleMs = options.idleMs ?? IDLE_MS;
    this.maxLagMs = options.maxLagMs ?? MAX_LAG_MS;
  }

  /** The newest published snapshot, if any (no refresh, no check of its age). */
  get latest(): StatusSnapshot | null {
    return this.current;
  }

  /** Whether the background refresh is scheduled (someone read within IDLE_MS). */
  get refreshing(): boolean {
    return this.timer !== null || this.inFlight !== null;
  }

  /**
   * The newest judged second. Cold (nobody read lately): judges the current
   * second first. Throws StatusUnavailableError while the newest refresh failed.
   */
  async read(): Promise<StatusSnapshot> {
    const nowMs = this.now();
    const due = asOfAt(nowMs, this.settleMs);
    if (this.stopped) throw new StatusUnavailableError(due, new Error('the server is closing'));
    this.lastReadMs = nowMs;
    if (!this.refreshing) {
      // Cold: judge this second now; readers arriving meanwhile wait for the same judgement, not the second before the pause.
      const cold = this.refresh(due).finally(() => {
        if (this.cold === cold) this.cold = null;
      });
      this.cold = cold;
      await cold;
    } else if (this.cold) {
      await this.cold;
    } else if (this.inFlight && !this.failure && (!this.current || due - this.current.asOfMs > this.maxLagMs)) {
      await this.inFlight; // nothing recent enough to serve: wait for the judgement under way
    }
    if (this.failure) throw this.failure;
    const snapshot = this.current!;
    if (due - snapshot.asOfMs > this.maxLagMs) {
      throw new StatusUnavailableError(due, new Error(`no second judged since ${new Date(snapshot.asOfMs).toISOString()}: the refresh is taking too long`));
    }
    return snapshot;
  }

  /** The response body for one request: the snapshot's serialised body with this request's generatedAt. */
  static responseBody(snapshot: StatusSnapshot, generatedAtMs: number): string {
    return `{"generatedAt":${JSON.stringify(new Date(generatedAtMs).toISOString())},${snapshot.bodyJson.slice(1)}`;
  }

  /** Stop refreshing (server close); an in-flight refresh is awaited. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.inFlight?.catch(() => undefined);
  }

  /** Judge `asOfMs` (one refresh at a time: a second asked while another runs waits for it, then judges its own). */
  private async refresh(asOfMs: number): Promise<void> {
    while (this.inFlight) await this.inFlight;
    if (this.current && this.current.asOfMs >= asOfMs && !this.failure) {
      this.schedule(); // judged already (a timer woken early by a clock step): keep the loop going
      return;
    }
    const run = this.judge(asOfMs).then(
      (snapshot) => {
        this.stats.refreshes++;
        this.stats.lastRefreshMs = snapshot.refreshMs;
        this.current = snapshot;
        this.failure = null;
      },
      (error: Error) => {
        this.stats.failures++;
        this.failure = new StatusUnavailableError(asOfMs, error);
        this.options.logger?.warn({ err: error.message, asOf: new Date(asOfMs).toISOString() }, 'status refresh failed');
      },
    ).finally(() => {
      this.inFlight = null;
      this.schedule();
    });
    this.inFlight = run;
    await run;
  }

  /** The next refresh when the next second is due, while someone read within idleMs. */
  private schedule(): void {
    if (this.stopped || this.timer) return;
    const nowMs = this.now();
    if (nowMs - this.lastReadMs > this.idleMs) return;
    const judged = this.failure ? this.failure.asOfMs : this.current?.asOfMs ?? asOfAt(nowMs, this.settleMs);
    const nextAsOf = Math.max(judged + 1000, asOfAt(nowMs, this.settleMs));
    const delay = Math.max(0, nextAsOf + this.settleMs - nowMs);
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.refresh(asOfAt(this.now(), this.settleMs));
    }, delay);
    this.timer.unref();
  }

  /** One refresh's work for `asOfMs`, not published: the store's judgement of that second, serialised (the bench times it). */
  async judge(asOfMs: number): Promise<StatusSnapshot> {
    const started = performance.now();
    const { store, topology } = this.options;
    const [rows, probes] = await Promise.all([
      latestPathStatus(store.client, STATUS_WINDOW_S, selfLoadGuardMs(topology.probing), asOfMs * 1000), probeStatuses(store, topology),
    ]);
    const paths = judgePaths(topology, rows, probes, asOfMs * 1000);
    const body: Omit<StatusResponse, 'generatedAt'> = {
      asOf: new Date(asOfMs).toISOString(), windowS: STATUS_WINDOW_S, staleAfterS: STALE_AFTER_S, paths, probes,
    };
    const bodyJson = JSON.stringify(body);
    return Object.freeze({ asOfMs, paths: Object.freeze(paths), probes: Object.freeze(probes), bodyJson, refreshMs: performance.now() - started });
  }
}
