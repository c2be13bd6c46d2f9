/**
 * Diagnostics over a routed path (root: network namespaces). Four namespaces:
 *
 *        .1.1 ── .1.2  R  .2.1 ── .2.2
 *   A                                    B
 *        .3.1 ── .3.2  R2 .4.1 ── .4.2
 *
 * Addresses are 198.18.x.y (RFC 2544 benchmarking range, never routed), built
 * from octets at run time; forwarding is on inside R and R2 only. Traceroute
 * and tracepath run inside A (`ip netns exec`); their results are sent to a
 * real server (embedded ClickHouse) through the probe protocol's HTTP ingest,
 * as A's probe would, and read back through the annotations API.
 *
 *  1. A → B: traceroute shows two hops, R then B; path MTU 1500.
 *  2. R — B MTU 1400: the path-MTU check finds 1400, dropping at hop 2.
 *  3. A's route (and B's way back) moved through R2: the next traceroute is
 *     stored as a path change from [R, B] to [R2, …].
 *  4. B stops answering A: both tools are cut at their bound (500 ms, shorter
 *     than traceroute's 1 s wait for a silent hop) and say so; what they had
 *     printed (hop 1, the local MTU) is kept.
 *
 * The fast STAMP train is not part of this test (this process cannot enter a
 * namespace; the loopback tests cover it), so its part of each run is a
 * failure with its reason, which is what a probe without STAMP stores.
 */
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AnnotationsResponse, DiagnosticsDetailResponse } from '../../api/contract.js';
import type { DiagnosticSampleRecord } from '../../protocol/index.js';
import { runDiagnostics } from '../../probes/engines/diagnostics/index.js';
import { netnsUnavailable, run, runOk } from '../helpers/netns.js';
import { missingCommand, skipReason } from '../helpers/requirements.js';
import { getJson, startTestServer, testTopology, type TestServer, ingestFetch } from '../helpers/stack.js';

const unavailable = netnsUnavailable() ?? missingCommand('traceroute', 'traceroute') ?? missingCommand('tracepath', 'iputils-tracepath');
const bench = (x: number, y: number) => [198, 18, x, y].join('.');

const tag = `${process.pid.toString(36)}${randomBytes(2).toString('hex')}`;
const ns = { a: `cmdg-${tag}-a`, r: `cmdg-${tag}-r`, b: `cmdg-${tag}-b`, r2: `cmdg-${tag}-r2` };
const dev = (name: string) => `dg${tag}${name}`.slice(0, 15);
const created: string[] = [];
const removeAll = () => {
  for (const name of created) spawnSync('ip', ['netns', 'del', name]);
  created.length = 0;
};

async function inNs(name: string, ...argv: string[]): Promise<string> {
  return runOk(['ip', 'netns', 'exec', name, ...argv]);
}

/** A veth pair between two namespaces, each end with its address (/24). */
async function wire(x: string, xDev: string, xAddress: string, y: string, yDev: string, yAddress: string): Promise<void> {
  await runOk(['ip', 'link', 'add', xDev, 'netns', x, 'type', 'veth', 'peer', 'name', yDev, 'netns', y]);
  await runOk(['ip', '-n', x, 'addr', 'add', `${xAddress}/24`, 'dev', xDev]);
  await runOk(['ip', '-n', y, 'addr', 'add', `${yAddress}/24`, 'dev', yDev]);
  await runOk(['ip', '-n', x, 'link', 'set', xDev, 'up']);
  await runOk(['ip', '-n', y, 'link', 'set', yDev, 'up']);
}

const topo = testTopology(['west', 'east'], '127.0.43');
let server: TestServer;
const runs: DiagnosticSampleRecord[] = [];

