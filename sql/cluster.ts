/**
 * citymesh on a ClickHouse cluster. The schema is not written twice: every
 * single-node migration statement is rendered into its cluster form here, so
 * the two can differ only where a cluster must.
 *
 * - Every CREATE/ALTER/DROP runs ON CLUSTER, which needs ClickHouse Keeper
 *   (it also holds the replicas' logs and the insert deduplication hashes).
 * - A data table X becomes X_local on every shard, the Replicated form of its
 *   engine, and X itself becomes Distributed over X_local with the same
 *   columns, so the application keeps reading and writing the plain names.
 *   Rows are sharded by link, the unordered pair of its two centres: both
 *   directions of a link and their minute rollups land on one shard, and an
 *   SLA minute, which needs both directions, is computed where its rows are.
 * - Small control tables (ledger, SLA records, job claims, alert state) are
 *   not sharded: every node holds all their rows under one shard-less Keeper
 *   path, so a job claim deduplicates cluster-wide and any node can use them
 *   inside a distributed query without a second distributed read.
 * - A materialized view exists on every node, reading X_local and writing
 *   Y_local: an insert through Distributed lands on one shard's X_local, and
 *   the view fires there.
 */
import type { ClickHouseClient, ClickHouseSettings } from '@clickhouse/client';
import { ledgerDdl, type MigrationReport } from './migrate.js';
import { migrations as allMigrations, type Migration } from './migrations/index.js';
import { closingBracket, findTopLevelKeyword, isKeyword, isKeywords, isName, lex, splitTopLevel, textOf, type Token } from './sql-lexer.js';

export interface ClusterOptions {
  /** Cluster name in the servers' remote_servers. */
  cluster: string;
  /** Database holding citymesh's tables on every node (default "default"). */
  database?: string | undefined;
  /**
   * 'keeper' (default): Replicated engines and ON CLUSTER DDL, as above.
   * 'none': a cluster without ClickHouse Keeper, sharded but not replicated
   * (see UNREPLICATED): plain engines, statements without ON CLUSTER,
   * applied on every node in turn (migrateClusterNodes).
   */
  replication?: ClusterReplication | undefined;
}

export type ClusterReplication = 'keeper' | 'none';

/**
 * Without replication (no Keeper, hence no ON CLUSTER and no Replicated
 * tables) the same sharding holds, and what replication gave is given up:
 *
 * - Each shard's rows live on one node's disk only: a lost disk loses them
 *   (back them up; the single-node store has the same exposure).
 * - While a shard is down, a read that needs it fails (the API answers
 *   store_unavailable rather than a partial answer) and an insert of rows
 *   that hash to it fails: probes keep those batches in their spools and
 *   send them again once the shard is back, so nothing is lost.
 * - Control tables, which replication copied to every node, are held by the
 *   first shard (a Distributed table whose sharding key is the constant 0):
 *   job claims still deduplicate cluster-wide there, and while the first
 *   shard is down, claims, alert state and reports wait for it.
 * - Each node keeps its own ledger of applied versions (schema_migrations is
 *   a plain table on every node); the server checks every node's ledger and
 *   tables through clusterAllReplicas before it serves.
 * - Deduplication of a replayed batch is per shard, within the tables'
 *   non_replicated_deduplication_window (a count of blocks), as on one node.
 */
export const UNREPLICATED = 'none' as const satisfies ClusterReplication;

/**
 * Tables every node holds in full. They are small, written rarely, and rely
 * on cluster-wide deduplication (job_claims: the first insert of a slot wins),
 * are polled by every server (diagnostic_requests), or are records joined into
 * queries over sharded data (SLA maintenance windows, our own
 * throughput tests' load windows).
 */
export const CONTROL_TABLES: readonly string[] = [
  'schema_migrations', 'sla_maintenance', 'sla_reports', 'job_claims', 'diagnostic_requests', 'load_windows', 'batch_ledger',
  // What probes report about themselves (migration 0013): small, read whole by every server.
  'probe_reports',
];
/** Alert state and silences (migration 0007) are control tables by name. */
export const CONTROL_TABLE_PREFIX = 'alert_';
/**
 * Column pairs naming a link's two ends; a data table is sharded by the first
 * pair it has. NIC samples (centre, peer) follow their link too, so both ends'
 * interfaces of a link sit on the shard of its latency, and so do per-link
 * tables keyed by the ordered pair (a < b: SLA minutes and hours): the hash of
 * (least, greatest) is the same for every table of a link.
 */
const LINK_ENDS: ReadonlyArray<readonly [string, string]> = [['src', 'dst'], ['centre', 'peer'], ['a', 'b']];

/**
 * How long Keeper keeps a block's deduplication hash (the count window, kept
 * from the single-node table, also applies; the smaller bound wins). A batch
 * is replayed only while it is still in its probe's spool, and the spool is
 * bounded: at the default plan a probe with a single peer writes about 36 MB
 * of trains a day, so the default 256 MB spool holds about 7 days before its
 * oldest batches are dropped (and counted as a gap) instead of replayed.
 * Ten days covers that with margin; ClickHouse's own default is one hour.
 */
export const DEDUP_WINDOW_SECONDS = 10 * 86_400;

/** Unquoted names only: these are written into DDL and Keeper paths. */
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;
const MERGE_TREE_FAMILY = /^(Replacing|Summing|Aggregating|Collapsing|VersionedCollapsing|Graphite|Coalescing)?MergeTree$/;

