/**
 * Small C programs the tests, benchmarks and the fabric compile for
 * themselves (the fabric's relay, the benchmark's kernel-timestamped
 * reference): built once per source content with the host's C compiler,
 * cached under the temp directory by the source's hash.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';

export type CProgram = { ok: true; path: string } | { ok: false; reason: string };

const built = new Map<string, CProgram>();

/** Compile `source` (an absolute path to one .c file), or say why it cannot be. */
export function buildCProgram(source: string, what: string): CProgram {
  const hit = built.get(source);
  if (hit) return hit;
  const result = compile(source, what);
  built.set(source, result);
  return result;
}

function compile(source: string, what: string): CProgram {
  if (!existsSync(source)) return { ok: false, reason: `${source} not found` };
  const name = basename(source, '.c');
  const hash = createHash('sha256').update(readFileSync(source)).digest('hex').slice(0, 16);
  const dir = join(tmpdir(), `citymesh-${name}`);
  const path = join(dir, `${name}-${hash}`);
  if (existsSync(path)) return { ok: true, path };
  mkdirSync(dir, { recursive: true });
  const compiler = process.env.CC ?? 'cc';
  // Built beside its final name and renamed: several processes starting at once never run a half-written file.
  const partial = `${path}.${process.pid}.tmp`;
  const r = spawnSync(compiler, ['-O2', '-Wall', '-o', partial, source], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    rmSync(partial, { force: true });
    const why = r.error
      ? (r.error as NodeJS.ErrnoException).code === 'ENOENT' ? `no C compiler ("${compiler}" not found; install gcc)` : r.error.message
      : r.stderr.trim().split('\n').slice(0, 3).join(' ');
    return { ok: false, reason: `${what} could not be built: ${why}` };
  }
  renameSync(partial, path);
  return { ok: true, path };
}
