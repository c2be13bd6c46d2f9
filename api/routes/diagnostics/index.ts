/**
 * Diagnostics on breach over HTTP (operator role, under /v1):
 *
 *   POST /links/:a/:b/diagnostics          ask both probes of the link to run now (202)
 *   GET  /links/:a/:b/diagnostics/:id      a run (by run id) or a request's runs (by request id)
 *   GET  /links/:a/:b/annotations?from&to  diagnostics runs, path changes, maintenance windows and our own
 *                                          throughput tests' load windows, time-ordered
 *
 * A request is stored in ClickHouse, not sent from here: the link's probes may
 * be connected to other server processes, and every server delivers requests
 * to its own probes (collector/diagnostics.ts).
 */
import { randomUUID } from 'node:crypto';
import { Hono, type Context } from 'hono';
import { z } from 'zod';
import { selfLoadGuardMs } from '../../../collector/index.js';
import { type Link } from '../../../topology/index.js';
import {
  diagnosticRequest, diagnosticRuns, diagnosticRunsById, insertDiagnosticRequest, loadWindowsBetween, maintenanceWindows, pathChanges,
  type DiagnosticRun, type MaintenanceWindow,
} from '../../../sql/index.js';
import type { Annotation, ApiRoutes, DiagnosticRunView, DiagnosticsAnnotation } from '../../contract.js';
import type { ApiDeps } from '../../deps.js';
import { ApiError, isoTimeParam, parseQuery } from '../../errors.js';

const rangeQuery = z.object({
  from: isoTimeParam.optional(),
  to: isoTimeParam.optional(),
});

/** Longest range one annotations request may cover: the raw retention. */
const MAX_RANGE_US = 400 * 86_400e6;
const DEFAULT_RANGE_US = 3 * 3600e6;
/** Run and request ids as probes and this API make them. */
const ID = /^[A-Za-z0-9._:-]{8,64}$/;

export function diagnosticsRoutes(deps: ApiDeps) {
  const { topology } = deps;
  const link = (c: Context): Link => {
    const x = c.req.param('a')!;
    const y = c.req.param('b')!;
    for (const id of [x, y]) if (!topology.centre(id)) throw new ApiError(404, 'not_found', `unknown centre "${id}"`);
    const l = topology.linkBetween(x, y);
    if (!l) throw new ApiError(404, 'not_found', `no link between "${x}" and "${y}"`);
    return l;
  };
  const principalName = (c: Context) => (c.get('principal') as { name: string } | undefined)?.name ?? 'operator';

  return new Hono()
    .post('/links/:a/:b/diagnostics', async (c) => {
      const l = link(c);
      const request = {
        requestId: `dr-${randomUUID()}`, a: l.a, b: l.b, requestedBy: principalName(c), requestedAtUs: Date.now() * 1000,
      };
      await insertDiagnosticRequest(deps.store.client, request);
      const body = {
        requestId: request.requestId, a: l.a, b: l.b, requestedAt: new Date(request.requestedAtUs / 1000).toISOString(),
        requestedBy: request.requestedBy, centres: [l.a, l.b],
      } satisfies ApiRoutes['POST /v1/links/:a/:b/diagnostics'];
      return c.json(body, 202);
    })
    .get('/links/:a/:b/diagnostics/:id', async (c) => {
      const l = link(c);
      const id = c.req.param('id');
      if (!ID.test(id)) throw new ApiError(400, 'bad_request', 'id: must be a run id (dg-…) or a request id (dr-…)');
      const [runs, request] = await Promise.all([
        diagnosticRunsById(deps.store.client, { a: l.a, b: l.b, id }),
        diagnosticRequest(deps.store.client, id),
      ]);
      if (request && (request.a !== l.a || request.b !== l.b)) throw new ApiError(404, 'not_found', `request "${id}" is for the link ${request.a}~${request.b}`);
      if (runs.length === 0 && !request) throw new ApiError(404, 'not_found', `no diagnostics run or request "${id}" on the link ${l.id}`);
      const body = {
        id, a: l.a, b: l.b, requestId: request ? request.requestId : (runs[0]?.requestId ?? null),
        runs: runs.map(runView),
        pending: request ? [l.a, l.b].filter((centre) => !runs.some((r) => r.src === centre)) : [],
      } satisfies ApiRoutes['GET /v1/links/:a/:b/diagnostics/:id'];
      return c.json(body);
    })
    .get('/links/:a/:b/annotations', async (c) => {
      const l = link(c);
      const q = parseQuery(rangeQuery, c);
      const toUs = q.to ? Date.parse(q.to) * 1000 : Date.now() * 1000;
      const fromUs = q.from ? Date.parse(q.from) * 1000 : toUs - DEFAULT_RANGE_US;
      if (fromUs >= toUs) throw new ApiError(400, 'bad_request', 'from: must be before to');
      if (toUs - fromUs > MAX_RANGE_US) throw new ApiError(400, 'bad_request', 'from: range longer than 400 days');
      const client = deps.store.client;
      const guardMs = selfLoadGuardMs(topology.probing);
      const [runs, changes, windows, loads] = await Promise.all([
        diagnosticRuns(client, { a: l.a, b: l.b, fromUs, toUs }),
        pathChanges(client, { a: l.a, b: l.b, fromUs, toUs }),
        maintenanceWindows(client, Math.floor(fromUs / 1e6), Math.ceil(toUs / 1e6)),
        loadWindowsBetween(client, { fromS: Math.floor(fromUs / 1e6), toS: Math.ceil(toUs / 1e6), guardMs, links: [l] }),
      ]);
      const annotations: Annotation[] = [
        ...runs.map(runAnnotation),
        ...changes.map((p): Annotation => ({
          kind: 'path_change', at: iso(p.tsUs), t: p.tsUs / 1e6, src: p.src, dst: p.dst, runId: p.runId,
          previousRunId: p.previousRunId, previousAt: iso(p.previousTsUs), before: p.before, after: p.after,
        })),
        ...windows.filter((w) => covers(w, l)).map((w): Annotation => ({
          kind: 'maintenance', at: iso(w.startS * 1e6), t: w.startS, end: iso(w.endS * 1e6), tEnd: w.endS, id: w.id, scope: w.scope,
          target: w.scope === 'link' ? `${w.a}~${w.b}` : w.scope === 'centre' ? w.a : 'network', reason: w.reason, declaredLate: w.declaredLate,
        })),
        ...loads.map((w): Annotation => ({
          kind: 'self_load', at: iso(w.startMs * 1000), t: w.startMs / 1000, end: iso(w.endMs * 1000), tEnd: w.endMs / 1000,
          testId: w.windowId, trigger: w.trigger, guardMs, sources: w.sources,
        })),
      ];
      // Time order; at one instant a window first, then the run, then the path change it revealed.
      const rank = { maintenance: 0, self_load: 0, diagnostics: 1, path_change: 2 } as const;
      annotations.sort((x, y) => x.t - y.t || rank[x.kind] - rank[y.kind]);
      const body = { a: l.a, b: l.b, from: iso(fromUs), to: iso(toUs), annotations } satisfies ApiRoutes['GET /v1/links/:a/:b/annotations'];
      return c.json(body);
    });
}

