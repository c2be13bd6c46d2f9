import { Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { MAX_MESSAGE_BYTES } from '../../../protocol/index.js';
import { requireRole, type AuthEnv } from '../../auth.js';
import type { ApiDeps } from '../../deps.js';
import { ApiError } from '../../errors.js';

/**
 * HTTPS fallback of the probe protocol: POST one batch message, get the ack
 * (200) or the same error object the WebSocket would send, with an HTTP status.
 * The probe is identified by its token alone, so it can only write as itself.
 */
export function ingestRoutes(deps: ApiDeps) {
  return new Hono<AuthEnv>().post(
    '/ingest',
    requireRole(deps.topology, 'probe'),
    bodyLimit({
      maxSize: MAX_MESSAGE_BYTES,
      onError: () => {
        throw new ApiError(413, 'too_large', `body larger than ${MAX_MESSAGE_BYTES} bytes`);
      },
    }),
    async (c) => {
      if (!deps.collector) throw new ApiError(503, 'unavailable', 'this server does not ingest');
      const centre = c.get('principal').name;
      const outcome = await deps.collector.ingestText(centre, await c.req.text());
      if (outcome.ok) return c.json(outcome.ack);
      // Refused for load (rate, capacity, store down): say when to come back (the store's own estimate when it is
      // behind, whole seconds as HTTP has them; retryAfterMs in the body is the finer figure). The probe's backoff also applies.
      const hintS = outcome.error.retryAfterMs === undefined ? 1 : Math.max(1, Math.ceil(outcome.error.retryAfterMs / 1000));
      const retry = outcome.status === 429 || outcome.status === 503 ? { 'Retry-After': String(hintS) } : undefined;
      return c.json({ ...outcome.error, reason: outcome.error.error }, outcome.status as 400, retry);
    },
  );
}
