/**
 * A small city inside one machine: network namespaces for the centres and
 * the NOC, veth links shaped with tc tbf, delay relays, and the real citymesh
 * server and probes as child processes (`ip netns exec NS node ...`).
 * See plan.ts for the addressing and relay.ts for the delay relay.
 *
 * Generalises test/helpers/netns.ts: names carry the pid and a random suffix
 * (`cmfab-p<pid>-<hex>-<centre>`, one run never touches another's), veth ends
 * are created directly inside the namespaces (nothing ever appears in the root
 * namespace), cleanup() ends the processes this run started (by pid), deletes
 * its namespaces (which destroys the veths and their qdiscs) and its run
 * directory, and a process 'exit' hook does the same synchronously if the
 * run dies first. cleanupLeftovers() removes what a crashed run left behind,
 * by name prefix, skipping runs whose process is still alive.
 *
 * The only way in from the root namespace is a Unix socket (see forward.ts):
 * api() speaks HTTP over it, rootBridge() puts a 127.0.0.1 listener in front
 * of it for a browser.
 */
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, type WriteStream } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildNodeScript, netnsUnavailable, repoRoot, run, runOk, type ExecResult } from '../helpers/netns.js';
import { startForwarder, type Forwarder } from './forward.js';
import {
  fabricTopologyYaml, inFabricRange, NS_PATTERN, NS_PREFIX, planFabric,
  type CentrePlan, type FabricPlan, type FabricSpec, type LinkPlan,
} from './plan.js';
import { relayControl, type ControlRequest, type LegCounters, type RelayConfig, type RelayLinkState } from './relay.js';

export { netnsUnavailable };

const LOOPBACK = '127.0.0.1';
/** The unspecified address (every interface of the noc namespace: its management veths and lo). */
const ANY = [0, 0, 0, 0].join('.');
const TAIL_LINES = 60;

export interface FabricOptions {
  /** Log level of the server and probes (default warn). */
  logLevel?: string;
  /** Keep the run directory (logs, data) after cleanup. Default false. */
  keepRunDir?: boolean;
  /** Seed of the relays' loss PRNGs (default random). */
  seed?: number;
  /**
   * How the relays and probes are scheduled (default 'nice': nice -10).
   * Every STAMP packet wakes several processes (sender, relay, reflector,
   * relay again, sender); on a shared 2-core machine running other tests, an
   * ordinary process woken by a packet can wait behind them, and a
   * sub-millisecond measurement drowns in that; a higher weight keeps those
   * wake-ups prompt, as on a dedicated probe host. (Real-time scheduling was
   * tried and rejected: a whole Node process under SCHED_FIFO, with V8's
   * helper threads at the same priority, can livelock a core.) 'default'
   * leaves them alone.
   */
  scheduling?: 'nice' | 'default';
}

interface Tracked {
  name: string;
  ns: string;
  child: ChildProcess;
  tail: string[];
  log: WriteStream;
}

/** Per direction as the API names it: `src` measures `dst`, through dst's relay. */
export interface DirectionCounters {
  src: string;
  dst: string;
  /** Requests src -> dst (inbound leg at dst's relay) and replies dst -> src. */
  request: LegCounters;
  reply: LegCounters;
}

export interface IsolationReport {
  /** Interfaces of the root namespace. */
  rootInterfaces: string[];
  /** Root-namespace veths whose peer is in one of this run's namespaces (must be none). */
  rootInterfacesIntoFabric: string[];
  /** Root-namespace addresses inside the fabric's ranges (must be none). */
  rootFabricAddresses: string[];
  /** Every veth of the fabric and the namespace holding its peer. */
  veths: { ns: string; dev: string; peerNs: string | null }[];
  /** Veths whose peer is not in one of this run's namespaces (must be none). */
  strayVeths: { ns: string; dev: string; peerNs: string | null }[];
  /** Every process this run started and the namespace it runs in. */
  processes: { name: string; pid: number; ns: string | null }[];
  /** Processes outside this run's namespaces (must be none). */
  strayProcesses: { name: string; pid: number; ns: string | null }[];
  /** Routes that could carry traffic elsewhere: defaults, or via a device that is not one of the namespace's own (must be none). */
  strayRoutes: string[];
  /** Namespaces that forward packets (must be none: no centre is a transit). */
  forwarding: string[];
}

