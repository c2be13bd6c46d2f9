// citymesh regulator page (/regulator.html): the monthly SLA reports. Works
// with a regulator token (which reads only the topology and /v1/sla/*) and
// with an operator token; the token comes from #token=… like the dashboard's.
//
// The URL fragment keeps the month and the selected link: `#2026-11` or
// `#2026-11/alfa~bravo` (`#token=…` never gets here: token.js takes it first).
//
// Test hooks: body data-month and data-state ('loading' | 'ready' | 'error');
// #sla-table data-month, data-state, rows data-link and data-verdict, cells
// data-criterion and data-verdict; #month-state data-state (the month's
// state); #amendments data-recorded and data-pending ('checking' | 'none' |
// a count | 'error'); download buttons data-state ('' | 'loading' | 'done' |
// 'error'); #link-detail data-link and data-state; #timeline data-breaches
// (see timeline.ts).
import '../token.js'; // first: takes #token=… out of the URL before anything reads the fragment
import type { SlaLinkDetailResponse, SlaMonthEntry, SlaMonthResponse, SlaMonthsResponse, SlaScopeReport } from '../../../api/contract.js';
import {
  ApiError,
  SLA_PUBLIC_KEY_URL,
  fetchCentres,
  fetchFile,
  fetchSlaAmendments,
  fetchSlaLink,
  fetchSlaMinutes,
  fetchSlaMonth,
  fetchSlaMonths,
  setUnauthorizedHint,
  slaAmendmentUrl,
  slaLinkUrl,
  slaMonthUrl,
  slaReportUrl,
} from '../api.js';
import { localName } from '../centre-name.js';
import { fmtGbps, fmtMs } from '../format.js';
import { ErrorBanner } from '../ui.js';
import { VERDICT_TEXT, Zoned, fmtCount, fmtMinutes, fmtRatio, fmtShare } from './sla-format.js';
import { maintenanceRows, markSelected, renderLinks, renderSummary, selfLoadRows, verdictTag } from './tables.js';
import { LinkTimeline } from './timeline.js';

const RETRY_MS = 10_000;

function byId<T extends HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`page is missing #${id}`);
  return el as T;
}

const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const isAbort = (err: unknown): boolean => err instanceof DOMException && err.name === 'AbortError';

/** A message for the banner that says what a 403 means here. */
function describe(err: unknown): string {
  if (err instanceof ApiError && err.status === 403) {
    return `This token may not read SLA reports (they need a regulator or operator token). ${err.message}`;
  }
  return errorText(err);
}

setUnauthorizedHint(
  'This page needs a regulator (or operator) token: open it with the link ending in #token=… that your administrator gave you.',
);

const banner = new ErrorBanner(byId('error'));
const monthSelect = byId<HTMLSelectElement>('month');
const table = byId<HTMLTableElement>('sla-table');
const summary = byId<HTMLTableElement>('sla-summary');
const detail = byId('link-detail');
const buttons = {
  json: byId<HTMLButtonElement>('dl-json'),
  csv: byId<HTMLButtonElement>('dl-csv'),
  signed: byId<HTMLButtonElement>('dl-signed'),
  key: byId<HTMLButtonElement>('dl-key'),
  timeline: byId<HTMLButtonElement>('dl-timeline'),
  minutes: byId<HTMLButtonElement>('dl-minutes'),
};

let months: SlaMonthsResponse | null = null;
let month: string | null = null;
let report: SlaMonthResponse | null = null;
let selected: string | null = null;
let zone = new Zoned('Asia/Shanghai');
let monthAbort: AbortController | null = null;
let linkAbort: AbortController | null = null;
/** Downloads in flight, by button. */
const busy = new Set<HTMLButtonElement>();
/** Local-script names of the centres, by id (from /v1/centres; empty until it answers). */
let localNames = new Map<string, string>();

const timeline = new LinkTimeline(
  byId('timeline'),
  byId('evidence'),
  byId('evidence-empty'),
  byId('timeline-hover'),
  byId<HTMLTableElement>('runs').tBodies[0]!,
  { zone: () => zone },
);

