/**
 * citymesh on two real ClickHouse shards (engine nodes on 127.0.0.x, sharded
 * without replication, migrated node by node) against a single-node store fed
 * the same data, answer by answer, through the servers' own HTTP API:
 *
 * - server S on the embedded single-node store; servers A and B on the
 *   cluster, A through node 1 and B through node 2 (each a Distributed
 *   initiator merging both shards' partial results);
 * - the same month of stories (the SLA figures) written into both stores,
 *   and the same probe batches through the servers' ingest: each cluster
 *   batch through A or B and replayed through the other, stored once;
 * - every answer compared: exact where the SQL is exact; within TDIGEST_TOLERANCE
 *   where the answer merges t-digest states (minute rollups: long-range series,
 *   the SLA month from the rollups, alert values), which ClickHouse merges in
 *   read order, so a different split of the states changes the last digits.
 *   The tally (answers, equal values, values within tolerance and the largest
 *   difference) is printed at the end.
 * - a shard killed (SIGKILL) and restarted under real probes, in a database
 *   of its own: every train the probes spooled is stored exactly once.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import {
  duplicateTrainIds, engineNodeUnavailable, migrateClusterNodes, openStore, startEngineCluster, type EngineCluster, type Store,
} from '../../sql/index.js';
import { monthData, probeBatch } from '../helpers/cluster-data.js';
import { killAll, probeProcess, removeTempDirs, tempDir } from '../helpers/processes.js';
import { skipReason } from '../helpers/requirements.js';
import { insertAll, recentThirtyDayMonth, slaTopology } from '../helpers/sla-month.js';
import { startTestServer, testTopology, waitFor, type TestServer, ingestFetch } from '../helpers/stack.js';

const CLUSTER = 'two_shards';
const DATABASE = 'citymesh';
/** Relative difference allowed where t-digest states are merged (the SLA verdict thresholds sit far from the data). */
const TDIGEST_TOLERANCE = 0.02;
const DATA_MINUTES = 120;
const RECENT_MINUTES = 12;
const unavailable = skipReason(engineNodeUnavailable());
const { topology, operatorToken, probeToken } = slaTopology(`alerts:
  rules:
    latency: { for: 1m }
    loss: { for: 1m }
    link_down: { for: 1m, severity: critical }`);
const month = recentThirtyDayMonth();
const nowMinuteS = Math.floor(Date.now() / 60_000) * 60;
const centres = topology.centres.map((c) => c.id);
/** One link per story: a latency breach, a link down, a one-way direction (the month's other links tell none of these). */
const STORY_LINKS = [['alfa', 'charlie'], ['bravo', 'charlie'], ['bravo', 'delta']] as const;

let cluster: EngineCluster;
let single: TestServer;
let a: TestServer;
let b: TestServer;
const servers: TestServer[] = [];
const signingKey = join(tempDir('two-shard-keys'), 'report-signing.pem');

const clusterFlags = { signingKey, clickhouseCluster: CLUSTER, clickhouseReplication: 'none' };
const onNode = (k: number, database = DATABASE) => ({ CLICKHOUSE_URL: cluster.nodes[k]!.url, CLICKHOUSE_DATABASE: database });

async function migrateDatabase(database: string): Promise<void> {
  const stores = await Promise.all(cluster.nodes.map((n) => openStore({ url: n.url, dataDir: '.', cluster: CLUSTER })));
  try {
    await migrateClusterNodes(stores.map((s) => ({ label: s.location, client: s.client })), { cluster: CLUSTER, database, replication: 'none' });
  } finally {
    await Promise.all(stores.map((s) => s.close()));
  }
}

async function ingest(server: TestServer, centre: string, batch: string): Promise<void> {
  const response = await ingestFetch(`${server.url}/v1/ingest`, {
    method: 'POST', headers: { authorization: `Bearer ${probeToken}-${centre}`, 'content-type': 'application/json' }, body: batch,
  });
  expect(response.status, `${centre} batch on ${server.url}: ${await response.clone().text()}`).toBe(200);
  await response.arrayBuffer();
}

beforeAll(async () => {
  if (unavailable) return;
  cluster = await startEngineCluster({ dir: tempDir('two-shard'), name: CLUSTER, shards: 2 });
  await migrateDatabase(DATABASE);
  single = await startTestServer(topology, {}, { flags: { signingKey } }); // creates the signing key all servers share
  servers.push(single);
  a = await startTestServer(topology, {}, { flags: clusterFlags, env: onNode(0) });
  servers.push(a);
  b = await startTestServer(topology, {}, { flags: clusterFlags, env: onNode(1) });
  servers.push(b);
  const { trains, nics, tests } = monthData(month.startS, DATA_MINUTES);
  await Promise.all([single, a].map((s) => insertAll(s.store.client, trains, nics, tests, 'month')));
  for (const [k, centre] of centres.entries()) {
    const batch = probeBatch(topology, centre, `recent-${centre}`, nowMinuteS, RECENT_MINUTES);
    const [first, replay] = k % 2 === 0 ? [a, b] : [b, a];
    await ingest(single, centre, batch);
    await ingest(first, centre, batch);
    await ingest(replay, centre, batch); // the probe missed the ack and reconnected elsewhere
  }
}, 300_000);

