// The capacity panel of one link, shown in place of the latency charts in the
// capacity view: the provisioned speed and state of each interface mapped to
// the link, the committed capacity and the tested floor; the utilisation at the
// selected end over the last 3 hours; the tested throughput over the last
// 7 days with the committed capacity and the floor as lines; and "Run test now".
//
// Test hooks on #capacity: data-link ('a~b', empty without a link),
// data-verdict (the link's verdict, empty until /v1/capacity answered),
// data-tests (tests in the history chart), data-provisioned-gbps (empty when
// unknown), data-util-points (buckets with a utilisation figure), data-state
// ('idle' | 'loading' | 'ready' | 'error') and data-test-state (this page's
// on-demand test of the link: 'requesting' | 'queued' | 'running' | 'storing'
// (finished, waiting for the result to be stored) | 'done' | 'failed' |
// 'expired' | 'lost' (its status could no longer be read), or empty).
import uPlot from 'uplot';
import type { CapacityResponse, LinkCapacity, LinkView, ThroughputHistoryResponse, UtilisationResponse } from '../../api/contract.js';
import {
  ApiError,
  fetchThroughputHistory,
  fetchThroughputTest,
  fetchUtilisation,
  startThroughputTest,
  type ThroughputTestStatus,
} from './api.js';
import { timeLabels } from './charts.js';
import { fmtGbps, fmtPct, fmtTime, fmtWhen } from './format.js';
import { testedGbps, verdictText, type Direction } from './matrix.js';

export const UTIL_WINDOW_S = 3 * 3600;
export const HISTORY_WINDOW_S = 7 * 86_400;
/** The utilisation buckets are whole minutes: 3 hours is 180 of them. */
const UTIL_POINTS = UTIL_WINDOW_S / 60;
const UTIL_EVERY_MS = 60_000;
const TEST_POLL_MS = 2_000;
/** Status reads that may fail in a row before the page gives up following a test. */
const TEST_POLL_FAILURES = 5;
/** The probe reports a test finished before it uploads the result: wait this long for it. */
const STORE_WAIT_MS = 30_000;
const Y_AXIS_SIZE = 56;
const HEIGHTS = { util: 180, tests: 200 };
const FAILURES_LISTED = 5;

const C = {
  axis: '#8b949e',
  grid: 'rgba(240, 246, 252, 0.07)',
  peak: '#f69d50',
  mean: '#6cb6ff',
  rx: '#56d4bc',
  tx: '#d2a8ff',
  ab: '#6cb6ff',
  ba: '#d2a8ff',
  committed: '#8b949e',
  floor: '#f47067',
  failed: 'rgba(248, 81, 73, 0.7)',
};

export interface CapacityHooks {
  /** Seconds since the epoch on the server's clock. */
  now(): number;
  /** Shows (msg) or clears (null) one of the panel's errors in the page. */
  error(key: 'throughput' | 'utilisation' | 'test', msg: string | null): void;
  centreName(id: string): string;
  /** A test finished (or its result was stored): /v1/capacity has news. */
  tested(): void;
}

type RunState = ThroughputTestStatus['state'] | 'requesting' | 'storing' | 'lost';
type LoadState = 'idle' | 'loading' | 'ready' | 'error';

/** This page's on-demand test of one link. */
interface TestRun {
  testId: string | null;
  state: RunState;
  error: string | null;
  startedAt: string | null;
}

const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const inFlight = (s: RunState): boolean => s === 'requesting' || s === 'queued' || s === 'running' || s === 'storing';

export class CapacityPanel {
  private dir: Direction | null = null;
  private link: LinkView | null = null;
  /** The newest /v1/capacity answer, by link id. */
  private caps = new Map<string, LinkCapacity>();
  private history: ThroughputHistoryResponse | null = null;
  private historyState: LoadState = 'idle';
  private historyAbort: AbortController | null = null;
  /** The newest test time of the shown link that the history holds: a newer one in /v1/capacity reloads it. */
  private historyNewest: string | null = null;
  private utilState: LoadState = 'idle';
  private utilAbort: AbortController | null = null;
  private utilLoadedMs = 0;
  private readonly runs = new Map<string, TestRun>();
  private readonly utilChart: uPlot;
  private testsChart: uPlot;

