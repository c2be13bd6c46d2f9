/**
 * Every server setting, its default, and the environment variable that
 * overrides it, resolved in one place. Command-line flags win over the
 * environment, which wins over defaults.
 */
import { resolve } from 'node:path';

export interface ServerSettings {
  configFile: string;
  host: string;
  port: number;
  dataDir: string;
  clickhouseUrl: string | undefined;
  clickhouseUser: string | undefined;
  clickhousePassword: string | undefined;
  clickhouseDatabase: string | undefined;
  logLevel: string;
}

export interface ServerFlags {
  config?: string | undefined;
  host?: string | undefined;
  port?: string | number | undefined;
  dataDir?: string | undefined;
  logLevel?: string | undefined;
}

export const DEFAULT_PORT = 8080;

export function resolveServerSettings(flags: ServerFlags, env: NodeJS.ProcessEnv = process.env): ServerSettings {
  const portText = String(flags.port ?? env.CITYMESH_PORT ?? DEFAULT_PORT);
  const port = Number(portText);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`port: "${portText}" is not a TCP port number (0-65535)`);
  }
  return {
    configFile: resolve(flags.config ?? env.CITYMESH_CONFIG ?? 'config/demo-loopback.yaml'),
    host: flags.host ?? env.CITYMESH_HOST ?? '127.0.0.1',
    port,
    dataDir: resolve(flags.dataDir ?? env.CITYMESH_DATA_DIR ?? 'data'),
    clickhouseUrl: env.CLICKHOUSE_URL || undefined,
    clickhouseUser: env.CLICKHOUSE_USER || undefined,
    clickhousePassword: env.CLICKHOUSE_PASSWORD || undefined,
    clickhouseDatabase: env.CLICKHOUSE_DATABASE || undefined,
    logLevel: flags.logLevel ?? env.CITYMESH_LOG_LEVEL ?? 'info',
  };
}
