/**
 * Arbitrates throughput tests across all probes (as perfSONAR's scheduler
 * does): a test loads a production link, so no two tests ever share a link or
 * an endpoint at once. Requests queue in order; a test starts when both of its
 * centres are idle; the client probe reports `throughput_done`, or a guard
 * timer frees the centres if it never does. Scheduled rounds are spread over
 * a window with random offsets so links are not all tested at the same instant.
 *
 * A test loads the link it measures, so the coordinator records when (the
 * `recordLoad` sink writes ClickHouse's load_windows, migration 0009): the
 * planned window before it asks the probe to start, and the finished one when
 * the probe reports back. Latency and loss in those windows are then our own
 * doing and kept out of the SLA verdicts and the alerts.
 *
 * A test is `done` (or `failed`, as the probe reports) only once its row is
 * stored: the probe's `throughput_done` comes before the batch that carries
 * the row, so until the collector reports that batch stored (`stored`) the
 * test stays `running`, and whoever reads `done` finds the row in the history.
 * A failure the server decides shows once its failure row is stored, too.
 *
 * Several servers share one store, and a probe may move to another of them
 * at any time (the one it used restarts, or its connection drops): the row
 * then comes in through that server, and this one never hears of it from its
 * own ingest. So while a test waits for its row, the store is asked too
 * (`lookUpRow`, by test id): every ROW_CHECK_MS, on each status read
 * (`statusNow`), and once more before the test is failed for a missing row.
 * A row found there ends the test as the row says.
 */
import { randomUUID } from 'node:crypto';
import cron, { type ScheduledTask } from 'node-cron';
import type { Logger } from 'pino';
import { THROUGHPUT_KILL_SLACK_MS, type ThroughputDone, type ThroughputRun } from '../protocol/index.js';
import type { ProbingPolicy, Topology } from '../topology/index.js';

export type TestState = 'queued' | 'running' | 'done' | 'failed' | 'expired';

export interface TestStatus {
  testId: string;
  /** The centre that runs the client (it stores the result). */
  client: string;
  server: string;
  trigger: 'schedule' | 'operator';
  state: TestState;
  requestedAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  error: string | null;
  /** Goodput client → server and back, bit/s, as the probe reported it (set once its row is stored). */
  forwardBps: number | null;
  reverseBps: number | null;
}

/**
 * Stores a failure the server decides (probe absent, test expired): `ended`
 * is the test as it ended. The test shows that end once this settles.
 */
export type ServerFailureSink = (ended: TestStatus) => Promise<void> | void;

/** What the store holds of a test's result. */
export interface StoredResult {
  ok: boolean;
  error: string | null;
  forwardBps: number | null;
  reverseBps: number | null;
}

/**
 * The test's row in the store, whichever server stored it; null when none is
 * stored yet. Rejects when the store cannot be read.
 */
export type StoredRowLookup = (test: TestStatus) => Promise<StoredResult | null>;

/** Sends a message to a centre's connected probe; false when it is not connected. */
export type ProbeSender = (centre: string, message: ThroughputRun) => boolean;

/** A test's span as the coordinator knows it: planned (before it starts) or finished (the probe reported back). */
export interface LoadRecord {
  testId: string;
  client: string;
  server: string;
  trigger: 'schedule' | 'operator';
  startMs: number;
  endMs: number;
  source: 'planned' | 'finished';
}

export type LoadRecorder = (record: LoadRecord) => void;

/**
 * The longest a test may load its link when nobody hears back: its planned
 * duration and the slack after which its probe kills it.
 */
export function plannedLoadMs(policy: ProbingPolicy['throughput']): number {
  return (policy.seconds + policy.omitSeconds) * 1000 + THROUGHPUT_KILL_SLACK_MS;
}

/**
 * Guard added on both sides of a load window before latency and loss are
 * left out: the longest train of the plan (a train that began just before
 * the test ran into it; minute and alert buckets hold trains by their start)
 * plus one second (queues draining after the test, and the clocks of the
 * server and both probes agreeing only to within that when synchronised),
 * rounded up to whole seconds.
 */