  private readonly title: HTMLElement;
  private readonly verdict: HTMLElement;
  private readonly note: HTMLElement;
  private readonly facts: HTMLElement;
  private readonly nics: HTMLTableSectionElement;
  private readonly testState: HTMLElement;
  private readonly runButton: HTMLButtonElement;
  private readonly utilTitle: HTMLElement;
  private readonly utilNote: HTMLElement;
  private readonly utilPlot: HTMLElement;
  private readonly utilEmpty: HTMLElement;
  private readonly testsPlot: HTMLElement;
  private readonly testsEmpty: HTMLElement;
  private readonly failures: HTMLElement;

  constructor(
    private readonly root: HTMLElement,
    private readonly hooks: CapacityHooks,
  ) {
    const part = <T extends HTMLElement>(id: string): T => {
      const el = root.querySelector<T>(`#${id}`);
      if (!el) throw new Error(`page is missing #${id}`);
      return el;
    };
    this.title = part('capacity-title');
    this.verdict = part('capacity-verdict');
    this.note = part('capacity-note');
    this.facts = part('capacity-facts');
    const nics = part<HTMLTableElement>('capacity-nics');
    this.nics = nics.tBodies[0] ?? nics.createTBody();
    this.testState = part('capacity-test');
    this.runButton = part<HTMLButtonElement>('capacity-run');
    this.utilTitle = part('util-title');
    this.utilNote = part('util-note');
    this.utilPlot = part('util-plot');
    this.utilEmpty = part('util-empty');
    this.testsPlot = part('tests-plot');
    this.testsEmpty = part('tests-empty');
    this.failures = part('tests-failures');

    this.runButton.addEventListener('click', () => void this.runTest());
    this.utilChart = this.makeUtilChart();
    this.testsChart = this.makeTestsChart('a → b', 'b → a');

    let resizeQueued = false;
    const resize = new ResizeObserver(() => {
      if (resizeQueued) return;
      resizeQueued = true;
      requestAnimationFrame(() => {
        resizeQueued = false;
        for (const [u, el] of [[this.utilChart, this.utilPlot], [this.testsChart, this.testsPlot]] as const) {
          const w = plotWidth(el);
          if (u.width !== w) u.setSize({ width: w, height: u.height });
        }
      });
    });
    resize.observe(this.utilPlot);
    resize.observe(this.testsPlot);
  }

  /** Shows the link that carries a direction; the utilisation is that of the direction's source end. */
  show(dir: Direction, link: LinkView | undefined): void {
    this.abortLoads();
    this.dir = dir;
    this.link = link ?? null;
    this.history = null;
    this.historyNewest = null;
    this.historyState = 'idle';
    this.utilState = 'idle';
    this.utilLoadedMs = 0;
    const src = this.hooks.centreName(dir.src);
    const dst = this.hooks.centreName(dir.dst);
    this.root.dataset.link = link?.id ?? '';
    this.title.textContent = `${src} ↔ ${dst}`;
    this.utilTitle.textContent = `Utilisation at ${src} towards ${dst}, last 3 h`;
    // Clear the old link now, so no hook ever describes the wrong one.
    this.setUtil(null);
    this.testsChart.destroy();
    const a = link ? this.hooks.centreName(link.a) : 'a';
    const b = link ? this.hooks.centreName(link.b) : 'b';
    this.testsChart = this.makeTestsChart(`${a} → ${b}`, `${b} → ${a}`);
    this.drawHistory();
    this.renderFacts();
    this.renderTest();
    if (!link) {
      this.setNote(`There is no link between ${src} and ${dst}: nothing to show or test.`);
      this.setEmpty(this.utilEmpty, 'No link.');
      this.setEmpty(this.testsEmpty, 'No link.');
      this.renderState();
      return;
    }
    this.setNote(null);
    void this.loadHistory();
    void this.loadUtil();
  }

