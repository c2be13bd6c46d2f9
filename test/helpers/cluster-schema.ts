/**
 * The rendered cluster schema (sql/cluster.ts), created for real in the
 * embedded engine, which has no Keeper: ON CLUSTER is dropped and each
 * Replicated engine becomes its plain form; Distributed tables stay as
 * rendered. Every statement is shown to change only in its header and its
 * ENGINE line, so what is created is the cluster schema in all else.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { expect } from 'vitest';
import type { ClusterSchema } from '../../sql/index.js';

export function allStatements(schema: ClusterSchema): string[] {
  return [...schema.setup, ...schema.migrations.flatMap((m) => m.statements)];
}

/** ClickHouse's own canonical text of a statement (its parser, not ours). */
export async function formatQuery(client: ClickHouseClient, sql: string): Promise<string> {
  const result = await client.query({ query: 'SELECT formatQuery({sql:String}) AS f', query_params: { sql }, format: 'JSONEachRow' });
  return (await result.json<{ f: string }>())[0]!.f;
}

/**
 * The rendered statement in a form this engine can create without Keeper: ON
 * CLUSTER gone, Replicated*(path, replica, args) -> *(args); Distributed stays.
 * Works on formatQuery's canonical text, where the header and the ENGINE
 * clause each have a line of their own.
 */
export function withoutCluster(formatted: string, cluster: string): string {
  return formatted
    .split('\n')
    .map((line, i) => {
      if (i === 0) return line.replace(` ON CLUSTER ${cluster}`, '');
      if (!line.startsWith('ENGINE = ') || line.startsWith('ENGINE = Distributed(')) return line;
      const replicated = /^ENGINE = Replicated(\w+)\('[^']*', '\{replica\}'(?:, (.*))?\)$/.exec(line);
      if (!replicated) throw new Error(`unexpected engine line: ${line}`);
      return `ENGINE = ${replicated[1]}${replicated[2] ? `(${replicated[2]})` : ''}`;
    })
    .join('\n');
}

/**
 * Create the cluster schema for real in `database`, proving for each statement that only its header and ENGINE line changed.
 * Seed rows (INSERT … SELECT through the Distributed tables) are data, not schema: they need the cluster's nodes, which
 * the embedded engine cannot reach, and are left out here (two-shard.test runs them on real nodes).
 */
export async function createWithoutCluster(client: ClickHouseClient, schema: ClusterSchema, database: string, cluster: string): Promise<void> {
  await client.command({ query: `CREATE DATABASE IF NOT EXISTS ${database}` });
  for (const statement of allStatements(schema).slice(1).filter((s) => !/^INSERT\b/.test(s))) {
    const formatted = await formatQuery(client, statement);
    const local = withoutCluster(formatted, cluster);
    const [before, after] = [formatted.split('\n'), local.split('\n')];
    expect(after.length).toBe(before.length);
    before.forEach((line, i) => {
      if (line !== after[i]) expect(i === 0 || line.startsWith('ENGINE = '), `${line} -> ${after[i]}`).toBe(true);
    });
    expect(await formatQuery(client, local)).toBe(local);
    await client.command({ query: local });
  }
}
