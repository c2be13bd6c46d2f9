import { Hono } from 'hono';
import type { ApiRoutes } from '../../contract.js';
import type { ApiDeps } from '../../deps.js';
import { pathStatuses, probeStatuses, STALE_AFTER_S, STATUS_WINDOW_S } from '../../path-status.js';

export function statusRoutes(deps: ApiDeps) {
  return new Hono().get('/status', async (c) => {
    const nowUs = Date.now() * 1000;
    const probes = await probeStatuses(deps.store, deps.topology);
    const paths = await pathStatuses(deps.store, deps.topology, nowUs, probes);
    const body = { generatedAt: new Date(nowUs / 1000).toISOString(), windowS: STATUS_WINDOW_S, staleAfterS: STALE_AFTER_S, paths, probes } satisfies ApiRoutes['GET /v1/status'];
    return c.json(body);
  });
}
