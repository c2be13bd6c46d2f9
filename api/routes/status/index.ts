import { Hono } from 'hono';
import { acceptsGzip } from '../../accept-encoding.js';
import { ApiError } from '../../errors.js';
import { StatusSnapshots, StatusUnavailableError } from '../../status-snapshot.js';

/**
 * /v1/status from the snapshot of the newest judged second (status-snapshot.ts):
 * no query per request, nothing serialised or compressed per request. The
 * body is the snapshot's (ApiRoutes['GET /v1/status'], StatusResponse), gzipped
 * once per snapshot for clients that accept it.
 */
export function statusRoutes(deps: { statusSnapshots: StatusSnapshots }) {
  return new Hono().get('/status', async (c) => {
    let snapshot;
    try {
      snapshot = await deps.statusSnapshots.read();
    } catch (error) {
      if (error instanceof StatusUnavailableError) throw new ApiError(503, 'store_unavailable', error.message, { 'Retry-After': '1' });
      throw error;
    }
    const headers = { 'Content-Type': 'application/json', Vary: 'Accept-Encoding' };
    if (acceptsGzip(c.req.header('accept-encoding'))) return c.body(snapshot.gzipped, 200, { ...headers, 'Content-Encoding': 'gzip' });
    return c.body(snapshot.body, 200, headers);
  });
}
