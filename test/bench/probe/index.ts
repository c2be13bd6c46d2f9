/**
 * Probe cost and precision.
 *
 * - Precision: STAMP RTT (reflector and sender as separate `citymesh`
 *   processes, as deployed) against a minimal C sender/reflector with kernel
 *   timestamps at both ends (kts-echo.c, the reference), the kernel's `ping`, `fping` and `irtt`
 *   on the same path, on loopback and on a veth pair between two namespaces,
 *   quiet and with two CPU-bound processes beside it (median and p99 each);
 *   a bare Node UDP echo shows what any user-space timestamp pays. Rounds
 *   alternate between the tools so drift hits them alike. Reflector CPU per
 *   1,000 packets against ping's.
 * - Hostile datagrams at the native reflector (raw socket, root): counts by
 *   kind, crashes, loops, amplification.
 * - Cost: a real probe process (`citymesh probe`) sending 10 packets/s to each
 *   of 20 peers, plan from a real server; its CPU from /proc.
 * - Schedule jitter: the peers' reflectors record each packet's T1 (the
 *   sender's own send timestamp, carried in the packet); lateness of packet i
 *   = (T1_i − T1_0) − i × interval within each train.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseTopology } from '../../../topology/index.js';
import {
  decodeErrorEstimate, decodeSenderPacket, decodeTimestamp, encodeErrorEstimate, encodeReflectorPacket, STAMP_PACKET_SIZE, unixNsToNtp,
} from '../../../probes/engines/stamp/codec.js';
import { nowNs } from '../../../probes/engines/stamp/clock.js';
import { createNetnsPair, netnsUnavailable, repoRoot, run as runArgv } from '../../helpers/netns.js';
import { missingCommand } from '../../helpers/requirements.js';
import { buildCProgram } from '../../helpers/c-program.js';
import { startTestServer, testTopology } from '../../helpers/stack.js';
import { cpuTimesOf, size, sleep, threadCpuOf } from '../lib/env.js';
import { emit, note } from '../lib/figures.js';
import { median, percentile } from '../lib/stats.js';
import { formatSummary, summarise, type Profile } from '../lib/profile.js';

const B = 'probe';
const BIN = join(repoRoot, 'bin', 'citymesh.js');
const PACKETS = size(300, 40);
const ROUNDS = size(2, 1);
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

/** Two CPU-bound processes beside the measurement (a busy compute-centre host on this 2-core machine). */
function busy(): () => void {
  const hogs = [0, 1].map(() => spawn('sh', ['-c', 'while :; do :; done'], { stdio: 'ignore' }));
  return () => hogs.forEach((h) => h.kill('SIGKILL'));
}

const fmt = (x: number | null) => (x === null ? '-' : x.toFixed(0));

/**
 * STAMP (reflector and sender as separate `citymesh` processes, as deployed)
 * against kernel `ping`, `fping` and `irtt` on the same path, rounds
 * interleaved so drift hits them alike; quiet, then with two busy processes.
 */
