/**
 * Probe cost and precision.
 *
 * - Precision: STAMP RTT (reflector and sender as separate `citymesh`
 *   processes, as deployed) against the kernel's `ping` on the same path, on
 *   loopback and on a veth pair between two namespaces; a bare Node UDP echo
 *   on the same path shows how much of the gap any user-space timestamp pays.
 *   Rounds alternate between the three so drift hits them alike.
 * - Cost: a real probe process (`citymesh probe`) sending 10 packets/s to each
 *   of 20 peers, plan from a real server; its CPU from /proc.
 * - Schedule jitter: the peers' reflectors record each packet's T1 (the
 *   sender's own send timestamp, carried in the packet); lateness of packet i
 *   = (T1_i − T1_0) − i × interval within each train.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseTopology } from '../../../collector/index.js';
import {
  decodeErrorEstimate, decodeSenderPacket, decodeTimestamp, encodeErrorEstimate, encodeReflectorPacket, STAMP_PACKET_SIZE, unixNsToNtp,
} from '../../../probes/engines/stamp/codec.js';
import { nowNs } from '../../../probes/engines/stamp/clock.js';
import { createNetnsPair, netnsUnavailable, repoRoot, run as runArgv } from '../../helpers/netns.js';
import { missingCommand } from '../../helpers/requirements.js';
import { startTestServer, testTopology } from '../../helpers/stack.js';
import { cpuTimesOf, size, sleep } from '../lib/env.js';
import { emit, note } from '../lib/figures.js';
import { median, percentile } from '../lib/stats.js';
import { formatSummary, summarise, type Profile } from '../lib/profile.js';

const B = 'probe';
const BIN = join(repoRoot, 'bin', 'citymesh.js');
const PACKETS = size(300, 40);
const ROUNDS = size(3, 1);
const PEERS = 20;
const PER_PEER_PPS = 10;
const INTERVAL_MS = 50;
const CPU_WINDOW_MS = size(30_000, 5_000);

const ECHO_SERVER = `const s=require('dgram').createSocket('udp4');s.on('message',(m,r)=>s.send(m,r.port,r.address));s.bind(+process.argv[1],process.argv[2],()=>console.log('listening'));`;
const ECHO_CLIENT = `const s=require('dgram').createSocket('udp4');const N=+process.argv[1],P=+process.argv[2],H=process.argv[3];const out=[];let i=0,t0=0n,g;
const next=()=>{clearTimeout(g);if(i++>=N){console.log(JSON.stringify(out));s.close();return;}setTimeout(()=>{g=setTimeout(next,1000);t0=process.hrtime.bigint();s.send(Buffer.alloc(44),P,H);},10);};
s.on('message',()=>{out.push(Number(process.hrtime.bigint()-t0)/1000);next();});s.bind(0,()=>next());`;

type Exec = (argv: string[]) => Promise<{ code: number | null; stdout: string; stderr: string }>;
type Spawn = (argv: string[]) => ChildProcess;

function waitForLine(child: ChildProcess, text: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += String(d);
      if (out.includes(text)) resolve();
    });
    child.once('exit', (code) => reject(new Error(`exited (${code}) before printing "${text}"`)));
  });
}

/** Median RTTs (µs) of STAMP, ping and a bare Node UDP echo between a sender side and a reflector side. */
async function precision(path: string, target: string, exec: Exec, spawnAt: Spawn): Promise<void> {
  const stampPort = 28_000 + Math.floor(Math.random() * 1000);
  const echoPort = stampPort + 1000;
  const reflector = spawnAt(['node', BIN, 'reflect', '--port', String(stampPort), '--host', target]);
  const echo = spawnAt(['node', '-e', ECHO_SERVER, String(echoPort), target]);
  try {
    await Promise.all([waitForLine(reflector, 'listening'), waitForLine(echo, 'listening')]);
    const stamp: number[] = [];
    const ping: number[] = [];
    const bare: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const s = await exec(['node', BIN, 'measure', 'stamp', '--target', `${target}:${stampPort}`, '--count', String(PACKETS), '--interval-ms', '10', '--json']);
      for (const t of JSON.parse(s.stdout) as { rttsUs: number[] }[]) stamp.push(...t.rttsUs);
      const p = await exec(['ping', '-n', '-c', String(PACKETS), '-i', '0.01', target]);
      for (const m of p.stdout.matchAll(/time=([\d.]+) ms/g)) ping.push(Number(m[1]) * 1000);
      const e = await exec(['node', '-e', ECHO_CLIENT, String(PACKETS), String(echoPort), target]);
      bare.push(...(JSON.parse(e.stdout) as number[]));
    }
    const ms = median(stamp);
    const mp = median(ping);
    const me = median(bare);
    note(B, `${path}: medians over ${stamp.length} STAMP, ${ping.length} ping, ${bare.length} bare-echo packets (10 ms apart): ` +
      `STAMP ${ms?.toFixed(0)} µs (p99 ${percentile(stamp, 0.99)?.toFixed(0)}), ping ${mp?.toFixed(0)} µs, bare Node UDP echo ${me?.toFixed(0)} µs`);
    emit({ name: `probe.stamp_minus_ping.${path}`, value: ms !== null && mp !== null ? ms - mp : null, unit: 'µs', better: 'lower', target: { op: '<=', value: 30 },
      note: `median STAMP RTT − median kernel ping RTT; a bare Node UDP echo on the same path is ${me !== null && mp !== null ? (me - mp).toFixed(0) : '?'} µs above ping` });
    emit({ name: `probe.stamp_rtt_median.${path}`, value: ms, unit: 'µs', better: 'lower', ceiling: mp, note: 'ceiling = kernel ping on the same path' });
    emit({ name: `probe.node_udp_echo_rtt_median.${path}`, value: me, unit: 'µs', better: 'lower', ceiling: mp, note: 'user-space floor: a 44-byte Node UDP echo, no STAMP code' });
  } finally {
    reflector.kill('SIGTERM');
    echo.kill('SIGTERM');
  }
}

