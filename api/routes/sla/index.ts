/**
 * Monthly SLA reports, mounted at /v1/sla. Reads are for regulators and
 * operators (app.ts guards /v1/sla/months* and /v1/sla/maintenance); writes
 * (finalise, record an amendment, declare maintenance) need an operator, and
 * the public key is for anyone. JSON by default; CSV with `?format=csv` or
 * `Accept: text/csv`.
 */
import { randomUUID } from 'node:crypto';
import type { Context } from 'hono';
import { Hono } from 'hono';
import { z } from 'zod';
import { selfLoadGuardMs } from '../../../collector/index.js';
import { type Link } from '../../../topology/index.js';
import { insertMaintenance, maintenanceWindows, slaLinkMinutes, slaLinkTimeline, throughputHistory } from '../../../sql/index.js';
import { requireRole } from '../../auth.js';
import type { ApiRoutes, SlaBreachRun, SlaMaintenanceView } from '../../contract.js';
import type { ApiDeps } from '../../deps.js';
import { ApiError, isoTimeParam, onError, parseQuery } from '../../errors.js';
import { minutesCsv, monthsCsv, reportCsv, timelineCsv } from '../../sla-csv.js';
import { iso, linkInput, maintenanceView, MonthNotStartedError, monthPeriod, monthProblem } from '../../sla-report.js';
import { SlaRefusal, type SlaRefusalReason, type SlaService } from '../../sla-service.js';

const formatQuery = z.object({ format: z.enum(['json', 'csv']).optional() });
const monthQuery = formatQuery.extend({ source: z.enum(['stored', 'rollup', 'raw']).default('stored') });
const maintenanceQuery = z.object({
  month: z.string().refine((m) => monthProblem(m) === null, { error: (issue) => monthProblem(String(issue.input)) ?? 'must be YYYY-MM' }).optional(),
  from: isoTimeParam.optional(),
  to: isoTimeParam.optional(),
});

/** Longest window one declaration may exclude: a week (declare several for longer works). */
const MAX_WINDOW_S = 7 * 86_400;

const maintenanceBody = z
  .object({
    link: z.string().regex(/^[a-z][a-z0-9-]*~[a-z][a-z0-9-]*$/, 'must be a link id "a~b"').optional(),
    centre: z.string().min(1).optional(),
    start: isoTimeParam,
    end: isoTimeParam,
    reason: z.string().min(1).max(500),
  })
  .strict();

/** The HTTP answer to each refusal of the SLA service (which the cron job also runs, where these mean nothing). */
const REFUSAL_STATUS: Record<SlaRefusalReason, { status: 404 | 409 | 503; error: string }> = {
  no_signing_key: { status: 503, error: 'unavailable' },
  already_finalised: { status: 409, error: 'already_finalised' },
  month_not_over: { status: 409, error: 'month_not_over' },
  not_finalised: { status: 409, error: 'not_finalised' },
  link_not_in_report: { status: 404, error: 'not_found' },
};

/** The service's domain errors as HTTP errors; anything else is left to the app's handler (logged, 500). */
function httpErrorOf(error: Error): Error {
  if (error instanceof SlaRefusal) {
    const { status, error: code } = REFUSAL_STATUS[error.reason];
    return new ApiError(status, code, error.message);
  }
  if (error instanceof MonthNotStartedError) return new ApiError(404, 'not_found', error.message);
  return error;
}

function wantsCsv(c: Context, format: 'json' | 'csv' | undefined): boolean {
  if (format) return format === 'csv';
  return /\btext\/csv\b/i.test(c.req.header('accept') ?? '');
}

function csvResponse(c: Context, body: string, filename: string): Response {
  return c.body(body, 200, {
    'content-type': 'text/csv; charset=utf-8; header=present',
    'content-disposition': `attachment; filename="${filename}"`,
  });
}

