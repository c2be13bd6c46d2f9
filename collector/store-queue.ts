/**
 * Batches take turns at the store, in groups (group commit). A store turn
 * costs about the same whether it carries one small batch or many (a lookup
 * round trip, then one INSERT per table, each a new part and a pass through
 * the views): batches that become ready while the turns are taken wait here,
 * in arrival order, and are stored together, up to `maxGroupTrains` records
 * and `maxGroupBytes` bytes so one INSERT stays bounded (a batch larger than
 * either alone is a group of its own). A turn has two stages (StoreStages):
 * one lookup at a time and up to `concurrency` INSERTs at once, which only
 * the acks wait for (the live feed does not: a batch's trains are published
 * when it is validated, before it is queued here; batch-ingest.ts).
 *
 * Turns start at most once per `minTurnIntervalMs` unless a group's worth
 * waits: a store turn's fixed cost (tens of milliseconds of engine CPU for
 * an INSERT into every table and view, however few rows, and the parts it
 * leaves to merge) is paid per turn, so twenty probes each sending a small
 * batch a second cost twenty turns a second without it. A batch arriving
 * after a quiet spell goes at once; one arriving sooner waits at most the
 * rest of the interval (its ack is that much later, well inside the lag
 * target), and everything that arrived meanwhile goes with it. Under heavy
 * load (a group's worth admitted in all) no turn waits, nor while the
 * store's rate is known (measured only when saturated, forgotten once the
 * queue has stood empty for 5 s), nor for 5 s after a batch was refused as
 * busy (its probe holds it for the store: a held turn would only delay the
 * acks that free the probes). A hold restarts the rate window: the store
 * idle by choice is not the store slow. The live feed does not wait for
 * this: it publishes at validation.
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
  /** Least time between the starts of two turns, unless a group's worth waits or is admitted in all (default 0: no wait). */
  minTurnIntervalMs?: number;
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
/** After a busy refusal, turns go as soon as they can for this long (probes back off for about a second and more). */
const BUSY_NO_HOLD_MS = 5000;
/** A measured rate older than this, with the queue drained since, no longer says what the store can do. */
const RATE_FORGET_MS = 5000;

/**
 * The two stages of a group's turn. A lookup never waits behind an INSERT
 * (the acks' latency): one group is looked up at a time,
 * while up to `concurrency` others are being inserted, and the batches
 * looked up while every INSERT is taken are inserted together in the next one.
 * Neither may reject: each answers the batches it drops itself.
 */
export interface StoreStages<B> {
  /** Looks a group up; resolves to those of its batches still to be inserted (it answered the others). */
  lookUp(group: B[]): Promise<B[]>;
  /** Inserts these batches together and answers each. */
  insert(group: B[]): Promise<void>;
}

export class StoreQueue<B extends QueuedBatch> {
  /** Admitted, waiting to be looked up. */
  private readonly waiting: B[] = [];
  private lookingUp: B[] | null = null;
  /** Looked up, waiting for an INSERT. */
  private readonly lookedUp: B[] = [];
  private inserting = 0;
  /** Records admitted and not yet answered, at every stage: what a batch admitted now waits behind. */
  private admittedTrains = 0;
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
  /** When the last turn (its lookup) started. */
  private lastTurnAt = Number.NEGATIVE_INFINITY;
  /** Set while waiting batches wait only for the turn interval (not for the store). */
  private turnTimer: NodeJS.Timeout | null = null;
  /** When a batch was last refused (busy): turns do not wait for the interval for BUSY_NO_HOLD_MS after it. */
  private lastRefusalAt = Number.NEGATIVE_INFINITY;

  private readonly now: () => number;

  constructor(private readonly options: StoreQueueOptions, private readonly stages: StoreStages<B>) {
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
    const refused = this.refusal(trains);
    if (refused) this.lastRefusalAt = this.now();
    return refused;
  }

  /** Queues an admitted batch: looked up with whatever else waits then, inserted with whatever else is looked up. */
  enqueue(batch: B): void {
    this.waiting.push(batch);
    this.admittedTrains += batch.trains;
    this.pump();
  }

  /**
   * Whether a batch arriving now would be refused, judged before it is read
   * (its size unknown: taken as that of recent batches). Costs nothing, so
   * the collector asks before it reads a message: an overloaded server sheds
   * a batch without parsing it.
   */
  overloaded(): { expectedS: number | null } | null {
    this.forgetStaleRate();
    const refused = this.refusal(this.typicalTrains ?? 0);
    if (refused) this.lastRefusalAt = this.now();
    return refused;
  }

  /** Records per second measured at saturation, or null. */
  measuredRate(): number | null {
    return this.rate;
  }

  /** Batches waiting for their lookup or their INSERT, and groups being inserted (for tests and metrics). */
  depth(): { waiting: number; lookedUp: number; inserting: number } {
    return { waiting: this.waiting.length, lookedUp: this.lookedUp.length, inserting: this.inserting };
  }

  /**
   * Batches queue here only while every INSERT is taken: until then there is
   * room. Batches held for the turn interval do not count: the store is idle.
   */
  private saturated(): boolean {
    return (this.waiting.length > 0 && this.turnTimer === null) || this.lookedUp.length > 0;
  }

