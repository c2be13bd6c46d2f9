/**
 * The server's wiring between alerts and diagnostics: a link alert that fires
 * stores a diagnostics request for both ends of the link (in ClickHouse, so it
 * reaches the probes whichever server they are connected to), once per firing
 * episode; a centre alert (probe silent) requests nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseTopology } from '../../topology/index.js';
import { diagnosticRequestsSince, insertTrains } from '../../sql/index.js';
import { train } from '../helpers/sla-month.js';
import { startTestServer, testTopology, type TestServer } from '../helpers/stack.js';

const base = testTopology(['alfa', 'bravo', 'charlie'], '127.0.73');
const topology = parseTopology(`${base.yaml}alerts:
  rules:
    latency: { for: 30s }
    probe_silent: { for: 60s }
`, 'alert-diagnostics.yaml');

let server: TestServer;
const startUs = Date.now() * 1000;

beforeAll(async () => {
  server = await startTestServer(topology);
  await server.alerts.stop(); // the test drives evaluation with its own clock
  // alfa~bravo: 9 ms p99 (target 5 ms) for the last two minutes, both ways; alfa~charlie and bravo~charlie healthy.
  const rows = [];
  for (let s = -120; s <= 0; s += 5) {
    const tsUs = startUs + s * 1e6;
    rows.push(train('alfa', 'bravo', tsUs, 9000), train('bravo', 'alfa', tsUs, 9000));
    rows.push(train('alfa', 'charlie', tsUs, 400), train('charlie', 'alfa', tsUs, 400));
    rows.push(train('bravo', 'charlie', tsUs, 400), train('charlie', 'bravo', tsUs, 400));
  }
  await insertTrains(server.store.client, rows, 'alert-diagnostics');
});

afterAll(async () => {
  await server?.stop();
});

describe('a firing link alert', () => {
  it('requests diagnostics on both ends of the link, once per episode', async () => {
    const nowMs = startUs / 1000;
    await server.alerts.evaluate(nowMs - 40_000);
    await server.alerts.evaluate(nowMs);
    await server.alerts.evaluate(nowMs + 5_000); // still firing: no second request
    // An evaluation returns once the requests its new alerts made are stored, so
    // a second (wrong) request would already be here: no waiting to prove absence.
    const requests = await diagnosticRequestsSince(server.store.client, startUs - 300e6);
    expect(requests).toHaveLength(1);
    expect(requests[0]).toMatchObject({ a: 'alfa', b: 'bravo', requestedBy: 'alert LinkLatencyHigh' });
    expect(requests[0]!.requestId).toMatch(/^dr-alert-/);
  });
});