afterAll(async () => {
  await killAll();
  await Promise.all(servers.map((s) => s.stop()));
  await cluster?.stop();
  removeTempDirs();
  if (!unavailable) {
    process.stdout.write(
      `two shards: ${tally.answers} answers compared, ${tally.values} values: ${tally.equal} equal, ${tally.tolerated} within ` +
        `${TDIGEST_TOLERANCE * 100}% (t-digest merges; largest relative difference ${tally.largest.diff.toExponential(2)} at ${tally.largest.where})\n`,
    );
  }
}, 60_000);

const tally = { answers: 0, values: 0, equal: 0, tolerated: 0, largest: { diff: 0, where: 'none' } };
/** Fields that say when an answer was made, not what it says. */
const VOLATILE = new Set(['generatedAt', 'generatorURL']);

/** Compare two answers leaf by leaf; numbers within `tolerance` (relative) where t-digest states merge. */
function compare(what: string, expected: unknown, got: unknown, tolerance = 0, path = what): void {
  if (typeof expected === 'number' && typeof got === 'number') {
    tally.values++;
    if (expected === got) {
      tally.equal++;
      return;
    }
    const diff = Math.abs(expected - got) / Math.max(Math.abs(expected), Math.abs(got));
    expect(diff, `${path}: ${got} (two shards) vs ${expected} (single node)`).toBeLessThanOrEqual(tolerance);
    tally.tolerated++;
    if (diff > tally.largest.diff) tally.largest = { diff, where: path };
    return;
  }
  if (Array.isArray(expected) && Array.isArray(got)) {
    expect(got.length, `${path}: length`).toBe(expected.length);
    expected.forEach((e, i) => compare(what, e, got[i], tolerance, `${path}[${i}]`));
    return;
  }
  if (expected && got && typeof expected === 'object' && typeof got === 'object') {
    const keys = Object.keys(expected).filter((k) => !VOLATILE.has(k));
    expect(Object.keys(got).filter((k) => !VOLATILE.has(k)).sort(), `${path}: fields`).toEqual([...keys].sort());
    for (const k of keys) compare(what, (expected as Record<string, unknown>)[k], (got as Record<string, unknown>)[k], tolerance, `${path}.${k}`);
    return;
  }
  tally.values++;
  tally.equal++;
  expect(got, path).toEqual(expected);
}

async function answer(server: TestServer, path: string): Promise<{ status: number; body: unknown }> {
  const response = await fetch(`${server.url}${path}`, { headers: { authorization: `Bearer ${operatorToken}` } });
  return { status: response.status, body: await response.json() };
}

/** The answer of S, A and B to `path`; A and B must match S (status and body). Returns S's body. */
async function same(path: string, tolerance = 0, clusterServers = [a, b]): Promise<unknown> {
  const expected = await answer(single, path);
  expect(expected.status, `${path} on the single node: ${JSON.stringify(expected.body)}`).toBe(200);
  for (const server of clusterServers) {
    const got = await answer(server, path);
    tally.answers++;
    expect(got.status, `${path} on ${server === a ? 'A' : 'B'}: ${JSON.stringify(got.body)}`).toBe(200);
    compare(path, expected.body, got.body, tolerance);
  }
  return expected.body;
}

/**
 * /v1/status is a judgement of one whole second (asOf, a little behind each
 * server's clock), kept by each server a second at a time: the single node's
 * and each cluster server's answers are compared for the same asOf, asked
 * together until both answer the same second (a second apart while one of
 * them is between refreshes).
 */
async function sameStatusSecond(): Promise<void> {
  for (const server of [a, b]) {
    const [expected, got] = await waitFor(`/v1/status of the same second on the single node and ${server === a ? 'A' : 'B'}`, async () => {
      const pair = await Promise.all([answer(single, '/v1/status'), answer(server, '/v1/status')]);
      for (const r of pair) expect(r.status, JSON.stringify(r.body)).toBe(200);
      return (pair[0].body as { asOf: string }).asOf === (pair[1].body as { asOf: string }).asOf ? pair : undefined;
    }, 60_000);
    tally.answers++;
    compare('/v1/status', expected.body, got.body);
  }
}

