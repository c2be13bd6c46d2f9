/**
 * Diagnostics on breach, end to end on loopback: a real server (embedded
 * ClickHouse in a temp directory) and three real probes running the real
 * traceroute, tracepath and STAMP.
 *
 * - an operator's POST reaches both probes of the link through the
 *   diagnostic_requests table and the server's poll; each probe's result is
 *   stored exactly once (a request delivered again, as by a second server, is
 *   not run again; a batch sent twice is stored once) and is listed in the
 *   annotations API with the link's maintenance windows;
 * - a link whose RTT target (0.001 ms) every train breaches gets diagnostics
 *   from both of its probes on their own, once per rate-limit window, not once
 *   per train (other links may breach too when a loaded host drops a packet:
 *   their runs are theirs, not counted here). The probes start one after the
 *   other and each measures as soon as it has its plan, so the first trains
 *   towards a probe still starting are lost, which is a breach too: a run that
 *   began before its peer's reflector listened may find no reflector to answer
 *   its fast train (on a loaded host that happened: 0 of 50, honestly).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type {
  AnnotationsResponse, DiagnosticsDetailResponse, DiagnosticsRequestResponse, ErrorResponse,
} from '../../api/contract.js';
import { parseTopology } from '../../topology/index.js';
import { type DiagnosticSampleRecord } from '../../protocol/index.js';
import type { ProbeAgent } from '../../probes/agent.js';
import { missingCommand, skipReason } from '../helpers/requirements.js';
import { getJson, startAgents, startTestServer, testTopology, waitFor, type TestServer, ingestFetch } from '../helpers/stack.js';

const missing = missingCommand('traceroute', 'traceroute') ?? missingCommand('tracepath', 'iputils-tracepath');

const base = testTopology(['alfa', 'bravo', 'charlie'], '127.0.42', {
  probingExtra: `  diagnostics:
    breach_trains: 2
    min_interval_s: 600
    max_hops: 4
    fast_train_count: 50
    fast_train_interval_ms: 1`,
});
// alfa~charlie: a target no train can meet; the other links: one no loopback train misses.
const yaml = base.yaml
  .replace('rtt_p99_target_ms: 5', 'rtt_p99_target_ms: 1000')
  .replace('between: [alfa, charlie]\n    capacity_gbps: 100', 'between: [alfa, charlie]\n    capacity_gbps: 100\n    rtt_target_ms: 0.001');
const topo = { ...base, yaml, topology: parseTopology(yaml, 'diagnostics-topology.yaml') };

let server: TestServer;
const agents: ProbeAgent[] = [];
/** When each probe's start() resolved: its plan applied, so its reflector listening (Unix ms). */
const listeningSince: Record<string, number> = {};

async function rows<T>(query: string, params: Record<string, unknown> = {}): Promise<T[]> {
  const result = await server.store.client.query({ query, query_params: params, format: 'JSONEachRow' });
  return result.json<T>();
}

