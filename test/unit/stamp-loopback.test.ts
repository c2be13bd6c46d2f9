import { createSocket, type Socket } from 'node:dgram';
import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TrainTask } from '../../probes/engines/types.js';
import { ClockSyncCache, type ClockSync } from '../../probes/engines/stamp/clock.js';
import {
  decodeReflectorPacket,
  decodeSenderPacket,
  encodeReflectorPacket,
  encodeSenderPacket,
  ntpToUnixNs,
} from '../../probes/engines/stamp/codec.js';
import { StampEngine } from '../../probes/engines/stamp/index.js';
import { StampReflector } from '../../probes/engines/stamp/reflector.js';
import { nativeDatapathMissing, skipReason } from '../helpers/requirements.js';

const HOST = '127.0.0.1';

function task(port: number, over: Partial<TrainTask> = {}): TrainTask {
  return { host: HOST, port, count: 20, intervalMs: 2, timeoutMs: 300, dscp: 46, flows: 2, ...over };
}

async function udp(): Promise<Socket> {
  const s = createSocket('udp4');
  s.bind(0, HOST);
  await once(s, 'listening');
  return s;
}

const fakeClock = (sync: Omit<ClockSync, 'detail'>) => new ClockSyncCache({ read: async () => ({ ...sync, detail: 'test' }) });

// Every test runs on both datapaths: the native one (when built) and the JavaScript fallback.
const nativeMissing = nativeDatapathMissing();

