/**
 * The authorization matrix: every endpoint x every role (anonymous, probe,
 * operator, regulator, an invalid token), with the token in the
 * Authorization header and in ?access_token=. One test per cell, generated
 * from one table of expectations. Then: a probe writes as its own centre only.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { getJson, startTestServer, testTopology, type TestServer } from '../helpers/stack.js';
import { RawClient } from '../helpers/ws-client.js';

const topo = testTopology(['alpha', 'beta', 'gamma'], '127.0.7');
let server: TestServer;
let cellsChecked = 0;
let ownCentreChecks = 0;

beforeAll(async () => {
  server = await startTestServer(topo.topology);
});
afterAll(async () => {
  console.log(
    `authorization matrix: ${cellsChecked} of ${httpCells.length + liveCells.length + PROBE_CELLS.length} cells checked ` +
      `(${ENDPOINTS.length} HTTP endpoints x ${CREDENTIALS.length} credentials = ${httpCells.length}, ` +
      `WS /v1/live x ${liveCells.length}, WS /v1/probe x ${PROBE_CELLS.length}); ${ownCentreChecks} own-centre write checks`,
  );
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
  method: 'GET' | 'POST';
  path: string;
  /** Roles let through; 'public' endpoints ignore the token altogether. */
  allow: Role[] | 'public';
  /** Checks the body of an allowed answer. */
  check: (response: Response, text: string) => void;
  body?: () => string;
}

const json = (text: string) => JSON.parse(text) as Record<string, unknown>;

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
];

function expectedStatus(endpoint: Endpoint, role: Role): 200 | 401 | 403 {
  if (endpoint.allow === 'public' || endpoint.allow.includes(role)) return 200;
  return role === 'anonymous' || role === 'invalid' ? 401 : 403;
}

const httpCells = ENDPOINTS.flatMap((endpoint) =>
  CREDENTIALS.map((cred) => {
    const status = expectedStatus(endpoint, cred.role);
    return [endpoint.name, cred.label, status === 200 ? '200 allowed' : `${status} denied`, endpoint, cred, status] as const;
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
    if (status === 200) endpoint.check(response, text);
    else expect(json(text)).toMatchObject({ error: status === 401 ? 'unauthorized' : 'forbidden' });
    cellsChecked++;
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
    cellsChecked++;
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
      cellsChecked++;
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
    ownCentreChecks += 3;
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
    ownCentreChecks++;
  });
});
