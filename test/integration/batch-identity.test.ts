/**
 * What a batch id and a train id mean, tested by sending the conflicting and
 * poisoned batches for real (HTTP ingest and the probe WebSocket) to a running
 * server: an ack always means every record of the batch is stored; nothing is
 * stored twice; nothing one centre sent makes another centre's data vanish;
 * and text the store would refuse is refused at validation, naming the field,
 * never answered with a 5xx or retried forever.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, parseTopology } from '../../topology/index.js';
import { type LiveTrain } from '../../collector/index.js';
import { type TrainSample } from '../../protocol/index.js';
import { duplicateTrainIds } from '../../sql/index.js';
import { HealthWatch, printAttackSummary, requestFrom, type AttackFigures } from '../helpers/hostile.js';
import { startTestServer, testAgent, testTopology, waitFor, type TestServer } from '../helpers/stack.js';
import { RawClient } from '../helpers/ws-client.js';

const topo = testTopology(['alpha', 'beta', 'gamma'], '127.0.97');
let server: TestServer;
let seq = 0;
const figures: Record<string, AttackFigures> = {};
/** Acks received for batches whose records were then not all found stored: must stay 0. */
let acksForUnstoredData = 0;
let rowsFromBadInput = 0;

function sample(dst: string, trainId = `bi-${process.pid}-${++seq}`, startedAtUs = Date.now() * 1000 - 2e6, error?: string): TrainSample & { error?: string } {
  return {
    trainId, dst, engine: 'stamp', startedAtUs, flow: 0, srcPort: 40000, dscp: 46,
    sent: 4, received: 4, lost: 0, duplicated: 0, reordered: 0, rttMinUs: 300, rttMedianUs: 310, rttP99Us: 320, rttMaxUs: 320, jitterUs: 5,
    rttsUs: [300, 305, 315, 320], synced: false, errorEstimateUs: 1000, fwdUs: [], revUs: [],
    ...(error === undefined ? {} : { error }),
  };
}

async function ingest(centre: string, batchId: string, samples: unknown[], extra: Record<string, unknown> = {}): Promise<{ status: number; body: Record<string, unknown> }> {
  const r = await requestFrom(`${server.url}/v1/ingest`, {
    method: 'POST',
    headers: { authorization: `Bearer ${topo.tokens[centre]}`, 'content-type': 'application/json' },
    body: JSON.stringify({ type: 'batch', batchId, createdAtUs: Date.now() * 1000, samples, ...extra }),
  });
  return { status: r.status, body: JSON.parse(r.text) as Record<string, unknown> };
}

async function storedRows(src: string, trainIds: string[]): Promise<number> {
  const result = await server.store.client.query({
    query: 'SELECT count() AS n FROM latency_trains WHERE src = {src:String} AND train_id IN {ids:Array(String)}',
    query_params: { src, ids: trainIds }, format: 'JSONEachRow',
  });
  return Number((await result.json<{ n: number }>())[0]!.n);
}

/** Every ack's records must be stored: counted, then asserted zero at the end. */
async function checkAck(src: string, reply: { body: Record<string, unknown> }, trainIds: string[]): Promise<void> {
  if (reply.body.type === 'ack' && (await storedRows(src, trainIds)) < trainIds.length) acksForUnstoredData++;
}

beforeAll(async () => {
  server = await startTestServer(topo.topology);
});
afterAll(async () => {
  const duplicates = server ? await duplicateTrainIds(server.store.client) : [];
  await server?.stop();
  printAttackSummary('batch identity and poison strings: attacks per class and /healthz meanwhile', figures, {
    'acks for data not stored': acksForUnstoredData, 'rows stored from bad input': rowsFromBadInput, 'duplicate (src, train_id) rows': duplicates.length,
  });
  expect(acksForUnstoredData).toBe(0);
  expect(rowsFromBadInput).toBe(0);
});