export interface ClusterTable {
  /** The name the application uses. */
  name: string;
  role: 'sharded' | 'control' | 'materialized-view' | 'view';
  /** Engine of `name` on the cluster: Distributed for a sharded table. */
  engine: string;
  /** Sharded tables: the table on each shard that holds the rows. */
  local?: { name: string; engine: string };
  shardingKey?: string;
  /** Materialized views: the tables they read and write on each node. */
  reads?: string[];
  writes?: string;
}

export interface ClusterSchema {
  /** Run before any migration: the database and the replicated ledger. */
  setup: string[];
  /** The migrations in version order, each statement rendered for the cluster. */
  migrations: Migration[];
  /** Every table and view as the cluster holds them after the last migration. */
  tables: ClusterTable[];
}

/** Every migration statement in its cluster form (same versions and names). */
export function renderClusterMigrations(migrations: readonly Migration[], options: ClusterOptions): Migration[] {
  return renderClusterSchema(migrations, options).migrations;
}

export function renderClusterSchema(migrations: readonly Migration[], options: ClusterOptions): ClusterSchema {
  const database = options.database ?? 'default';
  checkIdentifier('cluster name', options.cluster);
  checkIdentifier('database name', database);
  const replicated = (options.replication ?? 'keeper') === 'keeper';
  const renderer = new ClusterRenderer(options.cluster, database, replicated);
  const setup = [`CREATE DATABASE IF NOT EXISTS ${database}${replicated ? ` ON CLUSTER ${options.cluster}` : ''}`, ...renderer.render(ledgerDdl)];
  const rendered = [...migrations].sort((a, b) => a.version - b.version).map((migration) => ({
    version: migration.version,
    name: migration.name,
    statements: migration.statements.flatMap((statement, index) => {
      try {
        return renderer.render(statement);
      } catch (error) {
        throw new Error(`migration ${migration.version} (${migration.name}), statement ${index + 1}: ${(error as Error).message}`);
      }
    }),
  }));
  return { setup, migrations: rendered, tables: [...renderer.tables.values()] };
}

/**
 * Settings every INSERT carries on a cluster so that a replayed batch is
 * still stored exactly once (sql/store.ts adds them when the store has a
 * cluster; per-insert settings such as the batch's insert_deduplication_token
 * are merged on top by the client).
 *
 * - distributed_foreground_insert: the INSERT into Distributed returns only
 *   after every shard's local table took its rows (at least one replica per
 *   shard with internal_replication). In the default background mode the ack
 *   means "queued on the receiving node's disk", and whether a retried batch,
 *   perhaps sent to another node, deduplicates against a queued one is not
 *   documented (ClickHouse issue #76405). Foreground, the batch is split by
 *   the sharding key the same way every time, each shard gets the same rows
 *   with the same token, and a retry after a partial failure completes the
 *   missing shards while the others drop their copy as a duplicate.
 *   https://clickhouse.com/docs/reference/settings/session-settings/distributed
 * - distributed_background_insert_timeout (alias insert_distributed_timeout,
 *   despite its name it bounds the foreground insert) and insert_quorum_timeout:
 *   fail within 20 s, under the client's 30 s request timeout, so a stuck shard
 *   yields store_unavailable and the batch stays in the probe's spool.
 * - insert_quorum 'auto': acknowledged only once a majority of the shard's
 *   replicas hold the rows, so an acked batch, which the probe then deletes,
 *   survives the loss of one replica's disk. With two replicas per shard the
 *   majority is both: while one is down, inserts fail fast and probes keep
 *   their batches until it is back (nothing is lost, the live view pauses);
 *   three replicas per shard keep ingest running through one failure.
 *   https://clickhouse.com/docs/reference/settings/session-settings/insert-quorum
 * - insert_deduplicate and deduplicate_blocks_in_dependent_materialized_views:
 *   the token also guards the rollups the views write on each shard; with
 *   replicated tables the hashes live in Keeper, so a retry reaching another
 *   replica is still recognised.
 *   https://clickhouse.com/docs/guides/developer/deduplicating-inserts-on-retries
 */
export function clusterInsertSettings(): ClickHouseSettings {
  return {
    insert_deduplicate: 1,
    deduplicate_blocks_in_dependent_materialized_views: 1,
    distributed_foreground_insert: 1,
    distributed_background_insert_timeout: 20,
    insert_quorum: 'auto',
    insert_quorum_timeout: 20_000,
  };
}

/**
 * The whole schema as one script, `;` after each statement, for review or for
 * `clickhouse-client --multiquery`: cluster DDL when `options` is given, the
 * single-node statements otherwise. It records each version in the ledger as
 * `citymesh migrate` does, so servers accept a schema applied this way.
 */
export function migrationScript(options?: ClusterOptions, migrations: readonly Migration[] = allMigrations): string {
  const ordered = [...migrations].sort((a, b) => a.version - b.version);
  const blocks: string[] = [];
  let ledger = 'schema_migrations';
  let list: Migration[] = ordered;
  if (options) {
    const schema = renderClusterSchema(ordered, options);
    ledger = `${options.database ?? 'default'}.schema_migrations`;
    list = schema.migrations;
    const how = (options.replication ?? 'keeper') === 'keeper'
      ? 'ON CLUSTER needs ClickHouse Keeper; run once, from any node'
      : 'sharded without replication: run on every node of the cluster';
    blocks.push(
      `-- citymesh schema for ClickHouse cluster ${options.cluster}, database ${options.database ?? 'default'}` +
        `\n-- (${how})\n${schema.setup[0]}`,
      ...schema.setup.slice(1),
    );
  } else {
    blocks.push(`-- citymesh schema for a single ClickHouse server\n${ledgerDdl}`);
  }
  for (const migration of list) {
    const [first, ...rest] = migration.statements;
    if (first !== undefined) blocks.push(`-- ${String(migration.version).padStart(4, '0')} ${migration.name}\n${first}`, ...rest);
    blocks.push(`INSERT INTO ${ledger} (version, name) VALUES (${migration.version}, ${sqlString(migration.name)})`);
  }
  return blocks.map((block) => `${block};\n`).join('\n');
}

