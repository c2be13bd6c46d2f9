/**
 * `npm run bench`: figures, not assertions. Each figure is printed beside a
 * ceiling measured in the same run on the same path, so the ratio means
 * something on whatever machine runs it.
 *
 *   throughput: native engine vs iperf3 (the ceiling) on loopback, and on an
 *   unshaped veth pair between two namespaces when run as root; CPU per Gb/s.
 *
 * Loopback and test-created namespaces only.
 */
import { spawn } from 'node:child_process';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { detectIperf3, NativeThroughputServer, runThroughput, type ThroughputResult } from '../../probes/engines/throughput/index.js';
import { createNetnsPair, netnsUnavailable, repoRoot } from '../helpers/netns.js';

const SECONDS = Number(process.env.CITYMESH_BENCH_SECONDS ?? 3);

interface Row {
  path: string;
  engine: string;
  streams: number;
  gbps: number | null;
  cpuPerGbps: string;
  ratio: string;
}

const rows: Row[] = [];

function gbps(r: ThroughputResult): number | null {
  return r.ok && r.receivedBps !== null ? r.receivedBps / 1e9 : null;
}

async function iperf3Server(prefix: string[], port: number): Promise<() => void> {
  const child = spawn(prefix[0] ?? 'iperf3', [...prefix.slice(1), ...(prefix.length ? ['iperf3'] : []), '-s', '-p', String(port)], { stdio: 'ignore' });
  await new Promise((r) => setTimeout(r, 500));
  return () => child.kill('SIGTERM');
}

async function loopback(hasIperf3: boolean): Promise<void> {
  for (const streams of [1, 4]) {
    let ceiling: number | null = null;
    if (hasIperf3) {
      const stop = await iperf3Server([], 45201);
      const r = await runThroughput({ engine: 'iperf3', host: '127.0.0.1', port: 45201, streams, seconds: SECONDS, omitSeconds: 1 });
      stop();
      ceiling = gbps(r);
      const cpu = (r.cpu.localPercent ?? 0) + (r.cpu.remotePercent ?? 0);
      rows.push({ path: 'loopback', engine: 'iperf3', streams, gbps: ceiling, cpuPerGbps: ceiling ? `${(cpu / ceiling).toFixed(2)} %core` : '-', ratio: '1.00 (ceiling)' });
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
    rows.push({
      path: 'loopback', engine: 'native', streams, gbps: g,
      cpuPerGbps: g ? `${(cpuPct / g).toFixed(2)} %core (both ends)` : '-',
      ratio: g && ceiling ? (g / ceiling).toFixed(2) : '-',
    });
  }
}

async function veth(hasIperf3: boolean): Promise<void> {
  const pair = await createNetnsPair();
  const bin = join(repoRoot, 'bin', 'citymesh.js');
  try {
    for (const streams of [1, 4]) {
      let ceiling: number | null = null;
      const measure = async (engine: 'iperf3' | 'native', port: number): Promise<ThroughputResult> => {
        const out = await pair.exec(pair.a, ['node', bin, 'measure', 'throughput', '--target', `${pair.b.address}:${port}`, '--engine', engine,
          '--streams', String(streams), '--seconds', String(SECONDS), '--omit', '1', '--json'], { timeoutMs: 60_000 });
        if (!out.stdout.trim()) throw new Error(`measure throughput in ${pair.a.ns} failed: ${out.stderr.trim()}`);
        return JSON.parse(out.stdout) as ThroughputResult;
      };
      if (hasIperf3) {
        const server = pair.spawn(pair.b, ['iperf3', '-s', '-p', '5201']);
        await new Promise((r) => setTimeout(r, 500));
        const r = await measure('iperf3', 5201);
        server.kill('SIGTERM');
        ceiling = gbps(r);
        const cpu = (r.cpu.localPercent ?? 0) + (r.cpu.remotePercent ?? 0);
        rows.push({ path: 'veth (2 namespaces)', engine: 'iperf3', streams, gbps: ceiling, cpuPerGbps: ceiling ? `${(cpu / ceiling).toFixed(2)} %core` : '-', ratio: '1.00 (ceiling)' });
      }
      const server = pair.spawn(pair.b, ['node', bin, 'throughput-server', '--engine', 'native', '--port', '5301', '--host', pair.b.address], { cwd: repoRoot });
      await new Promise<void>((resolve) => server.stdout!.on('data', (d: Buffer) => (String(d).includes('listening') ? resolve() : undefined)));
      const r = await measure('native', 5301);
      server.kill('SIGTERM');
      const g = gbps(r);
      const cpu = (r.cpu.localPercent ?? 0) + (r.cpu.remotePercent ?? 0);
      rows.push({
        path: 'veth (2 namespaces)', engine: 'native', streams, gbps: g,
        cpuPerGbps: g && cpu ? `${(cpu / g).toFixed(2)} %core` : '-',
        ratio: g && ceiling ? (g / ceiling).toFixed(2) : '-',
      });
    }
  } finally {
    await pair.cleanup();
  }
}

async function main(): Promise<void> {
  process.stdout.write(`citymesh bench — ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, node ${process.version}, ${SECONDS} s per test\n\n`);
  const iperf = await detectIperf3();
  if (!iperf.available) process.stdout.write(`iperf3 not available (${iperf.reason}); native figures have no ceiling\n`);
  await loopback(iperf.available);
  const noNetns = netnsUnavailable();
  if (noNetns) process.stdout.write(`veth figures skipped: ${noNetns}\n`);
  else await veth(iperf.available);
  process.stdout.write('\nthroughput (goodput counted by the receiver; ratio = native / iperf3 on the same path)\n');
  process.stdout.write(`${'path'.padEnd(22)}${'engine'.padEnd(8)}${'streams'.padStart(8)}${'Gbit/s'.padStart(10)}  ${'ratio'.padEnd(16)}cpu per Gbit/s\n`);
  for (const r of rows) {
    process.stdout.write(`${r.path.padEnd(22)}${r.engine.padEnd(8)}${String(r.streams).padStart(8)}${(r.gbps === null ? 'failed' : r.gbps.toFixed(2)).padStart(10)}  ${r.ratio.padEnd(16)}${r.cpuPerGbps}\n`);
  }
}

await main();
