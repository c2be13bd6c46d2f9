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
import { Collector, createCollectorMetrics, FailedAuthLimiter, LiveHub, LiveTail, defaultFailedAuthLimits, type CollectorLimits, type FailedAuthLimits } from '../collector/index.js';
import { loadTopology, type Topology } from '../topology/index.js';
import { checkClusterSchema, insertDiagnosticRequest, migrate, openStore, UNREPLICATED, type Store } from '../sql/index.js';
import { createApp } from './app.js';
import { StatusSnapshots } from './status-snapshot.js';
import { authRefusalReason, principalOfUpgrade } from './auth.js';
import { ClickHouseRunCoordinator, serverInstanceId } from './jobs.js';
import { LiveFeed } from './live.js';
import { loadOrCreateSigningKey } from './report-signing.js';
import { SlaService } from './sla-service.js';
import { SlaMinutesJob } from './sla-minutes-job.js';
import { AlertService } from './alerts/service.js';
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
  /** Merges ended link-hours into the SLA minutes a month report reads (every minute, one server). */
  slaMinutes: SlaMinutesJob;
  /** Alert rules, state and webhooks (evaluates every 15 s while the topology has an alerts section). */
  alerts: AlertService;
  /** This process among several servers on one ClickHouse; holder of the job slots it claims. */
  instanceId: string;
  jobs: ClickHouseRunCoordinator;
  /** Trains other servers stored, forwarded to this server's live feed (server mode only). */
  liveTail: LiveTail | null;
  close(): Promise<void>;
}

