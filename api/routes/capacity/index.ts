import { Hono } from 'hono';
import { z } from 'zod';
import type { Link } from '../../../topology/index.js';
import { latestNicStates, latestThroughputTests, throughputHistory, utilisationSeries, type LinkNicState, type ThroughputTest } from '../../../sql/index.js';
import type { ApiRoutes, CapacityVerdict, LinkCapacity } from '../../contract.js';
import type { ApiDeps } from '../../deps.js';
import { ApiError, isoTimeParam, parseQuery } from '../../errors.js';

const historyQuery = z.object({
  from: isoTimeParam.optional(),
  to: isoTimeParam.optional(),
});
const rangeQuery = historyQuery.extend({
  points: z.coerce.number().int().min(1).max(5000).default(300),
});

const gbps = (bps: number | null) => (bps === null ? null : bps / 1e9);

/** Capacity reads (operator) and on-demand tests (operator), mounted under /v1. */
export function capacityRoutes(deps: ApiDeps) {
  const { topology } = deps;
  const link = (x: string, y: string): Link => {
    for (const id of [x, y]) if (!topology.centre(id)) throw new ApiError(404, 'not_found', `unknown centre "${id}"`);
    const l = topology.linkBetween(x, y);
    if (!l) throw new ApiError(404, 'not_found', `no link between "${x}" and "${y}"`);
    return l;
  };
  const range = (q: { from?: string | undefined; to?: string | undefined }, defaultSpanUs: number) => {
    const toUs = q.to ? Date.parse(q.to) * 1000 : Date.now() * 1000;
    const fromUs = q.from ? Date.parse(q.from) * 1000 : toUs - defaultSpanUs;
    if (fromUs >= toUs) throw new ApiError(400, 'bad_request', 'from: must be before to');
    return { fromUs, toUs };
  };

  return new Hono()
    .get('/capacity', async (c) => {
      const [nics, tests] = await Promise.all([latestNicStates(deps.store.client), latestThroughputTests(deps.store.client)]);
      const body = {
        generatedAt: new Date().toISOString(),
        links: topology.links.map((l) => linkCapacity(l, nics, tests)),
      } satisfies ApiRoutes['GET /v1/capacity'];
      return c.json(body);
    })
    .get('/links/:src/:dst/throughput', async (c) => {
      const l = link(c.req.param('src'), c.req.param('dst'));
      const { fromUs, toUs } = range(parseQuery(historyQuery, c), 7 * 86_400e6);
      const tests = await throughputHistory(deps.store.client, l.a, l.b, fromUs, toUs);
      const body = {
        a: l.a, b: l.b, floorGbps: l.throughputFloorGbps, committedGbps: l.capacityGbps,
        tests: tests.map((t) => {
          const { ab, ba } = oriented(t, l.a);
          return {
            at: new Date(t.tsUs / 1000).toISOString(), testId: t.testId, client: t.src, trigger: t.trigger, engine: t.engine,
            direction: t.direction, streams: t.streams, ok: t.ok, error: t.error, abGbps: gbps(ab), baGbps: gbps(ba),
          };
        }),
      } satisfies ApiRoutes['GET /v1/links/:src/:dst/throughput'];
      return c.json(body);
    })
    .get('/links/:src/:dst/utilisation', async (c) => {
      const src = c.req.param('src');
      const dst = c.req.param('dst');
      link(src, dst);
      const q = parseQuery(rangeQuery, c);
      const { fromUs, toUs } = range(q, 3 * 3600e6);
      const s = await utilisationSeries(deps.store.client, src, dst, fromUs, toUs, q.points);
      const body = {
        centre: src, peer: dst, stepS: s.stepS, t: s.t, peak: s.peak, mean: s.mean,
        rxGbps: s.rxBps.map(gbps), txGbps: s.txBps.map(gbps),
      } satisfies ApiRoutes['GET /v1/links/:src/:dst/utilisation'];
      return c.json(body);
    })
    .post('/links/:src/:dst/throughput-tests', (c) => {
      const l = link(c.req.param('src'), c.req.param('dst'));
      if (!deps.collector) throw new ApiError(503, 'unavailable', 'this server does not run tests');
      if (!topology.probing.throughput.enabled) {
        throw new ApiError(409, 'disabled', 'throughput testing is disabled in the topology (probing.throughput.enabled)');
      }
      // A link already queued or under test returns that test rather than loading the link twice.
      const status = deps.collector.throughput.request(l.a, l.b, 'operator');
      return c.json(status satisfies ApiRoutes['POST /v1/links/:src/:dst/throughput-tests'], status.state === 'queued' || status.state === 'running' ? 202 : 200);
    })
    .get('/throughput-tests/:id', async (c) => {
      // A test waiting for its row looks in the store too: the row may have come in through another server.
      const status = await deps.collector?.throughput.statusNow(c.req.param('id'));
      if (!status) throw new ApiError(404, 'not_found', `no throughput test "${c.req.param('id')}" (finished tests are kept for the last 1000)`);
      return c.json(status satisfies ApiRoutes['GET /v1/throughput-tests/:id']);
    });
}