interface Sent { seq: number; t1: bigint }

/** A peer's reflector (same replies as probes/engines/stamp/reflector.ts) that also records every T1 it is sent. */
function recordingReflector(host: string, port: number, log: Map<string, Sent[]>): Promise<Socket> {
  const socket = createSocket('udp4');
  const ee = encodeErrorEstimate({ synchronized: false, errorSeconds: 1 });
  socket.on('message', (msg, rinfo) => {
    const t2 = nowNs();
    const req = decodeSenderPacket(msg);
    const key = `${host}<${rinfo.port}`;
    let list = log.get(key);
    if (!list) log.set(key, (list = []));
    list.push({ seq: req.seq, t1: decodeTimestamp(req.timestamp, decodeErrorEstimate(req.errorEstimate).ptp) });
    const reply = encodeReflectorPacket({
      seq: req.seq, errorEstimate: ee, receiveTimestamp: unixNsToNtp(t2), senderSeq: req.seq, senderTimestamp: req.timestamp,
      senderErrorEstimate: req.errorEstimate, senderTtl: 255, timestamp: unixNsToNtp(nowNs()),
    }, Math.max(STAMP_PACKET_SIZE, msg.length));
    socket.send(reply, rinfo.port, rinfo.address);
  });
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(port, host, () => resolve(socket));
  });
}

/** Lateness (µs) of every packet after the first of its train, against the train's own schedule. */
function lateness(log: Map<string, Sent[]>, intervalMs: number): number[] {
  const out: number[] = [];
  const intervalNs = BigInt(intervalMs * 1e6);
  for (const list of log.values()) {
    list.sort((a, b) => a.seq - b.seq);
    let first: Sent | null = null;
    let prev: Sent | null = null;
    for (const p of list) {
      if (!first || !prev || p.seq !== prev.seq + 1 || p.t1 - prev.t1 > 3n * intervalNs) first = p;
      else out.push(Number(p.t1 - first.t1 - BigInt(p.seq - first.seq) * intervalNs) / 1000);
      prev = p;
    }
  }
  return out;
}

