/**
 * The /v1/live WebSocket: every stored train, as a compact message, to every
 * browser, as soon as its batch is validated (a retraction follows in the
 * rare case it is not stored after all: collector/batch-ingest.ts).
 *
 * Sending costs the server one JSON encoding per batch, shared by every
 * client: the frame is encoded once into a Buffer and that Buffer handed to
 * each socket (ws then only adds a frame header; given a string it would
 * measure and copy the text once per client). A send never waits for a
 * client: ws queues what the socket cannot take at once; a client whose
 * queue holds more than MAX_BUFFERED_BYTES (a slow link, a frozen tab) skips
 * frames instead of growing the server's memory, and the others are not
 * delayed by it.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import type { LiveHub, LiveTrain } from '../collector/index.js';
import type { LiveMessage, LiveRetractedTrain, LiveTrainMessage } from './contract.js';

const MAX_BUFFERED_BYTES = 1024 * 1024;
/** Browsers on the feed at once; beyond it new ones are refused (memory stays bounded). */
const MAX_CLIENTS = 1024;

export class LiveFeed {
  private readonly wss = new WebSocketServer({ noServer: true, maxPayload: 4096 });
  private dropped = 0;
  private readonly unsubscribe: () => void;

  constructor(hub: LiveHub) {
    // One subscription for the feed, one frame per stored batch serialised
    // once, then the same frame to every client: sends scale with batches x
    // clients, not trains x clients.
    // The messages are built only when someone listens: with no browser on the feed, a batch costs it nothing.
    this.unsubscribe = hub.subscribe(
      (trains) => this.broadcast(() => ({ type: 'trains', trains: trains.map(toMessage) })),
      (trains) => this.broadcast(() => ({ type: 'retract', trains: trains.map(toRetracted) })),
    );
    this.wss.on('connection', (ws) => {
      const welcome: LiveMessage = { type: 'welcome', serverTime: new Date().toISOString() };
      ws.send(JSON.stringify(welcome));
      // Browsers only listen; anything they send is ignored.
      ws.on('message', () => undefined);
      ws.on('error', () => ws.terminate());
    });
  }

  private broadcast(message: () => LiveMessage): void {
    if (this.wss.clients.size === 0) return;
    const frame = Buffer.from(JSON.stringify(message()));
    for (const ws of this.wss.clients) {
      if (ws.readyState !== ws.OPEN) continue;
      if (ws.bufferedAmount > MAX_BUFFERED_BYTES) {
        this.dropped++;
        continue;
      }
      ws.send(frame, { binary: false });
    }
  }

  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (this.wss.clients.size >= MAX_CLIENTS) {
      socket.end('HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n' +
        JSON.stringify({ error: 'too_many_clients', reason: `the live feed already serves ${MAX_CLIENTS} clients` }));
      return;
    }
    this.wss.handleUpgrade(request, socket, head, (ws) => this.wss.emit('connection', ws, request));
  }

  stats(): { clients: number; dropped: number } {
    return { clients: this.wss.clients.size, dropped: this.dropped };
  }

  async close(): Promise<void> {
    this.unsubscribe();
    for (const ws of this.wss.clients) ws.close(1001, 'server shutting down');
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }
}

export function toMessage(t: LiveTrain): LiveTrainMessage {
  const ms = (us: number | null) => (us === null ? null : us / 1000);
  return {
    type: 'train',
    src: t.src,
    dst: t.dst,
    engine: t.engine,
    flow: t.flow,
    t: t.startedAtUs / 1e6,
    sent: t.sent,
    received: t.received,
    lossRatio: t.sent > 0 ? (t.sent - t.received) / t.sent : 0,
    rttMinMs: ms(t.rttMinUs),
    rttP50Ms: ms(t.rttMedianUs),
    rttP99Ms: ms(t.rttP99Us),
    rttMaxMs: ms(t.rttMaxUs),
    jitterMs: ms(t.jitterUs),
  };
}

function toRetracted(t: LiveTrain): LiveRetractedTrain {
  return { src: t.src, dst: t.dst, engine: t.engine, flow: t.flow, t: t.startedAtUs / 1e6 };
}
