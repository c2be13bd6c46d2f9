import { Hono } from 'hono';
import { appliedVersions, latestVersion } from '../../../sql/index.js';
import type { ApiDeps } from '../../deps.js';

/** Liveness says the process answers; readiness says the store answers and the schema is current. */
export function healthRoutes(deps: ApiDeps) {
  return new Hono()
    .get('/healthz', (c) => c.json({ status: 'ok' }))
    .get('/readyz', async (c) => {
      if (!deps.ready()) return c.json({ status: 'starting', reason: 'migrations have not finished' }, 503);
      try {
        const versions = await appliedVersions(deps.store.client);
        const schema = Math.max(0, ...versions);
        if (schema < latestVersion) {
          return c.json({ status: 'not_ready', reason: `schema at version ${schema}, this build needs ${latestVersion}` }, 503);
        }
        return c.json({ status: 'ready', store: deps.store.mode, schemaVersion: schema });
      } catch (error) {
        return c.json({ status: 'not_ready', reason: `store unreachable: ${(error as Error).message.split('\n')[0]}` }, 503);
      }
    });
}
