/**
 * The network's Prometheus exposition: families read from ClickHouse at the
 * scrape (collect.ts), written in the format the scraper asked for
 * (exposition.ts). Scrapes arriving within a second of each other (a pair of
 * HA Prometheus servers) share one read.
 */
import type { Topology } from '../../topology/index.js';
import type { Store } from '../../sql/index.js';
import { collectNetworkFamilies } from './collect.js';
import type { Family } from './exposition.js';

export { CONTENT_TYPES, negotiateFormat, render, type ExpositionFormat, type Family } from './exposition.js';

const SHARE_MS = 1000;

export class NetworkMetrics {
  private shared: { atMs: number; families: Promise<Family[]> } | null = null;

  constructor(private readonly store: Store, private readonly topology: Topology, private readonly now: () => number = Date.now) {}

  families(): Promise<Family[]> {
    const nowMs = this.now();
    if (this.shared && nowMs - this.shared.atMs < SHARE_MS && nowMs >= this.shared.atMs) return this.shared.families;
    const families = collectNetworkFamilies(this.store, this.topology, nowMs);
    const entry = { atMs: nowMs, families };
    this.shared = entry;
    families.catch(() => {
      if (this.shared === entry) this.shared = null;
    });
    return families;
  }
}
