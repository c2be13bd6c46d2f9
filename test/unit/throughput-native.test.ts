/**
 * The native TCP engine on loopback with real sockets: forward, reverse,
 * bidir, warm-up exclusion, one test at a time, and every failure reported
 * as an error rather than a zero.
 */
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Iperf3Server } from '../../probes/engines/throughput/iperf3.js';
import { NATIVE_ENGINE_VERSION, NativeThroughputServer, runNativeTest } from '../../probes/engines/throughput/native.js';
import type { ThroughputResult } from '../../probes/engines/throughput/types.js';
import { missingCommand, skipReason } from '../helpers/requirements.js';

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const { port } = srv.address() as { port: number };
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

function figures(label: string, r: ThroughputResult): void {
  const legs = r.legs.map((l) => `${l.direction} ${(l.receivedBps / 1e9).toFixed(2)} Gbit/s`).join(', ');
  console.log(
    `[figures] ${label}: ${legs || r.error} | cpu client ${r.cpu.localPercent?.toFixed(1)} % server ${r.cpu.remotePercent?.toFixed(1)} % (same process here)`,
  );
}

interface TestEnd {
  ok: boolean;
  error: string | null;
  totalReceivedBytes: number;
  totalSentBytes: number;
}

describe('native throughput engine on loopback', () => {
  let server: NativeThroughputServer;

  beforeAll(async () => {
    server = await NativeThroughputServer.listen({ port: 0, host: '127.0.0.1' });
  });
  afterAll(async () => {
    await server?.close();
  });

  it('forward, 2 s after 1 s warm-up: goodput counted by the server, warm-up left out', async () => {
    const ended = once(server, 'test-end') as Promise<[TestEnd]>;
    const r = await runNativeTest({ host: '127.0.0.1', port: server.port, seconds: 2, omitSeconds: 1 });
    figures('native loopback forward P1', r);
    expect(r.error).toBeNull();
    expect(r).toMatchObject({
      ok: true,
      engine: 'native',
      engineVersion: NATIVE_ENGINE_VERSION,
      direction: 'forward',
      streams: 1,
      omitSeconds: 1,
      retransmits: null,
      host: '127.0.0.1',
      port: server.port,
    });
    expect(r.receivedBps).toBeGreaterThan(1e8);
    expect(r.sentBps).toBeGreaterThan(1e8);
    expect(r.receivedBytes).toBeGreaterThan(0);
    // bytes and rate agree over the reported window
    expect(r.receivedBps).toBeCloseTo(((r.receivedBytes ?? 0) * 8) / (r.seconds ?? 1), -3);
    expect(r.perStream).toEqual([expect.objectContaining({ id: 0, direction: 'forward', retransmits: null, meanRttUs: null })]);
    expect(r.cpu.localPercent).toBeGreaterThan(0);
    expect(r.cpu.remotePercent).toBeGreaterThan(0);
    const [end] = await ended;
    expect(end).toMatchObject({ ok: true, error: null });
    // The server received more over the whole connection than in the measured window: the warm-up second.
    expect(end.totalReceivedBytes).toBeGreaterThan(r.receivedBytes ?? Infinity);
  });

  it('reverse with 4 streams: the client counts, the server reports what it sent', async () => {
    const r = await runNativeTest({ host: '127.0.0.1', port: server.port, seconds: 1, streams: 4, reverse: true });
    figures('native loopback reverse P4', r);
    expect(r.ok).toBe(true);
    expect(r.direction).toBe('reverse');
    expect(r.legs.map((l) => l.direction)).toEqual(['reverse']);
    expect(r.perStream).toHaveLength(4);
    for (const s of r.perStream) {
      expect(s.direction).toBe('reverse');
      expect(s.receivedBytes).toBeGreaterThan(0);
      expect(s.sentBytes).toBeGreaterThan(0);
    }
    expect(r.perStream.reduce((a, s) => a + (s.receivedBytes ?? 0), 0)).toBe(r.receivedBytes);
  });

  it('bidir with 2 streams: two legs, 2 streams each way', async () => {
    const r = await runNativeTest({ host: '127.0.0.1', port: server.port, seconds: 1, streams: 2, bidir: true });
    figures('native loopback bidir P2', r);
    expect(r.ok).toBe(true);
    expect(r.legs.map((l) => l.direction)).toEqual(['forward', 'reverse']);
    expect(r.perStream.map((s) => s.direction)).toEqual(['forward', 'forward', 'reverse', 'reverse']);
    for (const l of r.legs) expect(l.receivedBytes).toBeGreaterThan(0);
    expect(r.receivedBps).toBe(r.legs[0]?.receivedBps);
  });

  it('one test at a time: a second client during a test is told the server is busy', async () => {
    const started = once(server, 'test-start');
    const ended = once(server, 'test-end') as Promise<[TestEnd]>;
    const first = runNativeTest({ host: '127.0.0.1', port: server.port, seconds: 2 });
    await started;
    expect(server.busy).toBe(true);
    const second = await runNativeTest({ host: '127.0.0.1', port: server.port, seconds: 1 });
    expect(second.ok).toBe(false);
    expect(second.receivedBps).toBeNull();
    expect(second.error).toBe(`native: the server at 127.0.0.1:${server.port} is busy running a test; try again later`);
    expect((await first).ok).toBe(true);
    // The server frees itself when the client closes the control connection.
    expect((await ended)[0].ok).toBe(true);
    expect(server.busy).toBe(false);
  });

  it('an abort ends the test with an error and frees the server', async () => {
    const ac = new AbortController();
    const ended = once(server, 'test-end') as Promise<[TestEnd]>;
    server.once('test-start', () => ac.abort());
    const r = await runNativeTest({ host: '127.0.0.1', port: server.port, seconds: 5, signal: ac.signal });
    expect(r).toMatchObject({ ok: false, error: 'native: aborted', receivedBps: null, sentBps: null });
    const [end] = await ended;
    expect(end.ok).toBe(false);
    expect(server.busy).toBe(false);
  });

  it('a test running past its hard limit is ended and reported as failed', async () => {
    const ended = once(server, 'test-end') as Promise<[TestEnd]>;
    const r = await runNativeTest({ host: '127.0.0.1', port: server.port, seconds: 10, killAfterMs: 1500 });
    expect(r).toMatchObject({ ok: false, error: 'native: no result within 1500 ms (hard timeout)', receivedBps: null });
    expect((await ended)[0].ok).toBe(false);
    expect(server.busy).toBe(false);
  });

  it('invalid options are a failed result', async () => {
    const r = await runNativeTest({ host: '127.0.0.1', port: server.port, streams: 0 });
    expect(r.ok).toBe(false);
    expect(r.error).toMatch(/^native: invalid options: streams/);
  });
});

