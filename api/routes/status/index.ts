import { Hono } from 'hono';
import type { StatusResponse } from '../../contract.js';
import type { ApiDeps } from '../../deps.js';
import { pathStatuses, STALE_AFTER_S, STATUS_WINDOW_S } from '../../path-status.js';

export function statusRoutes(deps: ApiDeps) {
  return new Hono().get('/status', async (c) => {
    const nowUs = Date.now() * 1000;
    const paths = await pathStatuses(deps.store, deps.topology, nowUs);
    const body: StatusResponse = { generatedAt: new Date(nowUs / 1000).toISOString(), windowS: STATUS_WINDOW_S, staleAfterS: STALE_AFTER_S, paths };
    return c.json(body);
  });
}
