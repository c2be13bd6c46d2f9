/**
 * `citymesh probe --check`: is this host ready to run a probe? Each check
 * says ok, warn or fail, what it found, and for anything not ok how to fix
 * it. Every check is bounded in time, and nothing is left behind: sockets are
 * bound and closed, the spool is probed with a temporary file, and the
 * collector is asked only to authenticate (a `check` hello, which the server
 * does not count as the centre's probe connection).
 */
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { constants, existsSync, mkdtempSync, readdirSync, rmSync, statfsSync, statSync, readFileSync, writeFileSync, openSync, fsyncSync, closeSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import WebSocket from 'ws';
import { hashToken } from '../topology/index.js';
import { PROTOCOL_VERSION, type CollectorMessage, type ProbePlan } from '../protocol/index.js';
import { readClockSync } from './engines/stamp/clock.js';
import { dscpUnavailable } from './engines/stamp/dscp.js';
import { datapathStatus } from './engines/stamp/native.js';
import { detectIperf3 } from './engines/throughput/index.js';

export type CheckStatus = 'ok' | 'warn' | 'fail';

export interface CheckResult {
  check: string;
  status: CheckStatus;
  detail: string;
  /** What to do about it; present whenever status is not ok. */
  fix?: string;
}

export interface ProbeCheckOptions {
  serverUrls: readonly string[];
  centre: string | undefined;
  /** --token-file, when given; otherwise the token comes from `envToken`. */
  tokenFile: string | undefined;
  envToken: string | undefined;
  spoolDir: string;
  spoolMaxBytes: number;
  caFile: string | undefined;
  version: string;
  /** Bound for each network check (collector hello, ping), ms. */
  timeoutMs?: number;
}

/** iperf3 3.16 runs each stream in its own thread; older versions share one core, short of 100G. */
const IPERF3_THREADED = [3, 16] as const;
const DEFAULT_STAMP_PORT = 862;
const CENTRE_ID = /^[a-z][a-z0-9-]{0,31}$/;

export async function runProbeChecks(options: ProbeCheckOptions): Promise<CheckResult[]> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const token = readToken(options);
  const results: CheckResult[] = [token.result, checkCentre(options.centre)];
  const [clock, ping, iperf3, ...collectors] = await Promise.all([
    checkClock(),
    checkPing(timeoutMs),
    checkIperf3(),
    ...options.serverUrls.map((url) => checkCollector(url, { ...options, token: token.value, timeoutMs })),
  ]);
  const plan = collectors.find((c) => c.plan)?.plan ?? null;
  results.push(clock, ping, iperf3, checkDatapath(), ...(await checkPorts(plan)), checkDscp(plan), checkSpool(options.spoolDir, options.spoolMaxBytes));
  if (options.serverUrls.length === 0) {
    results.push({ check: 'collector', status: 'fail', detail: 'no collector URL given', fix: 'pass --server wss://HOST/v1/probe (repeat it, or separate URLs with commas, for several servers)' });
  }
  results.push(...collectors.map((c) => c.result));
  return results;
}

export function anyFailed(results: readonly CheckResult[]): boolean {
  return results.some((r) => r.status === 'fail');
}

/** One line per check: status, name, what was found, and the fix when there is one. */
export function formatCheckResults(results: readonly CheckResult[]): string {
  const width = Math.max(...results.map((r) => r.check.length));
  const lines = results.map((r) => `${r.status.padEnd(4)}  ${r.check.padEnd(width)}  ${r.detail}${r.fix ? `  fix: ${r.fix}` : ''}`);
  const counts = (['ok', 'warn', 'fail'] as const).map((s) => `${results.filter((r) => r.status === s).length} ${s}`).join(', ');
  return `${lines.join('\n')}\n${counts}`;
}

// ------------------------------------------------------------------ token, centre

