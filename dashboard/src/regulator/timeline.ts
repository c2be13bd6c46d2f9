// A link's month as two x-synced uPlot charts:
// - #timeline: one lane per criterion with every breach run drawn as a band
//   (from the link detail endpoint), the month's throughput tests as dots,
//   maintenance windows, and the minutes without data (from the minute
//   evidence, once loaded);
// - #evidence: the worse direction's per-minute RTT percentile against the
//   target, and the per-minute loss (the minute evidence endpoint).
//
// Test hooks: #timeline data-link, data-state ('idle' | 'loading' | 'ready' |
// 'error') and data-breaches (breach runs drawn); #evidence data-state and
// data-points (minutes with an RTT figure); both: data-from and data-to (the
// x range shown, Unix seconds; empty without data).
import uPlot from 'uplot';
import type { SlaBreachRun, SlaLinkDetailResponse, SlaMinutesResponse } from '../../../api/contract.js';
import { fmtGbps, fmtMs } from '../format.js';
import { PALETTE } from '../palette.js';
import { fmtMinutes, fmtRatio, type Zoned } from './sla-format.js';
import { drawTargetLine } from '../target-line.js';

type RunCriterion = keyof SlaLinkDetailResponse['timeline'];
type LaneKey = RunCriterion | 'capacity_tested' | 'maintenance' | 'nodata';

interface Lane {
  key: LaneKey;
  label: string;
  colour: string;
}

const LANES: readonly Lane[] = [
  { key: 'latency', label: 'latency', colour: PALETTE.bad },
  { key: 'loss', label: 'loss', colour: PALETTE.orange },
  { key: 'availability', label: 'availability', colour: '#db61a2' },
  { key: 'capacity_provisioned', label: 'provisioned', colour: PALETTE.violet },
  { key: 'capacity_tested', label: 'tests', colour: PALETTE.ok },
  { key: 'maintenance', label: 'maintenance', colour: '#6e7681' },
  { key: 'nodata', label: 'no data', colour: '#d29922' },
];
const RUN_CRITERIA: readonly RunCriterion[] = ['latency', 'loss', 'availability', 'capacity_provisioned'];

const C = {
  axis: PALETTE.axis,
  grid: PALETTE.grid,
  lane: 'rgba(240, 246, 252, 0.025)',
  rtt: PALETTE.blue,
  loss: PALETTE.orange,
  target: PALETTE.target,
  excluded: 'rgba(110, 118, 129, 0.18)',
  ok: PALETTE.ok,
  bad: PALETTE.bad,
};

const SYNC_KEY = 'citymesh-sla';
const Y_AXIS_SIZE = 92;
const HEIGHTS = { timeline: 210, evidence: 200 };
/** Narrower runs are widened to this many CSS pixels, so a one-minute breach in a month stays visible. */
const MIN_RUN_PX = 2;
const RUNS_LISTED = 500;

export interface TimelineHooks {
  /** Instants in the policy's time zone. */
  zone(): Zoned;
}

interface Band {
  lane: LaneKey;
  startS: number;
  endS: number;
  minutes: number;
  /** What the hover line says about it. */
  text: string;
}

interface TestDot {
  t: number;
  ok: boolean;
  belowFloor: boolean;
  text: string;
}

export class LinkTimeline {
  private readonly timeline: uPlot;
  private readonly evidence: uPlot;
  private bands: Band[] = [];
  private dots: TestDot[] = [];
  private excluded: [number, number][] = [];
  private targetMs: number | null = null;
  private syncing = false;

  constructor(
    private readonly timelineEl: HTMLElement,
    private readonly evidenceEl: HTMLElement,
    private readonly evidenceEmpty: HTMLElement,
    private readonly hoverLine: HTMLElement,
    private readonly runsBody: HTMLTableSectionElement,
    private readonly hooks: TimelineHooks,
  ) {
    this.timeline = this.makeTimeline();
    this.evidence = this.makeEvidence();
    let queued = false;
    const resize = new ResizeObserver(() => {
      if (queued) return;
      queued = true;
      requestAnimationFrame(() => {
        queued = false;
        for (const [u, el] of [[this.timeline, this.timelineEl], [this.evidence, this.evidenceEl]] as const) {
          const w = plotWidth(el);
          if (u.width !== w) u.setSize({ width: w, height: u.height });
        }
      });
    });
    resize.observe(this.timelineEl);
    resize.observe(this.evidenceEl);
  }

