/**
 * The iperf3 engine against the real iperf3 on loopback: client runs, the
 * supervised server (busy, restart after a kill, port in use), and failures
 * that must come back as errors, never as zero.
 */
import { createServer } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { Iperf3Server, detectIperf3, runIperf3 } from '../../probes/engines/throughput/iperf3.js';
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
    `[figures] ${label}: ${legs || r.error} | retransmits ${r.retransmits} | cpu local ${r.cpu.localPercent?.toFixed(1)} % remote ${r.cpu.remotePercent?.toFixed(1)} %`,
  );
}

describe('iperf3 availability', () => {
  it('a missing binary is reported as unavailable, and a run with it fails with the reason', async () => {
    const d = await detectIperf3('/nonexistent/iperf3');
    expect(d).toMatchObject({ available: false, version: null });
    expect(d.reason).toMatch(/command not found: \/nonexistent\/iperf3/);
    const r = await runIperf3({ host: '127.0.0.1', port: 5201, seconds: 1, command: '/nonexistent/iperf3' });
    expect(r).toMatchObject({ ok: false, engine: 'iperf3', receivedBps: null, sentBps: null });
    expect(r.error).toMatch(/^iperf3: command not found/);
  });

  it('a server with a missing binary fails to start, saying why', async () => {
    const server = new Iperf3Server({ port: 5201, command: '/nonexistent/iperf3' });
    await expect(server.start()).rejects.toThrow('iperf3 server on port 5201 did not start: iperf3: command not found: /nonexistent/iperf3');
    expect(server.state).toBe('stopped');
  });

  it('invalid options are a failed result, not an exception', async () => {
    const r = await runIperf3({ host: '127.0.0.1', seconds: 0 });
    expect(r.ok).toBe(false);
    expect(r.error).toMatch(/^iperf3: invalid options: seconds/);
  });
});

describe.skipIf(skipReason(missingCommand('iperf3', 'iperf3')))('iperf3 engine on loopback', () => {
  let server: Iperf3Server;
  let port: number;

  beforeAll(async () => {
    port = await freePort();
    server = new Iperf3Server({ port, bindAddress: '127.0.0.1', restartInitialMs: 100 });
    await server.start();
  });
  afterAll(async () => {
    await server?.stop();
  });
  // iperf3 serves one test at a time, and a starved host can still be tearing the last one down when the
  // next test starts ("the server is busy"): each test starts once the server says it is idle again.
  beforeEach(async () => {
    await server.waitForState('idle', 60_000);
  });

  it('detects the installed iperf3 and its version', async () => {
    const d = await detectIperf3();
    expect(d.available).toBe(true);
    expect(d.version).toMatch(/^iperf 3\.\d+/);
  });

  it('forward, 2 s after 1 s warm-up: a positive goodput with every field filled', async () => {
    const r = await runIperf3({ host: '127.0.0.1', port, seconds: 2, omitSeconds: 1 });
    figures('iperf3 loopback forward P1', r);
    expect(r.error).toBeNull();
    expect(r).toMatchObject({ ok: true, engine: 'iperf3', direction: 'forward', streams: 1, omitSeconds: 1, host: '127.0.0.1', port });
    expect(r.engineVersion).toMatch(/^iperf 3\./);
    expect(r.seconds).toBeGreaterThan(1.5);
    expect(r.receivedBps).toBeGreaterThan(1e8);
    expect(r.sentBps).toBeGreaterThan(1e8);
    expect(r.perStream).toHaveLength(1);
    expect(r.cpu.localPercent).toBeGreaterThan(0);
    expect(r.cpu.remotePercent).toBeGreaterThan(0);
    expect(server.status().testsAccepted).toBeGreaterThanOrEqual(1);
  });

  it('--bidir with 2 streams: both legs measured', async () => {
    const r = await runIperf3({ host: '127.0.0.1', port, seconds: 1, streams: 2, bidir: true });
    figures('iperf3 loopback bidir P2', r);
    expect(r.ok).toBe(true);
    expect(r.legs.map((l) => l.direction)).toEqual(['forward', 'reverse']);
    expect(r.perStream).toHaveLength(4);
    for (const l of r.legs) expect(l.receivedBps).toBeGreaterThan(1e7);
  });

  it('one test at a time: a second client during a test gets a clear busy error', async () => {
    const first = runIperf3({ host: '127.0.0.1', port, seconds: 3 });
    await server.waitForState('testing');
    expect(server.busy).toBe(true);
    const second = await runIperf3({ host: '127.0.0.1', port, seconds: 1 });
    expect(second.ok).toBe(false);
    expect(second.receivedBps).toBeNull();
    expect(second.error).toMatch(/busy.*one test at a time/);
    const r = await first;
    expect(r.ok).toBe(true);
    await server.waitForState('idle');
  });

  it('restarts the server after it is killed, and serves again', async () => {
    const pid = server.pid;
    expect(pid).not.toBeNull();
    const restarted = new Promise<void>((resolve) => server.once('listening', () => resolve()));
    process.kill(pid!, 'SIGKILL');
    await restarted;
    const st = server.status();
    expect(st.restarts).toBe(1);
    expect(st.state).toBe('idle');
    expect(st.pid).not.toBe(pid);
    expect(st.lastError).toBe('iperf3 server exited with SIGKILL');
    const r = await runIperf3({ host: '127.0.0.1', port, seconds: 1 });
    expect(r.ok).toBe(true);
  });

  it('a second server on a port in use fails to start with iperf3\'s reason', async () => {
    const other = new Iperf3Server({ port, bindAddress: '127.0.0.1' });
    await expect(other.start()).rejects.toThrow(/did not start: .*(in use|unable to start listener)/i);
    expect(other.state).toBe('stopped');
  });

  it('connection refused is an error result with iperf3\'s words', async () => {
    const r = await runIperf3({ host: '127.0.0.1', port: await freePort(), seconds: 1, connectTimeoutMs: 1000 });
    expect(r.ok).toBe(false);
    expect(r.error).toBe('iperf3: unable to connect to server: Connection refused');
    expect(r.receivedBps).toBeNull();
  });

  it('a test exceeding the hard limit is killed and reported as failed', async () => {
    const r = await runIperf3({ host: '127.0.0.1', port, seconds: 10, killAfterMs: 1500 });
    expect(r.ok).toBe(false);
    expect(r.error).toMatch(/^iperf3: no result within 1500 ms \(hard timeout\); killed/);
    expect(r.receivedBps).toBeNull();
    await server.waitForState('idle');
  });
});
