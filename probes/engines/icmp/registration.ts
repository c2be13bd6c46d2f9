/**
 * ICMP echo as the probe runs it: a train engine only (the far end's kernel
 * answers, there is nothing to listen on), run by the shared scheduler on the
 * plan's icmp tasks. Trains are spooled by the agent's train sink.
 */
import type { EngineContext, EngineRegistration, RunningEngine } from '../registration.js';
import { IcmpEngine } from './index.js';

/** Whether the plan has icmp tasks (the scheduler runs them; nothing else is configured). */
export interface IcmpConfig {
  tasks: number;
}

export interface RunningIcmp extends RunningEngine<IcmpConfig> {
  trains(): IcmpEngine;
}

export const icmpRegistration: EngineRegistration<'icmp', IcmpConfig, RunningIcmp> = {
  name: 'icmp',
  records: ['train'],
  messages: [],
  configFrom: (plan) => {
    const tasks = plan.tasks.filter((t) => t.engine === 'icmp').length;
    return tasks > 0 ? { tasks } : null;
  },
  start: (context) => new IcmpRunner(context),
};

class IcmpRunner implements RunningIcmp {
  private engine: IcmpEngine | null = null;

  constructor(private readonly context: EngineContext) {}

  preflight(): void {
    const missing = new IcmpEngine().unavailable();
    if (missing) this.context.logger.warn(`icmp engine unavailable: ${missing}; ICMP paths are reported as such until it is installed`);
  }

  async apply(): Promise<void> {}

  trains(): IcmpEngine {
    this.engine ??= new IcmpEngine();
    return this.engine;
  }

  async stop(): Promise<void> {}

  async close(): Promise<void> {
    await this.engine?.close();
  }
}