  /** No link to show: says why instead of drawing empty axes. */
  showNothing(msg: string): void {
    this.setNote(msg);
  }

  /** The panel is hidden: stop loading and take its errors off the page (a running test is still followed). */
  hide(): void {
    this.abortLoads();
    this.hooks.error('throughput', null);
    this.hooks.error('utilisation', null);
  }

  /** A fresh /v1/capacity answer (every 10 s in the capacity view). */
  update(res: CapacityResponse): void {
    this.caps = new Map(res.links.map((l) => [l.linkId, l]));
    this.renderFacts();
    const cap = this.link ? this.caps.get(this.link.id) : undefined;
    if (!cap) return;
    // A test finished since the history was loaded (scheduled, or run from elsewhere).
    const newest = this.historyNewest ? Date.parse(this.historyNewest) : (this.hooks.now() - HISTORY_WINDOW_S) * 1000;
    if (cap.tested.at !== null && Date.parse(cap.tested.at) > newest && this.historyState !== 'loading') void this.loadHistory();
    if (Date.now() - this.utilLoadedMs > UTIL_EVERY_MS && this.utilState !== 'loading') void this.loadUtil();
  }

  private abortLoads(): void {
    this.historyAbort?.abort();
    this.historyAbort = null;
    this.utilAbort?.abort();
    this.utilAbort = null;
  }

  private async loadHistory(): Promise<ThroughputHistoryResponse | null> {
    const link = this.link;
    if (!link) return null;
    this.historyAbort?.abort();
    const abort = (this.historyAbort = new AbortController());
    this.historyState = 'loading';
    this.renderState();
    if (!this.history) this.setEmpty(this.testsEmpty, 'Loading…');
    const toS = this.hooks.now();
    try {
      const h = await fetchThroughputHistory(link.a, link.b, new Date((toS - HISTORY_WINDOW_S) * 1000), new Date(toS * 1000), abort.signal);
      if (abort.signal.aborted) return null;
      this.hooks.error('throughput', null);
      this.history = h;
      this.historyNewest = h.tests[h.tests.length - 1]?.at ?? null;
      this.historyState = 'ready';
      this.drawHistory();
      this.renderFacts();
      this.renderTest();
      return h;
    } catch (err) {
      if (abort.signal.aborted) return null;
      this.hooks.error('throughput', errorText(err));
      this.historyState = 'error';
      if (!this.history) this.setEmpty(this.testsEmpty, 'The test history could not be loaded.');
      return null;
    } finally {
      if (this.historyAbort === abort) this.historyAbort = null;
      this.renderState();
    }
  }

  private async loadUtil(): Promise<void> {
    const dir = this.dir;
    if (!dir || !this.link) return;
    this.utilAbort?.abort();
    const abort = (this.utilAbort = new AbortController());
    this.utilState = 'loading';
    this.renderState();
    const toS = this.hooks.now();
    try {
      const u = await fetchUtilisation(dir.src, dir.dst, new Date((toS - UTIL_WINDOW_S) * 1000), new Date(toS * 1000), UTIL_POINTS, abort.signal);
      if (abort.signal.aborted) return;
      const n = u.t.length;
      if ([u.peak, u.mean, u.rxGbps, u.txGbps].some((c) => !Array.isArray(c) || c.length !== n)) {
        throw new Error('utilisation response: columns differ in length from t');
      }
      this.hooks.error('utilisation', null);
      this.utilLoadedMs = Date.now();
      this.utilState = 'ready';
      this.setUtil(u);
    } catch (err) {
      if (abort.signal.aborted) return;
      this.hooks.error('utilisation', errorText(err));
      this.utilState = 'error';
      this.utilLoadedMs = Date.now(); // retried with the next refresh after a minute, not every 10 s
    } finally {
      if (this.utilAbort === abort) this.utilAbort = null;
      this.renderState();
    }
  }

