/**
 * The authorization matrix: every endpoint x every role (anonymous, probe,
 * operator, regulator, an invalid token), with the token in the
 * Authorization header and in ?access_token=. One test per cell, generated
 * from one table of expectations. Then: a probe writes as its own centre only.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createApp } from '../../api/app.js';
import { API_ROUTES } from '../../api/contract.js';
import { getJson, quietLogger, startTestServer, testTopology, type TestServer } from '../helpers/stack.js';
import { RawClient } from '../helpers/ws-client.js';

const topo = testTopology(['alpha', 'beta', 'gamma'], '127.0.7');
let server: TestServer;

beforeAll(async () => {
  server = await startTestServer(topo.topology);
});
afterAll(async () => {
  await server?.stop();
});

type Role = 'anonymous' | 'probe' | 'operator' | 'regulator' | 'invalid';
type Via = 'header' | 'query' | 'none';
interface Credential {
  label: string;
  role: Role;
  via: Via;
}

const INVALID_TOKEN = `not-a-citymesh-token-${Math.random().toString(36).slice(2)}`;

function tokenOf(role: Role): string | null {
  switch (role) {
    case 'anonymous': return null;
    case 'probe': return topo.tokens.alpha!; // the probe of centre alpha
    case 'operator': return topo.operatorToken;
    case 'regulator': return topo.regulatorToken;
    case 'invalid': return INVALID_TOKEN;
  }
}

const CREDENTIALS: Credential[] = [
  { label: 'anonymous', role: 'anonymous', via: 'none' },
  ...(['probe', 'operator', 'regulator', 'invalid'] as const).flatMap((role) =>
    (['header', 'query'] as const).map((via): Credential => ({ label: `${role} (${via === 'header' ? 'Authorization: Bearer' : '?access_token='})`, role, via })),
  ),
];

/** URL and headers carrying a credential. */
function withCredential(path: string, cred: Credential): { url: string; headers: Record<string, string> } {
  const token = tokenOf(cred.role);
  if (token === null || cred.via === 'none') return { url: `${server.url}${path}`, headers: {} };
  if (cred.via === 'header') return { url: `${server.url}${path}`, headers: { authorization: `Bearer ${token}` } };
  const sep = path.includes('?') ? '&' : '?';
  return { url: `${server.url}${path}${sep}access_token=${encodeURIComponent(token)}`, headers: {} };
}

let seq = 0;
/** A valid batch for `src` (the server decides src from the token; the payload has none). */
function batchFor(dst: string, startedAtUs = Date.now() * 1000 - 30_000_000): { batchId: string; trainIds: string[]; body: string } {
  const n = ++seq;
  const trainIds = [`authz-${process.pid}-${n}-a`, `authz-${process.pid}-${n}-b`];
  const samples = trainIds.map((trainId, flow) => ({
    trainId, dst, engine: 'stamp', startedAtUs, flow, srcPort: 40000 + flow, dscp: 46,
    sent: 3, received: 3, lost: 0, duplicated: 0, reordered: 0,
    rttMinUs: 40, rttMedianUs: 41, rttP99Us: 42, rttMaxUs: 42, jitterUs: 1,
    rttsUs: [40, 41, 42], synced: false, errorEstimateUs: 100, fwdUs: [], revUs: [],
  }));
  const batchId = `authz-batch-${n}`;
  return { batchId, trainIds, body: JSON.stringify({ type: 'batch', batchId, samples }) };
}

// ---------------------------------------------------------------------------
// HTTP endpoints

interface Endpoint {
  name: string;
  /** The route as the app registers it: `METHOD /path/:param`. */
  method: 'GET' | 'POST' | 'DELETE';
  path: string;
  /** Roles let through; 'public' endpoints ignore the token altogether. */
  allow: Role[] | 'public';
  /** What a role let through gets (default 200): a 404 or 409 past the role check still proves the role was let through. */
  allowedStatus?: number;
  /** Checks the body of an allowed answer. */
  check: (response: Response, text: string) => void;
  body?: () => string;
}

