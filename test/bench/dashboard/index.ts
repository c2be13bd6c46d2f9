/**
 * The dashboard in headless Chromium (Debian's, through playwright-core):
 *
 * - first matrix paint: navigation start → the first frame in which all 380
 *   cells of a 20-centre matrix show data (fresh browser context each time);
 *   the same for a 100-centre city (9,900 cells), with the status response's
 *   size on the wire and decoded;
 * - chart render: the dashboard's own chart path (three x-synced uPlot
 *   charts) given a series of 86,400 points (the series request is answered
 *   by the benchmark), from the parsed response to the drawn charts. Ceiling:
 *   uPlot alone drawing the same three charts with the same data on a blank
 *   page, in the same browser. Anchor: uPlot's README (166,650 points in
 *   25 ms cold, then ~100,000 points/ms).
 */
import { waitInPage } from '../../helpers/browser.js';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { chromium, type Browser } from 'playwright-core';
import { insertTrains } from '../../../sql/index.js';
import { CHROMIUM, missingChromium } from '../../helpers/requirements.js';
import { repoRoot } from '../../helpers/netns.js';
import { startTestServer, testTopology } from '../../helpers/stack.js';
import { size, wallMs } from '../lib/env.js';
import { emit, note } from '../lib/figures.js';
import { median } from '../lib/stats.js';
import { rowsFor, sampleJson } from '../ingest/trains.js';

const B = 'dashboard';
const CENTRES = 20;
const POINTS = 86_400;
const RUNS = size(5, 2);
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync'];
const VIEWPORT = { width: 1280, height: 900 };

/** Runs in the page before its scripts: notes when the matrix is full and when the chart has drawn the series. */
const INSTRUMENT = (expectedCells: number, points: number) => `
(() => {
  const w = window;
  const tick = () => {
    if (document.querySelectorAll('#matrix td.has-data').length >= ${expectedCells}) { w.__matrixPaint = performance.now(); return; }
    requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
  const f = w.fetch.bind(w);
  w.fetch = async (...a) => {
    const r = await f(...a);
    if (String(a[0]).includes('/series')) {
      w.__seriesAt = performance.now();
      const json = r.json.bind(r);
      r.json = async () => { const v = await json(); w.__seriesParsed = performance.now(); return v; };
    }
    return r;
  };
  addEventListener('DOMContentLoaded', () => {
    const charts = document.getElementById('charts');
    if (!charts) return;
    new MutationObserver(() => {
      if (charts.dataset.points === '${points}' && w.__chartDrawn === undefined) w.__chartDrawn = performance.now();
    }).observe(charts, { attributes: true, attributeFilter: ['data-points'] });
  });
})();`;

/** A series response of `n` points ending now (inside the dashboard's 15-minute window). */
function seriesBody(src: string, dst: string, n: number): string {
  const nowS = wallMs() / 1000;
  const t0 = nowS - 880;
  const step = 860 / n;
  const t = new Array<number>(n);
  const min = new Array<number>(n);
  const p50 = new Array<number>(n);
  const p99 = new Array<number>(n);
  const max = new Array<number>(n);
  const jitter = new Array<number>(n);
  const loss = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    t[i] = Math.round((t0 + i * step) * 1000) / 1000;
    const base = 0.4 + 0.1 * Math.sin(i / 500);
    min[i] = Math.round(base * 1000) / 1000;
    p50[i] = Math.round((base + 0.05 + ((i * 7) % 13) / 1000) * 1000) / 1000;
    p99[i] = Math.round((base + 0.2 + ((i * 11) % 97) / 500) * 1000) / 1000;
    max[i] = Math.round((p99[i]! + 0.1) * 1000) / 1000;
    jitter[i] = Math.round((0.02 + ((i * 3) % 17) / 1000) * 1000) / 1000;
    loss[i] = i % 5000 === 0 ? 0.01 : 0;
  }
  return JSON.stringify({
    src, dst, engine: 'stamp', source: 'raw', stepS: step, from: new Date(t0 * 1000).toISOString(), to: new Date(nowS * 1000).toISOString(),
    t, minMs: min, p50Ms: p50, p99Ms: p99, maxMs: max, jitterMs: jitter, lossRatio: loss, packets: t.map(() => 100),
  });
}

