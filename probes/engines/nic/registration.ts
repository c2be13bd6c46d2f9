/**
 * Passive NIC telemetry as the probe runs it: every `intervalS` the plan's
 * interfaces are read from sysfs and each interval's rates are spooled as a
 * `nic` record, mapped to the peer the interface carries. Reading loads
 * nothing: it is utilisation without a test.
 */
import { randomUUID } from 'node:crypto';
import type { NicSampleRecord, ProbePlan } from '../../../protocol/index.js';
import type { EngineContext, EngineRegistration, RunningEngine } from '../registration.js';
import { NicSampler, type NicSample } from './index.js';

export type NicConfig = NonNullable<ProbePlan['nic']>;

export const nicRegistration: EngineRegistration<'nic', NicConfig, RunningEngine<NicConfig>> = {
  name: 'nic',
  records: ['nic'],
  messages: [],
  configFrom: (plan) => plan.nic,
  start: (context) => new NicRunner(context),
};

class NicRunner implements RunningEngine<NicConfig> {
  private timer: NodeJS.Timeout | null = null;
  /** A sample being read: stop() waits for it, so its record is in the last batch, not left in a journal. */
  private sampling: Promise<void> | null = null;

  constructor(private readonly context: EngineContext) {}

  async apply(config: NicConfig | null): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (!config) return;
    const { interfaces, intervalS } = config;
    const names = interfaces.map((i) => i.name);
    const sampler = new NicSampler(this.context.sysfsNetRoot ? { sysfsRoot: this.context.sysfsNetRoot } : {});
    await sampler.sample(names); // first snapshot: rates start at the next tick
    this.timer = setInterval(() => {
      const sampling = this.sample(sampler, config).catch((error: Error) => this.context.logger.warn({ err: error.message }, 'NIC sampling failed'));
      this.sampling = sampling;
      void sampling.finally(() => {
        if (this.sampling === sampling) this.sampling = null;
      });
    }, intervalS * 1000);
  }

  private async sample(sampler: NicSampler, { interfaces, intervalS }: NicConfig): Promise<void> {
    const samples = await sampler.sample(interfaces.map((i) => i.name));
    for (const sample of samples) {
      const record = nicRecord(sample, interfaces.find((i) => i.name === sample.interface)?.peer ?? null, intervalS);
      if (record) await this.context.record({ kind: 'nic', sample: record });
    }
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.sampling;
  }

  async close(): Promise<void> {
    await this.stop();
  }
}

/** One interval's rates as the wire carries them; null for the first snapshot of an interface (no interval yet). */
export function nicRecord(sample: NicSample, peer: string | null, intervalS: number): NicSampleRecord | null {
  if (!sample.snapshot || !sample.rates) return null;
  const r = sample.rates;
  return {
    sampleId: randomUUID(),
    interface: sample.interface,
    peer,
    atUs: Math.round(sample.snapshot.atMs * 1000),
    intervalS: r.intervalSeconds > 0 ? r.intervalSeconds : intervalS,
    speedMbps: sample.snapshot.speedMbps,
    operState: sample.snapshot.operstate,
    reset: r.reset,
    rxBps: r.rxBitsPerSec, txBps: r.txBitsPerSec, rxPps: r.rxPacketsPerSec, txPps: r.txPacketsPerSec,
    rxErrorsPs: r.rxErrorsPerSec, txErrorsPs: r.txErrorsPerSec, rxDropsPs: r.rxDropsPerSec, txDropsPs: r.txDropsPerSec,
    utilisation: r.utilisation,
  };
}