function covers(w: MaintenanceWindow, l: Link): boolean {
  if (w.scope === 'network') return true;
  if (w.scope === 'centre') return w.a === l.a || w.a === l.b;
  return w.a === l.a && w.b === l.b;
}

function iso(us: number): string {
  return new Date(us / 1000).toISOString();
}

const msOf = (us: number | null) => (us === null ? null : us / 1000);

function runView(r: DiagnosticRun): DiagnosticRunView {
  const f = r.fastTrain;
  return {
    runId: r.runId, requestId: r.requestId, at: iso(r.tsUs), src: r.src, dst: r.dst, trigger: r.trigger, reason: r.reason, durationMs: r.durationMs,
    traceroute: {
      ...r.traceroute,
      hops: r.traceroute.hops.map((h) => ({ ttl: h.ttl, probes: h.probes.map((p) => ({ address: p.address, rttMs: msOf(p.rttUs), flag: p.flag })) })),
    },
    pathMtu: r.pathMtu,
    fastTrain: {
      ok: f.ok, error: f.error, count: f.count, intervalMs: f.intervalMs, sent: f.sent, received: f.received,
      lossRatio: f.sent > 0 ? (f.sent - f.received) / f.sent : null,
      rttMinMs: msOf(f.rttMinUs), rttP50Ms: msOf(f.rttMedianUs), rttP99Ms: msOf(f.rttP99Us), rttMaxMs: msOf(f.rttMaxUs), jitterMs: msOf(f.jitterUs),
    },
  };
}

function runAnnotation(r: DiagnosticRun): DiagnosticsAnnotation {
  const f = r.fastTrain;
  const problems = [
    r.traceroute.error && `traceroute: ${r.traceroute.error}`,
    r.pathMtu.error && `path MTU: ${r.pathMtu.error}`,
    f.error && `fast train: ${f.error}`,
  ].filter((p): p is string => Boolean(p));
  return {
    kind: 'diagnostics', at: iso(r.tsUs), t: r.tsUs / 1e6, src: r.src, dst: r.dst, runId: r.runId, requestId: r.requestId,
    trigger: r.trigger, reason: r.reason, hops: r.traceroute.hops.length, reached: r.traceroute.reached, pmtu: r.pathMtu.pmtu,
    fastP50Ms: msOf(f.rttMedianUs), fastP99Ms: msOf(f.rttP99Us), fastLossRatio: f.sent > 0 ? (f.sent - f.received) / f.sent : null,
    problems,
  };
}