/**
 * In the page (plain JS: this file has no DOM types). Three charts shaped like
 * the dashboard's, created empty, then one setData each with the series (what
 * the dashboard does when a series arrives); or, for the README anchor, one
 * chart of one series created cold with its data.
 */
const UPLOT_ALONE = `async (n, one, width) => {
  const now = Date.now() / 1000;
  const col = (f) => Array.from({ length: n }, (_, i) => f(i));
  const t = col((i) => now - 880 + (i * 860) / n);
  const base = (i) => 0.4 + 0.1 * Math.sin(i / 500);
  const rtt = [t, col(base), col((i) => base(i) + 0.05 + ((i * 7) % 13) / 1000), col((i) => base(i) + 0.2 + ((i * 11) % 97) / 500), col((i) => base(i) + 0.3 + ((i * 11) % 97) / 500)];
  const jitter = [t, col((i) => 0.02 + ((i * 3) % 17) / 1000)];
  const loss = [t, col((i) => (i % 5000 === 0 ? 1 : 0))];
  const el = document.getElementById('plots');
  const mk = (height, series) => ({
    width, height, scales: { x: { time: true } },
    series: [{}, ...Array.from({ length: series }, () => ({ stroke: '#6cb6ff', width: 1, points: { show: false } }))],
  });
  const macrotask = () => new Promise((r) => { const c = new MessageChannel(); c.port1.onmessage = () => r(); c.port2.postMessage(0); });
  if (one) {
    await macrotask();
    const t0 = performance.now();
    new uPlot(mk(230, 1), [t, rtt[2]], el);
    await macrotask(); // uPlot commits its draws in a microtask
    return performance.now() - t0;
  }
  const empty = (k) => Array.from({ length: k + 1 }, () => []);
  const charts = [new uPlot(mk(230, 4), empty(4), el), new uPlot(mk(120, 1), empty(1), el), new uPlot(mk(120, 1), empty(1), el)];
  await macrotask();
  const t0 = performance.now();
  charts[0].setData(rtt);
  charts[1].setData(jitter);
  charts[2].setData(loss);
  await macrotask();
  return performance.now() - t0;
}`;

/** uPlot alone on a blank page: the same three charts and series, the same data shape. */
async function uplotAlone(browser: Browser, oneSeries: boolean, width: number): Promise<number> {
  const require = createRequire(`${repoRoot}/package.json`);
  const js = readFileSync(require.resolve('uplot/dist/uPlot.iife.min.js'), 'utf8');
  const css = readFileSync(require.resolve('uplot/dist/uPlot.min.css'), 'utf8');
  const context = await browser.newContext({ viewport: VIEWPORT });
  const page = await context.newPage();
  await page.setContent(`<!doctype html><html><head><style>${css}</style></head><body><div id="plots"></div></body></html>`);
  await page.addScriptTag({ content: js });
  const ms = (await page.evaluate(`(${UPLOT_ALONE})(${POINTS}, ${oneSeries}, ${width})`)) as number;
  await context.close();
  return ms;
}

/**
 * Trains for every direction of `ids` in the last seconds, so every cell of the matrix has a value:
 * three rounds, each one INSERT of every source's trains (a 100-centre city stored one source at a
 * time takes longer than the 60 s status window on a busy machine).
 */
async function fillMatrix(client: Parameters<typeof insertTrains>[0], ids: string[]): Promise<void> {
  const nowUs = Math.round(wallMs() * 1000);
  for (let k = 0; k < 3; k++) {
    const rows = ids.flatMap((src) => {
      const id = `dash-${src}-${k}`;
      const samples = ids.filter((d) => d !== src).map((dst, i) => sampleJson(`${id}.${i}`, dst, nowUs - (3 - k) * 2e6, 0));
      return rowsFor(src, id, samples);
    });
    await insertTrains(client, rows, `dash-round-${k}`);
  }
}

/**
 * The matrix of a bigger city: cold loads until every cell of an n-centre
 * matrix shows data (its own server and trains). Also how long the /v1/status
 * response took to arrive and its size on the wire (gzipped) and decoded.
 */
