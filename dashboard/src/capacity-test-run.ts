// On-demand throughput tests of links, as this page follows them (the state
// of the capacity panel): POST a test, read its status every 2 s until the
// server reports an end. The server reports `done` only once the result row
// is stored, so a finished test's result is already in the link's history.
import { ApiError, fetchThroughputTest, startThroughputTest, type ThroughputTestStatus } from './api.js';

const TEST_POLL_MS = 2_000;
/** Status reads that may fail in a row before the page gives up following a test. */
const TEST_POLL_FAILURES = 5;

/** The server's states, and the page's own: asking for the test, and lost track of it (its status could not be read). */
export type RunState = ThroughputTestStatus['state'] | 'requesting' | 'lost';

/** This page's on-demand test of one link. */
export interface TestRun {
  testId: string | null;
  state: RunState;
  error: string | null;
  startedAt: string | null;
}

export const inFlight = (s: RunState): boolean => s === 'requesting' || s === 'queued' || s === 'running';

const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface TestRunHooks {
  /** The run of `linkId` changed (or was dropped: a test that could not be started). */
  changed(linkId: string): void;
  /** Shows (msg) or clears (null) the error of following a test. */
  error(msg: string | null): void;
  /** A run ended (done, failed, expired, lost): its result, if any, is stored. */
  ended(linkId: string, run: TestRun): void;
}

/** The runs of every link this page started, one at a time per link. */
export class TestRuns {
  private readonly runs = new Map<string, TestRun>();

  constructor(private readonly hooks: TestRunHooks) {}

  of(linkId: string): TestRun | undefined {
    return this.runs.get(linkId);
  }

  /** Starts a test of the link between a and b and follows it to its end; nothing while one is in flight. */
  async start(linkId: string, a: string, b: string): Promise<void> {
    const prev = this.runs.get(linkId);
    if (prev && inFlight(prev.state)) return;
    const run: TestRun = { testId: null, state: 'requesting', error: null, startedAt: null };
    this.runs.set(linkId, run);
    const apply = (st: ThroughputTestStatus): void => {
      run.testId = st.testId;
      run.state = st.state;
      run.error = st.error;
      run.startedAt = st.startedAt;
      this.hooks.changed(linkId);
    };
    this.hooks.changed(linkId);
    try {
      apply(await startThroughputTest(a, b));
      this.hooks.error(null);
    } catch (err) {
      this.runs.delete(linkId);
      this.hooks.changed(linkId);
      this.hooks.error(`Could not start a throughput test of ${linkId}: ${errorText(err)}`);
      return;
    }

    let failures = 0;
    while (run.state === 'queued' || run.state === 'running') {
      await sleep(TEST_POLL_MS);
      try {
        apply(await fetchThroughputTest(run.testId!));
        failures = 0;
        this.hooks.error(null);
      } catch (err) {
        const msg = errorText(err);
        this.hooks.error(`Throughput test ${run.testId} of ${linkId}: ${msg}`);
        if ((err instanceof ApiError && err.status === 404) || ++failures >= TEST_POLL_FAILURES) {
          run.state = 'lost';
          run.error = msg;
          this.hooks.changed(linkId);
        }
      }
    }
    this.hooks.ended(linkId, run);
  }
}