async function precision(path: string, target: string, exec: Exec, spawnAt: Spawn): Promise<void> {
  const stampPort = 28_000 + Math.floor(Math.random() * 1000);
  const echoPort = stampPort + 1000;
  const irttPort = stampPort + 2000;
  const reflector = spawnAt(['node', BIN, 'reflect', '--port', String(stampPort), '--host', target]);
  const echo = spawnAt(['node', '-e', ECHO_SERVER, String(echoPort), target]);
  const haveIrtt = !missingCommand('irtt', 'irtt');
  const haveFping = !missingCommand('fping', 'fping');
  const irtt = haveIrtt ? spawnAt(['irtt', 'server', '-b', `${target}:${irttPort}`]) : null;
  const refPort = stampPort + 3000;
  const reference = buildCProgram(join(repoRoot, 'test', 'bench', 'probe', 'kts-echo.c'), 'the kernel-timestamped reference');
  if (!reference.ok) note(B, `kernel-timestamped reference skipped: ${reference.reason}`);
  const refReflector = reference.ok ? spawnAt([reference.path, 'reflect', target, String(refPort)]) : null;
  try {
    await Promise.all([waitForLine(reflector, 'listening'), waitForLine(echo, 'listening'), ...(refReflector ? [waitForLine(refReflector, 'listening')] : [])]);
    for (const loaded of [false, true]) {
      const cond = loaded ? 'loaded' : 'quiet';
      const stop = loaded ? busy() : () => undefined;
      const rtts: Record<string, number[]> = { stamp: [], ping: [], fping: [], irtt: [], bare: [], reference: [] };
      let reflectorCpu = 0;
      let pingCpu = 0;
      try {
        for (let r = 0; r < ROUNDS; r++) {
          const cpu0 = cpuTimesOf(reflector.pid!);
          const s = await exec(['node', BIN, 'measure', 'stamp', '--target', `${target}:${stampPort}`, '--count', String(PACKETS), '--interval-ms', '10', '--json']);
          const cpu1 = cpuTimesOf(reflector.pid!);
          if (cpu0 && cpu1) reflectorCpu += cpu1.user + cpu1.system - cpu0.user - cpu0.system;
          for (const t of JSON.parse(s.stdout) as { rttsUs: number[] }[]) rtts.stamp!.push(...t.rttsUs);
          // `times` prints the shell's children's CPU: ping's own cost per packet.
          const p = await exec(['bash', '-c', `ping -n -c ${PACKETS} -i 0.01 ${target}; times`]);
          for (const m of p.stdout.matchAll(/time=([\d.]+) ms/g)) rtts.ping!.push(Number(m[1]) * 1000);
          const t = /\n(\d+)m([\d.]+)s (\d+)m([\d.]+)s\s*$/.exec(p.stdout.trim());
          if (t) pingCpu += Number(t[1]) * 60 + Number(t[2]) + Number(t[3]) * 60 + Number(t[4]);
          if (haveFping) {
            const f = await exec(['fping', '-C', String(PACKETS), '-p', '10', '-q', target]);
            for (const m of (f.stderr + f.stdout).split(':')[1]?.trim().split(/\s+/) ?? []) if (m !== '-') rtts.fping!.push(Number(m) * 1000);
          }
          if (irtt) {
            const out = `/tmp/citymesh-bench-irtt-${process.pid}.json`;
            const c = await exec(['irtt', 'client', '-i', '10ms', '-d', `${(PACKETS * 10) / 1000}s`, '-Q', '-o', out, `${target}:${irttPort}`]);
            try {
              const j = JSON.parse(readFileSync(out, 'utf8')) as { round_trips: Array<{ lost: string; delay?: { rtt?: number } }> };
              for (const rt of j.round_trips) if (rt.lost === 'false' && rt.delay?.rtt) rtts.irtt!.push(rt.delay.rtt / 1000);
            } catch {
              note(B, `irtt round skipped: ${(c.stderr || c.stdout).trim().split('\n')[0] ?? 'no output'}`);
            }
            rmSync(out, { force: true });
          }
          if (reference.ok) {
            const r = await exec([reference.path, 'send', target, String(refPort), String(PACKETS), '10000']);
            for (const line of r.stdout.split('\n')) if (line.trim()) rtts.reference!.push(Number(line));
          }
          if (!loaded) {
            const e = await exec(['node', '-e', ECHO_CLIENT, String(PACKETS), String(echoPort), target]);
            rtts.bare!.push(...(JSON.parse(e.stdout) as number[]));
          }
        }
      } finally {
        stop();
      }
      const med = (k: string) => median(rtts[k]!);
      const p99 = (k: string) => percentile(rtts[k]!, 0.99);
      note(B, `${path}, ${cond}${loaded ? ' (two CPU-bound processes beside it)' : ''}: median / p99 µs over ${PACKETS * ROUNDS} packets 10 ms apart each: ` +
        `STAMP ${fmt(med('stamp'))} / ${fmt(p99('stamp'))} (${rtts.stamp!.length}), ` +
        `kernel-timestamped C reference ${reference.ok ? `${fmt(med('reference'))} / ${fmt(p99('reference'))}` : 'not built'}, ping ${fmt(med('ping'))} / ${fmt(p99('ping'))}, ` +
        `fping ${haveFping ? `${fmt(med('fping'))} / ${fmt(p99('fping'))}` : 'not installed'}, irtt ${irtt ? `${fmt(med('irtt'))} / ${fmt(p99('irtt'))}` : 'not installed'}` +
        `${loaded ? '' : `, bare Node UDP echo ${fmt(med('bare'))} / ${fmt(p99('bare'))}`}`);
      const ms = med('stamp');
      const mp = med('ping');
      emit({ name: `probe.stamp_minus_ping.${path}.${cond}`, value: ms !== null && mp !== null ? ms - mp : null, unit: 'µs', better: 'lower', target: { op: '<=', value: 0 },
        note: 'median STAMP RTT − median kernel ping RTT: kernel timestamps must do at least as well as ping\'s user-space send time' });
      emit({ name: `probe.stamp_rtt_median.${path}.${cond}`, value: ms, unit: 'µs', better: 'lower', ceiling: mp, note: 'ceiling = kernel ping on the same path' });
      emit({ name: `probe.stamp_rtt_p99.${path}.${cond}`, value: p99('stamp'), unit: 'µs', better: 'lower', ceiling: p99('ping'),
        target: { op: '<=', value: loaded ? 500 : 200 }, note: 'ceiling = kernel ping p99 on the same path' });
      emit({ name: `probe.ping_rtt_p99.${path}.${cond}`, value: p99('ping'), unit: 'µs', better: 'lower' });
      if (reference.ok) {
        emit({ name: `probe.stamp_rtt_median_vs_reference.${path}.${cond}`, value: ms, unit: 'µs', better: 'lower', ceiling: med('reference'),
          note: 'ceiling = a minimal C sender and reflector with kernel software timestamps at both ends (test/bench/probe/kts-echo.c)' });
        emit({ name: `probe.stamp_rtt_p99_vs_reference.${path}.${cond}`, value: p99('stamp'), unit: 'µs', better: 'lower', ceiling: p99('reference') });
      }
      if (haveFping) emit({ name: `probe.fping_rtt_median.${path}.${cond}`, value: med('fping'), unit: 'µs', better: 'lower', ceiling: mp });
      if (irtt) emit({ name: `probe.irtt_rtt_median.${path}.${cond}`, value: med('irtt'), unit: 'µs', better: 'lower', ceiling: mp, note: 'irtt (Go, user-space timestamps)' });
      if (!loaded) emit({ name: `probe.node_udp_echo_rtt_median.${path}`, value: med('bare'), unit: 'µs', better: 'lower', ceiling: mp, note: 'a 44-byte Node UDP echo, no STAMP code: what any JavaScript timestamp pays' });
      const stampPackets = rtts.stamp!.length;
      const perK = (cpu: number, n: number) => (n > 0 ? (cpu / n) * 1000 : null);
      emit({ name: `probe.reflector_cpu_per_1000.${path}.${cond}`, value: perK(reflectorCpu, stampPackets), unit: 's CPU', better: 'lower',
        ceiling: perK(pingCpu, rtts.ping!.length), note: 'the `citymesh reflect` process per 1,000 packets reflected; ceiling = the ping process per 1,000 echoes (10 ms /proc ticks: coarse)' });
    }
  } finally {
    reflector.kill('SIGTERM');
    echo.kill('SIGTERM');
    refReflector?.kill('SIGTERM');
    irtt?.kill('SIGTERM');
  }
}

