// The centre-by-centre matrix: rows = source, columns = destination. Two views
// of the same cells:
// - latency: the latest p99 RTT of each direction, coloured by its state
//   (`data-state` on the cell); its one-way delay against the one-way target
//   is in the tooltip (`data-one-way`, `data-one-way-basis`);
// - capacity: the link's verdict colour (`data-verdict`), the tested throughput
//   (the slower direction of the newest test) and the provisioned speed.
// Each cell carries only the attribute of the view shown.
import type {
  CapacityResponse, CapacityVerdict, CentreView, LinkCapacity, LinkView, OneWayVerdict, PathState, PathStatus, ProbeEngineName, StatusResponse,
} from '../../api/contract.js';
import { TrainAggregate, type TrainMessage } from './aggregate.js';
import { centreLabel, centreNameNodes } from './centre-name.js';
import { fmtCellMs, fmtGbps, fmtMs, fmtPct, fmtTime, fmtWhen } from './format.js';
import { oneWayText } from './one-way.js';

export type Direction = { src: string; dst: string };
export type MatrixView = 'latency' | 'capacity';

interface CellView {
  state: PathState;
  engine: ProbeEngineName;
  p50Ms: number | null;
  p99Ms: number | null;
  jitterMs: number | null;
  lossRatio: number | null;
  targetMs: number | null;
  /** Epoch ms of the newest train, or null. */
  lastMs: number | null;
  /** Where the numbers come from, for the tooltip. */
  origin: string;
  /** How the newest train was timestamped at each end (from /v1/status). */
  timestamping?: { sender: string; reflector: string } | null;
  /** Why the source probe cannot run ICMP, when it cannot. */
  icmpUnavailable?: string | null;
  /** The one-way delay against the city's one-way target, over the status window (from /v1/status). */
  oneWay: OneWayVerdict | null;
}

interface Cell {
  td: HTMLTableCellElement;
  value: HTMLSpanElement;
  loss: HTMLSpanElement;
  /** Capacity view: the provisioned speed, small under the value. */
  sub: HTMLSpanElement;
  src: string;
  dst: string;
  link: LinkView | undefined;
  view: CellView | null;
  /** Flows of the newest live train seen for this direction. */
  live: TrainAggregate | null;
}

export const dirKey = (src: string, dst: string): string => `${src}>${dst}`;

/** State of one train against the link target (the server's rule for status may be richer). */
export function trainState(p99Ms: number | null, lossRatio: number | null, received: number, targetMs: number | null): PathState {
  if (received === 0) return 'breach'; // nothing came back: the direction is down
  if (p99Ms === null) return 'nodata';
  const loss = lossRatio ?? 0;
  if (targetMs === null) return loss > 0 ? 'warn' : 'ok';
  if (p99Ms > targetMs) return 'breach';
  if (p99Ms > 0.8 * targetMs || loss > 0) return 'warn';
  return 'ok';
}

/** The slower direction of a link's newest test, Gb/s; null when it measured neither. */
export function testedGbps(cap: LinkCapacity): number | null {
  const xs = [cap.tested.abGbps, cap.tested.baGbps].filter((v): v is number => v !== null);
  return xs.length > 0 ? Math.min(...xs) : null;
}

export class LatencyMatrix {
  private cells = new Map<string, Cell>();
  private centres: CentreView[] = [];
  private selected: string | null = null;
  private statusWindowS = 0;
  private view: MatrixView = 'latency';
  /** Capacity of each link, under both of its directions. */
  private capacity = new Map<string, LinkCapacity>();
  private dirty = new Set<Cell>();
  private raf = 0;

