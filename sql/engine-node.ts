/**
 * Real ClickHouse nodes from the installed engine library: the same engine
 * (chdb's libchdb.so, ClickHouse 26.x) that runs embedded in citymesh, run in
 * a process of its own with its native TCP and HTTP ports open, through the
 * small launcher `npm install` builds (sql/native/clickhouse-node.c).
 *
 * Used by `citymesh store serve` (one node over a data directory, with a
 * password, so several citymesh processes share it through CLICKHOUSE_URL),
 * by the two-shard cluster tests, and by anyone rehearsing a cluster on one
 * machine (startEngineCluster: N shards on 127.0.0.x with a remote_servers
 * section naming them all). A node has one user, `default`: without a
 * password it listens on loopback only.
 *
 * The launcher runs the engine as an interactive clickhouse-local on a
 * pseudo-terminal: in batch mode the engine kills itself when a client resets
 * a native connection (see the launcher). A node is stopped with SIGTERM,
 * which ends that terminal's input: the engine shuts down in order.
 *
 * What such a node is not: it has no ClickHouse Keeper (compiled out of the
 * library) and no distributed DDL worker, so ON CLUSTER DDL is refused and
 * Replicated tables cannot become writable. A cluster of these nodes is
 * sharded without replication (sql/cluster.ts, replication 'none').
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { StoreLockedError } from './store.js';

export interface EngineNodeOptions {
  /** Data directory (created if missing); one node per directory, as embedded. */
  dataDir: string;
  /** Loopback address to listen on (default 127.0.0.1). */
  host?: string | undefined;
  /** Native protocol port (0 or absent: a free one). */
  tcpPort?: number | undefined;
  /** HTTP port, the one CLICKHOUSE_URL names (0 or absent: a free one). */
  httpPort?: number | undefined;
  /** XML put inside the node's <clickhouse> config, e.g. a <remote_servers> section. */
  configXml?: string | undefined;
  /**
   * Password of the node's user `user` (stored hashed in the data directory). Without one, clients use
   * `default` without a password, and the node listens on loopback only.
   */
  password?: string | undefined;
  /** With a password: the user it belongs to (default `citymesh`; `default` is the engine's own, see usersXml). */
  user?: string | undefined;
  /** How long to wait for the node to answer /ping (default 60 s: a loaded machine). */
  startTimeoutMs?: number | undefined;
}

export interface EngineNode {
  readonly host: string;
  readonly tcpPort: number;
  readonly httpPort: number;
  /** http://host:httpPort, the value for CLICKHOUSE_URL. */
  readonly url: string;
  readonly dataDir: string;
  readonly pid: number;
  /** The last lines the engine wrote (warnings and errors). */
  readonly output: () => string;
  /** Settles when the process has exited, with its exit code (null when killed by a signal). */
  readonly exited: Promise<number | null>;
  /** SIGTERM: the engine shuts down in order; killed if it has not exited in 20 s. */
  stop(): Promise<void>;
  /** SIGKILL, for fault drills: the node dies as in a power cut (what was acknowledged is on disk). */
  kill(): Promise<void>;
}

/** Run at start; the engine then waits on its terminal, serving, until stopped. */
const START_QUERIES = 'SYSTEM START LISTEN TCP; SYSTEM START LISTEN HTTP';
const START_QUERY_COUNT = 2;
/** Ten years: the start-up user's quota never renews while a node runs. */
const START_QUOTA_SECONDS = 10 * 365 * 86_400;
const STDERR_KEPT = 8192;
/** What the interactive engine prints on stderr when a start query failed (it then waits instead of exiting). */
const QUERY_FAILED = 'Received exception:';

export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}

/** Why this machine cannot start engine nodes, or null when it can. */
export function engineNodeUnavailable(): string | null {
  try {
    launcherPaths();
    return null;
  } catch (error) {
    return (error as Error).message;
  }
}

function launcherPaths(): { launcher: string; library: string } {
  let root = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(root, 'package.json')) && dirname(root) !== root) root = dirname(root);
  const launcher = join(root, 'sql', 'native', 'build', 'Release', 'clickhouse-node');
  if (!existsSync(launcher)) {
    throw new Error(`the ClickHouse node launcher is not built (${launcher}): run npm install (or npm run build:engine-node) with a C compiler`);
  }
  const fromChdb = createRequire(createRequire(import.meta.url).resolve('chdb'));
  const packageName = `@chdb/lib-${process.platform}-${process.arch}-gnu`;
  let library: string;
  try {
    library = join(dirname(fromChdb.resolve(packageName)), 'libchdb.so');
  } catch {
    throw new Error(`the ClickHouse engine library ${packageName} is not installed (chdb ships it for linux x64/arm64 with glibc)`);
  }
  return { launcher, library };
}

/** A port nothing listens on at `host` right now (the kernel's pick). */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, host, () => {
      const address = probe.address();
      probe.close(() => (typeof address === 'object' && address ? resolvePort(address.port) : reject(new Error('no port'))));
    });
  });
}