describe('native engine failures', () => {
  it('connection refused', async () => {
    const port = await freePort();
    const r = await runNativeTest({ host: '127.0.0.1', port, seconds: 1 });
    expect(r).toMatchObject({ ok: false, engine: 'native', receivedBps: null, sentBps: null, legs: [] });
    expect(r.error).toBe(`native: unable to connect to 127.0.0.1:${port}: connection refused (is a citymesh native throughput server listening there?)`);
  });

  it('a peer that accepts but never answers: timeout with the reason', async () => {
    const held: Socket[] = [];
    const silent: Server = createServer((s) => held.push(s));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = silent.address() as { port: number };
      const r = await runNativeTest({ host: '127.0.0.1', port, seconds: 1, connectTimeoutMs: 300 });
      expect(r.ok).toBe(false);
      expect(r.error).toBe('native: no answer to the test request from the server within 300 ms');
    } finally {
      for (const s of held) s.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });

  it('the server going away mid-test is an error, not a partial figure', async () => {
    const server = await NativeThroughputServer.listen({ port: 0, host: '127.0.0.1' });
    server.once('test-start', () => setImmediate(() => void server.close()));
    const r = await runNativeTest({ host: '127.0.0.1', port: server.port, seconds: 3 });
    expect(r.ok).toBe(false);
    expect(r.receivedBps).toBeNull();
    expect(r.error).toMatch(/^native: /);
  });

  it.skipIf(skipReason(missingCommand('iperf3', 'iperf3')))('pointed at an iperf3 server, it says the peer speaks another protocol', async () => {
    const port = await freePort();
    const iperf = new Iperf3Server({ port, bindAddress: '127.0.0.1' });
    await iperf.start();
    try {
      const r = await runNativeTest({ host: '127.0.0.1', port, seconds: 1 });
      expect(r.ok).toBe(false);
      expect(r.error).toBe(`native: 127.0.0.1:${port} did not answer with the citymesh native protocol (is it an iperf3 server or another service?)`);
    } finally {
      await iperf.stop();
    }
  });
});
