/**
 * The cluster schema against the real ClickHouse engine, embedded, started
 * with the example cluster configuration of deploy/clickhouse (host names
 * mapped to loopback addresses, so nothing is resolved or contacted). There
 * is no Keeper here, so Replicated tables cannot be created; Distributed
 * tables over the example cluster can, and are.
 *
 * - the example config gives cluster citymesh, 2 shards x 2 replicas, and the
 *   macros; every file is well-formed XML and every GRANT parses;
 * - every rendered statement, of every migration that exists when this runs,
 *   goes through ClickHouse's parser (formatQuery) and keeps ON CLUSTER and
 *   the engine its role calls for;
 * - the rendered schema is then created for real after dropping ON CLUSTER
 *   and the Replicated prefix with its Keeper arguments (the test shows, line
 *   by line, that nothing else changed), and compared with the single-node
 *   schema column by column (types, defaults, codecs, comments), key by key,
 *   index by index and setting by setting, for X_local and Distributed X;
 * - views read and write the local tables, and fire there on an insert;
 * - `citymesh migrate` prints SQL that parses, applies then skips, and
 *   refuses --cluster on the embedded store.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Session } from 'chdb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toRow } from '../../collector/index.js';
import {
  checkClusterSchema, DEDUP_WINDOW_SECONDS, migrate, migrationScript, openStore, renderClusterSchema, schemaMigrations,
  type ClusterSchema, type Migration, type Store,
} from '../../sql/index.js';
import { syntheticMigrations } from '../fixtures/cluster-migrations.js';
import { allStatements, createWithoutCluster as createSchemaWithoutCluster, formatQuery as formatWith } from '../helpers/cluster-schema.js';
import { missingCommand, skipReason } from '../helpers/requirements.js';
import { runCli } from '../helpers/processes.js';

const CLUSTER = 'citymesh';
const EXAMPLE = 'deploy/clickhouse';
const dir = mkdtempSync(join(tmpdir(), 'citymesh-cluster-'));
let session: Session;
let store: Store;

/** ch-s2r1.citymesh.example -> 127.0.2.1, keeper3.citymesh.example -> 127.0.3.3: loopback, never looked up. */
function loopbackHosts(xml: string): string {
  return xml
    .replace(/ch-s(\d)r(\d)\.citymesh\.example/g, (_, shard: string, replica: string) => ['127', '0', shard, replica].join('.'))
    .replace(/keeper(\d)\.citymesh\.example/g, (_, n: string) => ['127', '0', '3', n].join('.'));
}

