/**
 * One error type for the API and one place that turns it into JSON, so
 * handlers throw instead of formatting error bodies themselves.
 */
import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { z } from 'zod';
import type { ErrorResponse } from './contract.js';

export class ApiError extends HTTPException {
  constructor(
    status: ContentfulStatusCode,
    readonly error: string,
    readonly reason: string,
    /** Extra response headers, e.g. Retry-After on 429. */
    readonly headers: Record<string, string> = {},
  ) {
    super(status, { message: `${error}: ${reason}` });
  }
}

export function errorBody(error: string, reason: string): ErrorResponse {
  return { error, reason };
}

export function onError(err: Error, c: Context): Response {
  if (err instanceof ApiError) return c.json(errorBody(err.error, err.reason), err.status, err.headers);
  if (err instanceof HTTPException) return c.json(errorBody('http_error', err.message), err.status);
  return c.json(errorBody('internal_error', 'the server failed to answer; see its log'), 500);
}

/** Validate a query string against a schema; a failure names the parameter. */
export function parseQuery<T extends z.ZodType>(schema: T, c: Context): z.infer<T> {
  const parsed = schema.safeParse(c.req.query());
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  const name = issue.path.map(String).join('.') || 'query';
  throw new ApiError(400, 'bad_request', `${name}: ${issue.message}`);
}

/** Earliest and latest instants the API accepts: what ClickHouse's DateTime columns can hold, with margin. */
const MIN_TIME_MS = Date.UTC(2000, 0, 1);
const MAX_TIME_MS = Date.UTC(2100, 0, 1);

/** An ISO-8601 query parameter within 2000-01-01 .. 2100-01-01. */
export const isoTimeParam = z
  .string()
  .refine((s) => !Number.isNaN(Date.parse(s)), 'must be an ISO-8601 time, e.g. 2026-11-29T10:00:00Z')
  .refine((s) => {
    const ms = Date.parse(s);
    return Number.isNaN(ms) || (ms >= MIN_TIME_MS && ms < MAX_TIME_MS);
  }, 'must be between 2000-01-01 and 2100-01-01');
