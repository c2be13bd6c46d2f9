/**
 * Throughput engines: the native TCP engine against iperf3 (the ceiling) on
 * loopback, and on an unshaped veth pair between two namespaces when run as
 * root; CPU per Gb/s. Figures only: the issue sets no target here.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { detectIperf3, NativeThroughputServer, runThroughput, type ThroughputResult } from '../../../probes/engines/throughput/index.js';
import { createNetnsPair, netnsUnavailable, repoRoot } from '../../helpers/netns.js';
import { emit, note } from '../lib/figures.js';
import { size, sleep } from '../lib/env.js';

const SECONDS = Number(process.env.CITYMESH_BENCH_SECONDS ?? size(3, 1));
const B = 'throughput';

function gbps(r: ThroughputResult): number | null {
  return r.ok && r.receivedBps !== null ? r.receivedBps / 1e9 : null;
}

function report(path: string, streams: number, native: number | null, ceiling: number | null, cpuPerGbps: number | null, cpuCeiling: number | null, why?: string): void {
  emit({
    name: `throughput.${path}.native.${streams}stream`, value: native, unit: 'Gbit/s', better: 'higher', ceiling,
    ...(why ? { note: why } : {}),
  });
  emit({ name: `throughput.${path}.native.${streams}stream.cpu`, value: cpuPerGbps, unit: '% core per Gbit/s', better: 'lower', ceiling: cpuCeiling });
}

async function loopback(hasIperf3: boolean): Promise<void> {
  for (const streams of [1, 4]) {
    let ceiling: number | null = null;
    let cpuCeiling: number | null = null;
    if (hasIperf3) {
      const server = spawn('iperf3', ['-s', '-p', '45201', '-B', '127.0.0.1'], { stdio: 'ignore' });
      await sleep(500);
      const r = await runThroughput({ engine: 'iperf3', host: '127.0.0.1', port: 45201, streams, seconds: SECONDS, omitSeconds: 1 });
      server.kill('SIGTERM');
      ceiling = gbps(r);
      const cpu = (r.cpu.localPercent ?? 0) + (r.cpu.remotePercent ?? 0);
      cpuCeiling = ceiling && cpu ? cpu / ceiling : null;
      note(B, `loopback iperf3 ${streams} stream(s): ${ceiling?.toFixed(2) ?? 'failed'} Gbit/s, ${ceiling ? (cpu / ceiling).toFixed(2) : '-'} % core per Gbit/s (the ceiling)`);
    }
    const server = await NativeThroughputServer.listen({ port: 0, host: '127.0.0.1' });
    const before = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    const r = await runThroughput({ engine: 'native', host: '127.0.0.1', port: server.port, streams, seconds: SECONDS, omitSeconds: 1 });
    const wallS = Number(process.hrtime.bigint() - t0) / 1e9;
    const used = process.cpuUsage(before);
    await server.close();
    const g = gbps(r);
    // Client and server share this process here: CPU is for both ends, over the whole run (warm-up included).
    const cpuPct = ((used.user + used.system) / 1e6 / wallS) * 100;
    report('loopback', streams, g, ceiling, g ? cpuPct / g : null, cpuCeiling, r.ok ? undefined : `native failed: ${r.error ?? 'unknown'}`);
  }
}

async function veth(hasIperf3: boolean): Promise<void> {
  const pair = await createNetnsPair();
  const bin = join(repoRoot, 'bin', 'citymesh.js');
  try {
    for (const streams of [1, 4]) {
      let ceiling: number | null = null;
      let cpuCeiling: number | null = null;
      const measure = async (engine: 'iperf3' | 'native', port: number): Promise<ThroughputResult> => {
        const out = await pair.exec(pair.a, ['node', bin, 'measure', 'throughput', '--target', `${pair.b.address}:${port}`, '--engine', engine,
          '--streams', String(streams), '--seconds', String(SECONDS), '--omit', '1', '--json'], { timeoutMs: 60_000 });
        if (!out.stdout.trim()) throw new Error(`measure throughput in ${pair.a.ns} failed: ${out.stderr.trim()}`);
        return JSON.parse(out.stdout) as ThroughputResult;
      };
      if (hasIperf3) {
        const server = pair.spawn(pair.b, ['iperf3', '-s', '-p', '5201']);
        await sleep(500);
        const r = await measure('iperf3', 5201);
        server.kill('SIGTERM');
        ceiling = gbps(r);
        const cpu = (r.cpu.localPercent ?? 0) + (r.cpu.remotePercent ?? 0);
        cpuCeiling = ceiling && cpu ? cpu / ceiling : null;
        note(B, `veth iperf3 ${streams} stream(s): ${ceiling?.toFixed(2) ?? 'failed'} Gbit/s, ${ceiling ? (cpu / ceiling).toFixed(2) : '-'} % core per Gbit/s (the ceiling)`);
      }
      const server = pair.spawn(pair.b, ['node', bin, 'throughput-server', '--engine', 'native', '--port', '5301', '--host', pair.b.address], { cwd: repoRoot });
      await new Promise<void>((resolve) => server.stdout!.on('data', (d: Buffer) => (String(d).includes('listening') ? resolve() : undefined)));
      const r = await measure('native', 5301);
      server.kill('SIGTERM');
      const g = gbps(r);
      const cpu = (r.cpu.localPercent ?? 0) + (r.cpu.remotePercent ?? 0);
      report('veth', streams, g, ceiling, g && cpu ? cpu / g : null, cpuCeiling, r.ok ? undefined : `native failed: ${r.error ?? 'unknown'}`);
    }
  } finally {
    await pair.cleanup();
  }
}

export async function run(): Promise<void> {
  note(B, `${SECONDS} s measured per test after 1 s warm-up; goodput counted by the receiver; ceiling = iperf3 on the same path`);
  const iperf = await detectIperf3();
  if (!iperf.available) note(B, `iperf3 not available (${iperf.reason}); native figures have no ceiling`);
  await loopback(iperf.available);
  const noNetns = netnsUnavailable();
  if (noNetns) note(B, `veth figures skipped: ${noNetns}`);
  else await veth(iperf.available);
}
