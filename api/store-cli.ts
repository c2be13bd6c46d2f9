/**
 * `citymesh store serve`: one data directory served by the engine itself, as
 * a real ClickHouse node (its own HTTP and native listeners, through the
 * launcher of sql/engine-node.ts), so several citymesh processes on one
 * machine share it through CLICKHOUSE_URL. The engine binds a data directory
 * to one process; this process's node is it. Clients sign in with the user
 * and password the servers use (CLICKHOUSE_USER / CLICKHOUSE_PASSWORD).
 */
import { readFileSync } from 'node:fs';
import type { EngineNode } from '../sql/index.js';

export interface StoreServeFlags {
  dataDir: string;
  host: string;
  port: string;
  tcpPort: string;
  user?: string | undefined;
  passwordFile?: string | undefined;
}

export interface StoreServePlan {
  dataDir: string;
  host: string;
  httpPort: number;
  tcpPort: number;
  user: string;
  password: string;
}

function port(flag: string, text: string): number {
  const value = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isInteger(value) || value > 65535) throw new Error(`${flag}: "${text}" is not a TCP port number (0 picks a free one)`);
  return value;
}

/** The flags checked, the password read (file first, then CLICKHOUSE_PASSWORD): every mistake named before the engine starts. */
export function storeServePlan(flags: StoreServeFlags, env: NodeJS.ProcessEnv = process.env): StoreServePlan {
  const httpPort = port('--port', flags.port);
  const tcpPort = port('--tcp-port', flags.tcpPort);
  if (httpPort !== 0 && httpPort === tcpPort) throw new Error(`--port and --tcp-port: both ${httpPort}; the HTTP and native listeners need a port each`);
  let password: string;
  if (flags.passwordFile) {
    try {
      password = readFileSync(flags.passwordFile, 'utf8').trim();
    } catch (error) {
      throw new Error(`--password-file ${flags.passwordFile}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
    if (password === '') throw new Error(`--password-file ${flags.passwordFile}: the file is empty`);
  } else if (env.CLICKHOUSE_PASSWORD) {
    password = env.CLICKHOUSE_PASSWORD;
  } else {
    throw new Error('the store needs a password: set CLICKHOUSE_PASSWORD (as for the servers) or pass --password-file FILE');
  }
  return { dataDir: flags.dataDir, host: flags.host, httpPort, tcpPort, user: flags.user || env.CLICKHOUSE_USER || 'citymesh', password };
}

export async function serveStore(plan: StoreServePlan): Promise<EngineNode> {
  const { startEngineNode } = await import('../sql/index.js');
  try {
    // Port 0 asks startEngineNode for a free one.
    return await startEngineNode({ dataDir: plan.dataDir, host: plan.host, httpPort: plan.httpPort, tcpPort: plan.tcpPort, user: plan.user, password: plan.password });
  } catch (error) {
    if (/Address already in use/.test((error as Error).message)) {
      throw new Error(`a port on ${plan.host} is already in use (HTTP ${plan.httpPort}, native ${plan.tcpPort}): pass --port / --tcp-port (0 picks a free one)`);
    }
    throw error;
  }
}