  private setUtil(u: UtilisationResponse | null): void {
    const pct = (r: number | null): number | null => (r === null ? null : r * 100);
    const data: uPlot.AlignedData = u ? [u.t, u.peak.map(pct), u.mean.map(pct), u.rxGbps, u.txGbps] : [[], [], [], [], []];
    this.utilChart.setData(data, true);
    const withUtil = u ? u.t.filter((_t, i) => u.peak[i] != null || u.mean[i] != null).length : 0;
    const withRates = u ? u.t.filter((_t, i) => u.rxGbps[i] != null || u.txGbps[i] != null).length : 0;
    this.root.dataset.utilPoints = String(withUtil);
    if (!u) {
      this.setEmpty(this.utilEmpty, 'Loading…');
      this.utilNote.textContent = '';
      return;
    }
    const dir = this.dir;
    const where = dir ? `${this.hooks.centreName(dir.src)}'s interfaces towards ${this.hooks.centreName(dir.dst)}` : 'this end';
    this.setEmpty(
      this.utilEmpty,
      withUtil + withRates > 0 ? null : `No NIC samples from ${where} in the last 3 hours (is an interface mapped to this link with link_to?).`,
    );
    this.utilNote.textContent =
      withRates > 0 && withUtil === 0 ? 'The interface reports no speed, so utilisation is unknown: only its rates are drawn.' : '';
  }

  private drawHistory(): void {
    const h = this.history;
    const toS = this.hooks.now();
    const fromS = toS - HISTORY_WINDOW_S;
    // The window's ends as empty rows, so the x axis always spans the 7 days.
    const t: number[] = [fromS];
    const ab: (number | null)[] = [null];
    const ba: (number | null)[] = [null];
    for (const x of h?.tests ?? []) {
      const s = Date.parse(x.at) / 1000;
      if (!Number.isFinite(s)) continue;
      t.push(s);
      ab.push(x.abGbps);
      ba.push(x.baGbps);
    }
    t[0] = Math.min(fromS, t[1] ?? fromS);
    // A little room after now, so the newest dot is not cut in half by the edge.
    t.push(Math.max(toS, t[t.length - 1]!) + HISTORY_WINDOW_S * 0.02);
    ab.push(null);
    ba.push(null);
    this.testsChart.setData([t, ab, ba], true);
    const n = h?.tests.length ?? 0;
    this.root.dataset.tests = String(n);
    if (h) this.setEmpty(this.testsEmpty, n > 0 ? null : 'No throughput tests of this link in the last 7 days.');
    this.renderFailures();
  }

  private renderFailures(): void {
    const failed = (this.history?.tests ?? []).filter((x) => !x.ok).slice(-FAILURES_LISTED).reverse();
    const items = failed.map((x) => {
      const li = document.createElement('li');
      li.textContent = `${fmtWhen(x.at)} (${x.trigger}, ${x.engine}): ${x.error ?? 'failed without a reason'}`;
      return li;
    });
    this.failures.replaceChildren(...items);
    this.failures.hidden = items.length === 0;
  }

  private renderState(): void {
    const states = [this.historyState, this.utilState];
    this.root.dataset.state = !this.link
      ? 'idle'
      : states.includes('error')
        ? 'error'
        : states.includes('loading')
          ? 'loading'
          : states.every((s) => s === 'ready')
            ? 'ready'
            : 'loading';
  }