  private refusal(trains: number): { expectedS: number | null } | null {
    if (this.inserting < this.options.concurrency && !this.saturated()) return null;
    if (this.rate === null) {
      // Unmeasured: a group's worth may wait (it goes in the next turn); beyond that the wait is unknown.
      const queued = this.sum(this.waiting) + this.sum(this.lookedUp);
      return queued > 0 && queued + trains > this.options.maxGroupTrains ? { expectedS: null } : null;
    }
    // Admission alone never lets what is admitted exceed maxWaitS.
    const expectedS = (this.admittedTrains + trains) / this.rate;
    return expectedS > this.options.maxWaitS ? { expectedS } : null;
  }

  private sum(batches: readonly B[]): number {
    let trains = 0;
    for (const b of batches) trains += b.trains;
    return trains;
  }

  /**
   * Starts what can start: an INSERT for each free slot (the looked-up batches, oldest first), and the next
   * lookup, unless one is running or a group's worth already waits looked up (looking further ahead would only
   * answer for the store's content long before the INSERT).
   */
  private pump(): void {
    while (this.inserting < this.options.concurrency && this.lookedUp.length > 0) this.startInsert(this.take(this.lookedUp));
    if (this.lookingUp === null && this.waiting.length > 0 && this.sum(this.lookedUp) < this.options.maxGroupTrains) {
      const holdMs = this.turnHoldMs();
      if (holdMs > 0) {
        if (this.turnTimer === null) {
          // The store waits by choice: a rate window spanning this would count the wait as slowness.
          this.windowStart = null;
          this.windowTrains = 0;
          this.turnTimer = setTimeout(() => {
            this.turnTimer = null;
            this.pump();
          }, holdMs);
        }
        return;
      }
      if (this.turnTimer !== null) {
        clearTimeout(this.turnTimer);
        this.turnTimer = null;
      }
      this.lastTurnAt = this.now();
      this.startLookup(this.take(this.waiting));
    }
  }

  /**
   * How long the waiting batches wait for the turn interval: 0 once it has passed, or when a group's worth is
   * admitted in all (waiting, looked up and being inserted): then the store is busy, every turn is full enough, and
   * a turn held back would only hold the acks that let probes send more. (Admitted records include the waiting
   * ones, so a group's worth of waiting records is covered; bytes are bounded by what waits.) Nor while the store's
   * rate is known (it was saturated lately) or a refusal is recent (a probe holds a batch for the store then, and
   * the sooner the acks, the sooner it may send it): the interval is for a store with time to spare.
   */
  private turnHoldMs(): number {
    const interval = this.options.minTurnIntervalMs ?? 0;
    if (interval <= 0 || this.admittedTrains >= this.options.maxGroupTrains) return 0;
    // A measured rate: the store was saturated lately (it is forgotten once the queue has stood empty for a while).
    if (this.rate !== null || this.now() - this.lastRefusalAt < BUSY_NO_HOLD_MS) return 0;
    const left = this.lastTurnAt + interval - this.now();
    if (left <= 0) return 0;
    let bytes = 0;
    for (const b of this.waiting) bytes += b.bytes;
    return bytes >= this.options.maxGroupBytes ? 0 : left;
  }

  /** The oldest batches of `queue` while the group stays within its bounds (a batch larger than a bound goes alone). */
  private take(queue: B[]): B[] {
    const group: B[] = [];
    let trains = 0;
    let bytes = 0;
    while (queue.length > 0) {
      const next = queue[0]!;
      if (group.length > 0 && (trains + next.trains > this.options.maxGroupTrains || bytes + next.bytes > this.options.maxGroupBytes)) break;
      queue.shift();
      group.push(next);
      trains += next.trains;
      bytes += next.bytes;
    }
    return group;
  }

  private startLookup(group: B[]): void {
    this.lookingUp = group;
    void this.stages.lookUp(group).catch(() => [] as B[]).then((kept) => {
      this.lookingUp = null;
      // Those dropped were answered at the lookup: no longer waited behind.
      const keptSet = new Set(kept);
      for (const b of group) if (!keptSet.has(b)) this.admittedTrains -= b.trains;
      this.lookedUp.push(...kept);
      if (!this.saturated() && this.inserting === 0 && kept.length === 0 && this.waiting.length === 0) this.markDrained();
      this.pump();
    });
  }

  private startInsert(group: B[]): void {
    const trains = this.sum(group);
    this.inserting++;
    void this.stages.insert(group).catch(() => undefined).finally(() => {
      this.inserting--;
      this.admittedTrains -= trains;
      this.completed(trains);
      this.pump();
    });
  }

  private markDrained(): void {
    if (this.drainedAt === null) this.drainedAt = this.now();
  }

  private forgetStaleRate(): void {
    if (this.rate !== null && this.drainedAt !== null && this.now() - Math.max(this.drainedAt, this.rateAt) >= RATE_FORGET_MS) {
      this.rate = null;
    }
  }

  private completed(trains: number): void {
    const now = this.now();
    if (!this.saturated()) {
      // Not saturated: what completes now says nothing about capacity.
      this.windowStart = null;
      this.windowTrains = 0;
      // Batches held for the turn interval are not a drained queue: the rate measured before them still holds.
      if (this.inserting === 0 && this.lookingUp === null && this.waiting.length === 0) this.markDrained();
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
