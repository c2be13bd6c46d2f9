// Three x-synced uPlot charts (RTT, jitter, loss) for one direction: the last
// 15 minutes from the series endpoint, then live trains appended in place and
// drawn at most once per animation frame.
import uPlot from 'uplot';
import type { SeriesResponse } from '../../api/contract.js';
import { TrainAggregate, type TrainMessage, type TrainPoint } from './aggregate.js';
import { fetchSeries } from './api.js';
import { fmtMs, fmtPct, fmtTime } from './format.js';
import type { Direction } from './matrix.js';
import { PALETTE } from './palette.js';
import { drawTargetLine } from './target-line.js';

export const WINDOW_S = 15 * 60;
const SYNC_KEY = 'citymesh-link';
const Y_AXIS_SIZE = 56; // fixed, so the three plots line up
const HEIGHTS = { rtt: 230, jitter: 120, loss: 120 };
const MAX_POINTS = 20_000;

const C = {
  axis: PALETTE.axis,
  grid: PALETTE.grid,
  min: PALETTE.deepBlue,
  p50: PALETTE.blue,
  p99: PALETTE.violet,
  max: PALETTE.grey,
  band: 'rgba(108, 182, 255, 0.07)', // PALETTE.blue, faint
  target: PALETTE.target,
  jitter: PALETTE.teal,
  loss: PALETTE.orange,
};

/** Columns shared by the three charts, aligned on t (Unix seconds). */
class Columns {
  t: number[] = [];
  min: (number | null)[] = [];
  p50: (number | null)[] = [];
  p99: (number | null)[] = [];
  max: (number | null)[] = [];
  jitter: (number | null)[] = [];
  /** Percent. */
  loss: (number | null)[] = [];

  private all(): unknown[][] {
    return [this.t, this.min, this.p50, this.p99, this.max, this.jitter, this.loss];
  }

  clear(): void {
    for (const c of this.all()) c.length = 0;
  }

  load(s: SeriesResponse): void {
    const n = s.t.length;
    const cols = [s.minMs, s.p50Ms, s.p99Ms, s.maxMs, s.jitterMs, s.lossRatio];
    if (cols.some((c) => !Array.isArray(c) || c.length !== n)) throw new Error('series response: columns differ in length from t');
    this.t = s.t.slice();
    this.min = s.minMs.slice();
    this.p50 = s.p50Ms.slice();
    this.p99 = s.p99Ms.slice();
    this.max = s.maxMs.slice();
    this.jitter = s.jitterMs.slice();
    this.loss = s.lossRatio.map((r) => (r === null ? null : r * 100));
  }

  /**
   * Writes a point at its t: in place if t exists, appended or inserted otherwise.
   * An append after more than gapS without data first adds an empty row, so
   * the lines break across an outage instead of bridging it.
   */
  put(p: TrainPoint, gapS: number): void {
    const { t } = this;
    const n = t.length;
    let i: number;
    if (n === 0 || p.t > t[n - 1]!) {
      const prev = t[n - 1];
      if (prev !== undefined && p.t - prev > gapS) {
        for (const c of this.all()) c.push(null);
        t[n] = (prev + p.t) / 2;
      }
      i = t.length;
      for (const c of this.all()) c.push(null);
    } else {
      i = lowerBound(t, p.t);
      if (t[i] !== p.t) for (const c of this.all()) c.splice(i, 0, null);
    }
    t[i] = p.t;
    this.min[i] = p.minMs;
    this.p50[i] = p.p50Ms;
    this.p99[i] = p.p99Ms;
    this.max[i] = p.maxMs;
    this.jitter[i] = p.jitterMs;
    this.loss[i] = p.lossRatio === null ? null : p.lossRatio * 100;
  }

  /** Drops points older than cutoff; returns how many. */
  trimBefore(cutoff: number): number {
    const k = lowerBound(this.t, cutoff);
    if (k > 0) for (const c of this.all()) c.splice(0, k);
    return k;
  }