  private renderFacts(): void {
    const link = this.link;
    const cap = link ? this.caps.get(link.id) : undefined;
    this.root.dataset.verdict = cap?.verdict ?? '';
    this.root.dataset.provisionedGbps = cap?.provisioned.gbps != null ? String(cap.provisioned.gbps) : '';
    this.verdict.dataset.verdict = cap?.verdict ?? '';
    this.verdict.textContent = cap ? verdictText(cap.verdict) : '';
    if (!link) {
      this.facts.replaceChildren();
      this.nics.replaceChildren();
      return;
    }
    const committed = cap?.committedGbps ?? this.history?.committedGbps ?? link.capacityGbps;
    const floor = cap?.floorGbps ?? this.history?.floorGbps ?? null;
    const a = this.hooks.centreName(link.a);
    const b = this.hooks.centreName(link.b);
    const rows: [string, string, string?][] = [
      ['committed', fmtGbps(committed)],
      ['tested floor', fmtGbps(floor)],
    ];
    if (cap) {
      const p = cap.provisioned;
      const n = p.interfaces.length;
      rows.push([
        'provisioned',
        p.gbps !== null
          ? `${fmtGbps(p.gbps)}${n > 1 ? ` (slowest of ${n} interfaces)` : ''} · ${verdictText(p.verdict)}`
          : n > 0
            ? 'unknown: the interfaces report no speed'
            : 'no data: no interface mapped to this link reported in the last day',
        p.verdict,
      ]);
      const t = cap.tested;
      if (t.at === null) rows.push(['last test', 'none stored', t.verdict]);
      else {
        const tested = testedGbps(cap);
        rows.push([
          'last test',
          `${fmtWhen(t.at)}${t.engine ? ` · ${t.engine}` : ''} · ${a} → ${b} ${fmtGbps(t.abGbps)} · ${b} → ${a} ${fmtGbps(t.baGbps)}` +
            `${tested !== null ? ` · slower ${fmtGbps(tested)}` : ''} · ${verdictText(t.verdict)}`,
          t.verdict,
        ]);
        if (t.error) rows.push(['test error', t.error, 'failed']);
      }
    } else rows.push(['provisioned', 'waiting for /v1/capacity…']);
    const items = rows.flatMap(([k, v, verdict]) => {
      const dt = document.createElement('dt');
      dt.textContent = k;
      const dd = document.createElement('dd');
      dd.textContent = v;
      if (verdict) dd.dataset.verdict = verdict;
      return [dt, dd];
    });
    this.facts.replaceChildren(...items);

    const trs = (cap?.provisioned.interfaces ?? []).map((n) => {
      const tr = document.createElement('tr');
      const cells = [
        this.hooks.centreName(n.centre),
        n.interface,
        n.speedMbps !== null ? fmtGbps(n.speedMbps / 1000) : 'unknown',
        n.operState || 'unknown',
        n.utilisation !== null ? fmtPct(n.utilisation * 100) : '—',
        fmtWhen(n.at),
      ];
      for (const c of cells) tr.insertCell().textContent = c;
      tr.dataset.oper = n.operState;
      return tr;
    });
    if (trs.length === 0) {
      const tr = document.createElement('tr');
      const td = tr.insertCell();
      td.colSpan = 6;
      td.className = 'none';
      td.textContent = cap ? 'No NIC samples for this link in the last day.' : '—';
      trs.push(tr);
    }
    this.nics.replaceChildren(...trs);
  }

