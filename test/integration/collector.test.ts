/**
 * The collector against a real server: bad input of every kind is refused
 * with an error naming the problem and writes nothing; a good batch is stored
 * once (even when retried) and reads back through the API unchanged.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_BATCH_SAMPLES, type TrainSample } from '../../protocol/index.js';
import { latestVersion } from '../../sql/index.js';
import { RawClient } from '../helpers/ws-client.js';
import { getJson, startTestServer, testTopology, type TestServer } from '../helpers/stack.js';

const topo = testTopology(['alpha', 'beta', 'gamma'], '127.0.3');
let server: TestServer;

beforeAll(async () => {
  server = await startTestServer(topo.topology);
});
afterAll(async () => {
  await server?.stop();
});

async function rowCount(): Promise<number> {
  const result = await server.store.client.query({ query: 'SELECT count() AS n FROM latency_trains', format: 'JSONEachRow' });
  const [row] = await result.json<{ n: number }>();
  return Number(row!.n);
}

async function hello(centre = 'alpha', token = topo.tokens.alpha): Promise<RawClient> {
  const client = await RawClient.open(server.wsUrl);
  client.send({ type: 'hello', centre, token, version: 'test' });
  return client;
}

/** RTTs exactly representable as Float32, so "identical" can be checked exactly. */
const rtts = [41.5, 39.25, 40.125, 1000.5, 38.75];

let trainSeq = 0;
function sample(overrides: Partial<TrainSample> = {}): TrainSample {
  return {
    trainId: `train-${process.pid}-${++trainSeq}`,
    dst: 'beta', engine: 'stamp', startedAtUs: Date.now() * 1000 - 5_000_000, flow: 0, srcPort: 40000, dscp: 46,
    sent: 6, received: 5, lost: 1, duplicated: 0, reordered: 1,
    rttMinUs: 38.75, rttMedianUs: 40.125, rttP99Us: 1000.5, rttMaxUs: 1000.5, jitterUs: 12.5,
    rttsUs: rtts, synced: false, errorEstimateUs: 1000, fwdUs: [], revUs: [],
    ...overrides,
  };
}

describe('collector: bad input', () => {
  it('refuses a bad token and an unknown centre, closing only that connection', async () => {
    const badToken = await hello('alpha', 'wrong-token');
    expect(await badToken.next()).toMatchObject({ type: 'error', code: 'bad_token', field: 'token' });
    expect((await badToken.waitClosed()).code).toBe(4401);

    const unknown = await hello('nowhere', 'x');
    const error = await unknown.next<{ error: string }>();
    expect(error).toMatchObject({ type: 'error', code: 'unknown_centre', field: 'centre' });
    expect(error.error).toContain('nowhere');
    expect((await unknown.waitClosed()).code).toBe(4401);

    const health = await getJson<{ status: string }>(`${server.url}/healthz`);
    expect(health.body.status).toBe('ok');
  });

  it('refuses batches before hello', async () => {
    const client = await RawClient.open(server.wsUrl);
    client.send({ type: 'batch', batchId: 'early-1', samples: [sample()] });
    expect(await client.next()).toMatchObject({ type: 'error', code: 'not_authenticated', batchId: 'early-1' });
    client.close();
  });

  it('names the problem in malformed, unknown, mistyped, oversize and misaddressed messages; the connection survives', async () => {
    const client = await hello();
    expect(await client.next()).toMatchObject({ type: 'plan', centre: 'alpha' });

    client.send('{"type": "batch", ');
    const badJson = await client.next<{ code: string; error: string }>();
    expect(badJson.code).toBe('bad_json');
    expect(badJson.error).toMatch(/not valid JSON/);

    client.send({ type: 'teleport', batchId: 'x' });
    expect(await client.next()).toMatchObject({ type: 'error', code: 'unknown_type', field: 'type' });

    client.send({ type: 'batch', batchId: 'typed-1', samples: [{ ...sample(), sent: 'six' }] });
    const wrongType = await client.next<{ code: string; field: string; error: string; batchId: string }>();
    expect(wrongType).toMatchObject({ code: 'bad_message', field: 'samples[0].sent', batchId: 'typed-1' });
    expect(wrongType.error).toMatch(/samples\[0\]\.sent/);

    client.send({ type: 'batch', batchId: 'typed-2', samples: [sample({ rttsUs: [1, 2] })] });
    expect(await client.next()).toMatchObject({ code: 'bad_message', field: 'samples[0].rttsUs' });

    client.send({ type: 'batch', batchId: 'typed-3', samples: [sample({ lost: 0 })] });
    expect(await client.next()).toMatchObject({ code: 'bad_message', field: 'samples[0].lost' });

    const oversize = Array.from({ length: MAX_BATCH_SAMPLES + 1 }, () => sample());
    client.send({ type: 'batch', batchId: 'big-1', samples: oversize });
    expect(await client.next()).toMatchObject({ code: 'too_large', field: 'samples', batchId: 'big-1' });

    client.send({ type: 'batch', batchId: 'dst-1', samples: [sample(), sample({ dst: 'mars' })] });
    const badDst = await client.next<{ code: string; error: string }>();
    expect(badDst).toMatchObject({ code: 'unknown_destination', field: 'samples[1].dst' });
    expect(badDst.error).toContain('mars');

    client.send({ type: 'hello', centre: 'beta', token: topo.tokens.beta, version: 'x' });
    expect(await client.next()).toMatchObject({ code: 'already_authenticated' });

    expect(await rowCount()).toBe(0);

    // Still the same connection, still accepted.
    client.send({ type: 'batch', batchId: 'after-errors-1', samples: [sample({ dst: 'gamma' })] });
    expect(await client.next()).toMatchObject({ type: 'ack', batchId: 'after-errors-1', stored: 1 });
    expect(await rowCount()).toBe(1);
    client.close();
  });
});

