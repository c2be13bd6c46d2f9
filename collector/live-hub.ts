/**
 * Fan-out of trains to live subscribers (the /v1/live feed). Trains are
 * published per batch, so subscribers can send one frame per batch instead
 * of one per train. A batch's trains are published as soon as the batch is
 * validated, while its lookup and INSERT run (batch-ingest.ts), and taken
 * back (retract) if the batch is then refused or its storing fails; trains
 * another server stored arrive from the tail (live-tail.ts) and are
 * published as stored. Publishing never blocks ingest: a subscriber that
 * throws is dropped.
 *
 * The hub remembers every train it published for a while (by time, see
 * rememberedSinceUs()), so a train reaching it twice (a resend, the tail
 * reading back what this server stored) is shown once.
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

export interface LiveHubOptions {
  /**
   * How long an id is remembered at least, ms: a generation of ids is
   * dropped once the next one is this old. Default 30 s: longer than the
   * tail's reach (its 5 s overlap and 1 s period) and than the few seconds
   * between a train's validation and its batch's answer.
   */
  memoryMs?: number;
  /**
   * At most this many ids a generation (memory stays bounded whatever the
   * rate: at 10,000 trains/s a generation fills in 25 s); a full generation
   * is rotated early, and rememberedSinceUs() says so.
   */
  maxIdsPerGeneration?: number;
  /** Wall-clock microseconds (tests drive their own clock). */
  nowUs?: () => number;
}

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
  /** When the current and the previous generation began: every id published since previousSinceUs is remembered. */
  private currentSinceUs: number;
  private previousSinceUs: number;
  /**
   * Published before their storing was known to succeed (publishTentative), not yet
   * settled: only these can be retracted. Never forgotten by rotation, so a
   * batch that waits long still cannot have its trains shown twice.
   */
  private readonly tentative = new Set<string>();
  private readonly memoryUs: number;
  private readonly maxIds: number;
  private readonly nowUs: () => number;

  constructor(options: LiveHubOptions = {}) {
    this.memoryUs = (options.memoryMs ?? 30_000) * 1000;
    this.maxIds = options.maxIdsPerGeneration ?? 250_000;
    this.nowUs = options.nowUs ?? (() => Date.now() * 1000);
    // A new hub has shown nothing, so it knows every train it ever showed: its memory reaches back to the epoch
    // until its first generation is dropped. (A dashboard reconnecting to a restarted server reloads what is
    // stored and skips live trains it already holds: dashboard/src/charts.ts.)
    this.currentSinceUs = this.previousSinceUs = 0;
  }

  /** `retract`: trains published earlier that will not be stored after all (see retract()). */
  subscribe(listener: LiveListener, retract?: RetractListener): () => void {
    this.listeners.add(listener);
    if (retract) this.retractListeners.add(retract);
    return () => {
      this.listeners.delete(listener);
      if (retract) this.retractListeners.delete(retract);
    };
  }

  /**
   * Stored trains (read back from the store by the tail, or stored here):
   * publishes those not seen before and returns them. A train seen before
   * that was published tentatively is now known stored (by whichever
   * server): it is no longer retracted if this server's own storing of it fails.
   */
  publish(all: readonly LiveTrain[]): LiveTrain[] {
    this.rotateIfOld();
    const trains: LiveTrain[] = [];
    for (const t of all) {
      const key = keyOf(t);
      if (this.firstSighting(key)) trains.push(t);
      else this.tentative.delete(key);
    }
    this.send(trains);
    return trains;
  }

  /**
   * Trains whose storing has begun but not succeeded yet: publishes those not
   * seen before and returns them; until settled() they can be retracted.
   */
  publishTentative(all: readonly LiveTrain[]): LiveTrain[] {
    this.rotateIfOld();
    const trains: LiveTrain[] = [];
    for (const t of all) {
      const key = keyOf(t);
      if (!this.firstSighting(key)) continue;
      this.tentative.add(key);
      trains.push(t);
    }
    this.send(trains);
    return trains;
  }

  /** Tentatively published trains that are now stored: they stay shown. */
  settled(trains: readonly LiveTrain[]): void {
    for (const t of trains) this.tentative.delete(keyOf(t));
  }

  /**
   * Tentatively published trains that will not be stored after all (their
   * batch was refused, or its storing failed): subscribers are told to take
   * them back, and the ids are forgotten, so the probe's resend (it keeps the
   * batch) publishes them again. A train meanwhile seen stored (publish()) or
   * already settled is not retracted: it is stored.
   */
  retract(trains: readonly LiveTrain[]): void {
    const gone: LiveTrain[] = [];
    for (const t of trains) {
      const key = keyOf(t);
      if (!this.tentative.delete(key)) continue;
      if (!this.currentIds.delete(key)) this.previousIds.delete(key);
      gone.push(t);
    }
    if (gone.length === 0) return;
    this.retracted += gone.length;
    notify(this.retractListeners, gone);
  }

  /**
   * Every train this hub published after this time (wall clock, µs) is still
   * remembered: a train that cannot have reached the hub until after it is,
   * if the hub does not know it, one it never showed.
   */
  rememberedSinceUs(): number {
    this.rotateIfOld();
    return this.previousSinceUs;
  }

  stats(): { subscribers: number; published: number; retracted: number; tentative: number; remembered: number } {
    return {
      subscribers: this.listeners.size, published: this.published, retracted: this.retracted,
      tentative: this.tentative.size, remembered: this.currentIds.size + this.previousIds.size,
    };
  }

  private send(trains: LiveTrain[]): void {
    if (trains.length === 0) return;
    this.published += trains.length;
    notify(this.listeners, trains);
  }

  /** Keyed by source centre and train id: train ids are the probe's, unique only within its centre. */
  private firstSighting(key: string): boolean {
    if (this.currentIds.has(key) || this.previousIds.has(key) || this.tentative.has(key)) return false;
    this.currentIds.add(key);
    if (this.currentIds.size >= this.maxIds) this.rotate(this.nowUs());
    return true;
  }

  /** The current generation becomes the previous one once it spans memoryMs: ids are kept between memoryMs and twice that. */
  private rotateIfOld(): void {
    const now = this.nowUs();
    if (now - this.currentSinceUs >= this.memoryUs) this.rotate(now);
  }

  private rotate(now: number): void {
    this.previousIds = this.currentIds;
    this.previousSinceUs = this.currentSinceUs;
    this.currentIds = new Set();
    this.currentSinceUs = now;
  }
}

function keyOf(t: LiveTrain): string {
  return `${t.src}/${t.trainId}`;
}

/** Each listener gets the trains; one that throws is dropped (a broken subscriber never stops the feed). */
function notify(listeners: Set<LiveListener>, trains: readonly LiveTrain[]): void {
  for (const listener of listeners) {
    try {
      listener(trains);
    } catch {
      listeners.delete(listener);
    }
  }
}
