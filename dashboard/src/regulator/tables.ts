// The compliance tables of the regulator page: one row per link (#sla-table)
// and one per centre plus the network (#sla-summary), with one column per
// criterion (measured value, target, verdict, breach minutes, longest breach)
// and the coverage. Cells and rows carry data-verdict; link rows data-link,
// summary rows data-scope and data-id; criterion cells data-criterion.
import type { SlaCriterionResult, SlaMaintenanceView, SlaReport, SlaScopeReport, SlaSelfLoadView, SlaVerdict } from '../../../api/contract.js';
import { CRITERIA, CRITERION_TEXT, VERDICT_TEXT, fmtCount, fmtMinutes, fmtShare, fmtTarget, fmtValue, type Zoned } from './sla-format.js';

function el<K extends keyof HTMLElementTagNameMap>(tag: K, className?: string, text?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

export function verdictTag(v: SlaVerdict | ''): HTMLSpanElement {
  const s = el('span', 'verdict-tag', v ? VERDICT_TEXT[v] : '');
  s.dataset.verdict = v;
  return s;
}

function headerRow(first: string, extra: string[]): HTMLTableRowElement {
  const tr = document.createElement('tr');
  for (const text of [first, ...extra, ...CRITERIA.map((c) => CRITERION_TEXT[c]), 'Coverage']) {
    const th = el('th', undefined, text);
    th.scope = 'col';
    tr.append(th);
  }
  return tr;
}

/** One criterion's cell: verdict, value against target, breach minutes (or the tests behind capacity_tested). */
function criterionCell(c: SlaCriterionResult | undefined): HTMLTableCellElement {
  const td = document.createElement('td');
  td.className = 'crit';
  if (!c) {
    td.textContent = '—';
    return td;
  }
  td.dataset.criterion = c.criterion;
  td.dataset.verdict = c.verdict;
  const line = el('span', 'line');
  line.append(el('span', 'val', fmtValue(c, c.value)));
  const target = fmtTarget(c);
  if (target) line.append(' ', el('span', 'tgt', target));
  td.append(verdictTag(c.verdict), line);

  const ev = c.evidence;
  let sub: string;
  if (c.criterion === 'capacity_tested') {
    const parts = [`${fmtCount(ev.tests)} test${ev.tests === 1 ? '' : 's'}`];
    if (ev.failedTests) parts.push(`${fmtCount(ev.failedTests)} failed`);
    if (ev.testsBelowFloor) parts.push(`${fmtCount(ev.testsBelowFloor)} below floor`);
    sub = parts.join(' · ');
  } else if (c.breachMinutes === null) {
    sub = '';
  } else if (c.breachMinutes === 0) {
    sub = 'no breach minutes';
  } else {
    sub = `breach ${fmtMinutes(c.breachMinutes)} · longest ${fmtMinutes(c.longestBreachMinutes)}`;
  }
  const subEl = el('span', 'sub', sub);
  subEl.dataset.breachMinutes = c.breachMinutes === null ? '' : String(c.breachMinutes);
  subEl.dataset.longest = c.longestBreachMinutes === null ? '' : String(c.longestBreachMinutes);
  td.append(subEl);

  const title = [c.rule ?? `${CRITERION_TEXT[c.criterion]} (pooled over the links)`];
  if (c.coverage !== null) title.push(`coverage ${fmtShare(c.coverage)}${c.requiredCoverage !== null ? ` (required ${fmtShare(c.requiredCoverage)})` : ''}`);
  const evidence = Object.entries(ev)
    .map(([k, v]) => `${k} ${v === null ? '—' : typeof v === 'number' ? (Number.isInteger(v) ? fmtCount(v) : String(v)) : String(v)}`)
    .join(', ');
  if (evidence) title.push(`evidence: ${evidence}`);
  td.title = title.join('\n');
  return td;
}

/** Coverage of a scope: minutes with data / SLA minutes, against the policy's minimum (links). */
function coverageCell(s: SlaScopeReport): HTMLTableCellElement {
  const td = document.createElement('td');
  td.className = 'crit';
  td.dataset.criterion = 'coverage';
  const required = s.policy?.coverageMin ?? null;
  // Below the minimum a link's minute-based criteria are insufficient_data whatever the data says.
  const verdict: SlaVerdict | '' = s.coverage === null ? 'insufficient_data' : required === null ? '' : s.coverage >= required ? 'met' : 'insufficient_data';
  if (verdict) td.dataset.verdict = verdict;
  const line = el('span', 'line');
  line.append(el('span', 'val', fmtShare(s.coverage)));
  if (required !== null) line.append(' ', el('span', 'tgt', `≥ ${fmtShare(required)}`));
  const m = s.minutes;
  const parts = [`${fmtCount(m.covered)} of ${fmtCount(m.sla)} min`];
  if (m.excluded > 0) parts.push(`${fmtCount(m.excluded)} excluded${m.selfLoad ? ` (${fmtCount(m.selfLoad)} our tests)` : ''}`);
  td.append(verdictTag(verdict), line, el('span', 'sub', parts.join(' · ')));
  td.title = `minutes with data (both directions measured) / SLA minutes (month minus maintenance declared in advance and minutes our own throughput tests loaded the link)${
    s.scope === 'link' ? '' : '; link-minutes, summed over the links'
  }`;
  return td;
}

/** `localName`: the centre's local-script name from the topology, shown beside the report's name. */
function scopeRow(s: SlaScopeReport, localName?: string): HTMLTableRowElement {
  const tr = document.createElement('tr');
  tr.dataset.verdict = s.verdict;
  const th = el('th');
  th.scope = 'row';
  th.append(el('span', 'name', s.name));
  if (localName) th.append(' ', el('span', 'name-local', localName));
  if (s.name !== s.id) th.append(el('span', 'id', s.id));
  const verdict = document.createElement('td');
  verdict.className = 'overall';
  verdict.dataset.verdict = s.verdict;
  verdict.append(verdictTag(s.verdict));
  tr.append(th, verdict);
  return tr;
}

function cellsFor(s: SlaScopeReport): HTMLTableCellElement[] {
  return [...CRITERIA.map((c) => criterionCell(s.criteria.find((x) => x.criterion === c))), coverageCell(s)];
}

/**
 * #sla-summary: the network first, then each centre, with its local-script
 * name (by centre id, from the topology: the report itself names centres once).
 */
export function renderSummary(table: HTMLTableElement, report: SlaReport, localNames: ReadonlyMap<string, string> = new Map()): void {
  table.tHead!.replaceChildren(headerRow('Scope', ['Verdict', 'Links']));
  const rows = [report.total, ...report.centres].map((s) => {
    const tr = scopeRow(s, s.scope === 'centre' ? localNames.get(s.id) : undefined);
    tr.dataset.scope = s.scope;
    tr.dataset.id = s.id;
    const links = document.createElement('td');
    links.className = 'counts';
    const l = s.links;
    links.append(
      `${fmtCount(l.total)}: `,
      countSpan('met', l.met),
      ' · ',
      countSpan('breach', l.breach),
      ' · ',
      countSpan('insufficient_data', l.insufficientData),
    );
    tr.append(links, ...cellsFor(s));
    return tr;
  });
  table.tBodies[0]!.replaceChildren(...rows);
}

function countSpan(v: SlaVerdict, n: number): HTMLSpanElement {
  const s = el('span', 'count-v', `${fmtCount(n)} ${VERDICT_TEXT[v]}`);
  s.dataset.verdict = n > 0 ? v : '';
  return s;
}

/** #sla-table: one row per link; rows are focusable and select the link. */
export function renderLinks(table: HTMLTableElement, report: SlaReport): void {
  table.tHead!.replaceChildren(headerRow('Link', ['Verdict']));
  const rows = report.links.map((s) => {
    const tr = scopeRow(s);
    tr.dataset.link = s.id;
    tr.tabIndex = 0;
    tr.title = 'show this link\'s breach timeline';
    tr.append(...cellsFor(s));
    return tr;
  });
  if (rows.length === 0) {
    const tr = document.createElement('tr');
    const td = tr.insertCell();
    td.colSpan = 2 + CRITERIA.length + 1;
    td.className = 'none';
    td.textContent = 'The topology has no links.';
    rows.push(tr);
  }
  table.tBodies[0]!.replaceChildren(...rows);
}

export function markSelected(table: HTMLTableElement, linkId: string | null): void {
  for (const tr of table.querySelectorAll<HTMLTableRowElement>('tbody tr[data-link]')) {
    const on = tr.dataset.link === linkId;
    tr.classList.toggle('selected', on);
    if (on) tr.setAttribute('aria-current', 'true');
    else tr.removeAttribute('aria-current');
  }
}

/** Rows of our own throughput tests' load windows (a report finalised before they were listed has none). */
export function selfLoadRows(windows: SlaSelfLoadView[] | undefined, z: Zoned): HTMLTableRowElement[] {
  if (!windows || windows.length === 0) {
    const tr = document.createElement('tr');
    const td = tr.insertCell();
    td.colSpan = 6;
    td.className = 'none';
    td.textContent = windows ? 'None this month.' : 'Not listed in this report (finalised before citymesh listed them).';
    return [tr];
  }
  return windows.map((w) => {
    const tr = document.createElement('tr');
    tr.dataset.test = w.testId;
    for (const c of [z.dateTime(w.start), z.dateTime(w.end), w.link, w.trigger, fmtCount(w.minutes), w.sources.join(', ')]) tr.insertCell().textContent = c;
    return tr;
  });
}

/** Rows of maintenance windows (whole month, or those affecting one link). */
export function maintenanceRows(windows: SlaMaintenanceView[], z: Zoned, withExcluded: boolean): HTMLTableRowElement[] {
  if (windows.length === 0) {
    const tr = document.createElement('tr');
    const td = tr.insertCell();
    td.colSpan = withExcluded ? 6 : 5;
    td.className = 'none';
    td.textContent = 'None declared.';
    return [tr];
  }
  return windows.map((w) => {
    const tr = document.createElement('tr');
    tr.dataset.excluded = String(w.excluded);
    const cells = [
      z.dateTime(w.start),
      z.dateTime(w.end),
      w.scope === 'network' ? 'whole network' : `${w.scope} ${w.target}`,
      w.reason,
      `${z.dateTime(w.declaredAt)} by ${w.declaredBy}${w.declaredLate ? ' (late: after its start)' : ''}`,
    ];
    if (withExcluded) cells.push(w.excluded ? 'yes' : 'no');
    for (const c of cells) tr.insertCell().textContent = c;
    if (w.declaredLate) tr.classList.add('late');
    return tr;
  });
}
