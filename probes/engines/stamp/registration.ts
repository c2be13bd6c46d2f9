/**
 * STAMP as the probe runs it: the Session-Reflector peers measure us with
 * (configured from the plan's `reflector`), and the Session-Sender the shared
 * scheduler runs the plan's stamp tasks on. Trains are spooled by the agent's
 * train sink, like icmp's.
 */
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { Logger } from 'pino';
import type { ProbePlan, ProbeReport } from '../../../protocol/index.js';
import type { EngineContext, EngineRegistration, RunningEngine } from '../registration.js';
import { dscpUnavailable } from './dscp.js';
import { StampEngine } from './index.js';
import { datapathStatus } from './native.js';
import { OPEN_POLICY, type ReflectorPolicy } from './reflector-policy.js';
import { StampReflector } from './reflector.js';

export interface StampConfig {
  reflector: ProbePlan['reflector'];
  /** Some stamp task asks for a DSCP mark (warned about when this host cannot set one). */
  marked: boolean;
}

/** What the hello and every batch say about this probe's STAMP: its datapath and its reflector. */
export type StampReport = Pick<ProbeReport, 'datapath' | 'datapathReason' | 'reflectorTimestamping' | 'reflector'>;

export interface RunningStamp extends RunningEngine<StampConfig> {
  trains(): StampEngine;
  report(): StampReport;
}

export const stampRegistration: EngineRegistration<'stamp', StampConfig, RunningStamp> = {
  name: 'stamp',
  records: ['train'],
  messages: [],
  configFrom: (plan) => ({ reflector: plan.reflector, marked: plan.tasks.some((t) => t.engine === 'stamp' && t.dscp > 0) }),
  start: (context) => new StampRunner(context),
};

class StampRunner implements RunningStamp {
  private reflector: StampReflector | null = null;
  private sender: StampEngine | null = null;

  constructor(private readonly context: EngineContext) {}

  preflight(): void {
    const { datapath, reason } = datapathStatus();
    if (datapath === 'js') this.context.logger.warn(`STAMP runs on the JavaScript fallback: ${reason}`);
  }

  async apply(config: StampConfig | null): Promise<void> {
    if (!config) {
      await this.reflector?.close();
      this.reflector = null;
      return;
    }
    const policy = await reflectorPolicy(config.reflector, this.context.logger);
    if (!this.reflector || !sameAddress(this.reflector, config.reflector)) {
      await this.reflector?.close();
      this.reflector = null;
      this.reflector = await StampReflector.listen({ port: config.reflector.port, host: config.reflector.listenAddress, clock: this.context.clock, policy });
    } else {
      this.reflector.setPolicy(policy);
    }
    const unmarked = dscpUnavailable();
    if (unmarked && config.marked) this.context.logger.warn(`STAMP packets will leave unmarked (DSCP 0): ${unmarked}`);
  }

  trains(): StampEngine {
    this.sender ??= new StampEngine({ clock: this.context.clock });
    return this.sender;
  }

  report(): StampReport {
    const { datapath, reason } = datapathStatus();
    const reflector = this.reflector?.stats() ?? null;
    return {
      datapath,
      datapathReason: reason,
      reflectorTimestamping: reflector?.timestamping ?? (datapath === 'native' ? 'kernel' : 'user'),
      reflector: reflector ? { received: reflector.received, reflected: reflector.reflected, drops: reflector.drops } : null,
    };
  }

  /** Trains in flight are the scheduler's to wait for; the reflector keeps answering while the spool drains. */
  async stop(): Promise<void> {}

  async close(): Promise<void> {
    await this.reflector?.close();
    this.reflector = null;
    await this.sender?.close();
  }
}

/**
 * The plan's reflector policy with peer host names resolved to addresses (a
 * name that does not resolve is logged and left out: that peer's packets are
 * then refused and counted as notAllowed). A plan from an older server has
 * none: answer anyone, rate limited.
 */
async function reflectorPolicy(plan: ProbePlan['reflector'], logger: Logger): Promise<ReflectorPolicy> {
  const p = plan.policy;
  if (!p) return OPEN_POLICY;
  const allow: string[] = [];
  for (const entry of new Set(p.allow)) {
    if (isIP(entry.split('/')[0] ?? '')) {
      allow.push(entry);
      continue;
    }
    try {
      allow.push(...(await lookup(entry, { all: true })).map((a) => a.address));
    } catch (error) {
      logger.warn({ host: entry, err: (error as Error).message }, 'reflector: peer host name does not resolve; its packets will be refused');
    }
  }
  return { allowAny: p.allowAny, allow, denyPorts: [], ratePps: p.ratePps, burst: p.burst };
}

function sameAddress(reflector: StampReflector, wanted: ProbePlan['reflector']): boolean {
  const address = reflector.address();
  return address.port === wanted.port && address.address === wanted.listenAddress;
}
