/**
 * Reading a probe's WebSocket frames: their size, their text, and a batch's
 * id from the head of one not yet parsed (for a refusal made before parsing).
 */
import type { RawData } from 'ws';

export function rawLength(data: RawData): number {
  if (Array.isArray(data)) return data.reduce((n, b) => n + b.length, 0);
  return data instanceof ArrayBuffer ? data.byteLength : data.length;
}

const HEAD_BYTES = 256;

/** The first bytes of a message, as text: enough to hold a batch's type and id. */
export function rawHead(data: RawData): string {
  // Only the head is copied out of a fragmented message (the whole of it is copied once, if it is parsed).
  const first = Array.isArray(data) ? Buffer.concat(data, Math.min(HEAD_BYTES, rawLength(data))) : data instanceof ArrayBuffer ? Buffer.from(data) : data;
  return first.toString('latin1', 0, Math.min(first.length, HEAD_BYTES));
}

/**
 * A batch's id read from the message's head without parsing it: where a probe
 * writes it (`{"type":"batch","batchId":"…"`, spaces allowed), in the id's
 * own alphabet (protocol/wire.ts). Anything else: undefined, and the message
 * is parsed as usual.
 */
const BATCH_HEAD = /^\s*\{\s*"type"\s*:\s*"batch"\s*,\s*"batchId"\s*:\s*"([A-Za-z0-9._:-]{1,128})"/;
export function peekBatchId(head: string): string | undefined {
  return BATCH_HEAD.exec(head.slice(0, HEAD_BYTES))?.[1];
}

export function rawText(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  if (data instanceof ArrayBuffer) return Buffer.from(data).toString('utf8');
  return data.toString('utf8');
}
