// Annotations on the link's latency charts: diagnostics runs (traceroute, path
// MTU, fast STAMP train), path changes, maintenance windows and our own
// throughput tests (their latency and loss are ours, not the network's), drawn by a
// uPlot plugin on every chart of the link and listed under them with their
// details; plus the operator's "Run diagnostics" button.
import uPlot from 'uplot';
import type { Annotation, DiagnosticRunView } from '../../api/contract.js';
import { fetchAnnotations, fetchDiagnostics, startDiagnostics } from './api.js';
import { fmtMs, fmtPct, fmtTime } from './format.js';
import type { Direction } from './matrix.js';

const REFRESH_MS = 15_000;
/** How long the button waits for both probes' results. */
const RUN_WAIT_MS = 90_000;
const RUN_POLL_MS = 2_000;

/** One style per kind: diagnostics dashed (operator blue, breach orange), path change solid violet, maintenance a band. */
const STYLE = {
  operator: '#6cb6ff',
  breach: '#f69d50',
  path_change: '#d2a8ff',
  maintenance: 'rgba(139, 148, 158, 0.16)',
  maintenanceEdge: 'rgba(139, 148, 158, 0.55)',
  selfLoad: 'rgba(86, 211, 100, 0.14)',
  selfLoadEdge: 'rgba(86, 211, 100, 0.6)',
};

export interface AnnotationHooks {
  /** Seconds since the epoch on the server's clock. */
  now(): number;
  error(msg: string | null): void;
  centreName(id: string): string;
  /** The x window the charts show, seconds. */
  windowS: number;
}

export class AnnotationLayer {
  private annotations: Annotation[] = [];
  private readonly plots = new Set<uPlot>();
  private dir: Direction | null = null;
  private timer: number | undefined;
  private abort: AbortController | null = null;
  private readonly list: HTMLOListElement;
  private readonly details: HTMLElement;
  private readonly button: HTMLButtonElement;
  private readonly state: HTMLElement;
  private running = false;

  constructor(private readonly root: HTMLElement, private readonly hooks: AnnotationHooks) {
    const head = root.querySelector<HTMLElement>('.panel-head') ?? root;
    this.state = el('span', 'diag-state');
    this.state.id = 'diag-state';
    this.button = el('button', 'run') as HTMLButtonElement;
    this.button.id = 'diag-run';
    this.button.type = 'button';
    this.button.textContent = 'Run diagnostics';
    this.button.title = 'traceroute, path MTU and a fast STAMP train from both ends of this link';
    this.button.disabled = true;
    this.button.addEventListener('click', () => void this.run());
    head.append(this.state, this.button);

    const section = el('div', 'annotations');
    const title = el('h3', 'plot-title');
    title.textContent = 'Diagnostics, path changes, maintenance, our throughput tests';
    this.list = el('ol', 'annotation-list') as HTMLOListElement;
    this.list.id = 'annotation-list';
    this.details = el('div', 'annotation-details');
    this.details.id = 'annotation-details';
    this.details.hidden = true;
    section.append(title, this.list, this.details);
    (root.querySelector('.plots-wrap') ?? root).after(section);
    root.dataset.annotations = '0';
    root.dataset.markers = '0';
  }

  /** The uPlot plugin every chart of the link carries: draws the markers and keeps the plot for redraws. */
  plugin(): uPlot.Plugin {
    return {
      hooks: {
        init: [(u) => void this.plots.add(u)],
        destroy: [(u) => void this.plots.delete(u)],
        draw: [(u) => this.draw(u)],
      },
    };
  }

  show(dir: Direction): void {
    this.dir = dir;
    this.annotations = [];
    this.button.disabled = this.running;
    this.details.hidden = true;
    this.render();
    this.stop();
    void this.refresh();
    this.timer = window.setInterval(() => void this.refresh(), REFRESH_MS);
  }

  stop(): void {
    if (this.timer !== undefined) window.clearInterval(this.timer);
    this.timer = undefined;
    this.abort?.abort();
  }

  async refresh(): Promise<void> {
    const dir = this.dir;
    if (!dir) return;
    this.abort?.abort();
    const abort = (this.abort = new AbortController());
    const toS = this.hooks.now();
    try {
      const r = await fetchAnnotations(dir.src, dir.dst, new Date((toS - this.hooks.windowS) * 1000), new Date((toS + 60) * 1000), abort.signal);
      if (abort.signal.aborted || this.dir !== dir) return;
      this.annotations = r.annotations;
      this.hooks.error(null);
    } catch (err) {
      if (abort.signal.aborted) return;
      this.hooks.error(err instanceof Error ? err.message : String(err));
      return;
    }
    this.render();
    for (const u of this.plots) u.redraw(false);
  }