/** Hostile datagrams against the native reflector: counts by kind, crashes, loops, amplification. */
async function hostile(): Promise<void> {
  if (process.getuid?.() !== 0) {
    note(B, 'hostile datagrams skipped: raw sockets need root');
    return;
  }
  const { StampReflector } = await import('../../../probes/engines/stamp/reflector.js');
  const A = '127.0.41.1';
  const B2 = '127.0.41.2';
  const SINK = '127.0.41.9';
  const policy = { allowAny: true, allow: [], denyPorts: [], ratePps: 5000, burst: 1000 };
  const a = await StampReflector.listen({ port: 0, host: A, policy });
  const b = await StampReflector.listen({ port: 0, host: B2, policy });
  const sink = createSocket('udp4');
  let replyBytes = 0;
  sink.on('message', (m) => (replyBytes += m.length));
  await new Promise<void>((r) => sink.bind(0, SINK, r));
  try {
    const pa = a.address().port;
    const pb = b.address().port;
    const sp = sink.address().port;
    const kinds = [
      { what: 'source port 0', src: SINK, sport: 0, dst: A, dport: pa, size: 44, fill: 'sender', count: 100 },
      { what: 'sizes 0..43', src: SINK, sport: sp, dst: A, dport: pa, size: 0, fill: 'zero', count: 1, sizes: Array.from({ length: 44 }, (_, i) => i) },
      { what: 'random content 44..1400 octets', src: SINK, sport: sp, dst: A, dport: pa, size: 700, fill: 'random', count: 200 },
      { what: 'valid, 44..65000 octets', src: SINK, sport: sp, dst: A, dport: pa, size: 65_000, fill: 'sender', count: 5 },
      { what: 'spoofed from reflector B', src: B2, sport: pb, dst: A, dport: pa, size: 44, fill: 'sender', count: 100 },
      { what: 'from A to itself', src: A, sport: pa, dst: A, dport: pa, size: 44, fill: 'sender', count: 100 },
    ];
    const raw = kinds.flatMap(({ what: _what, sizes, ...k }) => (sizes ? sizes.map((size) => ({ ...k, size })) : [k]));
    const r = spawnSync('python3', [join(repoRoot, 'test', 'interop', 'raw_udp.py')], { input: JSON.stringify(raw), encoding: 'utf8' });
    const sent = Number(r.stdout.trim());
    const requestBytes = 5 * 65_000;
    const deadline = Date.now() + 20_000;
    while (a.stats().received < sent && Date.now() < deadline) await sleep(100);
    await sleep(200); // replies in flight to the sink
    const before = [a.stats().received, b.stats().received];
    const probe = createSocket('udp4');
    await new Promise<void>((res) => probe.bind(0, '127.0.0.1', res));
    for (const [r2, host] of [[a, A], [b, B2]] as const) {
      const got = new Promise((res) => probe.once('message', res));
      probe.send(encodeSenderPacketForBench(), r2.address().port, host);
      await got;
    }
    probe.close();
    const loops = a.stats().received - before[0]! - 1 + (b.stats().received - before[1]! - 1);
    const sa = a.stats();
    note(B, `hostile: ${sent} datagrams of ${kinds.length} kinds (${kinds.map((k) => k.what).join('; ')}) at the native reflector A; ` +
      `A received ${sa.received}, reflected ${sa.reflected}, dropped ${JSON.stringify(Object.fromEntries(Object.entries(sa.drops).filter(([, n]) => n > 0)))}; ` +
      `B (the spoofed source) received ${b.stats().received - 1} replies and reflected ${b.stats().reflected - 1}`);
    emit({ name: 'probe.hostile_datagrams_sent', value: sent, unit: 'datagrams', better: 'higher' });
    emit({ name: 'probe.hostile_crashes', value: 0, unit: 'crashes', better: 'lower', target: { op: '<=', value: 0 }, note: 'the reflectors answered a sentinel afterwards' });
    emit({ name: 'probe.hostile_loops', value: loops, unit: 'extra datagrams', better: 'lower', target: { op: '<=', value: 0 }, note: 'counters moved by more than the sentinel after the attack' });
    emit({ name: 'probe.hostile_amplification', value: replyBytes / requestBytes, unit: 'reply/request bytes', better: 'lower', target: { op: '<=', value: 1 },
      note: 'bytes the sink received / bytes of the valid requests sent from it' });
  } finally {
    sink.close();
    await a.close();
    await b.close();
  }
}

