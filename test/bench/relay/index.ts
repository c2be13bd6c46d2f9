/**
 * The fabric's delay relay: how exactly it releases what it holds, i.e. how
 * far the delay a fabric link injects is from the one configured. Measured by
 * the relay itself per packet: release time (taken immediately before the
 * send) minus due time (the kernel's receive timestamp + the hold). The
 * ceiling is the host's floor for any sleeping relay: how late a bare timerfd
 * wake-up is at the same priority and timer slack (udp-relay --timer-probe).
 * Quiet, and with two CPU-bound busy processes beside it; the C relay also
 * without its early wake-up and spin, to show what the spin buys. The Node relay
 * (the fabric's fallback without a C compiler) is measured the same way for
 * comparison (its mean and maximum; it keeps no percentiles).
 *
 * Loopback only: a UDP echo on 127.0.0.1, the relay on 127.0.0.1, the
 * sender on 127.0.0.2 (the link's peer address).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { loadavg } from 'node:os';
import { createSocket, type Socket } from 'node:dgram';
import { nativeRelayBinary } from '../../fabric/native-relay.js';
import { DelayRelay, type LegCounters } from '../../fabric/relay.js';
import { emit, note } from '../lib/figures.js';
import { StampEngine } from '../../../probes/engines/stamp/index.js';
import { StampReflector } from '../../../probes/engines/stamp/reflector.js';
import { median, percentile } from '../lib/stats.js';
import { size, sleep } from '../lib/env.js';

const B = 'relay';
const PACKETS = size(2000, 200);
const RATE_PER_S = 200;
const DELAY_US = 500;
/** The "exact to a few tens of µs": the release error's p99. */
const TARGET_P99_US = 50;

interface Run {
  p50: number | null;
  p99: number | null;
  mean: number | null;
  max: number | null;
  releases: number;
}

