/**
 * SQL injection through every parameter that reaches a query: path (src,
 * dst), query (from, to, points, engine, limit) and the ingest fields that
 * are written (dst, trainId, batchId, engine). Rows are seeded first, for
 * alpha->beta and for another direction, so a widened WHERE clause would show.
 * Every attempt must end in a 4xx, or a 200 holding only alpha->beta's own
 * rows; never a 5xx; and the table must still hold exactly the seeded rows.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getJson, startTestServer, testTopology, type TestServer } from '../helpers/stack.js';
import { RawClient } from '../helpers/ws-client.js';

const topo = testTopology(['alpha', 'beta', 'gamma'], '127.0.8');
let server: TestServer;

interface Train { src: string; dst: string; engine: string; train_id: string; received: number }
interface Series { src: string; dst: string; engine: string; packets: number[] }

/** What was seeded: alpha->beta (stamp and icmp) and gamma->alpha. */
const seeded = { alphaBeta: [] as { trainId: string; engine: 'stamp' | 'icmp'; received: number }[], gammaAlpha: [] as string[] };
const seededPackets = (engine: string) => seeded.alphaBeta.filter((t) => t.engine === engine).reduce((sum, t) => sum + t.received, 0);

let seq = 0;
function sample(dst: string, engine: 'stamp' | 'icmp', received: number): Record<string, unknown> {
  const rtts = Array.from({ length: received }, (_, i) => 100 + i);
  return {
    trainId: `sqli-${process.pid}-${++seq}`, dst, engine, startedAtUs: Date.now() * 1000 - 60_000_000, flow: seq % 4, srcPort: 40000 + seq, dscp: 46,
    sent: 5, received, lost: 5 - received, duplicated: 0, reordered: 0,
    rttMinUs: 100, rttMedianUs: 100 + Math.floor(received / 2), rttP99Us: 99 + received, rttMaxUs: 99 + received, jitterUs: 1,
    rttsUs: rtts, synced: false, errorEstimateUs: 100, fwdUs: [], revUs: [],
  };
}