function encodeSenderPacketForBench(): Buffer {
  const b = Buffer.alloc(44);
  b.writeUInt32BE(1, 0);
  return b;
}

interface Sent { seq: number; t1: bigint }

/** A peer's reflector (same replies as probes/engines/stamp/reflector.ts) that also records every T1 it is sent. */
function recordingReflector(host: string, port: number, log: Map<string, Sent[]>): Promise<Socket> {
  const socket = createSocket('udp4');
  const ee = encodeErrorEstimate({ synchronized: false, errorSeconds: 1 });
  socket.on('message', (msg, rinfo) => {
    const t2 = nowNs();
    const req = decodeSenderPacket(msg);
    const key = `${host}<${rinfo.address}:${rinfo.port}`;
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
    // Connect, plan, then JIT warm-up: the optimising compiler is still at work on the train path for
    // the first ~20 s, a cost a probe that runs for months pays once (its steady state is the figure).
    await sleep(size(25_000, 3_000));
    if (profileMs) {
      await sleep(profileMs);
      return;
    }
    log.clear();
    const t0 = cpuTimesOf(probe.pid!);
    const threads0 = threadCpuOf(probe.pid!);
    await sleep(CPU_WINDOW_MS);
    const t1 = cpuTimesOf(probe.pid!);
    const threads1 = threadCpuOf(probe.pid!);
    if (t0 === null || t1 === null) throw new Error('the probe process ended early');
    const cpu0 = t0.user + t0.system;
    const cpu1 = t1.user + t1.system;
    const sysShare = (t1.system - t0.system) / Math.max(1e-9, cpu1 - cpu0);
    let packets = 0;
    for (const l of log.values()) packets += l.length;
    const senders = new Set([...log.keys()].map((k) => k.split('<')[1]!.split(':')[0]));
    note(B, `recording reflectors: ${log.size} flows from ${[...senders].join(', ')}; packets per flow ${[...log.values()].map((l) => l.length).sort((a, b) => a - b).join(' ')}`);
    const pps = packets / (CPU_WINDOW_MS / 1000);
    const pct = ((cpu1 - cpu0) / (CPU_WINDOW_MS / 1000)) * 100;
    note(B, `probe process (citymesh probe, real server, spool on disk, batches every 2 s): ${pps.toFixed(0)} packets/s to ${PEERS} peers ` +
      `(trains of ${count} packets ${INTERVAL_MS} ms apart every second), ${pct.toFixed(2)} % of one core over ${CPU_WINDOW_MS / 1000} s, ` +
      `${(sysShare * 100).toFixed(0)} % of it in the kernel (on loopback the kernel also delivers each packet to the reflector inside the sender's send call)`);
    const byThread = [...threads1]
      .map(([name, cpu]) => [name, ((cpu - (threads0.get(name) ?? 0)) / (CPU_WINDOW_MS / 1000)) * 100] as const)
      .filter(([, pctOf]) => pctOf > 0)
      .sort((a, b) => b[1] - a[1]);
    note(B, `probe process by thread (% of one core, live threads, /proc/PID/task/TID/schedstat): ${byThread.map(([n, v]) => `${n} ${v.toFixed(2)}`).join(', ') || 'no thread used a tick'}`);
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
      const skipUs = size(25_000, 3_000) * 1000;
      if (file) for (const line of formatSummary(summarise(JSON.parse(readFileSync(join(profDir, file), 'utf8')) as Profile, skipUs))) note(B, `probe process profile (separate run under --cpu-prof, after ${skipUs / 1e6} s of warm-up): ${line}`);
      else note(B, 'probe profile: no .cpuprofile written');
    }
    rmSync(spool, { recursive: true, force: true });
    rmSync(profDir, { recursive: true, force: true });
  }
}

/** CITYMESH_BENCH_PROBE=precision,hostile,cost runs only those parts (all by default). */
const PARTS = new Set((process.env.CITYMESH_BENCH_PROBE ?? 'precision,hostile,cost').split(',').map((p) => p.trim()));

export async function run(): Promise<void> {
  if (PARTS.has('precision')) await precisionAll();
  if (PARTS.has('hostile')) await hostile();
  if (PARTS.has('cost')) {
    await probeCost(0);
    if (!process.env.CITYMESH_BENCH_SMOKE || process.env.CITYMESH_BENCH_PROFILE) await probeCost(size(15_000, 5_000));
  }
}

async function precisionAll(): Promise<void> {
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
}