describe('a batch id is bound to its content', () => {
  it('the same id with other content is refused batch_conflict (409), counted, and nothing of it is stored; the same content again is acked', async () => {
    const watch = new HealthWatch(server.url);
    let attacks = 0;
    for (let i = 0; i < 10; i++) {
      const first = [sample('beta')];
      const ok = await ingest('alpha', `bi-conflict-${i}`, first);
      expect(ok.status).toBe(200);
      await checkAck('alpha', ok, first.map((s) => s.trainId));
      const other = [sample('beta'), sample('gamma')];
      const conflict = await ingest('alpha', `bi-conflict-${i}`, other);
      attacks++;
      expect(conflict.status).toBe(409);
      expect(conflict.body).toMatchObject({ type: 'error', code: 'batch_conflict', field: 'batchId', batchId: `bi-conflict-${i}` });
      expect(String(conflict.body.error)).toMatch(/already stored with other content/);
      rowsFromBadInput += await storedRows('alpha', other.map((s) => s.trainId));
      // A resend of the original (a lost ack) is still acknowledged, and stored once.
      const again = await ingest('alpha', `bi-conflict-${i}`, first);
      expect(again.body).toMatchObject({ type: 'ack', stored: 1 });
    }
    const metrics = await requestFrom(`${server.url}/metrics`, { headers: { authorization: `Bearer ${topo.operatorToken}` } });
    expect(metrics.text).toMatch(/citymesh_batch_conflicts_total\{centre="alpha"\} 10/);
    figures['batch id reused with other content'] = { attacks, health: await watch.stop() };
  });

  it('over the WebSocket too: the conflicting batch gets its own error code and the connection goes on', async () => {
    const client = await RawClient.open(server.wsUrl);
    client.send({ type: 'hello', centre: 'beta', token: topo.tokens.beta, version: 'x' });
    expect(await client.next()).toMatchObject({ type: 'plan' });
    client.send({ type: 'batch', batchId: 'bi-ws', samples: [sample('alpha')] });
    expect(await client.next()).toMatchObject({ type: 'ack', batchId: 'bi-ws' });
    client.send({ type: 'batch', batchId: 'bi-ws', samples: [sample('alpha')] });
    expect(await client.next()).toMatchObject({ type: 'error', code: 'batch_conflict', batchId: 'bi-ws' });
    client.send({ type: 'batch', batchId: 'bi-ws-2', samples: [sample('alpha')] });
    expect(await client.next()).toMatchObject({ type: 'ack', batchId: 'bi-ws-2' });
    client.close();
  });

  it('a probe whose spool reuses a stored id sends the same records under a new id: refused once, then stored, nothing lost', async () => {
    const taken = await ingest('gamma', 'gamma.reused-id', [sample('alpha')]);
    expect(taken.status).toBe(200);
    // A spool restored from another host (or reset) holding a sealed batch under that id, with other records.
    const spoolDir = mkdtempSync(join(tmpdir(), 'citymesh-spool-reuse-'));
    const records = [sample('alpha'), sample('beta')];
    writeFileSync(join(spoolDir, 'batch-000000000-0000-abcdef.json'), JSON.stringify({ type: 'batch', batchId: 'gamma.reused-id', samples: records }));
    const agent = testAgent(server, topo, 'gamma', { spoolDir });
    await agent.start();
    try {
      await waitFor('the reused batch stored under a new id', async () => (await storedRows('gamma', records.map((s) => s.trainId))) === 2);
      await waitFor('the spool emptied', () => agent.stats().spool.batches === 0);
    } finally {
      await agent.stop();
    }
    const ids = await server.store.client.query({
      query: 'SELECT DISTINCT batch_id FROM latency_trains WHERE src = {src:String} AND train_id IN {ids:Array(String)}',
      query_params: { src: 'gamma', ids: records.map((s) => s.trainId) }, format: 'JSONEachRow',
    });
    const batchIds = (await ids.json<{ batch_id: string }>()).map((r) => r.batch_id);
    expect(batchIds).toHaveLength(1);
    expect(batchIds[0]).not.toBe('gamma.reused-id');
  });
});