function readToken(options: ProbeCheckOptions): { value: string | null; result: CheckResult } {
  const check = 'token';
  if (options.tokenFile) {
    const file = options.tokenFile;
    let text: string;
    let mode: number;
    try {
      mode = statSync(file).mode & 0o777;
      text = readFileSync(file, 'utf8');
    } catch (error) {
      return { value: null, result: { check, status: 'fail', detail: `cannot read --token-file ${file}: ${(error as Error).message}`, fix: `write the centre's token to ${file} (install -m 600 /dev/stdin ${file}), readable by the probe's user only` } };
    }
    const value = text.trim();
    if (!value) return { value: null, result: { check, status: 'fail', detail: `${file} is empty`, fix: `write the centre's token to ${file}` } };
    const octal = mode.toString(8).padStart(4, '0');
    if (mode & 0o044) {
      return { value, result: { check, status: 'fail', detail: `${file} is readable by ${mode & 0o004 ? 'every user' : 'its group'} (mode ${octal})`, fix: `chmod 600 ${file} (under systemd, LoadCredential= hands the service a private copy)` } };
    }
    return { value, result: { check, status: 'ok', detail: `from ${file} (mode ${octal}), sha-256 ${hashToken(value)}` } };
  }
  if (options.envToken) {
    return { value: options.envToken, result: { check, status: 'ok', detail: `from CITYMESH_TOKEN, sha-256 ${hashToken(options.envToken)}` } };
  }
  return {
    value: null,
    result: { check, status: 'fail', detail: 'no token: neither --token-file nor CITYMESH_TOKEN', fix: 'pass --token-file FILE (mode 600; under systemd: LoadCredential=token:/etc/citymesh/probe.token and --token-file ${CREDENTIALS_DIRECTORY}/token)' },
  };
}

function checkCentre(centre: string | undefined): CheckResult {
  if (!centre) return { check: 'centre', status: 'fail', detail: 'no centre id given', fix: 'pass --centre ID or set CITYMESH_CENTRE (the id of this host\'s centre in the topology)' };
  if (!CENTRE_ID.test(centre)) return { check: 'centre', status: 'fail', detail: `"${centre}" is not a centre id`, fix: 'centre ids are lower-case letters, digits or "-", starting with a letter (max 32), as in the topology' };
  return { check: 'centre', status: 'ok', detail: centre };
}

// ------------------------------------------------------------------ clock

async function checkClock(): Promise<CheckResult> {
  const [sync, daemons] = await Promise.all([readClockSync(), Promise.resolve(timeDaemons())]);
  const daemon = daemons.length ? daemons.join(', ') : 'no time daemon running';
  const bound = sync.errorSeconds < 1 ? `±${formatSeconds(sync.errorSeconds)}` : '≥ 1 s';
  if (sync.synchronized) {
    return { check: 'clock', status: 'ok', detail: `synchronised (${daemon}; read via ${sync.source}), error bound ${bound}` };
  }
  const effect = 'one-way delays will be stored as unsynchronised (round trips are unaffected)';
  if (sync.source === 'none') {
    return { check: 'clock', status: 'warn', detail: `sync state unreadable (${daemon}): ${effect}`, fix: 'install chrony (apt-get install chrony); citymesh reads `chronyc tracking`, else the kernel\'s adjtimex via python3' };
  }
  return {
    check: 'clock',
    status: 'warn',
    detail: `not synchronised (${daemon}; ${sync.detail}): ${effect}`,
    fix: daemons.length
      ? `see why ${daemons[0]} is not synchronised (chronyc sources -v / timedatectl timesync-status / ntpq -p): are its NTP servers reachable?`
      : 'install and enable a time daemon: apt-get install chrony (PTP hardware: linuxptp)',
  };
}