describe.each(['native', 'js'] as const)('%s datapath', (datapath) => {
const skip = datapath === 'native' && skipReason(nativeMissing);
beforeAll(() => {
  process.env.CITYMESH_STAMP_DATAPATH = datapath;
});
afterAll(() => {
  delete process.env.CITYMESH_STAMP_DATAPATH;
});

describe.skipIf(skip)('StampEngine against StampReflector on loopback', () => {
  let reflector: StampReflector;
  let engine: StampEngine;

  beforeAll(async () => {
    reflector = await StampReflector.listen({ port: 0, host: HOST });
    engine = new StampEngine();
  });
  afterAll(async () => {
    await engine.close();
    await reflector.close();
  });

  it('a 20-packet train over 2 flows: one result per flow, no loss, sane RTTs', async () => {
    const results = await engine.runTrain(task(reflector.address().port));
    expect(results).toHaveLength(2);
    expect(results.map((r) => r.flow)).toEqual([0, 1]);
    expect(new Set(results.map((r) => r.srcPort)).size).toBe(2);
    for (const r of results) {
      expect(r).toMatchObject({ engine: 'stamp', dscp: 46, sent: 20, received: 20, lost: 0, duplicated: 0 });
      expect(r.senderTimestamping).toBe(datapath === 'native' ? 'kernel' : 'user');
      expect(r.reflectorTimestamping).toBe('unknown');
      expect(r.srcPort).toBeGreaterThan(0);
      expect(r.rttsUs).toHaveLength(20);
      for (const us of r.rttsUs) {
        expect(us).toBeGreaterThan(0);
        expect(us).toBeLessThan(1e6);
      }
      expect(r.rttMinUs).not.toBeNull();
      expect(r.rttMinUs as number).toBeLessThanOrEqual(r.rttMedianUs as number);
      expect(r.rttMedianUs as number).toBeLessThanOrEqual(r.rttP99Us as number);
      expect(r.rttP99Us as number).toBeLessThanOrEqual(r.rttMaxUs as number);
      expect(r.errorEstimateUs).toBeGreaterThan(0);
      expect(Math.abs(r.startedAtUs / 1000 - Date.now())).toBeLessThan(60_000);
    }
    expect(reflector.stats().reflected).toBeGreaterThanOrEqual(40);
    expect(reflector.stats()).toMatchObject({ datapath, timestamping: datapath === 'native' ? 'kernel' : 'user' });
  });

  it('a second train reuses the same source ports', async () => {
    const port = reflector.address().port;
    const a = await engine.runTrain(task(port, { count: 3 }));
    const b = await engine.runTrain(task(port, { count: 3 }));
    expect(b.map((r) => r.srcPort)).toEqual(a.map((r) => r.srcPort));
    expect(b.every((r) => r.received === 3)).toBe(true);
  });

  it('a train to a port where nothing listens loses everything', async () => {
    const probe = await udp();
    const deadPort = probe.address().port;
    probe.close();
    const [r] = await engine.runTrain(task(deadPort, { count: 5, flows: 1, timeoutMs: 200 }));
    expect(r).toMatchObject({
      sent: 5, received: 0, lost: 5,
      rttMinUs: null, rttMedianUs: null, rttP99Us: null, rttMaxUs: null, jitterUs: null,
      rttsUs: [], fwdUs: [], revUs: [], synced: false,
    });
  });

  it('aborting a train rejects with the abort reason', async () => {
    const ac = new AbortController();
    const run = engine.runTrain(task(reflector.address().port, { count: 1000, intervalMs: 10, flows: 1 }), ac.signal);
    setTimeout(() => ac.abort(new Error('stop')), 20);
    await expect(run).rejects.toThrow('stop');
  });
});

describe.skipIf(skip)('session sequence numbers (recording reflector)', () => {
  it('start at 0 and continue across trains on a stable source port', async () => {
    const seen: Array<{ port: number; seq: number }> = [];
    const fake = await udp();
    fake.on('message', (msg, rinfo) => {
      const req = decodeSenderPacket(msg);
      seen.push({ port: rinfo.port, seq: req.seq });
      const reply = encodeReflectorPacket({
        seq: req.seq, timestamp: req.timestamp, errorEstimate: 0x1980, receiveTimestamp: req.timestamp,
        senderSeq: req.seq, senderTimestamp: req.timestamp, senderErrorEstimate: req.errorEstimate, senderTtl: 255,
      });
      fake.send(reply, rinfo.port, rinfo.address);
    });
    const engine = new StampEngine();
    try {
      const t = task(fake.address().port, { count: 5, flows: 1, timeoutMs: 200 });
      const [a] = await engine.runTrain(t);
      const [b] = await engine.runTrain(t);
      expect(a?.received).toBe(5);
      expect(b?.received).toBe(5);
      expect(seen.map((s) => s.seq)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
      expect(new Set(seen.map((s) => s.port))).toEqual(new Set([a?.srcPort]));
    } finally {
      await engine.close();
      fake.close();
    }
  });
});

describe.skipIf(skip)('StampReflector on the wire', () => {
  let reflector: StampReflector;
  let client: Socket;

  beforeAll(async () => {
    reflector = await StampReflector.listen({ port: 0, host: HOST });
    client = await udp();
  });
  afterAll(async () => {
    client.close();
    await reflector.close();
  });

  async function exchange(pkt: Buffer): Promise<Buffer> {
    const reply = once(client, 'message');
    client.send(pkt, reflector.address().port, HOST);
    const [msg] = (await reply) as [Buffer];
    return msg;
  }

  it('copies seq, T1 and Error Estimate, writes the received TTL (255 when unknown) and zero MBZ', async () => {
    client.setTTL(200);
    const t1 = { seconds: 0xe8f1a2b3, fraction: 0x12345678 };
    const before = reflector.stats();
    const reply = await exchange(encodeSenderPacket({ seq: 0x2a, timestamp: t1, errorEstimate: 0x1980 }));
    expect(reply.length).toBe(44);
    expect(reply.subarray(0, 4).toString('hex')).toBe('0000002a');
    expect(reply.subarray(24, 28).toString('hex')).toBe('0000002a');
    expect(reply.subarray(28, 36).toString('hex')).toBe('e8f1a2b312345678');
    expect(reply.subarray(36, 38).toString('hex')).toBe('1980');
    expect(reply[40]).toBe(datapath === 'native' ? 200 : 255);
    for (const off of [14, 15, 38, 39, 41, 42, 43]) expect(reply[off]).toBe(0);
    const d = decodeReflectorPacket(reply);
    expect(ntpToUnixNs(d.receiveTimestamp) <= ntpToUnixNs(d.timestamp)).toBe(true);
    expect((d.errorEstimate & 0xff) > 0).toBe(true); // multiplier never 0
    expect(reflector.stats().reflected).toBe(before.reflected + 1);
  });

  it('never answers with more than it was sent: a 14-octet packet is refused, larger sizes are mirrored', async () => {
    const before = reflector.stats();
    const small = encodeSenderPacket({ seq: 1, timestamp: { seconds: 1, fraction: 2 }, errorEstimate: 1 }, 14);
    client.send(small, reflector.address().port, HOST);
    expect((await exchange(encodeSenderPacket({ seq: 9, timestamp: { seconds: 1, fraction: 2 }, errorEstimate: 1 }))).length).toBe(44);
    expect(reflector.stats().drops.tooShort).toBe(before.drops.tooShort + 1);
    const big = encodeSenderPacket({ seq: 2, timestamp: { seconds: 1, fraction: 2 }, errorEstimate: 1 }, 200);
    const reply = await exchange(big);
    expect(reply.length).toBe(200);
    expect(decodeReflectorPacket(reply).senderSeq).toBe(2);
  });

  it('counts and ignores malformed packets', async () => {
    const before = reflector.stats();
    client.send(Buffer.alloc(10), reflector.address().port, HOST);
    // Loopback keeps order: once the next valid packet is answered the short one was seen.
    await exchange(encodeSenderPacket({ seq: 3, timestamp: { seconds: 1, fraction: 2 }, errorEstimate: 1 }));
    const after = reflector.stats();
    expect(after.reflected).toBe(before.reflected + 1);
    expect(after.received).toBe(before.received + 2);
    expect(after.drops.tooShort).toBe(before.drops.tooShort + 1);
  });
});

describe.skipIf(skip)('one-way delays and the sync gate', () => {
  it('reports fwd/rev when both ends claim tight synchronisation', async () => {
    const clock = fakeClock({ synchronized: true, errorSeconds: 1e-9, source: 'chrony' });
    const reflector = await StampReflector.listen({ port: 0, host: HOST, clock });
    const engine = new StampEngine({ clock });
    try {
      const [r] = await engine.runTrain(task(reflector.address().port, { count: 10, flows: 1 }));
      expect(r?.synced).toBe(true);
      expect(r?.fwdUs).toHaveLength(10);
      expect(r?.revUs).toHaveLength(10);
      // Same host, same clock: fwd + rev is the raw round trip, never below the net RTT.
      r?.rttsUs.forEach((rtt, k) => {
        expect((r.fwdUs[k] as number) + (r.revUs[k] as number)).toBeGreaterThanOrEqual(rtt - 0.01);
      });
      expect(r?.errorEstimateUs).toBeLessThan(0.01);
    } finally {
      await engine.close();
      await reflector.close();
      clock.close();
    }
  });

  it('withholds fwd/rev when a clock is not synchronised', async () => {
    const synced = fakeClock({ synchronized: true, errorSeconds: 1e-9, source: 'chrony' });
    const unsynced = fakeClock({ synchronized: false, errorSeconds: 1, source: 'none' });
    const reflector = await StampReflector.listen({ port: 0, host: HOST, clock: unsynced });
    const engine = new StampEngine({ clock: synced });
    try {
      const [r] = await engine.runTrain(task(reflector.address().port, { count: 5, flows: 1 }));
      expect(r).toMatchObject({ received: 5, synced: false, fwdUs: [], revUs: [] });
      expect(r?.errorEstimateUs).toBeGreaterThanOrEqual(1e6);
    } finally {
      await engine.close();
      await reflector.close();
      synced.close();
      unsynced.close();
    }
  });
});
});
