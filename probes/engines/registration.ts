/**
 * The one shape every engine registers in (probes/engines/registry.ts): what
 * it takes from the plan, how the agent starts, reconfigures and stops it,
 * which collector messages it answers and which records it writes to the
 * spool. The agent and the plan runner iterate the registry and know no
 * engine by hand.
 *
 * Life of a running engine, in the order the probe calls it:
 *   start(context)    once, when the agent is built: cheap, opens nothing
 *   apply(config)     on every new plan; `null` when the plan gives it nothing to do
 *   handle(message)   a collector request of a type listed in `messages`
 *   stop()            the probe is stopping: finish what is in progress so its records are spooled
 *   close()           after the spool drained: release listeners, sockets and processes
 */
import type { Logger } from 'pino';
import type { CollectorMessage, PlanTask, ProbeMessage, ProbePlan } from '../../protocol/index.js';
import type { SpoolRecord } from '../spool.js';
import type { ClockSyncCache } from './stamp/clock.js';
import type { Engine, EngineName, TrainResult } from './types.js';

/** Collector messages that ask an engine for work (as opposed to plan, ack and error, which the uplink and plan runner take). */
export type EngineRequest = Extract<CollectorMessage, { type: 'throughput_run' | 'diagnose' }>;

/** What the agent lends every engine. */
export interface EngineContext {
  logger: Logger;
  /** Host clock-sync state shared by STAMP's sender, reflector and diagnostics. */
  clock: ClockSyncCache;
  /** Make a record durable in the spool (it goes with the next sealed batch). */
  record(record: SpoolRecord): Promise<void>;
  /** Seal what is spooled into a batch now and send it: someone is waiting for this result. */
  flush(): Promise<void>;
  /** Send a message to the collector now (dropped when not connected: the spool carries what must arrive). */
  send(message: ProbeMessage): void;
  /** A train engine of this probe, once a plan made one (diagnostics borrows STAMP's sockets and clock). */
  trainEngine(name: EngineName): Engine | undefined;
  /** True once the probe began to stop: no new work is accepted. */
  stopping(): boolean;
  /** Where NIC counters are read (default /sys/class/net; tests point it into a namespace). */
  sysfsNetRoot?: string | undefined;
}

export interface RunningEngine<Config> {
  /** Take a (new) plan's config; null: the plan gives this engine nothing to do, so it stops its own work. */
  apply(config: Config | null): Promise<void>;
  /** The train engine the shared scheduler runs plan tasks on (stamp, icmp); created on first use. */
  trains?(): Engine;
  /** A collector request of one of the registration's `messages` types. */
  handle?(message: EngineRequest): void;
  /** A plan task's train finished (diagnostics counts breaches). */
  observe?(task: PlanTask, results: readonly TrainResult[]): void;
  /** Say once at start what will not work on this host (missing programs, fallbacks). */
  preflight?(): void;
  /** Finish what is in progress so its records reach the spool. */
  stop(): Promise<void>;
  /** Release listeners, sockets and child processes. */
  close(): Promise<void>;
}

export interface EngineRegistration<Name extends string, Config, Running extends RunningEngine<Config>> {
  readonly name: Name;
  /** Spool record kinds the engine writes (each goes to its own table). */
  readonly records: readonly SpoolRecord['kind'][];
  /** Collector request types the engine answers. */
  readonly messages: readonly EngineRequest['type'][];
  /** This engine's part of the plan, or null when the plan gives it nothing to do. */
  configFrom(plan: ProbePlan): Config | null;
  start(context: EngineContext): Running;
}
