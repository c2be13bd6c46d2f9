/**
 * Fan-out of freshly stored trains to live subscribers (the /v1/live feed).
 * Trains are published per stored batch, so subscribers can send one frame
 * per batch instead of one per train. Publishing never blocks ingest: a
 * subscriber that throws is dropped.
 */
export interface LiveTrain {
  /** The probe's id for the train: a train reaching the hub twice (stored here, then seen again in ClickHouse's tail) is published once. */
  trainId?: string;
  src: string;
  dst: string;
  engine: 'stamp' | 'icmp';
  flow: number;
  startedAtUs: number;
  sent: number;
  received: number;
  rttMinUs: number | null;
  rttMedianUs: number | null;
  rttP99Us: number | null;
  rttMaxUs: number | null;
  jitterUs: number | null;
}

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
    const trains = all.filter((t) => t.trainId === undefined || this.firstSighting(t.trainId));
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

  private firstSighting(trainId: string): boolean {
    if (this.recentIds.has(trainId)) return false;
    this.recentIds.add(trainId);
    if (this.recentIds.size > RECENT_IDS) this.recentIds.delete(this.recentIds.values().next().value!);
    return true;
  }

  stats(): { subscribers: number; published: number } {
    return { subscribers: this.listeners.size, published: this.published };
  }
}
