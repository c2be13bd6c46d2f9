/**
 * Every engine of the probe, registered once. The agent starts each of them,
 * hands each its part of every plan, routes collector requests to the engine
 * that answers them, and stops them in this order (trains first, then the
 * passive and on-demand measurements, so every record reaches the spool).
 * Adding an engine is a folder with its registration and a line here.
 */
import { diagnosticsRegistration } from './diagnostics/registration.js';
import { IcmpEngine } from './icmp/index.js';
import { icmpRegistration } from './icmp/registration.js';
import { nicRegistration } from './nic/registration.js';
import type { ClockSyncCache } from './stamp/clock.js';
import { StampEngine } from './stamp/index.js';
import { stampRegistration } from './stamp/registration.js';
import { throughputRegistration } from './throughput/registration.js';
import type { Engine, EngineName } from './types.js';

export const engineRegistry = {
  stamp: stampRegistration,
  icmp: icmpRegistration,
  nic: nicRegistration,
  throughput: throughputRegistration,
  diagnostics: diagnosticsRegistration,
} as const;

export type EngineRegistry = typeof engineRegistry;
export type RegisteredEngineName = keyof EngineRegistry;
export type RunningEngines = { [K in RegisteredEngineName]: ReturnType<EngineRegistry[K]['start']> };

/** In start and stop order. */
export const registeredEngineNames = Object.keys(engineRegistry) as RegisteredEngineName[];

export interface EngineDeps {
  /** Shared host sync state (STAMP Error Estimate); the engine makes its own when absent. */
  clock?: ClockSyncCache;
}

/** The engines that run packet trains on the scheduler's plan tasks. */
export const engineNames: readonly EngineName[] = ['stamp', 'icmp'];

/** A train engine alone, outside an agent (`citymesh measure`, tests). */
export function createEngine(name: EngineName, deps: EngineDeps = {}): Engine {
  switch (name) {
    case 'stamp':
      return new StampEngine(deps.clock ? { clock: deps.clock } : {});
    case 'icmp':
      return new IcmpEngine();
    default: {
      const unknown: never = name;
      throw new Error(`unknown engine: ${String(unknown)}`);
    }
  }
}
