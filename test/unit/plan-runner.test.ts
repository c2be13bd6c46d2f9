/**
 * The probe's engines as the agent runs them, without a collector: every
 * engine registered once, each given its part of a plan, trains of the plan's
 * tasks reaching the sink, NIC records reaching the spool, collector requests
 * reaching the engine that answers them, and stop() leaving nothing in flight.
 * Real STAMP on loopback and a fake sysfs tree; each test builds its own.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type { PlanTask, ProbeMessage, ProbePlan } from '../../protocol/index.js';
import { engineRegistry, registeredEngineNames } from '../../probes/engines/registry.js';
import { ClockSyncCache } from '../../probes/engines/stamp/clock.js';
import { StampReflector } from '../../probes/engines/stamp/reflector.js';
import type { TrainResult } from '../../probes/engines/types.js';
import { PlanRunner } from '../../probes/plan-runner.js';
import type { SpoolRecord } from '../../probes/spool.js';

const HOST = '127.0.0.1';
const logger = pino({ level: 'silent' });
const cleanups: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function plan(overrides: Partial<ProbePlan> = {}): ProbePlan {
  return {
    type: 'plan', centre: 'self', protocol: 1, batchIntervalMs: 1000,
    reflector: { listenAddress: HOST, port: 0 }, tasks: [], throughputServer: null, nic: null, diagnostics: null,
    ...overrides,
  };
}

/** A runner with everything it records, sends and sinks kept for the test. */
function runner(sysfsNetRoot?: string) {
  const clock = new ClockSyncCache();
  const records: SpoolRecord[] = [];
  const sent: ProbeMessage[] = [];
  const trains: { task: PlanTask; results: TrainResult[] }[] = [];
  let stopping = false;
  const waiters: (() => void)[] = [];
  const changed = () => waiters.splice(0).forEach((w) => w());
  const plans = new PlanRunner({
    logger, clock, sysfsNetRoot,
    record: async (record) => {
      records.push(record);
      changed();
    },
    flush: async () => undefined,
    send: (message) => {
      sent.push(message);
      changed();
    },
    stopping: () => stopping,
  }, (task, results) => {
    trains.push({ task, results });
    changed();
  }, logger);
  /** Resolves once `ready()` holds (checked after every record, message and train). */
  const until = (ready: () => boolean) => new Promise<void>((resolve) => {
    const check = () => (ready() ? resolve() : waiters.push(check));
    check();
  });
  cleanups.push(async () => {
    await plans.stop();
    await plans.close();
    clock.close();
  });
  return { plans, records, sent, trains, until, beginStop: () => void (stopping = true) };
}

describe('engine registry', () => {
  it('registers each engine once under its own name, and every record kind and request type has its engine', () => {
    expect(registeredEngineNames).toEqual(['stamp', 'icmp', 'nic', 'throughput', 'diagnostics']);
    for (const name of registeredEngineNames) expect(engineRegistry[name].name).toBe(name);
    const records = registeredEngineNames.flatMap((name) => engineRegistry[name].records);
    expect([...new Set(records)].sort()).toEqual(['diagnostics', 'nic', 'throughput', 'train']);
    const requests = registeredEngineNames.flatMap((name) => engineRegistry[name].messages);
    expect(requests.sort()).toEqual(['diagnose', 'throughput_run']); // each answered by exactly one engine
  });

  it("gives each engine its part of the plan, and none when the plan has nothing for it", () => {
    const task: PlanTask = {
      id: 'stamp:self>peer', engine: 'stamp', dst: 'peer', host: HOST, port: 862, schedule: '* * * * * *',
      count: 1, intervalMs: 1, timeoutMs: 100, dscp: 46, flows: 1, sourceAddress: null,
    };
    const nic = { intervalS: 10, interfaces: [{ name: 'eth0', peer: 'peer' }] };
    const full = plan({ tasks: [task], nic, throughputServer: { engine: 'native', port: 5301, listenAddress: HOST } });
    expect(engineRegistry.stamp.configFrom(full)).toEqual({ reflector: full.reflector, marked: true });
    expect(engineRegistry.icmp.configFrom(full)).toBeNull();
    expect(engineRegistry.nic.configFrom(full)).toEqual(nic);
    expect(engineRegistry.throughput.configFrom(full)).toEqual(full.throughputServer);
    expect(engineRegistry.diagnostics.configFrom(full)).toEqual({ diagnostics: null, tasks: [task] });
    expect(engineRegistry.nic.configFrom(plan())).toBeNull();
    expect(engineRegistry.throughput.configFrom(plan())).toBeNull();
  });
});

