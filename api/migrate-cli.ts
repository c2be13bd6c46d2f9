/**
 * `citymesh migrate`: apply the schema before servers start, on one ClickHouse
 * (embedded or CLICKHOUSE_URL) or on a cluster (ON CLUSTER DDL rendered by
 * sql/cluster.ts; without replication, the same schema node by node), or
 * print it for review without connecting.
 */
import {
  migrate, migrateCluster, migrateClusterNodes, migrationScript, openStore, schemaMigrations, UNREPLICATED, type MigrationReport, type Store,
} from '../sql/index.js';
import { parseReplication, resolveServerSettings } from './settings.js';

export interface MigrateFlags {
  cluster?: string | undefined;
  database?: string | undefined;
  print?: boolean | undefined;
  replication?: string | undefined;
  node?: string[] | undefined;
  dataDir?: string | undefined;
}

export async function runMigrate(flags: MigrateFlags, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const cluster = flags.cluster || env.CITYMESH_CLICKHOUSE_CLUSTER || undefined;
  const database = flags.database || env.CLICKHOUSE_DATABASE || undefined;
  const replication = parseReplication(flags.replication || env.CITYMESH_CLICKHOUSE_REPLICATION || 'keeper');
  if (flags.print) {
    process.stdout.write(migrationScript(cluster ? { cluster, database, replication } : undefined));
    return;
  }
  if (cluster && replication === UNREPLICATED) {
    await migrateNodeByNode(cluster, database, flags.node?.length ? flags.node : (env.CITYMESH_CLICKHOUSE_NODES || env.CLICKHOUSE_URL || '').split(',').filter(Boolean), env);
    return;
  }
  if (cluster && !env.CLICKHOUSE_URL) {
    throw new Error(
      `migrate --cluster ${cluster} needs CLICKHOUSE_URL pointing at a node of that cluster: the embedded store is a single node ` +
        'without ClickHouse Keeper, so ON CLUSTER DDL and Replicated tables cannot run there (--print shows the SQL without connecting)',
    );
  }
  const settings = resolveServerSettings({ dataDir: flags.dataDir, clickhouseCluster: cluster }, env);
  const store = await openStore({
    url: settings.clickhouseUrl,
    username: settings.clickhouseUser,
    password: settings.clickhousePassword,
    // On a cluster the target database may not exist yet: connect to the server's default one and qualify every name.
    database: cluster ? undefined : database,
    dataDir: settings.dataDir,
    cluster,
  });
  try {
    const where = cluster
      ? `ClickHouse cluster ${cluster} through ${store.location}, database ${database ?? 'default'}`
      : `${store.mode === 'embedded' ? 'embedded store' : 'ClickHouse'} ${store.location}${database ? `, database ${database}` : ''}`;
    const report = cluster ? await migrateCluster(store.client, { cluster, database }) : await migrate(store.client);
    process.stdout.write(`citymesh migrate: ${where}\n${formatReport(report)}`);
    // migrateCluster ends by checking what the node holds, and throws on any difference.
    if (cluster) process.stdout.write('  checked: every table has its cluster engine on this node\n');
  } finally {
    await store.close();
  }
}

async function migrateNodeByNode(cluster: string, database: string | undefined, urls: string[], env: NodeJS.ProcessEnv): Promise<void> {
  if (urls.length === 0) {
    throw new Error(`migrate --cluster ${cluster} --replication none needs the cluster's nodes: --node URL once per node (or CITYMESH_CLICKHOUSE_NODES, or CLICKHOUSE_URL)`);
  }
  const stores: Store[] = [];
  try {
    for (const url of urls) {
      // The target database may not exist yet: connect to the server's default one and qualify every name.
      stores.push(await openStore({ url, username: env.CLICKHOUSE_USER, password: env.CLICKHOUSE_PASSWORD, dataDir: '.', cluster }));
    }
    const report = await migrateClusterNodes(stores.map((s) => ({ label: s.location, client: s.client })), { cluster, database, replication: UNREPLICATED });
    process.stdout.write(
      `citymesh migrate: ClickHouse cluster ${cluster} without replication, node by node: ${stores.map((s) => s.location).join(', ')}; ` +
        `database ${database ?? 'default'}\n${formatReport(report)}  checked: every node of the cluster holds every table and version\n`,
    );
  } finally {
    await Promise.all(stores.map((s) => s.close()));
  }
}

function formatReport(report: MigrationReport): string {
  const names = new Map(schemaMigrations.map((m) => [m.version, m.name]));
  const line = (version: number, state: string) => `  ${String(version).padStart(4, '0')} ${(names.get(version) ?? '').padEnd(20)} ${state}\n`;
  return [
    ...report.applied.map((v) => line(v, 'applied')),
    ...report.skipped.map((v) => line(v, 'skipped (already applied)')),
  ].sort().join('');
}