async function probeCost(profileMs: number): Promise<void> {
  const ids = Array.from({ length: PEERS + 1 }, (_, i) => `p${String(i).padStart(2, '0')}`);
  const base = testTopology(ids, '127.0.20');
  const count = (PER_PEER_PPS * 1000) / 1000; // one train a second
  const yaml = base.yaml
    .replace(/count: 5\n {4}interval_ms: 5\n {4}timeout_ms: 300\n {4}flows: \d+/, `count: ${count}\n    interval_ms: ${INTERVAL_MS}\n    timeout_ms: 300\n    flows: 1`)
    .replace('batch_interval_ms: 300', 'batch_interval_ms: 2000');
  if (!yaml.includes(`interval_ms: ${INTERVAL_MS}`)) throw new Error('could not adapt the test topology');
  const topology = parseTopology(yaml, 'bench-probe.yaml');
  const server = await startTestServer(topology);
  const log = new Map<string, Sent[]>();
  const reflectors = await Promise.all(ids.slice(1).map((id) => recordingReflector(base.addresses[id]!, base.stampPort, log)));
  const spool = mkdtempSync(join(tmpdir(), 'citymesh-bench-spool-'));
  const profDir = mkdtempSync(join(tmpdir(), 'citymesh-bench-prof-'));
  const flags = profileMs ? ['--cpu-prof', '--cpu-prof-dir', profDir, '--cpu-prof-interval', '500'] : [];
  const probe = spawn(process.execPath, [...flags, BIN, 'probe', '--server', server.wsUrl, '--centre', ids[0]!, '--spool-dir', spool, '--log-level', 'warn'],
    { env: { ...process.env, CITYMESH_TOKEN: base.tokens[ids[0]!] }, stdio: ['ignore', 'ignore', 'inherit'] });
  try {
    await sleep(size(6_000, 3_000)); // connect, plan, JIT warm-up
    if (profileMs) {
      await sleep(profileMs);
      return;
    }
    log.clear();
    const t0 = cpuTimesOf(probe.pid!);
    await sleep(CPU_WINDOW_MS);
    const t1 = cpuTimesOf(probe.pid!);
    if (t0 === null || t1 === null) throw new Error('the probe process ended early');
    const cpu0 = t0.user + t0.system;
    const cpu1 = t1.user + t1.system;
    const sysShare = (t1.system - t0.system) / Math.max(1e-9, cpu1 - cpu0);
    let packets = 0;
    for (const l of log.values()) packets += l.length;
    const pps = packets / (CPU_WINDOW_MS / 1000);
    const pct = ((cpu1 - cpu0) / (CPU_WINDOW_MS / 1000)) * 100;
    note(B, `probe process (citymesh probe, real server, spool on disk, batches every 2 s): ${pps.toFixed(0)} packets/s to ${PEERS} peers ` +
      `(trains of ${count} packets ${INTERVAL_MS} ms apart every second), ${pct.toFixed(2)} % of one core over ${CPU_WINDOW_MS / 1000} s, ` +
      `${(sysShare * 100).toFixed(0)} % of it in the kernel (on loopback the kernel also delivers each packet to the reflector inside the sender's send call)`);
    emit({ name: 'probe.cpu_10pps_20peers', value: pct, unit: '% of one core', better: 'lower', target: { op: '<', value: 2 },
      note: `${pps.toFixed(0)} packets/s measured at the reflectors` });
    const late = lateness(log, INTERVAL_MS);
    note(B, `sender schedule: ${late.length} packets; lateness against the train's schedule p50 ${percentile(late, 0.5)?.toFixed(0)} µs, ` +
      `p99 ${percentile(late, 0.99)?.toFixed(0)} µs, max ${late.length ? Math.max(...late).toFixed(0) : '-'} µs (T1 as the sender stamped it; ${PEERS} trains start together each second)`);
    emit({ name: 'probe.schedule_jitter_p50', value: percentile(late, 0.5), unit: 'µs', better: 'lower' });
    emit({ name: 'probe.schedule_jitter_p99', value: percentile(late, 0.99), unit: 'µs', better: 'lower',
      note: 'T1 of packet i − (T1 of packet 0 + i × interval), from the timestamps the sender put in its packets' });
  } finally {
    probe.kill('SIGTERM');
    await new Promise((r) => probe.once('exit', r));
    for (const s of reflectors) s.close();
    await server.stop();
    if (profileMs) {
      const file = readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'));
      if (file) for (const line of formatSummary(summarise(JSON.parse(readFileSync(join(profDir, file), 'utf8')) as Profile))) note(B, `probe process profile (separate run under --cpu-prof): ${line}`);
      else note(B, 'probe profile: no .cpuprofile written');
    }
    rmSync(spool, { recursive: true, force: true });
    rmSync(profDir, { recursive: true, force: true });
  }
}

export async function run(): Promise<void> {
  const noPing = missingCommand('ping', 'iputils-ping');
  if (noPing) note(B, `precision figures skipped: ${noPing}`);
  else {
    const local: Exec = (argv) => runArgv(argv, { timeoutMs: 120_000 });
    const localSpawn: Spawn = (argv) => spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'ignore'], cwd: repoRoot });
    await precision('loopback', '127.0.20.250', local, localSpawn);
    const noNetns = netnsUnavailable();
    if (noNetns) note(B, `veth figures skipped: ${noNetns}`);
    else {
      const pair = await createNetnsPair();
      try {
        await precision('veth', pair.b.address, (argv) => pair.exec(pair.a, argv, { timeoutMs: 120_000 }),
          (argv) => pair.spawn(pair.b, argv, { cwd: repoRoot, stdio: ['ignore', 'pipe', 'ignore'] }));
      } finally {
        await pair.cleanup();
      }
    }
  }
  await probeCost(0);
  if (!process.env.CITYMESH_BENCH_SMOKE || process.env.CITYMESH_BENCH_PROFILE) await probeCost(size(15_000, 5_000));
}
