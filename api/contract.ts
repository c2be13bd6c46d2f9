/**
 * JSON shapes the HTTP API and the /v1/live feed send. The dashboard imports
 * these types (type-only) so no response shape is written twice.
 * Times on the wire: ISO-8601 strings in documents, Unix seconds (float) in
 * columnar series and live messages (uPlot's native x unit). Latency in ms.
 */

export interface CentreView {
  id: string;
  name: string;
  district: string;
  lat: number | null;
  lon: number | null;
}

export interface LinkView {
  /** `${a}~${b}` with a < b. */
  id: string;
  a: string;
  b: string;
  capacityGbps: number;
  /** p99 round-trip target for this link, ms. */
  rttTargetMs: number;
}

export type PathState = 'ok' | 'warn' | 'breach' | 'stale' | 'nodata';

/** Latest state of one measured direction (src probes dst). */
export interface PathStatus {
  src: string;
  dst: string;
  engine: 'stamp' | 'icmp';
  /** ISO time of the newest train, or null when none. */
  lastTs: string | null;
  /** Trains in the status window. */
  trains: number;
  rttP50Ms: number | null;
  rttP99Ms: number | null;
  jitterMs: number | null;
  lossRatio: number | null;
  targetMs: number;
  state: PathState;
}

export interface StatusResponse {
  generatedAt: string;
  windowS: number;
  staleAfterS: number;
  paths: PathStatus[];
}

/** Columnar series aligned on `t`; null marks a bucket with no data. */
export interface SeriesResponse {
  src: string;
  dst: string;
  engine: 'stamp' | 'icmp';
  source: 'raw' | 'rollup';
  stepS: number;
  from: string;
  to: string;
  t: number[];
  minMs: (number | null)[];
  p50Ms: (number | null)[];
  p99Ms: (number | null)[];
  maxMs: (number | null)[];
  jitterMs: (number | null)[];
  lossRatio: (number | null)[];
  packets: number[];
}

/** Messages on the /v1/live WebSocket. */
export type LiveMessage =
  | { type: 'welcome'; serverTime: string }
  | {
      type: 'train';
      src: string;
      dst: string;
      engine: 'stamp' | 'icmp';
      flow: number;
      /** Train start, Unix seconds. */
      t: number;
      sent: number;
      received: number;
      lossRatio: number;
      rttMinMs: number | null;
      rttP50Ms: number | null;
      rttP99Ms: number | null;
      rttMaxMs: number | null;
      jitterMs: number | null;
    };

export interface ErrorResponse {
  error: string;
  /** What was wrong, e.g. the offending parameter. */
  reason: string;
}

export type CapacityVerdict = 'met' | 'breach' | 'unknown' | 'nodata' | 'failed';

/** Capacity of one link: is the port provisioned at the committed speed, and does a test deliver the floor? */
export interface LinkCapacity {
  linkId: string;
  a: string;
  b: string;
  committedGbps: number;
  floorGbps: number;
  provisioned: {
    /** Lowest negotiated speed among the interfaces mapped to this link, Gb/s; null when none known. */
    gbps: number | null;
    interfaces: { centre: string; interface: string; speedMbps: number | null; operState: string; utilisation: number | null; at: string }[];
    verdict: Exclude<CapacityVerdict, 'failed'>;
  };
  tested: {
    at: string | null;
    engine: string | null;
    /** Goodput a → b and b → a of the newest test, Gb/s. */
    abGbps: number | null;
    baGbps: number | null;
    error: string | null;
    verdict: CapacityVerdict;
  };
  /** Both must hold: provisioned ≥ committed and tested ≥ floor. */
  verdict: CapacityVerdict;
}

export interface CapacityResponse {
  generatedAt: string;
  links: LinkCapacity[];
}

export interface ThroughputHistoryResponse {
  a: string;
  b: string;
  floorGbps: number;
  committedGbps: number;
  tests: {
    at: string;
    testId: string;
    client: string;
    trigger: string;
    engine: string;
    direction: string;
    streams: number;
    ok: boolean;
    error: string | null;
    abGbps: number | null;
    baGbps: number | null;
  }[];
}

export interface UtilisationResponse {
  centre: string;
  peer: string;
  stepS: number;
  t: number[];
  /** 0..1 of the negotiated speed; null = no data. */
  peak: (number | null)[];
  mean: (number | null)[];
  rxGbps: (number | null)[];
  txGbps: (number | null)[];
}

/** An on-demand or scheduled throughput test as the server tracks it (POST …/throughput-tests, GET /v1/throughput-tests/:id). */
export interface ThroughputTestStatus {
  testId: string;
  client: string;
  server: string;
  trigger: 'schedule' | 'operator';
  state: 'queued' | 'running' | 'done' | 'failed' | 'expired';
  requestedAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  error: string | null;
  forwardBps: number | null;
  reverseBps: number | null;
}