  private renderTest(): void {
    const link = this.link;
    const run = link ? this.runs.get(link.id) : undefined;
    this.runButton.disabled = !link || (!!run && inFlight(run.state));
    this.root.dataset.testState = run?.state ?? '';
    this.testState.dataset.state = run?.state ?? '';
    if (!run) {
      this.testState.textContent = '';
      return;
    }
    const result = run.testId ? this.history?.tests.find((x) => x.testId === run.testId) : undefined;
    const a = link ? this.hooks.centreName(link.a) : 'a';
    const b = link ? this.hooks.centreName(link.b) : 'b';
    switch (run.state) {
      case 'requesting':
        this.testState.textContent = 'requesting a test…';
        break;
      case 'queued':
        this.testState.textContent = 'test queued: waiting for both centres to be free…';
        break;
      case 'running':
        this.testState.textContent = `test running since ${fmtTime(run.startedAt)}…`;
        break;
      case 'storing':
        this.testState.textContent = 'test finished: waiting for its result to be stored…';
        break;
      case 'done':
        this.testState.textContent = result
          ? `test done: ${a} → ${b} ${fmtGbps(result.abGbps)} · ${b} → ${a} ${fmtGbps(result.baGbps)}`
          : 'test done (its result is not stored yet)';
        break;
      case 'failed':
      case 'expired':
        this.testState.textContent = `test ${run.state}: ${run.error ?? result?.error ?? 'no reason given'}`;
        break;
      case 'lost':
        this.testState.textContent = `lost track of the test: ${run.error ?? 'its status could not be read'}`;
        break;
    }
  }

  /** POSTs a test of the shown link, follows its state every 2 s, then reloads the history. */
  private async runTest(): Promise<void> {
    const link = this.link;
    if (!link) return;
    const prev = this.runs.get(link.id);
    if (prev && inFlight(prev.state)) return;
    const run: TestRun = { testId: null, state: 'requesting', error: null, startedAt: null };
    this.runs.set(link.id, run);
    const render = (): void => {
      if (this.link?.id === link.id) this.renderTest();
    };
    // The client probe ran the test when it started, so its result (a failure
    // too) is stored shortly after it finished: until then the state is 'storing'.
    const stored = (): boolean => run.startedAt !== null && run.testId !== null;
    /** The server's state; run.state is what the page shows. */
    let final: RunState = run.state;
    const apply = (st: ThroughputTestStatus): void => {
      final = st.state;
      run.testId = st.testId;
      run.state = st.state;
      run.error = st.error;
      run.startedAt = st.startedAt;
      if (!inFlight(st.state) && stored()) run.state = 'storing';
      render();
    };
    render();
    try {
      apply(await startThroughputTest(link.a, link.b));
      this.hooks.error('test', null);
    } catch (err) {
      this.runs.delete(link.id);
      render();
      this.hooks.error('test', `Could not start a throughput test of ${link.id}: ${errorText(err)}`);
      return;
    }

    let failures = 0;
    while (run.state === 'queued' || run.state === 'running') {
      await sleep(TEST_POLL_MS);
      try {
        apply(await fetchThroughputTest(run.testId!));
        failures = 0;
        this.hooks.error('test', null);
      } catch (err) {
        const msg = errorText(err);
        this.hooks.error('test', `Throughput test ${run.testId} of ${link.id}: ${msg}`);
        if ((err instanceof ApiError && err.status === 404) || ++failures >= TEST_POLL_FAILURES) {
          run.state = final = 'lost';
          run.error = msg;
          render();
        }
      }
    }

    this.hooks.tested();
    if (run.state === 'storing' && run.testId) {
      if (await this.waitStored(link, run.testId)) this.hooks.tested();
      run.state = final;
      render();
    } else if (this.link?.id === link.id) {
      void this.loadHistory();
    }
  }

  /** Reloads the history of `link` until it holds `testId`; false when it did not in time (or another link is shown). */
  private async waitStored(link: LinkView, testId: string): Promise<boolean> {
    const deadline = Date.now() + STORE_WAIT_MS;
    for (;;) {
      if (this.link?.id !== link.id) return false; // its history loads when it is shown again
      const h = await this.loadHistory();
      if (h?.tests.some((x) => x.testId === testId)) return true;
      if (Date.now() > deadline) return false;
      await sleep(TEST_POLL_MS);
    }
  }

  private setNote(msg: string | null): void {
    this.note.hidden = msg === null;
    this.note.textContent = msg ?? '';
  }

  private setEmpty(el: HTMLElement, msg: string | null): void {
    el.hidden = msg === null;
    el.textContent = msg ?? '';
  }