export function selfLoadGuardMs(probing: ProbingPolicy): number {
  const span = (t: { count: number; intervalMs: number; timeoutMs: number }) => t.count * t.intervalMs + t.timeoutMs;
  const longest = Math.max(span(probing.stamp), probing.icmp.enabled ? span(probing.icmp) : 0);
  return Math.ceil((longest + 1000) / 1000) * 1000;
}

const GUARD_SLACK_MS = 30_000;
const KEEP_FINISHED = 1000;
/**
 * How long after the probe's report its row may take to be stored: its next
 * batch (batches go every few seconds; a store outage is retried) with room
 * to spare. Past it the test is failed, saying the row never came.
 */
export const ROW_WAIT_MS = 60_000;
/**
 * How often the store is asked for the row of a test waiting for it: about
 * as often as a probe sends batches, so a row stored through another server
 * ends the test here soon after, and the centres it holds are freed.
 */
export const ROW_CHECK_MS = 5_000;
/** Test ids whose rows were stored before the probe's report arrived, kept for this many tests. */
const KEEP_EARLY_ROWS = 1000;

/** What the probe reported, held until its row is stored. */
interface Reported {
  state: 'done' | 'failed';
  error: string | null;
  forwardBps: number | null;
  reverseBps: number | null;
}

/** A running test whose row is awaited: its probe reported here, or went away before it could. */
interface RowWait {
  /** What the probe reported here; null when it went away before reporting. */
  report: Reported | null;
  /** Why the row is awaited, the start of the failure message should it not come. */
  reason: string;
  /** The periodic store check. */
  timer: NodeJS.Timeout;
  /** A store check in flight (one at a time per test). */
  checking: Promise<void> | null;
  /** The error of the newest store check, null once a check was answered. */
  storeError: string | null;
}

export class ThroughputCoordinator {
  private readonly queue: TestStatus[] = [];
  private readonly tests = new Map<string, TestStatus>();
  private readonly busy = new Set<string>();
  private readonly guards = new Map<string, NodeJS.Timeout>();
  private readonly spreadTimers = new Set<NodeJS.Timeout>();
  /** Running tests waiting for their row to be stored. */
  private readonly waiting = new Map<string, RowWait>();
  /** Rows stored before their probe reported (a batch sent between the record and the report). */
  private readonly rowsStoredEarly = new Set<string>();
  private schedule: ScheduledTask | null = null;
  /** Set by close(): a store lookup answering after it ends nothing. */
  private closed = false;

  constructor(
    private readonly topology: Topology,
    private readonly send: ProbeSender,
    private readonly logger: Logger,
    private readonly onServerFailure: ServerFailureSink = () => undefined,
    private readonly recordLoad: LoadRecorder = () => undefined,
    /** Without it only this server's own ingest (`stored`) can end a test. */
    private readonly lookUpRow: StoredRowLookup | null = null,
  ) {}

  /**
   * Queue a test of the link between x and y; the link's lower id runs the
   * client. A link already queued or under test is not queued again: the
   * pending test's status is returned instead (a test loads a production link).
   */
  request(x: string, y: string, trigger: 'schedule' | 'operator'): TestStatus {
    const link = this.topology.linkBetween(x, y);
    if (!link) throw new Error(`no link between "${x}" and "${y}"`);
    const pending = [...this.tests.values()].find(
      (t) => t.client === link.a && t.server === link.b && (t.state === 'queued' || t.state === 'running'),
    );
    if (pending) return pending;
    const status: TestStatus = {
      testId: `tp-${randomUUID()}`, client: link.a, server: link.b, trigger, state: 'queued',
      requestedAt: new Date().toISOString(), startedAt: null, finishedAt: null, error: null,
      forwardBps: null, reverseBps: null,
    };
    this.tests.set(status.testId, status);
    this.queue.push(status);
    this.pump();
    return status;
  }

  status(testId: string): TestStatus | undefined {
    return this.tests.get(testId);
  }

  /**
   * The test's status, the store asked first when the test waits for its
   * row (it may have come in through another server). A store that cannot
   * be read leaves the status as it was.
   */
  async statusNow(testId: string): Promise<TestStatus | undefined> {
    const test = this.tests.get(testId);
    if (test && this.waiting.has(testId)) await this.checkStore(test);
    return test;
  }

