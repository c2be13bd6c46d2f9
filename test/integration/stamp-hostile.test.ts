/**
 * A reflector no packet can break or abuse, on both datapaths: hand-made
 * datagrams sent for real through a raw socket on loopback (root), then
 * counters prove what happened. Absence of a loop is shown by counters, not
 * by waiting: once every attack datagram is counted, one more sentinel
 * exchange must move each reflector's counters by exactly one.
 */
import { spawnSync } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { once } from 'node:events';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeSenderPacket } from '../../probes/engines/stamp/codec.js';
import { StampReflector, type ReflectorStats } from '../../probes/engines/stamp/reflector.js';
import { repoRoot } from '../helpers/netns.js';
import { CitymeshProcess, killAll } from '../helpers/processes.js';
import { missingCommand, skipReason, nativeDatapathMissing } from '../helpers/requirements.js';
import { waitFor } from '../helpers/stack.js';

const A = '127.0.31.1';
const B = '127.0.31.2';
const SINK = '127.0.31.9';
const RAW = join(repoRoot, 'test', 'interop', 'raw_udp.py');

const notRoot = process.getuid?.() === 0 ? null : 'raw sockets need root';
const noPython = missingCommand('python3', 'python3');
const nativeMissing = nativeDatapathMissing();

interface RawKind {
  src: string; sport: number; dst: string; dport: number; size?: number; fill?: 'zero' | 'random' | 'sender'; hex?: string; count?: number;
}

