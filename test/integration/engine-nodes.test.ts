/**
 * Real ClickHouse nodes from the installed engine library (sql/engine-node.ts
 * and its launcher): two shards on 127.0.0.x, the cluster schema applied node
 * by node by `citymesh migrate --replication none`, rows split across the
 * shards through Distributed, and the launcher's hygiene (loopback only, one
 * node per data directory, no node outliving the process that started it).
 * The application's answers over these shards are compared with a single
 * node in two-shard.test.ts.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  checkClusterSchema, engineNodeUnavailable, insertTrains, openStore, startEngineCluster, startEngineNode, StoreLockedError,
  type EngineCluster, type Store,
} from '../../sql/index.js';
import { removeTempDirs, runCli, tempDir } from '../helpers/processes.js';
import { skipReason } from '../helpers/requirements.js';
import { train } from '../helpers/sla-month.js';

const CLUSTER = 'rehearsal';
const DATABASE = 'citymesh';
const unavailable = skipReason(engineNodeUnavailable());

let cluster: EngineCluster;
let stores: Store[] = [];

beforeAll(async () => {
  if (unavailable) return;
  cluster = await startEngineCluster({ dir: tempDir('engine-nodes'), name: CLUSTER, shards: 2 });
  stores = await Promise.all(cluster.nodes.map((node) => openStore({ url: node.url, dataDir: '.', cluster: CLUSTER })));
});
afterAll(async () => {
  await Promise.all(stores.map((store) => store.close()));
  await cluster?.stop();
  removeTempDirs();
});

async function rows<T>(store: Store, query: string): Promise<T[]> {
  return (await store.client.query({ query, format: 'JSONEachRow' })).json<T>();
}

describe.skipIf(unavailable)('a two-shard cluster of engine nodes', () => {
  it('serves real native and HTTP ports on two loopback addresses, each node naming both shards', async () => {
    expect(cluster.nodes.map((n) => n.host)).toEqual(['127.0.0.2', '127.0.0.3']);
    const seen = await rows<{ shard_num: number; host_name: string; port: number }>(stores[1]!,
      `SELECT shard_num, host_name, port FROM system.clusters WHERE cluster = '${CLUSTER}' ORDER BY shard_num`);
    expect(seen).toEqual(cluster.nodes.map((n, k) => ({ shard_num: k + 1, host_name: n.host, port: n.tcpPort })));
    // The native port answers too: node 2 reads node 1 over it.
    expect(await rows(stores[1]!, `SELECT hostName() != '' AS ok FROM remote('${cluster.nodes[0]!.host}:${cluster.nodes[0]!.tcpPort}', system.one)`))
      .toEqual([{ ok: 1 }]);
  });

  it('citymesh migrate --replication none applies the schema node by node, refusing until every node is named', async () => {
    const [first, second] = cluster.nodes.map((n) => n.url);
    const args = ['migrate', '--cluster', CLUSTER, '--database', DATABASE];
    const keeper = await runCli([...args], { CLICKHOUSE_URL: first! });
    expect(keeper.code).toBe(1);
    expect(keeper.stderr).toContain('no DDL worker');
    expect(keeper.stderr).toContain('--replication none --node URL');

    const partial = await runCli([...args, '--replication', 'none', '--node', first!]);
    expect(partial.code).toBe(1);
    expect(partial.stderr).toContain(`node ${cluster.nodes[1]!.host}:${cluster.nodes[1]!.tcpPort} (shard 2) holds no citymesh schema in ${DATABASE}`);

    const whole = await runCli([...args, '--replication', 'none'], { CITYMESH_CLICKHOUSE_NODES: `${first},${second}` });
    expect(whole.code, whole.stderr).toBe(0);
    expect(whole.stdout).toMatch(/0001 \w+ +applied/);
    expect(whole.stdout).toContain('checked: every node of the cluster holds every table and version');
    const again = await runCli([...args, '--replication', 'none', '--node', first!, '--node', second!]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).not.toMatch(/ applied$/m);
    expect(again.stdout).toMatch(/0001 \w+ +skipped/);

    // What a server checks before serving: accepted from either node as unreplicated, refused as a Keeper cluster.
    for (const store of stores) {
      await expect(checkClusterSchema(store.client, { cluster: CLUSTER, database: DATABASE, replication: 'none' })).resolves.toBeTruthy();
    }
    await expect(checkClusterSchema(stores[0]!.client, { cluster: CLUSTER, database: DATABASE })).rejects.toThrow(/is MergeTree, not ReplicatedMergeTree/);
  });

  it('splits rows across the shards by link through Distributed, stores a replayed batch once, and keeps control rows on shard 1', async () => {
    const links = [['alfa', 'bravo'], ['alfa', 'charlie'], ['bravo', 'charlie'], ['charlie', 'delta'], ['delta', 'echo'], ['alfa', 'echo']];
    const trains = links.flatMap(([a, b], i) => [train(a!, b!, 1.8e15 + i * 1e6, 700), train(b!, a!, 1.8e15 + i * 1e6, 710)]);
    const client = (k: number) => openStore({ url: cluster.nodes[k]!.url, dataDir: '.', cluster: CLUSTER, database: DATABASE });
    const viaFirst = await client(0);
    const viaSecond = await client(1);
    try {
      await insertTrains(viaFirst.client, trains, 'batch-1');
      await insertTrains(viaSecond.client, trains, 'batch-1'); // the probe's retry, through the other node
      const perShard = await rows<{ shard: number; n: number; links: number }>(viaSecond,
        `SELECT _shard_num AS shard, count() AS n, uniqExact(least(src, dst), greatest(src, dst)) AS links
         FROM clusterAllReplicas('${CLUSTER}', ${DATABASE}.latency_trains_local) GROUP BY shard ORDER BY shard`);
      expect(perShard).toHaveLength(2);
      expect(perShard.reduce((sum, s) => sum + Number(s.n), 0)).toBe(trains.length);
      expect(perShard.reduce((sum, s) => sum + Number(s.links), 0)).toBe(links.length); // both directions of a link on one shard
      for (const store of [viaFirst, viaSecond]) expect(await rows(store, 'SELECT count() AS n FROM latency_trains')).toEqual([{ n: trains.length }]);
      await viaSecond.client.insert({ table: 'job_claims', values: [{ job: 'j', slot: 's', holder: 'h', claimed_at: '2026-12-01 00:00:00.000' }], format: 'JSONEachRow' });
      expect(await rows(viaFirst, `SELECT _shard_num AS shard, count() AS n FROM clusterAllReplicas('${CLUSTER}', ${DATABASE}.job_claims_local) GROUP BY shard ORDER BY shard`))
        .toEqual([{ shard: 1, n: 1 }]);
    } finally {
      await Promise.all([viaFirst.close(), viaSecond.close()]);
    }
  });
});

describe.skipIf(unavailable)('the node launcher', () => {
  it('listens on loopback only unless it has a password, and one node per data directory', async () => {
    await expect(startEngineNode({ dataDir: tempDir('engine-refused'), host: '0.0.0.0' })).rejects.toThrow(/without a password listens on loopback only/);
    await expect(startEngineNode({ dataDir: tempDir('engine-refused'), password: '' })).rejects.toThrow(/password: empty/);
    await expect(startEngineNode({ dataDir: cluster.nodes[0]!.dataDir, host: '127.0.0.9' })).rejects.toBeInstanceOf(StoreLockedError);
  });

  it('survives clients that reset their connections or fail the handshake, on both ports, and stops in order', async () => {
    // In batch mode the engine terminated itself when a native connection was reset (as a killed shard resets its
    // connections to the other shards) or failed its handshake: the launcher runs it interactively (see there).
    const password = 'drill-password';
    const node = await startEngineNode({ dataDir: join(tempDir('engine-hostile'), 'node'), host: '127.0.0.11', password });
    const store = await openStore({ url: node.url, dataDir: '.', username: 'citymesh', password });
    try {
      for (const port of [node.tcpPort, node.httpPort]) {
        for (const opening of [Buffer.from([0x00, 0x0a, 0x63, 0x6c]), Buffer.from('POST / HTTP/1.1\r\nContent-Length: 99\r\n\r\nSELECT'), Buffer.alloc(0)]) {
          await resetAfter(node.host, port, opening);
        }
      }
      // A real native handshake with a wrong password, from another node.
      await expect(rows(stores[0]!, `SELECT 1 FROM remote('${node.host}:${node.tcpPort}', system.one, 'citymesh', 'wrong')`))
        .rejects.toThrow(/AUTHENTICATION_FAILED|password is incorrect/);
      const refused = await fetch(`${node.url}/?query=SELECT%201`, { headers: { 'X-ClickHouse-User': 'citymesh', 'X-ClickHouse-Key': 'wrong' } });
      expect([refused.status, refused.headers.get('x-clickhouse-exception-code')]).toEqual([403, '516']); // AUTHENTICATION_FAILED
      await refused.arrayBuffer();
      // Without the password, as the engine's own start-up user: nothing to read, listening cannot be stopped.
      for (const query of ['SELECT count() FROM system.tables', 'SYSTEM STOP LISTEN HTTP', 'CREATE TABLE t (x UInt8) ENGINE = Memory']) {
        const anonymous = await fetch(`${node.url}/`, { method: 'POST', body: query });
        expect(anonymous.status, `${query}: ${await anonymous.clone().text()}`).toBeGreaterThanOrEqual(400);
        await anonymous.arrayBuffer();
      }
      expect(await rows(store, 'SELECT 1 AS ok')).toEqual([{ ok: 1 }]);
      expect(await rows(stores[0]!, `SELECT 2 AS ok FROM remote('${node.host}:${node.tcpPort}', system.one, 'citymesh', '${password}')`)).toEqual([{ ok: 2 }]);
    } finally {
      await store.close();
      await node.stop();
    }
    expect(await node.exited).toBe(0);
    expect(node.output()).not.toContain('Terminate called');
  });

  it('a node dies with the process that started it (no orphan when a test runner is killed)', async () => {
    const dataDir = join(tempDir('engine-orphan'), 'node');
    const script = `import { startEngineNode } from './dist/sql/index.js';
      const node = await startEngineNode({ dataDir: ${JSON.stringify(dataDir)}, host: '127.0.0.10' });
      process.stdout.write(node.pid + '\\n');
      setInterval(() => {}, 1000);`;
    const parent = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const pid = await new Promise<number>((resolve, reject) => {
      parent.stdout!.setEncoding('utf8').once('data', (line: string) => resolve(Number(line.trim())));
      parent.once('exit', (code) => reject(new Error(`the parent exited (${code}) before starting its node`)));
    });
    expect(alive(pid)).toBe(true);
    parent.kill('SIGKILL');
    while (alive(pid)) await new Promise((wake) => setTimeout(wake, 50));
    // The directory is free again: a new node takes it.
    const again = await startEngineNode({ dataDir, host: '127.0.0.10' });
    await again.stop();
    expect(await again.exited).not.toBeUndefined();
  });
});

/** Open a connection to host:port, send `opening`, and reset it (RST, not FIN): the node's next read on it fails. */
async function resetAfter(host: string, port: number, opening: Buffer): Promise<void> {
  const socket = connect(port, host);
  socket.on('error', () => {});
  await new Promise((resolve) => socket.once('connect', resolve));
  if (opening.length > 0) await new Promise((resolve) => socket.write(opening, resolve));
  socket.resetAndDestroy();
  await new Promise((resolve) => socket.once('close', resolve));
}

/** Running, not merely a zombie waiting for whoever adopted it to reap it. */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}