// ---------------------------------------------------------------------------
// The fragment

function hashState(): { month: string | null; link: string | null } {
  let h: string;
  try {
    h = decodeURIComponent(location.hash.slice(1));
  } catch {
    return { month: null, link: null };
  }
  const m = /^(\d{4}-\d{2})(?:\/(.+))?$/.exec(h);
  return m ? { month: m[1]!, link: m[2] ?? null } : { month: null, link: null };
}

function writeHash(): void {
  const h = month ? (selected ? `${month}/${selected}` : month) : '';
  history.replaceState(null, '', h ? `#${encodeURIComponent(h).replace(/%2F/g, '/').replace(/%7E/gi, '~')}` : location.pathname + location.search);
}

// ---------------------------------------------------------------------------
// Months

const STATE_TEXT: Record<SlaMonthEntry['state'], string> = {
  finalised: 'finalised · signed',
  open: 'ended · not finalised yet',
  in_progress: 'in progress',
};

/** The default month: the latest finalised one, else the current month (the one in progress). */
function defaultMonth(list: SlaMonthEntry[]): string | null {
  const sorted = list.slice().sort((a, b) => b.month.localeCompare(a.month));
  return (sorted.find((m) => m.state === 'finalised') ?? sorted.find((m) => m.state === 'in_progress') ?? sorted[0])?.month ?? null;
}

function renderMonthOptions(list: SlaMonthEntry[]): void {
  const options = list.map((m) => {
    const o = document.createElement('option');
    o.value = m.month;
    const amend = m.amendments > 0 ? ` · ${m.amendments} amendment${m.amendments === 1 ? '' : 's'}` : '';
    o.textContent = `${m.month} · ${STATE_TEXT[m.state]}${amend}`;
    o.dataset.state = m.state;
    return o;
  });
  monthSelect.replaceChildren(...options);
  monthSelect.disabled = options.length === 0;
  if (month) monthSelect.value = month;
}

/** 'fatal': the token has no access (401/403), so retrying cannot help. */
async function loadMonths(): Promise<'ok' | 'retry' | 'fatal'> {
  try {
    months = await fetchSlaMonths();
    banner.set('months', null);
    zone = new Zoned(months.timezone);
    byId('tz-name').textContent = months.timezone;
    renderMonthOptions(months.months);
    return 'ok';
  } catch (err) {
    banner.set('months', describe(err));
    document.body.dataset.state = 'error';
    monthSelect.replaceChildren(new Option('months unavailable'));
    // A token without access stays without access: retrying only helps when the server was unreachable or failing.
    return err instanceof ApiError && (err.status === 401 || err.status === 403) ? 'fatal' : 'retry';
  }
}

function entryOf(m: string | null): SlaMonthEntry | undefined {
  return months?.months.find((x) => x.month === m);
}

async function selectMonth(m: string, link: string | null): Promise<void> {
  monthAbort?.abort();
  linkAbort?.abort();
  const abort = (monthAbort = new AbortController());
  month = m;
  report = null;
  selected = link;
  monthSelect.value = m;
  document.body.dataset.month = m;
  document.body.dataset.state = 'loading';
  table.dataset.month = m;
  table.dataset.state = 'loading';
  renderMonthHead();
  refreshButtons();
  showLinkNothing('Loading the month…');
  writeHash();
  try {
    const r = await fetchSlaMonth(m, abort.signal);
    if (abort.signal.aborted) return;
    banner.set('month', null);
    report = r;
    zone = new Zoned(r.report.timezone);
    byId('tz-name').textContent = r.report.timezone;
    renderSummary(summary, r.report, localNames);
    renderLinks(table, r.report);
    byId<HTMLTableElement>('maintenance').tBodies[0]!.replaceChildren(...maintenanceRows(r.report.maintenance, zone, true));
    byId<HTMLTableElement>('self-load').tBodies[0]!.replaceChildren(...selfLoadRows(r.report.selfLoad, zone));
    table.dataset.state = 'ready';
    document.body.dataset.state = 'ready';
    renderMonthHead();
    refreshButtons();
    void checkAmendments(m, r, abort.signal);
    const wanted = link && r.report.links.some((l) => l.id === link) ? link : null;
    if (wanted) void selectLink(wanted, false);
    else {
      selected = null;
      writeHash();
      showLinkNothing(r.report.links.length > 0 ? 'Click a link in the table for its breach timeline over the month.' : 'The topology has no links.');
    }
  } catch (err) {
    if (abort.signal.aborted || isAbort(err)) return;
    banner.set('month', describe(err));
    table.dataset.state = 'error';
    document.body.dataset.state = 'error';
    summary.tBodies[0]!.replaceChildren();
    table.tBodies[0]!.replaceChildren();
    showLinkNothing('The month could not be loaded.');
  } finally {
    if (monthAbort === abort) monthAbort = null;
  }
}

