/**
 * Response headers and request rules that hold for every route, applied once
 * at the edge of the app rather than per handler.
 *
 * - Security headers (Hono's secureHeaders): a Content-Security-Policy the
 *   dashboard works under (its scripts and styles are files of its own; uPlot
 *   sets styles through the CSSOM, which CSP allows), no framing
 *   (`frame-ancestors 'none'` and `X-Frame-Options: DENY`: the dashboard has
 *   buttons that silence alerts and start diagnostics, so framing it would be a
 *   clickjacking risk), `X-Content-Type-Options: nosniff`, `Referrer-Policy:
 *   no-referrer` (dashboard links carry tokens in fragments; no URL leaves).
 * - `Cache-Control: no-store` on the API and /metrics: answers behind a token
 *   must not be kept by a browser or a proxy.
 * - Writes carry JSON: a POST, PUT, PATCH or DELETE with a body, or with a
 *   Content-Type, must say `application/json`, else 415. A bodyless POST (e.g.
 *   finalise) needs no Content-Type. HTML forms cannot send JSON, so no page
 *   elsewhere can make a browser write here.
 * - Text the store cannot hold (a lone UTF-16 surrogate) anywhere in a JSON
 *   body is refused with 400 naming the field, before any route sees it: a
 *   maintenance reason or a silence comment must not reach ClickHouse and come
 *   back as a 500.
 */
import type { MiddlewareHandler } from 'hono';
import { secureHeaders } from 'hono/secure-headers';
import { unstorableText } from '../protocol/index.js';
import { ApiError } from './errors.js';

export const CONTENT_SECURITY_POLICY = {
  defaultSrc: ["'self'"],
  scriptSrc: ["'self'"],
  styleSrc: ["'self'"],
  imgSrc: ["'self'", 'data:'],
  connectSrc: ["'self'"],
  fontSrc: ["'self'"],
  objectSrc: ["'none'"],
  baseUri: ["'none'"],
  formAction: ["'none'"],
  frameAncestors: ["'none'"],
};

export function securityHeaders(): MiddlewareHandler {
  return secureHeaders({
    contentSecurityPolicy: CONTENT_SECURITY_POLICY,
    xFrameOptions: 'DENY',
    referrerPolicy: 'no-referrer',
    xContentTypeOptions: 'nosniff',
    // HSTS is the TLS terminator's to decide (a plain-http server cannot promise it).
    strictTransportSecurity: false,
  });
}

/** No caching of anything behind a token: the API and /metrics. */
export function noStore(): MiddlewareHandler {
  return async (c, next) => {
    await next();
    c.res.headers.set('Cache-Control', 'no-store');
  };
}

const WRITE_METHODS = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

export function jsonWritesOnly(): MiddlewareHandler {
  return async (c, next) => {
    if (WRITE_METHODS.has(c.req.method)) {
      const type = c.req.header('content-type');
      const length = c.req.header('content-length');
      const hasBody = (length !== undefined && length !== '0') || c.req.header('transfer-encoding') !== undefined;
      const mediaType = type?.split(';')[0]!.trim().toLowerCase();
      if ((type !== undefined || hasBody) && mediaType !== 'application/json') {
        throw new ApiError(415, 'unsupported_media_type', `${c.req.method} ${c.req.path} takes application/json${type ? `, not ${type}` : ' (no Content-Type was given)'}`);
      }
      // Probe batches are checked by the collector's own parser (same rule, same field names).
      if (mediaType === 'application/json' && hasBody && c.req.path !== '/v1/ingest') {
        let body: unknown;
        try {
          body = await c.req.json(); // cached: the route reads the same parsed body
        } catch {
          body = undefined; // not JSON: the route answers that
        }
        const unstorable = body === undefined ? null : unstorableText(body);
        if (unstorable) throw new ApiError(400, 'bad_request', `${unstorable.field}: ${unstorable.problem}`);
      }
    }
    await next();
  };
}
