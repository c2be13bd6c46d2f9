/**
 * `citymesh migrate`: apply the schema before servers start, on one ClickHouse
 * (embedded or CLICKHOUSE_URL) or on a cluster (ON CLUSTER DDL rendered by
 * sql/cluster.ts), or print it for review without connecting.
 */
import { migrate, migrateCluster, migrationScript, openStore, schemaMigrations, type MigrationReport } from '../sql/index.js';
import { resolveServerSettings } from './settings.js';

export interface MigrateFlags {
  cluster?: string | undefined;
  database?: string | undefined;
  print?: boolean | undefined;
  dataDir?: string | undefined;
}

export async function runMigrate(flags: MigrateFlags, env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const cluster = flags.cluster || env.CITYMESH_CLICKHOUSE_CLUSTER || undefined;
  const database = flags.database || env.CLICKHOUSE_DATABASE || undefined;
  if (flags.print) {
    process.stdout.write(migrationScript(cluster ? { cluster, database } : undefined));
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

function formatReport(report: MigrationReport): string {
  const names = new Map(schemaMigrations.map((m) => [m.version, m.name]));
  const line = (version: number, state: string) => `  ${String(version).padStart(4, '0')} ${(names.get(version) ?? '').padEnd(20)} ${state}\n`;
  return [
    ...report.applied.map((v) => line(v, 'applied')),
    ...report.skipped.map((v) => line(v, 'skipped (already applied)')),
  ].sort().join('');
}