function newTag(): string {
  return `p${process.pid}-${randomBytes(2).toString('hex')}`;
}

/** The helper-process entry: dist-tools/test/fabric/child.js next to this file, or bundled from the sources under vitest. */
async function childEntry(): Promise<{ file: string; remove: () => Promise<void> }> {
  const here = fileURLToPath(import.meta.url);
  if (here.endsWith('.js')) return { file: join(dirname(here), 'child.js'), remove: async () => undefined };
  return buildNodeScript(`import './test/fabric/child.ts';`, 'fabric-child');
}

export class Fabric {
  readonly runDir: string;
  readonly socketPath: string;
  private readonly children = new Set<Tracked>();
  private readonly created: string[] = [];
  private readonly extraCleanup: (() => Promise<void>)[] = [];
  private cleaned = false;
  private child: { file: string; remove: () => Promise<void> } | null = null;
  private readonly onExit = () => this.cleanupSync();

  private constructor(readonly plan: FabricPlan, private readonly options: FabricOptions) {
    this.runDir = mkdtempSync(join(tmpdir(), `citymesh-fabric-${plan.tag}-`));
    mkdirSync(join(this.runDir, 'logs'));
    this.socketPath = join(this.runDir, 'dashboard.sock');
    process.once('exit', this.onExit);
  }

  /** Why the fabric cannot run here (not root, no iproute2 ...), or null. */
  static unavailable(): string | null {
    return netnsUnavailable();
  }

  get operatorToken(): string {
    return this.plan.operatorToken;
  }

  get namespaces(): string[] {
    return [this.plan.nocNs, ...this.plan.centres.map((c) => c.ns)];
  }

  centre(id: string): CentrePlan {
    const c = this.plan.centres.find((x) => x.spec.id === id);
    if (!c) throw new Error(`no centre "${id}" in the fabric`);
    return c;
  }

  link(a: string, b: string): LinkPlan {
    const id = a < b ? `${a}~${b}` : `${b}~${a}`;
    const l = this.plan.links.find((x) => x.id === id);
    if (!l) throw new Error(`no link ${id} in the fabric`);
    return l;
  }

  /** Create the namespaces, links, addresses, routes and shaping (no processes yet). */
  static async create(spec: FabricSpec, options: FabricOptions = {}): Promise<Fabric> {
    const reason = netnsUnavailable();
    if (reason) throw new Error(reason);
    const tag = newTag();
    const token = () => randomBytes(24).toString('base64url');
    const plan = planFabric(spec, tag, token, token());
    const fabric = new Fabric(plan, options);
    try {
      await fabric.build();
    } catch (error) {
      await fabric.cleanup();
      throw error;
    }
    return fabric;
  }

  private async ip(ns: string, ...args: string[]): Promise<void> {
    await runOk(['ip', '-n', ns, ...args]);
  }

  private async sysctl(ns: string, ...settings: string[]): Promise<void> {
    await runOk(['ip', 'netns', 'exec', ns, 'sysctl', '-q', '-w', ...settings]);
  }

