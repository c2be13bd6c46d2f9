/**
 * How a probe holds a batch the collector deferred: after the collector's
 * retry hint when a busy store gives one (not doubling its back-off), else
 * after a doubling back-off; a hint that is not a finite, non-negative number
 * is no hint. A scripted collector on loopback answers each batch in turn;
 * the probe's uplink logs each hold it chose (retryInMs), judged against the
 * policy's bounds (no clock involved), and the batch is stored in the end.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import type { AddressInfo } from 'node:net';
import { pino, type Logger } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocketServer, type WebSocket } from 'ws';
import { retryAfterMs } from '../../collector/batch-ingest.js';
import { Spool } from '../../probes/spool.js';
import { Uplink, deferralHold, retryHintMs } from '../../probes/uplink.js';
import type { ProbeReport, TrainSample } from '../../protocol/index.js';

function sample(trainId: string): TrainSample {
  const rttsUs = [310.5, 320.5, 330.5];
  return {
    trainId, dst: 'beta', engine: 'stamp', startedAtUs: Date.now() * 1000 - 2e6, flow: 0, srcPort: 40000, dscp: 46,
    sent: 3, received: 3, lost: 0, duplicated: 0, reordered: 0,
    rttMinUs: 310.5, rttMedianUs: 320.5, rttP99Us: 330.5, rttMaxUs: 330.5, jitterUs: 5,
    rttsUs, synced: false, errorEstimateUs: 1000, fwdUs: [], revUs: [],
  };
}

/** Log lines the uplink wrote, parsed. */
function capturingLogger(): { logger: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line.trim()) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { logger: pino({ level: 'debug' }, stream), lines };
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

describe('the collector\'s retry hint', () => {
  it('is the store\'s expected wait beyond what it admits, within 100 ms and 30 s; none while the rate is unmeasured', () => {
    expect(retryAfterMs(null, 1.5)).toBeUndefined();
    expect(retryAfterMs(Number.NaN, 1.5)).toBeUndefined();
    expect(retryAfterMs(3.2, 1.5)).toBe(1700);
    expect(retryAfterMs(1.51, 1.5)).toBe(100);
    expect(retryAfterMs(1e9, 1.5)).toBe(30_000);
  });

  it('is taken by a probe only as a finite, non-negative number of ms, at most its back-off ceiling', () => {
    expect(retryHintMs(250)).toBe(250);
    expect(retryHintMs(0)).toBe(0);
    expect(retryHintMs(1e12)).toBe(30_000);
    for (const hostile of [-5, Number.NaN, Number.POSITIVE_INFINITY, '300', null, undefined, {}, [300], true]) {
      expect(retryHintMs(hostile), JSON.stringify(hostile)).toBeUndefined();
    }
  });

  it('holds a probe for the hint plus up to half again, back-off unchanged; without one, half to all of a back-off that doubles to 30 s', () => {
    expect(deferralHold(300, 500, 0)).toEqual({ holdMs: 300, nextBackoffMs: 500 });
    expect(deferralHold(300, 500, 0.999)).toEqual({ holdMs: 450, nextBackoffMs: 500 });
    expect(deferralHold(30_000, 500, 0.5)).toEqual({ holdMs: 30_000, nextBackoffMs: 500 });
    expect(deferralHold(undefined, 500, 0)).toEqual({ holdMs: 250, nextBackoffMs: 1000 });
    expect(deferralHold(undefined, 500, 0.999)).toEqual({ holdMs: 500, nextBackoffMs: 1000 });
    expect(deferralHold(undefined, 30_000, 0)).toEqual({ holdMs: 15_000, nextBackoffMs: 30_000 });
  });

  it('a probe holds a deferred batch as hinted without doubling its back-off, doubles without a hint, and stores it in the end', async () => {
    // One reply per batch received, in this order; then acks.
    const replies: Record<string, unknown>[] = [
      { code: 'busy', retryAfterMs: 300 },
      { code: 'busy' }, // no hint: the back-off starts at 0.5 s (it was not doubled by the hinted hold)
      { code: 'busy', retryAfterMs: -5 }, // hostile: no hint, doubled to 1 s
      { code: 'busy', retryAfterMs: '9' }, // hostile: no hint, doubled to 2 s
      { code: 'rate_limited', retryAfterMs: 5 }, // a hint only counts with busy: doubled to 4 s
    ];
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise<void>((r) => wss.once('listening', () => r()));
    cleanups.push(() => new Promise<void>((r) => wss.close(() => r())));
    const received: string[] = [];
    wss.on('connection', (ws: WebSocket) => {
      ws.on('message', (data) => {
        const m = JSON.parse(String(data)) as { type: string; batchId?: string };
        if (m.type === 'hello') ws.send(JSON.stringify({ type: 'plan' }));
        if (m.type !== 'batch') return;
        received.push(m.batchId!);
        const reply = replies.shift();
        ws.send(JSON.stringify(reply ? { type: 'error', error: 'scripted', batchId: m.batchId, ...reply } : { type: 'ack', batchId: m.batchId }));
      });
    });
    const dir = mkdtempSync(join(tmpdir(), 'citymesh-uplink-retry-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const spool = Spool.open({ dir, centre: 'alpha', maxBytes: 1 << 20 });
    await spool.append(sample(`uplink-retry-${process.pid}`));
    const { logger, lines } = capturingLogger();
    const uplink = new Uplink({
      serverUrls: [`ws://127.0.0.1:${(wss.address() as AddressInfo).port}`], centre: 'alpha', token: 'test', version: 'test', logger, spool,
      report: () => ({}) as ProbeReport, onPlan: () => void uplink.pump(), onRequest: () => {}, onRefused: () => false,
    });
    cleanups.push(() => uplink.close());
    const drained = new Promise<void>((resolve) => {
      const check = setInterval(() => {
        if (spool.pending().length === 0 && received.length > 0) {
          clearInterval(check);
          resolve();
        }
      }, 20);
    });
    await spool.seal();
    uplink.connect();
    await drained;

    const holds = lines.filter((l) => String(l.msg).startsWith('collector deferred a batch')).map((l) => l.retryInMs as number);
    expect(holds).toHaveLength(5);
    const [hinted, first, second, third, fourth] = holds as [number, number, number, number, number];
    expect(hinted).toBeGreaterThanOrEqual(300);
    expect(hinted).toBeLessThanOrEqual(450);
    expect(first).toBeGreaterThanOrEqual(250);
    expect(first).toBeLessThanOrEqual(500);
    expect(second).toBeGreaterThanOrEqual(500);
    expect(second).toBeLessThanOrEqual(1000);
    expect(third).toBeGreaterThanOrEqual(1000);
    expect(third).toBeLessThanOrEqual(2000);
    expect(fourth).toBeGreaterThanOrEqual(2000);
    expect(fourth).toBeLessThanOrEqual(4000);
    // The same batch each time, stored once it was acknowledged.
    expect(new Set(received).size).toBe(1);
    expect(received).toHaveLength(6);
  }, 60_000);
});