export async function startEngineNode(options: EngineNodeOptions): Promise<EngineNode> {
  const host = options.host ?? '127.0.0.1';
  if (!isLoopbackHost(host) && !options.password) {
    throw new Error(`engine node host ${host}: a node without a password listens on loopback only (127.0.0.0/8 or ::1)`);
  }
  if (options.password !== undefined && options.password.length === 0) throw new Error('engine node password: empty (omit it for a password-less loopback node)');
  const user = options.user ?? 'citymesh';
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(user) || user === 'default') {
    throw new Error(`engine node user "${user}": letters, digits and _, and not "default" (the engine's own start-up user)`);
  }
  const { launcher, library } = launcherPaths();
  const dataDir = resolve(options.dataDir);
  mkdirSync(dataDir, { recursive: true });
  const pickedPorts = !options.tcpPort || !options.httpPort;
  for (let attempt = 1; ; attempt++) {
    const tcpPort = options.tcpPort || (await freePort(host));
    const httpPort = options.httpPort || (await freePort(host));
    try {
      return await launch({
        launcher, library, host, tcpPort, httpPort, dataDir, configXml: options.configXml ?? '', password: options.password, user, timeoutMs: options.startTimeoutMs ?? 60_000,
      });
    } catch (error) {
      // Another process took a picked port between our probe and the node's bind: pick again.
      if (pickedPorts && attempt < 3 && /Address already in use/.test((error as Error).message)) continue;
      throw error;
    }
  }
}

interface LaunchPlan {
  launcher: string;
  library: string;
  host: string;
  tcpPort: number;
  httpPort: number;
  dataDir: string;
  configXml: string;
  password: string | undefined;
  user: string;
  timeoutMs: number;
}

/**
 * The node's users. The engine's own in-process connection, which runs the
 * start-up queries, always signs in as `default` without a password, and the
 * engine treats it as a loopback client, so `default` cannot be kept from
 * loopback clients by address. Without a password that is the node's one
 * user (loopback only). With one, `default` may only start listening, twice
 * (its quota, spent by the two start-up queries; counted per process): once
 * the node serves, it can read or change nothing (ClickHouse answers a bare
 * `SELECT 1` to anyone, as a ping). Clients sign in as `user` with the
 * password, whose SHA-256 is all the file holds.
 */
function usersXml(password: string | undefined, user: string): string {
  const member = (name: string, secret: string, quota: string, grants = '') =>
    `    <${name}>\n      ${secret}\n      <networks><ip>::/0</ip></networks>\n      <profile>default</profile>\n      <quota>${quota}</quota>${grants}\n    </${name}>`;
  const users = password === undefined
    ? member('default', '<password></password>', 'default')
    : [
        member('default', '<password></password>', 'engine_start', '\n      <grants><query>GRANT SYSTEM LISTEN ON *.*</query></grants>'),
        member(user, `<password_sha256_hex>${createHash('sha256').update(password, 'utf8').digest('hex')}</password_sha256_hex>`, 'default'),
      ].join('\n');
  return `<clickhouse>
  <profiles><default></default></profiles>
  <quotas>
    <default></default>
    <engine_start><interval><duration>${START_QUOTA_SECONDS}</duration><queries>${START_QUERY_COUNT}</queries></interval></engine_start>
  </quotas>
  <users>
${users}
  </users>
</clickhouse>
`;
}

function xmlText(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

async function launch(plan: LaunchPlan): Promise<EngineNode> {
  const { host, tcpPort, httpPort, dataDir } = plan;
  const configFile = join(dataDir, 'citymesh-node.xml');
  const usersFile = join(dataDir, 'citymesh-users.xml');
  writeFileSync(usersFile, usersXml(plan.password, plan.user), { mode: 0o600 });
  // Errors only: the engine logs to the console (kept for error messages), and at its default level it writes a line per query.
  writeFileSync(
    configFile,
    `<clickhouse>\n  <logger><level>error</level><console>1</console></logger>\n  <users_config>${xmlText(usersFile)}</users_config>\n${plan.configXml}\n</clickhouse>\n`,
  );
  const child = spawn(plan.launcher, [
    plan.library,
    `--config-file=${configFile}`,
    `--path=${dataDir}`,
    `--listen_host=${host}`,
    `--tcp_port=${tcpPort}`,
    `--http_port=${httpPort}`,
    '--log-level=error',
    `--query=${START_QUERIES}`,
  ], { stdio: ['ignore', 'ignore', 'pipe'] }); // stdout: the interactive engine's banner and query echo
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-STDERR_KEPT);
  });
  const exited = new Promise<number | null>((resolveExit) => {
    child.once('exit', (code) => resolveExit(code));
    child.once('error', () => resolveExit(-1));
  });
  const hostInUrl = host.includes(':') ? `[${host}]` : host;
  const url = `http://${hostInUrl}:${httpPort}`;
  const failure = (what: string) => {
    const failed = stderr.lastIndexOf(QUERY_FAILED);
    const lines = (failed >= 0 ? stderr.slice(failed + QUERY_FAILED.length) : stderr).trim().split('\n');
    const detail = lines.filter((line) => line.trim() !== '').slice(failed >= 0 ? 0 : -3).slice(0, 3).join(' | ');
    if (/Cannot lock file/.test(detail)) return new StoreLockedError(dataDir);
    return new Error(`ClickHouse node on ${host} (tcp ${tcpPort}, http ${httpPort}, data ${dataDir}) ${what}${detail ? `: ${detail}` : ''}`);
  };
  let exitCode: number | null | undefined;
  void exited.then((code) => (exitCode = code));
  const deadline = Date.now() + plan.timeoutMs;
  for (;;) {
    if (exitCode !== undefined) throw failure(`exited (${exitCode ?? 'signal'}) before serving`);
    if (stderr.includes(QUERY_FAILED)) {
      child.kill('SIGKILL');
      await exited;
      throw failure('could not start listening');
    }
    if (await answersPing(url)) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      await exited;
      throw failure(`did not answer ${url}/ping within ${plan.timeoutMs / 1000} s`);
    }
    await new Promise((wake) => setTimeout(wake, 50));
  }
  return engineNode(child, { host, tcpPort, httpPort, url, dataDir, exited, output: () => stderr });
}

