// @ts-check
// Shared by the k6 scripts: settings from the environment (`k6 run -e NAME=…`)
// and synthetic trains in the probe protocol's shape (protocol/wire.ts).

/** @param {string} name @param {string} [fallback] @returns {string} */
export function env(name, fallback) {
  const v = __ENV[name];
  if (v !== undefined && v !== '') return v;
  if (fallback !== undefined) return fallback;
  throw new Error(`set ${name} (k6 run -e ${name}=…)`);
}

export const BASE_URL = env('BASE_URL', 'http://127.0.0.1:8080').replace(/\/$/, '');

/**
 * Probe tokens by centre, as JSON: {"lingang":"…","jinshan":"…"}. Load-test
 * trains are real rows in that centre's data: use a staging deployment, or
 * centres kept for testing.
 * @returns {Record<string, string>}
 */
export function probeTokens() {
  return /** @type {Record<string, string>} */ (JSON.parse(env('PROBE_TOKENS')));
}

/** Trains written by these scripts use flow 63, so readers can tell them from real probes' trains. */
export const LOAD_FLOW = 63;

const RTTS = Array.from({ length: 100 }, (_, i) => 300 + ((i * 37) % 400) + (i === 97 ? 2000 : 0));
const SORTED = [...RTTS].sort((a, b) => a - b);

/**
 * One train sample of 100 RTTs, valid for the collector.
 * @param {string} trainId 8-64 characters of A-Z a-z 0-9 . _ : -
 * @param {string} dst a centre linked to the sender
 * @param {number} startedAtUs Unix µs (must be within the last 399 days and at most 10 minutes ahead)
 */
export function sample(trainId, dst, startedAtUs) {
  return {
    trainId, dst, engine: 'stamp', startedAtUs: Math.round(startedAtUs), flow: LOAD_FLOW, srcPort: 40063, dscp: 46,
    sent: 100, received: 100, lost: 0, duplicated: 0, reordered: 0,
    rttMinUs: SORTED[0], rttMedianUs: SORTED[50], rttP99Us: SORTED[98], rttMaxUs: SORTED[99], jitterUs: 180,
    rttsUs: RTTS, synced: false, errorEstimateUs: 1000000, fwdUs: [], revUs: [],
  };
}

/**
 * Peers of `centre` from GET /v1/links (operator or regulator token).
 * @param {Array<{a: string, b: string}>} links
 * @param {string} centre
 * @returns {string[]}
 */
export function peersOf(links, centre) {
  return links.filter((l) => l.a === centre || l.b === centre).map((l) => (l.a === centre ? l.b : l.a));
}