function sendRaw(kinds: RawKind[]): number {
  const r = spawnSync('python3', [RAW], { input: JSON.stringify(kinds), encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`raw_udp.py failed: ${r.stderr}`);
  return Number(r.stdout.trim());
}

async function udp(host: string): Promise<Socket> {
  const s = createSocket('udp4');
  s.bind(0, host);
  await once(s, 'listening');
  return s;
}

/** One valid exchange; resolves with the reply. */
async function sentinel(client: Socket, host: string, port: number, seq: number): Promise<Buffer> {
  const reply = once(client, 'message');
  client.send(encodeSenderPacket({ seq, timestamp: { seconds: 1, fraction: 0 }, errorEstimate: 1 }), port, host);
  return ((await reply) as [Buffer])[0];
}

const dropped = (s: ReflectorStats) => Object.values(s.drops).reduce((a, b) => a + b, 0);

describe.each(['native', 'js'] as const)('%s datapath: hostile datagrams', (datapath) => {
  const skip = skipReason(notRoot ?? noPython ?? (datapath === 'native' ? nativeMissing : null));
  let a: StampReflector;
  let b: StampReflector;
  let sink: Socket;
  const replies: Buffer[] = [];

  beforeAll(async () => {
    if (skip) return;
    process.env.CITYMESH_STAMP_DATAPATH = datapath;
    const policy = { allowAny: true, allow: [], denyPorts: [], ratePps: 1000, burst: 300 };
    a = await StampReflector.listen({ port: 0, host: A, policy });
    b = await StampReflector.listen({ port: 0, host: B, policy });
    sink = await udp(SINK);
    sink.on('message', (m) => replies.push(m));
  });
  afterAll(async () => {
    delete process.env.CITYMESH_STAMP_DATAPATH;
    if (skip) return;
    sink.close();
    await a.close();
    await b.close();
  });

  it.skipIf(skip)('survives every kind, never loops, never answers with more than it got', async () => {
    const pa = a.address().port;
    const pb = b.address().port;
    const sinkPort = sink.address().port;
    const kinds: RawKind[] = [
      { src: SINK, sport: 0, dst: A, dport: pa, size: 44, fill: 'sender' },
      ...[0, 1, 13, 14, 41, 43].map((size) => ({ src: SINK, sport: sinkPort, dst: A, dport: pa, size, fill: 'sender' as const })),
      { src: SINK, sport: sinkPort, dst: A, dport: pa, size: 44, fill: 'random', count: 20 },
      { src: SINK, sport: sinkPort, dst: A, dport: pa, size: 1000, fill: 'random', count: 5 },
      { src: SINK, sport: sinkPort, dst: A, dport: pa, size: 44, fill: 'sender', count: 3 },
      { src: SINK, sport: sinkPort, dst: A, dport: pa, size: 1000, fill: 'sender' },
      { src: SINK, sport: sinkPort, dst: A, dport: pa, size: 65_000, fill: 'sender' },
      // Spoofed: B asks A. A answers B once; B must not answer A's reply.
      { src: B, sport: pb, dst: A, dport: pa, size: 44, fill: 'sender' },
      // From A to itself.
      { src: A, sport: pa, dst: A, dport: pa, size: 44, fill: 'sender' },
    ];
    const sentToA = sendRaw(kinds);
    const validToA = 3 + 1 + 1 + 1; // sender packets of 44, 1000, 65000 octets, and the spoofed one from B
    // Every datagram is counted once it was handled (received = reflected + dropped).
    await waitFor('A to handle every attack datagram', () => a.stats().received >= sentToA && a.stats());
    await waitFor('B to handle A\'s reply', () => b.stats().received >= 1 && b.stats());

    const statsA = a.stats();
    const statsB = b.stats();
    expect(statsA.received).toBe(sentToA);
    expect(statsA.reflected + dropped(statsA)).toBe(statsA.received);
    expect(statsA.reflected).toBe(validToA);
    expect(statsA.drops).toMatchObject({ srcPortZero: 1, tooShort: 6, fromReflectorPort: 1 });
    expect(statsA.drops.notSenderPacket).toBeGreaterThanOrEqual(24); // random content: MBZ octets set
    expect(statsB).toMatchObject({ received: 1, reflected: 0 });
    expect(statsB.drops.notSenderPacket).toBe(1);

    // No loop: one more exchange with each moves its counters by exactly one.
    const client = await udp('127.0.0.1');
    try {
      for (const [r, host] of [[a, A], [b, B]] as const) {
        const before = r.stats();
        await sentinel(client, host, r.address().port, 7);
        const after = r.stats();
        expect(after.received - before.received).toBe(1);
        expect(after.reflected - before.reflected).toBe(1);
      }
    } finally {
      client.close();
    }

    // Amplification: the sink got exactly one reply per valid request, each as long as its request.
    await waitFor('replies at the sink', () => replies.length >= 5 && replies);
    expect(replies.map((r) => r.length).sort((x, y) => x - y)).toEqual([44, 44, 44, 1000, 65_000]);
  });

  it.skipIf(skip)('limits replies per source address', async () => {
    // Its own reflector: one reply a second after a bucket of 50 (the socket buffer holds the 250 sent).
    const limited = await StampReflector.listen({ port: 0, host: A, policy: { allowAny: true, allow: [], denyPorts: [], ratePps: 1, burst: 50 } });
    try {
      const sent = sendRaw([{ src: '127.0.31.10', sport: 5555, dst: A, dport: limited.address().port, size: 44, fill: 'sender', count: 250 }]);
      const stats = await waitFor('every packet of the burst handled', () => limited.stats().received >= sent && limited.stats());
      expect(stats.received).toBe(sent);
      expect(stats.reflected + stats.drops.rateLimited).toBe(sent);
      expect(stats.reflected).toBeGreaterThanOrEqual(50);
      // The bucket refills at one a second: a few more at most while the burst was handled.
      expect(stats.drops.rateLimited).toBeGreaterThan(sent - 50 - 30);
    } finally {
      await limited.close();
    }
  });
});

describe.each(['native', 'js'] as const)('%s datapath: plan peers only', (datapath) => {
  const skip = skipReason(notRoot ?? noPython ?? (datapath === 'native' ? nativeMissing : null));
  it.skipIf(skip)('answers an allowed source and counts the rest as notAllowed', async () => {
    process.env.CITYMESH_STAMP_DATAPATH = datapath;
    const r = await StampReflector.listen({
      port: 0, host: A, policy: { allowAny: false, allow: ['127.0.32.0/24'], denyPorts: [], ratePps: 0, burst: 1 },
    });
    const allowed = await udp('127.0.32.5');
    try {
      const port = r.address().port;
      sendRaw([{ src: '127.0.33.1', sport: 4000, dst: A, dport: port, size: 44, fill: 'sender', count: 3 }]);
      await waitFor('the refused packets', () => r.stats().received >= 3);
      expect((await sentinel(allowed, A, port, 1)).length).toBe(44);
      expect(r.stats()).toMatchObject({ received: 4, reflected: 1, drops: { notAllowed: 3 } });
    } finally {
      allowed.close();
      await r.close();
      delete process.env.CITYMESH_STAMP_DATAPATH;
    }
  });
});

describe.each(['native', 'js'] as const)('%s datapath: `citymesh reflect` process', (datapath) => {
  const skip = skipReason(notRoot ?? noPython ?? (datapath === 'native' ? nativeMissing : null));
  afterAll(killAll);
  it.skipIf(skip)('keeps answering after a port-0 datagram and junk', async () => {
    const proc = new CitymeshProcess(['reflect', '--port', '0', '--host', A], { CITYMESH_STAMP_DATAPATH: datapath });
    await proc.waitForStdout('listening');
    const port = Number(/listening on [^\s]+:(\d+)/.exec(proc.output)?.[1]);
    sendRaw([
      { src: B, sport: 0, dst: A, dport: port, size: 44, fill: 'sender' },
      { src: B, sport: 9, dst: A, dport: port, size: 0 },
      { src: B, sport: 9, dst: A, dport: port, size: 3000, fill: 'random' },
    ]);
    const client = await udp('127.0.0.1');
    try {
      expect((await sentinel(client, A, port, 1)).length).toBe(44);
    } finally {
      client.close();
    }
    expect(proc.child.exitCode).toBeNull();
    expect(await proc.kill('SIGTERM')).toBe(0);
  });
});
