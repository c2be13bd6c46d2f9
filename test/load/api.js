// @ts-check
/**
 * The API operators use most, with an operator token: latest status of every
 * link, the matrix (what the dashboard loads to draw it), a link's 24 h and
 * 30 d series. One request set per iteration, links chosen round robin.
 *
 *   k6 run -e BASE_URL=https://citymesh.example -e OPERATOR_TOKEN=… test/load/api.js
 *
 * Targets (issue 7): p99 < 50 ms for status and the matrix, < 200 ms for the
 * 30-day series (the 24 h series is held to the same 200 ms).
 */
import http from 'k6/http';
import { check, group } from 'k6';
import exec from 'k6/execution';
import { BASE_URL, env } from './lib.js';

/** @type {import('k6/options').Options} */
export const options = {
  scenarios: {
    operators: {
      executor: 'constant-vus',
      vus: Number(env('VUS', '5')),
      duration: env('DURATION', '1m'),
    },
  },
  thresholds: {
    'http_req_duration{name:status}': ['p(99)<50'],
    'group_duration{group:::matrix}': ['p(99)<50'],
    'http_req_duration{name:series_24h}': ['p(99)<200'],
    'http_req_duration{name:series_30d}': ['p(99)<200'],
    checks: ['rate>0.99'],
  },
};

const params = (/** @type {string} */ name) => ({ headers: { authorization: `Bearer ${env('OPERATOR_TOKEN')}` }, tags: { name } });

export function setup() {
  const res = http.get(`${BASE_URL}/v1/links`, params('links'));
  const links = /** @type {{links: Array<{a: string, b: string}>}} */ (/** @type {unknown} */ (res.json())).links;
  if (!links.length) throw new Error('the topology has no links');
  return links.flatMap((l) => [[l.a, l.b], [l.b, l.a]]);
}

/** @param {string[][]} directions */
export default function (directions) {
  const [src, dst] = directions[exec.scenario.iterationInTest % directions.length];
  const ok = (/** @type {import('k6/http').RefinedResponse<any>} */ r) => r.status === 200;
  check(http.get(`${BASE_URL}/v1/status`, params('status')), { 'status 200': ok });
  group('matrix', () => {
    const responses = http.batch([
      ['GET', `${BASE_URL}/v1/centres`, null, params('centres')],
      ['GET', `${BASE_URL}/v1/links`, null, params('links')],
      ['GET', `${BASE_URL}/v1/status`, null, params('matrix_status')],
    ]);
    check(responses, { 'matrix 200': (rs) => rs.every((r) => r.status === 200) });
  });
  const to = new Date();
  for (const [name, hours] of /** @type {Array<[string, number]>} */ ([['series_24h', 24], ['series_30d', 720]])) {
    const from = new Date(to.getTime() - hours * 3600e3);
    const url = `${BASE_URL}/v1/links/${src}/${dst}/series?from=${from.toISOString()}&to=${to.toISOString()}&points=600`;
    check(http.get(url, params(name)), { [`${name} 200`]: ok });
  }
}