const json = (text: string) => JSON.parse(text) as Record<string, unknown>;

/** The month in progress (UTC, the test topology's timezone): readable, not yet finalisable. */
const MONTH = new Date().toISOString().slice(0, 7);
const NO_SUCH_SILENCE = '00000000-0000-4000-8000-000000000000';
/** A whole minute `hours` from now, ISO (maintenance windows are whole minutes). */
function wholeMinute(hours: number): string {
  return new Date(Math.floor(Date.now() / 60_000) * 60_000 + hours * 3_600_000).toISOString();
}

const ENDPOINTS: Endpoint[] = [
  { name: 'GET /healthz', method: 'GET', path: '/healthz', allow: 'public', check: (_r, t) => expect(json(t)).toEqual({ status: 'ok' }) },
  { name: 'GET /readyz', method: 'GET', path: '/readyz', allow: 'public', check: (_r, t) => expect(json(t)).toMatchObject({ status: 'ready' }) },
  {
    name: 'GET / (dashboard)', method: 'GET', path: '/', allow: 'public',
    check: (r, t) => {
      expect(r.headers.get('content-type')).toMatch(/text\/html/);
      expect(t.toLowerCase()).toContain('<html');
    },
  },
  { name: 'GET /metrics', method: 'GET', path: '/metrics', allow: ['operator'], check: (_r, t) => expect(t).toContain('citymesh_rejected_messages_total') },
  { name: 'GET /v1/centres', method: 'GET', path: '/v1/centres', allow: ['operator', 'regulator'], check: (_r, t) => expect((json(t).centres as unknown[]).length).toBe(3) },
  { name: 'GET /v1/links', method: 'GET', path: '/v1/links', allow: ['operator', 'regulator'], check: (_r, t) => expect((json(t).links as unknown[]).length).toBe(3) },
  { name: 'GET /v1/status', method: 'GET', path: '/v1/status', allow: ['operator'], check: (_r, t) => expect(Array.isArray(json(t).paths)).toBe(true) },
  { name: 'GET /v1/links/:src/:dst/series', method: 'GET', path: '/v1/links/alpha/beta/series', allow: ['operator'], check: (_r, t) => expect(json(t)).toMatchObject({ src: 'alpha', dst: 'beta' }) },
  { name: 'GET /v1/links/:src/:dst/trains', method: 'GET', path: '/v1/links/alpha/beta/trains', allow: ['operator'], check: (_r, t) => expect(Array.isArray(json(t).trains)).toBe(true) },
  {
    name: 'POST /v1/ingest', method: 'POST', path: '/v1/ingest', allow: ['probe'],
    body: () => batchFor('beta').body,
    check: (_r, t) => expect(json(t)).toMatchObject({ type: 'ack', stored: 2 }),
  },
  { name: 'GET /metrics/network', method: 'GET', path: '/metrics/network', allow: ['operator'], check: (_r, t) => expect(t).toContain('# TYPE citymesh_') },
  { name: 'GET /v1/capacity', method: 'GET', path: '/v1/capacity', allow: ['operator'], check: (_r, t) => expect((json(t).links as unknown[]).length).toBe(3) },
  { name: 'GET /v1/links/:src/:dst/throughput', method: 'GET', path: '/v1/links/alpha/beta/throughput', allow: ['operator'], check: (_r, t) => expect(json(t)).toMatchObject({ a: 'alpha', b: 'beta', tests: [] }) },
  { name: 'GET /v1/links/:src/:dst/utilisation', method: 'GET', path: '/v1/links/alpha/beta/utilisation', allow: ['operator'], check: (_r, t) => expect(json(t)).toMatchObject({ centre: 'alpha', peer: 'beta' }) },
  // Throughput testing is off in this topology: an operator gets through to the 409 that says so.
  { name: 'POST /v1/links/:src/:dst/throughput-tests', method: 'POST', path: '/v1/links/alpha/beta/throughput-tests', allow: ['operator'], allowedStatus: 409, check: (_r, t) => expect(json(t)).toMatchObject({ error: 'disabled' }) },
  { name: 'GET /v1/throughput-tests/:id', method: 'GET', path: '/v1/throughput-tests/no-such-test', allow: ['operator'], allowedStatus: 404, check: (_r, t) => expect(json(t)).toMatchObject({ error: 'not_found' }) },
  { name: 'GET /v1/sla/public-key', method: 'GET', path: '/v1/sla/public-key', allow: 'public', check: (_r, t) => expect(t).toContain('-----BEGIN PUBLIC KEY-----') },
  { name: 'GET /v1/sla/months', method: 'GET', path: '/v1/sla/months', allow: ['operator', 'regulator'], check: (_r, t) => expect(Array.isArray(json(t).months)).toBe(true) },
  { name: 'GET /v1/sla/months/:month', method: 'GET', path: `/v1/sla/months/${MONTH}`, allow: ['operator', 'regulator'], check: (_r, t) => expect(json(t)).toMatchObject({ month: MONTH, state: 'provisional' }) },
  { name: 'GET /v1/sla/months/:month/report', method: 'GET', path: `/v1/sla/months/${MONTH}/report`, allow: ['operator', 'regulator'], allowedStatus: 404, check: (_r, t) => expect(json(t)).toMatchObject({ error: 'not_found' }) },
  // The month in progress cannot be finalised, nor amended: an operator gets through to the 409 that says so.
  { name: 'POST /v1/sla/months/:month/finalise', method: 'POST', path: `/v1/sla/months/${MONTH}/finalise`, allow: ['operator'], allowedStatus: 409, check: (_r, t) => expect(json(t)).toMatchObject({ error: 'month_not_over' }) },
  { name: 'GET /v1/sla/months/:month/amendments', method: 'GET', path: `/v1/sla/months/${MONTH}/amendments`, allow: ['operator', 'regulator'], check: (_r, t) => expect(json(t)).toMatchObject({ month: MONTH, finalised: false }) },
  { name: 'POST /v1/sla/months/:month/amendments', method: 'POST', path: `/v1/sla/months/${MONTH}/amendments`, allow: ['operator'], allowedStatus: 409, check: (_r, t) => expect(json(t)).toMatchObject({ error: 'not_finalised' }) },
  { name: 'GET /v1/sla/months/:month/amendments/:seq', method: 'GET', path: `/v1/sla/months/${MONTH}/amendments/1`, allow: ['operator', 'regulator'], allowedStatus: 404, check: (_r, t) => expect(json(t)).toMatchObject({ error: 'not_found' }) },
  { name: 'GET /v1/sla/months/:month/links/:a/:b', method: 'GET', path: `/v1/sla/months/${MONTH}/links/alpha/beta`, allow: ['operator', 'regulator'], check: (_r, t) => expect(json(t)).toMatchObject({ month: MONTH, link: { id: 'alpha~beta' } }) },
  { name: 'GET /v1/sla/months/:month/links/:a/:b/minutes', method: 'GET', path: `/v1/sla/months/${MONTH}/links/alpha/beta/minutes`, allow: ['operator', 'regulator'], check: (_r, t) => expect(json(t)).toMatchObject({ month: MONTH, link: 'alpha~beta' }) },
  { name: 'GET /v1/sla/maintenance', method: 'GET', path: '/v1/sla/maintenance', allow: ['operator', 'regulator'], check: (_r, t) => expect(Array.isArray(json(t).windows)).toBe(true) },
  {
    name: 'POST /v1/sla/maintenance', method: 'POST', path: '/v1/sla/maintenance', allow: ['operator'], allowedStatus: 201,
    body: () => JSON.stringify({ link: 'alpha~beta', start: wholeMinute(1), end: wholeMinute(2), reason: 'authz matrix' }),
    check: (_r, t) => expect(json(t)).toMatchObject({ scope: 'link', target: 'alpha~beta', reason: 'authz matrix' }),
  },
  { name: 'GET /v1/placement', method: 'GET', path: '/v1/placement?from=alpha&max_rtt_ms=10&min_gbps=1', allow: ['operator'], check: (_r, t) => expect(json(t)).toMatchObject({ from: 'alpha' }) },
  { name: 'GET /v1/alerts', method: 'GET', path: '/v1/alerts', allow: ['operator'], check: (_r, t) => expect(json(t)).toMatchObject({ enabled: false, alerts: [] }) },
  { name: 'GET /v1/alerts/events', method: 'GET', path: '/v1/alerts/events', allow: ['operator'], check: (_r, t) => expect(json(t)).toMatchObject({ link: null, events: [] }) },
  { name: 'GET /v1/alerts/silences', method: 'GET', path: '/v1/alerts/silences', allow: ['operator'], check: (_r, t) => expect(Array.isArray(json(t).silences)).toBe(true) },
  {
    name: 'POST /v1/alerts/silences', method: 'POST', path: '/v1/alerts/silences', allow: ['operator'], allowedStatus: 201,
    body: () => JSON.stringify({ matchers: [{ name: 'link', value: 'alpha~beta' }], duration: '1h', comment: 'authz matrix' }),
    check: (_r, t) => expect(json(t)).toMatchObject({ comment: 'authz matrix', state: 'active' }),
  },
  { name: 'DELETE /v1/alerts/silences/:id', method: 'DELETE', path: `/v1/alerts/silences/${NO_SUCH_SILENCE}`, allow: ['operator'], allowedStatus: 404, check: (_r, t) => expect(json(t)).toMatchObject({ error: 'not_found' }) },
  { name: 'POST /v1/links/:a/:b/diagnostics', method: 'POST', path: '/v1/links/alpha/beta/diagnostics', allow: ['operator'], allowedStatus: 202, check: (_r, t) => expect(json(t)).toMatchObject({ a: 'alpha', b: 'beta', centres: ['alpha', 'beta'] }) },
  { name: 'GET /v1/links/:a/:b/diagnostics/:id', method: 'GET', path: '/v1/links/alpha/beta/diagnostics/no-such-run', allow: ['operator'], allowedStatus: 404, check: (_r, t) => expect(json(t)).toMatchObject({ error: 'not_found' }) },
  { name: 'GET /v1/links/:a/:b/annotations', method: 'GET', path: '/v1/links/alpha/beta/annotations', allow: ['operator'], check: (_r, t) => expect(json(t)).toMatchObject({ a: 'alpha', b: 'beta' }) },
];