/** The month's state, period, finalisation and the network verdict. */
function renderMonthHead(): void {
  const e = entryOf(month);
  const r = report;
  const stateTag = byId('month-state');
  stateTag.dataset.state = e?.state ?? '';
  stateTag.textContent = e ? STATE_TEXT[e.state] : '';
  const verdict = byId('month-verdict');
  verdict.replaceWith(Object.assign(verdictTag(r ? r.report.total.verdict : ''), { id: 'month-verdict' }));
  const network = r?.report.network ?? '';
  byId('network-name').textContent = network;
  if (network) document.title = `${network} · SLA ${month ?? ''} · citymesh`;

  const rows: [string, string][] = [];
  if (r) {
    const p = r.report.period;
    rows.push([
      'period',
      `${zone.dateTime(p.start)} → ${zone.dateTime(p.end)} (${r.report.timezone}) · ${fmtCount(p.minutes)} minutes${p.complete ? '' : ' so far: the month is in progress'}`,
    ]);
    rows.push([
      'figures',
      r.state === 'finalised'
        ? 'the stored, signed figures (frozen when the month was finalised)'
        : `provisional: computed now from the ${r.report.source} data, ${r.report.engine} trains; they can still change`,
    ]);
    const t = r.report.total;
    rows.push(['network', `${VERDICT_TEXT[t.verdict]} · ${t.links.total} links: ${t.links.met} met, ${t.links.breach} breach, ${t.links.insufficientData} insufficient data`]);
  } else if (e) {
    rows.push(['period', `${zone.dateTime(e.start)} → ${zone.dateTime(e.end)} (${months?.timezone ?? ''})`]);
  }
  if (e?.state === 'finalised') {
    rows.push(['finalised', `${zone.dateTime(e.finalisedAt)} by ${e.finalisedBy ?? '—'}`]);
    if (e.reportSha256) rows.push(['report SHA-256', e.reportSha256]);
  } else if (e) {
    rows.push([
      'finalisation',
      e.autoFinaliseAt
        ? `automatic at ${zone.dateTime(e.autoFinaliseAt)} (the month's end plus the grace period), or earlier by an operator`
        : e.state === 'in_progress'
          ? 'after the month has ended, by an operator (automatic finalisation is off)'
          : 'by an operator (automatic finalisation is off)',
    ]);
  }
  const items = rows.flatMap(([k, v]) => {
    const dt = document.createElement('dt');
    dt.textContent = k;
    const dd = document.createElement('dd');
    dd.textContent = v;
    if (k === 'report SHA-256') dd.className = 'mono';
    return [dt, dd];
  });
  byId('month-facts').replaceChildren(...items);
  byId('verify-cmd').textContent =
    `citymesh report verify citymesh-sla-${month ?? 'MONTH'}.signed.json --public-key citymesh-public.pem\n` +
    `citymesh report verify citymesh-sla-${month ?? 'MONTH'}.signed.json --server ${location.origin}`;
  renderAmendmentButtons();
}

