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
import { getConnInfo } from '@hono/node-server/conninfo';
import type { Context, MiddlewareHandler } from 'hono';
import { authenticate, type Principal, type Role, type Topology } from '../topology/index.js';
import { FailedAuthLimiter, type AuthRefusal } from '../collector/index.js';
import { ApiError } from './errors.js';

/** `authLimiter` is set by the app for every request (absent in route tests that build a bare router). */
export type AuthEnv = { Variables: { principal: Principal; authLimiter?: FailedAuthLimiter } };

/** The client's address, or "unknown" (app.request() in tests has no socket). */
export function clientAddress(c: Context): string {
  try {
    return getConnInfo(c).remote.address ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

export function authRefusalReason(refusal: AuthRefusal): string {
  const who = { address: 'from this address', credential: 'for this credential', global: 'on this server' }[refusal.scope];
  return `too many failed authentications ${who}; retry after ${refusal.retryAfterS} s`;
}

/**
 * Resolve a presented token under the failed-authentication limits: null
 * means the limiter refused before looking at the token.
 */
export function limitedAuthenticate(
  topology: Topology, limiter: FailedAuthLimiter | undefined, address: string, token: string | null,
): { principal: Principal } | { refusal: AuthRefusal } {
  if (!token || !limiter) return { principal: authenticate(topology, token) };
  const credential = FailedAuthLimiter.tokenKey(token);
  const refusal = limiter.check(address, credential);
  if (refusal) return { refusal };
  const principal = authenticate(topology, token);
  if (principal.role === 'anonymous') limiter.failed(address, credential);
  else limiter.succeeded(address);
  return { principal };
}

export function bearerToken(authorization: string | undefined | null, url: string): string | null {
  const match = /^Bearer\s+(\S+)$/i.exec(authorization ?? '');
  if (match) return match[1]!;
  return new URL(url, 'http://localhost').searchParams.get('access_token');
}

/** The request's principal; 429 with Retry-After while the failed-authentication limits refuse it. */
export function principalOf(topology: Topology, c: Context<AuthEnv>): Principal {
  const token = bearerToken(c.req.header('authorization'), c.req.url);
  const outcome = limitedAuthenticate(topology, c.get('authLimiter'), clientAddress(c), token);
  if ('refusal' in outcome) {
    throw new ApiError(429, 'rate_limited', authRefusalReason(outcome.refusal), { 'Retry-After': String(outcome.refusal.retryAfterS) });
  }
  return outcome.principal;
}

export function principalOfUpgrade(
  topology: Topology, limiter: FailedAuthLimiter | undefined, request: IncomingMessage,
): { principal: Principal } | { refusal: AuthRefusal } {
  return limitedAuthenticate(topology, limiter, request.socket.remoteAddress ?? 'unknown', bearerToken(request.headers.authorization, request.url ?? '/'));
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