async function bigMatrixPaint(browser: Browser, n: number): Promise<void> {
  const ids = Array.from({ length: n }, (_, i) => `c${String(i).padStart(3, '0')}`);
  const topo = testTopology(ids, '127.0.21');
  const server = await startTestServer(topo.topology);
  try {
    const filling = performance.now();
    await fillMatrix(server.store.client, ids);
    const cells = n * (n - 1);
    const status = (await (await fetch(`${server.url}/v1/status`, { headers: { authorization: `Bearer ${topo.operatorToken}` } })).json()) as { paths: { state: string; rttP99Ms: number | null }[] };
    note(B, `${n} centres: ${cells.toLocaleString('en')} directions' trains stored in ${((performance.now() - filling) / 1000).toFixed(0)} s; /v1/status has ${status.paths.filter((p) => p.rttP99Ms !== null).length} directions with an RTT`);
    const paints: number[] = [];
    const statusDone: number[] = [];
    const applies: number[] = [];
    const applyStarts: number[] = [];
    let sizes = { wire: 0, decoded: 0 };
    for (let r = 0; r < RUNS; r++) {
      const context = await browser.newContext({ viewport: VIEWPORT });
      await context.addInitScript({ content: INSTRUMENT(cells, POINTS) });
      const page = await context.newPage();
      const problems: string[] = [];
      page.on('pageerror', (e) => problems.push(e.message));
      await page.goto(`${server.url}/#token=${topo.operatorToken}`);
      await waitInPage(page, 'window.__matrixPaint !== undefined', 120_000).catch(async (error: Error) => {
        throw new Error(`${error.message}; ${String(await page.evaluate('document.querySelectorAll("#matrix td.has-data").length'))} of ${cells} cells filled; ${String(await page.evaluate(`JSON.stringify({ rows: document.querySelectorAll("#matrix tr").length, tds: document.querySelectorAll("#matrix td").length, banner: document.body.innerText.slice(0, 600) })`))}; page errors: ${problems.join('; ') || 'none'}`);
      });
      const m = (await page.evaluate(`(() => {
        const status = performance.getEntriesByType('resource').find((e) => e.name.includes('/v1/status'));
        const apply = performance.getEntriesByName('citymesh:matrix.applyStatus')[0];
        return { paint: window.__matrixPaint, status: status ? status.responseEnd : NaN, wire: status ? status.encodedBodySize : 0, decoded: status ? status.decodedBodySize : 0,
          applyStart: apply ? apply.startTime : NaN, apply: apply ? apply.duration : NaN };
      })()`)) as { paint: number; status: number; wire: number; decoded: number; applyStart: number; apply: number };
      applies.push(m.apply);
      applyStarts.push(m.applyStart);
      if (problems.length) note(B, `page errors (${n} centres): ${problems.join('; ')}`);
      paints.push(m.paint);
      statusDone.push(m.status);
      sizes = { wire: m.wire, decoded: m.decoded };
      await context.close();
    }
    note(B, `first matrix paint, ${n} centres (${cells.toLocaleString('en')} cells), ${RUNS} cold loads: median ${median(paints)?.toFixed(0)} ms after navigation start; ` +
      `/v1/status answered at ${median(statusDone)?.toFixed(0)} ms, ${(sizes.wire / 1024).toFixed(0)} KiB on the wire (gzip), ${(sizes.decoded / 1024).toFixed(0)} KiB decoded; ` +
      `applied to the matrix from ${median(applyStarts)?.toFixed(0)} ms, taking ${median(applies)?.toFixed(0)} ms of script`);
    emit({ name: `dashboard.first_matrix_paint_${n}c`, value: median(paints), unit: 'ms', better: 'lower',
      note: `navigation start → first frame with all ${cells.toLocaleString('en')} cells of a ${n}-centre matrix filled; no numeric target in the issue` });
    emit({ name: `dashboard.matrix_apply_status_${n}c`, value: median(applies), unit: 'ms', better: 'lower',
      note: `script time of applying one /v1/status (${cells.toLocaleString('en')} directions) to the matrix's cells (User Timing mark in dashboard/src/main.ts); the browser's style, layout and paint come after it` });
  } finally {
    await server.stop();
  }
}

