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
// on-demand test of the link: 'requesting' | 'queued' | 'running' | 'done' |
// 'failed' | 'expired' | 'lost' (its status could no longer be read), or empty).
//
// The panel joins three parts: the API's fetchers (api.ts: the data), the
// tests this page runs (capacity-test-run.ts: the state) and the charts
// (capacity-charts.ts: the view); what is left here is the link's facts and
// keeping them current.
import type uPlot from 'uplot';
import type { CapacityResponse, LinkCapacity, LinkView, ThroughputHistoryResponse, UtilisationResponse } from '../../api/contract.js';
import { fetchThroughputHistory, fetchUtilisation } from './api.js';
import { historyData, makeTestsChart, makeUtilChart, plotWidth, utilData } from './capacity-charts.js';
import { inFlight, TestRuns, type TestRun } from './capacity-test-run.js';
import { fmtGbps, fmtPct, fmtTime, fmtWhen } from './format.js';
import { testedGbps, verdictText, type Direction } from './matrix.js';

export const UTIL_WINDOW_S = 3 * 3600;
export const HISTORY_WINDOW_S = 7 * 86_400;
/** The utilisation buckets are whole minutes: 3 hours is 180 of them. */
const UTIL_POINTS = UTIL_WINDOW_S / 60;
const UTIL_EVERY_MS = 60_000;
const FAILURES_LISTED = 5;

export interface CapacityHooks {
  /** Seconds since the epoch on the server's clock. */
  now(): number;
  /** Shows (msg) or clears (null) one of the panel's errors in the page. */
  error(key: 'throughput' | 'utilisation' | 'test', msg: string | null): void;
  centreName(id: string): string;
  /** A test ended (its result, if any, is stored): /v1/capacity has news. */
  tested(): void;
}

type LoadState = 'idle' | 'loading' | 'ready' | 'error';

const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err));

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
  private readonly runs: TestRuns;
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

    this.runs = new TestRuns({
      changed: (linkId) => {
        if (this.link?.id === linkId) this.renderTest();
      },
      error: (msg) => this.hooks.error('test', msg),
      ended: (linkId) => {
        this.hooks.tested();
        if (this.link?.id === linkId) void this.loadHistory(); // holds the result: done means stored
      },
    });
    this.runButton.addEventListener('click', () => {
      if (this.link) void this.runs.start(this.link.id, this.link.a, this.link.b);
    });
    this.utilChart = makeUtilChart(this.utilPlot);
    this.testsChart = this.testsChartFor('a → b', 'b → a');

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
    this.testsChart = this.testsChartFor(`${a} → ${b}`, `${b} → ${a}`);
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

  private testsChartFor(abLabel: string, baLabel: string): uPlot {
    return makeTestsChart(this.testsPlot, abLabel, baLabel, () => this.history);
  }

  private setUtil(u: UtilisationResponse | null): void {
    this.utilChart.setData(utilData(u), true);
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
    this.testsChart.setData(historyData(h, toS - HISTORY_WINDOW_S, toS, HISTORY_WINDOW_S), true);
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
    const run: TestRun | undefined = link ? this.runs.of(link.id) : undefined;
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
      case 'done':
        this.testState.textContent = result
          ? `test done: ${a} → ${b} ${fmtGbps(result.abGbps)} · ${b} → ${a} ${fmtGbps(result.baGbps)}`
          : 'test done (its result is being loaded)';
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

  private setNote(msg: string | null): void {
    this.note.hidden = msg === null;
    this.note.textContent = msg ?? '';
  }

  private setEmpty(el: HTMLElement, msg: string | null): void {
    el.hidden = msg === null;
    el.textContent = msg ?? '';
  }
}
