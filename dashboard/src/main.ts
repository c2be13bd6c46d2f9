// citymesh dashboard: wires the API, the live feed, the matrix and the charts.
import './token.js'; // first: takes #token=… out of the URL before anything reads the fragment
import type { CentreView, LinkView, LiveMessage, StatusResponse } from '../../api/contract.js';
import { fetchCentres, fetchLinks, fetchStatus } from './api.js';
import { LinkCharts } from './charts.js';
import { LiveFeed, liveUrl } from './live.js';
import { LatencyMatrix, type Direction } from './matrix.js';
import { ErrorBanner, Header } from './ui.js';

const STATUS_EVERY_MS = 5_000;
const TOPOLOGY_EVERY_MS = 60_000;

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
const charts = new LinkCharts(byId('charts'), byId('plots'), byId('chart-title'), byId('chart-meta'), byId('chart-empty'), {
  now: nowS,
  error: (msg) => banner.set('series', msg),
  centreName: (id) => matrix.centreName(id),
});

let centres: CentreView[] = [];
let links: LinkView[] = [];
let topologyKey = '';
let status: StatusResponse | null = null;

function select(d: Direction): void {
  matrix.select(d);
  void charts.show(d, matrix.targetMs(d.src, d.dst));
  history.replaceState(null, '', `#${encodeURIComponent(`${d.src}>${d.dst}`)}`);
}

/** `#src>dst` (the same form as data-link), so a reload keeps the selection. */
function directionFromHash(): Direction | null {
  let h: string;
  try {
    h = decodeURIComponent(location.hash.slice(1));
  } catch {
    return null;
  }
  const i = h.indexOf('>');
  return i > 0 && i < h.length - 1 ? { src: h.slice(0, i), dst: h.slice(i + 1) } : null;
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
      centres = c;
      links = l;
      matrix.setTopology(c, l);
      if (status) matrix.applyStatus(status);
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
    matrix.applyStatus(s);
    header.touch(Date.parse(s.generatedAt));
    header.renderUpdated();
    renderSummary();
    const sel = charts.selected;
    if (sel) charts.setTarget(matrix.targetMs(sel.src, sel.dst));
  } catch (err) {
    banner.set('status', errorText(err));
  }
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

function onLive(m: LiveMessage): void {
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

async function start(): Promise<void> {
  feed.start();
  while (!(await loadTopology())) await sleep(STATUS_EVERY_MS);
  await refreshStatus();
  const wanted = directionFromHash();
  const first = wanted && matrix.hasDirection(wanted) ? wanted : matrix.defaultDirection(status, links);
  if (first) select(first);
  else charts.showNothing('The topology has no links yet.');
  addEventListener('hashchange', () => {
    const d = directionFromHash();
    const cur = charts.selected;
    if (d && matrix.hasDirection(d) && (d.src !== cur?.src || d.dst !== cur?.dst)) select(d);
  });
  every(STATUS_EVERY_MS, refreshStatus);
  every(TOPOLOGY_EVERY_MS, loadTopology);
}

void start();
