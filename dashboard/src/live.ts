// The /v1/live WebSocket: parses messages, reports connection state, and
// reconnects with capped exponential backoff (plus jitter) when it drops.
import type { LiveMessage, LiveRetractedTrain } from '../../api/contract.js';
import type { TrainMessage } from './aggregate.js';
import { withAccessToken } from './token.js';

export interface LiveHandlers {
  /** A welcome, one train (batch frames are unpacked before this is called), or a retraction. */
  message(m: Exclude<LiveMessage, { type: 'trains' }>): void;
  /** `retryInS` is set while waiting to reconnect. */
  state(connected: boolean, retryInS?: number): void;
}

const BACKOFF_MIN_MS = 1_000;
const BACKOFF_MAX_MS = 30_000;

export function liveUrl(loc: Location = location): string {
  return withAccessToken(`${loc.protocol === 'https:' ? 'wss' : 'ws'}://${loc.host}/v1/live`);
}

/** Parses one WebSocket frame; null for anything that is not a LiveMessage. */
export function parseLiveMessage(raw: unknown): LiveMessage | null {
  if (typeof raw !== 'string') return null;
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    return null;
  }
  if (typeof v !== 'object' || v === null) return null;
  const m = v as { type?: unknown; serverTime?: unknown; trains?: unknown };
  if (m.type === 'welcome') return typeof m.serverTime === 'string' ? { type: 'welcome', serverTime: m.serverTime } : null;
  // One frame per batch: keep the well-formed trains of it.
  if (m.type === 'trains') {
    if (!Array.isArray(m.trains)) return null;
    return { type: 'trains', trains: m.trains.filter(isTrain) };
  }
  if (m.type === 'retract') {
    if (!Array.isArray(m.trains)) return null;
    return { type: 'retract', trains: m.trains.filter(isRetracted) };
  }
  return isTrain(v) ? v : null;
}

function isTrain(v: unknown): v is TrainMessage {
  if (typeof v !== 'object' || v === null) return false;
  const m = v as { [K in keyof TrainMessage]?: unknown };
  return (
    m.type === 'train' && typeof m.src === 'string' && typeof m.dst === 'string' &&
    typeof m.t === 'number' && Number.isFinite(m.t) && typeof m.sent === 'number' && typeof m.received === 'number'
  );
}

function isRetracted(v: unknown): v is LiveRetractedTrain {
  if (typeof v !== 'object' || v === null) return false;
  const m = v as { [K in keyof LiveRetractedTrain]?: unknown };
  return typeof m.src === 'string' && typeof m.dst === 'string' && typeof m.t === 'number' && Number.isFinite(m.t);
}

export class LiveFeed {
  private ws: WebSocket | null = null;
  private attempt = 0;
  private timer: number | undefined;

  constructor(
    private readonly url: string,
    private readonly on: LiveHandlers,
  ) {
    // Coming back online: try at once instead of waiting out the backoff.
    addEventListener('online', () => {
      if (this.timer !== undefined) this.connectNow();
    });
  }

  start(): void {
    this.connectNow();
  }

  private connectNow(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    let ws: WebSocket;
    try {
      ws = new WebSocket(this.url);
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    ws.onopen = () => this.on.state(true);
    ws.onmessage = (ev) => {
      const m = parseLiveMessage(ev.data);
      if (!m) return;
      if (m.type === 'welcome') this.attempt = 0; // a healthy server answered: reset the backoff
      if (m.type === 'trains') for (const train of m.trains) this.on.message(train);
      else this.on.message(m);
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.scheduleReconnect();
    };
    // onerror is always followed by onclose; nothing to do here.
    ws.onerror = () => {};
  }

  private scheduleReconnect(): void {
    const base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.attempt);
    const delay = base * (0.5 + Math.random() * 0.5);
    this.attempt++;
    this.on.state(false, Math.ceil(delay / 1000));
    this.timer = window.setTimeout(() => this.connectNow(), delay);
  }
}
