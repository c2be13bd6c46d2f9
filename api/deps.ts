import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { Collector, LiveHub } from '../collector/index.js';
import type { Topology } from '../topology/index.js';
import type { Store } from '../sql/index.js';
import type { StatusSnapshots } from './status-snapshot.js';

/** What the HTTP routes need; built once by the server, injected into the app. */
export interface ApiDeps {
  store: Store;
  topology: Topology;
  hub: LiveHub;
  collector: Collector | null;
  logger: Logger;
  registry: Registry;
  /** Set once migrations have run; /readyz reports it. */
  ready: () => boolean;
  /** The live status, judged once a second while read (built by createApp when absent; the server stops it on close). */
  statusSnapshots?: StatusSnapshots;
  /** Requests per second (sustained, burst) per client address; 0 disables. */
  rateLimit?: { perSecond: number; burst: number };
}