  /** Asks both probes for diagnostics now, waits (bounded) for their results, then shows them. */
  private async run(): Promise<void> {
    const dir = this.dir;
    if (!dir || this.running) return;
    this.running = true;
    this.button.disabled = true;
    this.setState('requested', 'requested…');
    try {
      const request = await startDiagnostics(dir.src, dir.dst);
      const deadline = Date.now() + RUN_WAIT_MS;
      for (;;) {
        await new Promise((r) => setTimeout(r, RUN_POLL_MS));
        const detail = await fetchDiagnostics(dir.src, dir.dst, request.requestId);
        if (detail.pending.length === 0) {
          this.setState('done', `done: ${detail.runs.map((run) => `${this.hooks.centreName(run.src)} ${run.durationMs} ms`).join(', ')}`);
          break;
        }
        if (Date.now() > deadline) {
          this.setState('incomplete', `no result from ${detail.pending.map((c) => this.hooks.centreName(c)).join(' and ')} (is its probe connected?)`);
          break;
        }
        this.setState('running', `running… waiting for ${detail.pending.map((c) => this.hooks.centreName(c)).join(' and ')}`);
      }
      await this.refresh();
    } catch (err) {
      this.setState('failed', err instanceof Error ? err.message : String(err));
    } finally {
      this.running = false;
      this.button.disabled = this.dir === null;
    }
  }

  private setState(state: string, text: string): void {
    this.state.dataset.state = state;
    this.state.textContent = text;
  }

  private render(): void {
    this.root.dataset.annotations = String(this.annotations.length);
    this.list.replaceChildren(
      ...(this.annotations.length === 0
        ? [emptyItem('No diagnostics, path changes, maintenance or throughput tests in this window.')]
        : [...this.annotations].reverse().map((a) => this.item(a))),
    );
  }

  private item(a: Annotation): HTMLLIElement {
    const li = el('li', 'annotation') as HTMLLIElement;
    li.dataset.kind = a.kind;
    const when = el('time');
    when.textContent = fmtTime(a.t * 1000);
    const what = el('span', 'what');
    const name = (id: string) => this.hooks.centreName(id);
    if (a.kind === 'diagnostics') {
      li.dataset.trigger = a.trigger;
      li.dataset.run = a.runId;
      const fast = a.fastP99Ms === null ? 'fast train: no reply' : `fast train p50 ${fmtMs(a.fastP50Ms)} p99 ${fmtMs(a.fastP99Ms)} loss ${fmtPct(a.fastLossRatio === null ? null : a.fastLossRatio * 100)}`;
      what.textContent = `${a.trigger === 'breach' ? 'Breach' : 'Operator'} diagnostics ${name(a.src)} → ${name(a.dst)}: ${a.hops} hop${a.hops === 1 ? '' : 's'}${a.reached ? '' : ' (not reached)'}, PMTU ${a.pmtu ?? '—'}, ${fast}`;
      li.title = [a.reason, ...a.problems].join('\n');
      li.tabIndex = 0;
      const open = () => void this.open(a.runId);
      li.addEventListener('click', open);
      li.addEventListener('keydown', (e) => e.key === 'Enter' && open());
    } else if (a.kind === 'path_change') {
      what.textContent = `Path change ${name(a.src)} → ${name(a.dst)}: ${hopsText(a.before)} ⇒ ${hopsText(a.after)}`;
    } else if (a.kind === 'self_load') {
      li.dataset.test = a.testId;
      what.textContent = `Our throughput test (${a.trigger}) until ${fmtTime(a.tEnd * 1000)}: latency and loss left out of the SLA and alerts (± ${a.guardMs / 1000} s)`;
      li.title = `test ${a.testId}, known from: ${a.sources.join(', ')}`;
    } else {
      what.textContent = `Maintenance ${a.target} until ${fmtTime(a.tEnd * 1000)}: ${a.reason}${a.declaredLate ? ' (declared late)' : ''}`;
    }
    li.append(when, what);
    return li;
  }

  private async open(runId: string): Promise<void> {
    const dir = this.dir;
    if (!dir) return;
    try {
      const detail = await fetchDiagnostics(dir.src, dir.dst, runId);
      const run = detail.runs[0];
      if (run) this.showRun(run);
    } catch (err) {
      this.hooks.error(err instanceof Error ? err.message : String(err));
    }
  }