describe('every de-duplication is keyed by the source centre', () => {
  it('a train id one centre stored does not make another centre\'s batch vanish, fresh or replayed; both reach the live feed', async () => {
    const watch = new HealthWatch(server.url);
    const live: LiveTrain[] = [];
    const unsubscribe = server.hub.subscribe((trains) => live.push(...trains));
    let attacks = 0;
    try {
      for (const ageUs of [2e6, 3 * 3600e6]) {
        const shared = `bi-shared-${++seq}`;
        const startedAtUs = Date.now() * 1000 - ageUs;
        const a = await ingest('alpha', `bi-a-${seq}`, [sample('beta', shared, startedAtUs)]);
        const b = await ingest('beta', `bi-b-${seq}`, [sample('alpha', shared, startedAtUs)]);
        attacks++;
        expect(a.body).toMatchObject({ type: 'ack' });
        expect(b.body).toMatchObject({ type: 'ack' });
        await checkAck('alpha', a, [shared]);
        await checkAck('beta', b, [shared]);
        expect(await storedRows('alpha', [shared])).toBe(1);
        expect(await storedRows('beta', [shared])).toBe(1);
        await waitFor('both centres\' trains on the live feed', () =>
          live.some((t) => t.trainId === shared && t.src === 'alpha') && live.some((t) => t.trainId === shared && t.src === 'beta'));
      }
    } finally {
      unsubscribe();
    }
    figures['train id shared across centres'] = { attacks, health: await watch.stop() };
  });

  it('one train id in two fresh batches of one centre is stored once; both batches are acked', async () => {
    const twice = sample('gamma');
    const first = await ingest('beta', `bi-twice-1-${seq}`, [twice, sample('gamma')]);
    const second = await ingest('beta', `bi-twice-2-${seq}`, [twice, sample('alpha')]);
    expect(first.body).toMatchObject({ type: 'ack', stored: 2 });
    expect(second.body).toMatchObject({ type: 'ack', stored: 2 });
    expect(await storedRows('beta', [twice.trainId])).toBe(1);
    // Sent at once on two connections: one is stored, the other deferred (busy) or found stored; never twice.
    const concurrent = sample('gamma');
    const replies = await Promise.all([1, 2, 3].map((n) => ingest('beta', `bi-concurrent-${n}-${seq}`, [concurrent])));
    for (const r of replies) expect(['ack', 'error']).toContain(r.body.type);
    for (const r of replies.filter((x) => x.body.type === 'error')) expect(r.body.code).toBe('busy');
    expect(await storedRows('beta', [concurrent.trainId])).toBe(1);
    expect(await duplicateTrainIds(server.store.client)).toEqual([]);
  });
});