/** Recorded amendments (downloadable), and whether late data changed figures not yet recorded. */
async function checkAmendments(m: string, r: SlaMonthResponse, signal: AbortSignal): Promise<void> {
  const p = byId('amendments');
  p.dataset.recorded = String(r.amendments.length);
  if (r.state !== 'finalised') {
    p.hidden = true;
    p.dataset.pending = '';
    return;
  }
  p.hidden = false;
  p.dataset.pending = 'checking';
  const recorded = r.amendments.length === 0 ? 'No amendments recorded.' : `${r.amendments.length} signed amendment${r.amendments.length === 1 ? '' : 's'} recorded (late data changed figures after finalisation; the signed report itself never changes).`;
  p.textContent = `${recorded} Checking for changes not yet recorded…`;
  try {
    const a = await fetchSlaAmendments(m, signal);
    if (signal.aborted || month !== m) return;
    banner.set('amendments', null);
    p.dataset.pending = a.current.differs ? String(a.current.changes.length) : 'none';
    p.classList.toggle('pending', a.current.differs);
    if (a.current.differs) {
      const shown = a.current.changes.slice(0, 4).map((c) => `${c.path}: ${c.from ?? '—'} → ${c.to ?? '—'}`).join('; ');
      const more = a.current.changes.length > 4 ? `; and ${a.current.changes.length - 4} more` : '';
      p.textContent = `${recorded} Amendment pending: data stored since the last signed document changes ${a.current.changes.length} figure${a.current.changes.length === 1 ? '' : 's'} (${shown}${more}); the hourly job (or an operator) records it as a signed amendment.`;
    } else {
      p.textContent = `${recorded} No changes pending: a recomputation now gives the signed figures${r.amendments.length > 0 ? ' of the latest amendment' : ''}.`;
    }
  } catch (err) {
    if (signal.aborted || isAbort(err)) return;
    p.dataset.pending = 'error';
    p.textContent = `${recorded} Whether changes are pending could not be checked.`;
    banner.set('amendments', describe(err));
  }
}

function renderAmendmentButtons(): void {
  const holder = byId('amendment-downloads');
  const m = month;
  const list = report?.amendments ?? [];
  const items = list.map((a) => {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'run';
    b.dataset.state = '';
    b.dataset.seq = String(a.seq);
    b.textContent = `Amendment ${a.seq}`;
    b.title = `signed amendment ${a.seq}: ${a.changes} change${a.changes === 1 ? '' : 's'}, recorded ${zone.dateTime(a.at)} by ${a.by}`;
    b.addEventListener('click', () => {
      if (m) void download(b, slaAmendmentUrl(m, a.seq), 'application/json', `citymesh-sla-${m}.amendment-${a.seq}.signed.json`);
    });
    return b;
  });
  holder.replaceChildren(...items);
}

// ---------------------------------------------------------------------------
// Downloads: fetched with the token, then saved from a Blob (a plain link cannot send the Authorization header).

function refreshButtons(): void {
  const ready = report !== null && month !== null;
  const finalised = report?.state === 'finalised';
  const set = (b: HTMLButtonElement, on: boolean, why?: string): void => {
    b.disabled = !on || busy.has(b);
    if (why !== undefined) b.title = why;
  };
  set(buttons.json, ready);
  set(buttons.csv, ready);
  set(
    buttons.signed,
    ready && finalised,
    finalised ? 'The signed, finalised report, byte for byte' : 'Only a finalised month has a signed report; until then the figures are provisional',
  );
  set(buttons.key, true);
  set(buttons.timeline, ready && selected !== null);
  set(buttons.minutes, ready && selected !== null);
}

