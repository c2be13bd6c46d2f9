/** Batches for the busy tests: heavy trains, batch text, and several messages in one socket write. */
import type { TrainSample } from '../../protocol/index.js';
import type { RawClient } from './ws-client.js';

let seq = 0;

/** A train of 100 RTTs (about 900 bytes of JSON): a dozen make a batch larger than a hello may be. */
export function heavySample(dst: string, trainId = `busy-${process.pid}-${++seq}`): TrainSample {
  const rttsUs = Array.from({ length: 100 }, (_, i) => 300 + ((i * 37) % 400) + 0.5);
  const sorted = [...rttsUs].sort((a, b) => a - b);
  return {
    trainId, dst, engine: 'stamp', startedAtUs: Date.now() * 1000 - 2e6, flow: 0, srcPort: 40000, dscp: 46,
    sent: 100, received: 100, lost: 0, duplicated: 0, reordered: 0,
    rttMinUs: sorted[0]!, rttMedianUs: sorted[50]!, rttP99Us: sorted[98]!, rttMaxUs: sorted[99]!, jitterUs: 5,
    rttsUs, synced: false, errorEstimateUs: 1000, fwdUs: [], revUs: [],
  };
}

export function batchText(batchId: string, samples: TrainSample[]): string {
  return JSON.stringify({ type: 'batch', batchId, createdAtUs: Date.now() * 1000, samples });
}

/** Sends these messages in one socket write: the server reads them in one go, so the first is still being stored when the next is read. */
export function sendTogether(client: RawClient, texts: string[]): void {
  const socket = (client.ws as unknown as { _socket: { cork(): void; uncork(): void } })._socket;
  socket.cork();
  for (const t of texts) client.send(t);
  socket.uncork();
}
