/**
 * The one place that opens ClickHouse. Embedded by default (chDB, the real
 * ClickHouse engine in-process, data in a directory this process owns) or a
 * ClickHouse server when a URL is given. Both are reached through the same
 * @clickhouse/client API, so every query in sql/ runs unchanged on either.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ClickHouseLogLevel, createClient, type ClickHouseClient, type ClickHouseClientConfigOptions } from '@clickhouse/client';
import { createChdbConnection } from 'chdb/connection';
import { clusterInsertSettings } from './cluster.js';
import { registerRawInsert } from './raw-insert.js';

export interface StoreOptions {
  /** ClickHouse server URL; when absent the embedded engine is used. */
  url?: string | undefined;
  username?: string | undefined;
  password?: string | undefined;
  database?: string | undefined;
  /** Data directory of the embedded engine (created if missing). */
  dataDir: string;
  /**
   * The ClickHouse cluster whose schema `citymesh migrate --cluster` applied:
   * every request then carries clusterInsertSettings() (sql/cluster.ts).
   */
  cluster?: string | undefined;
  /**
   * insert_quorum on a cluster (default 'auto': a majority of each shard's
   * replicas). With 2 replicas a majority is both, so one replica down pauses
   * ingest (probes keep their batches); 1 keeps ingesting and accepts that a
   * batch lives on one replica until it is fetched.
   */
  insertQuorum?: string | undefined;
}

export interface Store {
  /** The current client; after suspend() its requests fail until resume(). */
  readonly client: ClickHouseClient;
  readonly mode: 'embedded' | 'server';
  /** Where the data lives: the directory or the server URL (without credentials). */
  readonly location: string;
  /** Close the connection (maintenance, fault drills); the data directory is released. */
  suspend(): Promise<void>;
  /** Reconnect after suspend(). */
  resume(): Promise<void>;
  close(): Promise<void>;
}

/** A second process tried to open a data directory that is already in use. */
export class StoreLockedError extends Error {
  readonly code = 'STORE_LOCKED';
  constructor(readonly dataDir: string) {
    super(
      `data directory ${dataDir} is already in use by another process ` +
        `(ClickHouse holds ${dataDir}/status); stop that process or choose another --data-dir`,
    );
    this.name = 'StoreLockedError';
  }
}

/** Settings every request runs with: synchronous inserts, so an ack means stored. */
const sessionSettings = {
  // Sent with every request so nothing carries over: the embedded engine keeps a
  // request's settings for the rest of its session, and a token left over from a
  // deduplicated insert would make a later insert without one look like a replay
  // and be dropped (seen: rows 2 and 3 of three inserts lost). Empty = unused.
  insert_deduplication_token: '',
  select_sequential_consistency: '0',
  async_insert: 0,
  insert_deduplicate: 1,
  deduplicate_blocks_in_dependent_materialized_views: 1,
  output_format_json_quote_64bit_integers: 0,
} as const;

export async function openStore(options: StoreOptions): Promise<Store> {
  // On a cluster, a subquery over a Distributed table inside a query over another
  // (capacity's latest-test IN, the SLA exclusions) is refused by default
  // ("double-distributed IN/JOIN"); GLOBAL sends the subquery's result to every shard.
  const settings = options.cluster
    ? { ...sessionSettings, ...clusterInsertSettings(), distributed_product_mode: 'global' as const, ...(options.insertQuorum ? { insert_quorum: options.insertQuorum } : {}) }
    : sessionSettings;
  if (options.url) {
    const url = new URL(options.url);
    url.username = '';
    url.password = '';
    const connect = () =>
      createClient({
        url: options.url,
        username: options.username ?? 'default',
        password: options.password ?? '',
        database: options.database ?? 'default',
        clickhouse_settings: settings,
        // Failures reach the caller as errors and are logged there, once, as JSON.
        log: { level: ClickHouseLogLevel.OFF },
      });
    return new SwitchableStore('server', url.toString(), connect);
  }
  const dataDir = resolve(options.dataDir);
  mkdirSync(dataDir, { recursive: true });
  const connect = () => {
    // Check first: when the engine itself hits the lock it also prints to stderr.
    if (ownerPid(dataDir) !== null) throw new StoreLockedError(dataDir);
    let connection;
    try {
      connection = createChdbConnection({ path: dataDir });
    } catch (error) {
      if (error instanceof Error && error.message.includes('Cannot lock file')) throw new StoreLockedError(dataDir);
      throw error;
    }
    // chdb is typed against @clickhouse/client-common, which @clickhouse/client
    // re-bundles; the runtime interface is the same, the declarations are twins.
    const client = createClient({
      connection: connection as unknown as NonNullable<ClickHouseClientConfigOptions['connection']>,
      clickhouse_settings: settings,
      log: { level: ClickHouseLogLevel.OFF },
    });
    embeddedClients.add(client);
    const raw = connection.chdb;
    // Settings go in the INSERT's own SETTINGS clause: query scope, nothing carries over to the session.
    // The same settings every other request of this store runs with (a cluster's insert settings included:
    // a data directory opened as a one-shard cluster must insert as the cluster would).
    registerRawInsert(client, async (p) => {
      await raw.rawInsert({ table: p.table, columns: p.columns, format: p.format, values: p.body, settings: { ...(settings as Record<string, string | number | boolean>), ...p.settings } });
    });
    return client;
  };
  return new SwitchableStore('embedded', dataDir, connect);
}

/** Clients of the embedded engine (this process's own), as opposed to a server's over HTTP. */
const embeddedClients = new WeakSet<ClickHouseClient>();

/**
 * Bytes of query parameters a request of this client can carry: the
 * embedded engine binds them in process; a server reads them from the
 * request's URL, which it caps at 1 MiB, and JSON text about doubles in
 * URL encoding (brackets, quotes, commas), so a third of that.
 */
export function queryParamsBudget(client: ClickHouseClient): number {
  return embeddedClients.has(client) ? 16 * 1024 * 1024 : 336 * 1024;
}

class SwitchableStore implements Store {
  #client: ClickHouseClient;
  #suspended = false;

  constructor(
    readonly mode: 'embedded' | 'server',
    readonly location: string,
    private readonly connect: () => ClickHouseClient,
  ) {
    this.#client = connect();
  }

  get client(): ClickHouseClient {
    return this.#client;
  }

  async suspend(): Promise<void> {
    if (this.#suspended) return;
    this.#suspended = true;
    await this.#client.close();
  }

  async resume(): Promise<void> {
    if (!this.#suspended) return;
    this.#client = this.connect();
    this.#suspended = false;
  }

  async close(): Promise<void> {
    if (!this.#suspended) await this.#client.close();
    this.#suspended = true;
  }
}

/**
 * The live process holding an embedded data directory, if any. ClickHouse
 * writes its PID into `status` while it runs and removes the file on close; a
 * file left by a crashed process names a PID that is no longer alive.
 */
function ownerPid(dataDir: string): number | null {
  let text: string;
  try {
    text = readFileSync(join(dataDir, 'status'), 'utf8');
  } catch {
    return null;
  }
  const pid = Number(/^PID:\s*(\d+)/m.exec(text)?.[1]);
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) return null;
  try {
    process.kill(pid, 0);
    return pid;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM' ? pid : null;
  }
}
