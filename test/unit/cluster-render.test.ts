/**
 * Rendering single-node migrations for a ClickHouse cluster, as text: what
 * goes where, in which order, and what is refused with a reason. That the
 * text is valid ClickHouse and matches the single-node schema column by
 * column is shown against the real engine in test/integration/cluster-schema.
 */
import { describe, expect, it } from 'vitest';
import { resolveServerSettings } from '../../api/settings.js';
import { renderClusterSchema, schemaMigrations, type Migration } from '../../sql/index.js';
import { syntheticMigrations } from '../fixtures/cluster-migrations.js';

const options = { cluster: 'citymesh', database: 'cm' };

function render(...statements: string[]): string[] {
  return renderClusterSchema([{ version: 1, name: 'm', statements }], options).migrations[0]!.statements;
}

function refusal(...statements: string[]): string {
  try {
    render(...statements);
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error('expected the statements to be refused');
}

const links = `CREATE TABLE IF NOT EXISTS l (ts DateTime, src String, dst String, v UInt8) ENGINE = MergeTree ORDER BY (src, dst, ts)`;

describe('classification', () => {
  it('shards tables with link columns by the unordered pair, and keeps control tables whole on every node', () => {
    const schema = renderClusterSchema(schemaMigrations, options);
    const byName = new Map(schema.tables.map((t) => [t.name, t]));
    expect(byName.get('latency_trains')).toMatchObject({
      role: 'sharded', engine: 'Distributed',
      local: { name: 'latency_trains_local', engine: 'ReplicatedMergeTree' },
      shardingKey: 'cityHash64(least(src, dst), greatest(src, dst))',
    });
    expect(byName.get('latency_1m')?.local?.engine).toBe('ReplicatedAggregatingMergeTree');
    expect(byName.get('nic_samples')?.shardingKey).toBe('cityHash64(least(centre, peer), greatest(centre, peer))');
    for (const control of ['schema_migrations', 'sla_reports', 'sla_maintenance', 'job_claims']) {
      expect(byName.get(control)).toMatchObject({ role: 'control' });
      expect(byName.get(control)?.local).toBeUndefined();
    }
    const ledger = schema.setup.join('\n');
    expect(ledger).toContain("ReplicatedReplacingMergeTree('/clickhouse/tables/all/{database}/schema_migrations', '{replica}')");
    expect(ledger).not.toContain('Distributed');
  });

  it('refuses a new table nobody classified, naming the table and where to classify it', () => {
    const message = refusal(`CREATE TABLE IF NOT EXISTS mystery (id String, at DateTime) ENGINE = MergeTree ORDER BY id`);
    expect(message).toContain('migration 1 (m), statement 1');
    expect(message).toContain('table mystery is not classified');
    expect(message).toContain('CONTROL_TABLES in sql/cluster.ts');
  });
});

describe('tables', () => {
  it('renders X_local (replicated, same clauses) and a Distributed X with the same columns and no index', () => {
    const [local, distributed] = render(
      `CREATE TABLE IF NOT EXISTS l (ts DateTime CODEC(Delta(4), ZSTD(1)), src String, dst String, INDEX s src TYPE bloom_filter GRANULARITY 4)
ENGINE = ReplacingMergeTree(ts) PARTITION BY toYYYYMM(ts) ORDER BY (src, dst) TTL ts + INTERVAL 1 DAY
SETTINGS non_replicated_deduplication_window = 7, ttl_only_drop_parts = 1`,
    );
    expect(local).toMatch(/^CREATE TABLE IF NOT EXISTS cm\.l_local ON CLUSTER citymesh\n/);
    expect(local).toContain("ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/l_local', '{replica}', ts)");
    expect(local).toContain('INDEX s src TYPE bloom_filter GRANULARITY 4');
    expect(local).toContain('PARTITION BY toYYYYMM(ts) ORDER BY (src, dst) TTL ts + INTERVAL 1 DAY');
    expect(local).toContain('SETTINGS replicated_deduplication_window = 7, replicated_deduplication_window_seconds = 864000, ttl_only_drop_parts = 1');
    expect(local).not.toContain('non_replicated');
    expect(distributed).toMatch(/^CREATE TABLE IF NOT EXISTS cm\.l ON CLUSTER citymesh\n/);
    expect(distributed).toContain('ts DateTime CODEC(Delta(4), ZSTD(1)),\n    src String,\n    dst String\n)');
    expect(distributed).toContain("ENGINE = Distributed('citymesh', 'cm', 'l_local', cityHash64(least(src, dst), greatest(src, dst)))");
    expect(distributed).not.toContain('INDEX');
  });

  it('refuses engines without a replicated form, statements already ON CLUSTER, and qualified names', () => {
    expect(refusal(`CREATE TABLE l (src String, dst String) ENGINE = Memory`)).toContain('only the MergeTree family');
    expect(refusal(`CREATE TABLE l (src String, dst String) ENGINE = ReplicatedMergeTree('/a', 'b') ORDER BY src`)).toContain('already ReplicatedMergeTree');
    expect(refusal(`CREATE TABLE l ON CLUSTER x (src String, dst String) ENGINE = MergeTree ORDER BY src`)).toContain('already says ON CLUSTER');
    expect(refusal(`CREATE TABLE other.l (src String, dst String) ENGINE = MergeTree ORDER BY src`)).toContain('without a database');
    expect(refusal(`RENAME TABLE a TO b`)).toContain('does not know yet');
  });
});

describe('ALTER and DROP', () => {
  it('applies column changes to X_local and Distributed X, indexes and settings to X_local only', () => {
    const [, , first, second] = render(links, `ALTER TABLE l ADD COLUMN IF NOT EXISTS f UInt16 AFTER dst, ADD INDEX IF NOT EXISTS fi f TYPE minmax GRANULARITY 1`);
    expect(first).toBe('ALTER TABLE cm.l_local ON CLUSTER citymesh\n    ADD COLUMN IF NOT EXISTS f UInt16 AFTER dst,\n    ADD INDEX IF NOT EXISTS fi f TYPE minmax GRANULARITY 1');
    expect(second).toBe('ALTER TABLE cm.l ON CLUSTER citymesh\n    ADD COLUMN IF NOT EXISTS f UInt16 AFTER dst');
    const settings = render(links, `ALTER TABLE l MODIFY SETTING non_replicated_deduplication_window = 5`).slice(2);
    expect(settings).toEqual(['ALTER TABLE cm.l_local ON CLUSTER citymesh\n    MODIFY SETTING replicated_deduplication_window = 5, replicated_deduplication_window_seconds = 864000']);
  });

  it('drops a column from Distributed before the data, and a table as both tables, synchronously', () => {
    const [, , first, second] = render(links, `ALTER TABLE l DROP COLUMN IF EXISTS v`);
    expect(first).toContain('ALTER TABLE cm.l ON CLUSTER');
    expect(second).toContain('ALTER TABLE cm.l_local ON CLUSTER');
    expect(render(links, 'DROP TABLE IF EXISTS l').slice(2)).toEqual([
      'DROP TABLE IF EXISTS cm.l ON CLUSTER citymesh SYNC',
      'DROP TABLE IF EXISTS cm.l_local ON CLUSTER citymesh SYNC',
    ]);
    expect(refusal('DROP TABLE IF EXISTS never_made')).toContain('which no earlier migration created');
    expect(refusal(links, 'ALTER TABLE l MODIFY QUERY SELECT 1')).toContain('not rendered for a cluster yet');
  });
});

describe('views', () => {
  it('points materialized views at the local tables, keeping a column qualified by its table valid', () => {
    const schema = renderClusterSchema(syntheticMigrations, options);
    const mv = schema.migrations[0]!.statements.find((s) => s.startsWith('CREATE MATERIALIZED VIEW'))!;
    expect(mv).toMatch(/^CREATE MATERIALIZED VIEW IF NOT EXISTS cm\.syn_links_1h_mv ON CLUSTER citymesh TO cm\.syn_links_1h_local\nAS /);
    expect(mv).toContain('FROM cm.syn_links_local AS syn_links');
    expect(mv).toContain('sum(syn_links.value)');
    expect(schema.tables.find((t) => t.name === 'syn_links_1h_mv')).toMatchObject({ reads: ['syn_links_local'], writes: 'syn_links_1h_local' });
    const view = schema.migrations[0]!.statements.find((s) => s.startsWith('CREATE VIEW'))!;
    expect(view).toContain('FROM cm.syn_links WHERE'); // a plain view reads every shard
  });

  it('refuses views it cannot place: no TO table, a table named outside FROM, sharding that differs', () => {
    expect(refusal(links, 'CREATE MATERIALIZED VIEW v ENGINE = MergeTree ORDER BY src AS SELECT src FROM l')).toContain('has no TO table');
    expect(refusal(links, `CREATE TABLE IF NOT EXISTS t (src String, dst String) ENGINE = MergeTree ORDER BY src`,
      'CREATE MATERIALIZED VIEW v TO t AS SELECT src, dst FROM l WHERE src IN l')).toContain('mentions l outside FROM/JOIN');
    expect(refusal(links, `CREATE TABLE IF NOT EXISTS n (centre String, peer String) ENGINE = MergeTree ORDER BY centre`,
      'CREATE MATERIALIZED VIEW v TO n AS SELECT src AS centre, dst AS peer FROM l')).toContain('both must be sharded alike');
  });

  it('places a per-link table (a < b) fed from the trains on their shard, and qualifies the tables a seed INSERT … SELECT reads', () => {
    const perLink: Migration[] = [{
      version: 1, name: 'per-link', statements: [
        links,
        'CREATE TABLE IF NOT EXISTS h (a String, b String, n UInt64) ENGINE = MergeTree ORDER BY (a, b)',
        'CREATE MATERIALIZED VIEW IF NOT EXISTS h_mv TO h AS SELECT least(src, dst) AS a, greatest(src, dst) AS b, count() AS n FROM l GROUP BY a, b',
        'INSERT INTO h (a, b, n) SELECT least(src, dst), greatest(src, dst), count() FROM l GROUP BY 1, 2',
      ],
    }];
    const schema = renderClusterSchema(perLink, options);
    expect(schema.tables.find((t) => t.name === 'h')?.shardingKey).toBe('cityHash64(least(a, b), greatest(a, b))');
    expect(schema.tables.find((t) => t.name === 'h_mv')).toMatchObject({ reads: ['l_local'], writes: 'h_local' });
    expect(schema.migrations[0]!.statements.at(-1)).toBe('INSERT INTO cm.h (a, b, n) SELECT least(src, dst), greatest(src, dst), count() FROM cm.l GROUP BY 1, 2');
    // Without replication every node runs the statements itself: each seeds its own shard.
    const unreplicated = renderClusterSchema(perLink, { ...options, replication: 'none' });
    expect(unreplicated.migrations[0]!.statements.at(-1)).toBe('INSERT INTO cm.h_local (a, b, n) SELECT least(src, dst), greatest(src, dst), count() FROM cm.l_local GROUP BY 1, 2');
  });
});

describe('options and settings', () => {
  it('accepts only plain names for the cluster and database', () => {
    expect(() => renderClusterSchema([], { cluster: 'a-b' })).toThrow(/cluster name "a-b" must be letters, digits and _/);
    expect(() => renderClusterSchema([], { cluster: 'c', database: "x'; DROP" })).toThrow(/database name/);
    const noDatabase: Migration[] = [{ version: 1, name: 'm', statements: [links] }];
    expect(renderClusterSchema(noDatabase, { cluster: 'c' }).migrations[0]!.statements[1]).toContain("Distributed('c', 'default', 'l_local'");
  });

  it('a server on a cluster needs CLICKHOUSE_URL: the embedded store has no Keeper', () => {
    expect(() => resolveServerSettings({ clickhouseCluster: 'citymesh' }, {})).toThrow(/--clickhouse-cluster citymesh needs CLICKHOUSE_URL/);
    expect(resolveServerSettings({}, { CITYMESH_CLICKHOUSE_CLUSTER: 'citymesh', CLICKHOUSE_URL: 'http://127.0.0.1:8123' }).clickhouseCluster).toBe('citymesh');
    expect(resolveServerSettings({}, {}).clickhouseCluster).toBeUndefined();
  });

  it('takes an insert quorum of auto or a replica count, and names a bad one', () => {
    const env = { CITYMESH_CLICKHOUSE_CLUSTER: 'citymesh', CLICKHOUSE_URL: 'http://127.0.0.1:8123' };
    expect(resolveServerSettings({}, { ...env, CITYMESH_CLICKHOUSE_INSERT_QUORUM: '1' }).clickhouseInsertQuorum).toBe('1');
    expect(resolveServerSettings({}, { ...env, CITYMESH_CLICKHOUSE_INSERT_QUORUM: 'auto' }).clickhouseInsertQuorum).toBe('auto');
    expect(() => resolveServerSettings({}, { ...env, CITYMESH_CLICKHOUSE_INSERT_QUORUM: 'most' })).toThrow(/CITYMESH_CLICKHOUSE_INSERT_QUORUM: "most" must be auto or a replica count/);
  });
});

describe('replication none (a cluster without Keeper)', () => {
  const unreplicated = { ...options, replication: 'none' as const };

  it('renders the same sharding with plain engines and no ON CLUSTER; control tables on the first shard, the ledger per node', () => {
    const schema = renderClusterSchema(schemaMigrations, unreplicated);
    const all = [...schema.setup, ...schema.migrations.flatMap((m) => m.statements)].join('\n');
    expect(all).not.toContain('ON CLUSTER');
    expect(all).not.toContain('Replicated');
    expect(all).toContain('SETTINGS non_replicated_deduplication_window = 100000');
    expect(schema.setup[0]).toBe('CREATE DATABASE IF NOT EXISTS cm');
    const byName = new Map(schema.tables.map((t) => [t.name, t]));
    expect(byName.get('latency_trains')).toMatchObject({
      role: 'sharded', engine: 'Distributed', local: { name: 'latency_trains_local', engine: 'MergeTree' },
      shardingKey: 'cityHash64(least(src, dst), greatest(src, dst))',
    });
    for (const control of ['sla_reports', 'job_claims', 'alert_events', 'diagnostic_requests']) {
      expect(byName.get(control)).toMatchObject({ role: 'control', engine: 'Distributed', shardingKey: '0', local: { name: `${control}_local` } });
    }
    expect(all).toContain("ENGINE = Distributed('citymesh', 'cm', 'job_claims_local', 0)");
    expect(byName.get('schema_migrations')).toEqual({ name: 'schema_migrations', role: 'control', engine: 'ReplacingMergeTree' });
  });

  it('server settings: keeper by default, none by flag or environment, anything else refused', () => {
    const url = { CLICKHOUSE_URL: 'http://127.0.0.1:8123', CITYMESH_CLICKHOUSE_CLUSTER: 'c' };
    expect(resolveServerSettings({}, url).clickhouseReplication).toBe('keeper');
    expect(resolveServerSettings({ clickhouseReplication: 'none' }, url).clickhouseReplication).toBe('none');
    expect(resolveServerSettings({}, { ...url, CITYMESH_CLICKHOUSE_REPLICATION: 'none' }).clickhouseReplication).toBe('none');
    expect(() => resolveServerSettings({ clickhouseReplication: 'zookeeper' }, url)).toThrow(/replication "zookeeper" must be keeper .* or none/);
  });
});