  private showRun(run: DiagnosticRunView): void {
    const d = this.details;
    d.hidden = false;
    d.dataset.run = run.runId;
    const h = el('h4');
    h.textContent = `${this.hooks.centreName(run.src)} → ${this.hooks.centreName(run.dst)} at ${fmtTime(run.at)} (${run.trigger}: ${run.reason})`;
    const table = el('table', 'hops');
    const head = el('tr');
    for (const c of ['TTL', 'address', 'RTT per probe']) head.append(cell('th', c));
    table.append(head);
    for (const hop of run.traceroute.hops) {
      const tr = el('tr');
      const addresses = [...new Set(hop.probes.map((p) => p.address ?? '*'))].join(', ');
      const rtts = hop.probes.map((p) => (p.rttMs === null ? '*' : `${fmtMs(p.rttMs, false)}${p.flag ? ` ${p.flag}` : ''}`)).join('  ');
      tr.append(cell('td', String(hop.ttl)), cell('td', addresses), cell('td', rtts));
      table.append(tr);
    }
    const f = run.fastTrain;
    const facts = el('p', 'hint');
    facts.textContent = [
      run.traceroute.error ? `traceroute: ${run.traceroute.error}` : `traceroute ${run.traceroute.reached ? 'reached' : 'did not reach'} the peer`,
      run.pathMtu.pmtu === null ? `path MTU: ${run.pathMtu.error ?? 'unknown'}` : `path MTU ${run.pathMtu.pmtu} bytes${run.pathMtu.dropAtTtl ? ` (drops at hop ${run.pathMtu.dropAtTtl})` : ''}`,
      f.ok ? `fast train ${f.sent} × ${f.intervalMs} ms: p50 ${fmtMs(f.rttP50Ms)}, p99 ${fmtMs(f.rttP99Ms)}, loss ${fmtPct((f.lossRatio ?? 0) * 100)}` : `fast train: ${f.error}`,
    ].join(' · ');
    d.replaceChildren(h, table, facts);
  }

  private draw(u: uPlot): void {
    const x = u.scales.x;
    if (x?.min == null || x.max == null) return;
    const { left, top, width, height } = u.bbox;
    const pr = uPlot.pxRatio;
    const ctx = u.ctx;
    let drawn = 0;
    ctx.save();
    ctx.beginPath();
    ctx.rect(left, top, width, height);
    ctx.clip();
    for (const a of this.annotations) {
      if (a.kind === 'maintenance' || a.kind === 'self_load') {
        // The band a self-load window takes out of the verdicts includes its guard.
        const guardS = a.kind === 'self_load' ? a.guardMs / 1000 : 0;
        if (a.tEnd + guardS < x.min || a.t - guardS > x.max) continue;
        const x0 = Math.max(left, u.valToPos(a.t - guardS, 'x', true));
        const x1 = Math.min(left + width, u.valToPos(a.tEnd + guardS, 'x', true));
        ctx.fillStyle = a.kind === 'self_load' ? STYLE.selfLoad : STYLE.maintenance;
        ctx.fillRect(x0, top, Math.max(pr, x1 - x0), height);
        ctx.strokeStyle = a.kind === 'self_load' ? STYLE.selfLoadEdge : STYLE.maintenanceEdge;
        ctx.lineWidth = pr;
        ctx.strokeRect(x0, top, Math.max(pr, x1 - x0), height);
        drawn++;
        continue;
      }
      if (a.t < x.min || a.t > x.max) continue;
      const px = Math.round(u.valToPos(a.t, 'x', true)) + 0.5;
      ctx.strokeStyle = a.kind === 'path_change' ? STYLE.path_change : a.trigger === 'breach' ? STYLE.breach : STYLE.operator;
      ctx.lineWidth = (a.kind === 'path_change' ? 2 : 1.5) * pr;
      ctx.setLineDash(a.kind === 'path_change' ? [] : [4 * pr, 3 * pr]);
      ctx.beginPath();
      ctx.moveTo(px, top);
      ctx.lineTo(px, top + height);
      ctx.stroke();
      if (a.kind === 'path_change') {
        // A diamond on top tells a path change from a run at a glance.
        const s = 4 * pr;
        ctx.fillStyle = STYLE.path_change;
        ctx.beginPath();
        ctx.moveTo(px, top);
        ctx.lineTo(px + s, top + s);
        ctx.lineTo(px, top + 2 * s);
        ctx.lineTo(px - s, top + s);
        ctx.closePath();
        ctx.fill();
      }
      drawn++;
    }
    ctx.restore();
    // The RTT chart (the first plot) reports what it drew, for tests and for the curious.
    if (u === this.plots.values().next().value) this.root.dataset.markers = String(drawn);
  }
}

function hopsText(hops: string[][]): string {
  return hops.map((h) => (h.length === 0 ? '*' : h.join('|'))).join(' › ');
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, className?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (className) e.className = className;
  return e;
}

function cell(tag: 'td' | 'th', text: string): HTMLTableCellElement {
  const c = el(tag);
  c.textContent = text;
  return c;
}

function emptyItem(text: string): HTMLLIElement {
  const li = el('li', 'annotation empty-note');
  li.textContent = text;
  return li;
}
