// The dashboard's chart colours, one table for every chart (latency, capacity,
// the regulator's timeline): a measure drawn in two places has one colour.
// Series take the colour of what they mean (RTT percentiles blue/violet,
// targets and floors red, loss orange); the page's CSS keeps its own.

export const PALETTE = {
  /** Axis labels and ticks, and reference lines that are not a target (committed capacity). */
  axis: '#8b949e',
  grid: 'rgba(240, 246, 252, 0.07)',
  /** p50 RTT, mean utilisation, the a → b direction. */
  blue: '#6cb6ff',
  /** p99 RTT, the b → a direction, transmit rates. */
  violet: '#d2a8ff',
  /** Minimum RTT. */
  deepBlue: '#3f6ea8',
  /** Maximum RTT. */
  grey: '#768390',
  /** Targets and floors: the line a value must stay on the right side of. */
  target: '#f47067',
  /** Loss, peak utilisation. */
  orange: '#f69d50',
  /** Jitter, receive rates. */
  teal: '#56d4bc',
  ok: '#3fb950',
  bad: '#f85149',
  /** Failed tests. */
  failed: 'rgba(248, 81, 73, 0.7)',
} as const;
