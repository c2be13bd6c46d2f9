/**
 * The alerts API on a real server: every route for every role (operators
 * only: a regulator or probe gets 403, no or a wrong token 401), and the
 * checks on what operators send, each error naming the field.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AlertsResponse, SilencesResponse, SilenceView } from '../../api/contract.js';
import { parseTopology } from '../../topology/index.js';
import { startTestServer, testTopology, type TestServer } from '../helpers/stack.js';

const base = testTopology(['alfa', 'bravo'], '127.0.73');
const topology = parseTopology(`${base.yaml}alerts:\n  external_url: https://noc.example\n`, 'alerts-api.yaml');
let server: TestServer;

beforeAll(async () => {
  server = await startTestServer(topology);
});
afterAll(async () => {
  await server?.stop();
});

async function call(method: string, path: string, token: string | null, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const headers: Record<string, string> = token ? { authorization: `Bearer ${token}` } : {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(`${server.url}${path}`, {
    method, headers, ...(body !== undefined ? { body: typeof body === 'string' ? body : JSON.stringify(body) } : {}),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

const silenceFor = (link: string) => ({
  matchers: [{ name: 'alertname', value: 'LinkDown' }, { name: 'link', value: link }],
  duration: '1h',
  comment: 'planned fibre work',
});

describe('alerts API: who may use it', () => {
  const routes: [string, string, () => unknown][] = [
    ['GET', '/v1/alerts', () => undefined],
    ['GET', '/v1/alerts/events', () => undefined],
    ['GET', '/v1/alerts/silences', () => undefined],
    ['POST', '/v1/alerts/silences', () => silenceFor('alfa~bravo')],
    ['DELETE', '/v1/alerts/silences/00000000-0000-4000-8000-000000000000', () => undefined],
  ];
  const who: [string, () => string | null, number][] = [
    ['anonymous', () => null, 401],
    ['an unknown token', () => 'not-a-citymesh-token', 401],
    ['a regulator', () => base.regulatorToken, 403],
    ['a probe', () => base.tokens.alfa!, 403],
  ];

  it.each(routes.flatMap(([method, path, body]) => who.map(([name, token, status]) => [method, path, name, status, token, body] as const)))(
    '%s %s as %s -> %i',
    async (method, path, _name, status, token, body) => {
      const r = await call(method, path, token(), body());
      expect(r.status).toBe(status);
      expect(r.body.error).toBe(status === 401 ? 'unauthorized' : 'forbidden');
    },
  );

  it('lets an operator read, silence and expire', async () => {
    const alerts = await call('GET', '/v1/alerts', base.operatorToken);
    expect(alerts.status).toBe(200);
    expect(alerts.body as unknown as AlertsResponse).toMatchObject({ enabled: true, resolved: [] });
    expect(Array.isArray(alerts.body.alerts)).toBe(true);

    const created = await call('POST', '/v1/alerts/silences', base.operatorToken, silenceFor('alfa~bravo'));
    expect(created.status).toBe(201);
    const silence = created.body as unknown as SilenceView;
    expect(silence).toMatchObject({ state: 'active', createdBy: 'test operator', comment: 'planned fibre work' });
    expect(silence.matchers).toEqual([
      { name: 'alertname', value: 'LinkDown', isRegex: false, isEqual: true },
      { name: 'link', value: 'alfa~bravo', isRegex: false, isEqual: true },
    ]);
    expect(Date.parse(silence.endsAt) - Date.parse(silence.startsAt)).toBe(3_600_000);

    const listed = await call('GET', '/v1/alerts/silences', base.operatorToken);
    expect((listed.body as unknown as SilencesResponse).silences.map((s) => [s.id, s.state])).toContainEqual([silence.id, 'active']);

    const expired = await call('DELETE', `/v1/alerts/silences/${silence.id}`, base.operatorToken);
    expect(expired.status).toBe(200);
    expect(expired.body).toMatchObject({ id: silence.id, state: 'expired' });
    const after = (await call('GET', '/v1/alerts/silences', base.operatorToken)).body as unknown as SilencesResponse;
    expect(after.silences.filter((s) => s.id === silence.id).map((s) => s.state)).toEqual(['expired']); // a new version, not a second silence
    expect((await call('DELETE', `/v1/alerts/silences/${silence.id}`, base.operatorToken)).body).toMatchObject({ state: 'expired' });

    const events = await call('GET', '/v1/alerts/events?link=bravo~alfa', base.operatorToken);
    expect(events.status).toBe(200);
    expect(events.body).toMatchObject({ link: 'alfa~bravo', events: [] });
  });
});

describe('alerts API: what operators send', () => {
  const refused = async (body: unknown, reason: RegExp | string) => {
    const r = await call('POST', '/v1/alerts/silences', base.operatorToken, body);
    expect(r.status, JSON.stringify(r.body)).toBe(400);
    expect(r.body.error).toBe('bad_request');
    if (typeof reason === 'string') expect(r.body.reason).toBe(reason);
    else expect(r.body.reason).toMatch(reason);
  };

  it('names the field of every bad silence', async () => {
    const ok = silenceFor('alfa~bravo');
    await refused('{"matchers": [', 'body: must be JSON {matchers, startsAt?, endsAt | duration, comment}');
    await refused({ ...ok, matchers: [] }, 'matchers: a silence needs at least one matcher');
    await refused({ ...ok, matchers: [{ name: '1link', value: 'x' }] }, /^matchers\[0\]\.name: "1link" is not a label name/);
    await refused({ ...ok, matchers: [{ name: 'link', value: 'x', isRegex: 'yes' }] }, /^matchers\[0\]\.isRegex: /);
    await refused({ ...ok, matchers: [{ name: 'link', value: '(', isRegex: true }] }, /^matchers\[0\]\.value: not a valid regular expression/);
    await refused({ ...ok, matchers: [{ name: 'link', value: '.*', isRegex: true }] }, /^matchers: at least one matcher must not match the empty string/);
    await refused({ ...ok, comment: '  ' }, 'comment: say why the alert is silenced');
    await refused({ ...ok, duration: undefined }, 'endsAt: required (or give a duration such as "1h")');
    await refused({ ...ok, duration: 'forever' }, 'duration: "forever" is not a positive duration like "30m", "1h" or "2d"');
    await refused({ ...ok, endsAt: '2030-01-01T00:00:00Z' }, 'endsAt, duration: give one of them, not both');
    await refused({ ...ok, duration: undefined, startsAt: '2000-06-01T00:00:00Z', endsAt: '2001-01-01T00:00:00Z' }, 'endsAt: must be in the future');
    await refused({ ...ok, startsAt: '2030-01-02T00:00:00Z', duration: undefined, endsAt: '2030-01-01T00:00:00Z' }, 'endsAt: must be after startsAt');
    await refused({ ...ok, duration: '100d' }, 'endsAt: a silence lasts at most 90 days');
    await refused({ ...ok, endsAt: 'tomorrow', duration: undefined }, /^endsAt: must be an ISO-8601 time/);
    await refused({ ...ok, colour: 'red' }, /^body: Unrecognized key/);
  });

  it('checks the events query and the silence id', async () => {
    const bad = async (path: string, status: number, reason: RegExp) => {
      const r = await call(path.startsWith('DELETE ') ? 'DELETE' : 'GET', path.replace(/^DELETE /, ''), base.operatorToken);
      expect(r.status).toBe(status);
      expect(r.body.reason).toMatch(reason);
    };
    await bad('/v1/alerts/events?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z', 400, /^from: must be before to/);
    await bad('/v1/alerts/events?from=yesterday', 400, /^from: must be an ISO-8601 time/);
    await bad('/v1/alerts/events?link=alfa-bravo', 400, /^link: must be a link id "a~b"/);
    await bad('/v1/alerts/events?link=alfa~zulu', 404, /^link: no link "alfa~zulu"/);
    await bad('/v1/alerts/events?limit=0', 400, /^limit: /);
    await bad('DELETE /v1/alerts/silences/nope', 400, /^id: "nope" is not a silence id/);
    await bad('DELETE /v1/alerts/silences/00000000-0000-4000-8000-000000000000', 404, /^no silence "00000000-/);
  });
});