describe('text the store would refuse is refused at validation, naming the field', () => {
  const LONE = ['\ud800', '\udfff', 'ok\ud83d', '\ude00x', 'a\udbff\udbffb'];

  it('in batches (HTTP and WebSocket): bad_message naming the field, not store_unavailable; nothing stored', async () => {
    const watch = new HealthWatch(server.url);
    let attacks = 0;
    const client = await RawClient.open(server.wsUrl);
    client.send({ type: 'hello', centre: 'alpha', token: topo.tokens.alpha, version: 'x' });
    expect(await client.next()).toMatchObject({ type: 'plan' });
    for (const [i, bad] of LONE.entries()) {
      const poisoned = [
        { samples: [sample('beta', `bi-poison-${i}${bad}`)], field: 'samples[0].trainId' },
        { samples: [sample('beta')], extra: { batchId: `bi-poison-id-${i}${bad}` }, field: 'batchId' },
        { samples: [], extra: { throughput: [{ error: bad }] }, field: 'throughput[0].error' },
      ];
      for (const p of poisoned) {
        const batchId = `bi-poison-${i}-${attacks}`;
        const http = await ingest('alpha', batchId, p.samples, p.extra ?? {});
        attacks++;
        expect(http.status, JSON.stringify(http.body)).toBe(400);
        expect(http.body).toMatchObject({ code: 'bad_message', field: p.field });
        expect(String(http.body.error)).toMatch(/lone UTF-16 surrogate/);
        client.ws.send(JSON.stringify({ type: 'batch', batchId, samples: p.samples, ...(p.extra ?? {}) }));
        attacks++;
        expect(await client.next()).toMatchObject({ type: 'error', code: 'bad_message', field: p.field });
        rowsFromBadInput += await storedRows('alpha', p.samples.map((s) => s.trainId));
      }
    }
    client.close();
    figures['lone surrogates in batches'] = { attacks, health: await watch.stop() };
  });

  it('in maintenance reasons, silences and every JSON body: 400 naming the field, never a 5xx; nothing stored', async () => {
    const watch = new HealthWatch(server.url);
    let attacks = 0;
    const op = { authorization: `Bearer ${topo.operatorToken}`, 'content-type': 'application/json' };
    const start = new Date(Date.now() + 3600_000).toISOString().slice(0, 17) + '00Z';
    const end = new Date(Date.now() + 7200_000).toISOString().slice(0, 17) + '00Z';
    for (const bad of LONE) {
      const cases: [string, unknown, string][] = [
        ['/v1/sla/maintenance', { link: 'alpha~beta', start, end, reason: `fibre ${bad}` }, 'reason'],
        ['/v1/alerts/silences', { matchers: [{ name: 'alertname', value: `x${bad}` }], duration: '1h', comment: 'c' }, 'matchers[0].value'],
        ['/v1/alerts/silences', { matchers: [{ name: 'alertname', value: 'x' }], duration: '1h', comment: bad }, 'comment'],
        ['/v1/links/alpha/beta/diagnostics', { [`k${bad}`]: 1 }, `k${bad}`.replace(/\p{Cs}/u, '')],
      ];
      for (const [path, body, field] of cases) {
        const r = await requestFrom(`${server.url}${path}`, { method: 'POST', headers: op, body: JSON.stringify(body) });
        attacks++;
        expect(r.status, `${path}: ${r.text}`).toBe(400);
        const reason = String((JSON.parse(r.text) as { reason: string }).reason);
        expect(reason).toMatch(/lone UTF-16 surrogate/);
        if (!path.endsWith('diagnostics')) expect(reason.startsWith(`${field}:`), reason).toBe(true);
      }
    }
    const windows = await server.store.client.query({ query: "SELECT count() AS n FROM sla_maintenance WHERE reason LIKE 'fibre %'", format: 'JSONEachRow' });
    rowsFromBadInput += Number((await windows.json<{ n: number }>())[0]!.n);
    // Junk in paths and queries, and malformed bodies: 4xx, never 5xx.
    const junk = ['%ED%A0%80', '%F0%9F', '%C0%AF', '%00', '..%2F..%2Fetc', 'a'.repeat(5000), '%uD800'];
    for (const j of junk) {
      for (const path of [`/v1/links/${j}/beta/series`, `/v1/links/alpha/beta/series?from=${j}`, `/v1/sla/months/${j}`, `/v1/sla/months/2026-01/links/${j}/beta`,
        `/v1/alerts/events?link=${j}`, `/v1/placement?from=${j}&max_rtt_ms=1&min_gbps=1`, `/v1/throughput-tests/${j}`, `/v1/alerts/silences/${j}`]) {
        const r = await requestFrom(`${server.url}${path}`, { headers: { authorization: `Bearer ${topo.operatorToken}` } });
        attacks++;
        expect(r.status, `${path}: ${r.text.slice(0, 200)}`).toBeLessThan(500);
      }
    }
    for (const body of ['{', '[]', 'null', '"\\ud800"', '{"reason":"\\udc00"}', '1e999']) {
      for (const path of ['/v1/sla/maintenance', '/v1/alerts/silences', '/v1/links/alpha/beta/diagnostics', '/v1/links/alpha/beta/throughput-tests']) {
        const r = await requestFrom(`${server.url}${path}`, { method: 'POST', headers: op, body });
        attacks++;
        expect(r.status, `${path} ${body}: ${r.text.slice(0, 200)}`).toBeLessThan(500);
      }
    }
    figures['lone surrogates and junk in API input'] = { attacks, health: await watch.stop() };
  });

  it('in the topology file: a config error naming the path and line', () => {
    const yaml = topo.yaml.replace('name: Centre beta', 'name: "Centre \\ud800"');
    let error: unknown;
    try {
      parseTopology(yaml, 'poison.yaml');
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect(String((error as Error).message)).toMatch(/poison\.yaml:\d+: centres\[1\]\.name: holds a lone UTF-16 surrogate/);
  });
});
