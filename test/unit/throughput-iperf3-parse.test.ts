import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { iperf3ClientArgs, parseIperf3Json } from '../../probes/engines/throughput/iperf3.js';
import { repoRoot } from '../helpers/netns.js';

const fixture = (name: string) => readFileSync(join(repoRoot, 'test', 'fixtures', 'iperf3', name), 'utf8');

describe('parseIperf3Json on recorded iperf 3.12 reports', () => {
  it('forward, one stream: goodput from sum_received, sender figures from sum_sent', () => {
    const r = parseIperf3Json(fixture('forward.json'));
    expect(r).toMatchObject({
      engine: 'iperf3',
      engineVersion: 'iperf 3.12',
      ok: true,
      error: null,
      host: '127.0.0.1',
      port: 15201,
      direction: 'forward',
      streams: 1,
      omitSeconds: 1,
      seconds: 2.000136,
      startedAtMs: 1795947443000,
      receivedBps: 32219763316.0945,
      receivedBytes: 8055488565,
      sentBps: 32221573629.064075,
      sentBytes: 8054374400,
      retransmits: 47,
      congestion: { sender: 'bbr', receiver: 'bbr' },
    });
    expect(r.legs).toEqual([
      {
        direction: 'forward',
        seconds: 2.000136,
        sentBytes: 8054374400,
        receivedBytes: 8055488565,
        sentBps: 32221573629.064075,
        receivedBps: 32219763316.0945,
        retransmits: 47,
      },
    ]);
    expect(r.perStream).toEqual([
      {
        id: 5,
        direction: 'forward',
        sentBytes: 8054374400,
        receivedBytes: 8055488565,
        sentBps: 32221573629.064075,
        receivedBps: 32219763316.0945,
        retransmits: 47,
        meanRttUs: 33,
      },
    ]);
    expect(r.cpu).toEqual({
      localPercent: 96.9823909263626,
      localUserPercent: 0.986602240573655,
      localSystemPercent: 95.9958219820746,
      remotePercent: 45.273242812912571,
      remoteUserPercent: 2.3980345356170423,
      remoteSystemPercent: 42.87524160832902,
    });
  });

  it('-P 4: four per-stream entries whose figures add up to the sums', () => {
    const r = parseIperf3Json(fixture('parallel-4.json'));
    expect(r.ok).toBe(true);
    expect(r.streams).toBe(4);
    expect(r.perStream.map((s) => s.id)).toEqual([5, 7, 9, 12]);
    expect(r.perStream.every((s) => s.direction === 'forward')).toBe(true);
    const sent = r.perStream.reduce((a, s) => a + (s.sentBytes ?? 0), 0);
    const received = r.perStream.reduce((a, s) => a + (s.receivedBytes ?? 0), 0);
    expect(sent).toBe(r.sentBytes);
    expect(received).toBe(r.receivedBytes);
    expect(r.retransmits).toBe(2);
    expect(r.perStream.map((s) => s.retransmits)).toEqual([1, 0, 1, 0]);
    expect(r.receivedBps).toBeCloseTo(28484764386.0478, 3);
  });

  it('-R: reverse direction, remote sender; RTT unknown (reported as 0) becomes null', () => {
    const r = parseIperf3Json(fixture('reverse.json'));
    expect(r).toMatchObject({ ok: true, direction: 'reverse', retransmits: 24, receivedBytes: 7804092363 });
    expect(r.legs.map((l) => l.direction)).toEqual(['reverse']);
    expect(r.perStream).toHaveLength(1);
    expect(r.perStream[0]).toMatchObject({ direction: 'reverse', meanRttUs: null, retransmits: 24 });
  });

  it('--bidir -P 2: two legs, primary figures are the forward leg, streams split by sender', () => {
    const r = parseIperf3Json(fixture('bidir-2.json'));
    expect(r.ok).toBe(true);
    expect(r.direction).toBe('bidir');
    expect(r.streams).toBe(2);
    expect(r.legs).toHaveLength(2);
    const [fwd, rev] = r.legs;
    expect(fwd).toMatchObject({ direction: 'forward', receivedBytes: 2256338997, sentBytes: 2254438400, retransmits: 9 });
    expect(rev).toMatchObject({ direction: 'reverse', receivedBytes: 5266866176, sentBytes: 5266472960, retransmits: 11 });
    expect(r.receivedBps).toBe(fwd?.receivedBps);
    expect(r.perStream.map((s) => s.direction)).toEqual(['forward', 'forward', 'reverse', 'reverse']);
  });

  it('connection refused: ok false, iperf3 error text, every figure null (never 0)', () => {
    const r = parseIperf3Json(fixture('error-refused.json'), { host: '127.0.0.1', port: 15299, streams: 1 });
    expect(r).toMatchObject({
      ok: false,
      error: 'iperf3: unable to connect to server: Connection refused',
      engineVersion: 'iperf 3.12',
      host: '127.0.0.1',
      port: 15299,
      seconds: null,
      sentBps: null,
      receivedBps: null,
      sentBytes: null,
      receivedBytes: null,
      retransmits: null,
      legs: [],
      perStream: [],
    });
    expect(r.cpu.localPercent).toBeNull();
  });

  it('busy server: the error says a server runs one test at a time', () => {
    const r = parseIperf3Json(fixture('error-busy.json'));
    expect(r.ok).toBe(false);
    expect(r.error).toBe('iperf3: the server is busy running a test. try again later (an iperf3 server runs one test at a time)');
  });

  it('server died mid-test: partial intervals are not turned into a figure', () => {
    const r = parseIperf3Json(fixture('error-server-died.json'));
    expect(r.ok).toBe(false);
    expect(r.error).toBe('iperf3: unable to write to stream socket: Connection reset by peer');
    expect(r.receivedBps).toBeNull();
    expect(r.host).toBe('127.0.0.1');
    expect(r.startedAtMs).toBe(1795947494000);
  });

  it('non-JSON, empty and truncated output are failures with the reason', () => {
    expect(parseIperf3Json('iperf3: parameter error - must either be a client (-c) or server (-s)').error).toMatch(
      /^iperf3: output is not a JSON report: iperf3: parameter error/,
    );
    expect(parseIperf3Json('').error).toBe('iperf3: no output');
    const truncated = JSON.parse(fixture('forward.json')) as { end: Record<string, unknown> };
    truncated.end = {};
    expect(parseIperf3Json(JSON.stringify(truncated)).error).toMatch(/did not finish/);
  });

  it('a finished report with 0 received bytes is a failure, not a zero', () => {
    const doc = JSON.parse(fixture('forward.json')) as { end: { sum_received: { bytes: number; bits_per_second: number } } };
    doc.end.sum_received.bytes = 0;
    doc.end.sum_received.bits_per_second = 0;
    const r = parseIperf3Json(JSON.stringify(doc));
    expect(r.ok).toBe(false);
    expect(r.receivedBps).toBeNull();
    expect(r.error).toMatch(/receiver counted 0 bytes/);
  });
});

describe('iperf3ClientArgs', () => {
  it('maps the options onto iperf3 flags', () => {
    expect(iperf3ClientArgs({ host: '::1', port: 5299, streams: 4, seconds: 3, omitSeconds: 1, bidir: true, bindAddress: '::1', connectTimeoutMs: 1500, zerocopy: true, family: 6 })).toEqual([
      '-c', '::1', '-p', '5299', '-t', '3', '-P', '4', '-O', '1', '--connect-timeout', '1500', '--json', '--bidir', '-B', '::1', '-Z', '-6',
    ]);
    expect(iperf3ClientArgs({ host: 'peer', reverse: true })).toContain('-R');
  });

  it('rejects what iperf3 would misread', () => {
    expect(() => iperf3ClientArgs({ host: '-s' })).toThrow(/invalid host/);
    expect(() => iperf3ClientArgs({ host: 'peer', reverse: true, bidir: true })).toThrow(/exclusive/);
    expect(() => iperf3ClientArgs({ host: 'peer', streams: 0 })).toThrow(/streams/);
  });
});
