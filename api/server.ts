/**
 * The server process: opens the store, migrates it, then serves the API, the
 * dashboard, the probe endpoint (/v1/probe) and the live feed (/v1/live) on
 * one port, over TLS when a certificate is configured. close() drains
 * in-flight batches before closing the store.
 */
import { readFileSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { serve } from '@hono/node-server';
import type { Logger } from 'pino';
import { collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import { Collector, createCollectorMetrics, LiveHub, loadTopology, type CollectorLimits, type Topology } from '../collector/index.js';
import { migrate, openStore, type Store } from '../sql/index.js';
import { createApp } from './app.js';
import { principalOfUpgrade } from './auth.js';
import { LiveFeed } from './live.js';
import { loadOrCreateSigningKey } from './report-signing.js';
import { SlaService } from './sla-service.js';
import type { ServerSettings } from './settings.js';

export interface RunningServer {
  url: string;
  port: number;
  store: Store;
  topology: Topology;
  hub: LiveHub;
  collector: Collector;
  registry: Registry;
  /** Monthly SLA reports: finalisation, amendments, the hourly job. */
  sla: SlaService;
  close(): Promise<void>;
}

export interface ServerExtras {
  topology?: Topology;
  collectorLimits?: Partial<CollectorLimits>;
  /** HTTP requests per second per client address (sustained, burst). */
  rateLimit?: { perSecond: number; burst: number };
}

export async function startServer(settings: ServerSettings, logger: Logger, extras: ServerExtras = {}): Promise<RunningServer> {
  const topo = extras.topology ?? loadTopology(settings.configFile);
  const signing = loadOrCreateSigningKey(settings.signingKeyFile, (message) => logger.warn(message));
  logger.info(
    { file: settings.signingKeyFile, fingerprint: signing.signer.fingerprint },
    signing.created ? 'report signing key created' : 'report signing key loaded',
  );
  const tls = settings.tlsCert && settings.tlsKey
    ? { cert: readFileSync(settings.tlsCert), key: readFileSync(settings.tlsKey) }
    : null;
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
    const reason = (error as Error).message.split('\n')[0];
    throw new Error(`ClickHouse (${store.mode}, ${store.location}) did not accept the schema: ${reason}`);
  }
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'citymesh_process_' });
  const hub = new LiveHub();
  const collector = new Collector({
    store, topology: topo, hub, logger: logger.child({ part: 'collector' }),
    metrics: createCollectorMetrics(registry), limits: extras.collectorLimits ?? {},
  });
  collector.throughput.start();
  const live = new LiveFeed(hub);
  new Gauge({ name: 'citymesh_live_clients', help: 'Browsers on the /v1/live feed', registers: [registry], collect() { this.set(live.stats().clients); } });
  new Gauge({ name: 'citymesh_live_skipped_messages', help: 'Live messages skipped for slow clients', registers: [registry], collect() { this.set(live.stats().dropped); } });
  const sla = new SlaService({ store, topology: topo, signer: signing.signer, logger: logger.child({ part: 'sla' }) });
  const app = createApp({
    store, topology: topo, hub, collector, logger, registry, ready: () => ready, sla,
    rateLimit: extras.rateLimit ?? { perSecond: 50, burst: 200 },
  });

  const server = await new Promise<Server>((resolve, reject) => {
    const s = serve(
      {
        fetch: app.fetch,
        hostname: settings.host,
        port: settings.port,
        ...(tls ? { createServer: createHttpsServer, serverOptions: tls } : {}),
      },
      () => resolve(s as Server),
    );
    s.once('error', reject);
  }).catch(async (error: NodeJS.ErrnoException) => {
    await store.close();
    if (error.code === 'EADDRINUSE') throw new Error(`port ${settings.port} on ${settings.host} is already in use; pass --port`);
    throw error;
  });
  sla.start(); // hourly: finalises months past their grace period (unless auto_finalise is off), records amendments
  server.on('upgrade', (request, socket: Duplex, head) => {
    const path = new URL(request.url ?? '/', 'http://localhost').pathname;
    if (path === '/v1/probe') {
      collector.handleUpgrade(request, socket, head);
    } else if (path === '/v1/live') {
      const principal = principalOfUpgrade(topo, request);
      if (principal.role !== 'operator') {
        const status = principal.role === 'anonymous' ? '401 Unauthorized' : '403 Forbidden';
        socket.end(`HTTP/1.1 ${status}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n` +
          JSON.stringify({ error: 'unauthorized', reason: 'the live feed needs an operator token (access_token)' }));
        return;
      }
      live.handleUpgrade(request, socket, head);
    } else {
      socket.destroy();
    }
  });
  const address = server.address() as AddressInfo;
  const host = settings.host.includes(':') ? `[${settings.host}]` : settings.host;
  const url = `${tls ? 'https' : 'http'}://${host === '0.0.0.0' ? '127.0.0.1' : host}:${address.port}`;

  let closing: Promise<void> | null = null;
  const close = () => {
    closing ??= (async () => {
      await collector.close();
      await sla.stop();
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
  return { url, port: address.port, store, topology: topo, hub, collector, registry, sla, close };
}
