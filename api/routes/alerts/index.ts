/**
 * Alerts, mounted at /v1/alerts, operators only (app.ts guards the prefix):
 *
 *   GET    /v1/alerts                       active alerts (firing, silenced, pending) and those resolved in the last day
 *   GET    /v1/alerts/events?from&to&link   recorded state changes, newest first
 *   GET    /v1/alerts/silences              silences (active, pending, and expired within a week)
 *   POST   /v1/alerts/silences              create one: {matchers, startsAt?, endsAt | duration, comment}
 *   DELETE /v1/alerts/silences/:id          expire one now
 */
import type { Context } from 'hono';
import { Hono } from 'hono';
import { z } from 'zod';
import { parseDurationMs } from '../../../topology/index.js';
import type { AlertService } from '../../alerts/service.js';
import { SilenceInputError } from '../../alerts/service.js';
import type { AuthEnv } from '../../auth.js';
import type { ApiRoutes } from '../../contract.js';
import type { ApiDeps } from '../../deps.js';
import { ApiError, isoTimeParam, parseQuery } from '../../errors.js';

const DAY_MS = 86_400_000;

const eventsQuery = z.object({
  from: isoTimeParam.optional(),
  to: isoTimeParam.optional(),
  link: z.string().regex(/^[a-z][a-z0-9-]*~[a-z][a-z0-9-]*$/, 'must be a link id "a~b"').optional(),
  limit: z.coerce.number().int().min(1).max(5000).default(500),
});

const matcherSchema = z
  .object({
    name: z.string().min(1).max(64),
    value: z.string().max(1024),
    isRegex: z.boolean().default(false),
    isEqual: z.boolean().default(true),
  })
  .strict();

const silenceBody = z
  .object({
    matchers: z.array(matcherSchema).min(1, 'a silence needs at least one matcher').max(20, 'at most 20 matchers'),
    startsAt: isoTimeParam.optional(),
    endsAt: isoTimeParam.optional(),
    /** Instead of endsAt: how long from startsAt, e.g. "1h". */
    duration: z.string().max(32).optional(),
    comment: z.string().trim().min(1, 'say why the alert is silenced').max(500),
  })
  .strict();

export function alertRoutes(deps: ApiDeps, alerts: AlertService) {
  const { topology } = deps;
  const who = (c: Context<AuthEnv>) => c.get('principal')?.name ?? 'operator';

  return new Hono<AuthEnv>()
    .get('/', async (c) => c.json((await alerts.snapshot()) satisfies ApiRoutes['GET /v1/alerts']))
    .get('/events', async (c) => {
      const q = parseQuery(eventsQuery, c);
      const toMs = q.to ? Date.parse(q.to) : Date.now();
      const fromMs = q.from ? Date.parse(q.from) : toMs - DAY_MS;
      if (fromMs >= toMs) throw new ApiError(400, 'bad_request', 'from: must be before to');
      let link: string | null = null;
      if (q.link) {
        const [x, y] = q.link.split('~') as [string, string];
        const l = topology.linkBetween(x, y);
        if (!l) throw new ApiError(404, 'not_found', `link: no link "${q.link}" in the topology`);
        link = l.id;
      }
      const body = {
        from: new Date(fromMs).toISOString(), to: new Date(toMs).toISOString(), link,
        events: await alerts.events({ fromMs, toMs, link, limit: q.limit }),
      } satisfies ApiRoutes['GET /v1/alerts/events'];
      return c.json(body);
    })
    .get('/silences', async (c) => {
      const body = { silences: await alerts.silences() } satisfies ApiRoutes['GET /v1/alerts/silences'];
      return c.json(body);
    })
    .post('/silences', async (c) => {
      let raw: unknown;
      try {
        raw = await c.req.json();
      } catch {
        throw new ApiError(400, 'bad_request', 'body: must be JSON {matchers, startsAt?, endsAt | duration, comment}');
      }
      const parsed = silenceBody.safeParse(raw);
      if (!parsed.success) {
        const issue = parsed.error.issues[0]!;
        // Paths read as in the matcher checks: matchers[0].name.
        const path = issue.path.map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i > 0 ? '.' : ''}${String(p)}`)).join('');
        throw new ApiError(400, 'bad_request', `${path || 'body'}: ${issue.message}`);
      }
      const body = parsed.data;
      const nowMs = Date.now();
      const startsAtMs = body.startsAt ? Date.parse(body.startsAt) : nowMs;
      let endsAtMs: number;
      if (body.endsAt !== undefined && body.duration !== undefined) throw new ApiError(400, 'bad_request', 'endsAt, duration: give one of them, not both');
      if (body.endsAt !== undefined) endsAtMs = Date.parse(body.endsAt);
      else if (body.duration !== undefined) {
        const ms = parseDurationMs(body.duration);
        if (ms === null || ms <= 0) throw new ApiError(400, 'bad_request', `duration: "${body.duration}" is not a positive duration like "30m", "1h" or "2d"`);
        endsAtMs = startsAtMs + ms;
      } else throw new ApiError(400, 'bad_request', 'endsAt: required (or give a duration such as "1h")');
      try {
        const silence = await alerts.createSilence(
          { matchers: body.matchers, startsAtMs, endsAtMs, comment: body.comment }, who(c), nowMs,
        );
        return c.json(silence satisfies ApiRoutes['POST /v1/alerts/silences'], 201);
      } catch (error) {
        if (error instanceof SilenceInputError) throw new ApiError(400, 'bad_request', error.message);
        throw error;
      }
    })
    .delete('/silences/:id', async (c) => {
      const id = c.req.param('id');
      if (!/^[0-9a-f-]{36}$/.test(id)) throw new ApiError(400, 'bad_request', `id: "${id}" is not a silence id (a UUID)`);
      const silence = await alerts.expireSilence(id, who(c));
      if (!silence) throw new ApiError(404, 'not_found', `no silence "${id}"`);
      return c.json(silence satisfies ApiRoutes['DELETE /v1/alerts/silences/:id']);
    });
}