/**
 * Apply the cluster schema through one node (ON CLUSTER reaches the others),
 * once per version, recorded in the replicated ledger; then check what the
 * node holds. Safe to run again: applied versions are skipped and every
 * statement is idempotent.
 */
export async function migrateCluster(
  client: ClickHouseClient,
  options: ClusterOptions,
  migrations: readonly Migration[] = allMigrations,
): Promise<MigrationReport> {
  const schema = renderClusterSchema(migrations, options);
  try {
    for (const statement of schema.setup) await client.command({ query: statement });
  } catch (error) {
    const message = (error as Error).message;
    if (!/Replicated DDL queries are disabled|DistributedDDL|distributed_ddl/i.test(message)) throw error;
    throw new Error(`${message.split('\n')[0]}: this cluster has no DDL worker (no ClickHouse Keeper), so ON CLUSTER cannot run; ` +
      'migrate it without replication, node by node: --replication none --node URL (once per node)');
  }
  const ledger = `${options.database ?? 'default'}.schema_migrations`;
  const done = await ledgerVersions(client, ledger);
  const report: MigrationReport = { applied: [], skipped: [] };
  for (const migration of schema.migrations) {
    if (done.has(migration.version)) {
      report.skipped.push(migration.version);
      continue;
    }
    for (const statement of migration.statements) await client.command({ query: statement });
    await client.insert({ table: ledger, values: [{ version: migration.version, name: migration.name }], format: 'JSONEachRow' });
    report.applied.push(migration.version);
  }
  await checkClusterSchema(client, options, migrations);
  return report;
}

/** One node of a cluster without a DDL worker, as migrateClusterNodes reaches it. */
export interface ClusterNodeClient {
  /** For messages: the node's URL. */
  label: string;
  client: ClickHouseClient;
}

/**
 * Apply the unreplicated cluster schema (replication 'none') node by node:
 * without Keeper there is no DDL worker, so ON CLUSTER is refused and each
 * node gets the same statements in turn, version by version (every node has
 * a version's tables before any node gets the next one), each node recording
 * what it applied in its own ledger. Then every node of the cluster is
 * checked through clusterAllReplicas, so a node missing from `nodes` is named.
 * Safe to run again, and to run with a node added to the cluster: only the
 * versions a node lacks are applied to it.
 */
export async function migrateClusterNodes(
  nodes: readonly ClusterNodeClient[],
  options: ClusterOptions,
  migrations: readonly Migration[] = allMigrations,
): Promise<MigrationReport> {
  if (options.replication !== UNREPLICATED) throw new Error('node-by-node migration is for clusters without replication (replication: none); a Keeper cluster migrates ON CLUSTER');
  if (nodes.length === 0) throw new Error(`cluster ${options.cluster}: no node to migrate`);
  const schema = renderClusterSchema(migrations, options);
  const ledger = `${options.database ?? 'default'}.schema_migrations`;
  for (const node of nodes) {
    for (const statement of schema.setup) await onNode(node, statement);
  }
  const done = await Promise.all(nodes.map((node) => ledgerVersions(node.client, ledger)));
  const report: MigrationReport = { applied: [], skipped: [] };
  for (const migration of schema.migrations) {
    const pending = nodes.filter((_, k) => !done[k]!.has(migration.version));
    if (pending.length === 0) {
      report.skipped.push(migration.version);
      continue;
    }
    const isSeed = runsOncePerCluster;
    for (const node of pending) {
      for (const statement of migration.statements.filter((s) => !isSeed(s))) await onNode(node, statement);
    }
    // Seed rows go through the Distributed name once, and never again for a node added later.
    if (pending.length === nodes.length) {
      for (const statement of migration.statements.filter(isSeed)) await onNode(nodes[0]!, statement);
    }
    for (const node of pending) {
      await node.client.insert({ table: ledger, values: [{ version: migration.version, name: migration.name }], format: 'JSONEachRow' });
    }
    report.applied.push(migration.version);
  }
  await checkClusterSchema(nodes[0]!.client, options, migrations);
  return report;
}

/** Seed rows written through a Distributed table: once for the whole cluster (a seed into a node's _local table runs on every node). */
export function runsOncePerCluster(statement: string): boolean {
  return /^\s*INSERT\b/i.test(statement) && !/^\s*INSERT\s+INTO\s+\S+_local\b/i.test(statement);
}

async function onNode(node: ClusterNodeClient, statement: string): Promise<void> {
  try {
    await node.client.command({ query: statement });
  } catch (error) {
    throw new Error(`node ${node.label}: ${(error as Error).message}`);
  }
}

/**
 * What a server runs on a cluster instead of migrating: the ledger must list
 * every version this build knows, and every table must have its cluster
 * engine (a database migrated single-node is refused, never "fixed" with
 * single-node DDL). Returns the versions found, as skipped.
 */