  /** Nothing shown (no link selected, or the month changed). */
  clear(state: 'idle' | 'loading' = 'idle'): void {
    this.bands = [];
    this.dots = [];
    this.excluded = [];
    this.targetMs = null;
    this.timelineEl.dataset.link = '';
    this.timelineEl.dataset.breaches = '0';
    this.timelineEl.dataset.state = state;
    this.timeline.setData([[], []], true);
    this.setMinutes(null, state);
    this.runsBody.replaceChildren();
    this.hoverLine.textContent = '\u00a0';
  }

  loading(linkId: string): void {
    this.clear('loading');
    this.timelineEl.dataset.link = linkId;
  }

  failed(): void {
    this.timelineEl.dataset.state = 'error';
  }

  /** The link's breach runs, tests and maintenance over [startS, endS). */
  show(d: SlaLinkDetailResponse, startS: number, endS: number): void {
    const z = this.hooks.zone();
    const bands: Band[] = [];
    for (const c of RUN_CRITERIA) {
      for (const r of d.timeline[c] ?? []) bands.push(runBand(c, r, z));
    }
    const breaches = bands.length;
    for (const w of d.maintenance) {
      const s = Date.parse(w.start) / 1000;
      const e = Date.parse(w.end) / 1000;
      if (!Number.isFinite(s) || !Number.isFinite(e)) continue;
      bands.push({
        lane: 'maintenance', startS: s, endS: e, minutes: Math.round((e - s) / 60),
        text: `maintenance ${z.dateTime(s * 1000)} → ${z.dateTime(e * 1000)}: ${w.reason}${w.excluded ? ' (excluded)' : ' (declared late: not excluded)'}`,
      });
    }
    const floor = d.link.policy?.throughputFloorGbps ?? null;
    this.dots = d.tests.flatMap((x) => {
      const t = Date.parse(x.at) / 1000;
      if (!Number.isFinite(t)) return [];
      const dirs = [x.abGbps, x.baGbps].filter((v): v is number => v !== null);
      const worse = dirs.length > 0 ? Math.min(...dirs) : null;
      const belowFloor = x.ok && worse !== null && floor !== null && worse < floor;
      const result = x.ok ? `worse direction ${fmtGbps(worse)}${belowFloor ? ` (below the ${fmtGbps(floor)} floor)` : ''}` : `failed: ${x.error ?? 'no reason'}`;
      return [{ t, ok: x.ok, belowFloor, text: `test ${z.dateTime(t * 1000)} from ${x.client}: ${result}` }];
    });
    this.bands = bands;
    this.targetMs = d.link.policy?.rttTargetMs ?? null;
    this.timelineEl.dataset.link = d.link.id;
    this.timelineEl.dataset.breaches = String(breaches);
    this.timelineEl.dataset.state = 'ready';
    this.timeline.setData([[startS, endS], [null, null]], true);
    this.renderRuns(bands.filter((b) => b.lane !== 'maintenance'));
  }

  /** The minute evidence: the second chart, and the "no data" lane of the timeline. */
  setMinutes(m: SlaMinutesResponse | null, state: 'idle' | 'loading' | 'ready' | 'error' = m ? 'ready' : 'idle'): void {
    this.evidenceEl.dataset.state = state;
    if (!m) {
      this.evidence.setData([[], [], []], true);
      this.evidenceEl.dataset.points = '0';
      this.excluded = [];
      if (this.bands.some((b) => b.lane === 'nodata')) {
        this.bands = this.bands.filter((b) => b.lane !== 'nodata');
        this.renderRuns(this.bands.filter((b) => b.lane !== 'maintenance'));
      }
      this.setEmpty(state === 'loading' ? 'Loading the minute evidence…' : state === 'error' ? 'The minute evidence could not be loaded.' : null);
      this.timeline.redraw(false);
      return;
    }
    const n = m.t.length;
    const rtt: (number | null)[] = new Array<number | null>(n);
    const loss: (number | null)[] = new Array<number | null>(n);
    let points = 0;
    const nodata: [number, number][] = [];
    const excluded: [number, number][] = [];
    let runStart = -1;
    let exStart = -1;
    for (let i = 0; i <= n; i++) {
      const ex = i < n && m.excluded[i] === 1;
      const gap = i < n && !ex && m.covered[i] !== 1;
      if (gap && runStart < 0) runStart = i;
      if (!gap && runStart >= 0) {
        nodata.push([runStart, i]);
        runStart = -1;
      }
      if (ex && exStart < 0) exStart = i;
      if (!ex && exStart >= 0) {
        excluded.push([m.t[exStart]!, (m.t[i - 1] ?? m.t[exStart]!) + 60]);
        exStart = -1;
      }
      if (i === n) break;
      const ab = m.abRttMs[i] ?? null;
      const ba = m.baRttMs[i] ?? null;
      const worst = ab === null ? ba : ba === null ? ab : Math.max(ab, ba);
      rtt[i] = ex ? null : worst;
      if (rtt[i] !== null) points++;
      const sent = (m.abSent[i] ?? 0) + (m.baSent[i] ?? 0);
      loss[i] = ex || sent === 0 ? null : (((m.abLost[i] ?? 0) + (m.baLost[i] ?? 0)) / sent) * 100;
    }
    const z = this.hooks.zone();
    this.bands = this.bands.filter((b) => b.lane !== 'nodata');
    for (const [a, b] of nodata) {
      const s = m.t[a]!;
      const e = m.t[b - 1]! + 60;
      const minutes = b - a;
      this.bands.push({ lane: 'nodata', startS: s, endS: e, minutes, text: `no data ${z.dateTime(s * 1000)} → ${z.dateTime(e * 1000)} (${fmtMinutes(minutes)})` });
    }
    this.excluded = excluded;
    this.targetMs = m.rttTargetMs;
    this.renderRuns(this.bands.filter((b) => b.lane !== 'maintenance'));
    // One row past the last minute so the x range is the whole period, as on the timeline.
    const last = m.t[n - 1];
    const xs = last === undefined ? [] : [...m.t, last + 60];
    this.evidence.setData([xs, last === undefined ? [] : [...rtt, null], last === undefined ? [] : [...loss, null]], true);
    this.evidenceEl.dataset.points = String(points);
    this.setEmpty(points > 0 ? null : 'No minute of this link has an RTT figure in this period.');
    this.timeline.redraw(false);
  }