async function request<T>(method: string, path: string, token: string, body?: unknown): Promise<{ status: number; body: T }> {
  const init = {
    method, headers: { authorization: `Bearer ${token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  };
  // A batch is sent as a probe sends it: again after `busy` (the store falling behind on a loaded host).
  const response = path === '/v1/ingest' ? await ingestFetch(`${server.url}${path}`, init) : await fetch(`${server.url}${path}`, init);
  return { status: response.status, body: (await response.json()) as T };
}

/** A diagnostics record as a probe would send it (every part failed, so it needs no tools). */
function diagnosticsRecord(runId: string, reason: string): DiagnosticSampleRecord {
  return {
    runId, dst: 'bravo', trigger: 'breach', requestId: null, reason,
    startedAtUs: Date.now() * 1000, durationMs: 10,
    traceroute: { ok: false, error: 'traceroute timed out after 12000 ms (hops so far are kept)', tool: 'traceroute 2.1.2', maxHops: 16, reached: false, hops: [{ ttl: 1, probes: [{ address: null, rttUs: null, flag: null }] }] },
    pathMtu: { ok: false, error: 'tracepath not found: install the Debian package iputils-tracepath', tool: null, pmtu: null, dropAtTtl: null, reached: false },
    fastTrain: { ok: false, error: 'no STAMP engine on this probe', count: 0, intervalMs: 0, sent: 0, received: 0, rttMinUs: null, rttMedianUs: null, rttP99Us: null, rttMaxUs: null, jitterUs: null },
  };
}

describe.skipIf(skipReason(missing))('diagnostics on breach, end to end', () => {
  beforeAll(async () => {
    server = await startTestServer(topo.topology);
    for (const centre of ['alfa', 'bravo', 'charlie']) {
      agents.push(...(await startAgents(server, topo, [centre])));
      listeningSince[centre] = Date.now();
    }
  });
  afterAll(async () => {
    await Promise.all(agents.map((a) => a.stop()));
    await server?.stop();
  });

  it('runs an operator request on both probes of the link and stores each result exactly once', async () => {
    const posted = await request<DiagnosticsRequestResponse>('POST', '/v1/links/bravo/alfa/diagnostics', topo.operatorToken);
    expect(posted.status).toBe(202);
    expect(posted.body).toMatchObject({ a: 'alfa', b: 'bravo', requestedBy: 'test operator', centres: ['alfa', 'bravo'] });
    const id = posted.body.requestId;

    const detail = await waitFor('both ends to report', async () => {
      const { body } = await getJson<DiagnosticsDetailResponse>(`${server.url}/v1/links/alfa/bravo/diagnostics/${id}`, topo.operatorToken);
      return body.pending.length === 0 ? body : undefined;
    }, 150_000);
    expect(detail.runs.map((r) => `${r.src}>${r.dst}`).sort()).toEqual(['alfa>bravo', 'bravo>alfa']);
    for (const run of detail.runs) {
      expect(run).toMatchObject({ requestId: id, trigger: 'operator', reason: 'requested by test operator' });
      expect(run.traceroute).toMatchObject({ ok: true, reached: true });
      expect(run.traceroute.hops).toHaveLength(1);
      // The kernel rate-limits its ICMP errors, so a probe may go unanswered (*); those that were answered came from the peer.
      const answered = run.traceroute.hops[0]!.probes.filter((p) => p.address !== null);
      expect(answered.length).toBeGreaterThan(0);
      expect(answered.every((p) => p.address === topo.addresses[run.dst])).toBe(true);
      expect(run.pathMtu).toMatchObject({ ok: true, pmtu: 65535 });
      expect(run.fastTrain).toMatchObject({ ok: true, count: 50, sent: 50 });
      expect(run.fastTrain.rttP99Ms).not.toBeNull();
    }

    // Delivered again, as a second server would (or this one after the probe reconnects): the probes ignore it.
    server.collector.diagnostics.probeConnected('alfa');
    server.collector.diagnostics.probeConnected('bravo');
    expect(await server.collector.diagnostics.poll()).toBe(2);
    expect(await server.collector.diagnostics.poll()).toBe(0);
    // Absence, proven by order rather than by waiting: a fresh request follows the redelivered one on
    // the same connections, and each probe runs one diagnostics run per peer at a time, so a second run
    // of the first request would have been spooled before the fresh one's. Once the fresh runs are
    // stored and every batch sent by then is acknowledged, anything the redelivery caused is stored too.
    const fresh = await request<DiagnosticsRequestResponse>('POST', '/v1/links/bravo/alfa/diagnostics', topo.operatorToken);
    expect(fresh.status).toBe(202);
    await waitFor('the fresh request to be stored from both ends', async () => {
      const { body } = await getJson<DiagnosticsDetailResponse>(`${server.url}/v1/links/alfa/bravo/diagnostics/${fresh.body.requestId}`, topo.operatorToken);
      return body.pending.length === 0 && body.runs.length === 2;
    }, 150_000);
    const sentByThen = agents.map((a) => a.stats().batchesSent);
    // Bounded for a loaded host: a busy store makes the agents back off and resend.
    await waitFor('every batch sent by then to be acknowledged', () => agents.every((a, i) => a.stats().batchesAcked >= sentByThen[i]!), 180_000);
    const stored = await rows<{ src: string; n: number }>(
      'SELECT src, toUInt32(count()) AS n FROM diagnostics WHERE request_id = {id:String} GROUP BY src ORDER BY src', { id },
    );
    expect(stored).toEqual([{ src: 'alfa', n: 1 }, { src: 'bravo', n: 1 }]);

    const run = detail.runs[0]!;
    const byRun = await getJson<DiagnosticsDetailResponse>(`${server.url}/v1/links/alfa/bravo/diagnostics/${run.runId}`, topo.operatorToken);
    expect(byRun.body.runs).toEqual([run]);
  }, 540_000); // waits on real events (up to 150 s, 150 s and 180 s): a loaded host makes the store fall behind and the probes resend

  it('stores a batch sent twice once, and refuses a bad record naming the field', async () => {
    const record = diagnosticsRecord(`dg-replayed-${Date.now()}`, 'hand-made: replayed from the spool');
    const batch = { type: 'batch', batchId: `alfa.replay-${Date.now()}`, samples: [], diagnostics: [record] };
    for (let i = 0; i < 2; i++) {
      const ack = await request<{ type: string; stored: number }>('POST', '/v1/ingest', topo.tokens.alfa!, batch);
      expect(ack).toEqual({ status: 200, body: { type: 'ack', batchId: batch.batchId, stored: 1 } });
    }
    expect(await rows('SELECT run_id FROM diagnostics WHERE run_id = {id:String}', { id: record.runId })).toHaveLength(1);

    const bad = { ...batch, batchId: 'alfa.bad-diagnostics', diagnostics: [{ ...record, dst: 'nowhere' }] };
    const refused = await request<ErrorResponse & { field: string }>('POST', '/v1/ingest', topo.tokens.alfa!, bad);
    expect(refused.status).toBe(400);
    expect(refused.body.field).toBe('diagnostics[0].dst');
    const malformed = { ...batch, batchId: 'alfa.bad-hop', diagnostics: [{ ...record, traceroute: { ...record.traceroute, hops: [{ ttl: 1, probes: [{ address: 'gateway', rttUs: 1, flag: null }] }] } }] };
    const invalid = await request<ErrorResponse>('POST', '/v1/ingest', topo.tokens.alfa!, malformed);
    expect(invalid.status).toBe(400);
    expect(invalid.body.reason).toBe('diagnostics[0].traceroute.hops[0].probes[0].address: must be an IPv4 or IPv6 address');
  });

  it('runs diagnostics on a breach from both ends on their own, once per rate-limit window', async () => {
    const breachRuns = () => rows<{ src: string; dst: string; n: number; first: string }>(
      `SELECT src, dst, toUInt32(count()) AS n, toString(min(ts)) AS first FROM diagnostics
       WHERE trigger = 'breach' AND NOT startsWith(reason, 'hand-made') AND (src, dst) IN (('alfa', 'charlie'), ('charlie', 'alfa')) GROUP BY src, dst ORDER BY src, dst`,
    );
    const firstRuns = await waitFor('breach diagnostics from both ends of alfa~charlie', async () => {
      const r = await breachRuns();
      return r.length === 2 ? r : undefined;
    }, 60_000);
    expect(firstRuns.map((r) => `${r.src}>${r.dst}`)).toEqual(['alfa>charlie', 'charlie>alfa']);
    // Every later train breaches too; wait for ten more of them in each direction (two flows each: 20 rows).
    const since = firstRuns.map((r) => r.first).sort().at(-1)!;
    await waitFor('ten more breaching trains each way', async () => {
      const trains = await rows<{ n: string }>(
        `SELECT count() AS n FROM (SELECT DISTINCT src, ts FROM latency_trains WHERE ((src = 'alfa' AND dst = 'charlie') OR (src = 'charlie' AND dst = 'alfa'))
         AND ts > toDateTime64({since:String}, 3, 'UTC')) GROUP BY src HAVING n >= 20`, { since },
      );
      return trains.length === 2;
    }, 120_000);
    const later = await breachRuns();
    expect(later.map((r) => [r.src, r.dst, r.n])).toEqual([['alfa', 'charlie', 1], ['charlie', 'alfa', 1]]);

    const { body } = await getJson<AnnotationsResponse>(`${server.url}/v1/links/charlie/alfa/annotations`, topo.operatorToken);
    const breach = body.annotations.filter((a) => a.kind === 'diagnostics' && a.trigger === 'breach');
    expect(breach).toHaveLength(2);
    for (const a of breach) {
      if (a.kind !== 'diagnostics') continue;
      // Every train misses 0.001 ms; on a loaded host one may also lose a packet (then both are named).
      expect(a.reason).toMatch(/^2 consecutive trains beyond the link's targets \(last: (p99 RTT [\d.]+ ms > 0\.001 ms)?(, )?(loss [\d.]+ % > [\d.]+ %)?\)$/);
      expect(a).toMatchObject({ hops: 1, reached: true, pmtu: 65535 });
      if (Date.parse(a.at) >= listeningSince[a.dst]!) {
        expect(a.problems).toEqual([]);
        expect(a.fastP99Ms).toBeGreaterThan(0);
      } else {
        // Begun while the peer was still starting: its fast train may have gone out before the reflector listened.
        const noReflectorYet = `fast train: no reply from the STAMP reflector at ${topo.addresses[a.dst]}:${topo.stampPort} (50 packets sent)`;
        expect(a.problems.filter((p) => p !== noReflectorYet)).toEqual([]);
      }
    }
    // The same one-hop path every time: no path change on loopback.
    expect(body.annotations.filter((a) => a.kind === 'path_change')).toEqual([]);
  }, 240_000); // two waits on real events of up to 60 s and 120 s each; a loaded machine needs the room

  it('lists diagnostics, path changes and maintenance windows in one time-ordered list', async () => {
    const start = new Date(Math.ceil(Date.now() / 60_000) * 60_000 + 3_600_000);
    const end = new Date(start.getTime() + 1_800_000);
    const declared = await request<{ id: string }>('POST', '/v1/sla/maintenance', topo.operatorToken, {
      link: 'alfa~bravo', start: start.toISOString(), end: end.toISOString(), reason: 'fibre splice',
    });
    expect(declared.status).toBe(201);
    // A run of this test's own, as a probe's batch; other tests add runs on this link too (listed as well).
    const listed = diagnosticsRecord(`dg-listed-${Date.now()}`, 'hand-made: listed beside the window');
    const ack = await request('POST', '/v1/ingest', topo.tokens.alfa!, { type: 'batch', batchId: `alfa.listed-${Date.now()}`, samples: [], diagnostics: [listed] });
    expect(ack.status).toBe(200);
    const to = new Date(end.getTime() + 60_000).toISOString();
    const { status, body } = await getJson<AnnotationsResponse>(
      `${server.url}/v1/links/alfa/bravo/annotations?from=${new Date(Date.now() - 3_600_000).toISOString()}&to=${to}`, topo.operatorToken,
    );
    expect(status).toBe(200);
    // Runs so far (this one among them), then the window an hour ahead.
    expect(body.annotations.filter((a) => a.kind === 'diagnostics' && a.runId === listed.runId)).toHaveLength(1);
    expect(body.annotations.map((a) => a.kind)).toEqual([...body.annotations.slice(0, -1).map(() => 'diagnostics'), 'maintenance']);
    expect(body.annotations.at(-1)).toMatchObject({ kind: 'maintenance', target: 'alfa~bravo', reason: 'fibre splice', declaredLate: false, t: start.getTime() / 1000 });
    const times = body.annotations.map((a) => a.t);
    expect([...times].sort((x, y) => x - y)).toEqual(times);
    // Windows of other links are not listed.
    const other = await getJson<AnnotationsResponse>(`${server.url}/v1/links/bravo/charlie/annotations?to=${to}`, topo.operatorToken);
    expect(other.body.annotations.filter((a) => a.kind === 'maintenance')).toEqual([]);
  });

  it('answers misuse with clear errors and lets only operators in', async () => {
    const unknown = await request<ErrorResponse>('POST', '/v1/links/alfa/pluto/diagnostics', topo.operatorToken);
    expect(unknown).toEqual({ status: 404, body: { error: 'not_found', reason: 'unknown centre "pluto"' } });
    const badId = await getJson<ErrorResponse>(`${server.url}/v1/links/alfa/bravo/diagnostics/x`, topo.operatorToken);
    expect(badId.status).toBe(400);
    const none = await getJson<ErrorResponse>(`${server.url}/v1/links/alfa/bravo/diagnostics/dg-00000000-none`, topo.operatorToken);
    expect(none).toEqual({ status: 404, body: { error: 'not_found', reason: 'no diagnostics run or request "dg-00000000-none" on the link alfa~bravo' } });
    const badRange = await getJson<ErrorResponse>(`${server.url}/v1/links/alfa/bravo/annotations?from=yesterday`, topo.operatorToken);
    expect(badRange.status).toBe(400);
    expect(badRange.body.reason).toMatch(/^from: must be an ISO-8601 time/);
    expect((await request('POST', '/v1/links/alfa/bravo/diagnostics', topo.regulatorToken)).status).toBe(403);
    expect((await request('POST', '/v1/links/alfa/bravo/diagnostics', topo.tokens.alfa!)).status).toBe(403);
    expect((await fetch(`${server.url}/v1/links/alfa/bravo/annotations`)).status).toBe(401);
  });
});