describe('collector: limits', () => {
  it('refuses a third connection for one centre, and closes one that sends more than 4 MiB', async () => {
    const first = await hello('gamma', topo.tokens.gamma);
    const second = await hello('gamma', topo.tokens.gamma);
    expect(await first.next()).toMatchObject({ type: 'plan' });
    expect(await second.next()).toMatchObject({ type: 'plan' });
    const third = await hello('gamma', topo.tokens.gamma);
    expect(await third.next()).toMatchObject({ type: 'error', code: 'too_many_connections', field: 'centre' });
    expect((await third.waitClosed()).code).toBe(4429);
    first.close();

    second.send('x'.repeat(4 * 1024 * 1024 + 1));
    expect((await second.waitClosed()).code).toBe(1009); // RFC 6455: message too big
    expect((await getJson<{ status: string }>(`${server.url}/healthz`)).body.status).toBe('ok');
  });
});

describe('collector: storage', () => {
  it('stores a retried batch once and serves its raw RTTs back unchanged through the API', async () => {
    const client = await hello();
    await client.next();
    const startedAtUs = Date.now() * 1000 - 60_000_000;
    const batch = { type: 'batch', batchId: 'retry-me-1', samples: [sample({ startedAtUs }), sample({ startedAtUs, flow: 1, srcPort: 40001 })] };
    client.send(batch);
    expect(await client.next()).toMatchObject({ type: 'ack', batchId: 'retry-me-1', stored: 2 });
    client.send(batch); // the probe did not see the ack and sends again
    expect(await client.next()).toMatchObject({ type: 'ack', batchId: 'retry-me-1' });
    client.close();

    const from = new Date(startedAtUs / 1000 - 1000).toISOString();
    const to = new Date(startedAtUs / 1000 + 1000).toISOString();
    const { status, body } = await getJson<{ trains: { rtts_us: number[]; flow: number; src: string; batch_id: string }[] }>(
      `${server.url}/v1/links/alpha/beta/trains?from=${from}&to=${to}`,
      topo.operatorToken,
    );
    expect(status).toBe(200);
    expect(body.trains).toHaveLength(2);
    for (const train of body.trains) {
      expect(train.src).toBe('alpha');
      expect(train.batch_id).toBe('retry-me-1');
      expect(train.rtts_us).toEqual(rtts);
    }
    const rollup = await server.store.client.query({
      query: "SELECT sum(trains) AS trains, sum(sent) AS sent FROM latency_1m WHERE src = 'alpha' AND dst = 'beta'",
      format: 'JSONEachRow',
    });
    expect(await rollup.json()).toEqual([{ trains: 2, sent: 12 }]);
  });

  it('reports readiness with the schema version', async () => {
    const { status, body } = await getJson<{ status: string; store: string; schemaVersion: number }>(`${server.url}/readyz`);
    expect(status).toBe(200);
    expect(body).toEqual({ status: 'ready', store: 'embedded', schemaVersion: latestVersion });
  });

  it('answers API misuse with JSON errors that give the reason', async () => {
    const unknown = await getJson<{ error: string; reason: string }>(`${server.url}/v1/links/alpha/pluto/series`, topo.operatorToken);
    expect(unknown.status).toBe(404);
    expect(unknown.body.reason).toContain('pluto');
    const badRange = await getJson<{ reason: string }>(`${server.url}/v1/links/alpha/beta/series?from=yesterday`, topo.operatorToken);
    expect(badRange.status).toBe(400);
    expect(badRange.body.reason).toMatch(/^from:/);
    const badPoints = await getJson<{ reason: string }>(`${server.url}/v1/links/alpha/beta/series?points=0`, topo.operatorToken);
    expect(badPoints.status).toBe(400);
    expect(badPoints.body.reason).toMatch(/^points:/);
    const noRoute = await getJson<{ error: string }>(`${server.url}/v1/nothing-here`, topo.operatorToken);
    expect(noRoute.status).toBe(404);
    expect(noRoute.body.error).toBe('not_found');
  });
});
