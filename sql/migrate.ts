/**
 * Applies numbered migrations once each, recording them in a ledger table.
 * Safe to run at every start and from several processes in sequence: a
 * version already in the ledger is skipped, and each statement is idempotent.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { migrations as allMigrations, type Migration } from './migrations/index.js';

export interface MigrationReport {
  applied: number[];
  skipped: number[];
}

/** The ledger of applied versions; sql/cluster.ts renders its replicated form from this text. */
export const ledgerDdl = `CREATE TABLE IF NOT EXISTS schema_migrations
(
    version    UInt32,
    name       String,
    applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY version`;

export async function appliedVersions(client: ClickHouseClient): Promise<number[]> {
  const result = await client.query({
    query: 'SELECT DISTINCT version FROM schema_migrations ORDER BY version',
    format: 'JSONEachRow',
  });
  const rows = await result.json<{ version: number }>();
  return rows.map((row) => Number(row.version));
}

export async function migrate(
  client: ClickHouseClient,
  migrations: readonly Migration[] = allMigrations,
): Promise<MigrationReport> {
  await client.command({ query: ledgerDdl });
  const done = new Set(await appliedVersions(client));
  const report: MigrationReport = { applied: [], skipped: [] };
  for (const migration of [...migrations].sort((a, b) => a.version - b.version)) {
    if (done.has(migration.version)) {
      report.skipped.push(migration.version);
      continue;
    }
    for (const statement of migration.statements) {
      await client.command({ query: statement });
    }
    await client.insert({
      table: 'schema_migrations',
      values: [{ version: migration.version, name: migration.name }],
      format: 'JSONEachRow',
    });
    report.applied.push(migration.version);
  }
  return report;
}

/** The newest version this build knows; /readyz compares the ledger against it. */
export const latestVersion = Math.max(...allMigrations.map((m) => m.version));