  /** Shows [startS, endS] on both charts. */
  zoom(startS: number, endS: number): void {
    this.timeline.setScale('x', { min: startS, max: endS });
  }

  private setEmpty(msg: string | null): void {
    this.evidenceEmpty.hidden = msg === null;
    this.evidenceEmpty.textContent = msg ?? '';
  }

  private renderRuns(bands: Band[]): void {
    const z = this.hooks.zone();
    const sorted = bands.slice().sort((a, b) => a.startS - b.startS || a.lane.localeCompare(b.lane));
    const rows = sorted.slice(0, RUNS_LISTED).map((b) => {
      const tr = document.createElement('tr');
      tr.dataset.lane = b.lane;
      tr.tabIndex = 0;
      tr.title = 'show this run on the charts';
      for (const c of [LANES.find((l) => l.key === b.lane)?.label ?? b.lane, z.dateTime(b.startS * 1000), z.dateTime(b.endS * 1000), String(b.minutes)]) {
        tr.insertCell().textContent = c;
      }
      const go = (): void => {
        const pad = Math.max((b.endS - b.startS) * 4, 3 * 3600);
        this.zoom(b.startS - pad, b.endS + pad);
      };
      tr.addEventListener('click', go);
      tr.addEventListener('keydown', (e) => {
        if (e.key === 'Enter' || e.key === ' ') {
          e.preventDefault();
          go();
        }
      });
      return tr;
    });
    if (sorted.length === 0) {
      const tr = document.createElement('tr');
      const td = tr.insertCell();
      td.colSpan = 4;
      td.className = 'none';
      td.textContent = 'No breach runs this month.';
      rows.push(tr);
    } else if (sorted.length > RUNS_LISTED) {
      const tr = document.createElement('tr');
      const td = tr.insertCell();
      td.colSpan = 4;
      td.className = 'none';
      td.textContent = `… and ${sorted.length - RUNS_LISTED} more: download the breaches CSV for all of them.`;
      rows.push(tr);
    }
    this.runsBody.replaceChildren(...rows);
  }

  private timeAxis(bottom: boolean): uPlot.Axis {
    return {
      stroke: C.axis,
      grid: { stroke: C.grid, width: 1 },
      ticks: { stroke: C.grid, width: 1, size: 4 },
      size: bottom ? 30 : 24,
      font: '11px system-ui, sans-serif',
      values: (_u, splits, _axis, _space, incr) => {
        const z = this.hooks.zone();
        return splits.map((s) => {
          const t = z.time(s * 1000);
          return incr >= 86_400 || t === '00:00' ? z.date(s * 1000) : t;
        });
      },
    };
  }

  private tzDate = (ts: number): Date => {
    try {
      return uPlot.tzDate(new Date(ts * 1e3), this.hooks.zone().timeZone);
    } catch {
      return new Date(ts * 1e3);
    }
  };