/** Routes whose rows above use another name: the dashboard is served by the catch-all GET. */
const ROUTE_OF_ENDPOINT: Record<string, string> = { 'GET / (dashboard)': 'GET /*' };

describe('authorization matrix: coverage', () => {
  it('has a row for every route the app registers', () => {
    // The app as the server builds it, from the running server's parts: its route table is what is served.
    const app = createApp({
      store: server.store, topology: server.topology, hub: server.hub, collector: server.collector, logger: quietLogger,
      registry: server.registry, ready: () => true, sla: server.sla, alerts: server.alerts,
    });
    // Middleware (use) and the catch-all 404 register as ALL; every other entry is a route someone can call.
    const registered = new Set(app.routes.filter((r) => r.method !== 'ALL').map((r) => `${r.method} ${r.path}`));
    const covered = new Set(ENDPOINTS.map((e) => ROUTE_OF_ENDPOINT[e.name] ?? e.name));
    expect([...registered].filter((route) => !covered.has(route)), 'routes without a row in the matrix').toEqual([]);
    expect([...covered].filter((route) => !registered.has(route)), 'rows naming no registered route').toEqual([]);
  });

  it('has a response type in the API contract for routes the app registers only', () => {
    const app = createApp({
      store: server.store, topology: server.topology, hub: server.hub, collector: server.collector, logger: quietLogger,
      registry: server.registry, ready: () => true, sla: server.sla, alerts: server.alerts,
    });
    const registered = new Set(app.routes.map((r) => `${r.method} ${r.path}`));
    expect(API_ROUTES.filter((route) => !registered.has(route))).toEqual([]);
  });
});