  private makeUtilChart(): uPlot {
    const el = this.utilPlot;
    const opts: uPlot.Options = {
      width: plotWidth(el),
      height: HEIGHTS.util,
      cursor: { drag: { x: true, y: false, setScale: true }, points: { size: 5 } },
      scales: {
        x: { time: true },
        pct: { range: (_u, _min, max) => [0, niceMax(max, 10)] },
        gbps: { range: (_u, _min, max) => [0, niceMax(max, 0.01)] },
      },
      axes: [
        timeAxis(timeLabels),
        valueAxis('pct', 'utilisation (%)', 3),
        { ...valueAxis('gbps', 'rate (Gb/s)', 1), grid: { show: false }, values: gbpsLabels },
      ],
      series: [
        { value: (_u, v) => (v == null ? '—' : fmtTime(v * 1000)) },
        { label: 'peak', scale: 'pct', stroke: C.peak, width: 1.5, value: (_u, v) => fmtPct(v), points: lonePoints(C.peak) },
        { label: 'mean', scale: 'pct', stroke: C.mean, width: 1.5, value: (_u, v) => fmtPct(v), points: lonePoints(C.mean) },
        { label: 'rx', scale: 'gbps', stroke: C.rx, width: 1, dash: [4, 3], value: (_u, v) => fmtGbps(v), points: lonePoints(C.rx) },
        { label: 'tx', scale: 'gbps', stroke: C.tx, width: 1, dash: [4, 3], value: (_u, v) => fmtGbps(v), points: lonePoints(C.tx) },
      ],
      legend: { live: true },
    };
    return new uPlot(opts, [[], [], [], [], []], el);
  }

  private makeTestsChart(abLabel: string, baLabel: string): uPlot {
    const el = this.testsPlot;
    const dot = (stroke: string): uPlot.Series.Points => ({ show: true, size: 7, width: 1, stroke, fill: stroke });
    const opts: uPlot.Options = {
      width: plotWidth(el),
      height: HEIGHTS.tests,
      cursor: { drag: { x: true, y: false, setScale: true }, points: { size: 9 } },
      scales: {
        x: { time: true },
        y: {
          range: (_u, _min, max) => {
            const h = this.history;
            const top = Math.max(Number.isFinite(max) ? max : 0, h?.committedGbps ?? 0, h?.floorGbps ?? 0);
            return [0, niceMax(top * 1.08, 0.001)];
          },
        },
      },
      axes: [timeAxis(dayLabels), { ...valueAxis('y', 'goodput (Gb/s)', 3), values: gbpsLabels }],
      series: [
        { value: (_u, v) => (v == null ? '—' : fmtWhen(v * 1000)) },
        { label: abLabel, stroke: C.ab, paths: () => null, points: dot(C.ab), value: (_u, v) => fmtGbps(v) },
        { label: baLabel, stroke: C.ba, paths: () => null, points: dot(C.ba), value: (_u, v) => fmtGbps(v) },
      ],
      legend: { live: true },
      hooks: { draw: [(u) => this.drawTestMarks(u)] },
    };
    return new uPlot(opts, [[], [], []], el);
  }