export async function checkClusterSchema(
  client: ClickHouseClient,
  options: ClusterOptions,
  migrations: readonly Migration[] = allMigrations,
): Promise<MigrationReport> {
  const schema = renderClusterSchema(migrations, options);
  const database = options.database ?? 'default';
  const unreplicated = options.replication === UNREPLICATED;
  const migrateHint = `run \`citymesh migrate --cluster ${options.cluster} --database ${database}` +
    `${unreplicated ? ' --replication none --node URL…' : ''}\` first`;
  const result = await client.query({
    query: 'SELECT name, engine, engine_full FROM system.tables WHERE database = {database:String}',
    query_params: { database },
    format: 'JSONEachRow',
  });
  const found = new Map((await result.json<{ name: string; engine: string; engine_full: string }>()).map((row) => [row.name, row]));
  if (!found.has('schema_migrations')) throw new Error(`database ${database} holds no citymesh schema: ${migrateHint}`);
  const applied = await ledgerVersions(client, `${database}.schema_migrations`);
  const missing = schema.migrations.filter((m) => !applied.has(m.version)).map((m) => m.version);
  if (missing.length > 0) throw new Error(`the cluster schema in ${database} lacks migration(s) ${missing.join(', ')}: ${migrateHint}`);
  const problems = schemaProblems(found, schema, options.cluster);
  if (problems.length === 0 && unreplicated) problems.push(...(await otherNodesProblems(client, schema, options, database, migrateHint)));
  if (problems.length > 0) {
    throw new Error(
      `database ${database} does not hold the cluster schema (${problems.slice(0, 4).join('; ')}` +
        `${problems.length > 4 ? `; ${problems.length - 4} more` : ''}): it was created single-node or for another cluster`,
    );
  }
  return { applied: [], skipped: [...applied].sort((a, b) => a - b) };
}

type TableEngines = Map<string, { engine: string; engine_full: string }>;

function schemaProblems(found: TableEngines, schema: ClusterSchema, cluster: string): string[] {
  const problems: string[] = [];
  const expect = (name: string, engine: string) => {
    const table = found.get(name);
    if (table?.engine !== engine) problems.push(`${name} is ${table?.engine ?? 'missing'}, not ${engine}`);
  };
  for (const table of schema.tables) {
    expect(table.name, table.engine);
    if (table.local) expect(table.local.name, table.local.engine);
    const distributedOver = /^Distributed\('([^']*)'/.exec(found.get(table.name)?.engine_full ?? '')?.[1];
    if (table.engine === 'Distributed' && distributedOver !== undefined && distributedOver !== cluster) {
      problems.push(`${table.name} is distributed over cluster ${distributedOver}, not ${cluster}`);
    }
  }
  return problems;
}

/**
 * Without ON CLUSTER nothing guarantees that the other nodes hold what this
 * one holds: read every node's tables and ledger through clusterAllReplicas
 * (which also fails, naming the node, when one is down).
 */
async function otherNodesProblems(client: ClickHouseClient, schema: ClusterSchema, options: ClusterOptions, database: string, hint: string): Promise<string[]> {
  const cluster = sqlString(options.cluster);
  const nodes = await (await client.query({
    query: `SELECT shard_num, replica_num, concat(host_name, ':', toString(port)) AS node FROM system.clusters WHERE cluster = ${cluster}`,
    format: 'JSONEachRow',
  })).json<{ shard_num: number; replica_num: number; node: string }>();
  if (nodes.length === 0) return [`this node's configuration has no cluster ${options.cluster} (remote_servers)`];
  const tables = await (await client.query({
    query: `SELECT _shard_num AS shard, name, engine, engine_full FROM clusterAllReplicas(${cluster}, system.tables) WHERE database = {database:String}`,
    query_params: { database },
    format: 'JSONEachRow',
  })).json<{ shard: number; name: string; engine: string; engine_full: string }>();
  const problems: string[] = [];
  const expected = schema.migrations.map((m) => m.version);
  for (const node of nodes) {
    const found: TableEngines = new Map(tables.filter((t) => Number(t.shard) === Number(node.shard_num)).map((t) => [t.name, t]));
    if (!found.has('schema_migrations')) {
      problems.push(`node ${node.node} (shard ${node.shard_num}) holds no citymesh schema in ${database}: ${hint}, naming every node`);
      continue;
    }
    problems.push(...schemaProblems(found, schema, options.cluster).map((p) => `node ${node.node}: ${p}`));
  }
  if (problems.length > 0) return problems;
  const ledgers = await (await client.query({
    query: `SELECT _shard_num AS shard, groupUniqArray(version) AS versions FROM clusterAllReplicas(${cluster}, ${database}.schema_migrations) GROUP BY shard`,
    format: 'JSONEachRow',
  })).json<{ shard: number; versions: number[] }>();
  for (const node of nodes) {
    const versions = new Set((ledgers.find((l) => Number(l.shard) === Number(node.shard_num))?.versions ?? []).map(Number));
    const missing = expected.filter((v) => !versions.has(v));
    if (missing.length > 0) problems.push(`node ${node.node} lacks migration(s) ${missing.join(', ')}: ${hint}`);
  }
  return problems;
}

async function ledgerVersions(client: ClickHouseClient, ledger: string): Promise<Set<number>> {
  const result = await client.query({ query: `SELECT DISTINCT version FROM ${ledger}`, format: 'JSONEachRow' });
  return new Set((await result.json<{ version: number }>()).map((row) => Number(row.version)));
}

