/**
 * GET /v1/placement?from=CENTRE&max_rtt_ms=X&min_gbps=Y: the centres directly
 * linked to CENTRE whose link meets both thresholds now, lowest RTT first.
 * Latency: worst direction's exact p99 over the last window_s (default 300 s).
 * Capacity: measured only, the newest successful throughput test within 30
 * days (its worse direction); a link never tested does not qualify, whatever
 * its commitment. Operator role for now (see README on a scheduler role).
 */
import { Hono } from 'hono';
import { z } from 'zod';
import { placementEvidence } from '../../../sql/index.js';
import type { ApiRoutes, PlacementCandidate } from '../../contract.js';
import type { ApiDeps } from '../../deps.js';
import { ApiError, parseQuery } from '../../errors.js';

const TEST_MAX_AGE_S = 30 * 86_400;

const placementQuery = z.object({
  from: z.string().min(1),
  max_rtt_ms: z.coerce.number().positive().max(10_000),
  min_gbps: z.coerce.number().min(0).max(100_000),
  window_s: z.coerce.number().int().min(10).max(3600).default(300),
});

export function placementRoutes(deps: ApiDeps) {
  const { topology } = deps;
  return new Hono().get('/placement', async (c) => {
    const q = parseQuery(placementQuery, c);
    if (!topology.centre(q.from)) throw new ApiError(404, 'not_found', `unknown centre "${q.from}"`);
    const peers = topology.peersOf(q.from);
    const evidence = await placementEvidence(deps.store.client, {
      centre: q.from, peers, windowS: q.window_s, testMaxAgeS: TEST_MAX_AGE_S, engine: topology.sla.engine,
    });
    const candidates: PlacementCandidate[] = [];
    const excluded: ApiRoutes['GET /v1/placement']['excluded'] = [];
    for (const e of evidence) {
      const link = topology.linkBetween(q.from, e.peer)!;
      const candidate: PlacementCandidate = {
        centre: e.peer,
        name: topology.centre(e.peer)?.name ?? e.peer,
        rttP99Ms: e.rttP99Us === null ? null : e.rttP99Us / 1000,
        lossRatio: e.lossRatio,
        capacityGbps: e.testedBps === null ? null : e.testedBps / 1e9,
        testedAt: e.testedAtUs === null ? null : new Date(e.testedAtUs / 1000).toISOString(),
        committedGbps: link.capacityGbps,
      };
      const reason =
        candidate.rttP99Ms === null
          ? `no packets delivered in both directions in the last ${q.window_s} s`
          : candidate.rttP99Ms > q.max_rtt_ms
            ? `p99 RTT ${candidate.rttP99Ms} ms > ${q.max_rtt_ms} ms`
            : candidate.capacityGbps === null
              ? 'no successful throughput test in the last 30 days'
              : candidate.capacityGbps < q.min_gbps
                ? `tested ${candidate.capacityGbps} Gb/s < ${q.min_gbps} Gb/s`
                : null;
      if (reason) excluded.push({ ...candidate, reason });
      else candidates.push(candidate);
    }
    return c.json({
      from: q.from, maxRttMs: q.max_rtt_ms, minGbps: q.min_gbps, windowS: q.window_s, generatedAt: new Date().toISOString(),
      candidates, excluded,
    } satisfies ApiRoutes['GET /v1/placement']);
  });
}