export interface ServerExtras {
  topology?: Topology;
  collectorLimits?: Partial<CollectorLimits>;
  /** HTTP requests per second per client address (sustained, burst). */
  rateLimit?: { perSecond: number; burst: number };
  /** Failed authentications allowed per address, per credential and in total (HTTP, live feed and probe hellos); null: unlimited. */
  failedAuthLimits?: FailedAuthLimits | null;
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
    cluster: settings.clickhouseCluster,
    insertQuorum: settings.clickhouseInsertQuorum,
  });
  let ready = false;
  try {
    // A cluster's schema is applied once by `citymesh migrate --cluster`; a server only checks it.
    const cluster = settings.clickhouseCluster;
    const report = cluster
      ? await checkClusterSchema(store.client, { cluster, database: settings.clickhouseDatabase, replication: settings.clickhouseReplication })
      : await migrate(store.client);
    if (cluster && settings.clickhouseReplication === UNREPLICATED) {
      logger.warn(
        { cluster },
        'ClickHouse cluster without replication: each shard\'s rows live on one node (a lost disk loses them); while a shard is down, reads that ' +
          'need it fail and probes keep the batches it should store; control tables (job claims, alerts, reports) live on the first shard',
      );
    }
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
  const authLimits = extras.failedAuthLimits === undefined ? defaultFailedAuthLimits : extras.failedAuthLimits;
  const authLimiter = authLimits ? new FailedAuthLimiter(authLimits) : undefined;
  if (authLimiter) {
    new Gauge({
      name: 'citymesh_auth_failures', help: 'Failed authentications since start (HTTP, live feed, probe hellos)', registers: [registry],
      collect() { this.set(authLimiter.stats().failures); },
    });
    new Gauge({
      name: 'citymesh_auth_refused', help: 'Authentication attempts refused unchecked (429) since start, by the budget that was empty',
      labelNames: ['scope'], registers: [registry],
      collect() { for (const [scope, n] of Object.entries(authLimiter.stats().refused)) this.set({ scope }, n); },
    });
  }
  const collector = new Collector({
    store, topology: topo, hub, logger: logger.child({ part: 'collector' }),
    metrics: createCollectorMetrics(registry), limits: extras.collectorLimits ?? {}, authLimiter,
  });
  collector.throughput.start();
  collector.diagnostics.start(); // polls diagnostic_requests: an operator request taken by any server reaches probes connected here
  const live = new LiveFeed(hub);
  new Gauge({ name: 'citymesh_live_clients', help: 'Browsers on the /v1/live feed', registers: [registry], collect() { this.set(live.stats().clients); } });
  new Gauge({ name: 'citymesh_live_skipped_messages', help: 'Live messages skipped for slow clients', registers: [registry], collect() { this.set(live.stats().dropped); } });
  const instanceId = serverInstanceId();
  const jobs = new ClickHouseRunCoordinator(store, instanceId, logger.child({ part: 'jobs' }));
  // With a ClickHouse server, other servers may be storing probes' batches: tail what they store.
  const liveTail = store.mode === 'server' ? new LiveTail({ client: () => store.client, hub, logger: logger.child({ part: 'live-tail' }) }) : null;
  const sla = new SlaService({
    store, topology: topo, signer: signing.signer, logger: logger.child({ part: 'sla' }),
    runCoordinator: jobs, schedule: settings.slaJobSchedule,
  });
  const slaMinutes = new SlaMinutesJob({ store, logger: logger.child({ part: 'sla-minutes' }), runCoordinator: jobs });
  // Evaluation slots are claimed in ClickHouse, so with several servers each slot is evaluated once.
  // A link alert that fires asks both ends for diagnostics (traceroute, path MTU, fast train),
  // through ClickHouse, so the request reaches the probes whichever server they are connected to.
  /** Diagnostics requests made by firing alerts, awaited on close (the store closes after). */
  const pendingRequests = new Set<Promise<unknown>>();
  const alerts = new AlertService({
    store, topology: topo, logger: logger.child({ part: 'alerts' }), registry, externalUrl: () => url,
    claim: (job, slot) => jobs.claim(job, slot),
    onFiring: (alert) => {
      if (!alert.link) return;
      const [a, b] = alert.link.split('~') as [string, string];
      const work = insertDiagnosticRequest(store.client, {
        requestId: `dr-alert-${alert.fingerprint}-${alert.startsAtMs}`, a, b, requestedBy: `alert ${alert.alertname}`, requestedAtUs: Date.now() * 1000,
      }).catch((error: Error) => logger.warn({ err: error.message, alert: alert.alertname, link: alert.link }, 'could not request diagnostics for a firing alert'));
      pendingRequests.add(work);
      void work.finally(() => pendingRequests.delete(work));
      return work;
    },
  });
  const statusSnapshots = new StatusSnapshots({ store, topology: topo, logger: logger.child({ part: 'status' }) });
  const app = createApp({
    store, topology: topo, hub, collector, logger, registry, ready: () => ready, sla, alerts, authLimiter, statusSnapshots,
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
  liveTail?.start();
  alerts.start();
  slaMinutes.start();
  sla.start(); // hourly: finalises months past their grace period (unless auto_finalise is off), records amendments
  server.on('upgrade', (request, socket: Duplex, head) => {
    const path = new URL(request.url ?? '/', 'http://localhost').pathname;
    if (path === '/v1/probe') {
      collector.handleUpgrade(request, socket, head);
    } else if (path === '/v1/live') {
      const outcome = principalOfUpgrade(topo, authLimiter, request);
      if ('refusal' in outcome) {
        socket.end(`HTTP/1.1 429 Too Many Requests\r\nRetry-After: ${outcome.refusal.retryAfterS}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n` +
          JSON.stringify({ error: 'rate_limited', reason: authRefusalReason(outcome.refusal) }));
        return;
      }
      const principal = outcome.principal;
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
      await liveTail?.stop();
      await sla.stop();
      await slaMinutes.stop();
      await alerts.stop();
      await statusSnapshots.stop();
      await Promise.allSettled([...pendingRequests]);
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
  return { url, port: address.port, store, topology: topo, hub, collector, registry, sla, slaMinutes, alerts, instanceId, jobs, liveTail, close };
}