function engineNode(
  child: ChildProcess,
  known: { host: string; tcpPort: number; httpPort: number; url: string; dataDir: string; exited: Promise<number | null>; output: () => string },
): EngineNode {
  let gone = false;
  void known.exited.then(() => (gone = true));
  const kill = async () => {
    if (!gone) child.kill('SIGKILL');
    await known.exited;
  };
  return {
    ...known,
    pid: child.pid!,
    kill,
    async stop() {
      if (gone) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => void kill(), 20_000);
      await known.exited;
      clearTimeout(timer);
    },
  };
}

async function answersPing(url: string): Promise<boolean> {
  try {
    const response = await fetch(`${url}/ping`, { signal: AbortSignal.timeout(2000) });
    return response.ok && (await response.text()).startsWith('Ok');
  } catch {
    return false;
  }
}

export interface EngineClusterOptions {
  /** Directory holding one data directory per node (node-1, node-2, …). */
  dir: string;
  /** Cluster name in every node's remote_servers (letters, digits, _). */
  name: string;
  /** Number of shards, one node each (no replicas: there is no Keeper). */
  shards: number;
  /** First loopback address; node k listens on the k-th address from it (default 127.0.0.2). */
  firstHost?: string | undefined;
}

export interface EngineCluster {
  readonly name: string;
  readonly nodes: EngineNode[];
  /** The remote_servers section every node was started with. */
  readonly remoteServersXml: string;
  /** Start node `index` again (after kill or stop) on the same address, ports and data. */
  restart(index: number): Promise<EngineNode>;
  /** Stop every node that is running. */
  stop(): Promise<void>;
}

/**
 * N nodes on 127.0.0.x with free ports, each the sole replica of its own shard
 * of cluster `name`. Nodes are started in parallel and stopped on failure, so
 * a failed start leaves no process behind.
 */
export async function startEngineCluster(options: EngineClusterOptions): Promise<EngineCluster> {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(options.name)) throw new Error(`cluster name "${options.name}": letters, digits and _ only`);
  if (!Number.isInteger(options.shards) || options.shards < 1 || options.shards > 200) throw new Error(`shards: ${options.shards} is not 1-200`);
  const first = (options.firstHost ?? '127.0.0.2').split('.').map(Number);
  const plans: { host: string; tcpPort: number; httpPort: number; dataDir: string }[] = [];
  for (let k = 0; k < options.shards; k++) {
    const host = [first[0], first[1], first[2], first[3]! + k].join('.');
    if (!isLoopbackHost(host) || first[3]! + k > 254) throw new Error(`shard ${k + 1} would listen on ${host}, outside 127.0.0.0/8`);
    plans.push({ host, tcpPort: await freePort(host), httpPort: await freePort(host), dataDir: join(options.dir, `node-${k + 1}`) });
  }
  const shardsXml = plans
    .map((p) => `      <shard><internal_replication>true</internal_replication><replica><host>${p.host}</host><port>${p.tcpPort}</port></replica></shard>`)
    .join('\n');
  const remoteServersXml = `  <remote_servers>\n    <${options.name}>\n${shardsXml}\n    </${options.name}>\n  </remote_servers>`;
  const start = (k: number) => startEngineNode({ ...plans[k]!, configXml: remoteServersXml });
  const settled = await Promise.allSettled(plans.map((_, k) => start(k)));
  const nodes = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) {
    await Promise.all(nodes.map((node) => node.stop()));
    throw failed.reason;
  }
  return {
    name: options.name,
    nodes,
    remoteServersXml,
    async restart(index) {
      const node = nodes[index];
      if (!node) throw new Error(`no node ${index}`);
      await node.stop();
      nodes[index] = await start(index);
      return nodes[index]!;
    },
    async stop() {
      await Promise.all(nodes.map((node) => node.stop()));
    },
  };
}