async function ingest(centre: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const r = await fetch(`${server.url}/v1/ingest`, {
    method: 'POST',
    headers: { authorization: `Bearer ${topo.tokens[centre]}`, 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: r.status, body: (await r.json()) as Record<string, unknown> };
}

async function storedTrainIds(): Promise<string[]> {
  const r = await server.store.client.query({ query: 'SELECT train_id FROM latency_trains ORDER BY train_id', format: 'JSONEachRow' });
  return (await r.json<{ train_id: string }>()).map((row) => row.train_id);
}

beforeAll(async () => {
  server = await startTestServer(topo.topology);
  const ab = [sample('beta', 'stamp', 5), sample('beta', 'stamp', 4), sample('beta', 'icmp', 3)];
  const ga = [sample('alpha', 'stamp', 5), sample('alpha', 'icmp', 2)];
  expect(await ingest('alpha', { type: 'batch', batchId: 'seed-alpha', samples: ab })).toMatchObject({ status: 200, body: { stored: 3 } });
  expect(await ingest('gamma', { type: 'batch', batchId: 'seed-gamma', samples: ga })).toMatchObject({ status: 200, body: { stored: 2 } });
  seeded.alphaBeta = ab.map((s) => ({ trainId: s.trainId as string, engine: s.engine as 'stamp' | 'icmp', received: s.received as number }));
  seeded.gammaAlpha = ga.map((s) => s.trainId as string);
});
afterAll(async () => {
  await server?.stop();
});

const INJECTIONS = [
  "alpha' OR '1'='1",
  "alpha' OR 1=1 --",
  "alpha' OR 1=1#",
  "alpha'/**/OR/**/'1'='1",
  'alpha/**/UNION/**/SELECT/**/src,dst/**/FROM/**/latency_trains',
  "alpha' UNION SELECT * FROM latency_trains --",
  "alpha' UNION ALL SELECT name, engine FROM system.tables --",
  "' UNION SELECT version() --",
  '1; DROP TABLE latency_trains',
  "1'; DROP TABLE latency_trains; --",
  "alpha'; TRUNCATE TABLE latency_trains; --",
  "beta\\' OR 1=1 --",
  'alpha\\',
  "\\'",
  'alpha\u0000',
  "alpha\u0000' OR '1'='1",
  'alpha%00',
  'alpha%27%20OR%20%271%27%3D%271',
  '{src:String}',
  "alpha' AND {dst:String} = 'beta",
  "') OR ('1'='1",
  '" OR ""="',
  'alpha` OR 1=1',
  '1 OR 1=1',
  '1) OR (1=1',
  '0 UNION SELECT 1',
  "2026-01-01 00:00:00' OR '1'='1",
  "2026-01-01T00:00:00Z') OR ('1'='1",
  'now() - INTERVAL 10 YEAR',
  'toDateTime64(0, 6)',
  '1e309',
  '-1',
  'NaN',
  "alpha' AND sleep(3) --",
  "alph'||'a",
  "alpha'||'",
  'alpha\r\nX-Injected: 1',
  '../../../etc/passwd',
  'alpha;',
  'ALPHA',
  "😀' OR '1'='1",
  "' OR ''='",
  '%27',
  '%2527',
];

type Encoding = 'encoded' | 'double-encoded' | 'raw';
const ENCODINGS: Encoding[] = ['encoded', 'double-encoded', 'raw'];

function encode(value: string, how: Encoding): string {
  if (how === 'encoded') return encodeURIComponent(value);
  if (how === 'double-encoded') return encodeURIComponent(encodeURIComponent(value));
  return value; // left to the URL parser: only what must be escaped is
}

interface Attempt {
  target: string;
  path: string;
  kind: 'trains' | 'series';
}

/** Every request an injection string turns into, for one encoding. */
function attempts(payload: string, how: Encoding): Attempt[] {
  const v = encode(payload, how);
  const list: Attempt[] = [];
  // A raw "/", "\\" (a "/" to the URL parser), "?" or "#" in a path changes the route itself: not a parameter.
  if (how !== 'raw' || !/[/\\?#]/.test(payload)) {
    for (const kind of ['trains', 'series'] as const) {
      list.push({ target: `path src (${kind})`, path: `/v1/links/${v}/beta/${kind}`, kind });
      list.push({ target: `path dst (${kind})`, path: `/v1/links/alpha/${v}/${kind}`, kind });
    }
  }
  list.push({ target: 'trains ?from', path: `/v1/links/alpha/beta/trains?from=${v}`, kind: 'trains' });
  list.push({ target: 'trains ?to', path: `/v1/links/alpha/beta/trains?to=${v}`, kind: 'trains' });
  list.push({ target: 'trains ?limit', path: `/v1/links/alpha/beta/trains?limit=${v}`, kind: 'trains' });
  list.push({ target: 'series ?from', path: `/v1/links/alpha/beta/series?from=${v}`, kind: 'series' });
  list.push({ target: 'series ?to', path: `/v1/links/alpha/beta/series?to=${v}`, kind: 'series' });
  list.push({ target: 'series ?points', path: `/v1/links/alpha/beta/series?points=${v}`, kind: 'series' });
  list.push({ target: 'series ?engine', path: `/v1/links/alpha/beta/series?engine=${v}`, kind: 'series' });
  return list;
}

/** Problems with one answer: a 5xx, a non-JSON answer, or rows that are not alpha->beta's own. */
function judge(attempt: Attempt, status: number, text: string): string | null {
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    return `${status} with a non-JSON body: ${text.slice(0, 120)}`;
  }
  if (status >= 500) return `${status} ${text.slice(0, 200)}`;
  if (status >= 400) return typeof body.error === 'string' && body.error.length > 0 ? null : `${status} without an error: ${text.slice(0, 200)}`;
  if (status !== 200) return `unexpected status ${status}`;
  if (attempt.target.startsWith('path')) return `a path parameter that is no centre answered 200: ${text.slice(0, 200)}`;
  if (body.src !== 'alpha' || body.dst !== 'beta') return `answered for ${String(body.src)}->${String(body.dst)}`;
  if (attempt.kind === 'trains') {
    const own = new Set(seeded.alphaBeta.map((t) => t.trainId));
    const trains = body.trains as Train[];
    const foreign = trains.filter((t) => t.src !== 'alpha' || t.dst !== 'beta' || !own.has(t.train_id));
    return foreign.length > 0 ? `other data: ${JSON.stringify(foreign).slice(0, 200)}` : null;
  }
  const series = body as unknown as Series;
  if (series.engine !== 'stamp' && series.engine !== 'icmp') return `engine ${String(series.engine)}`;
  const packets = series.packets.reduce((sum, n) => sum + n, 0);
  return packets > seededPackets(series.engine) ? `other data: ${packets} packets, alpha->beta ${series.engine} has ${seededPackets(series.engine)}` : null;
}

describe('SQL injection through the read API', () => {
  it('the seeded rows read back, so other data would be visible', async () => {
    const from = new Date(Date.now() - 600_000).toISOString();
    const trains = await getJson<{ trains: Train[] }>(`${server.url}/v1/links/alpha/beta/trains?from=${from}`, topo.operatorToken);
    expect(trains.body.trains.map((t) => t.train_id).sort()).toEqual(seeded.alphaBeta.map((t) => t.trainId).sort());
    const series = await getJson<Series>(`${server.url}/v1/links/alpha/beta/series`, topo.operatorToken);
    expect(series.body.packets.reduce((a, b) => a + b, 0)).toBe(seededPackets('stamp'));
    const other = await getJson<{ trains: Train[] }>(`${server.url}/v1/links/gamma/alpha/trains?from=${from}`, topo.operatorToken);
    expect(other.body.trains).toHaveLength(seeded.gammaAlpha.length);
  });

  it(`${INJECTIONS.length} injection strings x ${ENCODINGS.length} encodings through src, dst, from, to, limit, points, engine: 4xx or alpha->beta's own rows, never a 5xx`, async () => {
    const problems: string[] = [];
    const byStatus = new Map<string, number>();
    let requests = 0;
    for (const how of ENCODINGS) {
      for (const payload of INJECTIONS) {
        await Promise.all(attempts(payload, how).map(async (attempt) => {
          const response = await fetch(`${server.url}${attempt.path}`, { headers: { authorization: `Bearer ${topo.operatorToken}` } });
          const text = await response.text();
          requests++;
          const key = `${attempt.target.replace(/ \(.*\)$/, '')}: ${response.status}`;
          byStatus.set(key, (byStatus.get(key) ?? 0) + 1);
          const problem = judge(attempt, response.status, text);
          if (problem) problems.push(`${attempt.target} [${how}] ${JSON.stringify(payload)} -> ${problem}`);
        }));
      }
    }
    console.log(`SQL injection via the API: ${requests} requests\n${[...byStatus.entries()].sort().map(([k, n]) => `    ${k} x${n}`).join('\n')}`);
    expect(problems).toEqual([]);
  });

  it('injection strings as the access token are refused (401) and reach no query', async () => {
    for (const payload of INJECTIONS) {
      const r = await fetch(`${server.url}/v1/links/alpha/beta/trains?access_token=${encodeURIComponent(payload)}`);
      expect(r.status).toBe(401);
      // A header carries printable ASCII only; other payloads are covered by the query form.
      if (!/^[\x20-\x7e]+$/.test(payload)) continue;
      const r2 = await fetch(`${server.url}/v1/links/alpha/beta/trains`, { headers: { authorization: `Bearer ${payload}` } });
      expect(r2.status).toBe(401);
    }
  });

  it('from/to outside what ClickHouse can hold answer 400, not 500', async () => {
    // Date.parse accepts years -271821..275760 and bare numbers ("100" is year 100); the store holds 1900-2299.
    const cases = [
      '/v1/links/alpha/beta/trains?to=%2B275760-09-13T00:00:00Z',
      '/v1/links/alpha/beta/trains?from=-000100-01-01T00:00:00Z&to=-000100-01-02T00:00:00Z',
      '/v1/links/alpha/beta/trains?to=99999',
      '/v1/links/alpha/beta/series?to=100',
      '/v1/links/alpha/beta/series?from=1800-01-01T00:00:00Z&to=1800-01-02T00:00:00Z',
      '/v1/links/alpha/beta/series?from=1969-12-31T00:00:00Z&to=1970-01-01T00:00:01Z',
      '/v1/links/alpha/beta/series?to=%2B275760-09-13T00:00:00Z',
    ];
    const problems: string[] = [];
    for (const path of cases) {
      const r = await fetch(`${server.url}${path}`, { headers: { authorization: `Bearer ${topo.operatorToken}` } });
      const text = await r.text();
      if (r.status >= 500) problems.push(`${path} -> ${r.status} ${text}`);
    }
    expect(problems).toEqual([]);
  });
});

describe('SQL injection through ingest fields that are written', () => {
  /** Strings the protocol accepts as ids are harmless text once bound; only the rejected ones are sent. */
  const ID = /^[A-Za-z0-9._:-]{8,64}$/;
  const BATCH_ID = /^[A-Za-z0-9._:-]{1,128}$/;
  const fields = ['dst', 'trainId', 'batchId', 'engine'] as const;

  function poisoned(field: (typeof fields)[number], payload: string): Record<string, unknown> {
    const s = sample('beta', 'stamp', 5);
    const batch: Record<string, unknown> = { type: 'batch', batchId: `inj-${++seq}`, samples: [s] };
    if (field === 'batchId') batch.batchId = payload;
    else s[field] = payload;
    return batch;
  }

  function applicable(field: (typeof fields)[number], payload: string): boolean {
    if (field === 'trainId') return !ID.test(payload);
    if (field === 'batchId') return !BATCH_ID.test(payload);
    return true; // dst: only peers are accepted; engine: only stamp/icmp
  }

  it('over HTTP and WebSocket, every poisoned batch is refused with 4xx / an error, and the table holds exactly the seeded rows', async () => {
    const problems: string[] = [];
    const codes = new Map<string, number>();
    let sent = 0;
    const client = await RawClient.open(server.wsUrl);
    client.send({ type: 'hello', centre: 'alpha', token: topo.tokens.alpha, version: 'sqli' });
    expect(await client.next()).toMatchObject({ type: 'plan' });
    try {
      for (const field of fields) {
        for (const payload of INJECTIONS.filter((p) => applicable(field, p))) {
          const batch = poisoned(field, payload);
          const http = await ingest('alpha', batch);
          sent++;
          if (http.status < 400 || http.status >= 500) problems.push(`HTTP ${field}=${JSON.stringify(payload)} -> ${http.status} ${JSON.stringify(http.body)}`);
          codes.set(`http ${String(http.body.code)}`, (codes.get(`http ${String(http.body.code)}`) ?? 0) + 1);
          client.send(batch);
          const reply = await client.next<{ type: string; code: string; error: string }>();
          sent++;
          if (reply.type !== 'error' || !reply.error) problems.push(`WS ${field}=${JSON.stringify(payload)} -> ${JSON.stringify(reply)}`);
          codes.set(`ws ${reply.code}`, (codes.get(`ws ${reply.code}`) ?? 0) + 1);
        }
      }
    } finally {
      client.ws.terminate();
    }
    console.log(`SQL injection via ingest fields: ${sent} batches refused\n${[...codes.entries()].sort().map(([k, n]) => `    ${k} x${n}`).join('\n')}`);
    expect(problems).toEqual([]);
  });

  it('afterwards the tables exist and hold exactly the seeded rows; the API still serves them', async () => {
    for (const table of ['latency_trains', 'latency_1m', 'schema_migrations']) {
      const r = await server.store.client.query({ query: `EXISTS TABLE ${table}`, format: 'JSONEachRow' });
      expect(await r.json(), table).toEqual([{ result: 1 }]);
    }
    const expected = [...seeded.alphaBeta.map((t) => t.trainId), ...seeded.gammaAlpha].sort();
    expect(await storedTrainIds()).toEqual(expected);
    const ready = await getJson<{ status: string }>(`${server.url}/readyz`);
    expect(ready).toMatchObject({ status: 200, body: { status: 'ready' } });
    const from = new Date(Date.now() - 600_000).toISOString();
    const trains = await getJson<{ trains: Train[] }>(`${server.url}/v1/links/alpha/beta/trains?from=${from}`, topo.operatorToken);
    expect(trains.body.trains.map((t) => t.train_id).sort()).toEqual(seeded.alphaBeta.map((t) => t.trainId).sort());
    console.log(`after every attempt: latency_trains holds ${expected.length} rows, exactly the seeded ones`);
  });
});