export function slaRoutes(deps: ApiDeps, sla: SlaService) {
  const { topology } = deps;
  const operator = requireRole(topology, 'operator');
  const principalName = (c: Context) => (c.get('principal') as { name: string } | undefined)?.name ?? 'operator';

  const month = (c: Context): string => {
    const m = c.req.param('month') ?? '';
    const problem = monthProblem(m);
    if (problem) throw new ApiError(400, 'bad_request', `month: ${problem} (a calendar month in ${topology.sla.timezone})`);
    return m;
  };
  const link = (c: Context): Link => {
    const a = c.req.param('a') ?? '';
    const b = c.req.param('b') ?? '';
    for (const id of [a, b]) if (!topology.centre(id)) throw new ApiError(404, 'not_found', `unknown centre "${id}"`);
    const l = topology.linkBetween(a, b);
    if (!l) throw new ApiError(404, 'not_found', `no link between "${a}" and "${b}"`);
    return l;
  };
  const affects = (w: SlaMaintenanceView, l: Link) =>
    w.scope === 'network' || (w.scope === 'centre' && (w.target === l.a || w.target === l.b)) || (w.scope === 'link' && w.target === l.id);

  return new Hono()
    .onError((error, c) => {
      const mapped = httpErrorOf(error);
      if (mapped instanceof ApiError) return onError(mapped, c);
      throw mapped; // the app's handler logs it
    })
    .get('/public-key', (c) => {
      if (!sla.signer) throw new ApiError(503, 'unavailable', 'this server has no report signing key');
      return c.body(sla.signer.publicKeyPem, 200, {
        'content-type': 'application/x-pem-file',
        'x-citymesh-key-fingerprint': sla.signer.fingerprint,
      });
    })
    .get('/months', async (c) => {
      const { format } = parseQuery(formatQuery, c);
      const months = await sla.months();
      if (wantsCsv(c, format)) return csvResponse(c, monthsCsv(months), 'citymesh-sla-months.csv');
      const body = { timezone: topology.sla.timezone, months } satisfies ApiRoutes['GET /v1/sla/months'];
      return c.json(body);
    })
    .get('/months/:month', async (c) => {
      const m = month(c);
      const q = parseQuery(monthQuery, c);
      const body = await sla.month(m, q.source === 'stored' ? {} : { recompute: q.source });
      if (wantsCsv(c, q.format)) return csvResponse(c, reportCsv(body.report, body.state), `citymesh-sla-${m}.csv`);
      return c.json(body satisfies ApiRoutes['GET /v1/sla/months/:month']);
    })
    .get('/months/:month/report', async (c) => {
      const m = month(c);
      const document = await sla.document(m, 0);
      if (!document) throw new ApiError(404, 'not_found', `${m} is not finalised yet; GET /v1/sla/months/${m} has its provisional figures`);
      return c.body(document, 200, {
        'content-type': 'application/json',
        'content-disposition': `attachment; filename="citymesh-sla-${m}.signed.json"`,
      });
    })
    .post('/months/:month/finalise', operator, async (c) => {
      const m = month(c);
      const row = await sla.finalise(m, principalName(c));
      return c.body(row.document, 201, { 'content-type': 'application/json' });
    })
    .get('/months/:month/amendments', async (c) => {
      return c.json((await sla.amendments(month(c))) satisfies ApiRoutes['GET /v1/sla/months/:month/amendments']);
    })
    .post('/months/:month/amendments', operator, async (c) => {
      const m = month(c);
      const row = await sla.recordAmendment(m, principalName(c));
      if (!row) return c.json({ month: m, recorded: false, reason: 'a recomputation now gives the stored figures' } satisfies ApiRoutes['POST /v1/sla/months/:month/amendments']);
      return c.body(row.document, 201, { 'content-type': 'application/json' });
    })
    .get('/months/:month/amendments/:seq', async (c) => {
      const m = month(c);
      const seq = Number(c.req.param('seq'));
      if (!Number.isInteger(seq) || seq < 1) throw new ApiError(400, 'bad_request', 'seq: must be an amendment number (1, 2, ...)');
      const document = await sla.document(m, seq);
      if (!document) throw new ApiError(404, 'not_found', `${m} has no amendment ${seq}`);
      return c.body(document, 200, {
        'content-type': 'application/json',
        'content-disposition': `attachment; filename="citymesh-sla-${m}.amendment-${seq}.signed.json"`,
      });
    })
    .get('/months/:month/links/:a/:b', async (c) => {
      const m = month(c);
      const l = link(c);
      const { format } = parseQuery(formatQuery, c);
      const view = await sla.linkView(m, l);
      const scope = view.scope;
      const period = await monthPeriod(deps.store.client, topology, m, Date.now());
      const endS = Date.parse(view.report.period.end) / 1000;
      const q = {
        startS: period.startS, endS, engine: topology.sla.engine, source: 'rollup' as const, links: [linkInput(l)],
        loadGuardMs: selfLoadGuardMs(topology.probing),
      };
      const [runs, tests] = await Promise.all([
        slaLinkTimeline(deps.store.client, q),
        throughputHistory(deps.store.client, l.a, l.b, period.startS * 1e6, endS * 1e6),
      ]);
      const toRuns = (r: [number, number][]): SlaBreachRun[] => r.map(([s, n]) => ({ start: iso(s), end: iso(s + n * 60), minutes: n }));
      const timeline = {
        latency: toRuns(runs.latency), loss: toRuns(runs.loss), availability: toRuns(runs.availability), capacity_provisioned: toRuns(runs.provisioned),
      };
      if (wantsCsv(c, format)) return csvResponse(c, timelineCsv(m, l.id, timeline), `citymesh-sla-${m}-${l.a}-${l.b}-breaches.csv`);
      const gbps = (v: number | null) => (v === null ? null : v / 1e9);
      const body = {
        month: m, state: view.state, link: scope, timeline,
        tests: tests.map((t) => {
          const [ab, ba] = t.src === l.a ? [t.forwardBps, t.reverseBps] : [t.reverseBps, t.forwardBps];
          return { at: new Date(t.tsUs / 1000).toISOString(), client: t.src, ok: t.ok, error: t.error, abGbps: gbps(ab), baGbps: gbps(ba) };
        }),
        maintenance: view.report.maintenance.filter((w) => affects(w, l)),
        selfLoad: (view.report.selfLoad ?? []).filter((w) => w.link === l.id),
      } satisfies ApiRoutes['GET /v1/sla/months/:month/links/:a/:b'];
      return c.json(body);
    })
    .get('/months/:month/links/:a/:b/minutes', async (c) => {
      const m = month(c);
      const l = link(c);
      const { format } = parseQuery(formatQuery, c);
      const period = await monthPeriod(deps.store.client, topology, m, Date.now());
      if (period.effectiveEndS <= period.startS) throw new ApiError(404, 'not_found', `month ${m} has not started yet`);
      const cols = await slaLinkMinutes(deps.store.client, {
        startS: period.startS, endS: period.effectiveEndS, engine: topology.sla.engine, source: 'rollup', links: [linkInput(l)],
        loadGuardMs: selfLoadGuardMs(topology.probing),
      });
      const ms = (v: number | null) => (v === null ? null : v / 1000);
      const body = {
        month: m, link: l.id, a: l.a, b: l.b, percentile: l.sla.percentile, rttTargetMs: l.sla.rttTargetMs,
        t: cols.t, excluded: cols.excluded, abTrains: cols.abTrains, abSent: cols.abSent, abLost: cols.abLost, abRttMs: cols.abPUs.map(ms),
        baTrains: cols.baTrains, baSent: cols.baSent, baLost: cols.baLost, baRttMs: cols.baPUs.map(ms),
        provisionedGbps: cols.speedMbps.map(ms), covered: cols.covered, available: cols.available,
        latencyBreach: cols.latencyBreach, lossBreach: cols.lossBreach, selfLoad: cols.selfLoad,
      } satisfies ApiRoutes['GET /v1/sla/months/:month/links/:a/:b/minutes'];
      if (wantsCsv(c, format)) return csvResponse(c, minutesCsv(body), `citymesh-sla-${m}-${l.a}-${l.b}-minutes.csv`);
      return c.json(body);
    })
    .get('/maintenance', async (c) => {
      const q = parseQuery(maintenanceQuery, c);
      let fromS: number;
      let toS: number;
      if (q.month) {
        const period = await monthPeriod(deps.store.client, topology, q.month, Date.now());
        fromS = period.startS;
        toS = period.endS;
      } else {
        toS = Math.floor((q.to ? Date.parse(q.to) : Date.now() + 366 * 86_400_000) / 1000);
        fromS = Math.floor((q.from ? Date.parse(q.from) : Date.now() - 31 * 86_400_000) / 1000);
        if (fromS >= toS) throw new ApiError(400, 'bad_request', 'from: must be before to');
      }
      const windows = await maintenanceWindows(deps.store.client, fromS, toS);
      return c.json({ from: iso(fromS), to: iso(toS), windows: windows.map(maintenanceView) } satisfies ApiRoutes['GET /v1/sla/maintenance']);
    })
    .post('/maintenance', operator, async (c) => {
      let raw: unknown;
      try {
        raw = await c.req.json();
      } catch {
        throw new ApiError(400, 'bad_request', 'body: must be JSON {link | centre, start, end, reason}');
      }
      const parsed = maintenanceBody.safeParse(raw);
      if (!parsed.success) {
        const issue = parsed.error.issues[0]!;
        throw new ApiError(400, 'bad_request', `${issue.path.map(String).join('.') || 'body'}: ${issue.message}`);
      }
      const body = parsed.data;
      if (body.link && body.centre) throw new ApiError(400, 'bad_request', 'give link or centre (or neither, for the whole network), not both');
      let scope: 'link' | 'centre' | 'network' = 'network';
      let a = '';
      let b = '';
      if (body.link) {
        const [x, y] = body.link.split('~') as [string, string];
        const l = topology.linkBetween(x, y);
        if (!l) throw new ApiError(400, 'bad_request', `link: no link "${body.link}" in the topology`);
        [scope, a, b] = ['link', l.a, l.b];
      } else if (body.centre) {
        if (!topology.centre(body.centre)) throw new ApiError(400, 'bad_request', `centre: unknown centre "${body.centre}"`);
        [scope, a] = ['centre', body.centre];
      }
      const startMs = Date.parse(body.start);
      const endMs = Date.parse(body.end);
      if (startMs % 60_000 !== 0 || endMs % 60_000 !== 0) throw new ApiError(400, 'bad_request', 'start, end: must be whole minutes (seconds 00)');
      if (endMs <= startMs) throw new ApiError(400, 'bad_request', 'end: must be after start');
      if ((endMs - startMs) / 1000 > MAX_WINDOW_S) throw new ApiError(400, 'bad_request', `end: a window is at most ${MAX_WINDOW_S / 86_400} days; declare several for longer work`);
      const nowMs = Date.now();
      const row = {
        id: randomUUID(), scope, a, b, startS: startMs / 1000, endS: endMs / 1000, reason: body.reason,
        declaredAtMs: nowMs, declaredBy: principalName(c),
      };
      await insertMaintenance(deps.store.client, row);
      const view = maintenanceView({ ...row, declaredLate: !(nowMs < startMs) });
      return c.json(
        view.declaredLate
          ? { ...view, warning: 'declared at or after its start: it is listed in the report as declared late and does not change any verdict' }
          : view satisfies ApiRoutes['POST /v1/sla/maintenance'],
        201,
      );
    });
}
