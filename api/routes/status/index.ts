import { Hono } from 'hono';
import { ApiError } from '../../errors.js';
import { StatusSnapshots, StatusUnavailableError } from '../../status-snapshot.js';

/**
 * /v1/status from the snapshot of the newest judged second (status-snapshot.ts):
 * no query per request. The body is the snapshot's, serialised once, with
 * this response's generatedAt.
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
    // ApiRoutes['GET /v1/status'] (StatusResponse): the snapshot's body, typed when it was judged.
    return c.body(StatusSnapshots.responseBody(snapshot, Date.now()), 200, { 'Content-Type': 'application/json' });
  });
}