function expectedStatus(endpoint: Endpoint, role: Role): number {
  if (endpoint.allow === 'public' || endpoint.allow.includes(role)) return endpoint.allowedStatus ?? 200;
  return role === 'anonymous' || role === 'invalid' ? 401 : 403;
}

const httpCells = ENDPOINTS.flatMap((endpoint) =>
  CREDENTIALS.map((cred) => {
    const status = expectedStatus(endpoint, cred.role);
    const denied = status === 401 || status === 403;
    return [endpoint.name, cred.label, denied ? `${status} denied` : `${status} allowed`, endpoint, cred, status] as const;
  }),
);

describe('authorization matrix: HTTP endpoints', () => {
  it.each(httpCells)('%s as %s -> %s', async (_name, _label, _what, endpoint, cred, status) => {
    const { url, headers } = withCredential(endpoint.path, cred);
    const response = await fetch(url, {
      method: endpoint.method,
      headers: endpoint.body ? { ...headers, 'content-type': 'application/json' } : headers,
      ...(endpoint.body ? { body: endpoint.body() } : {}),
    });
    const text = await response.text();
    expect(response.status, text.slice(0, 300)).toBe(status);
    if (status !== 401 && status !== 403) endpoint.check(response, text);
    else expect(json(text)).toMatchObject({ error: status === 401 ? 'unauthorized' : 'forbidden' });
  });
});

