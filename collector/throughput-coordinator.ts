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
/** Test ids whose rows were stored before the probe's report arrived, kept for this many tests. */
const KEEP_EARLY_ROWS = 1000;

/** What the probe reported, held until its row is stored. */
interface Reported {
  state: 'done' | 'failed';
  error: string | null;
  forwardBps: number | null;
  reverseBps: number | null;
}

export class ThroughputCoordinator {
  private readonly queue: TestStatus[] = [];
  private readonly tests = new Map<string, TestStatus>();
  private readonly busy = new Set<string>();
  private readonly guards = new Map<string, NodeJS.Timeout>();
  private readonly spreadTimers = new Set<NodeJS.Timeout>();
  /** Running tests whose probe has reported, waiting for their row to be stored. */
  private readonly reported = new Map<string, Reported>();
  /** Rows stored before their probe reported (a batch sent between the record and the report). */
  private readonly rowsStoredEarly = new Set<string>();
  private schedule: ScheduledTask | null = null;

  constructor(
    private readonly topology: Topology,
    private readonly send: ProbeSender,
    private readonly logger: Logger,
    private readonly onServerFailure: ServerFailureSink = () => undefined,
    private readonly recordLoad: LoadRecorder = () => undefined,
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

  list(): TestStatus[] {
    return [...this.tests.values()];
  }

  /**
   * The client probe finished a test it was asked to run. The test stays
   * `running` until its row is stored (`stored`), or fails after ROW_WAIT_MS.
   */
  done(centre: string, message: ThroughputDone): void {
    const test = this.tests.get(message.testId);
    if (!test || test.client !== centre || test.state !== 'running' || this.reported.has(test.testId)) return;
    this.recordLoad({
      testId: test.testId, client: test.client, server: test.server, trigger: test.trigger,
      startMs: Date.parse(test.startedAt!), endMs: Date.now(), source: 'finished',
    });
    this.reported.set(test.testId, {
      state: message.ok ? 'done' : 'failed',
      error: message.ok ? null : (message.error ?? 'the probe reported a failure'),
      forwardBps: message.forwardBps ?? null,
      reverseBps: message.reverseBps ?? null,
    });
    if (this.rowsStoredEarly.delete(test.testId)) {
      this.settle(test);
      return;
    }
    // The probe-silence guard is replaced by the wait for the row. No failure row is stored when it
    // runs out: the probe still holds its own row and may yet deliver it (two rows would contradict).
    this.setGuard(test, ROW_WAIT_MS, () => {
      const report = this.reported.get(test.testId)!;
      this.reported.delete(test.testId);
      const what = report.state === 'done' ? 'the probe reported a result' : report.error;
      this.finish(test, 'failed', `${what}, but its row was not stored within ${ROW_WAIT_MS / 1000} s`);
    });
  }

  /** The collector stored a batch carrying these tests' rows (also when they were stored before: a replay). */
  stored(centre: string, testIds: readonly string[]): void {
    for (const id of testIds) {
      const test = this.tests.get(id);
      if (!test || test.client !== centre || test.state !== 'running') continue;
      if (this.reported.has(id)) this.settle(test);
      else {
        this.rowsStoredEarly.add(id);
        if (this.rowsStoredEarly.size > KEEP_EARLY_ROWS) this.rowsStoredEarly.delete(this.rowsStoredEarly.values().next().value!);
      }
    }
  }

  /** The row of a reported test is stored: it takes the state the probe reported. */
  private settle(test: TestStatus): void {
    const report = this.reported.get(test.testId)!;
    this.reported.delete(test.testId);
    test.forwardBps = report.forwardBps;
    test.reverseBps = report.reverseBps;
    this.finish(test, report.state, report.error);
  }

  /**
   * A probe went away: its running test cannot report; free both ends. A test
   * already reported is left to wait for its row (the probe keeps it in its
   * spool and sends it on reconnecting; a failure row now would be a second).
   */
  disconnected(centre: string): void {
    for (const test of this.tests.values()) {
      if (test.state === 'running' && !this.reported.has(test.testId) && (test.client === centre || test.server === centre)) {
        this.failByServer(test, 'failed', `probe "${centre}" disconnected during the test`);
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
    await this.schedule?.destroy();
    for (const t of [...this.spreadTimers, ...this.guards.values()]) clearTimeout(t);
    this.spreadTimers.clear();
    this.guards.clear();
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
    this.setGuard(test, guardMs, () => this.failByServer(test, 'expired', `no result within ${guardMs / 1000} s`));
    this.logger.info({ testId: test.testId, client: test.client, server: test.server, trigger: test.trigger }, 'throughput test started');
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
   * The server ends a test (probe absent, gone, silent): its centres are
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
    this.reported.delete(test.testId);
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
