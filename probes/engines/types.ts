/**
 * The contract every measurement engine fulfils. Engines measure; the shared
 * scheduler (probes/scheduler.ts) decides when. Engines never own timers
 * beyond the packet spacing inside one train.
 */
import type { PlanTask } from '../../protocol/index.js';
import type { TrainStats } from '../train-stats.js';

/** The engines that run packet trains, as the plan names them. */
export type EngineName = PlanTask['engine'];

/**
 * How a timestamp was taken: by the NIC (hardware), by the kernel (software
 * receive/transmit stamps, or a clock read in the native datapath immediately
 * around the system call, off the JavaScript event loop), by JavaScript after
 * the event loop got to it (user), or we cannot tell (a foreign reflector).
 */
export { TIMESTAMPING_MODES, type Timestamping } from '../../protocol/index.js';
import type { Timestamping } from '../../protocol/index.js';

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
  /** How our end's timestamps (T1, T4) were taken: the weakest over the train's packets. */
  senderTimestamping: Timestamping;
  /**
   * How the far end's were: for icmp the remote kernel answers; for STAMP a
   * plan peer's is filled in by the server from what that probe reports, and
   * a reflector we know nothing about is `unknown`.
   */
  reflectorTimestamping: Timestamping;
}

/** An engine that cannot run on this host (its program is missing): the train is not attempted. */
export class EngineUnavailableError extends Error {
  constructor(readonly engine: EngineName, readonly reason: string) {
    super(`${engine} engine unavailable: ${reason}`);
    this.name = 'EngineUnavailableError';
  }
}

export interface Engine {
  readonly name: EngineName;
  /** Why the engine cannot run here right now (checked before every train), or null. */
  unavailable?(): string | null;
  /** Run one train; resolves with one result per flow. Never rejects for packet loss. */
  runTrain(task: TrainTask, signal?: AbortSignal): Promise<TrainResult[]>;
  /** Release sockets and child processes. */
  close(): Promise<void>;
}
