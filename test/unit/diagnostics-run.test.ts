/**
 * Diagnostics with the real tools on loopback: Debian's traceroute and
 * tracepath as child processes, a real STAMP reflector answering the fast
 * train. Failures (a missing tool, a tool cut short) come back as results with
 * their reason, and the runner runs a request id once.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DiagnosticSampleRecord } from '../../protocol/index.js';
import { diagnosticSampleSchema } from '../../protocol/index.js';
import { DiagnosticsRunner, runDiagnostics, type DiagnosticsOptions } from '../../probes/engines/diagnostics/index.js';
import { StampEngine } from '../../probes/engines/stamp/index.js';
import { StampReflector } from '../../probes/engines/stamp/reflector.js';
import { missingCommand, skipReason } from '../helpers/requirements.js';
import { quietLogger } from '../helpers/stack.js';

const missing = missingCommand('traceroute', 'traceroute') ?? missingCommand('tracepath', 'iputils-tracepath');
const HOST = '127.0.0.1';

let reflector: StampReflector;
let stamp: StampEngine;

beforeAll(async () => {
  reflector = await StampReflector.listen({ port: 0, host: HOST });
  stamp = new StampEngine();
});
afterAll(async () => {
  await stamp?.close();
  await reflector?.close();
});

function options(overrides: Partial<DiagnosticsOptions> = {}): DiagnosticsOptions {
  return {
    target: { dst: 'peer', host: HOST, stampPort: reflector.address().port, sourceAddress: null, dscp: 0 },
    maxHops: 8, fastTrainCount: 200, fastTrainIntervalMs: 1, stamp,
    trigger: 'breach', requestId: null, reason: 'test', ...overrides,
  };
}

describe.skipIf(skipReason(missing))('diagnostics on loopback with the real tools', () => {
  it('traces one hop, finds the loopback MTU, and summarises a 200-packet train at 1 ms', async () => {
    const run = await runDiagnostics(options());
    expect(diagnosticSampleSchema.safeParse(run).success).toBe(true);
    expect(run.traceroute).toMatchObject({ ok: true, error: null, reached: true, maxHops: 8 });
    expect(run.traceroute.tool).toMatch(/^traceroute \d/);
    expect(run.traceroute.hops).toHaveLength(1);
    expect(run.traceroute.hops[0]!.probes).toHaveLength(3);
    expect(run.traceroute.hops[0]!.probes.every((p) => p.address === HOST && p.rttUs !== null)).toBe(true);
    // IPv4 packets top out at 65535 bytes, below lo's 65536.
    const loMtu = Number(readFileSync('/sys/class/net/lo/mtu', 'utf8'));
    expect(run.pathMtu).toMatchObject({ ok: true, error: null, pmtu: Math.min(loMtu, 65535), dropAtTtl: null, reached: true });
    expect(run.fastTrain).toMatchObject({ ok: true, error: null, count: 200, intervalMs: 1, sent: 200 });
    expect(run.fastTrain.received).toBeGreaterThan(0);
    const f = run.fastTrain;
    expect(f.rttMinUs!).toBeLessThanOrEqual(f.rttMedianUs!);
    expect(f.rttMedianUs!).toBeLessThanOrEqual(f.rttP99Us!);
    expect(f.rttP99Us!).toBeLessThanOrEqual(f.rttMaxUs!);
    process.stdout.write(`loopback diagnostics: ${run.durationMs} ms; fast train p50 ${(f.rttMedianUs! / 1000).toFixed(3)} ms, p99 ${(f.rttP99Us! / 1000).toFixed(3)} ms, ${f.received}/${f.sent}\n`);
  });

  it('turns a missing tool into a result with the reason, and still runs the rest', async () => {
    const run = await runDiagnostics(options({
      commands: { traceroute: '/nonexistent/traceroute', tracepath: '/nonexistent/tracepath' }, fastTrainCount: 10,
    }));
    expect(run.traceroute).toMatchObject({ ok: false, error: 'traceroute not found: install the Debian package traceroute', hops: [] });
    expect(run.pathMtu).toMatchObject({ ok: false, error: 'tracepath not found: install the Debian package iputils-tracepath', pmtu: null });
    expect(run.fastTrain.ok).toBe(true); // the other parts still ran

    // (A tool cut short at its bound: test/integration/diagnostics-netns.test.ts, where a silent path makes it certain.)
  });

  it('fails the fast train with a reason when no reflector answers', async () => {
    const silentPort = reflector.address().port === 9 ? 10 : 9; // discard: nothing listens on loopback
    const run = await runDiagnostics(options({ target: { dst: 'peer', host: HOST, stampPort: silentPort, sourceAddress: null, dscp: 0 }, fastTrainCount: 10 }));
    expect(run.fastTrain).toMatchObject({ ok: false, sent: 10, received: 0, rttP99Us: null });
    expect(run.fastTrain.error).toBe(`no reply from the STAMP reflector at ${HOST}:${silentPort} (10 packets sent)`);
  });

  it('runs an operator request once however often it is delivered, and a peer outside the plan as a failed run', async () => {
    const recorded: DiagnosticSampleRecord[] = [];
    const runner = new DiagnosticsRunner({ logger: quietLogger, stamp: () => stamp, record: async (s) => void recorded.push(s) });
    runner.applyPlan({
      diagnostics: { enabled: true, breachTrains: 3, minIntervalS: 600, maxHops: 4, fastTrainCount: 20, fastTrainIntervalMs: 1 },
      tasks: [{
        id: 'stamp:self>peer', engine: 'stamp', dst: 'peer', host: HOST, port: reflector.address().port, schedule: '* * * * * *',
        count: 5, intervalMs: 5, timeoutMs: 300, dscp: 0, flows: 1, sourceAddress: null,
      }],
    });
    const request = { type: 'diagnose' as const, requestId: 'dr-test-0001', dst: 'peer', requestedBy: 'test operator' };
    expect(runner.request(request)).toBe(true);
    expect(runner.request(request)).toBe(false);
    expect(runner.request({ ...request, requestId: 'dr-test-0002', dst: 'elsewhere' })).toBe(true);
    await runner.idle();
    recorded.sort((x, y) => x.requestId!.localeCompare(y.requestId!)); // runs towards different peers go in parallel
    expect(recorded.map((r) => [r.requestId, r.dst, r.trigger, r.reason])).toEqual([
      ['dr-test-0001', 'peer', 'operator', 'requested by test operator'],
      ['dr-test-0002', 'elsewhere', 'operator', 'requested by test operator'],
    ]);
    expect(recorded[0]!.fastTrain).toMatchObject({ ok: true, count: 20 });
    expect(recorded[0]!.traceroute.reached).toBe(true);
    expect(recorded[1]!.traceroute.error).toBe('no plan task towards "elsewhere" on this probe');
    expect(recorded.every((r) => diagnosticSampleSchema.safeParse(r).success)).toBe(true);
    await runner.close();
  });
});
