/**
 * The shape every throughput engine returns, whichever engine ran.
 *
 * Rules shared by both engines:
 * - A failed test is `ok: false` with a human-readable `error`, and every
 *   figure is `null`: a failure is never reported as 0 bit/s.
 * - `receivedBps` is goodput as counted by the receiving end over the
 *   measured window (warm-up excluded); `sentBps` is what the sender handed
 *   to its TCP stack over the same kind of window.
 * - Directions are named from the client's (the probe's) point of view:
 *   `forward` = client → server, `reverse` = server → client.
 */

export type ThroughputEngineName = 'iperf3' | 'native';

/** forward: client sends; reverse: server sends (iperf3 -R); bidir: both at once (iperf3 --bidir). */
export type ThroughputDirection = 'forward' | 'reverse' | 'bidir';

/** One direction of data flow within a test. */
export type LegDirection = 'forward' | 'reverse';

/** What the caller asks for; shared by both engines. */
export interface ThroughputOptions {
  /** Host name or IP literal of the peer running the engine's server. */
  host: string;
  /** TCP port of the peer's server (iperf3: 5201, native: 5301 by default). */
  port?: number | undefined;
  /** Parallel TCP streams per direction (iperf3 -P). Default 1. */
  streams?: number | undefined;
  /** Measured duration in seconds, warm-up excluded (iperf3 -t). Default 10. */
  seconds?: number | undefined;
  /** Warm-up seconds left out of the figures (iperf3 -O). Default 0. */
  omitSeconds?: number | undefined;
  /** Server sends to the client (iperf3 -R). */
  reverse?: boolean | undefined;
  /** Both directions at once (iperf3 --bidir). Exclusive with `reverse`. */
  bidir?: boolean | undefined;
  /** Local address to connect from (iperf3 -B). */
  bindAddress?: string | undefined;
  /** Limit for establishing the control connection, milliseconds. Default 5000. */
  connectTimeoutMs?: number | undefined;
  /** Hard limit for the whole test; the test is killed and reported as failed after it. */
  killAfterMs?: number | undefined;
  signal?: AbortSignal | undefined;
}

/** Per-stream figures, as far as the engine knows them (null = not reported). */
export interface ThroughputStream {
  /** iperf3: the socket number it reports; native: the stream index. */
  id: number;
  direction: LegDirection;
  sentBytes: number | null;
  receivedBytes: number | null;
  sentBps: number | null;
  receivedBps: number | null;
  /** TCP retransmissions on the sending side; null when not reported (native engine, non-Linux). */
  retransmits: number | null;
  /** Sender's mean smoothed RTT over the test, microseconds; null when not reported. */
  meanRttUs: number | null;
}

/** Totals of one direction of a test. */
export interface ThroughputLeg {
  direction: LegDirection;
  /** Measured window, seconds (receiver's window for the received figures). */
  seconds: number;
  sentBytes: number;
  receivedBytes: number;
  sentBps: number;
  /** Goodput counted by the receiver. */
  receivedBps: number;
  retransmits: number | null;
}

export interface ThroughputCpu {
  /** CPU use of the client process over the test, percent of one core (iperf3 host_total). */
  localPercent: number | null;
  localUserPercent: number | null;
  localSystemPercent: number | null;
  /** CPU use of the server process, as it reported it (iperf3 remote_total). */
  remotePercent: number | null;
  remoteUserPercent: number | null;
  remoteSystemPercent: number | null;
}

export interface ThroughputResult {
  engine: ThroughputEngineName;
  /** e.g. "iperf 3.12" or "citymesh-native/1"; null when the engine never answered. */
  engineVersion: string | null;
  ok: boolean;
  /** Why the test failed, prefixed with the engine name; null when ok. */
  error: string | null;
  host: string | null;
  port: number | null;
  direction: ThroughputDirection;
  /** Parallel streams per direction (as requested / as the engine ran them). */
  streams: number;
  /** Measured window in seconds (warm-up excluded); null on failure. */
  seconds: number | null;
  omitSeconds: number;
  /** Wall-clock start of the test, Unix milliseconds. */
  startedAtMs: number | null;
  /**
   * Figures of the primary leg: forward for 'forward' and 'bidir', reverse
   * for 'reverse'. For bidir, the other direction is in `legs`.
   */
  sentBps: number | null;
  /** Goodput counted by the receiver (iperf3 end.sum_received). */
  receivedBps: number | null;
  sentBytes: number | null;
  receivedBytes: number | null;
  retransmits: number | null;
  /** One entry per direction that carried data (two for bidir); empty on failure. */
  legs: ThroughputLeg[];
  perStream: ThroughputStream[];
  cpu: ThroughputCpu;
  /** TCP congestion control used by sender / receiver, when reported. */
  congestion: { sender: string | null; receiver: string | null };
  /** Non-fatal remarks, e.g. which engine `auto` chose and why. */
  notes: string[];
}

