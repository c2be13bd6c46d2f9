/** Small statistics for benchmark samples. */

/** Nearest-rank percentile (q in 0..1) of unsorted samples; null when empty. */
export function percentile(samples: ArrayLike<number>, q: number): number | null {
  const n = samples.length;
  if (n === 0) return null;
  const sorted = Float64Array.from(samples).sort();
  const rank = Math.min(n, Math.max(1, Math.ceil(q * n)));
  return sorted[rank - 1]!;
}

export function median(samples: ArrayLike<number>): number | null {
  return percentile(samples, 0.5);
}

export function mean(samples: ArrayLike<number>): number | null {
  if (samples.length === 0) return null;
  let s = 0;
  for (let i = 0; i < samples.length; i++) s += samples[i]!;
  return s / samples.length;
}

/**
 * A fixed-resolution histogram for millions of samples (delays in ms): no
 * array grows per sample. Values beyond the range land in the last bucket.
 */
export class Histogram {
  private readonly counts: Uint32Array;
  count = 0;
  max = 0;

  constructor(private readonly resolution: number, maxValue: number) {
    this.counts = new Uint32Array(Math.ceil(maxValue / resolution) + 1);
  }

  add(v: number): void {
    const i = Math.min(this.counts.length - 1, Math.max(0, Math.floor(v / this.resolution)));
    this.counts[i]!++;
    this.count++;
    if (v > this.max) this.max = v;
  }

  merge(other: { counts: number[]; max: number }): void {
    for (let i = 0; i < other.counts.length && i < this.counts.length; i++) this.counts[i]! += other.counts[i]!;
    for (const c of other.counts) this.count += c;
    this.max = Math.max(this.max, other.max);
  }

  /** Upper edge of the bucket holding the q-quantile. */
  quantile(q: number): number | null {
    if (this.count === 0) return null;
    const rank = Math.max(1, Math.ceil(q * this.count));
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) return Math.min((i + 1) * this.resolution, this.max);
    }
    return this.max;
  }

  toJSON(): { counts: number[]; max: number } {
    return { counts: Array.from(this.counts), max: this.max };
  }
}
