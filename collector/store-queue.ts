/**
 * Batches take turns at the store. At most `concurrency` are being stored at
 * once (enough to keep the engine's threads busy; more only makes every one
 * of them slower); the others wait here in arrival order. A batch whose time
 * in the server would exceed `maxWaitS`, judged by the store's measured rate,
 * is not admitted: the probe keeps it (busy) instead of a queue growing here,
 * so the server's share of a batch's lag stays bounded whatever is offered.
 *
 * The rate is measured only while the store is saturated (every slot taken
 * and batches waiting): then completions per second are what the store can
 * do, not what probes happen to send. Until first measured, at most
 * `concurrency` batches wait. A rate is forgotten once the queue has been
 * empty and unsaturated for RATE_FORGET_MS: a store that was slow during a
 * burst (a merge, a busy host) is not held to that rate later, when light
 * traffic would otherwise be refused on a stale figure.
 */
export interface StoreQueueOptions {
  concurrency: number;
  maxWaitS: number;
  /** Monotonic milliseconds (tests drive their own clock). */
  now?: () => number;
}

/** Rate samples are taken over at least this long, so one completion's timing does not swing the estimate. */
const RATE_WINDOW_MS = 1000;
/** A measured rate older than this, with the queue drained since, no longer says what the store can do. */
const RATE_FORGET_MS = 5000;

export class StoreQueue {
  private running = 0;
  private runningTrains = 0;
  private readonly waiting: { trains: number; start: () => void }[] = [];
  private waitingTrains = 0;
  /** Trains per second the store completes when saturated (exponentially weighted); null until measured. */
  private rate: number | null = null;
  private windowStart: number | null = null;
  private windowTrains = 0;
  /** Trains per batch offered lately (exponentially weighted): the size overloaded() judges an unread batch by. */
  private typicalTrains: number | null = null;
  /** When the last saturated rate sample was taken. */
  private rateAt = 0;
  /** When the queue first stood empty after its last saturation; null while saturated or since. */
  private drainedAt: number | null = null;

  private readonly now: () => number;

  constructor(private readonly options: StoreQueueOptions) {
    this.now = options.now ?? (() => performance.now());
  }

  /**
   * Runs `work` in its turn, or returns `{ admitted: false }` at once when the
   * batch would spend longer than maxWaitS in the server.
   */
  async run<T>(trains: number, work: () => Promise<T>): Promise<{ admitted: true; value: T } | { admitted: false; expectedS: number | null }> {
    this.forgetStaleRate();
    this.typicalTrains = this.typicalTrains === null ? trains : 0.8 * this.typicalTrains + 0.2 * trains;
    if (this.running >= this.options.concurrency || this.waiting.length > 0) {
      const expectedS = this.rate ? (this.runningTrains + this.waitingTrains + trains) / this.rate : null;
      const full = expectedS === null ? this.waiting.length >= this.options.concurrency : expectedS > this.options.maxWaitS;
      if (full) return { admitted: false, expectedS };
      this.drainedAt = null;
      this.waitingTrains += trains;
      await new Promise<void>((start) => this.waiting.push({ trains, start }));
      this.waitingTrains -= trains;
    }
    this.running++;
    this.runningTrains += trains;
    try {
      return { admitted: true, value: await work() };
    } finally {
      this.running--;
      this.runningTrains -= trains;
      this.completed(trains);
      const next = this.waiting.shift();
      if (next) next.start();
    }
  }

  /**
   * Whether a batch arriving now would be refused, judged before it is read
   * (its size unknown: taken as that of recent batches): the queue is full by
   * count (rate not yet measured), or the trains already admitted plus such a
   * batch would take longer than maxWaitS. Costs nothing, so the
   * collector asks before it reads a message: an overloaded server sheds a
   * batch without parsing it.
   */
  overloaded(): { expectedS: number | null } | null {
    if (this.running < this.options.concurrency && this.waiting.length === 0) return null;
    this.forgetStaleRate();
    if (this.rate === null) return this.waiting.length >= this.options.concurrency ? { expectedS: null } : null;
    // Judged for a batch the size of recent ones: admission alone never lets what is admitted exceed maxWaitS.
    const expectedS = (this.runningTrains + this.waitingTrains + (this.typicalTrains ?? 0)) / this.rate;
    return expectedS > this.options.maxWaitS ? { expectedS } : null;
  }

  /** Trains per second measured at saturation, or null. */
  measuredRate(): number | null {
    return this.rate;
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