function saveBlob(blob: Blob, filename: string): void {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  a.rel = 'noopener';
  a.hidden = true;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

function fmtBytes(n: number): string {
  return n < 1024 ? `${n} B` : n < 1024 * 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

async function download(button: HTMLButtonElement, url: string, accept: string, fallbackName: string): Promise<void> {
  if (busy.has(button)) return;
  busy.add(button);
  button.disabled = true;
  button.dataset.state = 'loading';
  const status = byId('dl-status');
  status.textContent = `downloading ${fallbackName}…`;
  try {
    const f = await fetchFile(url, accept);
    const name = f.filename ?? fallbackName;
    saveBlob(f.blob, name);
    button.dataset.state = 'done';
    status.textContent = `saved ${name} (${fmtBytes(f.blob.size)})`;
    banner.set('download', null);
  } catch (err) {
    button.dataset.state = 'error';
    status.textContent = '';
    banner.set('download', `Download of ${fallbackName} failed: ${describe(err)}`);
  } finally {
    busy.delete(button);
    refreshButtons();
    renderAmendmentButtonsState(button);
  }
}

/** Amendment buttons are not in refreshButtons(): re-enable the one that finished. */
function renderAmendmentButtonsState(button: HTMLButtonElement): void {
  if (button.dataset.seq !== undefined) button.disabled = false;
}

buttons.json.addEventListener('click', () => {
  if (month) void download(buttons.json, slaMonthUrl(month), 'application/json', `citymesh-sla-${month}${report?.state === 'finalised' ? '' : '.provisional'}.json`);
});
buttons.csv.addEventListener('click', () => {
  if (month) void download(buttons.csv, slaMonthUrl(month, 'csv'), 'text/csv', `citymesh-sla-${month}.csv`);
});
buttons.signed.addEventListener('click', () => {
  if (month) void download(buttons.signed, slaReportUrl(month), 'application/json', `citymesh-sla-${month}.signed.json`);
});
buttons.key.addEventListener('click', () => void download(buttons.key, SLA_PUBLIC_KEY_URL, 'application/x-pem-file', 'citymesh-public.pem'));
buttons.timeline.addEventListener('click', () => {
  const l = selected ? splitLink(selected) : null;
  if (month && l) void download(buttons.timeline, slaLinkUrl(month, l.a, l.b, '', 'csv'), 'text/csv', `citymesh-sla-${month}-${l.a}-${l.b}-breaches.csv`);
});
buttons.minutes.addEventListener('click', () => {
  const l = selected ? splitLink(selected) : null;
  if (month && l) void download(buttons.minutes, slaLinkUrl(month, l.a, l.b, '/minutes', 'csv'), 'text/csv', `citymesh-sla-${month}-${l.a}-${l.b}-minutes.csv`);
});

/** The fingerprint the server publishes with its key (shown beside the verify note). */
async function loadKeyFingerprint(): Promise<void> {
  const out = byId('key-fingerprint');
  try {
    const f = await fetchFile(SLA_PUBLIC_KEY_URL, 'application/x-pem-file', undefined, 10_000);
    out.textContent = f.headers.get('x-citymesh-key-fingerprint') ?? 'the fingerprint the server publishes';
  } catch (err) {
    out.textContent = err instanceof ApiError && err.status === 503 ? 'none: this server has no report-signing key' : 'unavailable';
    buttons.key.title = errorText(err);
  }
}

// ---------------------------------------------------------------------------
// One link

function splitLink(id: string): { a: string; b: string } | null {
  const i = id.indexOf('~');
  return i > 0 && i < id.length - 1 ? { a: id.slice(0, i), b: id.slice(i + 1) } : null;
}

function showLinkNothing(msg: string): void {
  linkAbort?.abort();
  detail.dataset.link = '';
  detail.dataset.state = 'idle';
  byId('detail-title').textContent = 'Breach timeline';
  byId('detail-meta').textContent = '';
  byId('detail-verdict').replaceWith(Object.assign(verdictTag(''), { id: 'detail-verdict' }));
  byId('detail-note').textContent = msg;
  byId('detail-note').hidden = false;
  byId<HTMLTableElement>('tests').tBodies[0]!.replaceChildren();
  byId<HTMLTableElement>('link-maintenance').tBodies[0]!.replaceChildren();
  timeline.clear();
  markSelected(table, null);
  refreshButtons();
}

async function selectLink(id: string, scroll: boolean): Promise<void> {
  const r = report;
  const m = month;
  const scope = r?.report.links.find((l) => l.id === id);
  const ends = splitLink(id);
  if (!r || !m || !scope || !ends) return;
  linkAbort?.abort();
  const abort = (linkAbort = new AbortController());
  selected = id;
  writeHash();
  markSelected(table, id);
  refreshButtons();
  detail.dataset.link = id;
  detail.dataset.state = 'loading';
  byId('detail-title').textContent = `${scope.name} · breach timeline`;
  byId('detail-verdict').replaceWith(Object.assign(verdictTag(scope.verdict), { id: 'detail-verdict' }));
  byId('detail-meta').textContent = policyText(scope);
  byId('detail-note').hidden = false;
  byId('detail-note').textContent = 'Loading the link…';
  byId<HTMLTableElement>('tests').tBodies[0]!.replaceChildren();
  byId<HTMLTableElement>('link-maintenance').tBodies[0]!.replaceChildren();
  timeline.loading(id);
  if (scroll) detail.scrollIntoView({ block: 'nearest' });

  const startS = Date.parse(r.report.period.start) / 1000;
  const endS = Date.parse(r.report.period.end) / 1000;
  const minutes = fetchSlaMinutes(m, ends.a, ends.b, abort.signal);
  minutes.catch(() => undefined); // handled below, after the detail
  try {
    const d = await fetchSlaLink(m, ends.a, ends.b, abort.signal);
    if (abort.signal.aborted) return;
    banner.set('link', null);
    renderLinkDetail(d, scope);
    timeline.show(d, startS, endS);
    detail.dataset.state = 'ready';
  } catch (err) {
    if (abort.signal.aborted || isAbort(err)) return;
    banner.set('link', describe(err));
    detail.dataset.state = 'error';
    timeline.failed();
    byId('detail-note').textContent = 'The link could not be loaded.';
    return;
  }
  timeline.setMinutes(null, 'loading');
  try {
    const mins = await minutes;
    if (abort.signal.aborted) return;
    const n = mins.t.length;
    const cols = [mins.excluded, mins.covered, mins.abRttMs, mins.baRttMs, mins.abSent, mins.baSent, mins.abLost, mins.baLost];
    if (cols.some((c) => !Array.isArray(c) || c.length !== n)) throw new Error('minute evidence: columns differ in length from t');
    banner.set('minutes', null);
    timeline.setMinutes(mins);
  } catch (err) {
    if (abort.signal.aborted || isAbort(err)) return;
    banner.set('minutes', describe(err));
    timeline.setMinutes(null, 'error');
  } finally {
    if (linkAbort === abort) linkAbort = null;
  }
}

function policyText(s: SlaScopeReport): string {
  const p = s.policy;
  if (!p) return '';
  return [
    `p${Math.round(p.percentile * 100)} RTT ≤ ${fmtMs(p.rttTargetMs)} in ≥ ${fmtShare(p.latencyMinutesMin)} of minutes`,
    `loss ≤ ${fmtRatio(p.lossRatioMax)}`,
    `availability ≥ ${fmtShare(p.availabilityMin)}`,
    `provisioned ≥ ${fmtGbps(p.capacityGbps)}`,
    `tests ≥ ${fmtGbps(p.throughputFloorGbps)}`,
    `coverage ≥ ${fmtShare(p.coverageMin)}`,
  ].join(' · ');
}

function renderLinkDetail(d: SlaLinkDetailResponse, scope: SlaScopeReport): void {
  const runs = Object.values(d.timeline).reduce((n, r) => n + r.length, 0);
  const breachMinutes = Object.values(d.timeline).reduce((n, r) => n + r.reduce((s, x) => s + x.minutes, 0), 0);
  byId('detail-note').textContent =
    runs === 0
      ? `No breach runs this month${scope.verdict === 'insufficient_data' ? ' in the minutes with data (the verdict is insufficient data: see the "no data" lane)' : ''}.`
      : `${fmtCount(runs)} breach run${runs === 1 ? '' : 's'} (${fmtMinutes(breachMinutes)} in all, counted per criterion).` +
        (d.state === 'finalised' ? ' Runs are recomputed from the rollup now; the counts in the table are the signed figures.' : '');
  const ends = splitLink(d.link.id);
  const [a, b] = ends ? [ends.a, ends.b] : ['a', 'b'];
  const floor = d.link.policy?.throughputFloorGbps ?? null;
  const tests = d.tests.map((x) => {
    const tr = document.createElement('tr');
    const dirs = [x.abGbps, x.baGbps].filter((v): v is number => v !== null);
    const worse = dirs.length > 0 ? Math.min(...dirs) : null;
    const below = x.ok && worse !== null && floor !== null && worse < floor;
    const verdict = !x.ok ? 'failed' : below ? 'breach' : 'met';
    tr.dataset.verdict = verdict;
    for (const c of [
      zone.dateTime(x.at),
      x.client,
      fmtGbps(x.abGbps),
      fmtGbps(x.baGbps),
      !x.ok ? `failed: ${x.error ?? 'no reason'} (counted as failed, not as 0)` : below ? `below the ${fmtGbps(floor)} floor` : 'ok',
    ]) {
      tr.insertCell().textContent = c;
    }
    return tr;
  });
  if (tests.length === 0) {
    const tr = document.createElement('tr');
    const td = tr.insertCell();
    td.colSpan = 5;
    td.className = 'none';
    td.textContent = 'No throughput tests this month: capacity tested is insufficient data.';
    tests.push(tr);
  }
  const head = byId<HTMLTableElement>('tests').tHead!.rows[0]!;
  head.cells[2]!.textContent = `${a} → ${b}`;
  head.cells[3]!.textContent = `${b} → ${a}`;
  byId<HTMLTableElement>('tests').tBodies[0]!.replaceChildren(...tests);
  byId<HTMLTableElement>('link-maintenance').tBodies[0]!.replaceChildren(...maintenanceRows(d.maintenance, zone, false));
}

table.addEventListener('click', (e) => {
  const tr = (e.target as Element | null)?.closest<HTMLTableRowElement>('tr[data-link]');
  if (tr?.dataset.link && tr.dataset.link !== selected) void selectLink(tr.dataset.link, true);
});
table.addEventListener('keydown', (e) => {
  if (e.key !== 'Enter' && e.key !== ' ') return;
  const tr = (e.target as Element | null)?.closest<HTMLTableRowElement>('tr[data-link]');
  if (!tr?.dataset.link) return;
  e.preventDefault();
  if (tr.dataset.link !== selected) void selectLink(tr.dataset.link, true);
});
monthSelect.addEventListener('change', () => {
  if (monthSelect.value && monthSelect.value !== month) void selectMonth(monthSelect.value, null);
});

// ---------------------------------------------------------------------------

/**
 * The centres' local-script names, shown beside the report's names. The page
 * works without them: until they load, the names are left out and the
 * banner says why, and they are asked for again every RETRY_MS.
 */
async function loadLocalNames(): Promise<void> {
  try {
    const { centres } = await fetchCentres();
    banner.set('centres', null);
    localNames = new Map(centres.flatMap((c) => {
      const local = localName(c);
      return local ? [[c.id, local] as const] : [];
    }));
    if (report) renderSummary(summary, report.report, localNames);
  } catch (err) {
    // A token that may not read the topology may not read the reports either: that failure already says why.
    if (err instanceof ApiError && (err.status === 401 || err.status === 403)) return;
    banner.set('centres', `Local centre names are not shown: ${describe(err)}`);
    setTimeout(() => void loadLocalNames(), RETRY_MS);
  }
}

async function start(): Promise<void> {
  void loadKeyFingerprint();
  void loadLocalNames();
  refreshButtons();
  for (;;) {
    const got = await loadMonths();
    if (got === 'ok') break;
    if (got === 'fatal') {
      table.dataset.state = 'error';
      showLinkNothing('No access to the SLA reports with this token.');
      return;
    }
    await sleep(RETRY_MS);
  }
  const wanted = hashState();
  const list = months?.months ?? [];
  const m = wanted.month && list.some((x) => x.month === wanted.month) ? wanted.month : defaultMonth(list);
  if (!m) {
    showLinkNothing('The server lists no months.');
    return;
  }
  await selectMonth(m, wanted.month === m ? wanted.link : null);
  addEventListener('hashchange', () => {
    const h = hashState();
    if (h.month && h.month !== month && list.some((x) => x.month === h.month)) void selectMonth(h.month, h.link);
    else if (h.month === month && h.link && h.link !== selected) void selectLink(h.link, false);
  });
}

void start();
