import { Hono } from 'hono';
import { z } from 'zod';
import { ENGINES } from '../../../protocol/index.js';
import { linkSeries, trainsBetween } from '../../../sql/index.js';
import type { ApiRoutes } from '../../contract.js';
import type { ApiDeps } from '../../deps.js';
import { ApiError, isoTimeParam, parseQuery } from '../../errors.js';


const seriesQuery = z.object({
  from: isoTimeParam.optional(),
  to: isoTimeParam.optional(),
  points: z.coerce.number().int().min(1).max(5000).default(600),
  engine: z.enum(ENGINES).default('stamp'),
});

const trainsQuery = z.object({
  from: isoTimeParam.optional(),
  to: isoTimeParam.optional(),
  limit: z.coerce.number().int().min(1).max(10_000).default(1000),
});

/** Longest range one request may ask for: about 13 months (the raw retention). */
const MAX_RANGE_US = 400 * 86_400e6;

export function linkRoutes(deps: ApiDeps) {
  const directed = (c: { req: { param: (name: 'src' | 'dst') => string } }) => {
    const src = c.req.param('src');
    const dst = c.req.param('dst');
    if (!deps.topology.centre(src)) throw new ApiError(404, 'not_found', `unknown centre "${src}"`);
    if (!deps.topology.centre(dst)) throw new ApiError(404, 'not_found', `unknown centre "${dst}"`);
    if (!deps.topology.linkBetween(src, dst)) throw new ApiError(404, 'not_found', `no link between "${src}" and "${dst}"`);
    return { src, dst };
  };
  const range = (from: string | undefined, to: string | undefined, defaultSpanUs: number) => {
    const toUs = to ? Date.parse(to) * 1000 : Date.now() * 1000;
    const fromUs = from ? Date.parse(from) * 1000 : toUs - defaultSpanUs;
    if (fromUs >= toUs) throw new ApiError(400, 'bad_request', 'from: must be before to');
    if (toUs - fromUs > MAX_RANGE_US) throw new ApiError(400, 'bad_request', 'from: range longer than 400 days');
    return { fromUs, toUs };
  };

  return new Hono()
    .get('/:src/:dst/series', async (c) => {
      const { src, dst } = directed(c);
      const q = parseQuery(seriesQuery, c);
      const { fromUs, toUs } = range(q.from, q.to, 15 * 60e6);
      const s = await linkSeries(deps.store.client, { src, dst, engine: q.engine, fromUs, toUs, points: q.points });
      const ms = (v: number | null) => (v === null ? null : v / 1000);
      const body = {
        src, dst, engine: q.engine, source: s.source, stepS: s.stepS,
        from: new Date(fromUs / 1000).toISOString(), to: new Date(toUs / 1000).toISOString(),
        t: s.t, minMs: s.minUs.map(ms), p50Ms: s.p50Us.map(ms), p99Ms: s.p99Us.map(ms), maxMs: s.maxUs.map(ms),
        jitterMs: s.jitterUs.map(ms), lossRatio: s.lossRatio, packets: s.packets,
      } satisfies ApiRoutes['GET /v1/links/:src/:dst/series'];
      return c.json(body);
    })
    .get('/:src/:dst/trains', async (c) => {
      const { src, dst } = directed(c);
      const q = parseQuery(trainsQuery, c);
      const { fromUs, toUs } = range(q.from, q.to, 5 * 60e6);
      const trains = await trainsBetween(deps.store.client, { src, dst, fromUs, toUs, limit: q.limit });
      return c.json({ src, dst, from: new Date(fromUs / 1000).toISOString(), to: new Date(toUs / 1000).toISOString(), trains } satisfies ApiRoutes['GET /v1/links/:src/:dst/trains']);
    });
}
