/**
 * A token bucket: `ratePerS` tokens per second, holding at most `burst`.
 * Used for per-connection message limits and per-client request limits.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly ratePerS: number,
    private readonly burst: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.tokens = burst;
    this.last = now();
  }

  /** Take one token; false when the bucket is empty (the caller refuses the request). */
  take(): boolean {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) / 1000) * this.ratePerS);
    this.last = t;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

/** Buckets per key (client address, token), forgetting keys idle for a while so memory stays bounded. */
export class KeyedLimiter {
  private readonly buckets = new Map<string, { bucket: TokenBucket; seen: number }>();

  constructor(
    private readonly ratePerS: number,
    private readonly burst: number,
    private readonly maxKeys = 10_000,
  ) {}

  take(key: string): boolean {
    let entry = this.buckets.get(key);
    if (!entry) {
      if (this.buckets.size >= this.maxKeys) this.evict();
      entry = { bucket: new TokenBucket(this.ratePerS, this.burst), seen: 0 };
      this.buckets.set(key, entry);
    }
    entry.seen = performance.now();
    return entry.bucket.take();
  }

  private evict(): void {
    const cutoff = performance.now() - 60_000;
    for (const [key, entry] of this.buckets) if (entry.seen < cutoff) this.buckets.delete(key);
    if (this.buckets.size >= this.maxKeys) this.buckets.delete(this.buckets.keys().next().value!);
  }
}
