import { Hono } from 'hono';
import { compress } from 'hono/compress';
import type { Registry } from 'prom-client';
import type { Topology } from '../../../topology/index.js';
import type { Store } from '../../../sql/index.js';
import { requireRole, type AuthEnv } from '../../auth.js';
import { ApiError } from '../../errors.js';
import { CONTENT_TYPES, NetworkMetrics, negotiateFormat, render } from '../../network-metrics/index.js';

/**
 * Prometheus expositions; operators only (they name centres and error rates).
 * /metrics: this server process (ingest, spool, alert deliveries), one per
 * server. /metrics/network: the measured network, read from ClickHouse, the
 * same whichever server answers.
 */
export function metricsRoutes(topology: Topology, registry: Registry, store: Store) {
  const network = new NetworkMetrics(store, topology);
  const operator = requireRole(topology, 'operator');
  return new Hono<AuthEnv>()
    .get('/metrics', operator, async (c) => {
      c.header('Content-Type', registry.contentType);
      return c.body(await registry.metrics());
    })
    // Shanghai is ~400 KB of text per scrape; Prometheus asks for gzip (about a tenth of that).
    .get('/metrics/network', operator, compress(), async (c) => {
      // Other query parameters are ignored, as exporters do (a scrape job may add its own `params`).
      const format = negotiateFormat(c.req.header('accept'), c.req.queries('format'));
      if (typeof format !== 'string') throw new ApiError(400, 'bad_request', format.error);
      const body = render(await network.families(), format);
      c.header('Content-Type', CONTENT_TYPES[format]);
      c.header('Vary', 'Accept');
      return c.body(body);
    });
}
