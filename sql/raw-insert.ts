/**
 * The embedded engine's own insert: bytes already in a ClickHouse input
 * format are handed to the engine's parser as they are (chDB's public
 * `connection.chdb.rawInsert`). Through `client.insert`, the chDB connection
 * turns the body into one JavaScript string and prepends the SQL to it, and
 * the settings become SET statements; here neither happens.
 *
 * The store registers it for the clients it opens on a data directory;
 * a client of a ClickHouse server has none and inserts through the client.
 */
import type { ClickHouseClient } from '@clickhouse/client';

export interface RawInsertParams {
  table: string;
  columns: readonly string[];
  /** An input format both the engine's raw insert and the client accept for the same body. */
  format: 'JSONCompactEachRow' | 'JSONEachRow' | 'TabSeparated';
  body: Buffer;
  /** Per-insert settings (the deduplication token); the store adds the settings every request runs with. */
  settings: Record<string, string | number>;
}

export type RawInsert = (params: RawInsertParams) => Promise<void>;

const rawInserts = new WeakMap<ClickHouseClient, RawInsert>();

export function registerRawInsert(client: ClickHouseClient, insert: RawInsert): void {
  rawInserts.set(client, insert);
}

/** The engine's raw insert for this client, or null (a ClickHouse server: use client.insert). */
export function rawInsertOf(client: ClickHouseClient): RawInsert | null {
  return rawInserts.get(client) ?? null;
}
