/**
 * Batches take turns at the store, in groups (group commit). A store turn
 * costs about the same whether it carries one small batch or many (a lookup
 * round trip, then one INSERT per table, each a new part and a pass through
 * the views): batches that become ready while the turns are taken wait here,
 * in arrival order, and the next free turn stores all of them together, up to
 * `maxGroupTrains` records and `maxGroupBytes` bytes so one INSERT stays
 * bounded (a batch larger than either alone is a group of its own). At most
 * `concurrency` groups are being stored at once.
 *
 * A batch whose time in the server would exceed `maxWaitS`, judged by the
 * store's measured rate in records (trains, NIC samples, tests, runs: a
 * batch counts by what it holds, not as one), is not admitted: the probe
 * keeps it (busy) instead of a queue growing here, so the server's share of
 * a batch's lag stays bounded whatever is offered.
 *
 * The rate is measured only while the store is saturated (every turn taken
 * and batches waiting): then records completed per second are what the store
 * can do, not what probes happen to send. Until first measured, at most one
 * group's worth of records waits. A rate is forgotten once the queue has been
 * empty and unsaturated for RATE_FORGET_MS: a store that was slow during a
 * burst (a merge, a busy host) is not held to that rate later, when light
 * traffic would otherwise be refused on a stale figure.
 */
export interface StoreQueueOptions {
  /** Groups stored at once. */
  concurrency: number;
  maxWaitS: number;
  /** Records (trains and the batch's other records) one group may carry. */
  maxGroupTrains: number;
  /** Message bytes one group may carry. */
  maxGroupBytes: number;
  /** Monotonic milliseconds (tests drive their own clock). */
  now?: () => number;
}

/** What the queue needs to know of a batch: how many records it holds, and its size. */
export interface QueuedBatch {
  trains: number;
  bytes: number;
}

/** Rate samples are taken over at least this long, so one completion's timing does not swing the estimate. */
const RATE_WINDOW_MS = 1000;
/** A measured rate older than this, with the queue drained since, no longer says what the store can do. */
const RATE_FORGET_MS = 5000;

export class StoreQueue<B extends QueuedBatch> {
  private running = 0;
  private runningTrains = 0;
  private readonly waiting: B[] = [];
  private waitingTrains = 0;
  /** Records per second the store completes when saturated (exponentially weighted); null until measured. */
  private rate: number | null = null;
  private windowStart: number | null = null;
  private windowTrains = 0;
  /** Records per batch offered lately (exponentially weighted): the size overloaded() judges an unread batch by. */
  private typicalTrains: number | null = null;
  /** When the last saturated rate sample was taken. */
  private rateAt = 0;
  /** When the queue first stood empty after its last saturation; null while saturated or since. */
  private drainedAt: number | null = null;

  private readonly now: () => number;

  /**
   * `storeGroup` stores one group and answers each of its batches itself; it
   * must not reject (a rejection is taken as the group done).
   */
  constructor(private readonly options: StoreQueueOptions, private readonly storeGroup: (group: B[]) => Promise<void>) {
    this.now = options.now ?? (() => performance.now());
  }

  /**
   * Whether a batch of `trains` records arriving now would spend longer than
   * maxWaitS in the server: null when it may be enqueued, else the expected
   * wait (null: the rate is not yet measured and a group's worth already waits).
   */
  admit(trains: number): { expectedS: number | null } | null {
    this.forgetStaleRate();
    this.typicalTrains = this.typicalTrains === null ? trains : 0.8 * this.typicalTrains + 0.2 * trains;
    return this.refusal(trains);
  }

  /** Queues an admitted batch; it is stored in the next free turn, with whatever else waits then. */
  enqueue(batch: B): void {
    this.waiting.push(batch);
    this.waitingTrains += batch.trains;
    if (this.running < this.options.concurrency) this.startGroup();
    else this.drainedAt = null;
  }

  /**
   * Whether a batch arriving now would be refused, judged before it is read
   * (its size unknown: taken as that of recent batches). Costs nothing, so
   * the collector asks before it reads a message: an overloaded server sheds
   * a batch without parsing it.
   */
  overloaded(): { expectedS: number | null } | null {
    this.forgetStaleRate();
    return this.refusal(this.typicalTrains ?? 0);
  }

  /** Records per second measured at saturation, or null. */
  measuredRate(): number | null {
    return this.rate;
  }

  /** Batches waiting for a turn, and groups being stored (for tests and metrics). */
  depth(): { waiting: number; storing: number } {
    return { waiting: this.waiting.length, storing: this.running };
  }

  private refusal(trains: number): { expectedS: number | null } | null {
    if (this.running < this.options.concurrency && this.waiting.length === 0) return null;
    if (this.rate === null) {
      // Unmeasured: one group's worth may wait (it goes in the next turn); beyond that the wait is unknown.
      return this.waiting.length > 0 && this.waitingTrains + trains > this.options.maxGroupTrains ? { expectedS: null } : null;
    }
    // Admission alone never lets what is admitted exceed maxWaitS.
    const expectedS = (this.runningTrains + this.waitingTrains + trains) / this.rate;
    return expectedS > this.options.maxWaitS ? { expectedS } : null;
  }

  /** Takes the waiting batches, oldest first, while the group stays within its bounds, and stores them. */
  private startGroup(): void {
    const group: B[] = [];
    let trains = 0;
    let bytes = 0;
    while (this.waiting.length > 0) {
      const next = this.waiting[0]!;
      if (group.length > 0 && (trains + next.trains > this.options.maxGroupTrains || bytes + next.bytes > this.options.maxGroupBytes)) break;
      this.waiting.shift();
      group.push(next);
      trains += next.trains;
      bytes += next.bytes;
    }
    if (group.length === 0) return;
    this.waitingTrains -= trains;
    this.running++;
    this.runningTrains += trains;
    void this.storeGroup(group).catch(() => undefined).finally(() => {
      this.running--;
      this.runningTrains -= trains;
      this.completed(trains);
      if (this.waiting.length > 0 && this.running < this.options.concurrency) this.startGroup();
    });
  }

  private forgetStaleRate(): void {
    if (this.rate !== null && this.drainedAt !== null && this.now() - Math.max(this.drainedAt, this.rateAt) >= RATE_FORGET_MS) {
      this.rate = null;
    }
  }

  private completed(trains: number): void {
    const now = this.now();
    if (this.waiting.length === 0) {
      // Not saturated: what completes now says nothing about capacity.
      this.windowStart = null;
      this.windowTrains = 0;
      if (this.running === 0 && this.drainedAt === null) this.drainedAt = now;
      return;
    }
    this.drainedAt = null;
    if (this.windowStart === null) {
      this.windowStart = now;
      return;
    }
    this.windowTrains += trains;
    const elapsed = now - this.windowStart;
    if (elapsed < RATE_WINDOW_MS) return;
    const sample = (this.windowTrains * 1000) / elapsed;
    this.rate = this.rate === null ? sample : 0.5 * this.rate + 0.5 * sample;
    this.rateAt = now;
    this.windowStart = now;
    this.windowTrains = 0;
  }
}