beforeAll(async () => {
  const config = join(dir, 'config');
  mkdirSync(join(config, 'config.d'), { recursive: true });
  writeFileSync(join(config, 'config.xml'), '<clickhouse></clickhouse>\n');
  for (const file of readdirSync(join(EXAMPLE, 'config.d'))) {
    writeFileSync(join(config, 'config.d', file), loopbackHosts(readFileSync(join(EXAMPLE, 'config.d', file), 'utf8')));
  }
  process.env.CLICKHOUSE_CLUSTER_SECRET ??= 'test-only-secret';
  // The first connection starts the engine with the config; the store's connection to the same directory shares it.
  session = new Session(join(dir, 'data'), { connectionArgs: [`--config-file=${join(config, 'config.xml')}`] });
  store = await openStore({ dataDir: join(dir, 'data') });
});
afterAll(async () => {
  await store?.close();
  session?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function rows<T>(query: string, params: Record<string, unknown> = {}): Promise<T[]> {
  const result = await store.client.query({ query, query_params: params, format: 'JSONEachRow' });
  return result.json<T>();
}

function formatQuery(sql: string): Promise<string> {
  return formatWith(store.client, sql);
}

function createWithoutCluster(schema: ClusterSchema, database: string): Promise<void> {
  return createSchemaWithoutCluster(store.client, schema, database, CLUSTER);
}

/** Single-node migrations into the current database, as the server runs them (migrate() for the real ones). */
async function applySingleNode(migrations: readonly Migration[]): Promise<void> {
  for (const migration of migrations) {
    for (const statement of migration.statements) await store.client.command({ query: statement });
  }
}

interface TableRow {
  name: string; engine: string; engine_full: string; sorting_key: string; primary_key: string; partition_key: string;
  sampling_key: string; dependencies_table: string[]; create_table_query: string;
}

async function describeDatabase(database: string) {
  const columns = await rows<{ table: string; name: string; type: string; position: number; default_kind: string; default_expression: string; compression_codec: string; comment: string }>(
    `SELECT table, name, type, position, default_kind, default_expression, compression_codec, comment
     FROM system.columns WHERE database = {database:String} ORDER BY table, position`, { database });
  const indices = await rows<{ table: string; name: string; type_full: string; expr: string; granularity: number }>(
    'SELECT table, name, type_full, expr, granularity FROM system.data_skipping_indices WHERE database = {database:String} ORDER BY table, name', { database });
  const tables = await rows<TableRow>(
    `SELECT name, engine, engine_full, sorting_key, primary_key, partition_key, sampling_key, dependencies_table, create_table_query
     FROM system.tables WHERE database = {database:String}`, { database });
  const byTable = <T extends { table: string }>(list: T[]) => (table: string) => list.filter((r) => r.table === table).map(({ table: _, ...rest }) => rest);
  return { columns: byTable(columns), indices: byTable(indices), tables: new Map(tables.map((t) => [t.name, t])) };
}

/** "MergeTree ORDER BY … SETTINGS a = 1, b = 2" -> the clauses and the settings. */
function splitEngine(engineFull: string): { clauses: string; settings: Record<string, string> } {
  const [clauses, settings = ''] = engineFull.split(' SETTINGS ');
  return {
    clauses: clauses!.replace(/^\w+/, ''),
    settings: Object.fromEntries(settings.split(', ').filter(Boolean).map((s) => s.split(' = ') as [string, string])),
  };
}

/** The single-node schema in `single` and the cluster schema created in `clustered` agree on everything but replication. */
async function expectSameSchema(schema: ClusterSchema, single: string, clustered: string): Promise<void> {
  const [one, many] = [await describeDatabase(single), await describeDatabase(clustered)];
  for (const table of schema.tables) {
    const source = one.tables.get(table.name);
    expect(source, `${table.name} exists single-node`).toBeDefined();
    expect(one.columns(table.name).length, `${table.name} has columns`).toBeGreaterThan(0);
    expect(many.columns(table.name), `${table.name}: columns`).toEqual(one.columns(table.name));
    if (table.role === 'materialized-view' || table.role === 'view') continue;
    const storage = table.local?.name ?? table.name;
    expect(many.columns(storage), `${storage}: columns`).toEqual(one.columns(table.name));
    expect(many.indices(storage), `${storage}: skipping indices`).toEqual(one.indices(table.name));
    expect(table.local?.engine ?? table.engine).toBe(`Replicated${source!.engine}`);
    const stored = many.tables.get(storage)!;
    for (const key of ['sorting_key', 'primary_key', 'partition_key', 'sampling_key'] as const) {
      expect(stored[key], `${storage}: ${key}`).toBe(source![key]);
    }
    const [expected, actual] = [splitEngine(source!.engine_full), splitEngine(stored.engine_full)];
    expect(actual.clauses, `${storage}: PARTITION/ORDER/TTL`).toBe(expected.clauses);
    const { non_replicated_deduplication_window: window, ...rest } = expected.settings;
    expect(actual.settings, `${storage}: settings`).toEqual(
      window === undefined ? rest : { ...rest, replicated_deduplication_window: window, replicated_deduplication_window_seconds: String(DEDUP_WINDOW_SECONDS) },
    );
    if (table.local) {
      expect(many.tables.get(table.name)!.engine_full).toBe(`Distributed('${CLUSTER}', '${clustered}', '${table.local.name}', ${table.shardingKey})`);
      expect(many.indices(table.name), `${table.name}: Distributed holds no index`).toEqual([]);
    }
  }
  for (const view of schema.tables.filter((t) => t.role === 'materialized-view')) {
    const target = schema.tables.find((t) => (t.local?.name ?? t.name) === view.writes)!;
    expect(view.writes, `${view.name} writes`).toBe(target.local?.name ?? target.name);
    expect(many.tables.get(view.name)!.create_table_query).toContain(` TO ${clustered}.${view.writes} `);
    for (const read of view.reads!) {
      const source = schema.tables.find((t) => (t.local?.name ?? t.name) === read)!;
      if (source.role === 'sharded') expect(read, `${view.name} reads`).toBe(`${source.name}_local`);
      expect(many.tables.get(read)!.dependencies_table, `${read} triggers ${view.name}`).toContain(view.name);
    }
  }
}

describe('the example cluster configuration (deploy/clickhouse)', () => {
  it('defines cluster citymesh as 2 shards x 2 replicas, and this host\'s macros', async () => {
    const replicas = await rows<{ shard_num: number; replica_num: number; host_name: string; port: number }>(
      "SELECT shard_num, replica_num, host_name, port FROM system.clusters WHERE cluster = 'citymesh' ORDER BY shard_num, replica_num");
    expect(replicas.map((r) => [r.shard_num, r.replica_num, r.host_name, r.port])).toEqual([
      [1, 1, loopbackHosts('ch-s1r1.citymesh.example'), 9000], [1, 2, loopbackHosts('ch-s1r2.citymesh.example'), 9000],
      [2, 1, loopbackHosts('ch-s2r1.citymesh.example'), 9000], [2, 2, loopbackHosts('ch-s2r2.citymesh.example'), 9000],
    ]);
    expect(await rows('SELECT macro, substitution FROM system.macros ORDER BY macro')).toEqual([
      { macro: 'replica', substitution: 'ch-s1r1' }, { macro: 'shard', substitution: '01' },
    ]);
    const remoteServers = readFileSync(join(EXAMPLE, 'config.d', 'remote_servers.xml'), 'utf8');
    expect(remoteServers.match(/<internal_replication>true<\/internal_replication>/g)).toHaveLength(2);
  });

  it.skipIf(skipReason(missingCommand('python3', 'python3')))('is well-formed XML throughout, and its grants parse', async () => {
    const files = [
      ...readdirSync(join(EXAMPLE, 'config.d')).map((f) => join(EXAMPLE, 'config.d', f)),
      ...readdirSync(join(EXAMPLE, 'users.d')).map((f) => join(EXAMPLE, 'users.d', f)),
      join(EXAMPLE, 'keeper_config.xml'),
    ];
    const parsed = spawnSync('python3', ['-c', 'import sys, xml.dom.minidom as m\nfor f in sys.argv[1:]: m.parse(f)', ...files], { encoding: 'utf8' });
    expect(parsed.status, parsed.stderr).toBe(0);
    const users = readFileSync(join(EXAMPLE, 'users.d', 'citymesh.xml'), 'utf8');
    const grants = [...users.matchAll(/<query>([^<]+)<\/query>/g)].map((m) => m[1]!);
    expect(grants).toContain('GRANT SELECT, INSERT ON citymesh.*');
    // users.xml grants name no grantee (the user they sit in); the parser wants one.
    for (const grant of grants) expect(await formatQuery(`${grant} TO someone`)).toMatch(/^GRANT .* TO someone$/);
  });
});

describe('rendered cluster DDL', () => {
  const real = renderClusterSchema(schemaMigrations, { cluster: CLUSTER, database: 'cluster_shape' });
  const synthetic = renderClusterSchema(syntheticMigrations, { cluster: CLUSTER, database: 'synthetic_shape' });

  it('parses with ClickHouse\'s parser, statement by statement, keeping ON CLUSTER and each table\'s engine', async () => {
    for (const schema of [real, synthetic]) {
      const engines = new Map<string, string>();
      for (const table of schema.tables) {
        if (table.local) engines.set(table.local.name, table.local.engine);
        if (table.role !== 'materialized-view' && table.role !== 'view') engines.set(table.name, table.engine);
      }
      for (const statement of allStatements(schema)) {
        const formatted = await formatQuery(statement);
        const seeded = /^INSERT INTO \w+\.(\w+) /.exec(formatted)?.[1];
        if (seeded !== undefined) {
          // Seed rows are not DDL: written once through the Distributed table the application uses.
          expect(engines.get(seeded), formatted.slice(0, 80)).toBe('Distributed');
          continue;
        }
        expect(formatted.split('\n')[0]).toContain(` ON CLUSTER ${CLUSTER}`);
        const created = /^CREATE TABLE IF NOT EXISTS \w+\.(\w+) /.exec(formatted)?.[1];
        if (created === undefined) continue;
        const engineLine = formatted.split('\n').find((line) => line.startsWith('ENGINE = '))!;
        // A table a later migration drops is not in the final list: it is replicated or distributed all the same.
        expect(engineLine, created).toMatch(new RegExp(`^ENGINE = ${engines.get(created) ?? '(Replicated\\w*MergeTree|Distributed)'}\\(`));
        if (engineLine.startsWith('ENGINE = Distributed(')) {
          expect(engineLine).toMatch(new RegExp(`^ENGINE = Distributed\\('${CLUSTER}', '\\w+', '${created}_local', cityHash64\\(least\\(`));
        } else {
          const shards = created.endsWith('_local') ? '{shard}' : 'all';
          expect(engineLine).toContain(`('/clickhouse/tables/${shards}/{database}/${created}', '{replica}'`);
        }
      }
    }
    expect(real.migrations.map((m) => m.version)).toEqual(schemaMigrations.map((m) => m.version).sort((a, b) => a - b));
  });

  it('matches the single-node schema column by column, for X_local and Distributed X (every migration there is)', async () => {
    const report = await migrate(store.client);
    expect(report.applied).toEqual(schemaMigrations.map((m) => m.version).sort((a, b) => a - b));
    const singleNode = [...(await describeDatabase('default')).tables.keys()].sort();
    expect(singleNode).toEqual(real.tables.map((t) => t.name).sort());
    await createWithoutCluster(real, 'cluster_shape');
    const clustered = [...(await describeDatabase('cluster_shape')).tables.keys()].sort();
    expect(clustered).toEqual(real.tables.flatMap((t) => (t.local ? [t.name, t.local.name] : [t.name])).sort());
    await expectSameSchema(real, 'default', 'cluster_shape');
  });

  it('also for index, comment, ReplacingMergeTree(version), view, ALTER, MODIFY SETTING and DROP cases', async () => {
    await applySingleNode(syntheticMigrations);
    await createWithoutCluster(synthetic, 'synthetic_shape');
    const shape = await describeDatabase('synthetic_shape');
    expect(shape.tables.has('syn_scratch') || shape.tables.has('syn_scratch_local')).toBe(false);
    expect(shape.columns('syn_links').map((c) => c.name)).toEqual(['ts', 'src', 'dst', 'flow', 'value']);
    await expectSameSchema(synthetic, 'default', 'synthetic_shape');
  });

  it('fires every view that reads latency_trains on the shard the row landed on, into its _local target', async () => {
    const views = real.tables.filter((t) => t.reads?.includes('latency_trains_local'));
    expect(views.length).toBeGreaterThan(0);
    const row = toRow('alfa', 'cluster-batch', {
      trainId: 'cluster-train-1', dst: 'bravo', engine: 'stamp', startedAtUs: Date.now() * 1000, flow: 0, srcPort: 1, dscp: 0,
      sent: 2, received: 2, lost: 0, duplicated: 0, reordered: 0, rttMinUs: 100, rttMedianUs: 150, rttP99Us: 200, rttMaxUs: 200,
      jitterUs: 100, rttsUs: [100, 200], synced: false, errorEstimateUs: 0, fwdUs: [], revUs: [],
    });
    await store.client.insert({ table: 'cluster_shape.latency_trains_local', values: [row], format: 'JSONEachRow' });
    for (const view of views) {
      const [stored] = await rows<{ n: number }>(`SELECT count() AS n FROM cluster_shape.${view.writes}`);
      expect(Number(stored?.n), `${view.name} -> ${view.writes}`).toBeGreaterThan(0);
    }
  });
});

describe('a server on a cluster checks the schema instead of migrating', () => {
  const options = { cluster: CLUSTER };

  it('refuses a database migrated single-node, one without the schema, and one missing versions', async () => {
    await migrate(store.client);
    await expect(checkClusterSchema(store.client, { ...options, database: 'default' })).rejects.toThrow(/latency_trains is MergeTree, not Distributed/);
    await store.client.command({ query: 'CREATE DATABASE IF NOT EXISTS empty_db' });
    await expect(checkClusterSchema(store.client, { ...options, database: 'empty_db' })).rejects.toThrow(
      /holds no citymesh schema: run `citymesh migrate --cluster citymesh --database empty_db` first/,
    );
    await store.client.command({ query: 'CREATE DATABASE IF NOT EXISTS partial_db' });
    await store.client.command({ query: 'CREATE TABLE partial_db.schema_migrations (version UInt32, name String) ENGINE = MergeTree ORDER BY version' });
    await store.client.command({ query: 'INSERT INTO partial_db.schema_migrations VALUES (1, \'a\'), (2, \'b\')' });
    const missing = schemaMigrations.map((m) => m.version).filter((v) => v > 2).sort((a, b) => a - b);
    await expect(checkClusterSchema(store.client, { ...options, database: 'partial_db' })).rejects.toThrow(`lacks migration(s) ${missing.join(', ')}`);
  });
});

const cli = (...args: string[]) => runCli(args);

describe('citymesh migrate', () => {
  it('--print --cluster prints the rendered schema, every `;` block parsing, versions recorded in the ledger', async () => {
    const got = await cli('migrate', '--cluster', CLUSTER, '--database', 'citymesh', '--print');
    expect(got.code, got.stderr).toBe(0);
    expect(got.stdout).toBe(migrationScript({ cluster: CLUSTER, database: 'citymesh' }));
    const blocks = got.stdout.split(';\n').map((b) => b.trim()).filter(Boolean);
    const schema = renderClusterSchema(schemaMigrations, { cluster: CLUSTER, database: 'citymesh' });
    expect(blocks.length).toBe(allStatements(schema).length + schema.migrations.length);
    for (const block of blocks) {
      const formatted = await formatQuery(block);
      if (formatted.startsWith('INSERT INTO citymesh.schema_migrations')) expect(formatted).toBe('INSERT INTO citymesh.schema_migrations (version, name) FORMAT Values');
      else if (formatted.startsWith('INSERT')) expect(formatted).toMatch(/^INSERT INTO citymesh\.\w+ \([\w, ]+\)\s+SELECT/); // a seed, through Distributed
      else expect(formatted.split('\n')[0]).toContain(` ON CLUSTER ${CLUSTER}`);
    }
    for (const m of schemaMigrations) expect(got.stdout).toContain(`VALUES (${m.version}, '${m.name}');`);
  });

  it('applies the single-node schema to an embedded store, then skips it; refuses --cluster there', async () => {
    const dataDir = join(dir, 'cli-data');
    const versions = schemaMigrations.map((m) => String(m.version).padStart(4, '0'));
    const first = await cli('migrate', '--data-dir', dataDir);
    expect(first.code, first.stderr).toBe(0);
    for (const v of versions) expect(first.stdout).toMatch(new RegExp(`${v} \\w+ +applied`));
    const second = await cli('migrate', '--data-dir', dataDir);
    expect(second.code, second.stderr).toBe(0);
    for (const v of versions) expect(second.stdout).toMatch(new RegExp(`${v} \\w+ +skipped \\(already applied\\)`));
    const refused = await cli('migrate', '--cluster', CLUSTER, '--data-dir', dataDir);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`citymesh: migrate --cluster ${CLUSTER} needs CLICKHOUSE_URL`);
    expect(refused.stderr).toContain('without ClickHouse Keeper');
  });
});
