/**
 * Every server setting, its default, and the environment variable that
 * overrides it, resolved in one place. Command-line flags win over the
 * environment, which wins over defaults.
 */
import { join, resolve } from 'node:path';
import cron from 'node-cron';
import type { ClusterReplication } from '../sql/index.js';

export interface ServerSettings {
  configFile: string;
  host: string;
  port: number;
  dataDir: string;
  clickhouseUrl: string | undefined;
  clickhouseUser: string | undefined;
  clickhousePassword: string | undefined;
  clickhouseDatabase: string | undefined;
  /** ClickHouse cluster the schema was applied to with `citymesh migrate --cluster` (needs CLICKHOUSE_URL). */
  clickhouseCluster: string | undefined;
  /**
   * How the cluster's tables are copied: 'keeper' (Replicated tables, ON CLUSTER DDL; the default) or
   * 'none' (sharded without replication, migrated node by node; env CITYMESH_CLICKHOUSE_REPLICATION).
   */
  clickhouseReplication: ClusterReplication;
  /** insert_quorum on a cluster: 'auto' (majority, the default) or a replica count (env CITYMESH_CLICKHOUSE_INSERT_QUORUM). */
  clickhouseInsertQuorum: string | undefined;
  logLevel: string;
  /** PEM certificate chain and key: when both are set the server speaks https/wss only. */
  tlsCert: string | undefined;
  tlsKey: string | undefined;
  /** Ed25519 private key (PEM) that signs finalised SLA reports; created with mode 0600 on first start. */
  signingKeyFile: string;
  /** node-cron expression of the SLA report job (env CITYMESH_SLA_JOB_SCHEDULE; default hourly at :05). */
  slaJobSchedule: string | undefined;
}

export interface ServerFlags {
  config?: string | undefined;
  host?: string | undefined;
  port?: string | number | undefined;
  dataDir?: string | undefined;
  logLevel?: string | undefined;
  tlsCert?: string | undefined;
  tlsKey?: string | undefined;
  signingKey?: string | undefined;
  clickhouseCluster?: string | undefined;
  clickhouseReplication?: string | undefined;
}

export const DEFAULT_PORT = 8080;

export function parseReplication(text: string): ClusterReplication {
  if (text === 'keeper' || text === 'none') return text;
  throw new Error(`ClickHouse replication "${text}" must be keeper (Replicated tables, ON CLUSTER) or none (sharded, no copies)`);
}

export function resolveServerSettings(flags: ServerFlags, env: NodeJS.ProcessEnv = process.env): ServerSettings {
  const portText = String(flags.port ?? env.CITYMESH_PORT ?? DEFAULT_PORT);
  const port = Number(portText);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`port: "${portText}" is not a TCP port number (0-65535)`);
  }
  const dataDir = resolve(flags.dataDir ?? env.CITYMESH_DATA_DIR ?? 'data');
  const settings: ServerSettings = {
    configFile: resolve(flags.config ?? env.CITYMESH_CONFIG ?? 'config/demo-loopback.yaml'),
    host: flags.host ?? env.CITYMESH_HOST ?? '127.0.0.1',
    port,
    dataDir,
    clickhouseUrl: env.CLICKHOUSE_URL || undefined,
    clickhouseUser: env.CLICKHOUSE_USER || undefined,
    clickhousePassword: env.CLICKHOUSE_PASSWORD || undefined,
    clickhouseDatabase: env.CLICKHOUSE_DATABASE || undefined,
    clickhouseCluster: flags.clickhouseCluster || env.CITYMESH_CLICKHOUSE_CLUSTER || undefined,
    clickhouseReplication: parseReplication(flags.clickhouseReplication || env.CITYMESH_CLICKHOUSE_REPLICATION || 'keeper'),
    clickhouseInsertQuorum: env.CITYMESH_CLICKHOUSE_INSERT_QUORUM || undefined,
    logLevel: flags.logLevel ?? env.CITYMESH_LOG_LEVEL ?? 'info',
    tlsCert: flags.tlsCert ?? env.CITYMESH_TLS_CERT ?? undefined,
    tlsKey: flags.tlsKey ?? env.CITYMESH_TLS_KEY ?? undefined,
    // Beside the data directory, never inside it (a copied or shared data directory must not carry the key).
    signingKeyFile: resolve(flags.signingKey ?? env.CITYMESH_SIGNING_KEY ?? join(`${dataDir}-keys`, 'report-signing.pem')),
    slaJobSchedule: env.CITYMESH_SLA_JOB_SCHEDULE || undefined,
  };
  if (settings.slaJobSchedule && !cron.validate(settings.slaJobSchedule)) {
    throw new Error(`CITYMESH_SLA_JOB_SCHEDULE: "${settings.slaJobSchedule}" is not a cron expression (seconds field first, e.g. "0 5 * * * *")`);
  }
  if (settings.clickhouseInsertQuorum && !/^(auto|[1-9]\d?)$/.test(settings.clickhouseInsertQuorum)) {
    throw new Error(`CITYMESH_CLICKHOUSE_INSERT_QUORUM: "${settings.clickhouseInsertQuorum}" must be auto or a replica count (1-99)`);
  }
  if (settings.clickhouseCluster && !settings.clickhouseUrl) {
    throw new Error(
      `--clickhouse-cluster ${settings.clickhouseCluster} needs CLICKHOUSE_URL: the embedded store is a single node without ClickHouse Keeper`,
    );
  }
  if (Boolean(settings.tlsCert) !== Boolean(settings.tlsKey)) {
    throw new Error('TLS needs both --tls-cert and --tls-key (or CITYMESH_TLS_CERT and CITYMESH_TLS_KEY)');
  }
  return settings;
}
