/**
 * Diagnostics on breach, the pure parts: the traceroute and tracepath parsers
 * against output recorded from the real tools (test/fixtures/diagnostics, see
 * its README), the breach trigger, and the wire schema's errors.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { diagnosticSampleSchema, type DiagnosticSampleRecord } from '../../protocol/index.js';
import { parseTopology } from '../../topology/index.js';
import { planFor } from '../../collector/index.js';
import { BreachWatcher, judgeTrain, parseTracepath, parseTraceroute, tracerouteReached } from '../../probes/engines/diagnostics/index.js';
import type { TrainResult } from '../../probes/engines/types.js';
import { repoRoot } from '../helpers/netns.js';
import { topologyProblems, twoCentreTopology } from '../helpers/topology-yaml.js';

const fixture = (name: string) => readFileSync(join(repoRoot, 'test/fixtures/diagnostics', name), 'utf8');
/** Addresses of the recording namespaces (RFC 2544 range), built from octets. */
const bench = (x: number, y: number) => [198, 18, x, y].join('.');

describe('traceroute parser (recorded output)', () => {
  it('reads a two-hop path: every probe with its address and RTT in µs', () => {
    const p = parseTraceroute(fixture('traceroute-ns-two-hops.txt'));
    expect(p.destination).toBe(bench(2, 2));
    expect(p.maxHops).toBe(8);
    expect(p.errors).toEqual([]);
    expect(p.hops.map((h) => h.ttl)).toEqual([1, 2]);
    expect(p.hops[0]!.probes).toEqual([
      { address: bench(1, 2), rttUs: 263, flag: null },
      { address: bench(1, 2), rttUs: 215, flag: null },
      { address: bench(1, 2), rttUs: 204, flag: null },
    ]);
    expect(p.hops[1]!.probes.map((x) => x.address)).toEqual([bench(2, 2), bench(2, 2), bench(2, 2)]);
    expect(tracerouteReached(p)).toBe(true);
  });

  it('keeps the address of the previous probe when traceroute prints only an RTT, and * as unanswered (ECMP)', () => {
    const p = parseTraceroute(fixture('traceroute-ns-ecmp.txt'));
    expect(p.hops[0]!.probes.map((x) => x.address)).toEqual([bench(1, 2), bench(3, 2), bench(1, 2), bench(1, 2), bench(1, 2)]);
    expect(p.hops[0]!.probes.map((x) => x.rttUs)).toEqual([449, 28, 6, 4, 5]);
    expect(p.hops[1]!.probes).toEqual([
      { address: null, rttUs: null, flag: null },
      { address: bench(2, 2), rttUs: 12, flag: null },
      { address: null, rttUs: null, flag: null },
      { address: bench(2, 2), rttUs: 7, flag: null },
      { address: bench(2, 2), rttUs: 8, flag: null },
    ]);
    expect(tracerouteReached(p)).toBe(true);
  });

  it('reads unreachable flags and silent hops, and does not call them reached', () => {
    const unreachable = parseTraceroute(fixture('traceroute-ns-net-unreachable.txt'));
    expect(unreachable.hops).toHaveLength(1);
    expect(unreachable.hops[0]!.probes.map((x) => x.flag)).toEqual(['!N', '!N', null]);
    expect(tracerouteReached(unreachable)).toBe(false);

    const silent = parseTraceroute(fixture('traceroute-ns-silent.txt'));
    expect(silent.hops.map((h) => h.ttl)).toEqual([1, 2, 3, 4, 5]);
    expect(silent.hops.every((h) => h.probes.length === 3 && h.probes.every((x) => x.address === null && x.rttUs === null))).toBe(true);
    expect(tracerouteReached(silent)).toBe(false);

    const host = parseTraceroute(fixture('traceroute-ns-host-unreachable.txt'));
    expect(host.hops[0]!.probes.map((x) => x.address)).toEqual([bench(1, 2), null, null]);
    expect(tracerouteReached(host)).toBe(false);
  });

  it('keeps an error line as evidence (no route at all)', () => {
    const p = parseTraceroute(fixture('traceroute-ns-no-route.txt'));
    expect(p.hops).toEqual([]);
    expect(p.errors).toEqual(['connect: Network is unreachable']);
  });

  it('reads loopback, IPv4 and IPv6', () => {
    for (const [file, address] of [['traceroute-loopback.txt', '127.0.0.1'], ['traceroute-loopback6.txt', '::1']] as const) {
      const p = parseTraceroute(fixture(file));
      expect(p.destination).toBe(address);
      expect(p.hops).toHaveLength(1);
      expect(p.hops[0]!.probes.every((x) => x.address === address && x.rttUs !== null && x.rttUs > 0)).toBe(true);
      expect(tracerouteReached(p)).toBe(true);
    }
  });
});

