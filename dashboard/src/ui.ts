// Page chrome: the header (live indicator, last update, topology summary) and
// the error banner.
import type { PathState } from '../../api/contract.js';
import { fmtTime } from './format.js';

const OLD_AFTER_MS = 15_000;

export class Header {
  private lastUpdateMs: number | null = null;

  constructor(
    private readonly live: HTMLElement,
    private readonly liveText: HTMLElement,
    private readonly updated: HTMLElement,
    private readonly summary: HTMLElement,
  ) {
    // The age of the last update is re-rendered every second.
    setInterval(() => this.renderUpdated(), 1_000);
  }

  setLive(connected: boolean, retryInS?: number): void {
    const s = connected ? 'connected' : 'disconnected';
    document.body.dataset.live = s;
    this.live.dataset.state = s;
    this.liveText.textContent = connected
      ? 'live'
      : retryInS
        ? `live feed disconnected · retry in ${retryInS} s`
        : 'live feed disconnected';
  }

  /** Something fresh arrived (a status poll or a live train); epoch ms. */
  touch(ms: number): void {
    if (!Number.isFinite(ms)) return;
    if (this.lastUpdateMs === null || ms > this.lastUpdateMs) this.lastUpdateMs = ms;
  }

  renderUpdated(): void {
    const t = this.lastUpdateMs;
    if (t === null) {
      this.updated.textContent = 'no data yet';
      return;
    }
    const age = Date.now() - t;
    const old = age > OLD_AFTER_MS;
    this.updated.classList.toggle('old', old);
    this.updated.textContent = `updated ${fmtTime(t)}${old ? ` (${Math.round(age / 1000)} s ago)` : ''}`;
  }

  setSummary(centres: number, links: number, counts: Record<PathState, number> | null): void {
    const parts: string[] = [`${centres} centres`, `${links} links`];
    const frag = document.createDocumentFragment();
    frag.append(parts.join(' · '));
    if (counts) {
      for (const s of ['breach', 'warn', 'stale'] as const) {
        if (counts[s] === 0) continue;
        const b = document.createElement('span');
        b.className = `count count-${s}`;
        b.textContent = `${counts[s]} ${s}`;
        frag.append(' · ', b);
      }
      if (counts.ok > 0 && counts.breach === 0 && counts.warn === 0) {
        const b = document.createElement('span');
        b.className = 'count count-ok';
        b.textContent = 'all within target';
        frag.append(' · ', b);
      }
    }
    this.summary.replaceChildren(frag);
  }
}

/** Messages keyed by their source, so each clears itself once it works again. */
export class ErrorBanner {
  private readonly msgs = new Map<string, string>();

  constructor(private readonly el: HTMLElement) {}

  set(key: string, msg: string | null): void {
    if (msg === null) this.msgs.delete(key);
    else this.msgs.set(key, msg);
    this.render();
  }

  private render(): void {
    const list = document.createElement('ul');
    for (const m of this.msgs.values()) {
      const li = document.createElement('li');
      li.textContent = m;
      list.append(li);
    }
    this.el.replaceChildren(list);
    this.el.hidden = this.msgs.size === 0;
    document.body.dataset.api = this.msgs.size === 0 ? 'ok' : 'error';
  }
}