  list(): TestStatus[] {
    return [...this.tests.values()];
  }

  /**
   * The client probe finished a test it was asked to run. The test stays
   * `running` until its row is stored (`stored`, or found in the store), or
   * fails after ROW_WAIT_MS.
   */
  done(centre: string, message: ThroughputDone): void {
    const test = this.tests.get(message.testId);
    if (!test || test.client !== centre || test.state !== 'running' || this.waiting.get(test.testId)?.report) return;
    this.recordLoad({
      testId: test.testId, client: test.client, server: test.server, trigger: test.trigger,
      startMs: Date.parse(test.startedAt!), endMs: Date.now(), source: 'finished',
    });
    const report: Reported = {
      state: message.ok ? 'done' : 'failed',
      error: message.ok ? null : (message.error ?? 'the probe reported a failure'),
      forwardBps: message.forwardBps ?? null,
      reverseBps: message.reverseBps ?? null,
    };
    if (this.rowsStoredEarly.delete(test.testId)) {
      this.finishAsReported(test, report);
      return;
    }
    // The probe-silence guard is replaced by the wait for the row.
    this.awaitRow(test, report, report.state === 'done' ? 'the probe reported a result' : report.error!);
    this.setGuard(test, ROW_WAIT_MS, () => void this.endRowWait(test));
  }

  /** The collector stored a batch carrying these tests' rows (also when they were stored before: a replay). */
  stored(centre: string, testIds: readonly string[]): void {
    for (const id of testIds) {
      const test = this.tests.get(id);
      if (!test || test.client !== centre || test.state !== 'running') continue;
      const wait = this.waiting.get(id);
      if (wait?.report) {
        this.finishAsReported(test, wait.report);
        continue;
      }
      this.rowsStoredEarly.add(id);
      if (this.rowsStoredEarly.size > KEEP_EARLY_ROWS) this.rowsStoredEarly.delete(this.rowsStoredEarly.values().next().value!);
      // Its probe went away and came back with the row, its report lost: the stored row says how the test ended.
      if (wait) void this.checkStore(test);
    }
  }

  /**
   * A probe went away (its connection to this server closed). A running test
   * is not failed for it: the probe's test does not stop with its connection
   * (probes/engines/throughput/registration.ts runs it to its end, or kills it
   * at its planned length plus THROUGHPUT_KILL_SLACK_MS), spools the row and
   * sends it to whichever server it reaches next; only its `throughput_done`
   * is lost if no connection is up when it finishes. Failing the test now
   * would be a wrong verdict, and its failure row would stand in the store
   * for the probe's real one (the ingest drops a test id already stored). So
   * the test keeps its centres (the link may still be loaded) and waits for
   * its row: the store is checked from now on, and past the probe-silence
   * guard the row has ROW_WAIT_MS more; if it never comes the test ends
   * `failed` saying so, with no failure row (the probe may still deliver its
   * own). A test the probe aborted ends as its row says (ok = 0 and why).
   *
   * The test's server end going away needs nothing: the client still runs
   * and reports, and if the server end's probe really died, the client
   * reports the test failed (connection refused or cut).
   */
  disconnected(centre: string): void {
    for (const test of this.tests.values()) {
      if (test.state === 'running' && test.client === centre && !this.waiting.has(test.testId)) {
        this.awaitRow(test, null, `probe "${centre}" disconnected during the test`);
      }
    }
  }

  /** Start the scheduled rounds from the topology (if throughput testing is enabled). */
  start(): void {
    const policy = this.topology.probing.throughput;
    if (!policy.enabled) return;
    this.schedule = cron.schedule(policy.schedule, () => this.round(), { name: 'throughput-round', noOverlap: true });
  }

