/**
 * `npm run bench [-- NAME...]`: figures, not assertions. Every figure is one
 * JSON line `{name, value, unit, ceiling, ratio, target, met}` printed as soon
 * as it is measured, with its ceiling measured in the same run on the same
 * path, so the ratio means something on whatever machine runs it; a table
 * closes the run. Lines starting with `#` say how each figure was obtained.
 *
 * Each benchmark runs in a child process of its own (embedded ClickHouse
 * binds one data directory per process, and peak memory must be that
 * benchmark's), generates its own data in a temp directory and removes it.
 *
 *   CITYMESH_BENCH_SMOKE=1   every benchmark tiny (CI)
 *   --list                   names and what each measures
 *
 * Loopback, and network namespaces the benchmark creates, only.
 */
import { spawn } from 'node:child_process';
import { cpus } from 'node:os';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { isFigureLine, table, type Figure } from './lib/figures.js';
import { SMOKE } from './lib/env.js';

const BENCHMARKS: Record<string, string> = {
  ingest: 'simulated probes → WebSocket → collector → embedded ClickHouse, vs client.insert of the same rows',
  fanout: 'live feed: delay from a train reaching the collector to each /v1/live client, CPU per 1,000 deliveries',
  queries: 'status, matrix, 24 h and 30 d series at 20 centres with 30 days generated in ClickHouse; month SLA (20, 50, 100 centres; 1 train/min and 1/s); status against directions; a 13-month series',
  probe: 'STAMP vs kernel ping (loopback, veth), probe CPU at 10 packets/s to 20 peers, sender schedule jitter',
  dashboard: 'headless Chromium: first matrix paint with 20 centres, an 86,400-point chart vs uPlot alone',
  throughput: 'native throughput engine vs iperf3 on loopback and a veth pair',
  relay: 'fabric delay relay: release error of the C relay (p50, p99) quiet and beside two busy processes, vs a bare timer wake-up; the Node fallback',
  cluster: 'ingest through Distributed tables on two engine-node shards vs one engine node, same trains and batches',
  metrics: '/metrics/network for config/shanghai.yaml: families, series, bytes and scrape time in both formats, vs the ClickHouse reads alone',
};

async function child(name: string): Promise<void> {
  const mod = (await import(`./${name}/index.js`)) as { run(): Promise<void> };
  await mod.run();
}

function runChild(name: string, figures: Figure[]): Promise<number | null> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [fileURLToPath(import.meta.url), '--child', name], { stdio: ['ignore', 'pipe', 'inherit'] });
    const lines = createInterface({ input: p.stdout! });
    lines.on('line', (line) => {
      process.stdout.write(`${line}\n`);
      if (isFigureLine(line)) {
        try {
          figures.push(JSON.parse(line) as Figure);
        } catch {
          // printed as it came; not a figure after all
        }
      }
    });
    p.once('close', (code) => resolve(code));
  });
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  if (argv[0] === '--child') {
    await child(argv[1]!);
    process.exit(0); // embedded ClickHouse and helper sockets must not keep a finished benchmark alive
  }
  if (argv.includes('--list')) {
    for (const [name, what] of Object.entries(BENCHMARKS)) process.stdout.write(`${name.padEnd(11)} ${what}\n`);
    return;
  }
  const unknown = argv.filter((a) => !(a in BENCHMARKS));
  if (unknown.length) {
    process.stderr.write(`unknown benchmark ${unknown.join(', ')}; one of: ${Object.keys(BENCHMARKS).join(', ')}\n`);
    process.exit(2);
  }
  const names = argv.length ? argv : Object.keys(BENCHMARKS);
  process.stdout.write(
    `# citymesh bench: ${names.join(', ')}${SMOKE ? ' (SMOKE sizes: figures are not comparable with targets)' : ''}\n` +
      `# machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, node ${process.version}\n` +
      `# ratio = fraction of the ceiling reached (value/ceiling for rates, ceiling/value for times and costs)\n`,
  );
  const figures: Figure[] = [];
  const failed: string[] = [];
  for (const name of names) {
    process.stdout.write(`# --- ${name}: ${BENCHMARKS[name]}\n`);
    const started = Date.now();
    const code = await runChild(name, figures);
    process.stdout.write(`# --- ${name} ${code === 0 ? 'done' : `FAILED (exit ${code})`} in ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
    if (code !== 0) failed.push(name);
  }
  process.stdout.write(`\n${table(figures)}\n\n`);
  const missed = figures.filter((f) => f.met === false);
  process.stdout.write(
    `${figures.filter((f) => f.met === true).length} targets met, ${missed.length} missed` +
      `${missed.length ? `: ${missed.map((f) => f.name).join(', ')}` : ''}` +
      `${failed.length ? `; benchmarks that failed to run: ${failed.join(', ')}` : ''}\n`,
  );
  if (failed.length) process.exitCode = 1;
}

await main();