// ---------------------------------------------------------------------------
// WS /v1/live: the upgrade itself is authorized (operator only)

function openLive(cred: Credential): Promise<{ status: number; first?: unknown; body?: string }> {
  const token = tokenOf(cred.role);
  let url = `${server.url.replace(/^http/, 'ws')}/v1/live`;
  const headers: Record<string, string> = {};
  if (token !== null && cred.via === 'query') url += `?access_token=${encodeURIComponent(token)}`;
  if (token !== null && cred.via === 'header') headers.authorization = `Bearer ${token}`;
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    ws.once('message', (data) => {
      resolve({ status: 101, first: JSON.parse(String(data)) });
      ws.close();
    });
    ws.once('error', (error) => {
      if (!/Unexpected server response/.test(error.message)) reject(error);
    });
  });
}

const liveCells = CREDENTIALS.map((cred) => {
  const status = cred.role === 'operator' ? 101 : cred.role === 'anonymous' || cred.role === 'invalid' ? 401 : 403;
  return ['WS /v1/live', cred.label, status === 101 ? '101 upgraded' : `${status} refused`, cred, status] as const;
});

describe('authorization matrix: WS /v1/live upgrade', () => {
  it.each(liveCells)('%s as %s -> %s', async (_name, _label, _what, cred, status) => {
    const result = await openLive(cred);
    expect(result.status, result.body).toBe(status);
    if (status === 101) expect(result.first).toMatchObject({ type: 'welcome' });
    else expect(JSON.parse(result.body ?? '{}')).toMatchObject({ error: 'unauthorized' });
  });
});

// ---------------------------------------------------------------------------
// WS /v1/probe: the hello is the credential

interface ProbeCell {
  name: string;
  /** Query string on the upgrade URL (credentials there are not probe credentials). */
  upgrade?: { query?: string; headers?: Record<string, string> };
  /** The hello to send, or null to send a batch without one. */
  hello: { centre: string; token: string } | null;
  expect: { type: 'plan'; centre: string } | { type: 'error'; code: string; close?: number };
}