  constructor(
    private readonly table: HTMLTableElement,
    onSelect: (d: Direction) => void,
  ) {
    const pick = (target: EventTarget | null): void => {
      const td = (target as Element | null)?.closest<HTMLTableCellElement>('td[data-src]');
      if (!td?.dataset.src || !td.dataset.dst) return;
      const cell = this.cells.get(dirKey(td.dataset.src, td.dataset.dst));
      if (cell && (cell.link || cell.view)) onSelect({ src: cell.src, dst: cell.dst });
    };
    table.addEventListener('click', (ev) => pick(ev.target));
    table.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' || ev.key === ' ') {
        ev.preventDefault();
        pick(ev.target);
      }
    });
  }

  /** Builds the table. Cheap enough to call again when the topology changes. */
  setTopology(centres: CentreView[], links: LinkView[]): void {
    this.centres = centres;
    const linkOf = new Map<string, LinkView>();
    for (const l of links) {
      linkOf.set(dirKey(l.a, l.b), l);
      linkOf.set(dirKey(l.b, l.a), l);
    }
    const old = this.cells;
    this.cells = new Map();
    this.dirty.clear();

    const thead = document.createElement('thead');
    const hr = thead.insertRow();
    const corner = document.createElement('th');
    corner.className = 'corner';
    corner.innerHTML = '<span class="from">from</span> <span class="to">to →</span>';
    hr.append(corner);
    for (const c of centres) hr.append(headerCell(c, 'col'));

    const tbody = document.createElement('tbody');
    for (const s of centres) {
      const tr = tbody.insertRow();
      tr.append(headerCell(s, 'row'));
      for (const d of centres) {
        const td = tr.insertCell();
        if (s.id === d.id) {
          td.className = 'diag';
          continue;
        }
        const key = dirKey(s.id, d.id);
        const link = linkOf.get(key);
        const value = document.createElement('span');
        value.className = 'v';
        const loss = document.createElement('span');
        loss.className = 'loss';
        const sub = document.createElement('span');
        sub.className = 'sub';
        td.append(value, loss, sub);
        td.dataset.src = s.id;
        td.dataset.dst = d.id;
        if (link) td.tabIndex = 0;
        const prev = old.get(key);
        const cell: Cell = { td, value, loss, sub, src: s.id, dst: d.id, link, view: prev?.view ?? null, live: prev?.live ?? null };
        this.cells.set(key, cell);
        this.render(cell);
      }
    }
    this.table.dataset.view = this.view;
    this.table.replaceChildren(thead, tbody);
    if (this.selected) this.cells.get(this.selected)?.td.classList.add('selected');
  }

  hasDirection(d: Direction): boolean {
    const c = this.cells.get(dirKey(d.src, d.dst));
    return !!c && !!(c.link || c.view);
  }

  /** The link that carries a direction, if the topology has one. */
  linkOf(d: Direction): LinkView | undefined {
    return this.cells.get(dirKey(d.src, d.dst))?.link;
  }

  /** Switches what the cells show (and which data-* attribute they carry). */
  setView(view: MatrixView): void {
    this.view = view;
    this.table.dataset.view = view;
    cancelAnimationFrame(this.raf);
    this.raf = 0;
    this.dirty.clear();
    for (const cell of this.cells.values()) this.render(cell);
  }

  applyCapacity(res: CapacityResponse): void {
    this.capacity.clear();
    for (const l of res.links) {
      this.capacity.set(dirKey(l.a, l.b), l);
      this.capacity.set(dirKey(l.b, l.a), l);
    }
    if (this.view === 'capacity') for (const cell of this.cells.values()) this.render(cell);
  }

  applyStatus(status: StatusResponse): void {
    this.statusWindowS = status.windowS;
    const byDir = new Map<string, PathStatus>();
    const icmpMissing = new Map<string, string>();
    for (const p of status.paths) if (p.engine === 'icmp' && p.engineUnavailable) icmpMissing.set(dirKey(p.src, p.dst), p.engineUnavailable);
    for (const p of status.paths) {
      const key = dirKey(p.src, p.dst);
      const have = byDir.get(key);
      // One cell per direction: prefer the STAMP measurement when both engines run.
      if (!have || (have.engine !== 'stamp' && p.engine === 'stamp')) byDir.set(key, p);
    }
    for (const [key, cell] of this.cells) {
      const p = byDir.get(key);
      cell.view = p
        ? {
            state: p.state,
            engine: p.engine,
            p50Ms: p.rttP50Ms,
            p99Ms: p.rttP99Ms,
            jitterMs: p.jitterMs,
            lossRatio: p.lossRatio,
            targetMs: p.targetMs,
            lastMs: p.lastTs ? Date.parse(p.lastTs) : null,
            origin: `status: ${p.trains} train${p.trains === 1 ? '' : 's'} in ${status.windowS} s`,
            timestamping: p.timestamping,
            icmpUnavailable: icmpMissing.get(key) ?? null,
            oneWay: p.oneWay,
          }
        : null;
      this.render(cell);
    }
  }

  /** Live update of one cell from a train message (flows of one train are merged). */
  applyTrain(m: TrainMessage): void {
    const cell = this.cells.get(dirKey(m.src, m.dst));
    if (!cell) return;
    const engine = cell.view?.engine ?? 'stamp';
    if (m.engine !== engine) return;
    if (!cell.live || m.t > cell.live.t) cell.live = new TrainAggregate(m.t);
    else if (m.t < cell.live.t) return; // older than what the cell shows
    cell.live.add(m);
    const pt = cell.live.point();
    const targetMs = this.targetMs(m.src, m.dst);
    cell.view = {
      state: trainState(pt.p99Ms, pt.lossRatio, pt.received, targetMs),
      engine,
      p50Ms: pt.p50Ms,
      p99Ms: pt.p99Ms,
      jitterMs: pt.jitterMs,
      lossRatio: pt.lossRatio,
      targetMs,
      lastMs: m.t * 1000,
      origin: `live train, ${pt.sent} packets`,
      // The live feed does not carry them: keep what the last status said.
      timestamping: cell.view?.timestamping ?? null,
      icmpUnavailable: cell.view?.icmpUnavailable ?? null,
      // A verdict over the whole status window: one train does not change it.
      oneWay: cell.view?.oneWay ?? null,
    };
    if (this.view !== 'latency') return; // drawn when the latency view comes back
    // Cells are redrawn once per frame, however many flows arrive.
    this.dirty.add(cell);
    if (this.raf === 0) this.raf = requestAnimationFrame(this.renderDirty);
  }

  private readonly renderDirty = (): void => {
    this.raf = 0;
    for (const cell of this.dirty) this.render(cell);
    this.dirty.clear();
  };

  select(d: Direction | null): void {
    if (this.selected) this.cells.get(this.selected)?.td.classList.remove('selected');
    this.selected = d ? dirKey(d.src, d.dst) : null;
    const td = this.selected ? this.cells.get(this.selected)?.td : undefined;
    td?.classList.add('selected');
  }

  /** p99 target of a direction: from the status if known, else from the link. */
  targetMs(src: string, dst: string): number | null {
    const c = this.cells.get(dirKey(src, dst));
    return c?.view?.targetMs ?? c?.link?.rttTargetMs ?? null;
  }

  /** The one-way verdict of a direction and the engine behind it, as the last status gave them. */
  oneWayOf(d: Direction): { oneWay: OneWayVerdict; engine: ProbeEngineName; windowS: number } | null {
    const v = this.cells.get(dirKey(d.src, d.dst))?.view;
    return v?.oneWay ? { oneWay: v.oneWay, engine: v.engine, windowS: this.statusWindowS } : null;
  }

  /** The centre's name for running text, with its local-script name beside it ("Shanghai (上海)"). */
  centreName(id: string): string {
    const c = this.centres.find((x) => x.id === id);
    return c ? centreLabel(c) : id;
  }

  /** Default selection: first measured direction with data, else the first link. */
  defaultDirection(status: StatusResponse | null, links: LinkView[]): Direction | null {
    const withData = status?.paths.find((p) => p.rttP99Ms !== null || p.lastTs !== null);
    if (withData && this.cells.has(dirKey(withData.src, withData.dst))) return { src: withData.src, dst: withData.dst };
    const l = links[0];
    return l ? { src: l.a, dst: l.b } : null;
  }

  /** How many directions are in each state (directions with a link or data). */
  counts(): Record<PathState, number> {
    const n: Record<PathState, number> = { ok: 0, warn: 0, breach: 0, stale: 0, nodata: 0 };
    for (const c of this.cells.values()) if (c.link || c.view) n[c.view?.state ?? 'nodata']++;
    return n;
  }

  private render(cell: Cell): void {
    if (this.view === 'capacity') this.renderCapacity(cell);
    else this.renderLatency(cell);
  }

  private renderLatency(cell: Cell): void {
    const v = cell.view;
    const state: PathState = v?.state ?? 'nodata';
    const { td } = cell;
    td.dataset.state = state;
    delete td.dataset.verdict;
    td.classList.toggle('no-link', !cell.link && !v);
    td.classList.toggle('has-data', v?.p99Ms != null);
    cell.value.textContent = v?.p99Ms != null ? fmtCellMs(v.p99Ms) : cell.link ? '—' : '';
    const lossPct = v?.lossRatio != null ? v.lossRatio * 100 : 0;
    cell.loss.textContent = lossPct > 0 ? fmtPct(lossPct) : '';
    cell.sub.textContent = '';

    const from = this.centreName(cell.src);
    const to = this.centreName(cell.dst);
    const lines = [`${from} → ${to}${v ? ` (${v.engine})` : ''}`];
    if (!cell.link && !v) lines.push('no link');
    else if (!v) lines.push(`no data in the last ${this.statusWindowS || '?'} s`);
    else {
      lines.push(
        `p50 ${fmtMs(v.p50Ms)} · p99 ${fmtMs(v.p99Ms)}`,
        `jitter ${fmtMs(v.jitterMs)} · loss ${fmtPct(v.lossRatio == null ? null : v.lossRatio * 100)}`,
        `target p99 ≤ ${fmtMs(v.targetMs)} · ${state}`,
      );
      if (v.oneWay) lines.push(`${oneWayText(v.oneWay, v.engine)} (last ${this.statusWindowS || '?'} s)`);
      lines.push(`last ${v.lastMs ? fmtTime(v.lastMs) : '—'} (${v.origin})`);
      if (v.timestamping) lines.push(`timestamps: sender ${v.timestamping.sender} · reflector ${v.timestamping.reflector}`);
    }
    if (v?.icmpUnavailable) lines.push(`ICMP: engine unavailable — ${v.icmpUnavailable}`);
    if (v?.timestamping) td.dataset.timestamping = `${v.timestamping.sender}/${v.timestamping.reflector}`;
    else delete td.dataset.timestamping;
    if (v?.icmpUnavailable) td.dataset.icmp = 'unavailable';
    else delete td.dataset.icmp;
    if (v?.oneWay) {
      td.dataset.oneWay = v.oneWay.state;
      td.dataset.oneWayBasis = v.oneWay.p99Ms === null ? '' : (v.oneWay.basis ?? '');
    } else {
      delete td.dataset.oneWay;
      delete td.dataset.oneWayBasis;
    }
    td.title = lines.join('\n');
  }

  private renderCapacity(cell: Cell): void {
    const { td } = cell;
    const cap = this.capacity.get(dirKey(cell.src, cell.dst));
    delete td.dataset.state;
    delete td.dataset.oneWay;
    delete td.dataset.oneWayBasis;
    cell.loss.textContent = '';
    td.classList.toggle('no-link', !cell.link && !cap);
    if (!cap) {
      if (cell.link) td.dataset.verdict = 'nodata';
      else delete td.dataset.verdict;
      td.classList.remove('has-data');
      cell.value.textContent = cell.link ? '—' : '';
      cell.sub.textContent = '';
      td.title = `${this.centreName(cell.src)} ↔ ${this.centreName(cell.dst)}\n${cell.link ? 'no capacity data yet' : 'no link'}`;
      return;
    }
    const tested = testedGbps(cap);
    td.dataset.verdict = cap.verdict;
    td.classList.toggle('has-data', tested !== null || cap.tested.at !== null);
    cell.value.textContent = tested !== null ? fmtGbps(tested, false) : cap.tested.verdict === 'failed' ? 'failed' : '—';
    const p = cap.provisioned;
    cell.sub.textContent = `prov ${p.gbps !== null ? fmtGbps(p.gbps, false) : p.verdict === 'nodata' ? '—' : '?'}`;
    td.title = this.capacityLines(cap).join('\n');
  }

  /** Every figure of a link's capacity, for the cell's tooltip. */
  private capacityLines(cap: LinkCapacity): string[] {
    const a = this.centreName(cap.a);
    const b = this.centreName(cap.b);
    const p = cap.provisioned;
    const t = cap.tested;
    const lines = [
      `${a} ↔ ${b} (${cap.linkId}) · ${verdictText(cap.verdict)}`,
      `committed ${fmtGbps(cap.committedGbps)} · tested floor ${fmtGbps(cap.floorGbps)}`,
      `provisioned ${fmtGbps(p.gbps)} (${verdictText(p.verdict)})`,
    ];
    for (const n of p.interfaces) {
      const speed = n.speedMbps !== null ? fmtGbps(n.speedMbps / 1000) : 'speed unknown';
      const util = n.utilisation !== null ? `, ${fmtPct(n.utilisation * 100)} used` : '';
      lines.push(`  ${this.centreName(n.centre)} ${n.interface}: ${speed}, ${n.operState || 'state unknown'}${util} (${fmtWhen(n.at)})`);
    }
    if (t.at === null) lines.push('tested: never (no test stored)');
    else {
      lines.push(
        `tested ${fmtWhen(t.at)}${t.engine ? ` (${t.engine})` : ''}: ${verdictText(t.verdict)}`,
        `  ${a} → ${b} ${fmtGbps(t.abGbps)} · ${b} → ${a} ${fmtGbps(t.baGbps)}`,
      );
      if (t.error) lines.push(`  error: ${t.error}`);
    }
    return lines;
  }
}

/** A verdict in words, for tooltips and the capacity panel. */
export function verdictText(v: CapacityVerdict): string {
  switch (v) {
    case 'met':
      return 'met';
    case 'breach':
      return 'breach';
    case 'failed':
      return 'test failed';
    case 'unknown':
      return 'unknown';
    case 'nodata':
      return 'no data';
  }
}

function headerCell(c: CentreView, scope: 'row' | 'col'): HTMLTableCellElement {
  const th = document.createElement('th');
  th.scope = scope;
  th.append(...centreNameNodes(c));
  th.title = `${centreLabel(c)} (${c.id})${c.district ? ` — ${c.district}` : ''}`;
  return th;
}