/** Time daemons running on this host, from /proc (works without systemd, e.g. in containers). */
function timeDaemons(): string[] {
  // /proc/PID/comm is cut at 15 characters: systemd-timesyncd shows as systemd-timesyn.
  const names: Record<string, string> = { chronyd: 'chrony', ntpd: 'ntpd', 'systemd-timesyn': 'systemd-timesyncd', ptp4l: 'ptp4l', phc2sys: 'phc2sys', openntpd: 'openntpd' };
  const found = new Set<string>();
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((p) => /^\d+$/.test(p));
  } catch {
    return [];
  }
  for (const pid of pids) {
    try {
      const daemon = names[readFileSync(`/proc/${pid}/comm`, 'utf8').trim()];
      if (daemon) found.add(daemon);
    } catch {
      // the process ended while we looked
    }
  }
  return [...found].sort();
}

function formatSeconds(s: number): string {
  if (s >= 1e-3) return `${(s * 1e3).toFixed(3)} ms`;
  return `${(s * 1e6).toFixed(1)} µs`;
}

// ------------------------------------------------------------------ tools

interface Exec {
  code: number | null;
  output: string;
  error: NodeJS.ErrnoException | null;
}

function exec(command: string, args: string[], timeoutMs: number): Promise<Exec> {
  return new Promise((done) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs });
    let output = '';
    child.stdout.on('data', (c: Buffer) => (output += c.toString('utf8')));
    child.stderr.on('data', (c: Buffer) => (output += c.toString('utf8')));
    child.once('error', (error: NodeJS.ErrnoException) => done({ code: null, output, error }));
    child.once('close', (code) => done({ code, output, error: null }));
  });
}

async function checkPing(timeoutMs: number): Promise<CheckResult> {
  const check = 'ping';
  const result = await exec('ping', ['-n', '-c', '1', '-W', String(Math.max(1, Math.ceil(timeoutMs / 2000))), '127.0.0.1'], timeoutMs);
  if (result.error?.code === 'ENOENT') {
    return { check, status: 'fail', detail: 'ping not found: the icmp engine cannot run', fix: 'apt-get install iputils-ping' };
  }
  if (result.error) return { check, status: 'fail', detail: `cannot run ping: ${result.error.message}`, fix: 'apt-get install --reinstall iputils-ping' };
  const time = /time[=<]([\d.]+) ?ms/.exec(result.output)?.[1];
  if (result.code === 0) return { check, status: 'ok', detail: `1 echo to 127.0.0.1 answered${time ? ` in ${time} ms` : ''}` };
  if (/not permitted|permission denied|socket:|capabilit/i.test(result.output)) {
    return {
      check,
      status: 'fail',
      detail: `ping may not open an ICMP socket: ${firstLine(result.output)}`,
      fix: 'give the probe CAP_NET_RAW (systemd: AmbientCapabilities=CAP_NET_RAW, as deploy/systemd/citymesh-probe.service does) or allow ICMP sockets for its group: sysctl net.ipv4.ping_group_range="0 2147483647"',
    };
  }
  return { check, status: 'fail', detail: `ping to 127.0.0.1 failed (exit ${result.code ?? 'timeout'}): ${firstLine(result.output) || 'no output'}`, fix: 'run `ping -c 1 127.0.0.1` by hand as the probe\'s user and fix what it reports' };
}

async function checkIperf3(): Promise<CheckResult> {
  const check = 'iperf3';
  const found = await detectIperf3();
  if (!found.available || !found.version) {
    return { check, status: 'warn', detail: `${found.reason ?? 'iperf3 not available'}; throughput tests will use the native engine`, fix: 'apt-get install iperf3 (3.16 or newer for 100G)' };
  }
  const [major = 0, minor = 0] = (/(\d+)\.(\d+)/.exec(found.version) ?? []).slice(1).map(Number);
  if (major < IPERF3_THREADED[0] || (major === IPERF3_THREADED[0] && minor < IPERF3_THREADED[1])) {
    return {
      check,
      status: 'warn',
      detail: `${found.version}: before 3.16 all streams share one thread, which cannot fill a 100G link`,
      fix: 'install iperf3 3.16 or newer (Debian trixie, or ESnet\'s release) on both ends of 100G links',
    };
  }
  return { check, status: 'ok', detail: `${found.version} (multi-threaded streams)` };
}