const PROBE_CELLS: ProbeCell[] = [
  { name: "probe token, hello as its own centre", hello: { centre: 'alpha', token: topo.tokens.alpha! }, expect: { type: 'plan', centre: 'alpha' } },
  { name: "probe token of alpha, hello as beta", hello: { centre: 'beta', token: topo.tokens.alpha! }, expect: { type: 'error', code: 'bad_token', close: 4401 } },
  { name: 'operator token used as a probe token', hello: { centre: 'alpha', token: topo.operatorToken }, expect: { type: 'error', code: 'bad_token', close: 4401 } },
  { name: 'regulator token used as a probe token', hello: { centre: 'alpha', token: topo.regulatorToken }, expect: { type: 'error', code: 'bad_token', close: 4401 } },
  { name: 'invalid token', hello: { centre: 'alpha', token: INVALID_TOKEN }, expect: { type: 'error', code: 'bad_token', close: 4401 } },
  { name: 'probe token, unknown centre', hello: { centre: 'omega', token: topo.tokens.alpha! }, expect: { type: 'error', code: 'unknown_centre', close: 4401 } },
  { name: 'anonymous: a batch without hello', hello: null, expect: { type: 'error', code: 'not_authenticated' } },
  { name: 'operator ?access_token= on the upgrade, a batch without hello', upgrade: { query: `access_token=${encodeURIComponent(topo.operatorToken)}` }, hello: null, expect: { type: 'error', code: 'not_authenticated' } },
  { name: 'probe token in Authorization on the upgrade, a batch without hello', upgrade: { headers: { authorization: `Bearer ${topo.tokens.alpha}` } }, hello: null, expect: { type: 'error', code: 'not_authenticated' } },
];

describe('authorization matrix: WS /v1/probe', () => {
  it.each(PROBE_CELLS.map((c) => ['WS /v1/probe', c.name, c.expect.type === 'plan' ? 'plan' : c.expect.code, c] as const))(
    '%s: %s -> %s',
    async (_name, _label, _what, cell) => {
      const url = `${server.wsUrl}${cell.upgrade?.query ? `?${cell.upgrade.query}` : ''}`;
      const client = cell.upgrade?.headers ? await openWithHeaders(url, cell.upgrade.headers) : await RawClient.open(url);
      try {
        if (cell.hello) client.send({ type: 'hello', centre: cell.hello.centre, token: cell.hello.token, version: 'authz' });
        else client.send(batchFor('beta').body);
        const reply = await client.next();
        if (cell.expect.type === 'plan') {
          expect(reply).toMatchObject({ type: 'plan', centre: cell.expect.centre });
        } else {
          expect(reply).toMatchObject({ type: 'error', code: cell.expect.code });
          if (cell.expect.close) expect((await client.waitClosed()).code).toBe(cell.expect.close);
          else expect(client.closed).toBeNull();
        }
      } finally {
        client.ws.terminate();
      }
    },
  );
});

/** RawClient.open cannot set headers: open the socket here and wrap it in the same queueing client. */
function openWithHeaders(url: string, headers: Record<string, string>): Promise<RawClient> {
  const Client = RawClient as unknown as new (ws: WebSocket) => RawClient;
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.once('open', () => resolve(new Client(ws)));
    ws.once('error', reject);
  });
}

// ---------------------------------------------------------------------------
// a probe writes as its own centre, whatever it sends

