/**
 * Ingest through Distributed tables on two real shards (engine nodes on
 * 127.0.0.x, sharded without replication) against one node of the same kind
 * with the single-node schema, in the same run: the same trains, the same
 * batches of 1,000 with their deduplication tokens, through insertTrains over
 * HTTP. The ceiling is the single node; the ratio is what the Distributed
 * hop (split by link, foreground insert to both shards) costs on this host.
 * Both shards share this machine's cores, so this is no scale-out figure.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { insertTrains, migrate, migrateClusterNodes, openStore, startEngineCluster, startEngineNode, type Store, type TrainRow } from '../../../sql/index.js';
import { size } from '../lib/env.js';
import { emit, note } from '../lib/figures.js';
import { rowsFor, RTTS_PER_TRAIN, sampleJson } from '../ingest/trains.js';

const CLUSTER = 'bench_two';
const BATCH = 1000;

function batches(count: number): { id: string; rows: TrainRow[] }[] {
  const centres = ['c00', 'c01', 'c02', 'c03', 'c04', 'c05'];
  return Array.from({ length: count }, (_, b) => {
    const id = `bench-${b}`;
    const src = centres[b % centres.length]!;
    const samples = Array.from({ length: BATCH }, (_, n) =>
      sampleJson(`${id}-${n}`, centres[(b + 1 + (n % (centres.length - 1))) % centres.length]!, (1.8e15 + b * BATCH + n) * 1, n));
    return { id, rows: rowsFor(src, id, samples) };
  });
}

async function rate(store: Store, work: { id: string; rows: TrainRow[] }[]): Promise<number> {
  const started = performance.now();
  for (const batch of work) await insertTrains(store.client, batch.rows, batch.id);
  return (work.length * BATCH) / ((performance.now() - started) / 1000);
}

export async function run(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'citymesh-bench-cluster-'));
  const work = batches(size(30, 4));
  note('cluster', `${work.length} batches of ${BATCH} trains (${RTTS_PER_TRAIN} RTTs each) through insertTrains over HTTP: one engine node with the ` +
    'single-node schema (ceiling), then two engine nodes on 127.0.0.2-3 through Distributed (sharded by link, no replication, foreground insert); ' +
    'both shards share this host\'s cores');
  const single = await startEngineNode({ dataDir: join(dir, 'single'), host: '127.0.0.5' });
  const cluster = await startEngineCluster({ dir: join(dir, 'cluster'), name: CLUSTER, shards: 2 });
  const stores: Store[] = [];
  try {
    const alone = await openStore({ url: single.url, dataDir: '.' });
    stores.push(alone);
    await migrate(alone.client);
    const nodes = await Promise.all(cluster.nodes.map((n) => openStore({ url: n.url, dataDir: '.', cluster: CLUSTER })));
    stores.push(...nodes);
    await migrateClusterNodes(nodes.map((s) => ({ label: s.location, client: s.client })), { cluster: CLUSTER, database: 'citymesh', replication: 'none' });
    const sharded = await openStore({ url: cluster.nodes[0]!.url, dataDir: '.', cluster: CLUSTER, database: 'citymesh' });
    stores.push(sharded);
    const ceiling = await rate(alone, work);
    const value = await rate(sharded, work);
    emit({ name: 'cluster.single_node_ingest', value: ceiling, unit: 'trains/s', better: 'higher' });
    emit({
      name: 'cluster.distributed_ingest', value, unit: 'trains/s', better: 'higher', ceiling, target: { op: '>=', value: 10_000 },
      note: 'two shards on one host, through Distributed; ceiling: one node, same rows and batches',
    });
  } finally {
    await Promise.all(stores.map((s) => s.close()));
    await Promise.all([single.stop(), cluster.stop()]);
    rmSync(dir, { recursive: true, force: true });
  }
}
