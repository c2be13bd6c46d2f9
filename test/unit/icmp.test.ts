import { describe, expect, it } from 'vitest';
import { IcmpEngine, parsePingOutput } from '../../probes/engines/icmp/index.js';
import { createEngine, engineNames } from '../../probes/engines/registry.js';
import { StampEngine } from '../../probes/engines/stamp/index.js';
import { missingCommand, skipReason } from '../helpers/requirements.js';

const SAMPLE = `PING 127.0.0.1 (127.0.0.1) 56(84) bytes of data.
64 bytes from 127.0.0.1: icmp_seq=1 ttl=64 time=0.041 ms
64 bytes from 127.0.0.1: icmp_seq=2 ttl=64 time=0.052 ms
64 bytes from 127.0.0.1: icmp_seq=2 ttl=64 time=0.060 ms (DUP!)
64 bytes from 127.0.0.1: icmp_seq=4 ttl=64 time=1.5 ms

--- 127.0.0.1 ping statistics ---
4 packets transmitted, 3 received, +1 duplicates, 25% packet loss, time 3004ms
rtt min/avg/max/mdev = 0.041/0.413/1.500/0.628 ms
`;

describe('parsePingOutput', () => {
  it('parses replies in output order, 0-based seq, ns RTT, DUP! flag and the transmitted count', () => {
    const p = parsePingOutput(SAMPLE);
    expect(p.transmitted).toBe(4);
    expect(p.arrivals).toEqual([
      { seq: 0, rttNs: 41_000, duplicate: false },
      { seq: 1, rttNs: 52_000, duplicate: false },
      { seq: 1, rttNs: 60_000, duplicate: true },
      { seq: 3, rttNs: 1_500_000, duplicate: false },
    ]);
  });

  it('ignores error lines and tolerates empty output', () => {
    const p = parsePingOutput('From 127.0.0.1 icmp_seq=1 Destination Host Unreachable\nping: sendmsg: Operation not permitted\n');
    expect(p).toEqual({ arrivals: [], transmitted: null });
    expect(parsePingOutput('')).toEqual({ arrivals: [], transmitted: null });
  });
});

describe.skipIf(skipReason(missingCommand('ping', 'iputils-ping')))('IcmpEngine', () => {
  it('a real train of 5 pings to 127.0.0.1', async () => {
    const engine = new IcmpEngine();
    try {
      const results = await engine.runTrain({
        host: '127.0.0.1', port: 0, count: 5, intervalMs: 10, timeoutMs: 1000, dscp: 46, flows: 3,
      });
      expect(results).toHaveLength(1);
      const [r] = results;
      expect(r).toMatchObject({
        engine: 'icmp', flow: 0, srcPort: 0, dscp: 46, sent: 5, received: 5, lost: 0,
        synced: false, errorEstimateUs: 0, fwdUs: [], revUs: [],
      });
      expect(r?.rttsUs).toHaveLength(5);
      for (const us of r?.rttsUs ?? []) expect(us).toBeGreaterThan(0);
    } finally {
      await engine.close();
    }
  });

  it('refuses a host that ping would read as an option', async () => {
    const engine = new IcmpEngine();
    await expect(
      engine.runTrain({ host: '-f', port: 0, count: 1, intervalMs: 10, timeoutMs: 1000, dscp: 0, flows: 1 }),
    ).rejects.toThrow(/invalid host/);
    await engine.close();
  });
});

describe('registry', () => {
  it('creates each engine by name', async () => {
    expect([...engineNames]).toEqual(['stamp', 'icmp']);
    for (const name of engineNames) {
      const e = createEngine(name, {});
      expect(e.name).toBe(name);
      await e.close();
    }
    const stamp = createEngine('stamp');
    expect(stamp).toBeInstanceOf(StampEngine);
    await stamp.close();
  });
});