describe('a probe can only write its own centre', () => {
  interface Train { src: string; dst: string; train_id: string; batch_id: string }

  async function trainsOf(src: string, dst: string): Promise<Train[]> {
    const from = new Date(Date.now() - 3_600_000).toISOString();
    const { status, body } = await getJson<{ trains: Train[] }>(`${server.url}/v1/links/${src}/${dst}/trains?from=${from}`, topo.operatorToken);
    expect(status).toBe(200);
    return body.trains;
  }

  it('HTTP ingest stores src = the token\'s centre; src/centre fields in the payload are refused', async () => {
    // gamma's token, in the header (and once with beta's token in ?access_token=: the header wins).
    const plain = batchFor('alpha');
    const mixed = batchFor('alpha');
    const ok1 = await fetch(`${server.url}/v1/ingest`, { method: 'POST', headers: { authorization: `Bearer ${topo.tokens.gamma}`, 'content-type': 'application/json' }, body: plain.body });
    expect(await ok1.json()).toEqual({ type: 'ack', batchId: plain.batchId, stored: 2 });
    const ok2 = await fetch(`${server.url}/v1/ingest?access_token=${encodeURIComponent(topo.tokens.beta!)}`, {
      method: 'POST', headers: { authorization: `Bearer ${topo.tokens.gamma}`, 'content-type': 'application/json' }, body: mixed.body,
    });
    expect(await ok2.json()).toEqual({ type: 'ack', batchId: mixed.batchId, stored: 2 });
    // beta's token only in the query: written as beta.
    const viaQuery = batchFor('alpha');
    const ok3 = await fetch(`${server.url}/v1/ingest?access_token=${encodeURIComponent(topo.tokens.beta!)}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: viaQuery.body });
    expect(await ok3.json()).toEqual({ type: 'ack', batchId: viaQuery.batchId, stored: 2 });

    // Claiming another centre in the payload is refused, not honoured.
    const withSrc = JSON.parse(batchFor('alpha').body) as { samples: Record<string, unknown>[] };
    withSrc.samples[0]!.src = 'beta';
    const r1 = await fetch(`${server.url}/v1/ingest`, { method: 'POST', headers: { authorization: `Bearer ${topo.tokens.gamma}`, 'content-type': 'application/json' }, body: JSON.stringify(withSrc) });
    expect(r1.status).toBe(400);
    expect(await r1.json()).toMatchObject({ code: 'bad_message', field: 'samples[0]' });
    const withCentre = { ...(JSON.parse(batchFor('alpha').body) as object), centre: 'beta' };
    const r2 = await fetch(`${server.url}/v1/ingest`, { method: 'POST', headers: { authorization: `Bearer ${topo.tokens.gamma}`, 'content-type': 'application/json' }, body: JSON.stringify(withCentre) });
    expect(r2.status).toBe(400);
    expect(await r2.json()).toMatchObject({ code: 'bad_message' });

    const gammaTrains = await trainsOf('gamma', 'alpha');
    const ids = (trains: Train[]) => new Set(trains.map((t) => t.train_id));
    for (const id of [...plain.trainIds, ...mixed.trainIds]) expect(ids(gammaTrains).has(id)).toBe(true);
    for (const t of gammaTrains) expect(t).toMatchObject({ src: 'gamma', dst: 'alpha' });
    expect(gammaTrains.filter((t) => viaQuery.trainIds.includes(t.train_id))).toEqual([]);

    const betaTrains = await trainsOf('beta', 'alpha');
    expect(betaTrains.map((t) => t.train_id).sort()).toEqual([...viaQuery.trainIds].sort());
    for (const t of betaTrains) expect(t.src).toBe('beta');
  });

  it('WebSocket ingest stores src = the centre of the hello', async () => {
    const client = await RawClient.open(server.wsUrl);
    try {
      client.send({ type: 'hello', centre: 'gamma', token: topo.tokens.gamma, version: 'authz' });
      expect(await client.next()).toMatchObject({ type: 'plan', centre: 'gamma' });
      const batch = batchFor('beta');
      client.send(batch.body);
      expect(await client.next()).toEqual({ type: 'ack', batchId: batch.batchId, stored: 2 });
      const gammaBeta = await trainsOf('gamma', 'beta');
      expect(gammaBeta.map((t) => t.train_id).sort()).toEqual([...batch.trainIds].sort());
      for (const t of gammaBeta) expect(t).toMatchObject({ src: 'gamma', dst: 'beta' });
      const alphaBeta = await trainsOf('alpha', 'beta');
      expect(alphaBeta.filter((t) => batch.trainIds.includes(t.train_id))).toEqual([]);
    } finally {
      client.ws.terminate();
    }
  });
});
