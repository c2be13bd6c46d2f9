/**
 * Engine factory: the only place that knows which class implements which
 * engine name, so the scheduler, agent and CLI stay engine-agnostic.
 */
import { IcmpEngine } from './icmp/index.js';
import type { ClockSyncCache } from './stamp/clock.js';
import { StampEngine } from './stamp/index.js';
import type { Engine, EngineName } from './types.js';

export interface EngineDeps {
  /** Shared host sync state (STAMP Error Estimate); the engine makes its own when absent. */
  clock?: ClockSyncCache;
}

export const engineNames: readonly EngineName[] = ['stamp', 'icmp'];

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
