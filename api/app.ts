/**
 * The Hono application: JSON API under /v1, health at the root, and the
 * built dashboard for everything else. No port is opened here, so tests can
 * drive it with app.request().
 */
import { serveStatic } from '@hono/node-server/serve-static';
import { Hono } from 'hono';
import { dashboardPublicDir } from '../dashboard/public-dir.js';
import type { ApiDeps } from './deps.js';
import { ApiError, onError } from './errors.js';
import { healthRoutes } from './routes/health/index.js';
import { linkRoutes } from './routes/links/index.js';
import { statusRoutes } from './routes/status/index.js';
import { topologyRoutes } from './routes/topology/index.js';

export function createApp(deps: ApiDeps) {
  const v1 = new Hono()
    .route('/', topologyRoutes(deps))
    .route('/', statusRoutes(deps))
    .route('/links', linkRoutes(deps));

  const app = new Hono()
    .route('/', healthRoutes(deps))
    .route('/v1', v1);

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

export type AppType = ReturnType<typeof createApp>;