  /** Committed capacity and the floor as dashed lines, failed tests as red verticals. */
  private drawTestMarks(u: uPlot): void {
    const h = this.history;
    if (!h) return;
    const pr = uPlot.pxRatio;
    const { left, top, width, height } = u.bbox;
    const ctx = u.ctx;
    ctx.save();
    ctx.lineWidth = pr;
    ctx.font = `${11 * pr}px system-ui, sans-serif`;
    ctx.textAlign = 'left'; // the newest tests are on the right
    const level = (v: number, colour: string, label: string, preferAbove: boolean): void => {
      const y = Math.round(u.valToPos(v, 'y', true));
      if (y < top || y > top + height) return;
      // The label goes on its preferred side unless that leaves the plot.
      const room = 16 * pr;
      const above = preferAbove ? y - room >= top : y + room > top + height;
      ctx.strokeStyle = colour;
      ctx.fillStyle = colour;
      ctx.setLineDash([6 * pr, 4 * pr]);
      ctx.beginPath();
      ctx.moveTo(left, y + 0.5);
      ctx.lineTo(left + width, y + 0.5);
      ctx.stroke();
      ctx.textBaseline = above ? 'bottom' : 'top';
      ctx.fillText(label, left + 4 * pr, above ? y - 3 * pr : y + 3 * pr);
    };
    level(h.committedGbps, C.committed, `committed ${fmtGbps(h.committedGbps)}`, true);
    level(h.floorGbps, C.floor, `floor ${fmtGbps(h.floorGbps)}`, false);
    ctx.setLineDash([2 * pr, 3 * pr]);
    ctx.strokeStyle = C.failed;
    for (const x of h.tests) {
      if (x.ok) continue;
      const px = Math.round(u.valToPos(Date.parse(x.at) / 1000, 'x', true));
      if (px < left || px > left + width) continue;
      ctx.beginPath();
      ctx.moveTo(px + 0.5, top);
      ctx.lineTo(px + 0.5, top + height);
      ctx.stroke();
    }
    ctx.restore();
  }
}

/** No points on lines, except values with a gap on both sides, which no line would show. */
function lonePoints(colour: string): uPlot.Series.Points {
  return {
    show: false,
    size: 4,
    stroke: colour,
    fill: colour,
    filter: (u, si) => {
      const ys = u.data[si] ?? [];
      const lone: number[] = [];
      for (let i = 0; i < ys.length; i++) if (ys[i] != null && ys[i - 1] == null && ys[i + 1] == null) lone.push(i);
      return lone.length > 0 ? lone : null;
    },
  };
}

function plotWidth(el: HTMLElement): number {
  return Math.max(200, Math.floor(el.clientWidth));
}

/** A range top: the data's maximum, at least `least`, with a little headroom. */
function niceMax(max: number | null, least: number): number {
  const m = max != null && Number.isFinite(max) ? max : 0;
  return Math.max(m * 1.05, least);
}

function timeAxis(values: (u: uPlot, splits: number[]) => string[]): uPlot.Axis {
  return {
    stroke: C.axis,
    grid: { stroke: C.grid, width: 1 },
    ticks: { stroke: C.grid, width: 1, size: 4 },
    size: 30,
    font: '11px system-ui, sans-serif',
    values,
  };
}

function valueAxis(scale: string, label: string, side: 1 | 3): uPlot.Axis {
  return {
    scale,
    side,
    stroke: C.axis,
    grid: { stroke: C.grid, width: 1 },
    ticks: { stroke: C.grid, width: 1, size: 4 },
    size: Y_AXIS_SIZE,
    font: '11px system-ui, sans-serif',
    label,
    labelSize: 16,
    labelFont: '11px system-ui, sans-serif',
  };
}

/** Gb/s ticks without trailing zeros: 0.5, 1, 1.5, 100. */
const gbpsLabels = (_u: uPlot, splits: number[]): string[] => splits.map((v) => String(Number(v.toPrecision(3))));

/** Axis labels for a week: the date at midnight, HH:MM otherwise (24-hour). */
function dayLabels(u: uPlot, splits: number[]): string[] {
  const wholeDays = splits.every((s) => {
    const d = new Date(s * 1000);
    return d.getHours() === 0 && d.getMinutes() === 0;
  });
  if (!wholeDays) {
    const x = u.scales.x;
    if (x?.min != null && x.max != null && x.max - x.min < 86_400) return timeLabels(u, splits);
  }
  return splits.map((s) => {
    const d = new Date(s * 1000);
    const date = `${d.getMonth() + 1}/${d.getDate()}`;
    return d.getHours() === 0 && d.getMinutes() === 0 ? date : `${date} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
  });
}

const pad = (n: number): string => String(n).padStart(2, '0');
