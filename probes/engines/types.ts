/**
 * The contract every measurement engine fulfils. Engines measure; the shared
 * scheduler (probes/scheduler.ts) decides when. Engines never own timers
 * beyond the packet spacing inside one train.
 */
import type { TrainStats } from '../train-stats.js';

export type EngineName = 'stamp' | 'icmp';

/** One packet train towards one target, as the scheduler asks for it. */
export interface TrainTask {
  /** Host name or IP literal of the target. */
  host: string;
  /** UDP port of the STAMP reflector (ignored by icmp). */
  port: number;
  /** Packets per train (per flow). */
  count: number;
  /** Spacing between packets of one flow, milliseconds. */
  intervalMs: number;
  /** How long to wait for replies after the last packet is sent, milliseconds. */
  timeoutMs: number;
  /** DSCP code point (0..63) to mark test packets with. */
  dscp: number;
  /** Number of distinct UDP source ports (flows) to sweep; results are per flow. */
  flows: number;
  /** Local address to send from (e.g. 127.0.0.3 in the loopback demo). */
  sourceAddress?: string | undefined;
}

/** Summary of one train on one flow, with its raw per-packet samples. */
export interface TrainResult extends TrainStats {
  engine: EngineName;
  /** Wall-clock time the first packet of the train left, Unix microseconds. */
  startedAtUs: number;
  /** Flow index within the source-port sweep, 0-based. */
  flow: number;
  /** UDP source port the flow used (0 for icmp). */
  srcPort: number;
  dscp: number;
  /** True when both clocks were synchronised with a small enough bound for one-way delays. */
  synced: boolean;
  /** Combined clock error bound of both ends, microseconds (the larger Error Estimate sum seen). */
  errorEstimateUs: number;
}

export interface Engine {
  readonly name: EngineName;
  /** Run one train; resolves with one result per flow. Never rejects for packet loss. */
  runTrain(task: TrainTask, signal?: AbortSignal): Promise<TrainResult[]>;
  /** Release sockets and child processes. */
  close(): Promise<void>;
}
