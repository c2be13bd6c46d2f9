/**
 * One error type for the API and one place that turns it into JSON, so
 * handlers throw instead of formatting error bodies themselves.
 */
import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { z } from 'zod';
import type { ErrorResponse } from './contract.js';

export class ApiError extends HTTPException {
  constructor(status: ContentfulStatusCode, readonly error: string, readonly reason: string) {
    super(status, { message: `${error}: ${reason}` });
  }
}

export function errorBody(error: string, reason: string): ErrorResponse {
  return { error, reason };
}

export function onError(err: Error, c: Context): Response {
  if (err instanceof ApiError) return c.json(errorBody(err.error, err.reason), err.status);
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
