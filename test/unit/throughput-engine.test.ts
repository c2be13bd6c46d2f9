/**
 * runThroughput / serveThroughput: engine choice ('auto' picks iperf3 when
 * the host has it, else native, and says so), and the CLI helpers.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  chooseThroughputEngine,
  formatThroughputResult,
  parseIperf3Json,
  parseThroughputTarget,
  runThroughput,
  serveThroughput,
  type ThroughputEngineChoice,
} from '../../probes/engines/throughput/index.js';
import { repoRoot } from '../helpers/netns.js';
import { missingCommand, skipReason } from '../helpers/requirements.js';

const NO_IPERF3 = '/nonexistent/iperf3';
const noIperf3 = missingCommand('iperf3', 'iperf3');

describe('engine choice', () => {
  it('auto falls back to native when iperf3 is missing, and the result says why', async () => {
    expect(await chooseThroughputEngine('auto', NO_IPERF3)).toEqual({
      engine: 'native',
      note: `auto: iperf3: command not found: ${NO_IPERF3} (install the Debian package iperf3, or use the native engine); ran the native engine`,
    });
    const server = await serveThroughput({ engine: 'native', port: 0, host: '127.0.0.1' });
    try {
      expect(server.engine).toBe('native');
      const r = await runThroughput({ host: '127.0.0.1', port: server.port, seconds: 1, iperf3: { command: NO_IPERF3 } });
      expect(r.ok).toBe(true);
      expect(r.engine).toBe('native');
      expect(r.notes).toEqual([expect.stringMatching(/^auto: iperf3: command not found.*ran the native engine$/)]);
      expect(server.busy).toBe(false);
    } finally {
      await server.stop();
    }
  });

  it('asking for iperf3 by name where it is missing gives a clear error, never a zero', async () => {
    const r = await runThroughput({ engine: 'iperf3', host: '127.0.0.1', port: 5201, seconds: 1, iperf3: { command: NO_IPERF3 } });
    expect(r).toMatchObject({ ok: false, engine: 'iperf3', receivedBps: null, sentBps: null });
    expect(r.error).toMatch(/^iperf3: command not found/);
  });

  it('an unknown engine name is a programming error', async () => {
    await expect(runThroughput({ engine: 'netperf' as ThroughputEngineChoice, host: '127.0.0.1' })).rejects.toThrow(/unknown throughput engine netperf/);
  });

  it.skipIf(skipReason(noIperf3))('auto picks iperf3 when installed; serveThroughput supervises an iperf3 server', async () => {
    expect((await chooseThroughputEngine('auto')).engine).toBe('iperf3');
    const probe = await serveThroughput({ engine: 'native', port: 0, host: '127.0.0.1' });
    const port = probe.port; // a free port, borrowed from the native server
    await probe.stop();
    const server = await serveThroughput({ port, host: '127.0.0.1' });
    try {
      expect(server.engine).toBe('iperf3');
      const r = await runThroughput({ host: '127.0.0.1', port, seconds: 1 });
      expect(r.engine).toBe('iperf3');
      expect(r.ok).toBe(true);
      expect(r.notes).toEqual([expect.stringMatching(/^auto: iperf 3\.\d+ found, ran iperf3$/)]);
    } finally {
      await server.stop();
    }
  });
});

describe('CLI helpers', () => {
  it('parseThroughputTarget', () => {
    expect(parseThroughputTarget('peer.example')).toEqual({ host: 'peer.example', port: undefined });
    expect(parseThroughputTarget('127.0.0.1:5299')).toEqual({ host: '127.0.0.1', port: 5299 });
    expect(parseThroughputTarget('[::1]:5201')).toEqual({ host: '::1', port: 5201 });
    expect(parseThroughputTarget('[::1]')).toEqual({ host: '::1', port: undefined });
    expect(parseThroughputTarget('fd00::2')).toEqual({ host: 'fd00::2', port: undefined });
    expect(() => parseThroughputTarget('peer:0')).toThrow(/port must be 1..65535/);
    expect(() => parseThroughputTarget('peer:http')).toThrow(/port must be 1..65535/);
    expect(() => parseThroughputTarget(':5201')).toThrow(/host is empty/);
    expect(() => parseThroughputTarget('')).toThrow(/empty/);
  });

  it('formatThroughputResult for a result and a failure', () => {
    const fixture = (name: string) => readFileSync(join(repoRoot, 'test', 'fixtures', 'iperf3', name), 'utf8');
    expect(formatThroughputResult(parseIperf3Json(fixture('bidir-2.json')))).toBe(
      [
        'iperf3 (iperf 3.12) → 127.0.0.1:15201 bidir, 2 stream(s)',
        'measured 2.00 s after 1 s warm-up',
        'forward received 9.02 Gbit/s (sent 9.02 Gbit/s, 9 retransmits)',
        'reverse received 21.06 Gbit/s (sent 21.07 Gbit/s, 11 retransmits)',
        'cpu local 71.3 %, remote 80.2 %',
      ].join('\n'),
    );
    expect(formatThroughputResult(parseIperf3Json(fixture('error-refused.json'), { host: 'peer', port: 5201 }))).toBe(
      ['iperf3 (iperf 3.12) → peer:5201 forward, 1 stream(s)', 'FAILED: iperf3: unable to connect to server: Connection refused'].join('\n'),
    );
  });
});