function checkDscp(plan: ProbePlan | null): CheckResult {
  const unavailable = dscpUnavailable();
  const wanted = plan?.tasks.some((t) => t.engine === 'stamp' && t.dscp > 0) ?? false;
  if (!unavailable) return { check: 'dscp', status: 'ok', detail: 'native helper loaded: STAMP packets carry the plan\'s DSCP' };
  if (!wanted) return { check: 'dscp', status: 'ok', detail: 'native helper not built, and the plan marks no STAMP packets' };
  return { check: 'dscp', status: 'warn', detail: `the plan marks STAMP packets but ${unavailable}`, fix: 'apt-get install build-essential, then npm rebuild (or npm run build:native) in the citymesh directory' };
}

/** The native STAMP datapath (kernel timestamps) or the JavaScript fallback, and why. */
function checkDatapath(): CheckResult {
  const { datapath, reason } = datapathStatus();
  if (datapath === 'native') return { check: 'stamp datapath', status: 'ok', detail: 'native: kernel receive and transmit timestamps, packets paced off the JavaScript event loop' };
  return {
    check: 'stamp datapath', status: 'warn', detail: `JavaScript fallback: ${reason}; every train will say its timestamps are "user"`,
    fix: 'apt-get install build-essential, then npm rebuild (or npm run build:native) in the citymesh directory; unset CITYMESH_STAMP_DATAPATH',
  };
}

function firstLine(text: string): string {
  return text.trim().split('\n')[0]?.trim() ?? '';
}

// ------------------------------------------------------------------ ports

/** Bind and close the reflector's UDP port (and the throughput server's TCP port) from the plan, or 862. */
async function checkPorts(plan: ProbePlan | null): Promise<CheckResult[]> {
  const host = plan?.reflector.listenAddress ?? '0.0.0.0';
  const port = plan?.reflector.port ?? DEFAULT_STAMP_PORT;
  const where = plan ? 'from the plan' : 'the default; no plan received';
  const results = [await bindCheck('reflector-port', 'udp', host, port, where)];
  if (plan?.throughputServer) {
    const t = plan.throughputServer;
    results.push(await bindCheck('throughput-port', 'tcp', t.listenAddress, t.port, 'from the plan'));
  }
  return results;
}

function bindCheck(check: string, proto: 'udp' | 'tcp', host: string, port: number, where: string): Promise<CheckResult> {
  const label = `${proto.toUpperCase()} ${host}:${port} (${where})`;
  return new Promise((done) => {
    const ok = () => done({ check, status: 'ok', detail: `${label} can be bound` });
    const failed = (error: NodeJS.ErrnoException) => done(bindFailure(check, label, port, error));
    if (proto === 'udp') {
      const socket = createSocket(host.includes(':') ? 'udp6' : 'udp4');
      socket.once('error', (error) => {
        socket.close();
        failed(error);
      });
      socket.bind(port, host, () => socket.close(ok));
    } else {
      const server = createServer();
      server.once('error', failed);
      server.listen(port, host, () => server.close(() => ok()));
    }
  });
}

function bindFailure(check: string, label: string, port: number, error: NodeJS.ErrnoException): CheckResult {
  if (error.code === 'EACCES' && port < 1024) {
    return {
      check, status: 'fail', detail: `${label}: permission denied (ports below 1024 are privileged)`,
      fix: 'give the probe CAP_NET_BIND_SERVICE (systemd: AmbientCapabilities=CAP_NET_BIND_SERVICE, as deploy/systemd/citymesh-probe.service does)',
    };
  }
  if (error.code === 'EADDRINUSE') {
    return { check, status: 'warn', detail: `${label} is in use`, fix: 'if the probe is running already this is expected; otherwise find the holder with `ss -lunp` / `ss -ltnp`' };
  }
  if (error.code === 'EADDRNOTAVAIL') {
    return { check, status: 'fail', detail: `${label}: address not configured on this host`, fix: 'correct probe.listen_address of this centre in the topology, or add the address to an interface' };
  }
  return { check, status: 'fail', detail: `${label}: ${error.message}`, fix: 'see the error above' };
}

