/**
 * Fan-out of trains to live subscribers (the /v1/live feed). Trains are
 * published per batch, so subscribers can send one frame per batch instead
 * of one per train; a batch is published once it is known what of it will
 * be stored, while its INSERT runs, and retracted in the rare case that
 * INSERT fails (collector.ts). Publishing never blocks ingest: a subscriber
 * that throws is dropped.
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
export type RetractListener = (trains: readonly LiveTrain[]) => void;

/**
 * Train ids remembered for de-duplication: between this and twice this many
 * (two generations; at 10,000 trains/s the last ~10 s at least, longer than
 * the tail's overlap).
 */
const RECENT_IDS = 100_000;

export class LiveHub {
  private readonly listeners = new Set<LiveListener>();
  private readonly retractListeners = new Set<RetractListener>();
  private published = 0;
  private retracted = 0;
  /**
   * Two generations instead of one Set trimmed from its front: deleting a
   * Set's oldest entry leaves a hole that every later "oldest" lookup walks
   * past, which made each publish cost grow with the ids seen (17 % of the
   * collector's main thread under load). Here a whole generation is dropped at once.
   */
  private currentIds = new Set<string>();
  private previousIds = new Set<string>();

  /** `retract`: trains published earlier that will not be stored after all (see retract()). */
  subscribe(listener: LiveListener, retract?: RetractListener): () => void {
    this.listeners.add(listener);
    if (retract) this.retractListeners.add(retract);
    return () => {
      this.listeners.delete(listener);
      if (retract) this.retractListeners.delete(retract);
    };
  }

  /** Returns the trains published now (those not seen before). */
  publish(all: readonly LiveTrain[]): LiveTrain[] {
    const trains = all.filter((t) => this.firstSighting(`${t.src}/${t.trainId}`));
    if (trains.length === 0) return trains;
    this.published += trains.length;
    for (const listener of this.listeners) {
      try {
        listener(trains);
      } catch {
        this.listeners.delete(listener);
      }
    }
    return trains;
  }

  /**
   * Trains published before their INSERT finished whose INSERT then failed:
   * subscribers are told to take them back, and the ids are forgotten, so the
   * probe's resend (it keeps the batch) publishes them again once stored.
   */
  retract(trains: readonly LiveTrain[]): void {
    const gone = trains.filter((t) => this.forget(`${t.src}/${t.trainId}`));
    if (gone.length === 0) return;
    this.retracted += gone.length;
    for (const listener of this.retractListeners) {
      try {
        listener(gone);
      } catch {
        this.retractListeners.delete(listener);
      }
    }
  }

  /** Keyed by source centre and train id: train ids are the probe's, unique only within its centre. */
  private firstSighting(key: string): boolean {
    if (this.currentIds.has(key) || this.previousIds.has(key)) return false;
    this.currentIds.add(key);
    if (this.currentIds.size >= RECENT_IDS) {
      this.previousIds = this.currentIds;
      this.currentIds = new Set();
    }
    return true;
  }

  private forget(key: string): boolean {
    return this.currentIds.delete(key) || this.previousIds.delete(key);
  }

  stats(): { subscribers: number; published: number; retracted: number } {
    return { subscribers: this.listeners.size, published: this.published, retracted: this.retracted };
  }
}
