/**
 * Two network namespaces joined by a veth pair, for tests that need a real
 * link with a known rate (tc tbf; netem is not available on the CI kernel).
 *
 * Addressing: IPv4 from TEST-NET-1 (RFC 5737, reserved for documentation and
 * never routed), built at runtime from its octets so no non-loopback literal
 * sits in the source. The addresses exist only inside the two namespaces the
 * helper creates; each namespace is its own network stack, so parallel runs
 * using the same addresses and ports never see each other. The veth ends are
 * created directly inside the namespaces and never appear in the root one.
 *
 * Names carry the pid and a random suffix (unique per run, ≤ 15 characters
 * for interfaces). cleanup() ends the processes this helper started (by pid)
 * and deletes both namespaces, which destroys the veth pair and its qdiscs;
 * a process 'exit' hook does the same if a test run dies before afterAll.
 */
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { packageRoot } from '../../api/public-dir.js';
import { missingCommand } from './requirements.js';

/** Why namespaces cannot be used here, or null when they can. */
export function netnsUnavailable(): string | null {
  if (process.platform !== 'linux') return 'network namespaces need Linux';
  if (process.getuid?.() !== 0) return 'network namespaces need root (run the tests as root, as .ci/run does)';
  return missingCommand('ip', 'iproute2') ?? missingCommand('tc', 'iproute2');
}

export interface ExecResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Run argv (no shell) and collect its output; never rejects for a non-zero exit. */
export function run(argv: readonly string[], opts: { timeoutMs?: number } = {}): Promise<ExecResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolvePromise({ code, signal, stdout, stderr });
    });
  });
}

/** Like run(), but rejects with the command and its stderr when it fails. */
export async function runOk(argv: readonly string[], opts: { timeoutMs?: number } = {}): Promise<string> {
  const r = await run(argv, opts);
  if (r.code !== 0) throw new Error(`${argv.join(' ')} failed (${r.signal ?? `exit ${r.code}`}): ${r.stderr.trim() || r.stdout.trim()}`);
  return r.stdout;
}

export interface NetnsEnd {
  /** Namespace name. */
  ns: string;
  /** The veth end inside it. */
  dev: string;
  /** Its IPv4 address (no prefix length). */
  address: string;
  /** argv prefix that runs a command inside the namespace. */
  prefix: readonly string[];
}

export interface ShapeOptions {
  /** tbf rate, Mbit/s. */
  rateMbit: number;
  /** tbf bucket, bytes. Default max(64 KiB, 2 ms at the rate). */
  burstBytes?: number;
  /** tbf queue limit expressed as latency, ms. Default 50. */
  latencyMs?: number;
}

export type Side = 'a' | 'b' | 'both';

export interface NetnsPair {
  readonly a: NetnsEnd;
  readonly b: NetnsEnd;
  /** Run a command inside a namespace and collect its output. */
  exec(end: NetnsEnd, argv: readonly string[], opts?: { timeoutMs?: number }): Promise<ExecResult>;
  /** Start a long-running command inside a namespace; it is ended by cleanup(). */
  spawn(end: NetnsEnd, argv: readonly string[], opts?: SpawnOptions): ChildProcess;
  /** Put (or replace) a tbf qdisc at the root of the egress of one or both veth ends. */
  shape(side: Side, opts: ShapeOptions): Promise<void>;
  /** Remove the tbf qdisc(s). */
  unshape(side: Side): Promise<void>;
  /** The current root qdisc of an end, as `tc qdisc show` prints it. */
  qdisc(end: NetnsEnd): Promise<string>;
  /** End tracked processes and delete both namespaces. Safe to call twice. */
  cleanup(): Promise<void>;
}

let sequence = 0;
const TEST_NET_1 = [192, 0, 2].join('.');

