/**
 * Webhook delivery against real HTTP servers on 127.0.0.1: the POST itself
 * (JSON, bearer token), retries with backoff on 5xx and on a refused
 * connection, none on 4xx, a bounded number of attempts, the timeout, and
 * the failure counters /metrics shows.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAlertMetrics } from '../../api/alerts/metrics.js';
import { buildWebhookMessage } from '../../api/alerts/payload.js';
import { deliver } from '../../api/alerts/webhook.js';
import type { AlertWebhook } from '../../topology/index.js';
import { freePort } from '../helpers/processes.js';

interface Seen {
  path: string;
  headers: IncomingMessage['headers'];
  body: string;
}

/** Answers each request with the next status of `script` (the last one repeats); `hang` never answers. */
async function scriptedServer(script: (number | 'hang')[]): Promise<{ server: Server; url: string; seen: Seen[] }> {
  const seen: Seen[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = '';
    req.setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => {
      seen.push({ path: req.url ?? '', headers: req.headers, body });
      const step = script[Math.min(seen.length - 1, script.length - 1)]!;
      if (step === 'hang') return;
      res.writeHead(step, { 'content-type': 'text/plain' }).end(step >= 400 ? `scripted ${step}` : 'ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, seen };
}

const message = buildWebhookMessage('noc', 'https://noc.example', {
  status: 'firing', fingerprint: '0123456789abcdef', labels: { alertname: 'LinkDown', severity: 'critical', link: 'a~b' },
  annotations: { summary: 's' }, startsAtMs: Date.UTC(2026, 0, 1), endsAtMs: null, generatorURL: 'https://noc.example/',
});
const fast = { attempts: 3, backoffMs: 20 };
const servers: Server[] = [];

function hook(url: string, overrides: Partial<AlertWebhook> = {}): AlertWebhook {
  return { name: 'noc', url, sendResolved: true, bearerToken: null, timeoutMs: 5000, ...overrides };
}

afterAll(async () => {
  for (const s of servers) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

describe('webhook delivery', () => {
  const registry = new Registry();
  const metrics = createAlertMetrics(registry);
  let scripted: Awaited<ReturnType<typeof scriptedServer>>;

  beforeAll(async () => {
    scripted = await scriptedServer([200]);
    servers.push(scripted.server);
  });

  it('POSTs the message as JSON with the bearer token', async () => {
    const outcome = await deliver(hook(scripted.url, { bearerToken: 'hook-token' }), message, metrics, fast);
    expect(outcome).toEqual({ ok: true, httpStatus: 200, attempts: 1, error: '', reason: 'ok' });
    const [request] = scripted.seen;
    expect(request!.path).toBe('/hook');
    expect(request!.headers['content-type']).toBe('application/json');
    expect(request!.headers.authorization).toBe('Bearer hook-token');
    expect(JSON.parse(request!.body)).toEqual(message);
  });

  it('retries 5xx answers with backoff until one succeeds', async () => {
    const s = await scriptedServer([503, 502, 200]);
    servers.push(s.server);
    const outcome = await deliver(hook(s.url), message, metrics, fast);
    expect(outcome).toMatchObject({ ok: true, httpStatus: 200, attempts: 3 });
    expect(s.seen).toHaveLength(3);
    expect(new Set(s.seen.map((r) => r.body)).size).toBe(1); // the same message every time
  });

  it('gives up after the bounded number of attempts and counts the failure', async () => {
    const s = await scriptedServer([500]);
    servers.push(s.server);
    const outcome = await deliver(hook(s.url, { name: 'flaky' }), message, metrics, fast);
    expect(outcome).toMatchObject({ ok: false, httpStatus: 500, attempts: 3, reason: 'http_5xx' });
    expect(outcome.error).toMatch(/flaky: HTTP 500: scripted 500/);
    expect(s.seen).toHaveLength(3);
    const text = await registry.metrics();
    expect(text).toContain('citymesh_alert_notification_failures_total{receiver="flaky",reason="http_5xx"} 1');
    expect(text).toContain('citymesh_alert_delivery_attempts_total{receiver="flaky"} 3');
  });

  it('does not retry a refusal (4xx)', async () => {
    const s = await scriptedServer([400, 200]);
    servers.push(s.server);
    const outcome = await deliver(hook(s.url, { name: 'strict' }), message, metrics, fast);
    expect(outcome).toMatchObject({ ok: false, httpStatus: 400, attempts: 1, reason: 'http_4xx' });
    expect(s.seen).toHaveLength(1);
  });

  it('retries a refused connection and reports it as a network error', async () => {
    const port = await freePort();
    const outcome = await deliver(hook(`http://127.0.0.1:${port}/hook`, { name: 'gone' }), message, metrics, fast);
    expect(outcome).toMatchObject({ ok: false, httpStatus: 0, attempts: 3, reason: 'network' });
    expect(outcome.error).toMatch(/gone: ECONNREFUSED/);
    expect(await registry.metrics()).toContain('citymesh_alert_notification_failures_total{receiver="gone",reason="network"} 1');
  });

  it('stops waiting for an answer after the timeout', async () => {
    const s = await scriptedServer(['hang']);
    servers.push(s.server);
    const outcome = await deliver(hook(s.url, { name: 'slow', timeoutMs: 200 }), message, metrics, { attempts: 2, backoffMs: 10 });
    expect(outcome).toMatchObject({ ok: false, httpStatus: 0, attempts: 2, reason: 'timeout' });
    expect(outcome.error).toBe('slow: no answer within 200 ms');
    expect(s.seen).toHaveLength(2);
  });
});
