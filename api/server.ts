/**
 * The server process: opens the store, migrates it, then serves the API, the
 * dashboard, the probe endpoint (/v1/probe) and the live feed (/v1/live) on
 * one port. close() drains in-flight batches before closing the store.
 */
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { serve } from '@hono/node-server';
import type { Logger } from 'pino';
import { Collector, LiveHub, loadTopology, type Topology } from '../collector/index.js';
import { migrate, openStore, type Store } from '../sql/index.js';
import { createApp } from './app.js';
import { LiveFeed } from './live.js';
import type { ServerSettings } from './settings.js';

export interface RunningServer {
  url: string;
  port: number;
  store: Store;
  topology: Topology;
  hub: LiveHub;
  collector: Collector;
  close(): Promise<void>;
}

export async function startServer(settings: ServerSettings, logger: Logger, topology?: Topology): Promise<RunningServer> {
  const topo = topology ?? loadTopology(settings.configFile);
  const store = await openStore({
    url: settings.clickhouseUrl,
    username: settings.clickhouseUser,
    password: settings.clickhousePassword,
    database: settings.clickhouseDatabase,
    dataDir: settings.dataDir,
  });
  let ready = false;
  try {
    const report = await migrate(store.client);
    logger.info({ applied: report.applied, skipped: report.skipped, store: store.mode, location: store.location }, 'store ready');
    ready = true;
  } catch (error) {
    await store.close();
    throw error;
  }
  const hub = new LiveHub();
  const collector = new Collector({ client: store.client, topology: topo, hub, logger: logger.child({ part: 'collector' }) });
  const live = new LiveFeed(hub);
  const app = createApp({ store, topology: topo, hub, collector, logger, ready: () => ready });

  const server = await new Promise<Server>((resolve, reject) => {
    const s = serve({ fetch: app.fetch, hostname: settings.host, port: settings.port }, () => resolve(s as Server));
    s.once('error', reject);
  }).catch(async (error: NodeJS.ErrnoException) => {
    await store.close();
    if (error.code === 'EADDRINUSE') throw new Error(`port ${settings.port} on ${settings.host} is already in use; pass --port`);
    throw error;
  });
  server.on('upgrade', (request, socket, head) => {
    const path = new URL(request.url ?? '/', 'http://localhost').pathname;
    if (path === '/v1/probe') collector.handleUpgrade(request, socket, head);
    else if (path === '/v1/live') live.handleUpgrade(request, socket, head);
    else socket.destroy();
  });
  const address = server.address() as AddressInfo;
  const host = settings.host.includes(':') ? `[${settings.host}]` : settings.host;
  const url = `http://${host === '0.0.0.0' ? '127.0.0.1' : host}:${address.port}`;

  let closing: Promise<void> | null = null;
  const close = () => {
    closing ??= (async () => {
      await collector.close();
      await live.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections?.();
      });
      await store.close();
      logger.info('server stopped');
    })();
    return closing;
  };
  return { url, port: address.port, store, topology: topo, hub, collector, close };
}