  /** One scheduled round: every link once, each at a random offset within the spread window. */
  round(): void {
    const spreadMs = this.topology.probing.throughput.spreadS * 1000;
    for (const link of this.topology.links) {
      const timer = setTimeout(() => {
        this.spreadTimers.delete(timer);
        this.request(link.a, link.b, 'schedule');
      }, Math.random() * spreadMs);
      this.spreadTimers.add(timer);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.schedule?.destroy();
    for (const t of [...this.spreadTimers, ...this.guards.values()]) clearTimeout(t);
    for (const wait of this.waiting.values()) clearInterval(wait.timer);
    this.spreadTimers.clear();
    this.guards.clear();
    this.waiting.clear();
  }

  private pump(): void {
    for (let i = 0; i < this.queue.length; ) {
      const test = this.queue[i]!;
      if (this.busy.has(test.client) || this.busy.has(test.server)) {
        i++;
        continue;
      }
      this.queue.splice(i, 1);
      this.begin(test);
    }
  }

  private begin(test: TestStatus): void {
    const policy = this.topology.probing.throughput;
    const server = this.topology.centre(test.server)!;
    const client = this.topology.centre(test.client)!;
    const startMs = Date.now();
    const sent = this.send(test.client, {
      type: 'throughput_run', testId: test.testId, trigger: test.trigger, dst: test.server,
      host: server.probe.host, port: server.probe.throughputPort, engine: policy.engine,
      seconds: policy.seconds, omitSeconds: policy.omitSeconds, streams: policy.streams, direction: policy.direction,
      sourceAddress: client.probe.sourceAddress,
    });
    if (!sent) {
      this.failByServer(test, 'failed', `probe "${test.client}" is not connected`);
      return;
    }
    // Recorded as the probe is asked (its trains reach the store in later batches),
    // so trains taken during the test are known as ours while it runs, and even
    // if no result ever comes back.
    this.recordLoad({
      testId: test.testId, client: test.client, server: test.server, trigger: test.trigger,
      startMs, endMs: startMs + plannedLoadMs(policy), source: 'planned',
    });
    test.state = 'running';
    test.startedAt = new Date(startMs).toISOString();
    this.busy.add(test.client);
    this.busy.add(test.server);
    const guardMs = (policy.seconds + policy.omitSeconds) * 1000 + GUARD_SLACK_MS;
    this.setGuard(test, guardMs, () => {
      // A probe that went away mid-test may still deliver its row, through any server: it gets the row's wait.
      if (this.waiting.has(test.testId)) this.setGuard(test, ROW_WAIT_MS, () => void this.endRowWait(test));
      else void this.expire(test, `no result within ${guardMs / 1000} s`);
    });
    this.logger.info({ testId: test.testId, client: test.client, server: test.server, trigger: test.trigger }, 'throughput test started');
  }

  /** The test waits for its row from now on; the store is asked for it every ROW_CHECK_MS meanwhile. */
  private awaitRow(test: TestStatus, report: Reported | null, reason: string): void {
    const wait = this.waiting.get(test.testId);
    if (wait) {
      // Its probe went away, came back here and reported after all.
      Object.assign(wait, { report, reason });
      return;
    }
    const timer = setInterval(() => void this.checkStore(test), ROW_CHECK_MS);
    timer.unref();
    this.waiting.set(test.testId, { report, reason, timer, checking: null, storeError: null });
  }

  /**
   * Asks the store for the row of a waiting test, and ends the test as the
   * row says if it is there. One check at a time per test; a store error is
   * kept for the verdict at the end of the wait and never ends the test.
   */
  private checkStore(test: TestStatus): Promise<void> {
    const wait = this.waiting.get(test.testId);
    if (!wait || !this.lookUpRow) return Promise.resolve();
    const lookUpRow = this.lookUpRow;
    wait.checking ??= Promise.resolve().then(() => lookUpRow(test)).then(
      (row) => {
        wait.storeError = null;
        if (row && !this.closed && this.waiting.get(test.testId) === wait) this.finishAsStored(test, row);
      },
      (error: Error) => {
        wait.storeError = error.message;
        this.logger.warn({ testId: test.testId, err: error.message }, 'looking up a throughput test\'s row failed; asking again');
      },
    ).finally(() => {
      wait.checking = null;
    });
    return wait.checking;
  }

  /**
   * The wait for the row ran out: the store is asked a last time, then the
   * test is failed. No failure row is stored: the probe still holds its own
   * row and may yet deliver it (two rows would contradict).
   */
  private async endRowWait(test: TestStatus): Promise<void> {
    const wait = this.waiting.get(test.testId);
    if (!wait) return;
    if (this.lookUpRow) await this.checkStore(test);
    if (this.closed || this.waiting.get(test.testId) !== wait) return; // the row came meanwhile
    const seconds = ROW_WAIT_MS / 1000;
    this.finish(test, 'failed', wait.storeError === null
      ? `${wait.reason}, but its row was not stored within ${seconds} s`
      : `${wait.reason}, and whether its row was stored is unknown: the store could not be read (${wait.storeError})`);
  }

  /**
   * The probe stayed silent past the guard while connected: unless its row
   * is in the store after all (its report lost), the test expired, and the
   * server stores that as its failure.
   */
  private async expire(test: TestStatus, error: string): Promise<void> {
    let row: StoredResult | null = null;
    let storeError: string | null = null;
    try {
      row = this.lookUpRow ? await this.lookUpRow(test) : null;
    } catch (e) {
      storeError = (e as Error).message;
    }
    if (this.closed || test.state !== 'running') return;
    const wait = this.waiting.get(test.testId);
    if (wait) {
      // A report that came during the lookup set its own wait; a disconnect gives the row its wait from now.
      if (!wait.report) this.setGuard(test, ROW_WAIT_MS, () => void this.endRowWait(test));
      return;
    }
    if (row) this.finishAsStored(test, row);
    else this.failByServer(test, 'expired', storeError === null ? error : `${error} (the store could not be read to look for its row: ${storeError})`);
  }

  /** The row of a reported test is stored: it takes the state the probe reported. */
  private finishAsReported(test: TestStatus, report: Reported): void {
    test.forwardBps = report.forwardBps;
    test.reverseBps = report.reverseBps;
    this.finish(test, report.state, report.error);
  }

  /** The test's row was found in the store: it ends as the row says, whatever (if anything) was reported here. */
  private finishAsStored(test: TestStatus, row: StoredResult): void {
    test.forwardBps = row.forwardBps;
    test.reverseBps = row.reverseBps;
    this.finish(test, row.ok ? 'done' : 'failed', row.ok ? null : (row.error ?? 'the probe reported a failure'));
  }

  /** Replaces the test's guard timer. */
  private setGuard(test: TestStatus, ms: number, onExpiry: () => void): void {
    clearTimeout(this.guards.get(test.testId));
    const guard = setTimeout(onExpiry, ms);
    guard.unref();
    this.guards.set(test.testId, guard);
  }

  private finish(test: TestStatus, state: TestState, error: string | null): void {
    // Ended before the next test can start (release may start it): finishedAt <= its startedAt.
    Object.assign(test, { state, error, finishedAt: new Date().toISOString() });
    this.release(test);
    this.forgetOld();
  }

  /**
   * The server ends a test (probe absent, or silent while connected): its centres are
   * free at once, and the test shows its end once the failure row is stored.
   */
  private failByServer(test: TestStatus, state: 'failed' | 'expired', error: string): void {
    const ended: TestStatus = { ...test, state, error, finishedAt: new Date().toISOString() };
    this.release(test);
    const show = (): void => {
      Object.assign(test, { state, error, finishedAt: ended.finishedAt });
      this.forgetOld();
    };
    // The sink logs its own failures; the end is shown either way (it is true, stored or not).
    void Promise.resolve(this.onServerFailure(ended)).then(show, show);
  }

  /** The test no longer holds its centres: the next queued test may start. */
  private release(test: TestStatus): void {
    clearTimeout(this.guards.get(test.testId));
    this.guards.delete(test.testId);
    clearInterval(this.waiting.get(test.testId)?.timer);
    this.waiting.delete(test.testId);
    // A test that never started holds nothing (another test may hold its centres).
    if (test.startedAt !== null) {
      this.busy.delete(test.client);
      this.busy.delete(test.server);
      this.pump();
    }
  }

  private forgetOld(): void {
    if (this.tests.size <= KEEP_FINISHED) return;
    for (const [id, t] of this.tests) {
      if (this.tests.size <= KEEP_FINISHED) break;
      if (t.state !== 'queued' && t.state !== 'running') this.tests.delete(id);
    }
  }
}
