/**
 * Interop with an independent STAMP peer written from RFC 8762 alone
 * (test/interop/stamp_peer.py, Python, no citymesh code), both ways and on
 * both datapaths: its sender against our reflector, our sender against its
 * reflector. Catches a codec that only agrees with itself.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StampEngine } from '../../probes/engines/stamp/index.js';
import { StampReflector } from '../../probes/engines/stamp/reflector.js';
import { repoRoot } from '../helpers/netns.js';
import { missingCommand, skipReason, nativeDatapathMissing } from '../helpers/requirements.js';

const PEER = join(repoRoot, 'test', 'interop', 'stamp_peer.py');
const HOST = '127.0.0.1';
const noPython = missingCommand('python3', 'python3');
const nativeMissing = nativeDatapathMissing();

interface PeerSendResult {
  sent: number;
  replies: Array<{ seq: number; ttl: number; rttUs: number; holdNs: number }>;
  problems: string[];
}

function runPeer(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('python3', [PEER, ...args], { timeout: 30_000 }, (error, stdout, stderr) => (error ? reject(new Error(`${error.message}: ${stderr}`)) : resolve(stdout)));
  });
}

describe.each(['native', 'js'] as const)('%s datapath against an independent RFC 8762 peer', (datapath) => {
  const skip = skipReason(noPython ?? (datapath === 'native' ? nativeMissing : null));
  beforeAll(() => {
    process.env.CITYMESH_STAMP_DATAPATH = datapath;
  });
  afterAll(() => {
    delete process.env.CITYMESH_STAMP_DATAPATH;
  });

  it.skipIf(skip)('its sender, our reflector: every reply byte-exact', async () => {
    const reflector = await StampReflector.listen({ port: 0, host: HOST });
    try {
      // Asynchronously: the JavaScript reflector answers on this process's event loop.
      const out = JSON.parse(await runPeer(['send', HOST, String(reflector.address().port), '20'])) as PeerSendResult;
      expect(out.problems).toEqual([]);
      expect(out.replies.map((x) => x.seq)).toEqual(Array.from({ length: 20 }, (_, i) => i));
      // The Python sender leaves the TTL at the system default (64): the native reflector reports it, the JS one cannot (255).
      expect(new Set(out.replies.map((x) => x.ttl))).toEqual(new Set([datapath === 'native' ? 64 : 255]));
      for (const x of out.replies) expect(x.holdNs).toBeGreaterThanOrEqual(0);
    } finally {
      await reflector.close();
    }
  });

  it.skipIf(skip)('our sender, its reflector: every packet back, sane RTTs, reflector timestamping unknown', async () => {
    const peer: ChildProcess = spawn('python3', [PEER, 'reflect', HOST, '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const engine = new StampEngine();
    try {
      const port = await new Promise<number>((resolve, reject) => {
        peer.stdout!.on('data', (d: Buffer) => {
          const m = /listening (\d+)/.exec(String(d));
          if (m) resolve(Number(m[1]));
        });
        peer.once('exit', (code) => reject(new Error(`stamp_peer.py exited (${code})`)));
      });
      const [r] = await engine.runTrain({ host: HOST, port, count: 20, intervalMs: 5, timeoutMs: 500, dscp: 0, flows: 1 });
      expect(r).toMatchObject({ sent: 20, received: 20, lost: 0, duplicated: 0, reflectorTimestamping: 'unknown' });
      expect(r!.senderTimestamping).toBe(datapath === 'native' ? 'kernel' : 'user');
      for (const us of r!.rttsUs) {
        expect(us).toBeGreaterThan(0);
        expect(us).toBeLessThan(1e6);
      }
    } finally {
      await engine.close();
      peer.kill('SIGTERM');
    }
  });
});