function busyProcesses(n: number): ChildProcess[] {
  return Array.from({ length: n }, () => spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' }));
}

async function throughRelay(engine: 'native' | 'node', spinUs?: number): Promise<Run> {
  const savedSpin = process.env.CITYMESH_RELAY_SPIN_US;
  if (spinUs !== undefined) process.env.CITYMESH_RELAY_SPIN_US = String(spinUs);
  const echo = createSocket('udp4');
  echo.on('message', (msg, r) => echo.send(msg, r.port, r.address));
  await new Promise<void>((r) => echo.bind(0, '127.0.0.1', r));
  const port = 40_000 + Math.floor(Math.random() * 10_000);
  const relay = await DelayRelay.start({
    centre: 'bench', listenHost: '127.0.0.1', udpEngine: engine,
    udp: [{ port, targetHost: '127.0.0.1', targetPort: echo.address().port }], tcp: [],
    links: [{ peer: 'peer', peerAddress: '127.0.0.2', delayUs: DELAY_US, loss: 0 }],
  });
  if (savedSpin === undefined) delete process.env.CITYMESH_RELAY_SPIN_US;
  else process.env.CITYMESH_RELAY_SPIN_US = savedSpin;
  const sender: Socket = createSocket('udp4');
  await new Promise<void>((r) => sender.bind(0, '127.0.0.2', r));
  let back = 0;
  sender.on('message', () => back++);
  try {
    const payload = Buffer.alloc(44);
    for (let i = 0; i < PACKETS; i++) {
      sender.send(payload, port, '127.0.0.1');
      await sleep(1000 / RATE_PER_S);
    }
    const deadline = Date.now() + 5000;
    while (back < PACKETS && Date.now() < deadline) await sleep(20);
    const res = await relay.handle({ op: 'get' });
    if (!res.ok) throw new Error(res.error);
    const c = res.links![0]!.counters;
    const legs: LegCounters[] = [c.in, c.out];
    const releases = legs.reduce((n, l) => n + l.releases, 0);
    return {
      // Both legs: the worse leg's percentile (each leg is a separate hold of every packet).
      p50: engine === 'native' ? Math.max(...legs.map((l) => l.lateP50Us ?? -1)) : null,
      p99: engine === 'native' ? Math.max(...legs.map((l) => l.lateP99Us ?? -1)) : null,
      mean: releases > 0 ? legs.reduce((s, l) => s + l.lateSumUs, 0) / releases : null,
      max: Math.max(...legs.map((l) => l.lateMaxUs)),
      releases,
    };
  } finally {
    sender.close();
    echo.close();
    await relay.close();
  }
}

/** The fabric's acceptance figure: a +1,000 µs round trip injected by the relay, as the probe measures it. */
const INJECTED_RTT_US = 1000;
const STAMP_PAIRS = size(6, 2);
const STAMP_PER_WINDOW = size(200, 50);
const TARGET_ADDED_ERROR_US = 30;

/**
 * The probe's own STAMP engine (native datapath) from 127.0.0.2 through the C
 * relay to a native reflector on 127.0.0.1: windows with no delay and with
 * 500 µs each way alternate (so load changes weigh on both alike); the added
 * round trip is median(delayed) − median(base), against the 1,000 µs injected.
 */
async function stampThroughRelay(): Promise<{ added: number | null; addedP10: number | null; base: number | null; packets: number }> {
  const reflector = await StampReflector.listen({ port: 0, host: '127.0.0.1', policy: { allowAny: true, allow: [], denyPorts: [], ratePps: 100_000, burst: 10_000 } });
  const port = 40_000 + Math.floor(Math.random() * 10_000);
  const relay = await DelayRelay.start({
    centre: 'bench', listenHost: '127.0.0.1', udpEngine: 'native',
    udp: [{ port, targetHost: '127.0.0.1', targetPort: reflector.address().port }], tcp: [],
    links: [{ peer: 'peer', peerAddress: '127.0.0.2', delayUs: 0, loss: 0 }],
  });
  const engine = new StampEngine();
  const rtts = { base: [] as number[], delay: [] as number[] };
  try {
    for (let k = 0; k < STAMP_PAIRS; k++) {
      for (const phase of ['base', 'delay'] as const) {
        const set = await relay.handle({ op: 'set', peer: 'peer', delayUs: phase === 'base' ? 0 : INJECTED_RTT_US / 2 });
        if (!set.ok) throw new Error(set.error);
        const [r] = await engine.runTrain({ host: '127.0.0.1', port, count: STAMP_PER_WINDOW, intervalMs: 10, timeoutMs: 500, dscp: 0, flows: 1, sourceAddress: '127.0.0.2' });
        rtts[phase].push(...(r?.rttsUs ?? []));
      }
    }
  } finally {
    await engine.close();
    await relay.close();
    await reflector.close();
  }
  const mb = median(rtts.base);
  const md = median(rtts.delay);
  const p10b = percentile(rtts.base, 0.1);
  const p10d = percentile(rtts.delay, 0.1);
  return {
    added: mb !== null && md !== null ? md - mb : null,
    addedP10: p10b !== null && p10d !== null ? p10d - p10b : null,
    base: mb,
    packets: rtts.base.length + rtts.delay.length,
  };
}

function timerFloor(binary: string): { p50: number; p99: number } | null {
  const r = spawnSync(binary, ['--timer-probe', String(PACKETS), String(1_000_000 / RATE_PER_S)], { encoding: 'utf8' });
  const [p50, p99] = r.stdout.trim().split(/\s+/).map(Number);
  return r.status === 0 && Number.isFinite(p50) && Number.isFinite(p99) ? { p50: p50!, p99: p99! } : null;
}

export async function run(): Promise<void> {
  const build = nativeRelayBinary();
  note(B, `${PACKETS} packets at ${RATE_PER_S}/s through a ${DELAY_US} µs hold each way; error = send time - (kernel receive time + hold), per packet and leg`);
  for (const load of ['quiet', 'loaded'] as const) {
    const busy = load === 'loaded' ? busyProcesses(2) : [];
    try {
      if (busy.length) await sleep(300);
      note(B, `${load}: load average ${loadavg()[0]!.toFixed(1)} (other work on the host counts too)`);
      if (!build.ok) {
        for (const q of ['p50', 'p99']) {
          emit({ name: `relay.${load}.release_error.${q}`, value: null, unit: 'µs', better: 'lower', note: build.reason });
        }
      } else {
        const floor = timerFloor(build.path);
        const native = await throughRelay('native');
        note(B, `${load}: C relay ${native.releases} releases, error p50 ${native.p50} / p99 ${native.p99} / max ${native.max?.toFixed(0)} µs; ` +
          `bare timerfd wake-up (ceiling) p50 ${floor?.p50 ?? '-'} / p99 ${floor?.p99 ?? '-'} µs`);
        emit({ name: `relay.${load}.release_error.p50`, value: native.p50, unit: 'µs', better: 'lower', ceiling: floor?.p50 ?? null });
        emit({
          name: `relay.${load}.release_error.p99`, value: native.p99, unit: 'µs', better: 'lower', ceiling: floor?.p99 ?? null,
          target: { op: '<=', value: TARGET_P99_US },
        });
        const noSpin = await throughRelay('native', 0);
        note(B, `${load}: the same C relay without the early wake and spin (CITYMESH_RELAY_SPIN_US=0): error p50 ${noSpin.p50} / p99 ${noSpin.p99} / max ${noSpin.max?.toFixed(0)} µs`);
        emit({ name: `relay.${load}.no_spin.release_error.p99`, value: noSpin.p99, unit: 'µs', better: 'lower', ceiling: floor?.p99 ?? null });
      }
      if (build.ok) {
        const stamp = await stampThroughRelay();
        const error = stamp.added === null ? null : stamp.added - INJECTED_RTT_US;
        note(B, `${load}: STAMP (native datapath) through the C relay, ${stamp.packets} packets in ${STAMP_PAIRS} alternating pairs of windows: base median ${stamp.base?.toFixed(1)} µs, ` +
          `added by a ${INJECTED_RTT_US} µs round-trip injection: median ${stamp.added?.toFixed(1)} µs (error ${error?.toFixed(1)} µs), 10th percentile ${stamp.addedP10?.toFixed(1)} µs`);
        emit({ name: `relay.${load}.stamp_added_rtt_abs_error`, value: error === null ? null : Math.abs(error), unit: 'µs', better: 'lower',
          target: { op: '<=', value: TARGET_ADDED_ERROR_US }, note: `|median added RTT − ${INJECTED_RTT_US} µs injected|, probe and relay together` });
      }
      const node = await throughRelay('node');
      note(B, `${load}: Node relay (fallback) ${node.releases} releases, error mean ${node.mean?.toFixed(1)} / max ${node.max?.toFixed(0)} µs`);
      emit({ name: `relay.${load}.node_fallback.release_error.mean`, value: node.mean, unit: 'µs', better: 'lower' });
    } finally {
      for (const p of busy) p.kill('SIGKILL');
    }
  }
}
