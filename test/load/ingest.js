// @ts-check
/**
 * HTTP ingest (POST /v1/ingest, the probe protocol's fallback): each
 * iteration posts one batch of BATCH trains of 100 RTTs as one centre.
 * The collector answers 200 only once ClickHouse stored the batch, so the
 * request duration is the ingest-to-queryable lag.
 *
 *   k6 run -e BASE_URL=https://citymesh.example -e PROBE_TOKENS='{"a":"…","b":"…"}' \
 *          -e OPERATOR_TOKEN=… -e RATE=10 -e BATCH=1000 test/load/ingest.js
 *
 * Targets (issue 7): ≥ 10,000 trains/s sustained; p99 lag < 2 s.
 * RATE batches/s × BATCH trains = offered trains/s (default 10 × 1000).
 * The server limits HTTP requests per client address (50/s, burst 200).
 */
import http from 'k6/http';
import { check } from 'k6';
import { Counter } from 'k6/metrics';
import exec from 'k6/execution';
import { BASE_URL, env, peersOf, probeTokens, sample } from './lib.js';

const RATE = Number(env('RATE', '10'));
const BATCH = Number(env('BATCH', '1000'));
const trainsStored = new Counter('trains_stored');

/** @type {import('k6/options').Options} */
export const options = {
  scenarios: {
    ingest: {
      executor: 'constant-arrival-rate',
      rate: RATE,
      timeUnit: '1s',
      duration: env('DURATION', '1m'),
      preAllocatedVUs: Math.max(4, RATE * 3),
      maxVUs: Math.max(8, RATE * 10),
    },
  },
  thresholds: {
    // Stored trains per second over the run (≥ 10,000 trains/s = 1,000,000 RTTs/s).
    trains_stored: [`rate>=${Number(env('TARGET_TRAINS_PER_S', '10000'))}`],
    // Ingest-to-queryable lag: the answer comes only after the INSERT.
    'http_req_duration{name:ingest}': ['p(99)<2000'],
    checks: ['rate>0.99'],
  },
};

export function setup() {
  const tokens = probeTokens();
  const res = http.get(`${BASE_URL}/v1/links`, { headers: { authorization: `Bearer ${env('OPERATOR_TOKEN')}` } });
  const links = /** @type {{links: Array<{a: string, b: string}>}} */ (/** @type {unknown} */ (res.json())).links;
  return Object.keys(tokens).map((centre) => ({ centre, token: tokens[centre], peers: peersOf(links, centre) }));
}

/** @param {Array<{centre: string, token: string, peers: string[]}>} probes */
export default function (probes) {
  const n = exec.scenario.iterationInTest;
  const probe = probes[n % probes.length];
  const batchId = `k6-${exec.vu.idInTest}-${n}-${Date.now()}`;
  const nowUs = Date.now() * 1000;
  const samples = [];
  for (let i = 0; i < BATCH; i++) samples.push(sample(`${batchId}.${i}`, probe.peers[i % probe.peers.length], nowUs - BATCH + i));
  const res = http.post(`${BASE_URL}/v1/ingest`, JSON.stringify({ type: 'batch', batchId, createdAtUs: nowUs, samples }), {
    headers: { authorization: `Bearer ${probe.token}`, 'content-type': 'application/json' },
    tags: { name: 'ingest' },
    timeout: '30s',
  });
  const ok = check(res, { 'stored (200 ack)': (r) => r.status === 200 });
  if (ok) trainsStored.add(BATCH);
}