export async function run(): Promise<void> {
  const missing = missingChromium();
  if (missing) {
    note(B, `skipped: ${missing}`);
    return;
  }
  const ids = Array.from({ length: CENTRES }, (_, i) => `c${String(i).padStart(2, '0')}`);
  const topo = testTopology(ids, '127.0.20');
  const server = await startTestServer(topo.topology);
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS });
  try {
    await fillMatrix(server.store.client, ids);
    const cells = CENTRES * (CENTRES - 1);
    const url = `${server.url}/#token=${topo.operatorToken}`;

    const paints: number[] = [];
    const statusDone: number[] = [];
    const renders: number[] = [];
    let chartWidth = 1200;
    const parses: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      const context = await browser.newContext({ viewport: VIEWPORT });
      await context.addInitScript({ content: INSTRUMENT(cells, POINTS) });
      await context.route('**/v1/links/*/*/series*', async (route) => {
        const [, src, dst] = /\/v1\/links\/([^/]+)\/([^/]+)\/series/.exec(route.request().url()) ?? [];
        await route.fulfill({ status: 200, contentType: 'application/json', body: seriesBody(src ?? '', dst ?? '', POINTS) });
      });
      const page = await context.newPage();
      const problems: string[] = [];
      page.on('pageerror', (e) => problems.push(e.message));
      await page.goto(url);
      await waitInPage(page, 'window.__matrixPaint !== undefined', 60_000);
      await waitInPage(page, 'window.__chartDrawn !== undefined', 60_000);
      const m = (await page.evaluate(`(() => {
        const status = performance.getEntriesByType('resource').find((e) => e.name.includes('/v1/status'));
        const u = document.querySelector('#charts .plot-rtt canvas');
        return { paint: window.__matrixPaint, status: status ? status.responseEnd : NaN, at: window.__seriesAt, parsed: window.__seriesParsed, drawn: window.__chartDrawn,
          width: u ? u.clientWidth : 0 };
      })()`)) as { paint: number; status: number; at: number; parsed: number; drawn: number; width: number };
      chartWidth = m.width || chartWidth;
      if (problems.length) note(B, `page errors: ${problems.join('; ')}`);
      paints.push(m.paint);
      statusDone.push(m.status);
      parses.push(m.parsed - m.at);
      renders.push(m.drawn - m.parsed);
      await context.close();
    }
    const alone: number[] = [];
    const one: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      alone.push(await uplotAlone(browser, false, chartWidth));
      one.push(await uplotAlone(browser, true, chartWidth));
    }
    const paint = median(paints);
    note(B, `first matrix paint (${cells} cells), ${RUNS} cold loads: median ${paint?.toFixed(0)} ms after navigation start; ` +
      `/v1/status answered at ${median(statusDone)?.toFixed(0)} ms`);
    note(B, `chart with ${POINTS.toLocaleString('en')} points (3 charts, 6 series): JSON parse of the ${(seriesBody('a', 'b', POINTS).length / 2 ** 20).toFixed(1)} MiB response ` +
      `${median(parses)?.toFixed(0)} ms, then dashboard render ${median(renders)?.toFixed(0)} ms; uPlot alone, same charts ${median(alone)?.toFixed(0)} ms; ` +
      `(charts ${chartWidth} px wide, both); uPlot alone, one series ${median(one)?.toFixed(1)} ms (README anchor: 166,650 points in 25 ms cold on its author's machine)`);
    emit({ name: 'dashboard.first_matrix_paint', value: paint, unit: 'ms', better: 'lower',
      note: `navigation start → first frame with all ${cells} cells filled; no numeric target in the issue` });
    emit({ name: 'dashboard.chart_render_86400', value: median(renders), unit: 'ms', better: 'lower', ceiling: median(alone),
      note: 'parsed series response → three charts drawn; ceiling = uPlot alone: setData of the same series on the same three (empty) charts, blank page' });
    emit({ name: 'dashboard.uplot_one_series_86400', value: median(one), unit: 'ms', better: 'lower',
      note: 'uPlot alone, one line of 86,400 points: compare uPlot README, 166,650 points in 25 ms' });
  } finally {
    await server.stop(); // one data directory per process: the bigger city gets the engine next
  }
  try {
    await bigMatrixPaint(browser, size(100, 30));
  } finally {
    await browser.close();
  }
}
