// @ts-check
/**
 * The live feed: CLIENTS dashboards on WS /v1/live (operator token in
 * ?access_token=, as browsers send it) while a writer stores one train per
 * direction per second for every centre in PROBE_TOKENS through
 * POST /v1/ingest (all centres: 380 directions at 20 centres). The writer
 * stamps each train with the time it posts it (flow 63 marks load-test
 * trains); a client's delay is its receive time minus that stamp, so it covers
 * the collector, the INSERT and the fan-out. Writer and clients share k6's
 * clock, so the figure holds wherever k6 runs.
 *
 *   k6 run -e BASE_URL=https://citymesh.example -e OPERATOR_TOKEN=… \
 *          -e PROBE_TOKENS='{"a":"…","b":"…"}' -e CLIENTS=500 test/load/live.js
 *
 * Target (issue 7): p99 delay < 50 ms with 500 clients.
 */
import http from 'k6/http';
import ws from 'k6/ws';
import { check, sleep } from 'k6';
import { Counter, Trend } from 'k6/metrics';
import exec from 'k6/execution';
import { BASE_URL, LOAD_FLOW, env, peersOf, probeTokens, sample } from './lib.js';

const CLIENTS = Number(env('CLIENTS', '500'));
const SECONDS = Number(env('SECONDS', '60'));
const delay = new Trend('live_delay', true);
const deliveries = new Counter('live_deliveries');

/** @type {import('k6/options').Options} */
export const options = {
  scenarios: {
    clients: { executor: 'per-vu-iterations', vus: CLIENTS, iterations: 1, exec: 'client', maxDuration: `${SECONDS + 60}s` },
    writer: { executor: 'constant-arrival-rate', rate: 1, timeUnit: '1s', duration: `${SECONDS}s`, startTime: '10s',
      preAllocatedVUs: 5, maxVUs: 20, exec: 'writer' },
  },
  thresholds: {
    live_delay: ['p(99)<50', 'p(50)<25'],
    'checks{kind:connect}': ['rate>0.99'],
  },
};

export function setup() {
  const tokens = probeTokens();
  const res = http.get(`${BASE_URL}/v1/links`, { headers: { authorization: `Bearer ${env('OPERATOR_TOKEN')}` } });
  const links = /** @type {{links: Array<{a: string, b: string}>}} */ (/** @type {unknown} */ (res.json())).links;
  return Object.keys(tokens).map((centre) => ({ centre, token: tokens[centre], peers: peersOf(links, centre) }));
}

export function client() {
  const url = `${BASE_URL.replace(/^http/, 'ws')}/v1/live?access_token=${encodeURIComponent(env('OPERATOR_TOKEN'))}`;
  const res = ws.connect(url, {}, (socket) => {
    socket.on('message', (data) => {
      const m = JSON.parse(data);
      // One frame per stored batch ({type:'trains', trains:[…]}).
      const trains = m.type === 'trains' ? m.trains : m.type === 'train' ? [m] : [];
      for (const t of trains) {
        if (t.flow !== LOAD_FLOW) continue;
        delay.add(Date.now() - t.t * 1000);
        deliveries.add(1);
      }
    });
    socket.setTimeout(() => socket.close(), (SECONDS + 15) * 1000);
  });
  check(res, { 'live feed accepted the client (101)': (r) => r !== null && r.status === 101 }, { kind: 'connect' });
}

/** @param {Array<{centre: string, token: string, peers: string[]}>} probes */
export function writer(probes) {
  // One batch per centre per second, spread over the second like real probes.
  const n = exec.scenario.iterationInTest;
  probes.forEach((probe) => {
    sleep(1 / probes.length / 2);
    const batchId = `k6live-${n}-${probe.centre}-${Date.now()}`;
    const nowUs = Date.now() * 1000;
    const samples = probe.peers.map((peer, k) => sample(`${batchId}.${k}`, peer, nowUs));
    http.post(`${BASE_URL}/v1/ingest`, JSON.stringify({ type: 'batch', batchId, createdAtUs: nowUs, samples }), {
      headers: { authorization: `Bearer ${probe.token}`, 'content-type': 'application/json' },
      tags: { name: 'live_writer' },
    });
  });
}
