// The capacity panel's two charts (the view): utilisation at one end, and
// the tested throughput with the committed capacity and the floor. They draw
// what they are given; capacity.ts decides what that is.
import uPlot from 'uplot';
import type { ThroughputHistoryResponse, UtilisationResponse } from '../../api/contract.js';
import { timeLabels } from './charts.js';
import { fmtGbps, fmtPct, fmtTime, fmtWhen } from './format.js';
import { PALETTE } from './palette.js';

const Y_AXIS_SIZE = 56;
const HEIGHTS = { util: 180, tests: 200 };

const C = {
  axis: PALETTE.axis,
  grid: PALETTE.grid,
  peak: PALETTE.orange,
  mean: PALETTE.blue,
  rx: PALETTE.teal,
  tx: PALETTE.violet,
  ab: PALETTE.blue,
  ba: PALETTE.violet,
  committed: PALETTE.axis,
  floor: PALETTE.target,
  failed: PALETTE.failed,
};

/** The utilisation columns as the chart draws them (utilisation in percent); empty columns for none. */
export function utilData(u: UtilisationResponse | null): uPlot.AlignedData {
  const pct = (r: number | null): number | null => (r === null ? null : r * 100);
  return u ? [u.t, u.peak.map(pct), u.mean.map(pct), u.rxGbps, u.txGbps] : [[], [], [], [], []];
}

/** The tests of `h` as dots, with the window [fromS, toS] as empty rows so the x axis always spans it. */
export function historyData(h: ThroughputHistoryResponse | null, fromS: number, toS: number, spanS: number): uPlot.AlignedData {
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
  t.push(Math.max(toS, t[t.length - 1]!) + spanS * 0.02);
  ab.push(null);
  ba.push(null);
  return [t, ab, ba];
}

/** Utilisation (%, left) and rates (Gb/s, right) at one end over the last 3 hours. */
export function makeUtilChart(el: HTMLElement): uPlot {
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

/** Tested goodput per direction as dots, with the committed capacity and the floor of `history()` drawn over them. */
export function makeTestsChart(el: HTMLElement, abLabel: string, baLabel: string, history: () => ThroughputHistoryResponse | null): uPlot {
  const dot = (stroke: string): uPlot.Series.Points => ({ show: true, size: 7, width: 1, stroke, fill: stroke });
  const opts: uPlot.Options = {
    width: plotWidth(el),
    height: HEIGHTS.tests,
    cursor: { drag: { x: true, y: false, setScale: true }, points: { size: 9 } },
    scales: {
      x: { time: true },
      y: {
        range: (_u, _min, max) => {
          const h = history();
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
    hooks: { draw: [(u) => drawTestMarks(u, history())] },
  };
  return new uPlot(opts, [[], [], []], el);
}

/** Committed capacity and the floor as dashed lines, failed tests as red verticals. */
function drawTestMarks(u: uPlot, h: ThroughputHistoryResponse | null): void {
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

export function plotWidth(el: HTMLElement): number {
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
