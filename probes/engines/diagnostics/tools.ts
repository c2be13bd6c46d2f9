/**
 * Runs the system's network tools (traceroute, tracepath) as child processes
 * without a shell, bounded in time, and turns every way they can fail into a
 * reason: never a throw. A tool that is not installed names its Debian package.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

export interface ToolRun {
  /** The process ran and exited (any exit code). */
  ran: boolean;
  stdout: string;
  stderr: string;
  code: number | null;
  /** It was killed because it ran past its bound; stdout holds what it printed until then. */
  timedOut: boolean;
  /** Why it did not run at all (missing binary, spawn failure); null when it ran. */
  failure: string | null;
}

const DEBIAN_PACKAGE: Record<string, string> = { traceroute: 'traceroute', tracepath: 'iputils-tracepath' };

/** Largest output kept per stream: a traceroute of 64 hops prints a few KiB. */
const MAX_OUTPUT_CHARS = 256 * 1024;

/**
 * `tool`: the network tool the argv runs, when a wrapper (stdbuf, ip netns exec)
 * comes first; a wrapper that cannot find it exits 127, which is reported like
 * a missing binary.
 */
export function runTool(argv: readonly string[], options: { timeoutMs: number; signal?: AbortSignal | undefined; tool?: string }): Promise<ToolRun> {
  const [command, ...args] = argv as [string, ...string[]];
  const tool = (options.tool ?? command).split('/').pop() ?? command;
  const missing = `${tool} not found: install the Debian package ${DEBIAN_PACKAGE[tool] ?? tool}`;
  return new Promise((resolve) => {
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    let settled = false;
    const finish = (run: ToolRun) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      resolve(run);
    };
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
    const kill = () => {
      timedOut = true;
      child.kill('SIGKILL');
    };
    const timer = setTimeout(kill, options.timeoutMs);
    const onAbort = () => kill();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      if (stdout.length < MAX_OUTPUT_CHARS) stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      if (stderr.length < MAX_OUTPUT_CHARS) stderr += d;
    });
    child.once('error', (error: NodeJS.ErrnoException) => {
      const base = command.split('/').pop() ?? command;
      const failure = error.code !== 'ENOENT' ? `${base} could not be started: ${error.message}`
        : base === tool ? missing : `${base} not found (needed to run ${tool})`;
      finish({ ran: false, stdout, stderr, code: null, timedOut: false, failure });
    });
    child.once('close', (code) => {
      const notFound = code === 127 && command !== options.tool && /No such file|not found/i.test(stderr);
      finish({ ran: !notFound, stdout, stderr, code, timedOut, failure: notFound ? missing : null });
    });
  });
}

const versions = new Map<string, Promise<string | null>>();

/** "traceroute 2.1.2", "tracepath iputils 20221126"; null when the tool does not say. Asked once per process. */
export function toolVersion(command: string, flag: string): Promise<string | null> {
  const key = `${command} ${flag}`;
  let version = versions.get(key);
  if (!version) {
    version = runTool([command, flag], { timeoutMs: 5000 }).then((r) => {
      if (!r.ran) return null;
      const text = `${r.stdout}\n${r.stderr}`;
      const name = command.split('/').pop() ?? command;
      const match = /version\s+([\w.-]+)/i.exec(text) ?? /iputils[- ]([\w.-]+)/i.exec(text);
      return match ? `${name} ${/iputils/i.test(text) ? 'iputils ' : ''}${match[1]}` : name;
    });
    versions.set(key, version);
  }
  return version;
}

let lineBuffering: readonly string[] | null = null;

/**
 * `stdbuf -oL` when coreutils' stdbuf is on PATH, else nothing. The tools
 * buffer their output fully when it goes to a pipe, so a run killed at its
 * bound would lose every hop it had already printed; line buffering keeps them.
 */
export function lineBuffered(): readonly string[] {
  if (lineBuffering === null) {
    const found = (process.env.PATH ?? '').split(delimiter).some((dir) => {
      try {
        accessSync(join(dir, 'stdbuf'), constants.X_OK);
        return true;
      } catch {
        return false;
      }
    });
    lineBuffering = found ? ['stdbuf', '-oL'] : [];
  }
  return lineBuffering;
}