describe('tracepath parser (recorded output)', () => {
  it('finds where the MTU drops on the path (learnt at hop 2)', () => {
    const p = parseTracepath(fixture('tracepath-ns-1400-discovered.txt'));
    expect(p).toMatchObject({ localMtu: 1500, pmtu: 1400, dropAtTtl: 2, reached: true, finished: true, errors: [] });
    expect(p.hops.map((h) => [h.ttl, h.address])).toEqual([[1, bench(1, 2)], [1, bench(1, 2)], [2, bench(1, 2)], [2, bench(2, 2)]]);
  });

  it('reports the cached path MTU as the local one on the next run', () => {
    expect(parseTracepath(fixture('tracepath-ns-1400-cached.txt'))).toMatchObject({ localMtu: 1400, pmtu: 1400, dropAtTtl: null, reached: true });
    expect(parseTracepath(fixture('tracepath-ns-1500.txt'))).toMatchObject({ localMtu: 1500, pmtu: 1500, dropAtTtl: null, reached: true });
  });

  it('reads loopback without a LOCALHOST line, and IPv6', () => {
    expect(parseTracepath(fixture('tracepath-loopback.txt'))).toMatchObject({ localMtu: null, pmtu: 65535, reached: true, finished: true });
    expect(parseTracepath(fixture('tracepath-loopback6.txt'))).toMatchObject({ localMtu: 65536, pmtu: 65536, reached: true });
  });

  it('does not call a silent or unroutable target reached', () => {
    const silent = parseTracepath(fixture('tracepath-ns-silent.txt'));
    expect(silent).toMatchObject({ pmtu: 1400, reached: false, finished: true });
    expect(silent.hops.filter((h) => h.address === null).map((h) => h.ttl)).toEqual([2, 3, 4, 5]);
    expect(parseTracepath(fixture('tracepath-ns-net-unreachable.txt'))).toMatchObject({ pmtu: 1500, reached: false });
    const noRoute = parseTracepath(fixture('tracepath-ns-no-route.txt'));
    expect(noRoute.reached).toBe(false);
    expect(noRoute.errors).toEqual(['hop 1: send failed (no route to the target?)']);
  });

  it('keeps what a run killed half-way had learnt', () => {
    const cut = fixture('tracepath-ns-1400-discovered.txt').split('\n').slice(0, 4).join('\n');
    expect(parseTracepath(cut)).toMatchObject({ pmtu: 1400, dropAtTtl: 2, reached: false, finished: false });
  });
});

function train(p99Us: number | null, sent: number, received: number): TrainResult {
  return {
    engine: 'stamp', startedAtUs: 1, flow: 0, srcPort: 1, dscp: 0, synced: false, errorEstimateUs: 0,
    sent, received, lost: sent - received, duplicated: 0, reordered: 0,
    rttMinUs: p99Us, rttMedianUs: p99Us, rttP99Us: p99Us, rttMaxUs: p99Us, jitterUs: null, rttsUs: [], fwdUs: [], revUs: [],
    senderTimestamping: 'kernel', reflectorTimestamping: 'unknown',
  };
}

describe('breach trigger', () => {
  const target = { rttP99Ms: 2, lossRatioMax: 0.01 };

  it('judges the worst flow of a train against the RTT target and the pooled loss against the ceiling', () => {
    expect(judgeTrain([train(1500, 100, 100), train(1900, 100, 100)], target).breached).toBe(false);
    expect(judgeTrain([train(1500, 100, 100), train(2500, 100, 100)], target)).toEqual({ breached: true, detail: 'p99 RTT 2.500 ms > 2 ms' });
    expect(judgeTrain([train(1000, 100, 99), train(1000, 100, 100)], target).breached).toBe(false); // 0.5 % pooled
    expect(judgeTrain([train(null, 10, 0)], target)).toEqual({ breached: true, detail: 'loss 100.00 % > 1.00 %' });
  });

  it('runs after N consecutive breaching trains, once per window per peer, and re-arms after the window', () => {
    const watcher = new BreachWatcher({ breachTrains: 3, minIntervalS: 600 });
    const bad = { breached: true, detail: 'p99 RTT 3 ms > 2 ms' };
    const good = { breached: false, detail: '' };
    let t = 0;
    const step = (dst: string, v: typeof bad) => watcher.observe(dst, v, (t += 1000));
    expect([step('east', bad), step('east', bad), step('east', good), step('east', bad), step('east', bad)]).toEqual([null, null, null, null, null]);
    expect(step('east', bad)).toBe("3 consecutive trains beyond the link's targets (last: p99 RTT 3 ms > 2 ms)");
    // 100 more breaching trains within the window: no second run towards east, but west has its own window.
    const within = Array.from({ length: 100 }, () => step('east', bad));
    expect(within.filter((r) => r !== null)).toEqual([]);
    expect([step('west', bad), step('west', bad), step('west', bad)].filter(Boolean)).toHaveLength(1);
    t += 600_000;
    expect([step('east', bad), step('east', bad), step('east', bad)].filter(Boolean)).toHaveLength(1);
  });
});

