/**
 * Roles at the HTTP edge. A bearer token (Authorization header, or an
 * `access_token` query parameter where headers cannot be set: browser
 * WebSockets and dashboard links) is resolved to a principal once per
 * request; routes declare which roles may pass.
 *
 *   anonymous  /healthz, /readyz, the dashboard's static files
 *   regulator  topology (/v1/centres, /v1/links); SLA reports when they exist
 *   operator   everything a regulator reads, plus status, series, trains, live feed, metrics
 *   probe      its own batches (/v1/ingest, /v1/probe)
 */
import type { IncomingMessage } from 'node:http';
import type { Context, MiddlewareHandler } from 'hono';
import { authenticate, type Principal, type Role, type Topology } from '../collector/index.js';
import { ApiError } from './errors.js';

export type AuthEnv = { Variables: { principal: Principal } };

export function bearerToken(authorization: string | undefined | null, url: string): string | null {
  const match = /^Bearer\s+(\S+)$/i.exec(authorization ?? '');
  if (match) return match[1]!;
  return new URL(url, 'http://localhost').searchParams.get('access_token');
}

export function principalOf(topology: Topology, c: Context): Principal {
  return authenticate(topology, bearerToken(c.req.header('authorization'), c.req.url));
}

export function principalOfUpgrade(topology: Topology, request: IncomingMessage): Principal {
  return authenticate(topology, bearerToken(request.headers.authorization, request.url ?? '/'));
}

/** Let the request through only for the listed roles: 401 without a valid token, 403 with the wrong one. */
export function requireRole(topology: Topology, ...roles: Role[]): MiddlewareHandler<AuthEnv> {
  return async (c, next) => {
    const principal = principalOf(topology, c);
    if (!roles.includes(principal.role)) {
      if (principal.role === 'anonymous') {
        throw new ApiError(401, 'unauthorized', `needs a bearer token of role ${roles.join(' or ')}`);
      }
      throw new ApiError(403, 'forbidden', `role ${principal.role} may not use this endpoint (needs ${roles.join(' or ')})`);
    }
    c.set('principal', principal);
    await next();
  };
}
