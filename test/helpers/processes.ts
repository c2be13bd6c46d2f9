/**
 * Real citymesh processes for fault-injection tests: a server and probes run
 * from the built CLI (bin/citymesh.js), killed and restarted like production
 * processes. Probes log each train once it is durable in their spool; the
 * test collects those ids as the trains generated.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { duplicateTrainIds, openStore } from '../../sql/index.js';

export { freePort } from '../../sql/index.js';

/**
 * One run of the built CLI to its end, without the environment's ClickHouse
 * settings (plus `env`): its exit code and output.
 */
export function runCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const base = { ...process.env };
  for (const name of ['CLICKHOUSE_URL', 'CLICKHOUSE_DATABASE', 'CITYMESH_CLICKHOUSE_CLUSTER', 'CITYMESH_CLICKHOUSE_REPLICATION', 'CITYMESH_CLICKHOUSE_NODES', 'CITYMESH_DATA_DIR']) {
    delete base[name];
  }
  const child = spawn(process.execPath, ['bin/citymesh.js', ...args], { env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, stdout, stderr })));
}

const tempDirs: string[] = [];

/** A temporary directory for a process's config, data or spool; removeTempDirs() removes them all. */
export function tempDir(name: string): string {
  const dir = mkdtempSync(join(tmpdir(), `citymesh-${name}-`));
  tempDirs.push(dir);
  return dir;
}

export function removeTempDirs(): void {
  for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
}

/** Every train id in a (stopped) server's embedded store, how many rows, how many ids twice. */
export async function storedTrainIds(dataDir: string): Promise<{ ids: Set<string>; rows: number; duplicates: number }> {
  const store = await openStore({ dataDir });
  try {
    const result = await store.client.query({ query: 'SELECT train_id FROM latency_trains', format: 'JSONEachRow' });
    const rows = await result.json<{ train_id: string }>();
    return { ids: new Set(rows.map((r) => r.train_id)), rows: rows.length, duplicates: (await duplicateTrainIds(store.client)).length };
  } finally {
    await store.close();
  }
}

const running = new Set<CitymeshProcess>();

/** Kill every process these helpers started that is still running (afterAll, also after a failed test). */
export async function killAll(): Promise<void> {
  await Promise.all([...running].map((p) => p.kill('SIGKILL')));
}

export class CitymeshProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<number | null>;
  private stdout = '';

  constructor(args: string[], env: NodeJS.ProcessEnv, private readonly onStderrLine?: (line: string) => void) {
    this.child = spawn(process.execPath, ['bin/citymesh.js', ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child.stdout!.setEncoding('utf8').on('data', (d: string) => (this.stdout += d));
    let partial = '';
    this.child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      partial += d;
      const lines = partial.split('\n');
      partial = lines.pop()!;
      for (const line of lines) this.onStderrLine?.(line);
    });
    this.exited = new Promise((resolve) => this.child.once('exit', (code) => resolve(code)));
    running.add(this);
    void this.exited.then(() => running.delete(this));
  }

  /** What the process printed on stdout so far. */
  get output(): string {
    return this.stdout;
  }

  /** Wait until stdout contains `text` (bounded). */
  async waitForStdout(text: string, boundMs = 60_000): Promise<void> {
    const deadline = Date.now() + boundMs;
    while (!this.stdout.includes(text)) {
      if (this.child.exitCode !== null) throw new Error(`process exited (${this.child.exitCode}) before printing "${text}"`);
      if (Date.now() > deadline) throw new Error(`no "${text}" on stdout within ${boundMs} ms`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  kill(signal: NodeJS.Signals): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    return this.exited;
  }
}

/** Probe child whose spooled train ids are collected into `spooled`. */
export function probeProcess(opts: { serverWsUrl: string; centre: string; token: string; spoolDir: string; spooled: Set<string> }): CitymeshProcess {
  return new CitymeshProcess(
    ['probe', '--server', opts.serverWsUrl, '--centre', opts.centre, '--spool-dir', opts.spoolDir, '--log-level', 'debug', '--drain-timeout-s', '60'],
    { CITYMESH_TOKEN: opts.token },
    (line) => {
      if (!line.includes('train spooled')) return;
      try {
        const entry = JSON.parse(line) as { trainId?: string };
        if (entry.trainId) opts.spooled.add(entry.trainId);
      } catch {
        // not a log line
      }
    },
  );
}

/**
 * A TCP proxy on loopback standing in for the network between probe and
 * collector: cut() drops every connection and stops listening; restore()
 * listens again on the same port.
 */
export class CuttableProxy {
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();

  constructor(readonly port: number, private readonly targetPort: number) {}

  async restore(): Promise<void> {
    const server = createServer((client) => {
      const upstream = createConnection(this.targetPort, '127.0.0.1');
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => s.destroy());
      }
      client.pipe(upstream).pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    await new Promise<void>((resolve) => server.listen(this.port, '127.0.0.1', resolve));
    this.server = server;
  }

  async cut(): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const s of this.sockets) s.destroy();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