export async function createNetnsPair(): Promise<NetnsPair> {
  const reason = netnsUnavailable();
  if (reason) throw new Error(reason);
  const tag = `${process.pid.toString(36)}${(sequence++).toString(36)}${randomBytes(2).toString('hex')}`;
  const mk = (side: 'a' | 'b', host: number): NetnsEnd => {
    const ns = `citymesh-${tag}-${side}`;
    return { ns, dev: `cm${tag}${side}`.slice(0, 15), address: `${TEST_NET_1}.${host}`, prefix: ['ip', 'netns', 'exec', ns] };
  };
  const a = mk('a', 1);
  const b = mk('b', 2);
  const children = new Set<ChildProcess>();
  const created: string[] = [];
  let cleaned = false;

  const killChildren = async () => {
    await Promise.all(
      [...children].map(
        (c) =>
          new Promise<void>((done) => {
            if (c.exitCode !== null || c.signalCode !== null || c.pid === undefined) {
              done();
              return;
            }
            const hard = setTimeout(() => c.kill('SIGKILL'), 2000);
            c.once('close', () => {
              clearTimeout(hard);
              done();
            });
            c.kill('SIGTERM');
          }),
      ),
    );
    children.clear();
  };
  // Last resort if the test process exits without afterAll: synchronous, by pid and by name.
  const onExit = () => {
    for (const c of children) if (c.pid !== undefined && c.exitCode === null) c.kill('SIGKILL');
    for (const ns of created) spawnSync('ip', ['netns', 'del', ns]);
  };
  process.once('exit', onExit);

  const cleanup = async () => {
    if (cleaned) return;
    cleaned = true;
    await killChildren();
    for (const ns of created) await run(['ip', 'netns', 'del', ns]).catch(() => undefined);
    created.length = 0;
    process.off('exit', onExit);
  };

  try {
    for (const end of [a, b]) {
      await runOk(['ip', 'netns', 'add', end.ns]);
      created.push(end.ns);
      await runOk(['ip', '-n', end.ns, 'link', 'set', 'lo', 'up']);
    }
    // Created inside the namespaces directly: nothing appears in the root namespace.
    await runOk(['ip', 'link', 'add', a.dev, 'netns', a.ns, 'type', 'veth', 'peer', 'name', b.dev, 'netns', b.ns]);
    for (const end of [a, b]) {
      await runOk(['ip', '-n', end.ns, 'addr', 'add', `${end.address}/24`, 'dev', end.dev]);
      await runOk(['ip', '-n', end.ns, 'link', 'set', end.dev, 'up']);
    }
  } catch (err) {
    await cleanup();
    throw err;
  }

  const ends = (side: Side): NetnsEnd[] => (side === 'both' ? [a, b] : side === 'a' ? [a] : [b]);
  return {
    a,
    b,
    exec: (end, argv, opts) => run([...end.prefix, ...argv], opts),
    spawn: (end, argv, opts) => {
      if (cleaned) throw new Error('namespace pair already cleaned up');
      const child = spawn(end.prefix[0]!, [...end.prefix.slice(1), ...argv], { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
      children.add(child);
      child.once('close', () => children.delete(child));
      return child;
    },
    shape: async (side, opts) => {
      const rateBytes = (opts.rateMbit * 1e6) / 8;
      const burst = Math.round(opts.burstBytes ?? Math.max(64 * 1024, rateBytes * 0.002));
      for (const end of ends(side)) {
        await runOk([
          ...end.prefix,
          'tc', 'qdisc', 'replace', 'dev', end.dev, 'root', 'tbf',
          'rate', `${opts.rateMbit}mbit`, 'burst', String(burst), 'latency', `${opts.latencyMs ?? 50}ms`,
        ]);
      }
    },
    unshape: async (side) => {
      for (const end of ends(side)) await run([...end.prefix, 'tc', 'qdisc', 'del', 'dev', end.dev, 'root']);
    },
    qdisc: async (end) => (await runOk([...end.prefix, 'tc', 'qdisc', 'show', 'dev', end.dev, 'root'])).trim(),
    cleanup,
  };
}

/** True when a namespace of that name exists (for cleanup assertions). */
export async function netnsExists(ns: string): Promise<boolean> {
  const out = await runOk(['ip', 'netns', 'list']);
  return out.split('\n').some((l) => l.split(/\s+/)[0] === ns);
}

/** The checkout root, whether this runs from the sources (vitest) or from dist-tools/ (npm run bench). */
export const repoRoot = packageRoot();

/**
 * Bundle a small TypeScript entry (source text, resolved from the repo root)
 * into one .mjs file with esbuild (a project dependency), so our current TS
 * sources can run as a separate `node` process, e.g. inside a namespace
 * where the vitest process itself cannot go. Returns the file and a remover.
 * Packages stay external; the file lives under the checkout's
 * node_modules/.cache so that Node resolves them from the checkout.
 */
export async function buildNodeScript(contents: string, name = 'child'): Promise<{ file: string; remove: () => Promise<void> }> {
  const { build } = await import('esbuild');
  const cache = join(repoRoot, 'node_modules', '.cache');
  await mkdir(cache, { recursive: true });
  const dir = await mkdtemp(join(cache, 'citymesh-child-'));
  const file = join(dir, `${name}.mjs`);
  await build({
    stdin: { contents, loader: 'ts', resolveDir: repoRoot, sourcefile: `${name}.ts` },
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    packages: 'external',
    outfile: file,
    logLevel: 'silent',
  });
  return { file, remove: () => rm(dir, { recursive: true, force: true }) };
}
