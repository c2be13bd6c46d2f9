import { Hono } from 'hono';
import type { Registry } from 'prom-client';
import type { Topology } from '../../../collector/index.js';
import { requireRole, type AuthEnv } from '../../auth.js';

/** Prometheus text exposition; operators only (it names centres and error rates). */
export function metricsRoutes(topology: Topology, registry: Registry) {
  return new Hono<AuthEnv>().get('/metrics', requireRole(topology, 'operator'), async (c) => {
    c.header('Content-Type', registry.contentType);
    return c.body(await registry.metrics());
  });
}