async function diagnoseAtoB(): Promise<DiagnosticSampleRecord> {
  const result = await runDiagnostics({
    target: { dst: 'east', host: bench(2, 2), stampPort: 0, sourceAddress: null, dscp: 0 },
    maxHops: 8, fastTrainCount: 10, fastTrainIntervalMs: 1, stamp: undefined,
    trigger: 'breach', requestId: null, reason: 'netns test', commandPrefix: ['ip', 'netns', 'exec', ns.a],
  });
  // Stored as A's probe would send it: a batch through the probe protocol (HTTPS fallback).
  const response = await ingestFetch(`${server.url}/v1/ingest`, {
    method: 'POST', headers: { authorization: `Bearer ${topo.tokens.west}`, 'content-type': 'application/json' },
    body: JSON.stringify({ type: 'batch', batchId: `west.netns-${runs.length}-${tag}`, samples: [], diagnostics: [result] }),
  });
  expect(response.status, await response.clone().text()).toBe(200);
  runs.push(result);
  return result;
}

const responders = (r: DiagnosticSampleRecord) =>
  r.traceroute.hops.map((h) => [...new Set(h.probes.map((p) => p.address).filter((a): a is string => a !== null))]);

describe.skipIf(skipReason(unavailable))('diagnostics across routers in network namespaces', () => {
  beforeAll(async () => {
    process.once('exit', removeAll);
    for (const name of Object.values(ns)) {
      await runOk(['ip', 'netns', 'add', name]);
      created.push(name);
      await runOk(['ip', '-n', name, 'link', 'set', 'lo', 'up']);
    }
    await wire(ns.a, dev('ar'), bench(1, 1), ns.r, dev('ra'), bench(1, 2));
    await wire(ns.r, dev('rb'), bench(2, 1), ns.b, dev('br'), bench(2, 2));
    await wire(ns.a, dev('a2'), bench(3, 1), ns.r2, dev('2a'), bench(3, 2));
    await wire(ns.r2, dev('2b'), bench(4, 1), ns.b, dev('b2'), bench(4, 2));
    for (const router of [ns.r, ns.r2]) await inNs(router, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
    // Runs follow each other within a second; Linux's per-peer ICMP rate limit would silence some answers
    // (a real path shows that too: see the path-change rules in sql/diagnostics.ts). Here every hop answers.
    for (const host of [ns.r, ns.r2, ns.b]) await inNs(host, 'sysctl', '-qw', 'net.ipv4.icmp_ratelimit=0');
    await runOk(['ip', '-n', ns.a, 'route', 'add', `${bench(2, 0)}/24`, 'via', bench(1, 2)]);
    await runOk(['ip', '-n', ns.b, 'route', 'add', `${bench(1, 0)}/24`, 'via', bench(2, 1)]);
    await runOk(['ip', '-n', ns.b, 'route', 'add', `${bench(3, 0)}/24`, 'via', bench(4, 1)]);
    await runOk(['ip', '-n', ns.r2, 'route', 'add', `${bench(2, 0)}/24`, 'via', bench(4, 2)]);
    server = await startTestServer(topo.topology);
  });
  afterAll(async () => {
    await server?.stop();
    for (const name of [...created]) await run(['ip', 'netns', 'del', name]);
    created.length = 0;
    process.off('exit', removeAll);
  });

  it('traces A → B through R in two hops, path MTU 1500', async () => {
    const r = await diagnoseAtoB();
    expect(r.traceroute).toMatchObject({ ok: true, error: null, reached: true });
    expect(r.traceroute.hops.map((h) => h.ttl)).toEqual([1, 2]);
    expect(responders(r)).toEqual([[bench(1, 2)], [bench(2, 2)]]);
    expect(r.pathMtu).toMatchObject({ ok: true, pmtu: 1500, dropAtTtl: null, reached: true });
    expect(r.fastTrain).toMatchObject({ ok: false, error: 'no STAMP engine on this probe' });
  });

  it('finds a path MTU of 1400 after the R — B link is set to 1400, and where it drops', async () => {
    await runOk(['ip', '-n', ns.r, 'link', 'set', dev('rb'), 'mtu', '1400']);
    await runOk(['ip', '-n', ns.b, 'link', 'set', dev('br'), 'mtu', '1400']);
    const r = await diagnoseAtoB();
    expect(r.pathMtu).toMatchObject({ ok: true, pmtu: 1400, dropAtTtl: 2, reached: true });
    expect(responders(r)[0]).toEqual([bench(1, 2)]);
  });

  it('stores the traceroute after a re-route through R2 as a path change', async () => {
    await runOk(['ip', '-n', ns.a, 'route', 'replace', `${bench(2, 0)}/24`, 'via', bench(3, 2)]);
    await runOk(['ip', '-n', ns.b, 'route', 'replace', `${bench(1, 0)}/24`, 'via', bench(4, 1)]);
    const r = await diagnoseAtoB();
    expect(r.traceroute).toMatchObject({ ok: true, reached: true });
    expect(responders(r)[0]).toEqual([bench(3, 2)]);

    const from = new Date(runs[0]!.startedAtUs / 1000 - 60_000).toISOString();
    const { body } = await getJson<AnnotationsResponse>(`${server.url}/v1/links/west/east/annotations?from=${from}`, topo.operatorToken);
    expect(body.annotations.filter((a) => a.kind === 'diagnostics').map((a) => a.kind === 'diagnostics' && a.runId)).toEqual(runs.map((x) => x.runId));
    const changes = body.annotations.filter((a) => a.kind === 'path_change');
    expect(changes).toHaveLength(1); // run 1 → 2 kept its path; 2 → 3 changed
    expect(changes[0]).toMatchObject({
      src: 'west', dst: 'east', runId: runs[2]!.runId, previousRunId: runs[1]!.runId,
      before: [[bench(1, 2)], [bench(2, 2)]],
    });
    if (changes[0]!.kind === 'path_change') expect(changes[0]!.after[0]).toEqual([bench(3, 2)]);

    const detail = await getJson<DiagnosticsDetailResponse>(`${server.url}/v1/links/west/east/diagnostics/${runs[1]!.runId}`, topo.operatorToken);
    expect(detail.body.runs[0]).toMatchObject({ pathMtu: { pmtu: 1400, dropAtTtl: 2 }, traceroute: { reached: true } });
    process.stdout.write(`netns diagnostics: ${runs.map((x) => `${responders(x).map((h) => h.join('|') || '*').join(' > ')} pmtu ${x.pathMtu.pmtu} (${x.durationMs} ms)`).join('; ')}\n`);
  });

  it('cuts a tool short at its bound on a silent path and says so, keeping the hops printed until then', async () => {
    await runOk(['ip', '-n', ns.b, 'route', 'replace', 'blackhole', `${bench(3, 0)}/24`]); // B no longer answers A
    // traceroute waits its full 1 s (-w 1) for the silent hops, so a 500 ms bound always ends it first.
    const r = await runDiagnostics({
      target: { dst: 'east', host: bench(2, 2), stampPort: 0, sourceAddress: null, dscp: 0 },
      maxHops: 8, fastTrainCount: 10, fastTrainIntervalMs: 1, stamp: undefined, toolTimeoutMs: 500,
      trigger: 'breach', requestId: null, reason: 'netns test', commandPrefix: ['ip', 'netns', 'exec', ns.a],
    });
    expect(r.traceroute).toMatchObject({ ok: false, error: 'traceroute timed out after 500 ms (hops so far are kept)', reached: false });
    expect(r.pathMtu.ok).toBe(false);
    expect(r.pathMtu.error).toMatch(/^tracepath timed out after 500 ms/);
    // R2 answers at once: its hop (and tracepath's local MTU) were printed, line-buffered, before the kill.
    expect(responders(r)[0]).toEqual([bench(3, 2)]);
    expect(r.pathMtu.pmtu).toBe(1500);
  });
});