const iso = (s: number) => new Date(s * 1000).toISOString();
const monthRange = `from=${iso(month.startS)}&to=${iso(month.startS + DATA_MINUTES * 60)}`;
const recentRange = `from=${iso(nowMinuteS - (RECENT_MINUTES + 1) * 60)}&to=${iso(nowMinuteS)}`;

describe.skipIf(unavailable)('two real shards against a single node, answer by answer', () => {
  it('stores the same rows, split across both shards, each replayed batch once', async () => {
    const counts = async (store: Store) => (await store.client.query({
      query: 'SELECT (SELECT count() FROM latency_trains) AS trains, (SELECT count() FROM nic_samples) AS nics, (SELECT count() FROM throughput_tests) AS tests',
      format: 'JSONEachRow',
    })).json();
    expect(await counts(a.store)).toEqual(await counts(single.store));
    expect(await duplicateTrainIds(a.store.client)).toEqual([]);
    const perShard = await (await a.store.client.query({
      query: `SELECT _shard_num AS shard, count() AS n FROM clusterAllReplicas('${CLUSTER}', ${DATABASE}.latency_trains_local) GROUP BY shard ORDER BY shard`,
      format: 'JSONEachRow',
    })).json<{ shard: number; n: number }>();
    expect(perShard.map((s) => s.shard)).toEqual([1, 2]);
    expect(perShard.every((s) => Number(s.n) > 0)).toBe(true);
  });

  it('status, series, trains', { timeout: 180_000 }, async () => {
    await sameStatusSecond();
    for (const [k, [x, y]] of STORY_LINKS.entries()) {
      await same(`/v1/links/${x}/${y}/series?${monthRange}&points=24`, TDIGEST_TOLERANCE, [k % 2 ? a : b]); // minute rollups
      await same(`/v1/links/${y}/${x}/series?${recentRange}&points=600`, 0, [k % 2 ? b : a]); // raw trains
    }
    await same(`/v1/links/charlie/echo/trains?${monthRange}&limit=50`);
    await same(`/v1/links/alfa/bravo/trains?${recentRange}`);
  });

  it('capacity and placement', { timeout: 180_000 }, async () => {
    await same('/v1/capacity');
    await same(`/v1/links/charlie/echo/throughput?${monthRange}`);
    await same(`/v1/links/alfa/bravo/throughput?from=${iso(nowMinuteS - 3600)}&to=${iso(nowMinuteS)}`);
    await same(`/v1/links/charlie/echo/utilisation?${monthRange}&points=12`);
    for (const [k, from] of centres.entries()) await same(`/v1/placement?from=${from}&max_rtt_ms=1&min_gbps=90&window_s=1800`, 0, [k % 2 ? a : b]);
  });

  it('SLA month, per link and per minute, and the signed report once finalised', async () => {
    await same('/v1/sla/months');
    await same(`/v1/sla/months/${month.month}`, TDIGEST_TOLERANCE);
    await same(`/v1/sla/months/${month.month}?source=raw`, 0, [b]);
    for (const [k, [x, y]] of STORY_LINKS.entries()) await same(`/v1/sla/months/${month.month}/links/${x}/${y}`, TDIGEST_TOLERANCE, [k % 2 ? a : b]);
    await same(`/v1/sla/months/${month.month}/links/alfa/charlie/minutes`, TDIGEST_TOLERANCE, [a]);
    const finalise = async (server: TestServer) => {
      const response = await fetch(`${server.url}/v1/sla/months/${month.month}/finalise`, { method: 'POST', headers: { authorization: `Bearer ${operatorToken}` } });
      expect(response.status, await response.clone().text()).toBeLessThan(300);
      await response.arrayBuffer();
    };
    await finalise(single);
    await finalise(a); // the month is finalised once on the cluster, whichever server reads it
    const reports = await Promise.all([single, a, b].map((s) => answer(s, `/v1/sla/months/${month.month}/report`)));
    for (const r of reports) expect(r.status).toBe(200);
    expect(reports[2]!.body).toEqual(reports[1]!.body); // B reads the report A stored, byte for byte
    tally.answers++;
    compare('signed report', withoutSignature(reports[0]!.body), withoutSignature(reports[1]!.body), TDIGEST_TOLERANCE);
  }, 240_000);

  it('alerts evaluated at the same instant', { timeout: 120_000 }, async () => {
    const nowMs = nowMinuteS * 1000;
    const evaluated = await Promise.all([single, a].map((s) => s.alerts.evaluate(nowMs)));
    tally.answers++;
    compare('alert evaluation', evaluated[0], evaluated[1], TDIGEST_TOLERANCE);
    const snapshots = await Promise.all([single, a, b].map((s) => s.alerts.snapshot(nowMs)));
    expect(snapshots[0]!.alerts.length).toBeGreaterThan(0);
    for (const got of snapshots.slice(1)) {
      tally.answers++;
      compare('alerts', snapshots[0], got, TDIGEST_TOLERANCE);
    }
  });

  it('the live feed on B shows a batch stored through A', async () => {
    const seenOnB = new Set<string>();
    const live = new WebSocket(`${b.url.replace(/^http/, 'ws')}/v1/live?access_token=${operatorToken}`);
    live.on('message', (data) => {
      const message = JSON.parse(String(data)) as { type: string; trains?: { src: string; dst: string; t?: number }[] };
      if (message.type === 'trains') for (const t of message.trains!) seenOnB.add(`${t.src}>${t.dst}`);
    });
    await new Promise((resolve, reject) => live.once('open', resolve).once('error', reject));
    try {
      const batch = probeBatch(topology, 'echo', 'live-through-a', Math.floor(Date.now() / 60_000) * 60 + 60, 1);
      await ingest(a, 'echo', batch);
      await ingest(single, 'echo', batch); // keeps the two deployments' data equal
      await waitFor('echo\'s train on B\'s live feed', () => seenOnB.has('echo>charlie'), 30_000);
    } finally {
      live.close();
    }
  });

  // Once flaky (2 of 4 runs): when the killed node's connections to the other shard were reset, that shard's engine
  // terminated itself (clickhouse-local's batch mode kills the process on a connection error); the launcher now runs it
  // interactively (sql/native/clickhouse-node.c), and engine-nodes.test.ts resets connections on purpose.
  it('a shard killed and restarted mid-ingest: every train the probes spooled stored exactly once', async () => {
    await migrateDatabase('drill');
    const drill = testTopology(['kilo', 'lima'], '127.0.74');
    // The shard that holds the link kilo~lima (Distributed picks shard = key % 2 with equal weights).
    const [placed] = await (await single.store.client.query({
      query: "SELECT cityHash64(least('kilo', 'lima'), greatest('kilo', 'lima')) % 2 AS shard", format: 'JSONEachRow',
    })).json<{ shard: number }>();
    const victim = Number(placed!.shard);
    // The server reaches the cluster through the node that is killed: its batches cannot be stored anywhere until the node is back.
    const server = await startTestServer(drill.topology, {}, { flags: clusterFlags, env: onNode(victim, 'drill') });
    servers.push(server);
    const spooled = new Set<string>();
    const spools = tempDir('two-shard-spool');
    const probes = ['kilo', 'lima'].map((centre) =>
      probeProcess({ serverWsUrl: server.wsUrl, centre, token: drill.tokens[centre]!, spoolDir: join(spools, centre), spooled }));
    const stored = async () => Number((await (await server.store.client.query({ query: 'SELECT count() AS n FROM latency_trains', format: 'JSONEachRow' }))
      .json<{ n: number }>())[0]!.n);
    await waitFor('trains stored before the kill', async () => (await stored()) >= 4, 60_000);
    await cluster.nodes[victim]!.kill();
    const atKill = spooled.size;
    await waitFor('trains spooled while the shard is down', () => spooled.size >= atKill + 4, 60_000);
    await cluster.restart(victim);
    await waitFor('trains spooled after the restart', () => spooled.size >= atKill + 8, 60_000);
    await Promise.all(probes.map((p) => p.kill('SIGTERM'))); // a stop drains the spool to the server
    const storedIds = async () => new Set((await (await server.store.client.query({ query: 'SELECT train_id FROM latency_trains', format: 'JSONEachRow' }))
      .json<{ train_id: string }>()).map((r) => r.train_id));
    // The store answers again (a request may still meet a connection to the killed process).
    const ids = await waitFor('the cluster answering after the restart', () => storedIds().catch(() => undefined), 60_000);
    const missing = [...spooled].filter((id) => !ids.has(id));
    expect(missing, 'spooled but not stored').toEqual([]);
    expect(await duplicateTrainIds(server.store.client)).toEqual([]);
    const survivor = cluster.nodes[1 - victim]!;
    expect(await Promise.race([survivor.exited, 'running']), `the other shard: ${survivor.output()}`).toBe('running');
    expect(survivor.output()).not.toContain('Terminate called');
    process.stdout.write(`two shards: shard ${victim + 1} killed and restarted under 2 probes, ${spooled.size} trains spooled, all stored once\n`);
  }, 240_000);
});

/** A signed report without what differs by construction: when and by which signature it was made. */
function withoutSignature(envelope: unknown): unknown {
  const { signature: _s, ...rest } = envelope as Record<string, unknown>;
  const copy = JSON.parse(JSON.stringify(rest, (key, value: unknown) => (/^(generatedAt|finalisedAt|createdAt|signedAt)$/.test(key) ? undefined : value))) as {
    report?: { finalised?: { at?: string } };
  };
  delete copy.report?.finalised?.at;
  return copy;
}
