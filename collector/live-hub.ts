/**
 * Fan-out of freshly stored trains to live subscribers (the /v1/live feed).
 * Trains are published per stored batch, so subscribers can send one frame
 * per batch instead of one per train. Publishing never blocks ingest: a
 * subscriber that throws is dropped.
 */
import type { LiveTrainRow } from '../sql/index.js';

/**
 * A stored train as the live feed sees it: the row the ClickHouse tail reads
 * (sql/coordination.ts) without its storing time. Its `trainId` (the probe's)
 * lets a train reaching the hub twice (stored here, then seen again in the
 * tail) be published once; with its `src`, since train ids are unique only
 * within a centre.
 */
export type LiveTrain = Omit<LiveTrainRow, 'storedAtUs'>;

export type LiveListener = (trains: readonly LiveTrain[]) => void;

/** Train ids remembered for de-duplication; at 10,000 trains/s this is the last ~10 s, longer than the tail's overlap. */
const RECENT_IDS = 100_000;

export class LiveHub {
  private readonly listeners = new Set<LiveListener>();
  private published = 0;
  private readonly recentIds = new Set<string>();

  subscribe(listener: LiveListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  publish(all: readonly LiveTrain[]): void {
    const trains = all.filter((t) => this.firstSighting(`${t.src}/${t.trainId}`));
    if (trains.length === 0) return;
    this.published += trains.length;
    for (const listener of this.listeners) {
      try {
        listener(trains);
      } catch {
        this.listeners.delete(listener);
      }
    }
  }

  /** Keyed by source centre and train id: train ids are the probe's, unique only within its centre. */
  private firstSighting(key: string): boolean {
    if (this.recentIds.has(key)) return false;
    this.recentIds.add(key);
    if (this.recentIds.size > RECENT_IDS) this.recentIds.delete(this.recentIds.values().next().value!);
    return true;
  }

  stats(): { subscribers: number; published: number } {
    return { subscribers: this.listeners.size, published: this.published };
  }
}
