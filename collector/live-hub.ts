/**
 * Fan-out of freshly stored trains to live subscribers (the /v1/live feed).
 * Trains are published per stored batch, so subscribers can send one frame
 * per batch instead of one per train. Publishing never blocks ingest: a
 * subscriber that throws is dropped.
 */
export interface LiveTrain {
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

export class LiveHub {
  private readonly listeners = new Set<LiveListener>();
  private published = 0;

  subscribe(listener: LiveListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  publish(trains: readonly LiveTrain[]): void {
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

  stats(): { subscribers: number; published: number } {
    return { subscribers: this.listeners.size, published: this.published };
  }
}
