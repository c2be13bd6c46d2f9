/**
 * The Hono application: JSON API under /v1, health at the root, and the
 * built dashboard for everything else. No port is opened here, so tests can
 * drive it with app.request(). Response shapes live in contract.ts
 * (ApiRoutes), which every route's JSON satisfies.
 */
import { serveStatic } from '@hono/node-server/serve-static';
import { Hono } from 'hono';
import { FailedAuthLimiter, KeyedLimiter } from '../collector/index.js';
import { dashboardPublicDir } from './public-dir.js';
import { clientAddress, requireRole, type AuthEnv } from './auth.js';
import type { ApiDeps } from './deps.js';
import { ApiError, onError } from './errors.js';
import { capacityRoutes } from './routes/capacity/index.js';
import { healthRoutes } from './routes/health/index.js';
import { ingestRoutes } from './routes/ingest/index.js';
import { linkRoutes } from './routes/links/index.js';
import { metricsRoutes } from './routes/metrics/index.js';
import { statusRoutes } from './routes/status/index.js';
import { StatusSnapshots } from './status-snapshot.js';
import { topologyRoutes } from './routes/topology/index.js';
import { placementRoutes } from './routes/placement/index.js';
import { diagnosticsRoutes } from './routes/diagnostics/index.js';
import { slaRoutes } from './routes/sla/index.js';
import { jsonWritesOnly, noStore, securityHeaders } from './security.js';
import { SlaService } from './sla-service.js';
import { AlertService } from './alerts/service.js';
import { alertRoutes } from './routes/alerts/index.js';

/** The SLA service (signing key, cron) is built by the server; without one, reports can be read but not finalised. */
export function createApp(deps: ApiDeps & { sla?: SlaService; alerts?: AlertService; authLimiter?: FailedAuthLimiter }) {
  const { topology } = deps;
  const statusSnapshots = deps.statusSnapshots ?? new StatusSnapshots({ store: deps.store, topology, logger: deps.logger });
  const sla = deps.sla ?? new SlaService({ store: deps.store, topology, signer: null, logger: deps.logger });
  // Without the server's service (timer, metrics), alerts can still be read and silenced.
  const alerts = deps.alerts ?? new AlertService({ store: deps.store, topology, logger: deps.logger });
  const operator = requireRole(topology, 'operator');
  const reader = requireRole(topology, 'operator', 'regulator');
  const limiter = deps.rateLimit && deps.rateLimit.perSecond > 0 ? new KeyedLimiter(deps.rateLimit.perSecond, deps.rateLimit.burst) : null;

  const v1 = new Hono()
    .use('/centres', reader)
    .use('/links', reader)
    .use('/status', operator)
    .use('/links/:src/:dst/*', operator)
    .use('/capacity', operator)
    .use('/throughput-tests/*', operator)
    // SLA: regulators and operators read; writes add an operator check per route; /sla/public-key is public.
    .use('/sla/months', reader)
    .use('/sla/months/*', reader)
    .use('/sla/maintenance', reader)
    .use('/placement', operator)
    .use('/alerts', operator)
    .use('/alerts/*', operator)
    .route('/', topologyRoutes(deps))
    .route('/', statusRoutes({ ...deps, statusSnapshots }))
    .route('/links', linkRoutes(deps))
    .route('/', capacityRoutes(deps))
    .route('/', ingestRoutes(deps))
    .route('/sla', slaRoutes(deps, sla))
    .route('/', placementRoutes(deps))
    .route('/alerts', alertRoutes(deps, alerts))
    .route('/', diagnosticsRoutes(deps));

  const app = new Hono<AuthEnv>();
  app.use('*', securityHeaders());
  const authLimiter = deps.authLimiter;
  if (authLimiter) {
    app.use('*', async (c, next) => {
      c.set('authLimiter', authLimiter);
      await next();
    });
  }
  app.use('/v1/*', noStore());
  app.use('/metrics', noStore());
  if (limiter) {
    app.use('*', async (c, next) => {
      const address = clientAddress(c);
      if (!limiter.take(address)) {
        throw new ApiError(429, 'rate_limited', `more than ${deps.rateLimit!.perSecond} requests/s from ${address}; slow down`, {
          'Retry-After': String(Math.max(1, Math.ceil(1 / deps.rateLimit!.perSecond))),
        });
      }
      await next();
    });
  }
  app.use('/v1/*', jsonWritesOnly());
  app.route('/', healthRoutes(deps)).route('/', metricsRoutes(topology, deps.registry, deps.store)).route('/v1', v1);

  app.all('/v1/*', () => {
    throw new ApiError(404, 'not_found', 'no such API endpoint; see README "HTTP API"');
  });
  const root = dashboardPublicDir();
  app.use('/*', serveStatic({ root }));
  app.get('/*', serveStatic({ root, path: 'index.html' }));
  app.onError((err, c) => {
    if (!(err instanceof ApiError)) deps.logger.error({ err, path: c.req.path }, 'request failed');
    return onError(err, c);
  });
  return app;
}