  private async build(): Promise<void> {
    const { plan } = this;
    for (const ns of this.namespaces) {
      await runOk(['ip', 'netns', 'add', ns]);
      this.created.push(ns);
      // No forwarding (a centre is an end host, never a transit), no IPv6 chatter on the links.
      await this.sysctl(ns, 'net.ipv4.ip_forward=0', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1');
      await this.ip(ns, 'link', 'set', 'lo', 'up');
    }
    await Promise.all(
      plan.centres.map(async (c) => {
        await this.ip(c.ns, 'addr', 'add', `${c.service}/32`, 'dev', 'lo');
        // Management: created inside both namespaces directly, never in the root one; unshaped.
        await runOk(['ip', 'link', 'add', c.mgmt.nocDev, 'netns', plan.nocNs, 'type', 'veth', 'peer', 'name', c.mgmt.dev, 'netns', c.ns]);
      }),
    );
    for (const c of plan.centres) {
      await this.ip(plan.nocNs, 'addr', 'add', `${c.mgmt.nocAddress}/30`, 'dev', c.mgmt.nocDev);
      await this.ip(plan.nocNs, 'link', 'set', c.mgmt.nocDev, 'up');
      await this.ip(c.ns, 'addr', 'add', `${c.mgmt.address}/30`, 'dev', c.mgmt.dev);
      await this.ip(c.ns, 'link', 'set', c.mgmt.dev, 'up');
    }
    for (const l of plan.links) {
      await runOk(['ip', 'link', 'add', l.a.dev, 'netns', l.a.ns, 'type', 'veth', 'peer', 'name', l.b.dev, 'netns', l.b.ns]);
    }
    await Promise.all(
      plan.centres.map(async (c) => {
        for (const e of c.ends) {
          await this.ip(c.ns, 'addr', 'add', `${e.address}/30`, 'dev', e.dev);
          await this.ip(c.ns, 'link', 'set', e.dev, 'up');
          await this.shapeEnd(c.ns, e.dev, e.link.rateMbit);
          // The peer's service address: over the direct link only, from our end of it.
          const peer = this.centre(e.peer);
          await this.ip(c.ns, 'route', 'add', `${peer.service}/32`, 'via', e.peerAddress, 'dev', e.dev, 'src', e.address);
        }
      }),
    );
    writeFileSync(join(this.runDir, 'topology.yaml'), fabricTopologyYaml(plan));
  }

  private async shapeEnd(ns: string, dev: string, rateMbit: number): Promise<void> {
    const burst = burstBytesFor(rateMbit);
    await runOk(['ip', 'netns', 'exec', ns, 'tc', 'qdisc', 'replace', 'dev', dev, 'root', 'tbf', 'rate', `${rateMbit}mbit`, 'burst', String(burst), 'latency', '50ms']);
  }

  /** Reshape a link (both ends' egress), Mbit/s. */
  async shape(a: string, b: string, rateMbit: number): Promise<void> {
    const l = this.link(a, b);
    l.rateMbit = rateMbit;
    await this.shapeEnd(l.a.ns, l.a.dev, rateMbit);
    await this.shapeEnd(l.b.ns, l.b.dev, rateMbit);
  }

  /**
   * Bytes the tbf on `centre`'s end of its link to `peer` has sent (its egress, counted at dequeue,
   * so at most the shaped rate over any interval plus one bucket), and the bucket it was given.
   */
  async shapedSent(centre: string, peer: string): Promise<{ bytes: number; burstBytes: number }> {
    const l = this.link(centre, peer);
    const end = l.a.centre === centre ? l.a : l.b;
    const q = (JSON.parse(await runOk(['ip', 'netns', 'exec', end.ns, 'tc', '-s', '-j', 'qdisc', 'show', 'dev', end.dev, 'root'])) as { kind: string; bytes: number }[])[0];
    if (q?.kind !== 'tbf') throw new Error(`${centre}->${peer}: root qdisc is ${q?.kind ?? 'missing'}, not tbf`);
    return { bytes: q.bytes, burstBytes: burstBytesFor(l.rateMbit) };
  }

  /** The tbf on one end, as tc prints it. */
  async qdisc(centre: string, peer: string): Promise<string> {
    const l = this.link(centre, peer);
    const end = l.a.centre === centre ? l.a : l.b;
    return (await runOk(['ip', 'netns', 'exec', end.ns, 'tc', 'qdisc', 'show', 'dev', end.dev, 'root'])).trim();
  }

  get topologyFile(): string {
    return join(this.runDir, 'topology.yaml');
  }

  exec(ns: string, argv: readonly string[], opts?: { timeoutMs?: number }): Promise<ExecResult> {
    return run(['ip', 'netns', 'exec', ns, ...argv], opts);
  }

  /** Start a long-running process inside a namespace; its output goes to logs/NAME.log (and a tail in memory). */
  spawnIn(ns: string, name: string, argv: readonly string[], opts: SpawnOptions = {}): ChildProcess {
    if (this.cleaned) throw new Error('fabric already cleaned up');
    // Own process group: a terminal's Ctrl-C reaches only the runner, which stops probes before the server.
    const child = spawn('ip', ['netns', 'exec', ns, ...argv], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'], detached: true, ...opts });
    const log = createWriteStream(join(this.runDir, 'logs', `${name}.log`));
    const tracked: Tracked = { name, ns, child, tail: [], log };
    const collect = (d: Buffer) => {
      log.write(d);
      for (const line of d.toString('utf8').split('\n')) {
        if (!line) continue;
        tracked.tail.push(line);
        if (tracked.tail.length > TAIL_LINES) tracked.tail.shift();
      }
    };
    child.stdout?.on('data', collect);
    child.stderr?.on('data', collect);
    child.once('error', (error) => tracked.tail.push(`spawn error: ${error.message}`));
    this.children.add(tracked);
    child.once('close', (code, signal) => {
      tracked.tail.push(`[exited ${signal ?? code}]`);
      log.end();
    });
    return child;
  }

  /** The last lines of every process's output (for failure messages). */
  tails(): string {
    return [...this.children].map((t) => `--- ${t.name} (${t.ns}, pid ${t.child.pid})\n${t.tail.slice(-15).join('\n')}`).join('\n');
  }

  private waitForOutput(child: ChildProcess, name: string, text: string, boundMs = 60_000): Promise<void> {
    return new Promise((resolve, reject) => {
      let seen = '';
      const timer = setTimeout(() => fail(new Error(`${name}: no "${text}" within ${boundMs} ms\n${this.tails()}`)), boundMs);
      const onData = (d: Buffer) => {
        seen += d.toString('utf8');
        if (seen.includes(text)) done();
      };
      const onExit = (code: number | null) => fail(new Error(`${name} exited (${code}) before "${text}"\n${this.tails()}`));
      const cleanupListeners = () => {
        clearTimeout(timer);
        child.stdout?.off('data', onData);
        child.off('exit', onExit);
      };
      const done = () => {
        cleanupListeners();
        resolve();
      };
      const fail = (e: Error) => {
        cleanupListeners();
        reject(e);
      };
      child.stdout?.on('data', onData);
      child.once('exit', onExit);
    });
  }

  /** Start relays, the server (noc), the dashboard socket forwarder (noc) and one probe per centre. */
  async start(): Promise<void> {
    const { plan } = this;
    const bin = join(repoRoot, 'bin', 'citymesh.js');
    if (!existsSync(join(repoRoot, 'dist', 'cli', 'main.js'))) throw new Error('dist/ is missing: build first (npm run build, or npx tsc -p tsconfig.json)');
    this.child = await childEntry();
    const node = process.execPath;
    const scheduling = this.options.scheduling ?? 'nice';
    const relayPrio = scheduling === 'nice' ? ['nice', '-n', '-10'] : [];
    const probePrio = relayPrio;
    const seed = this.options.seed ?? randomBytes(4).readUInt32LE(0);
    const relays = plan.centres.map((c, i) => {
      const config: RelayConfig = {
        centre: c.spec.id,
        listenHost: c.service,
        udp: [{ port: plan.spec.stampPort, targetHost: LOOPBACK, targetPort: plan.spec.stampPort }],
        tcp: [{ port: plan.spec.throughputPort, targetHost: LOOPBACK, targetPort: plan.spec.throughputPort }],
        // Relays start with no delay; applyDelays() sets the injected ones (tests measure the bare base first).
        links: c.ends.map((e) => ({ peer: e.peer, peerAddress: e.peerAddress, delayUs: 0, loss: 0 })),
        controlPath: this.controlPath(c.spec.id),
        seed: (seed + i * 7919) >>> 0,
      };
      const file = join(this.runDir, `relay-${c.spec.id}.json`);
      writeFileSync(file, JSON.stringify(config, null, 2));
      const child = this.spawnIn(c.ns, `relay-${c.spec.id}`, [...relayPrio, node, this.child!.file, 'relay', file]);
      return this.waitForOutput(child, `relay ${c.spec.id}`, 'relay ready');
    });
    await Promise.all(relays);
    const server = this.spawnIn(plan.nocNs, 'server', [
      node, bin, 'server', '--config', this.topologyFile, '--data-dir', join(this.runDir, 'data'),
      '--host', ANY, '--port', String(plan.serverPort), '--log-level', this.options.logLevel ?? 'warn',
    ]);
    await this.waitForOutput(server, 'server', 'citymesh server:', 120_000);
    const fwd = this.spawnIn(plan.nocNs, 'dashboard-socket', [node, this.child.file, 'forward', `unix:${this.socketPath}`, `${LOOPBACK}:${plan.serverPort}`]);
    await this.waitForOutput(fwd, 'dashboard socket forwarder', 'forward ready');
    for (const c of plan.centres) {
      this.spawnIn(c.ns, `probe-${c.spec.id}`, [
        ...probePrio, node, bin, 'probe', '--server', `ws://${c.mgmt.nocAddress}:${plan.serverPort}/v1/probe`, '--centre', c.spec.id,
        '--spool-dir', join(this.runDir, 'spool', c.spec.id), '--log-level', this.options.logLevel ?? 'warn',
      ], { env: { ...process.env, CITYMESH_TOKEN: c.token } });
    }
  }

  controlPath(centre: string): string {
    return join(this.runDir, `relay-${centre}.sock`);
  }

  private async control(centre: string, req: ControlRequest): Promise<RelayLinkState[]> {
    const res = await relayControl(this.controlPath(centre), req);
    if (!res.ok) throw new Error(`relay ${centre}: ${res.error}`);
    return res.links ?? [];
  }

  /** Set delay and/or loss of a link (both relays, so both directions of measurement). */
  async setLink(a: string, b: string, settings: { delayUs?: number; loss?: number }): Promise<void> {
    await this.control(a, { op: 'set', peer: b, ...settings });
    await this.control(b, { op: 'set', peer: a, ...settings });
  }

  /** Every link's delay from the coordinates (the plan's delayUs). */
  async applyDelays(): Promise<void> {
    for (const l of this.plan.links) await this.setLink(l.a.centre, l.b.centre, { delayUs: l.delayUs });
  }

  /** Black-hole a link (both directions, STAMP dropped, TCP held) for [fromMs, toMs) wall-clock time. */
  async blackhole(a: string, b: string, fromMs: number, toMs: number): Promise<void> {
    await this.control(a, { op: 'blackhole', peer: b, fromMs, toMs });
    await this.control(b, { op: 'blackhole', peer: a, fromMs, toMs });
  }

  /** The relay counters for src measuring dst (held at dst's relay). */
  async counters(src: string, dst: string): Promise<DirectionCounters> {
    const links = await this.control(dst, { op: 'get' });
    const l = links.find((x) => x.peer === src);
    if (!l) throw new Error(`relay ${dst} has no link to ${src}`);
    return { src, dst, request: l.counters.in, reply: l.counters.out };
  }

  /** Call the API from the root namespace, through the Unix socket, as the operator. */
  api<T>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; body: T }> {
    return new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const req = request(
        {
          socketPath: this.socketPath, path, method,
          headers: { authorization: `Bearer ${this.plan.operatorToken}`, ...(payload ? { 'content-type': 'application/json' } : {}) },
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (text += d));
          res.on('end', () => {
            try {
              resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as T });
            } catch {
              reject(new Error(`${method} ${path}: ${res.statusCode} ${text.slice(0, 200)}`));
            }
          });
        },
      );
      req.setTimeout(30_000, () => req.destroy(new Error(`${method} ${path}: no answer within 30 s`)));
      req.on('error', reject);
      req.end(payload);
    });
  }

  /** A 127.0.0.1 listener in this (root) namespace that forwards to the dashboard's Unix socket. */
  async rootBridge(port: number, host = LOOPBACK): Promise<Forwarder> {
    const fwd = await startForwarder({ host, port }, { path: this.socketPath });
    this.extraCleanup.push(() => fwd.close());
    return fwd;
  }

  /** Structural proof that the fabric is sealed off from the root namespace. */
  async isolation(): Promise<IsolationReport> {
    const mine = new Set(this.namespaces);
    const rootLinks = JSON.parse(await runOk(['ip', '-j', '-d', 'link', 'show'])) as IpLink[];
    const rootIds = JSON.parse((await runOk(['ip', '-j', 'netns', 'list-id'])) || '[]') as { nsid: number; name?: string }[];
    const rootNsName = new Map(rootIds.map((x) => [x.nsid, x.name ?? null]));
    const rootInterfacesIntoFabric = rootLinks
      .filter((l) => l.link_netnsid !== undefined && mine.has(rootNsName.get(l.link_netnsid) ?? ''))
      .map((l) => l.ifname);
    const rootAddrs = JSON.parse(await runOk(['ip', '-j', '-4', 'addr', 'show'])) as { ifname: string; addr_info: { local: string }[] }[];
    const rootFabricAddresses = rootAddrs.flatMap((a) => a.addr_info.filter((i) => inFabricRange(i.local)).map((i) => `${a.ifname} ${i.local}`));
    const veths: IsolationReport['veths'] = [];
    for (const ns of this.namespaces) {
      const links = JSON.parse(await runOk(['ip', '-n', ns, '-j', '-d', 'link', 'show'])) as IpLink[];
      const ids = JSON.parse((await runOk(['ip', '-n', ns, '-j', 'netns', 'list-id'])) || '[]') as { nsid: number; name?: string }[];
      const names = new Map(ids.map((x) => [x.nsid, x.name ?? null]));
      for (const l of links) {
        if (l.linkinfo?.info_kind !== 'veth') continue;
        veths.push({ ns, dev: l.ifname, peerNs: l.link_netnsid === undefined ? ns : (names.get(l.link_netnsid) ?? null) });
      }
    }
    const strayRoutes: string[] = [];
    const forwarding: string[] = [];
    for (const ns of this.namespaces) {
      const routes = JSON.parse(await runOk(['ip', '-n', ns, '-j', '-4', 'route', 'show', 'table', 'all'])) as { dst: string; dev?: string; type?: string }[];
      const devs = new Set((JSON.parse(await runOk(['ip', '-n', ns, '-j', 'link', 'show'])) as IpLink[]).map((l) => l.ifname));
      for (const r of routes) if (r.dst === 'default' || (r.dev !== undefined && !devs.has(r.dev))) strayRoutes.push(`${ns}: ${r.type ?? ''} ${r.dst} dev ${r.dev}`);
      if ((await this.exec(ns, ['sysctl', '-n', 'net.ipv4.ip_forward'])).stdout.trim() !== '0') forwarding.push(ns);
    }
    const processes: IsolationReport['processes'] = [];
    for (const t of this.children) {
      if (t.child.pid === undefined || t.child.exitCode !== null || t.child.signalCode !== null) continue;
      const r = await run(['ip', 'netns', 'identify', String(t.child.pid)]);
      processes.push({ name: t.name, pid: t.child.pid, ns: r.stdout.trim() || null });
    }
    return {
      rootInterfaces: rootLinks.map((l) => l.ifname),
      rootInterfacesIntoFabric,
      rootFabricAddresses,
      veths,
      strayVeths: veths.filter((v) => v.peerNs === null || !mine.has(v.peerNs)),
      processes,
      strayProcesses: processes.filter((p) => p.ns === null || !mine.has(p.ns)),
      strayRoutes,
      forwarding,
    };
  }

  /** Bytes through all veths of the fabric (rx + tx, every end). */
  async fabricBytes(): Promise<number> {
    let total = 0;
    for (const ns of this.namespaces) {
      const links = JSON.parse(await runOk(['ip', '-n', ns, '-j', '-s', 'link', 'show'])) as (IpLink & { stats64?: { rx: { bytes: number }; tx: { bytes: number } } })[];
      for (const l of links) if (l.ifname !== 'lo' && l.stats64) total += l.stats64.rx.bytes + l.stats64.tx.bytes;
    }
    return total;
  }

  /** Stop the probes (they flush what they measured), then everything else. */
  async stop(): Promise<void> {
    const probes = [...this.children].filter((t) => t.name.startsWith('probe-'));
    await Promise.all(probes.map((t) => terminate(t.child, 15_000)));
    const server = [...this.children].filter((t) => t.name === 'server');
    await Promise.all(server.map((t) => terminate(t.child, 15_000)));
    await Promise.all([...this.children].map((t) => terminate(t.child, 5000)));
  }

  /** End every process of the run, delete its namespaces and run directory. Safe to call twice. */
  async cleanup(): Promise<void> {
    if (this.cleaned) return;
    this.cleaned = true;
    for (const f of this.extraCleanup.splice(0)) await f().catch(() => undefined);
    await Promise.all([...this.children].map((t) => terminate(t.child, 3000)));
    for (const ns of this.created) {
      // Anything still inside (an iperf3 a killed probe started) belongs to this run.
      const pids = (await run(['ip', 'netns', 'pids', ns])).stdout.split(/\s+/).filter(Boolean).map(Number);
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone already
        }
      }
      await run(['ip', 'netns', 'del', ns]).catch(() => undefined);
    }
    this.created.length = 0;
    await this.child?.remove().catch(() => undefined);
    if (!this.options.keepRunDir) rmSync(this.runDir, { recursive: true, force: true });
    process.off('exit', this.onExit);
  }

  /** Last resort on process exit: synchronous, by pid and by name. */
  private cleanupSync(): void {
    if (this.cleaned) return;
    this.cleaned = true;
    for (const t of this.children) if (t.child.pid !== undefined && t.child.exitCode === null) t.child.kill('SIGKILL');
    for (const ns of this.created) {
      const pids = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout?.split(/\s+/).filter(Boolean) ?? [];
      for (const pid of pids) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          // gone
        }
      }
      spawnSync('ip', ['netns', 'del', ns]);
    }
    if (!this.options.keepRunDir) rmSync(this.runDir, { recursive: true, force: true });
  }
}