export const NULL_CPU: Readonly<ThroughputCpu> = Object.freeze({
  localPercent: null,
  localUserPercent: null,
  localSystemPercent: null,
  remotePercent: null,
  remoteUserPercent: null,
  remoteSystemPercent: null,
});

/** Direction from the iperf3-style flags; throws on the contradictory pair. */
export function directionOf(opts: { reverse?: boolean | undefined; bidir?: boolean | undefined }): ThroughputDirection {
  if (opts.reverse && opts.bidir) throw new Error('reverse and bidir are exclusive');
  return opts.bidir ? 'bidir' : opts.reverse ? 'reverse' : 'forward';
}

/** A failed result: every figure null, never zero. */
export function failedResult(
  engine: ThroughputEngineName,
  error: string,
  base: {
    host?: string | null | undefined;
    port?: number | null | undefined;
    direction?: ThroughputDirection | undefined;
    streams?: number | undefined;
    omitSeconds?: number | undefined;
    startedAtMs?: number | null | undefined;
    engineVersion?: string | null | undefined;
    cpu?: ThroughputCpu | undefined;
    notes?: string[] | undefined;
  } = {},
): ThroughputResult {
  return {
    engine,
    engineVersion: base.engineVersion ?? null,
    ok: false,
    error,
    host: base.host ?? null,
    port: base.port ?? null,
    direction: base.direction ?? 'forward',
    streams: base.streams ?? 1,
    seconds: null,
    omitSeconds: base.omitSeconds ?? 0,
    startedAtMs: base.startedAtMs ?? null,
    sentBps: null,
    receivedBps: null,
    sentBytes: null,
    receivedBytes: null,
    retransmits: null,
    legs: [],
    perStream: [],
    cpu: base.cpu ?? { ...NULL_CPU },
    congestion: { sender: null, receiver: null },
    notes: base.notes ?? [],
  };
}

/** Validated numeric options with defaults; throws with a message naming the field. */
export interface NormalisedOptions {
  host: string;
  streams: number;
  seconds: number;
  omitSeconds: number;
  direction: ThroughputDirection;
  connectTimeoutMs: number;
}

export function normaliseOptions(opts: ThroughputOptions): NormalisedOptions {
  const host = opts.host;
  if (typeof host !== 'string' || host.length === 0) throw new Error('host is required');
  // Options are passed to child processes as argv (never a shell), but a
  // host starting with '-' would still be read as an option.
  if (host.startsWith('-')) throw new Error(`invalid host: ${host}`);
  const streams = opts.streams ?? 1;
  if (!Number.isInteger(streams) || streams < 1 || streams > 128) throw new Error(`streams must be an integer 1..128, got ${streams}`);
  const seconds = opts.seconds ?? 10;
  if (!Number.isInteger(seconds) || seconds < 1 || seconds > 3600) throw new Error(`seconds must be an integer 1..3600, got ${seconds}`);
  const omitSeconds = opts.omitSeconds ?? 0;
  if (!Number.isInteger(omitSeconds) || omitSeconds < 0 || omitSeconds > 60) throw new Error(`omitSeconds must be an integer 0..60, got ${omitSeconds}`);
  const connectTimeoutMs = opts.connectTimeoutMs ?? 5000;
  if (!Number.isFinite(connectTimeoutMs) || connectTimeoutMs <= 0) throw new Error(`connectTimeoutMs must be > 0, got ${connectTimeoutMs}`);
  if (opts.port !== undefined && (!Number.isInteger(opts.port) || opts.port < 1 || opts.port > 65535)) {
    throw new Error(`port must be an integer 1..65535, got ${opts.port}`);
  }
  return { host, streams, seconds, omitSeconds, direction: directionOf(opts), connectTimeoutMs };
}