describe('diagnostics record schema', () => {
  const valid: DiagnosticSampleRecord = {
    runId: 'dg-0123456789', dst: 'east', trigger: 'operator', requestId: 'dr-0123456789', reason: 'requested by test',
    startedAtUs: 1_700_000_000_000_000, durationMs: 1200,
    traceroute: { ok: true, error: null, tool: 'traceroute 2.1.2', maxHops: 16, reached: true, hops: [{ ttl: 1, probes: [{ address: '::1', rttUs: 12, flag: null }] }] },
    pathMtu: { ok: true, error: null, tool: 'tracepath iputils 20221126', pmtu: 1500, dropAtTtl: null, reached: true },
    fastTrain: {
      ok: true, error: null, count: 200, intervalMs: 1, sent: 200, received: 200,
      rttMinUs: 10, rttMedianUs: 20, rttP99Us: 30, rttMaxUs: 40, jitterUs: 2,
    },
  };
  const problem = (value: unknown) => {
    const r = diagnosticSampleSchema.safeParse(value);
    if (r.success) return null;
    const issue = r.error.issues[0]!;
    return `${issue.path.join('.')}: ${issue.message}`;
  };

  it('accepts a complete run', () => {
    expect(problem(valid)).toBeNull();
  });

  it('names the field that is wrong', () => {
    expect(problem({ ...valid, traceroute: { ...valid.traceroute, hops: [{ ttl: 1, probes: [{ address: 'router-1', rttUs: 1, flag: null }] }] } }))
      .toBe('traceroute.hops.0.probes.0.address: must be an IPv4 or IPv6 address');
    expect(problem({ ...valid, traceroute: { ...valid.traceroute, hops: [{ ttl: 1, probes: [{ address: null, rttUs: 5, flag: null }] }] } }))
      .toBe('traceroute.hops.0.probes.0.rttUs: a probe nobody answered (*) has no RTT');
    expect(problem({ ...valid, pathMtu: { ...valid.pathMtu, ok: false, error: null } })).toBe('pathMtu.error: a failed path-MTU check says why');
    expect(problem({ ...valid, fastTrain: { ...valid.fastTrain, received: 201 } })).toBe('fastTrain.received: received (201) exceeds sent (200)');
    expect(problem({ ...valid, requestId: null })).toBe('requestId: an operator-triggered run names its request');
    expect(problem({ ...valid, extra: 1 })).toMatch(/^: Unrecognized key/);
  });
});

describe('diagnostics in the plan', () => {
  const topology = (probing: string) => twoCentreTopology({ head: probing, linkExtra: '    rtt_target_ms: 1.5\n    loss_ratio_max: 0.0005\n' });

  it('sends each task its link targets and the diagnostics policy, defaults from the topology', () => {
    const plan = planFor(parseTopology(topology(''), 'ok.yaml'), 'a');
    for (const task of plan.tasks) expect(task.target).toEqual({ rttP99Ms: 1.5, lossRatioMax: 0.0005 });
    expect(plan.diagnostics).toEqual({ enabled: true, breachTrains: 3, minIntervalS: 600, maxHops: 16, fastTrainCount: 200, fastTrainIntervalMs: 1 });
    const tuned = planFor(parseTopology(topology('probing:\n  diagnostics:\n    breach_trains: 5\n    min_interval_s: 60\n'), 'ok.yaml'), 'b');
    expect(tuned.diagnostics).toMatchObject({ breachTrains: 5, minIntervalS: 60 });
  });

  it('refuses a bad diagnostics section with the file, line and field', () => {
    const message = topologyProblems(topology('probing:\n  diagnostics:\n    max_hops: 0\n'));
    expect(message).toMatch(/bad\.yaml:4.*probing\.diagnostics\.max_hops/);
  });
});
