// citymesh dashboard: wires the API, the live feed, the matrix, the latency
// charts and the capacity panel.
import './token.js'; // first: takes #token=… out of the URL before anything reads the fragment
import type { CentreView, LinkView, LiveMessage, StatusResponse } from '../../api/contract.js';
import { fetchCapacity, fetchCentres, fetchLinks, fetchStatus } from './api.js';
import { CapacityPanel } from './capacity.js';
import { AnnotationLayer } from './annotations.js';
import { LinkCharts, WINDOW_S } from './charts.js';
import { LiveFeed, liveUrl } from './live.js';
import { LatencyMatrix, type Direction, type MatrixView } from './matrix.js';
import { renderOneWay } from './one-way.js';
import { ErrorBanner, Header } from './ui.js';
import { AlertsPanel } from './alerts.js';

const STATUS_EVERY_MS = 5_000;
const TOPOLOGY_EVERY_MS = 60_000;
const CAPACITY_EVERY_MS = 10_000;

function byId<T extends HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`page is missing #${id}`);
  return el as T;
}

const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Server clock minus ours, in seconds (from the live feed's welcome). */
let clockOffsetS = 0;
const nowS = (): number => Date.now() / 1000 + clockOffsetS;

const banner = new ErrorBanner(byId('error'));
const header = new Header(byId('live'), byId('live-text'), byId('updated'), byId('summary'));
const matrix = new LatencyMatrix(byId<HTMLTableElement>('matrix'), (d) => select(d));
const annotations = new AnnotationLayer(byId('charts'), {
  now: nowS,
  error: (msg) => banner.set('annotations', msg),
  centreName: (id) => matrix.centreName(id),
  windowS: WINDOW_S,
});
const charts = new LinkCharts(byId('charts'), byId('plots'), byId('chart-title'), byId('chart-meta'), byId('chart-empty'), {
  now: nowS,
  error: (msg) => banner.set('series', msg),
  centreName: (id) => matrix.centreName(id),
}, [annotations.plugin()]);

const capacity = new CapacityPanel(byId('capacity'), {
  now: nowS,
  error: (key, msg) => banner.set(key, msg),
  centreName: (id) => matrix.centreName(id),
  tested: () => void refreshCapacity(),
});

const viewButtons = [...document.querySelectorAll<HTMLButtonElement>('.views button[data-view]')];
for (const b of viewButtons) b.addEventListener('click', () => setView(b.dataset.view === 'capacity' ? 'capacity' : 'latency'));

let centres: CentreView[] = [];
let links: LinkView[] = [];
let topologyKey = '';
let status: StatusResponse | null = null;
let view: MatrixView = 'latency';
let selected: Direction | null = null;

const sameDirection = (x: Direction | null, y: Direction | null): boolean => x?.src === y?.src && x?.dst === y?.dst;

/** The selected direction's one-way delay against its target, above its charts. */
function renderSelectedOneWay(): void {
  const known = selected ? matrix.oneWayOf(selected) : null;
  renderOneWay(byId('one-way'), known?.oneWay ?? null, known?.engine ?? 'stamp', known?.windowS ?? 0);
}

function select(d: Direction): void {
  selected = d;
  matrix.select(d);
  renderSelectedOneWay();
  if (view === 'latency') {
    void charts.show(d, matrix.targetMs(d.src, d.dst));
    annotations.show(d);
  } else capacity.show(d, matrix.linkOf(d));
  writeHash();
}

/**
 * The URL fragment keeps the view and the selection across reloads:
 * `#src>dst` is the latency view (the form it always had, the same as the
 * charts' data-link), `#capacity:src>dst` the capacity view, and `#capacity`
 * the capacity view with the default selection. Centre ids never hold ':' or
 * '>'. `#token=…` never gets here: token.js takes it out first.
 */
function hashState(): { view: MatrixView; dir: Direction | null } {
  let h: string;
  try {
    h = decodeURIComponent(location.hash.slice(1));
  } catch {
    return { view: 'latency', dir: null };
  }
  let v: MatrixView = 'latency';
  if (h === 'capacity' || h.startsWith('capacity:')) {
    v = 'capacity';
    h = h.slice('capacity:'.length);
  }
  const i = h.indexOf('>');
  return { view: v, dir: i > 0 && i < h.length - 1 ? { src: h.slice(0, i), dst: h.slice(i + 1) } : null };
}

function writeHash(): void {
  const dir = selected ? `${selected.src}>${selected.dst}` : '';
  const h = view === 'capacity' ? (dir ? `capacity:${dir}` : 'capacity') : dir;
  history.replaceState(null, '', h ? `#${encodeURIComponent(h)}` : location.pathname + location.search);
}

const VIEW_TEXT: Record<MatrixView, { title: string; hint: string }> = {
  latency: { title: 'p99 RTT, ms', hint: 'row probes column · click a cell for its charts' },
  capacity: { title: 'Tested throughput, Gb/s', hint: 'slower direction of the last test · small: provisioned' },
};

/** Shows the chosen view's title, key and panel (no data is loaded here). */
function renderView(): void {
  matrix.setView(view);
  document.body.dataset.view = view;
  for (const b of viewButtons) b.setAttribute('aria-pressed', String(b.dataset.view === view));
  byId('matrix-title').textContent = VIEW_TEXT[view].title;
  byId('matrix-hint').textContent = VIEW_TEXT[view].hint;
  byId('key-latency').hidden = view !== 'latency';
  byId('key-capacity').hidden = view !== 'capacity';
  byId('charts').hidden = view !== 'latency';
  byId('capacity').hidden = view !== 'capacity';
}

function setView(v: MatrixView): void {
  if (v === view) return;
  view = v;
  renderView();
  if (v === 'capacity') {
    banner.set('series', null); // the latency charts are hidden: their error says nothing now
    banner.set('annotations', null);
    annotations.stop();
    startCapacity();
    if (selected) capacity.show(selected, matrix.linkOf(selected));
  } else {
    stopCapacity();
    if (selected) {
      void charts.show(selected, matrix.targetMs(selected.src, selected.dst));
      annotations.show(selected);
    }
  }
  writeHash();
}

// /v1/capacity: polled every 10 s while the capacity view is shown.
let capacityTimer: number | undefined;
let capacityLoop = 0;
let capacityAsked = 0;
let capacityApplied = 0;

async function refreshCapacity(): Promise<void> {
  const n = ++capacityAsked;
  try {
    const c = await fetchCapacity();
    if (n < capacityApplied) return; // a later answer is already shown
    capacityApplied = n;
    if (view === 'capacity') banner.set('capacity', null);
    matrix.applyCapacity(c);
    if (view === 'capacity') capacity.update(c);
  } catch (err) {
    if (view === 'capacity') banner.set('capacity', errorText(err));
  }
}

function startCapacity(): void {
  clearTimeout(capacityTimer);
  const loop = ++capacityLoop;
  const tick = async (): Promise<void> => {
    await refreshCapacity();
    if (loop === capacityLoop) capacityTimer = window.setTimeout(() => void tick(), CAPACITY_EVERY_MS);
  };
  void tick();
}

function stopCapacity(): void {
  capacityLoop++;
  clearTimeout(capacityTimer);
  capacity.hide();
  banner.set('capacity', null);
}

function renderSummary(): void {
  header.setSummary(centres.length, links.length, status ? matrix.counts() : null);
}

async function loadTopology(): Promise<boolean> {
  try {
    const [c, l] = await Promise.all([fetchCentres(), fetchLinks()]);
    banner.set('topology', null);
    const key = JSON.stringify([c, l]);
    if (key !== topologyKey) {
      topologyKey = key;
      centres = c.centres;
      links = l;
      byId('topology-name').textContent = c.name;
      matrix.setTopology(c.centres, l);
      if (status) matrix.applyStatus(status);
      renderSelectedOneWay();
      renderSummary();
    }
    return true;
  } catch (err) {
    banner.set('topology', errorText(err));
    if (!topologyKey) byId('summary').textContent = 'topology unavailable';
    return false;
  }
}

async function refreshStatus(): Promise<void> {
  try {
    const s = await fetchStatus();
    banner.set('status', null);
    status = s;
    // User Timing (devtools, and the dashboard bench): what applying one status to the matrix costs.
    const applying = performance.now();
    matrix.applyStatus(s);
    performance.measure('citymesh:matrix.applyStatus', { start: applying, detail: { paths: s.paths.length } });
    renderSelectedOneWay();
    banner.set('measurement', measurementNotice(s));
    header.touch(Date.parse(s.generatedAt));
    header.renderUpdated();
    renderSummary();
    const sel = charts.selected;
    if (sel) charts.setTarget(matrix.targetMs(sel.src, sel.dst));
  } catch (err) {
    banner.set('status', errorText(err));
  }
}

/**
 * Probes that measure with less precision than they could, or not at all
 * with some engine: said once, above everything, until they recover.
 */
function measurementNotice(s: StatusResponse): string | null {
  const notes: string[] = [];
  for (const p of s.probes) {
    if (p.datapath === 'js') notes.push(`${p.centre}: STAMP on the JavaScript fallback, timestamps taken in user space (${p.datapathReason ?? 'native datapath not loaded'})`);
    for (const [engine, reason] of Object.entries(p.enginesUnavailable)) notes.push(`${p.centre}: ${engine} engine unavailable — ${reason}`);
  }
  return notes.length ? notes.join(' · ') : null;
}

/** Runs fn, then again every `ms` after it settles (never overlapping). */
function every(ms: number, fn: () => Promise<unknown>): void {
  const loop = async (): Promise<void> => {
    await fn();
    setTimeout(() => void loop(), ms);
  };
  setTimeout(() => void loop(), ms);
}

let feedWasLost = false;
let summaryQueued = false;

function onLive(m: Exclude<LiveMessage, { type: 'trains' }>): void {
  if (m.type === 'welcome') {
    const server = Date.parse(m.serverTime);
    if (Number.isFinite(server)) clockOffsetS = (server - Date.now()) / 1000;
    if (feedWasLost) {
      // Trains were missed while the feed was down: fetch them again.
      feedWasLost = false;
      charts.reload();
      void refreshStatus();
    }
    return;
  }
  if (m.type === 'retract') {
    // Trains shown a moment ago whose storing failed (rare; they come again once stored): redraw from what is stored.
    if (m.trains.length > 0) {
      charts.reload();
      void refreshStatus();
    }
    return;
  }
  matrix.applyTrain(m);
  charts.ingest(m);
  header.touch(Date.now());
  if (!summaryQueued) {
    summaryQueued = true;
    requestAnimationFrame(() => {
      summaryQueued = false;
      renderSummary();
    });
  }
}

const feed = new LiveFeed(liveUrl(), {
  message: onLive,
  state(connected, retryInS) {
    if (!connected) feedWasLost = true;
    header.setLive(connected, retryInS);
  },
});

const alertsPanel = new AlertsPanel(byId('alerts'), { error: (msg) => banner.set('alerts', msg) });

async function start(): Promise<void> {
  const wanted = hashState();
  view = wanted.view;
  renderView();
  if (view === 'capacity') startCapacity();
  feed.start();
  alertsPanel.start();
  while (!(await loadTopology())) await sleep(STATUS_EVERY_MS);
  await refreshStatus();
  const first = wanted.dir && matrix.hasDirection(wanted.dir) ? wanted.dir : matrix.defaultDirection(status, links);
  if (first) select(first);
  else {
    charts.showNothing('The topology has no links yet.');
    capacity.showNothing('The topology has no links yet.');
    writeHash();
  }
  addEventListener('hashchange', () => {
    const h = hashState();
    setView(h.view);
    if (h.dir && matrix.hasDirection(h.dir) && !sameDirection(h.dir, selected)) select(h.dir);
  });
  every(STATUS_EVERY_MS, refreshStatus);
  every(TOPOLOGY_EVERY_MS, loadTopology);
}

void start();