  /** Keeps the other chart's x range in step with a zoom on this one. */
  private syncScale = (u: uPlot, key: string): void => {
    if (key !== 'x') return;
    const { min, max } = u.scales.x!;
    const el = u === this.timeline ? this.timelineEl : this.evidenceEl;
    el.dataset.from = min == null || u.data[0].length === 0 ? '' : String(Math.round(min));
    el.dataset.to = max == null || u.data[0].length === 0 ? '' : String(Math.round(max));
    if (this.syncing) return;
    const other = u === this.timeline ? this.evidence : this.timeline;
    if (min == null || max == null || other.data[0].length === 0) return;
    this.syncing = true;
    try {
      other.setScale('x', { min, max });
    } finally {
      this.syncing = false;
    }
  };

  private makeTimeline(): uPlot {
    const n = LANES.length;
    const laneTop = (i: number): number => n - i;
    const opts: uPlot.Options = {
      width: plotWidth(this.timelineEl),
      height: HEIGHTS.timeline,
      tzDate: this.tzDate,
      legend: { show: false },
      cursor: {
        y: false,
        points: { show: false },
        sync: { key: SYNC_KEY, setSeries: false },
        drag: { x: true, y: false, setScale: true },
      },
      scales: {
        x: { time: true },
        y: { auto: false, range: [0, n] },
      },
      axes: [
        this.timeAxis(true),
        {
          stroke: C.axis,
          grid: { show: false },
          ticks: { show: false },
          size: Y_AXIS_SIZE,
          font: '11px system-ui, sans-serif',
          splits: () => LANES.map((_l, i) => laneTop(i) - 0.5),
          values: (_u, splits) => splits.map((s) => LANES[n - 0.5 - s]?.label ?? ''),
        },
      ],
      series: [{}, { label: 'lanes', show: true, stroke: 'transparent', points: { show: false } }],
      hooks: {
        draw: [(u) => this.drawLanes(u)],
        setCursor: [(u) => this.hover(u)],
        setScale: [this.syncScale],
      },
    };
    return new uPlot(opts, [[], []], this.timelineEl);
  }

  private makeEvidence(): uPlot {
    const opts: uPlot.Options = {
      width: plotWidth(this.evidenceEl),
      height: HEIGHTS.evidence,
      tzDate: this.tzDate,
      cursor: {
        y: false,
        points: { size: 5 },
        sync: { key: SYNC_KEY, setSeries: false },
        drag: { x: true, y: false, setScale: true },
      },
      scales: {
        x: { time: true },
        ms: {
          range: (_u, _min, max) => {
            const hi = Math.max(Number.isFinite(max) ? max : 0, (this.targetMs ?? 0) * 1.25, 0.1);
            return [0, hi * 1.05];
          },
        },
        pct: { range: (_u, _min, max) => [0, Math.max(Number.isFinite(max) ? max : 0, 1) * 1.05] },
      },
      axes: [
        this.timeAxis(true),
        {
          scale: 'ms',
          stroke: C.axis,
          grid: { stroke: C.grid, width: 1 },
          ticks: { stroke: C.grid, width: 1, size: 4 },
          size: Y_AXIS_SIZE,
          font: '11px system-ui, sans-serif',
          label: 'RTT, ms',
          labelSize: 16,
          labelFont: '11px system-ui, sans-serif',
        },
        {
          scale: 'pct',
          side: 1,
          stroke: C.loss,
          grid: { show: false },
          ticks: { stroke: C.grid, width: 1, size: 4 },
          size: 48,
          font: '11px system-ui, sans-serif',
          values: (_u, splits) => splits.map((v) => `${v}%`),
        },
      ],
      series: [
        { value: (_u, v) => (v == null ? '—' : this.hooks.zone().dateTime(v * 1000)) },
        { label: 'RTT, worse direction', scale: 'ms', stroke: C.rtt, width: 1, points: { show: false }, value: (_u, v) => fmtMs(v) },
        { label: 'loss', scale: 'pct', stroke: C.loss, width: 1, points: { show: false }, value: (_u, v) => (v == null ? '—' : fmtRatio(v / 100)) },
      ],
      hooks: {
        drawClear: [(u) => this.drawExcluded(u)],
        draw: [(u) => this.drawTarget(u)],
        setScale: [this.syncScale],
      },
    };
    return new uPlot(opts, [[], [], []], this.evidenceEl);
  }