/** Goodput a → b and b → a, whichever end ran the client. */
function oriented(t: ThroughputTest, a: string): { ab: number | null; ba: number | null } {
  return t.src === a ? { ab: t.forwardBps, ba: t.reverseBps } : { ab: t.reverseBps, ba: t.forwardBps };
}

export function linkCapacity(l: Link, nics: LinkNicState[], tests: ThroughputTest[]): LinkCapacity {
  const mine = nics.filter((n) => (n.centre === l.a && n.peer === l.b) || (n.centre === l.b && n.peer === l.a));
  const speeds = mine.map((n) => n.speedMbps).filter((v): v is number => v !== null);
  const provisionedGbps = speeds.length > 0 ? Math.min(...speeds) / 1000 : null;
  const provisionedVerdict: LinkCapacity['provisioned']['verdict'] =
    mine.length === 0 ? 'nodata' : provisionedGbps === null ? 'unknown' : provisionedGbps >= l.capacityGbps ? 'met' : 'breach';

  const test = tests.find((t) => (t.src === l.a && t.dst === l.b) || (t.src === l.b && t.dst === l.a));
  let tested: LinkCapacity['tested'] = { at: null, engine: null, abGbps: null, baGbps: null, error: null, verdict: 'nodata' };
  if (test) {
    const { ab, ba } = oriented(test, l.a);
    const measured = [ab, ba].filter((v): v is number => v !== null);
    const worst = measured.length > 0 ? Math.min(...measured) / 1e9 : null;
    tested = {
      at: new Date(test.tsUs / 1000).toISOString(),
      engine: test.engine,
      abGbps: gbps(ab),
      baGbps: gbps(ba),
      error: test.error,
      verdict: !test.ok ? 'failed' : worst === null ? 'unknown' : worst >= l.throughputFloorGbps ? 'met' : 'breach',
    };
  }
  const verdicts: CapacityVerdict[] = [provisionedVerdict, tested.verdict];
  const verdict: CapacityVerdict = verdicts.includes('breach')
    ? 'breach'
    : verdicts.includes('failed')
      ? 'failed'
      : verdicts.every((v) => v === 'met')
        ? 'met'
        : verdicts.every((v) => v === 'nodata')
          ? 'nodata'
          : 'unknown';
  return {
    linkId: l.id, a: l.a, b: l.b, committedGbps: l.capacityGbps, floorGbps: l.throughputFloorGbps,
    provisioned: {
      gbps: provisionedGbps,
      interfaces: mine.map((n) => ({
        centre: n.centre, interface: n.interface, speedMbps: n.speedMbps, operState: n.operState,
        utilisation: n.utilisation, at: new Date(n.tsUs / 1000).toISOString(),
      })),
      verdict: provisionedVerdict,
    },
    tested,
    verdict,
  };
}