interface IpLink {
  ifname: string;
  link_netnsid?: number;
  linkinfo?: { info_kind?: string };
}

function terminate(child: ChildProcess, graceMs: number): Promise<void> {
  return new Promise((resolve) => {
    if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return resolve();
    const hard = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('close', () => {
      clearTimeout(hard);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

/**
 * Remove what crashed runs left behind: namespaces named `cmfab-p<pid>-...`
 * (and the processes inside them) and run directories, for every pid that is
 * no longer alive (`force`: also for live ones). Returns what it removed.
 */
export async function cleanupLeftovers(opts: { force?: boolean } = {}): Promise<{ removed: string[]; skipped: string[] }> {
  const removed: string[] = [];
  const skipped: string[] = [];
  const alive = (pid: number) => {
    if (pid === process.pid) return true;
    try {
      process.kill(pid, 0);
      return true;
    } catch (error) {
      return (error as NodeJS.ErrnoException).code === 'EPERM';
    }
  };
  const list = (await runOk(['ip', 'netns', 'list'])).split('\n').map((l) => l.split(/\s+/)[0]!).filter((n) => n.startsWith(NS_PREFIX));
  for (const ns of list) {
    const m = NS_PATTERN.exec(ns);
    if (m && alive(Number(m[1])) && !opts.force) {
      skipped.push(`${ns} (run pid ${m[1]} is alive)`);
      continue;
    }
    const pids = (await run(['ip', 'netns', 'pids', ns])).stdout.split(/\s+/).filter(Boolean).map(Number);
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    await run(['ip', 'netns', 'del', ns]);
    removed.push(`namespace ${ns}${pids.length ? ` (ended ${pids.length} process(es): ${pids.join(' ')})` : ''}`);
  }
  for (const name of readdirSync(tmpdir())) {
    const m = /^citymesh-fabric-p(\d+)-[0-9a-f]+-/.exec(name);
    if (!m) continue;
    if (alive(Number(m[1])) && !opts.force) {
      skipped.push(`${join(tmpdir(), name)} (run pid ${m[1]} is alive)`);
      continue;
    }
    rmSync(join(tmpdir(), name), { recursive: true, force: true });
    removed.push(`directory ${join(tmpdir(), name)}`);
  }
  return { removed, skipped };
}

/** The root namespace's interface byte counters, from /sys/class/net (read from this, the root, namespace). */
export function rootCounters(): Map<string, { rx: number; tx: number }> {
  const out = new Map<string, { rx: number; tx: number }>();
  for (const name of readdirSync('/sys/class/net')) {
    try {
      const read = (f: string) => Number(readFileSync(join('/sys/class/net', name, 'statistics', f), 'utf8'));
      out.set(name, { rx: read('rx_bytes'), tx: read('tx_bytes') });
    } catch {
      // interface vanished meanwhile
    }
  }
  return out;
}

/** The tbf bucket of a link shaped to `rateMbit`: max(64 KiB, 2 ms at the rate). */
function burstBytesFor(rateMbit: number): number {
  return Math.round(Math.max(64 * 1024, (rateMbit * 1e6) / 8 * 0.002));
}
