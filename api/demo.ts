/**
 * `npm start`: the whole stack on one machine. The server runs here on the
 * embedded store; each demo centre gets its own probe process bound to its own
 * 127.0.0.x address, so every train crosses real sockets. Tokens are fresh
 * random values per run, handed to the probes through their environment.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { loadTopology } from '../topology/index.js';
import { startServer, type RunningServer } from './server.js';
import type { ServerSettings } from './settings.js';
import { packageRoot } from './version.js';

export interface Demo {
  server: RunningServer;
  /** Operator and regulator tokens for this run; the printed URLs carry them. */
  operatorToken: string;
  regulatorToken: string;
  probes: ChildProcess[];
  stop(): Promise<void>;
}

export async function startDemo(settings: ServerSettings, logger: Logger): Promise<Demo> {
  const env: NodeJS.ProcessEnv = { ...process.env };
  const probe = loadTopology(settings.configFile, { requireTokens: false });
  const tokens = new Map<string, string>();
  for (const centre of probe.centres) {
    const name = `CITYMESH_TOKEN_${centre.id.toUpperCase().replace(/-/g, '_')}`;
    const token = randomBytes(24).toString('base64url');
    tokens.set(centre.id, token);
    env[name] = token;
  }
  const operatorToken = randomBytes(24).toString('base64url');
  env.CITYMESH_OPERATOR_TOKEN = operatorToken;
  const regulatorToken = randomBytes(24).toString('base64url');
  env.CITYMESH_REGULATOR_TOKEN = regulatorToken;
  const topology = loadTopology(settings.configFile, { env });
  const server = await startServer(settings, logger, { topology });
  const spoolRoot = `${settings.dataDir}-spool`;
  const bin = join(packageRoot(), 'bin', 'citymesh.js');
  const probes = topology.centres.map((centre) =>
    spawn(process.execPath, [bin, 'probe', '--server', `${server.url.replace(/^http/, 'ws')}/v1/probe`, '--centre', centre.id, '--spool-dir', join(spoolRoot, centre.id)], {
      env: { ...process.env, CITYMESH_TOKEN: tokens.get(centre.id), CITYMESH_LOG_LEVEL: process.env.CITYMESH_LOG_LEVEL ?? 'warn' },
      // Own process group, so a terminal Ctrl-C reaches only the demo, which then
      // stops the probes in order; the IPC channel stops them if the demo dies.
      detached: true,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    }),
  );
  let stopping: Promise<void> | null = null;
  const stop = () => {
    stopping ??= (async () => {
      // Probes first: each flushes its buffered trains to the still-running collector.
      await Promise.all(
        probes.map(
          (child) =>
            new Promise<void>((resolve) => {
              if (child.exitCode !== null || child.signalCode !== null) return resolve();
              child.once('exit', () => resolve());
              child.kill('SIGTERM');
              setTimeout(() => child.kill('SIGKILL'), 10_000).unref();
            }),
        ),
      );
      await server.close();
    })();
    return stopping;
  };
  return { server, operatorToken, regulatorToken, probes, stop };
}