function checkIdentifier(what: string, value: string): void {
  if (!IDENTIFIER.test(value)) throw new Error(`${what} "${value}" must be letters, digits and _, not starting with a digit (it is written unquoted into the DDL)`);
}

function sqlString(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/** Words that end a table reference in FROM/JOIN: what follows is no alias. */
const NOT_AN_ALIAS = new Set([
  'WHERE', 'PREWHERE', 'GROUP', 'ORDER', 'LIMIT', 'HAVING', 'UNION', 'INTERSECT', 'EXCEPT', 'SETTINGS', 'FORMAT', 'FINAL',
  'SAMPLE', 'ARRAY', 'LEFT', 'RIGHT', 'INNER', 'OUTER', 'FULL', 'CROSS', 'JOIN', 'ON', 'USING', 'GLOBAL', 'ANY', 'ALL',
  'ASOF', 'SEMI', 'ANTI', 'PASTE', 'WINDOW', 'QUALIFY', 'OFFSET',
]);

type AlterKind = 'structure' | 'local';

/** ALTER commands that change columns: Distributed must see them too. Anything else known runs on the data only. */
const ALTER_COMMANDS: ReadonlyArray<[string, string | null, AlterKind]> = [
  ['ADD', 'COLUMN', 'structure'], ['DROP', 'COLUMN', 'structure'], ['MODIFY', 'COLUMN', 'structure'],
  ['RENAME', 'COLUMN', 'structure'], ['COMMENT', 'COLUMN', 'structure'],
  ['CLEAR', 'COLUMN', 'local'], ['MATERIALIZE', 'COLUMN', 'local'],
  ['ADD', 'INDEX', 'local'], ['DROP', 'INDEX', 'local'], ['MATERIALIZE', 'INDEX', 'local'], ['CLEAR', 'INDEX', 'local'],
  ['ADD', 'PROJECTION', 'local'], ['DROP', 'PROJECTION', 'local'], ['MATERIALIZE', 'PROJECTION', 'local'], ['CLEAR', 'PROJECTION', 'local'],
  ['ADD', 'CONSTRAINT', 'local'], ['DROP', 'CONSTRAINT', 'local'],
  ['MODIFY', 'TTL', 'local'], ['REMOVE', 'TTL', 'local'], ['MATERIALIZE', 'TTL', 'local'],
  ['MODIFY', 'SETTING', 'local'], ['RESET', 'SETTING', 'local'], ['MODIFY', 'ORDER', 'local'],
  ['DELETE', 'WHERE', 'local'], ['UPDATE', null, 'local'],
];

class ClusterRenderer {
  /** What the migrations so far have created, by the name the application uses. */
  readonly tables = new Map<string, ClusterTable>();
  /** ` ON CLUSTER name`, or nothing when each node is migrated in turn. */
  private readonly onCluster: string;

  constructor(private readonly cluster: string, private readonly database: string, private readonly replicated: boolean) {
    this.onCluster = replicated ? ` ON CLUSTER ${cluster}` : '';
  }

  render(sql: string): string[] {
    const t = lex(sql);
    while (t.at(-1)?.text === ';') t.pop();
    if (isKeywords(t, 0, 'CREATE', 'TABLE')) return this.createTable(sql, t, 2);
    if (isKeywords(t, 0, 'CREATE', 'MATERIALIZED', 'VIEW')) return this.createMaterializedView(sql, t, 3);
    if (isKeywords(t, 0, 'CREATE', 'VIEW')) return this.createView(sql, t, 2);
    if (isKeywords(t, 0, 'ALTER', 'TABLE')) return this.alterTable(sql, t, 2);
    if (isKeywords(t, 0, 'DROP', 'TABLE') || isKeywords(t, 0, 'DROP', 'VIEW')) return this.drop(sql, t);
    if (isKeywords(t, 0, 'INSERT', 'INTO')) return this.insert(sql, t);
    const start = textOf(sql, t, 0, Math.min(t.length, 4));
    throw new Error(`"${start} …" is a kind of statement the cluster renderer does not know yet: teach sql/cluster.ts to render it`);
  }

  private createTable(sql: string, t: Token[], at: number): string[] {
    const [ifNotExists, nameAt] = optionalKeywords(t, at, 'IF', 'NOT', 'EXISTS');
    const name = this.tableName(sql, t, nameAt);
    const open = nameAt + 1;
    this.refuseOnCluster(t, open, `CREATE TABLE ${name}`);
    if (t[open]?.text !== '(') throw new Error(`CREATE TABLE ${name}: only tables with a column list are rendered (not AS …)`);
    const close = closingBracket(t, open);
    const columns = splitTopLevel(t, open + 1, close)
      .filter(([a]) => !['INDEX', 'PROJECTION', 'CONSTRAINT'].some((keyword) => isKeyword(t[a], keyword)));
    let e = close + 1;
    if (!isKeyword(t[e], 'ENGINE')) throw new Error(`CREATE TABLE ${name}: ENGINE must follow the column list`);
    e += t[e + 1]?.text === '=' ? 2 : 1;
    const engine = t[e];
    if (!isName(engine)) throw new Error(`CREATE TABLE ${name}: no engine name after ENGINE`);
    let engineArgs = '';
    let afterEngine = e + 1;
    if (t[e + 1]?.text === '(') {
      const argsClose = closingBracket(t, e + 1);
      engineArgs = textOf(sql, t, e + 2, argsClose);
      afterEngine = argsClose + 1;
    }
    const clauses = this.tableClauses(sql, t, afterEngine, name);
    const columnList = textOf(sql, t, open, close + 1);
    const create = (table: string) => `CREATE TABLE ${ifNotExists}${this.qualified(table)}${this.onCluster}\n${columnList}`;
    const shardingKey = shardingKeyOf(name, columns.map(([a]) => t[a]!.value));
    const engineOf = (keeperPath: string) =>
      this.replicated ? replicatedEngine(name, engine.value, engineArgs, keeperPath) : plainEngine(name, engine.value, engineArgs);
    if (shardingKey === null && (this.replicated || name === 'schema_migrations')) {
      // Without replication the ledger is each node's own record of what was applied to it.
      const replicated = engineOf(`/clickhouse/tables/all/{database}/${name}`);
      this.tables.set(name, { name, role: 'control', engine: replicated.name });
      return [`${create(name)}\nENGINE = ${replicated.sql}${clauses}`];
    }
    const local = `${name}_local`;
    const replicated = engineOf(`/clickhouse/tables/{shard}/{database}/${local}`);
    // Without replication a control table is held whole by the first shard (UNREPLICATED).
    const key = shardingKey ?? '0';
    this.tables.set(name, { name, role: shardingKey === null ? 'control' : 'sharded', engine: 'Distributed', local: { name: local, engine: replicated.name }, shardingKey: key });
    const distributedColumns = columns.map(([a, b]) => textOf(sql, t, a, b)).join(',\n    ');
    return [
      `${create(local)}\nENGINE = ${replicated.sql}${clauses}`,
      `CREATE TABLE ${ifNotExists}${this.qualified(name)}${this.onCluster}\n(\n    ${distributedColumns}\n)\n` +
        `ENGINE = Distributed(${sqlString(this.cluster)}, ${sqlString(this.database)}, ${sqlString(local)}, ${key})`,
    ];
  }

  /** PARTITION BY … TTL … SETTINGS … as written, with the deduplication window in its replicated form. */
  private tableClauses(sql: string, t: Token[], from: number, table: string): string {
    const settingsAt = findTopLevelKeyword(t, from, t.length, ['SETTINGS']);
    if (settingsAt < 0) return from < t.length ? `\n${textOf(sql, t, from, t.length)}` : '';
    const commentAt = findTopLevelKeyword(t, settingsAt + 1, t.length, ['COMMENT']);
    const settingsEnd = commentAt < 0 ? t.length : commentAt;
    const settings = this.replicated ? replicatedSettings(sql, t, settingsAt + 1, settingsEnd, table) : textOf(sql, t, settingsAt + 1, settingsEnd);
    return [textOf(sql, t, from, settingsAt), `SETTINGS ${settings}`, textOf(sql, t, settingsEnd, t.length)]
      .filter((part) => part !== '')
      .map((part) => `\n${part}`)
      .join('');
  }

  private createMaterializedView(sql: string, t: Token[], at: number): string[] {
    const [ifNotExists, nameAt] = optionalKeywords(t, at, 'IF', 'NOT', 'EXISTS');
    const name = this.tableName(sql, t, nameAt);
    let k = nameAt + 1;
    this.refuseOnCluster(t, k, `materialized view ${name}`);
    if (isKeyword(t[k], 'REFRESH')) throw new Error(`materialized view ${name} is refreshable: not rendered for a cluster yet`);
    if (!isKeyword(t[k], 'TO')) throw new Error(`materialized view ${name} has no TO table: give it one (an implicit inner table has no per-shard form)`);
    const target = this.known(this.tableName(sql, t, k + 1), `materialized view ${name} writes to`);
    k += 2;
    let columnList = '';
    if (t[k]?.text === '(') {
      const close = closingBracket(t, k);
      columnList = ` ${textOf(sql, t, k, close + 1)}`;
      k = close + 1;
    }
    if (!isKeyword(t[k], 'AS')) throw new Error(`materialized view ${name}: expected AS SELECT after TO ${target.name}`);
    const select = this.rewriteSelect(sql, t, k + 1, `materialized view ${name}`, 'local');
    for (const source of select.sources) {
      if (target.local && shardedAs(source.shardingKey) !== shardedAs(target.shardingKey)) {
        throw new Error(
          `materialized view ${name} reads ${source.name} (${source.shardingKey ?? 'not sharded'}) and writes ${target.name} ` +
            `(${target.shardingKey}): a view writes on the shard its input landed on, so both must be sharded alike`,
        );
      }
    }
    const writes = physicalName(target);
    this.tables.set(name, { name, role: 'materialized-view', engine: 'MaterializedView', reads: select.sources.map(physicalName), writes });
    return [`CREATE MATERIALIZED VIEW ${ifNotExists}${this.qualified(name)}${this.onCluster} TO ${this.qualified(writes)}${columnList}\nAS ${select.text}`];
  }

  /** A plain view reads the Distributed tables, so on any node it sees every shard. */
  private createView(sql: string, t: Token[], at: number): string[] {
    const [ifNotExists, nameAt] = optionalKeywords(t, at, 'IF', 'NOT', 'EXISTS');
    const name = this.tableName(sql, t, nameAt);
    this.refuseOnCluster(t, nameAt + 1, `view ${name}`);
    if (!isKeyword(t[nameAt + 1], 'AS')) throw new Error(`view ${name}: expected AS SELECT`);
    const select = this.rewriteSelect(sql, t, nameAt + 2, `view ${name}`, 'distributed');
    this.tables.set(name, { name, role: 'view', engine: 'View' });
    return [`CREATE VIEW ${ifNotExists}${this.qualified(name)}${this.onCluster}\nAS ${select.text}`];
  }

  /**
   * The SELECT from tokens[from] on, with every table after FROM/JOIN
   * qualified and, for 'local', pointed at the data on this node. A table's
   * name anywhere else is refused: a regex-free rewrite must not guess.
   */
  private rewriteSelect(sql: string, t: Token[], from: number, owner: string, mode: 'local' | 'distributed'): { text: string; sources: ClusterTable[] } {
    if (from >= t.length) throw new Error(`${owner}: no SELECT`);
    const qualifiers = new Set(t.filter((token, k) => isName(token) && t[k + 1]?.text === '.').map((token) => token.value));
    const sources: ClusterTable[] = [];
    let text = '';
    let cursor = t[from]!.start;
    for (let k = from; k < t.length; k++) {
      const token = t[k]!;
      const table = isName(token) ? this.tables.get(token.value) : undefined;
      if (!table) continue;
      const [previous, next] = [t[k - 1], t[k + 1]];
      if (previous?.text === '.') throw new Error(`${owner} reads ${textOf(sql, t, k - 2, k + 1)}: migrations name tables without a database`);
      if (next?.text === '.') continue; // a column qualified by the table name; kept valid by the alias below
      if (!isKeyword(previous, 'FROM') && !isKeyword(previous, 'JOIN')) {
        throw new Error(`${owner} mentions ${token.value} outside FROM/JOIN: cannot tell whether it names the table there (rename that column or alias)`);
      }
      if (next?.text === '(') continue; // a table function that happens to share the name
      const physical = mode === 'local' ? physicalName(table) : table.name;
      const hasAlias = isKeyword(next, 'AS') || (isName(next) && !NOT_AN_ALIAS.has(next.value.toUpperCase()));
      text += sql.slice(cursor, token.start) + this.qualified(physical) + (qualifiers.has(token.value) && !hasAlias ? ` AS ${token.value}` : '');
      cursor = token.end;
      sources.push(table);
    }
    return { text: text + sql.slice(cursor, t.at(-1)!.end), sources };
  }

  private alterTable(sql: string, t: Token[], at: number): string[] {
    const name = this.tableName(sql, t, at);
    this.refuseOnCluster(t, at + 1, `ALTER TABLE ${name}`);
    const table = this.known(name, 'ALTER TABLE');
    if (table.role === 'materialized-view' || table.role === 'view') throw new Error(`ALTER TABLE ${name}: altering a view is not rendered for a cluster yet`);
    const commands = splitTopLevel(t, at + 1, t.length).map(([a, b]) => {
      const kind = alterKind(t, a, name);
      const text = this.replicated && isKeywords(t, a, 'MODIFY', 'SETTING')
        ? `MODIFY SETTING ${replicatedSettings(sql, t, a + 2, b, name)}`
        : textOf(sql, t, a, b);
      return { kind, text, drops: isKeyword(t[a], 'DROP') };
    });
    if (commands.length === 0) throw new Error(`ALTER TABLE ${name}: no command`);
    const alter = (target: string, list: typeof commands) =>
      `ALTER TABLE ${this.qualified(target)}${this.onCluster}\n    ${list.map((c) => c.text).join(',\n    ')}`;
    if (!table.local) return [alter(name, commands)];
    const onData = alter(table.local.name, commands);
    const structure = commands.filter((c) => c.kind === 'structure');
    if (structure.length === 0) return [onData];
    const onDistributed = alter(name, structure);
    // A column exists below before Distributed offers it, and leaves Distributed before it leaves the data.
    return structure.some((c) => c.drops) ? [onDistributed, onData] : [onData, onDistributed];
  }

  private drop(sql: string, t: Token[]): string[] {
    const kind = t[1]!.value.toUpperCase();
    const [ifExists, nameAt] = optionalKeywords(t, 2, 'IF', 'EXISTS');
    const name = this.tableName(sql, t, nameAt);
    this.refuseOnCluster(t, nameAt + 1, `DROP ${kind} ${name}`);
    const table = this.known(name, `DROP ${kind}`);
    this.tables.delete(name);
    // SYNC: a replicated table frees its Keeper path at once, so a later migration may create it again.
    const drop = (target: string) => `DROP ${kind} ${ifExists}${this.qualified(target)}${this.onCluster} SYNC`;
    return table.local ? [drop(name), drop(table.local.name)] : [drop(name)];
  }

  /**
   * Seed rows go in once, through the name the application uses. A seed
   * computed from other tables (INSERT … SELECT, e.g. a new rollup filled from
   * an older one) reads them through their Distributed names too, run once
   * from one node; without replication every node runs its statements itself
   * (migrateClusterNodes, or the printed script), so there each node seeds
   * its own shard: local table from local tables, placed alike.
   */
  private insert(sql: string, t: Token[]): string[] {
    const name = this.tableName(sql, t, 2);
    const target = this.known(name, 'INSERT INTO');
    const selectAt = t.findIndex((token, k) => k > 2 && isKeyword(token, 'SELECT'));
    if (selectAt < 0) return [`INSERT INTO ${this.qualified(name)} ${textOf(sql, t, 3, t.length)}`];
    const mode = this.replicated ? 'distributed' : 'local';
    const select = this.rewriteSelect(sql, t, selectAt, `INSERT INTO ${name}`, mode);
    if (mode === 'local') {
      for (const source of select.sources) {
        if (!target.local || shardedAs(source.shardingKey) !== shardedAs(target.shardingKey)) {
          throw new Error(`INSERT INTO ${name} reads ${source.name}: a seed from other tables must read and write tables sharded alike`);
        }
      }
    }
    return [`INSERT INTO ${this.qualified(mode === 'local' ? physicalName(target) : name)} ${textOf(sql, t, 3, selectAt)} ${select.text}`];
  }

  private tableName(sql: string, t: Token[], at: number): string {
    const token = t[at];
    if (!isName(token)) throw new Error(`expected a table name at "${textOf(sql, t, at, at + 1)}"`);
    if (t[at + 1]?.text === '.') throw new Error(`${textOf(sql, t, at, at + 3)}: migrations name tables without a database`);
    checkIdentifier('table name', token.value);
    return token.value;
  }

  private known(name: string, context: string): ClusterTable {
    const table = this.tables.get(name);
    if (!table) throw new Error(`${context} ${name}, which no earlier migration created`);
    return table;
  }

  private refuseOnCluster(t: Token[], at: number, what: string): void {
    if (isKeyword(t[at], 'ON')) throw new Error(`${what} already says ON CLUSTER: migrations are written for one node and rendered here`);
  }

  private qualified(table: string): string {
    return `${this.database}.${table}`;
  }
}

/** The keywords if present at `at`, as text to copy, and where the statement continues. */
function optionalKeywords(t: Token[], at: number, ...keywords: string[]): [string, number] {
  return isKeywords(t, at, ...keywords) ? [`${keywords.join(' ')} `, at + keywords.length] : ['', at];
}

/** null for a control table; the link hash for a data table; an error for a table nobody classified. */
function shardingKeyOf(table: string, columns: string[]): string | null {
  if (CONTROL_TABLES.includes(table) || table.startsWith(CONTROL_TABLE_PREFIX)) return null;
  for (const [a, b] of LINK_ENDS) {
    if (columns.includes(a) && columns.includes(b)) return linkHash(a, b);
  }
  throw new Error(
    `table ${table} is not classified for the cluster: add it to CONTROL_TABLES in sql/cluster.ts if it is small and every node ` +
      `should hold all of it, or give it the link columns it is sharded by (${LINK_ENDS.map((pair) => pair.join('/')).join(' or ')})`,
  );
}

/**
 * Where a view's rows land compared with its input's: the same key, or a
 * per-link table (a, b) fed from the trains (src, dst). A view writing a
 * link's ends as a = least(src, dst), b = greatest(src, dst) (the SLA
 * migrations do) hashes to the shard its input landed on; the renderer cannot
 * read that from the SELECT, so only this pair is accepted, not any two pairs.
 */
function shardedAs(key: string | undefined): string | undefined {
  return key === linkHash('a', 'b') ? linkHash('src', 'dst') : key;
}

function linkHash(a: string, b: string): string {
  return `cityHash64(least(${a}, ${b}), greatest(${a}, ${b}))`;
}

function plainEngine(table: string, engine: string, args: string): { name: string; sql: string } {
  if (engine.startsWith('Replicated')) throw new Error(`table ${table} is already ${engine}: migrations are written for one node`);
  if (!MERGE_TREE_FAMILY.test(engine)) throw new Error(`table ${table} uses engine ${engine}: only the MergeTree family can be sharded`);
  return { name: engine, sql: args.trim() ? `${engine}(${args.trim()})` : engine };
}

function replicatedEngine(table: string, engine: string, args: string, keeperPath: string): { name: string; sql: string } {
  if (engine.startsWith('Replicated')) throw new Error(`table ${table} is already ${engine}: migrations are written for one node`);
  if (!MERGE_TREE_FAMILY.test(engine)) throw new Error(`table ${table} uses engine ${engine}: only the MergeTree family has a replicated form`);
  const params = [sqlString(keeperPath), sqlString('{replica}'), ...(args.trim() ? [args.trim()] : [])];
  return { name: `Replicated${engine}`, sql: `Replicated${engine}(${params.join(', ')})` };
}

/** A settings list with non_replicated_deduplication_window in its replicated form (same count, plus the time window). */
function replicatedSettings(sql: string, t: Token[], from: number, to: number, table: string): string {
  const items = splitTopLevel(t, from, to);
  const names = items.map(([a]) => t[a]!.value);
  return items
    .flatMap(([a, b]) => {
      if (t[a + 1]?.text !== '=') throw new Error(`table ${table}: cannot read the setting "${textOf(sql, t, a, b)}"`);
      if (t[a]!.value !== 'non_replicated_deduplication_window') return [textOf(sql, t, a, b)];
      const replicated = [`replicated_deduplication_window = ${textOf(sql, t, a + 2, b)}`];
      if (!names.includes('replicated_deduplication_window_seconds')) replicated.push(`replicated_deduplication_window_seconds = ${DEDUP_WINDOW_SECONDS}`);
      return replicated;
    })
    .join(', ');
}

function alterKind(t: Token[], at: number, table: string): AlterKind {
  const verb = t[at]?.value.toUpperCase();
  const object = t[at + 1]?.value.toUpperCase();
  const known = ALTER_COMMANDS.find(([v, o]) => v === verb && (o === null || o === object));
  if (!known) throw new Error(`ALTER TABLE ${table}: "${verb ?? ''} ${object ?? ''}" is not rendered for a cluster yet: teach sql/cluster.ts`);
  return known[2];
}

function physicalName(table: ClusterTable): string {
  return table.local?.name ?? table.name;
}
