/**
 * Delivers one webhook message: POST as JSON with a timeout; 5xx answers,
 * 429 and network errors are retried with exponential backoff and jitter, a
 * bounded number of times; any other 4xx is final (the receiver refuses the
 * request, so sending it again cannot help). The outcome says what happened
 * so the caller can log it; failures are counted in the metrics.
 */
import type { AlertWebhook } from '../../topology/index.js';
import type { AlertMetrics } from './metrics.js';
import type { WebhookMessage } from './payload.js';

export interface DeliveryOutcome {
  ok: boolean;
  /** The last HTTP status, 0 when no answer came. */
  httpStatus: number;
  attempts: number;
  /** Why it failed (empty when ok). */
  error: string;
  reason: 'ok' | 'http_5xx' | 'http_4xx' | 'timeout' | 'network';
}

export interface DeliveryOptions {
  /** Requests per delivery, the first included. */
  attempts: number;
  /** First backoff; doubled after every retry, with up to 50 % random jitter. */
  backoffMs: number;
}

export const DEFAULT_DELIVERY: DeliveryOptions = { attempts: 3, backoffMs: 1000 };

const USER_AGENT = 'citymesh-alerts/1';

export async function deliver(
  webhook: AlertWebhook,
  message: WebhookMessage,
  metrics: AlertMetrics,
  options: DeliveryOptions = DEFAULT_DELIVERY,
): Promise<DeliveryOutcome> {
  const body = JSON.stringify(message);
  const headers: Record<string, string> = { 'content-type': 'application/json', 'user-agent': USER_AGENT };
  if (webhook.bearerToken) headers.authorization = `Bearer ${webhook.bearerToken}`;
  let outcome: DeliveryOutcome = { ok: false, httpStatus: 0, attempts: 0, error: 'not attempted', reason: 'network' };
  for (let attempt = 1; attempt <= Math.max(1, options.attempts); attempt++) {
    if (attempt > 1) {
      const base = options.backoffMs * 2 ** (attempt - 2);
      await new Promise((r) => setTimeout(r, base + Math.random() * base * 0.5));
    }
    metrics.deliveryAttempts.inc({ receiver: webhook.name });
    outcome = await post(webhook, headers, body, attempt);
    if (outcome.ok || !retryable(outcome)) break;
  }
  if (!outcome.ok) metrics.notificationFailures.inc({ receiver: webhook.name, reason: outcome.reason });
  return outcome;
}

function retryable(o: DeliveryOutcome): boolean {
  return o.reason === 'http_5xx' || o.reason === 'timeout' || o.reason === 'network' || o.httpStatus === 429;
}

async function post(webhook: AlertWebhook, headers: Record<string, string>, body: string, attempts: number): Promise<DeliveryOutcome> {
  const timeout = AbortSignal.timeout(webhook.timeoutMs);
  try {
    const response = await fetch(webhook.url, { method: 'POST', headers, body, signal: timeout });
    // Read (and drop) the body so the connection can be reused; a slow body still counts against the timeout.
    const text = await response.text().catch(() => '');
    if (response.status >= 200 && response.status < 300) return { ok: true, httpStatus: response.status, attempts, error: '', reason: 'ok' };
    const detail = text.trim().slice(0, 200);
    return {
      ok: false,
      httpStatus: response.status,
      attempts,
      error: `${webhook.name}: HTTP ${response.status}${detail ? `: ${detail}` : ''}`,
      reason: response.status >= 500 ? 'http_5xx' : 'http_4xx',
    };
  } catch (error) {
    if (timeout.aborted) return { ok: false, httpStatus: 0, attempts, error: `${webhook.name}: no answer within ${webhook.timeoutMs} ms`, reason: 'timeout' };
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    const why = cause?.code ?? cause?.message ?? (error as Error).message;
    return { ok: false, httpStatus: 0, attempts, error: `${webhook.name}: ${why}`, reason: 'network' };
  }
}