// ------------------------------------------------------------------ spool

function checkSpool(dir: string, maxBytes: number): CheckResult {
  const check = 'spool';
  const path = resolve(dir);
  let existing = path;
  while (!existsSync(existing) && dirname(existing) !== existing) existing = dirname(existing);
  if (!statSync(existing).isDirectory()) {
    return { check, status: 'fail', detail: `${path}: ${existing} is not a directory`, fix: `choose a spool directory on local disk that survives reboots (--spool-dir; systemd: StateDirectory=)` };
  }
  const pending = existing === path ? readdirSync(path).filter((f) => f.startsWith('batch-') || f.startsWith('journal-')).length : 0;
  try {
    // What the spool does: create a file, write, fsync, remove; in a scratch directory so nothing of ours is touched.
    const scratch = mkdtempSync(join(existing, '.citymesh-check-'));
    try {
      const file = join(scratch, 'probe');
      writeFileSync(file, 'citymesh probe --check\n', { mode: 0o600 });
      const fd = openSync(file, constants.O_RDONLY);
      fsyncSync(fd);
      closeSync(fd);
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    return {
      check, status: 'fail', detail: `${existing} is not writable by this user (${e.code ?? e.message})`,
      fix: `make ${path} writable by the probe's user (chown/chmod), or point --spool-dir elsewhere (systemd: StateDirectory=citymesh-probe gives /var/lib/citymesh-probe)`,
    };
  }
  const stats = statfsSync(existing);
  const free = stats.bavail * stats.bsize;
  const state = existing === path ? `writable, ${pending} unacknowledged file(s) waiting` : `does not exist yet; ${existing} is writable, the probe will create it`;
  const detail = `${path}: ${state}; ${mib(free)} free, bound --spool-max-mb ${mib(maxBytes)}`;
  if (free < maxBytes) {
    return { check, status: 'warn', detail, fix: `free disk space or lower --spool-max-mb below ${Math.floor(free / 2 ** 20)}: a full disk loses data the bound would have kept` };
  }
  return { check, status: 'ok', detail };
}

function mib(bytes: number): string {
  return `${Math.floor(bytes / 2 ** 20)} MiB`;
}

// ------------------------------------------------------------------ collector

const TLS_ERRORS = /CERT|SSL|TLS|SELF_SIGNED|UNABLE_TO_(GET|VERIFY)|ALTNAME|EPROTO/;

async function checkCollector(
  url: string,
  o: ProbeCheckOptions & { token: string | null; timeoutMs: number },
): Promise<{ result: CheckResult; plan: ProbePlan | null }> {
  const check = `collector ${url}`;
  const result = (status: CheckStatus, detail: string, fix?: string) => ({ result: { check, status, detail, ...(fix ? { fix } : {}) }, plan: null });
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return result('fail', 'not a URL', 'give the collector as ws://HOST:PORT/v1/probe or wss://HOST/v1/probe');
  }
  if (parsed.protocol !== 'ws:' && parsed.protocol !== 'wss:') {
    return result('fail', `scheme ${parsed.protocol} is not ws: or wss:`, `use ${url.replace(/^http/, 'ws')} (the probe speaks WebSocket)`);
  }
  let ca: Buffer | undefined;
  if (o.caFile) {
    try {
      ca = readFileSync(o.caFile);
    } catch (error) {
      return result('fail', `cannot read --ca ${o.caFile}: ${(error as Error).message}`, 'give the PEM file of the CA that signed the server certificate');
    }
  }
  return new Promise((done) => {
    let stage = 'TCP connect';
    let settled = false;
    const ws = new WebSocket(url, { handshakeTimeout: o.timeoutMs, ...(ca ? { ca } : {}) });
    const finish = (status: CheckStatus, detail: string, fix?: string, plan: ProbePlan | null = null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      ws.removeAllListeners();
      ws.on('error', () => undefined);
      ws.terminate();
      done({ result: { check, status, detail, ...(fix ? { fix } : {}) }, plan });
    };
    const timer = setTimeout(() => finish('fail', `no answer within ${o.timeoutMs} ms (at ${stage})`, 'is the server up and the path open (firewall, proxy)?'), o.timeoutMs);
    ws.on('upgrade', () => (stage = 'hello'));
    ws.on('unexpected-response', (_request, response) => {
      finish('fail', `WebSocket upgrade refused: HTTP ${response.statusCode}`,
        'the URL must be the collector\'s /v1/probe endpoint, and a proxy in between must pass WebSocket upgrades');
    });
    ws.on('error', (error: NodeJS.ErrnoException) => {
      const code = error.code ?? '';
      if (TLS_ERRORS.test(code) || /certificate|self.signed|tls|ssl/i.test(error.message)) {
        const altname = code === 'ERR_TLS_CERT_ALTNAME_INVALID';
        finish('fail', `TLS: ${error.message}`, altname
          ? 'use the host name the server certificate was issued for'
          : 'pass --ca FILE (env CITYMESH_CA) with the PEM of the CA that signed the server certificate');
      } else if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
        finish('fail', `DNS: cannot resolve ${parsed.hostname} (${code})`, 'check the host name and this host\'s resolver');
      } else {
        finish('fail', `${stage}: ${error.message}`, stage === 'TCP connect'
          ? `is the server running and listening on ${parsed.host}? is the port open between here and there?`
          : 'see the error above');
      }
    });
    ws.on('open', () => {
      stage = 'hello';
      if (!o.token || !o.centre || !CENTRE_ID.test(o.centre)) {
        finish('fail', `reachable (${parsed.protocol === 'wss:' ? 'TLS and ' : ''}WebSocket upgrade ok); hello not tried: no usable ${o.token ? 'centre id' : 'token'}`, `fix the ${o.token ? 'centre' : 'token'} check above`);
        return;
      }
      ws.send(JSON.stringify({ type: 'hello', centre: o.centre, token: o.token, version: o.version, protocol: PROTOCOL_VERSION, check: true }));
    });
    ws.on('message', (data) => {
      let message: CollectorMessage;
      try {
        message = JSON.parse(String(data)) as CollectorMessage;
      } catch {
        finish('fail', 'the server answered the hello with something that is not JSON', 'is this URL a citymesh server?');
        return;
      }
      if (message.type === 'plan') {
        const engines = [...new Set(message.tasks.map((t) => t.engine))].join('+') || 'none';
        finish('ok', `token accepted for centre "${message.centre}"; plan: ${message.tasks.length} tasks (${engines}), reflector UDP ${message.reflector.port}, batches every ${message.batchIntervalMs} ms`, undefined, message);
      } else if (message.type === 'error') {
        finish('fail', `server refused the hello: ${message.code}: ${message.error}`, helloFix(message.code, o.centre!, o.token!));
      }
    });
    ws.on('close', (code, reason) => finish('fail', `server closed the connection (${code}${reason.length ? ` ${String(reason)}` : ''}) without a plan`, 'see the server\'s log for this connection'));
  });
}

function helloFix(code: string, centre: string, token: string): string {
  switch (code) {
    case 'bad_token':
      return `the server's topology does not accept this token for "${centre}": its sha-256 is ${hashToken(token)}; list it in centres[${centre}].probe.token_sha256 (or token_env), or install the right token here`;
    case 'unknown_centre':
      return `"${centre}" is not a centre in the server's topology: check --centre / CITYMESH_CENTRE`;
    case 'bad_message':
      return 'the server did not understand the hello: it may be older than this probe; upgrade the server first';
    default:
      return 'see the server\'s log';
  }
}