  private drawLanes(u: uPlot): void {
    const { left, top, width, height } = u.bbox;
    const ctx = u.ctx;
    const n = LANES.length;
    const pr = uPlot.pxRatio;
    const laneH = height / n;
    ctx.save();
    ctx.beginPath();
    ctx.rect(left, top, width, height);
    ctx.clip();
    LANES.forEach((lane, i) => {
      if (i % 2 === 0) {
        ctx.fillStyle = C.lane;
        ctx.fillRect(left, top + i * laneH, width, laneH);
      }
    });
    if (u.data[0].length > 0) {
      for (const b of this.bands) {
        const i = LANES.findIndex((l) => l.key === b.lane);
        if (i < 0) continue;
        const x0 = u.valToPos(b.startS, 'x', true);
        const x1 = u.valToPos(b.endS, 'x', true);
        const w = Math.max(x1 - x0, MIN_RUN_PX * pr);
        ctx.fillStyle = LANES[i]!.colour;
        ctx.globalAlpha = b.lane === 'maintenance' || b.lane === 'nodata' ? 0.55 : 0.9;
        ctx.fillRect(x0 - (w - (x1 - x0)) / 2, top + i * laneH + 3 * pr, w, laneH - 6 * pr);
      }
      ctx.globalAlpha = 1;
      const ti = LANES.findIndex((l) => l.key === 'capacity_tested');
      const cy = top + ti * laneH + laneH / 2;
      const r = Math.max(3 * pr, Math.min(laneH / 3, 5 * pr));
      for (const d of this.dots) {
        const x = u.valToPos(d.t, 'x', true);
        ctx.strokeStyle = ctx.fillStyle = d.ok && !d.belowFloor ? C.ok : C.bad;
        ctx.lineWidth = 1.5 * pr;
        ctx.beginPath();
        if (d.ok) {
          ctx.arc(x, cy, r, 0, 2 * Math.PI);
          ctx.fill();
        } else {
          ctx.moveTo(x - r, cy - r);
          ctx.lineTo(x + r, cy + r);
          ctx.moveTo(x + r, cy - r);
          ctx.lineTo(x - r, cy + r);
          ctx.stroke();
        }
      }
    }
    ctx.restore();
  }

  private drawExcluded(u: uPlot): void {
    if (this.excluded.length === 0 || u.data[0].length === 0) return;
    const { left, top, width, height } = u.bbox;
    const ctx = u.ctx;
    ctx.save();
    ctx.beginPath();
    ctx.rect(left, top, width, height);
    ctx.clip();
    ctx.fillStyle = C.excluded;
    for (const [s, e] of this.excluded) {
      const x0 = u.valToPos(s, 'x', true);
      const x1 = u.valToPos(e, 'x', true);
      ctx.fillRect(x0, top, Math.max(x1 - x0, uPlot.pxRatio), height);
    }
    ctx.restore();
  }

  private drawTarget(u: uPlot): void {
    const target = this.targetMs;
    if (target == null || u.data[0].length === 0) return;
    drawTargetLine(u, target, 'ms', C.target);
  }

  /** The hover line: the run, test or window under the cursor, else the time. */
  private hover(u: uPlot): void {
    const { left, top } = u.cursor;
    if (left == null || top == null || left < 0 || u.data[0].length === 0) {
      this.hoverLine.textContent = '\u00a0';
      return;
    }
    const z = this.hooks.zone();
    const t = u.posToVal(left, 'x');
    const n = LANES.length;
    const lane = LANES[Math.floor((top / (u.bbox.height / uPlot.pxRatio)) * n)];
    const slack = (u.posToVal(left + MIN_RUN_PX * 2, 'x') - t) || 0;
    let text = '';
    if (lane?.key === 'capacity_tested') {
      const near = this.dots.filter((d) => Math.abs(d.t - t) <= slack * 2);
      text = near.map((d) => d.text).join(' · ');
    } else if (lane) {
      const hits = this.bands.filter((b) => b.lane === lane.key && t >= b.startS - slack && t <= b.endS + slack);
      text = hits.slice(0, 3).map((b) => b.text).join(' · ') + (hits.length > 3 ? ` · and ${hits.length - 3} more` : '');
    }
    this.hoverLine.textContent = text || z.dateTime(t * 1000);
  }
}

function runBand(c: RunCriterion, r: SlaBreachRun, z: Zoned): Band {
  const s = Date.parse(r.start) / 1000;
  const e = Date.parse(r.end) / 1000;
  const label = LANES.find((l) => l.key === c)?.label ?? c;
  return { lane: c, startS: s, endS: e, minutes: r.minutes, text: `${label} breach ${z.dateTime(r.start)} → ${z.dateTime(r.end)} (${fmtMinutes(r.minutes)})` };
}

function plotWidth(el: HTMLElement): number {
  return Math.max(300, Math.floor(el.clientWidth));
}