describe('plan runner', () => {
  it('runs a plan: STAMP trains of its tasks reach the sink, a plan already running is left alone', async () => {
    const reflector = await StampReflector.listen({ port: 0, host: HOST });
    cleanups.push(() => reflector.close());
    const { plans, trains, until } = runner();
    const task: PlanTask = {
      id: 'stamp:self>peer', engine: 'stamp', dst: 'peer', host: HOST, port: reflector.address().port, schedule: '* * * * * *',
      count: 3, intervalMs: 1, timeoutMs: 500, dscp: 0, flows: 1, sourceAddress: null,
    };
    expect(await plans.apply(plan({ tasks: [task] }))).toBe(true);
    expect(await plans.apply(plan({ tasks: [task] }))).toBe(false);
    await until(() => trains.length > 0);
    expect(trains[0]!.task.id).toBe('stamp:self>peer');
    expect(trains[0]!.results[0]).toMatchObject({ engine: 'stamp', sent: 3, received: 3 });
    expect(plans.engines.stamp.report().reflector).not.toBeNull(); // its own reflector listens
  });

  it('samples the plan\'s NICs into nic records mapped to the peer each carries', async () => {
    const root = await mkdtemp(join(tmpdir(), 'citymesh-plan-sysfs-'));
    cleanups.push(() => rm(root, { recursive: true, force: true }));
    await mkdir(join(root, 'eth0', 'statistics'), { recursive: true });
    await writeFile(join(root, 'eth0', 'speed'), '100000\n');
    await writeFile(join(root, 'eth0', 'operstate'), 'up\n');
    for (const counter of ['rx_bytes', 'tx_bytes', 'rx_packets', 'tx_packets', 'rx_errors', 'tx_errors', 'rx_dropped', 'tx_dropped']) {
      await writeFile(join(root, 'eth0', 'statistics', counter), '1000\n');
    }
    const { plans, records, until } = runner(root);
    await plans.apply(plan({ nic: { intervalS: 1, interfaces: [{ name: 'eth0', peer: 'peer' }] } }));
    await until(() => records.some((r) => r.kind === 'nic'));
    const nic = records.find((r) => r.kind === 'nic')!;
    expect(nic.sample).toMatchObject({ interface: 'eth0', peer: 'peer', speedMbps: 100000, operState: 'up', rxBps: 0, reset: false });
  });

  it('routes a diagnose request to diagnostics (a peer outside the plan is a recorded failure) and refuses a test while stopping', async () => {
    const { plans, records, sent, until, beginStop } = runner();
    await plans.apply(plan());
    plans.handle({ type: 'diagnose', requestId: 'dr-plan-runner-1', dst: 'elsewhere', requestedBy: 'test' });
    await until(() => records.some((r) => r.kind === 'diagnostics'));
    expect(records.find((r) => r.kind === 'diagnostics')!.sample).toMatchObject({ dst: 'elsewhere', requestId: 'dr-plan-runner-1', trigger: 'operator' });
    beginStop();
    plans.handle({
      type: 'throughput_run', testId: 'tp-1', trigger: 'operator', dst: 'peer', host: HOST, port: 9, engine: 'native',
      seconds: 1, omitSeconds: 0, streams: 1, direction: 'forward', sourceAddress: null,
    });
    expect(sent).toEqual([{ type: 'throughput_done', testId: 'tp-1', ok: false, error: 'probe busy with another test or stopping' }]);
  });
});