  /** Median spacing of the points that carry data: the measuring interval. */
  typicalIntervalS(): number {
    const d: number[] = [];
    let prev = NaN;
    for (let i = 0; i < this.t.length; i++) {
      if (this.p50[i] == null && this.loss[i] == null) continue;
      const t = this.t[i]!;
      if (!Number.isNaN(prev)) d.push(t - prev);
      prev = t;
    }
    if (d.length === 0) return 0;
    d.sort((a, b) => a - b);
    return d[d.length >> 1]!;
  }
}

function lowerBound(xs: number[], v: number): number {
  let lo = 0;
  let hi = xs.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (xs[mid]! < v) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

export interface ChartsHooks {
  /** Seconds since the epoch on the server's clock. */
  now(): number;
  /** Shows (msg) or clears (null) the charts' error in the page. */
  error(msg: string | null): void;
  centreName(id: string): string;
}

interface Chart {
  u: uPlot;
  /** The user zoomed in: keep the x range instead of following live data. */
  zoomed: boolean;
  data(): uPlot.AlignedData;
}

export class LinkCharts {
  private readonly cols = new Columns();
  private readonly charts: Chart[];
  private readonly rtt: Chart;
  private dir: Direction | null = null;
  private targetMs: number | null = null;
  private engine: 'stamp' = 'stamp';
  private loading = false;
  private pending: TrainMessage[] = [];
  private aggs = new Map<number, TrainAggregate>();
  private historyEnd = -Infinity;
  private gapS = Infinity;
  private abort: AbortController | null = null;
  private raf = 0;

  constructor(
    private readonly root: HTMLElement,
    private readonly plots: HTMLElement,
    private readonly title: HTMLElement,
    private readonly meta: HTMLElement,
    private readonly empty: HTMLElement,
    private readonly hooks: ChartsHooks,
    /** Extra uPlot plugins every chart carries (e.g. the annotation markers). */
    private readonly plugins: uPlot.Plugin[] = [],
  ) {
    const width = this.width();
    const c = this.cols;
    this.rtt = this.make(
      'rtt',
      width,
      'RTT (ms)',
      [
        { label: 'min', stroke: C.min, width: 1 },
        { label: 'p50', stroke: C.p50, width: 1.5 },
        { label: 'p99', stroke: C.p99, width: 1.5 },
        { label: 'max', stroke: C.max, width: 1 },
      ],
      () => [c.t, c.min, c.p50, c.p99, c.max],
      fmtMs,
      false,
    );
    const jitter = this.make('jitter', width, 'jitter (ms)', [{ label: 'jitter', stroke: C.jitter, width: 1.5 }], () => [c.t, c.jitter], fmtMs, false);
    const loss = this.make(
      'loss',
      width,
      'loss (%)',
      [{ label: 'loss', stroke: C.loss, width: 1.5, fill: 'rgba(246, 157, 80, 0.15)' }],
      () => [c.t, c.loss],
      fmtPct,
      true,
    );
    this.charts = [this.rtt, jitter, loss];

    let resizeQueued = false;
    new ResizeObserver(() => {
      if (resizeQueued) return;
      resizeQueued = true;
      requestAnimationFrame(() => {
        resizeQueued = false;
        const w = this.width();
        for (const ch of this.charts) if (ch.u.width !== w) ch.u.setSize({ width: w, height: ch.u.height });
      });
    }).observe(this.plots);
  }

  get selected(): Direction | null {
    return this.dir;
  }

  /** Switches the charts to a direction and loads its last 15 minutes. */
  async show(dir: Direction, targetMs: number | null): Promise<void> {
    this.abort?.abort();
    const abort = (this.abort = new AbortController());
    this.dir = dir;
    this.targetMs = targetMs;
    this.loading = true;
    this.pending = [];
    this.aggs.clear();
    this.historyEnd = -Infinity;
    this.gapS = Infinity;
    this.cols.clear();
    for (const ch of this.charts) ch.zoomed = false;
    this.root.dataset.link = `${dir.src}>${dir.dst}`;
    this.title.textContent = `${this.hooks.centreName(dir.src)} → ${this.hooks.centreName(dir.dst)}`;
    this.renderMeta();
    this.setEmpty('Loading…');
    this.root.dataset.state = 'loading';
    // Clear the old direction now, so data-points never describes the wrong link.
    cancelAnimationFrame(this.raf);
    this.flush();

    const toS = this.hooks.now();
    try {
      const s = await fetchSeries(dir.src, dir.dst, new Date((toS - WINDOW_S) * 1000), new Date(toS * 1000), this.pointsWanted(), abort.signal);
      if (abort.signal.aborted) return;
      this.cols.load(s);
      const last = s.t[s.t.length - 1];
      this.historyEnd = last ?? -Infinity;
      this.hooks.error(null);
      this.root.dataset.state = 'ready';
    } catch (err) {
      if (abort.signal.aborted) return;
      this.hooks.error(err instanceof Error ? err.message : String(err));
      this.root.dataset.state = 'error';
    }
    this.loading = false;
    const queued = this.pending;
    this.pending = [];
    for (const m of queued) this.ingest(m);
    this.gapS = this.gapThreshold();
    this.schedule();
  }

  /** No direction to show: says why instead of drawing empty axes. */
  showNothing(msg: string): void {
    this.setEmpty(msg);
  }

  /** Reloads the current direction (e.g. after the live feed was down). */
  reload(): void {
    if (this.dir) void this.show(this.dir, this.targetMs);
  }

  setTarget(targetMs: number | null): void {
    if (targetMs === this.targetMs) return;
    this.targetMs = targetMs;
    this.renderMeta();
    this.schedule();
  }

  /** A live train: merged with the other flows of the same train, drawn on the next frame. */
  ingest(m: TrainMessage): void {
    const d = this.dir;
    if (!d || m.src !== d.src || m.dst !== d.dst || m.engine !== this.engine) return;
    if (this.loading) {
      this.pending.push(m);
      return;
    }
    // Already in the loaded history, or outside the window.
    if (m.t <= this.historyEnd || m.t < this.hooks.now() - WINDOW_S) return;
    let agg = this.aggs.get(m.t);
    if (!agg) {
      agg = new TrainAggregate(m.t);
      this.aggs.set(m.t, agg);
    }
    agg.add(m);
    this.cols.put(agg.point(), this.gapS);
    // Frames do not run in a hidden tab: bound the arrays without them.
    if (this.cols.t.length > MAX_POINTS) this.trim();
    this.schedule();
  }

  private schedule(): void {
    if (this.raf === 0) this.raf = requestAnimationFrame(this.flush);
  }

  private readonly flush = (): void => {
    this.raf = 0;
    this.trim();
    if (!Number.isFinite(this.gapS) && !this.loading) this.gapS = this.gapThreshold();
    for (const ch of this.charts) ch.u.setData(ch.data(), !ch.zoomed);
    const n = this.rtt.u.data[0].length;
    this.root.dataset.points = String(n);
    if (!this.loading) {
      const hasData = this.cols.p50.some((v) => v !== null) || this.cols.loss.some((v) => v !== null);
      this.setEmpty(hasData ? null : 'No measurements for this direction in the last 15 minutes.');
    }
  };

  /** Drops everything older than the 15-minute window. */
  private trim(): void {
    const cutoff = this.hooks.now() - WINDOW_S;
    if (this.cols.trimBefore(cutoff) === 0) return;
    for (const t of this.aggs.keys()) if (t < cutoff) this.aggs.delete(t);
  }

  private setEmpty(msg: string | null): void {
    this.empty.hidden = msg === null;
    this.empty.textContent = msg ?? '';
  }

  private renderMeta(): void {
    const d = this.dir;
    this.meta.textContent = d ? `${this.engine} · target p99 ≤ ${fmtMs(this.targetMs)} · last 15 min` : '';
  }

  /** Null runs shorter than this are spanned; longer ones are drawn as gaps. */
  private gapThreshold(): number {
    const typical = this.cols.typicalIntervalS();
    return typical > 0 ? typical * 2.5 : Infinity;
  }

  private width(): number {
    return Math.max(200, Math.floor(this.plots.clientWidth));
  }

  private pointsWanted(): number {
    return Math.max(30, Math.round(this.rtt.u.bbox.width / uPlot.pxRatio) || this.width() - Y_AXIS_SIZE);
  }

  private make(
    name: keyof typeof HEIGHTS,
    width: number,
    yLabel: string,
    series: uPlot.Series[],
    data: () => uPlot.AlignedData,
    fmt: (v: number | null) => string,
    bottom: boolean,
  ): Chart {
    const el = document.createElement('div');
    el.className = `plot plot-${name}`;
    this.plots.append(el);

    const chart: Chart = { u: undefined as unknown as uPlot, zoomed: false, data };
    const isRtt = name === 'rtt';
    const opts: uPlot.Options = {
      width,
      height: HEIGHTS[name],
      cursor: {
        y: false, // the y position means nothing in the other two charts
        sync: { key: SYNC_KEY, setSeries: false },
        drag: { x: true, y: false, setScale: true },
        points: { size: 5 },
      },
      scales: {
        x: { time: true },
        y: {
          range: (_u, min, max) => {
            const floor = isRtt ? (this.targetMs ?? 0) : name === 'loss' ? 1 : 0;
            const hi = Math.max(Number.isFinite(max) ? max : 0, floor);
            const lo = Number.isFinite(min) ? Math.min(0, min) : 0;
            if (hi <= lo) return [0, isRtt ? 1 : name === 'loss' ? 1 : 0.1];
            return uPlot.rangeNum(lo, hi, 0.1, true);
          },
        },
      },
      axes: [
        {
          stroke: C.axis,
          grid: { stroke: C.grid, width: 1 },
          ticks: { stroke: C.grid, width: 1, size: bottom ? 4 : 0 },
          size: bottom ? 30 : 6,
          font: '11px system-ui, sans-serif',
          values: bottom ? timeLabels : (_u, splits) => splits.map(() => ''),
        },
        {
          stroke: C.axis,
          grid: { stroke: C.grid, width: 1 },
          ticks: { stroke: C.grid, width: 1, size: 4 },
          size: Y_AXIS_SIZE,
          font: '11px system-ui, sans-serif',
          label: yLabel,
          labelSize: 16,
          labelFont: '11px system-ui, sans-serif',
        },
      ],
      series: [
        { value: (_u, v) => (v == null ? '—' : fmtTime(v * 1000)) },
        ...series.map<uPlot.Series>((s) => ({
          ...s,
          value: (_u: uPlot, v: number | null) => fmt(v),
          gaps: this.refineGaps,
          points: { show: false },
        })),
      ],
      bands: isRtt ? [{ series: [4, 1], fill: C.band }] : [],
      legend: { live: true },
      plugins: this.plugins,
      hooks: {
        setScale: [
          (u, key) => {
            if (key !== 'x') return;
            const xs = u.data[0];
            const n = xs.length;
            const min = u.scales.x?.min;
            const max = u.scales.x?.max;
            if (n < 2 || min == null || max == null) {
              chart.zoomed = false;
              return;
            }
            const eps = (xs[n - 1]! - xs[0]!) * 1e-6;
            chart.zoomed = min > xs[0]! + eps || max < xs[n - 1]! - eps;
          },
        ],
        draw: isRtt ? [(u) => this.drawTarget(u)] : [],
      },
    };
    chart.u = new uPlot(opts, data(), el);
    return chart;
  }

  /** Keeps only gaps longer than gapS: missing buckets between trains are spanned. */
  private readonly refineGaps = (u: uPlot, _i: number, _i0: number, _i1: number, gaps: [number, number][]): [number, number][] => {
    if (!Number.isFinite(this.gapS) || gaps.length === 0) return gaps;
    const x = u.scales.x;
    if (x?.min == null || x.max == null || x.max <= x.min) return gaps;
    const minPx = (this.gapS * u.bbox.width) / (x.max - x.min);
    return gaps.filter(([a, b]) => b - a >= minPx);
  };

  private drawTarget(u: uPlot): void {
    const target = this.targetMs;
    if (target == null) return;
    drawTargetLine(u, target, 'y', C.target);
  }
}

/** 24-hour axis labels: HH:MM on whole minutes, HH:MM:SS otherwise. */
export function timeLabels(_u: uPlot, splits: number[]): string[] {
  const seconds = splits.some((s) => s % 60 !== 0);
  return splits.map((s) => {
    const d = new Date(s * 1000);
    const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
    return seconds ? `${hm}:${pad(d.getSeconds())}` : hm;
  });
}

const pad = (n: number): string => String(n).padStart(2, '0');
