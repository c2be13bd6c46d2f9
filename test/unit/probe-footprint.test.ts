/**
 * A probe host never loads the database engine: the chDB library maps about
 * 0.5 GB and costs every centre host ~150 MB of memory for nothing. This loads
 * what `citymesh probe`, `probe --check`, `measure` and `reflect` load, in a
 * fresh process, and reads the process's own memory map.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));

const probeHostModules = ['dist/probes/agent.js', 'dist/probes/check.js', 'dist/probes/measure.js'];

function loadInFreshProcess(modules: string[]): { chdbMapped: boolean; rssMb: number } {
  const script = `
    for (const m of ${JSON.stringify(modules)}) await import(new URL(m, 'file://${root}/').href);
    const { readFileSync } = await import('node:fs');
    const maps = readFileSync('/proc/self/maps', 'utf8');
    process.stdout.write(JSON.stringify({ chdbMapped: maps.includes('libchdb'), rssMb: process.memoryUsage().rss / 1e6 }));
  `;
  return JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { cwd: root, encoding: 'utf8' })) as {
    chdbMapped: boolean;
    rssMb: number;
  };
}

describe.runIf(process.platform === 'linux')('probe host footprint', () => {
  it('loading the probe agent, its check and the one-shot measurements never maps the database engine', () => {
    const probe = loadInFreshProcess(probeHostModules);
    console.log(`probe modules loaded: RSS ${probe.rssMb.toFixed(0)} MB, chDB mapped: ${probe.chdbMapped}`);
    expect(probe.chdbMapped).toBe(false);
  });

  it('the check can fail: loading the store does map the engine', () => {
    const server = loadInFreshProcess(['dist/sql/index.js']);
    console.log(`store module loaded: RSS ${server.rssMb.toFixed(0)} MB, chDB mapped: ${server.chdbMapped}`);
    expect(server.chdbMapped).toBe(true);
  });
});
