/**
 * The percentile levels the rollups keep, and the per-direction bucket both
 * the SLA month (sql/sla.ts) and the alert conditions (sql/alerts.ts) judge:
 * defined once, so a report and an alert never read a link differently.
 */

/** Percentile levels kept in latency_1m.rtt_q_us and latency_1h.rtt_q_us, in order (1-based index in SQL). */
export const ROLLUP_LEVELS = [0.5, 0.9, 0.95, 0.99] as const;

const LEVELS_SQL = ROLLUP_LEVELS.join(', ');

/** The 1-based SQL index of a percentile level; any other level is refused by name. */
export function levelIndex(percentile: number): number {
  const i = (ROLLUP_LEVELS as readonly number[]).indexOf(percentile);
  if (i < 0) throw new Error(`percentile ${percentile} is not one of the rollup levels ${ROLLUP_LEVELS.join(', ')}`);
  return i + 1;
}

export interface DirectionBucketsOptions {
  /** 'rollup': latency_1m (one bucket per minute, t-digest levels); 'raw': latency_trains (exact levels). */
  source: 'rollup' | 'raw';
  /** SQL condition selecting the engine(s). */
  engine: string;
  /** SQL condition on the period: over `minute` (rollup) or `ts` (raw). */
  period: string;
  /** Raw only: SQL expression of the bucket width in seconds (default 60; the rollup's buckets are its minutes). */
  stepS?: string;
  /** Further SQL condition over the source's rows (src, dst, minute or ts). */
  where?: string;
  /** Compute the percentile levels (default true); without them d_qs is an empty array. */
  levels?: boolean;
  /** Rollup only: the minute rollup read (default latency_1m; latency_1m_recent holds the last hours alone, migration 0019). */
  rollupTable?: RollupMinutesTable;
}

/** The tables of minute rollup states, one column layout (migrations 0002 and 0019). */
export type RollupMinutesTable = 'latency_1m' | 'latency_1m_recent';

/**
 * One row per bucket and direction: bucket_time (DateTime, UTC), la and lb
 * (the link, la < lb), dir_src (the direction's sender), d_trains, d_sent,
 * d_received, d_lost, d_qs (the ROLLUP_LEVELS of the bucket's RTTs: t-digest
 * from the rollup, exact from the raw trains).
 */
export function directionBucketsSql(o: DirectionBucketsOptions): string {
  const levels = o.levels ?? true;
  const where = o.where ?? '1';
  if (o.source === 'rollup') {
    return `
    SELECT minute AS bucket_time, least(src, dst) AS la, greatest(src, dst) AS lb, src AS dir_src,
           sum(trains) AS d_trains, sum(sent) AS d_sent, sum(received) AS d_received, sum(lost) AS d_lost,
           ${levels ? `quantilesTDigestArrayMerge(${LEVELS_SQL})(rtt_q_us)` : `CAST([], 'Array(Float64)')`} AS d_qs
    FROM ${o.rollupTable ?? 'latency_1m'}
    WHERE (${o.engine}) AND (${o.period}) AND (${where})
    GROUP BY minute, src, dst`;
  }
  const step = o.stepS ?? '60';
  return `
    SELECT toDateTime(intDiv(toUInt32(toUnixTimestamp(ts)), ${step}) * ${step}, 'UTC') AS bucket_time,
           least(src, dst) AS la, greatest(src, dst) AS lb, src AS dir_src,
           count() AS d_trains, sum(sent) AS d_sent, sum(received) AS d_received, sum(lost) AS d_lost,
           ${levels ? `quantilesExactArray(${LEVELS_SQL})(rtts_us)` : `CAST([], 'Array(Float64)')`} AS d_qs
    FROM latency_trains
    WHERE (${o.engine}) AND (${o.period}) AND (${where})
    GROUP BY bucket_time, src, dst`;
}
