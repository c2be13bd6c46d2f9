// The alerts panel: firing, silenced and pending alerts from GET /v1/alerts,
// refreshed every 10 s, each with a button that silences it for an hour
// (POST /v1/alerts/silences with its labels as matchers, as Alertmanager's
// own "silence" button does). Hidden while the topology has no alerts.
import type { AlertsResponse, AlertView } from '../../api/contract.js';
import { call } from './api.js';
import { fmtGbps, fmtMs, fmtPct, fmtWhen } from './format.js';

const REFRESH_MS = 10_000;
const SILENCE_FOR = '1h';

export interface AlertsPanelHooks {
  /** Shows (or clears, with null) a problem in the page's error banner. */
  error(message: string | null): void;
}

/** "9.00 ms > 5 ms", "2.1% > 0.1%", "40 Gb/s < 95 Gb/s", "3m 10s (for 2m)". */
export function valueText(a: Pick<AlertView, 'value' | 'threshold' | 'unit' | 'alertname'>): string {
  const { value, threshold, unit } = a;
  if (value === null) return '—';
  switch (unit) {
    case 'ms': return `${fmtMs(value)} > ${fmtMs(threshold)}`;
    case 'ratio': return `${fmtPct(value * 100)} > ${fmtPct((threshold ?? 0) * 100)}`;
    case 'Gb/s': return `${fmtGbps(value)} < ${fmtGbps(threshold)}`;
    case 's': return `${duration(value)}${threshold === null ? '' : ` (limit ${duration(threshold)})`}`;
    default: return `${value} (threshold ${threshold ?? '—'})`;
  }
}

function duration(seconds: number): string {
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min${s % 60 ? ` ${s % 60} s` : ''}`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

function where(a: AlertView): string {
  if (a.link) return a.link.replace('~', '–');
  return a.centre ?? '—';
}

export class AlertsPanel {
  private timer: number | undefined;
  private loop = 0;
  private readonly body: HTMLTableSectionElement;
  private readonly summary: HTMLElement;
  private readonly empty: HTMLElement;
  private readonly table: HTMLTableElement;

  constructor(private readonly root: HTMLElement, private readonly hooks: AlertsPanelHooks) {
    this.body = root.querySelector('tbody')!;
    this.summary = root.querySelector('.alerts-summary')!;
    this.empty = root.querySelector('.alerts-empty')!;
    this.table = root.querySelector('table')!;
    this.body.addEventListener('click', (event) => {
      const button = (event.target as HTMLElement).closest<HTMLButtonElement>('button[data-silence]');
      if (button) void this.silence(button);
    });
  }

  /** Refreshes now, then every 10 s after each answer (restarting replaces the previous loop). */
  start(): void {
    const loop = ++this.loop;
    window.clearTimeout(this.timer);
    const tick = async (): Promise<void> => {
      await this.refresh();
      if (loop === this.loop) this.timer = window.setTimeout(() => void tick(), REFRESH_MS);
    };
    void tick();
  }

  async refresh(): Promise<void> {
    try {
      const r = await call('GET /v1/alerts', {});
      this.hooks.error(null);
      this.render(r);
    } catch (err) {
      this.hooks.error(err instanceof Error ? err.message : String(err));
    }
  }

  private render(r: AlertsResponse): void {
    this.root.hidden = !r.enabled;
    this.root.dataset.state = 'ready';
    const counts = { firing: 0, silenced: 0, pending: 0 };
    for (const a of r.alerts) counts[a.state]++;
    this.root.dataset.firing = String(counts.firing);
    this.summary.textContent = r.alerts.length
      ? `${counts.firing} firing · ${counts.silenced} silenced · ${counts.pending} pending`
      : '';
    this.empty.hidden = r.alerts.length > 0;
    this.table.hidden = r.alerts.length === 0;
    this.body.replaceChildren(...r.alerts.map((a) => this.row(a)));
  }

  private row(a: AlertView): HTMLTableRowElement {
    const tr = document.createElement('tr');
    tr.dataset.fingerprint = a.fingerprint;
    tr.dataset.state = a.state;
    tr.dataset.severity = a.severity;
    tr.title = a.annotations.description ?? a.annotations.summary ?? '';
    const cell = (text: string, className?: string): HTMLTableCellElement => {
      const td = document.createElement('td');
      td.textContent = text;
      if (className) td.className = className;
      return td;
    };
    const place = document.createElement('td');
    const path = a.link ? `#${encodeURIComponent(`${a.link.split('~')[0]}>${a.link.split('~')[1]}`)}` : null;
    if (path) {
      const link = document.createElement('a');
      link.href = path;
      link.textContent = where(a);
      place.append(link);
    } else place.textContent = where(a);
    const state = document.createElement('td');
    const badge = document.createElement('span');
    badge.className = 'alert-state';
    badge.textContent = a.state;
    state.append(badge);
    const action = document.createElement('td');
    if (a.state !== 'silenced') {
      const button = document.createElement('button');
      button.type = 'button';
      button.className = 'run silence';
      button.dataset.silence = a.fingerprint;
      button.textContent = `Silence ${SILENCE_FOR}`;
      button.title = `Silence this alert (${Object.entries(a.labels).map(([k, v]) => `${k}="${v}"`).join(', ')}) for ${SILENCE_FOR}`;
      action.append(button);
    }
    tr.append(
      cell(a.severity, 'severity'), cell(a.alertname, 'alertname'), place,
      cell(a.since ? fmtWhen(a.since) : 'never seen', 'since'), cell(valueText(a), 'value'), state, action,
    );
    (tr as HTMLTableRowElement & { alert?: AlertView }).alert = a;
    return tr;
  }

  private async silence(button: HTMLButtonElement): Promise<void> {
    const tr = button.closest('tr') as (HTMLTableRowElement & { alert?: AlertView }) | null;
    const alert = tr?.alert;
    if (!alert) return;
    button.disabled = true;
    try {
      await call('POST /v1/alerts/silences', {}, { body: {
        matchers: Object.entries(alert.labels).map(([name, value]) => ({ name, value })),
        duration: SILENCE_FOR,
        comment: `silenced for ${SILENCE_FOR} from the dashboard: ${alert.annotations.summary ?? alert.alertname}`,
      } });
      this.hooks.error(null);
    } catch (err) {
      this.hooks.error(err instanceof Error ? err.message : String(err));
      button.disabled = false;
      return;
    }
    this.start();
  }
}
