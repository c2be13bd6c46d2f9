/**
 * Path MTU with `tracepath -n` (Debian iputils-tracepath). Chosen over a
 * `ping -M do -s SIZE` bisection: one unprivileged process (UDP, errors read
 * through IP_RECVERR) that starts at the local MTU and lowers it each time the
 * kernel or a router reports "fragmentation needed", and says at which hop the
 * MTU dropped; a bisection needs a dozen pings, each costing a full timeout
 * when a size is silently dropped, and cannot say where. Its limit, shared by
 * every PMTUD tool: a router that filters ICMP "fragmentation needed" (a PMTU
 * black hole) goes unseen; the fast STAMP train's loss then shows the damage.
 *
 *    1?: [LOCALHOST]                      pmtu 1500
 *    1:  <router>                                              0.052ms
 *    2:  <router>                                              0.010ms pmtu 1400
 *    2:  <peer>                                                0.108ms reached
 *        Resume: pmtu 1400 hops 2 back 2
 *
 * tracepath has no per-probe timeout option (a silent hop costs it about 3 s),
 * so the run is bounded by killing it; the MTU learnt until then is kept.
 * (The real output has numeric addresses where the example shows names.)
 */
import type { PathMtuResult } from '../../../protocol/index.js';
import { clipText } from '../../../protocol/index.js';
import { lineBuffered, runTool, toolVersion } from './tools.js';

export interface TracepathParse {
  /** MTU of the local interface towards the target ("1?: [LOCALHOST] pmtu N"); null when not printed. */
  localMtu: number | null;
  /** The final path MTU: the Resume line's, else the last one reported. */
  pmtu: number | null;
  /** TTL of the first hop line that reported an MTU below the local one. */
  dropAtTtl: number | null;
  reached: boolean;
  /** The Resume (or "Too many hops") summary was printed: tracepath finished. */
  finished: boolean;
  /** Hops that answered, in order: TTL and address. */
  hops: { ttl: number; address: string | null }[];
  errors: string[];
}

const LOCAL = /^\s*\d+\?:\s+\[LOCALHOST\].*?\bpmtu (\d+)/;
const HOP = /^\s*(\d+):\s+(\S+)(.*)$/;
const RESUME = /^\s*Resume:\s+pmtu (\d+)/;
const TOO_MANY = /^\s*Too many hops:\s+pmtu (\d+)/;

export function parseTracepath(text: string): TracepathParse {
  const parsed: TracepathParse = { localMtu: null, pmtu: null, dropAtTtl: null, reached: false, finished: false, hops: [], errors: [] };
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const local = LOCAL.exec(line);
    if (local) {
      parsed.localMtu ??= Number(local[1]);
      parsed.pmtu = Number(local[1]);
      continue;
    }
    const resume = RESUME.exec(line);
    if (resume) {
      parsed.pmtu = Number(resume[1]);
      parsed.finished = true;
      continue;
    }
    const tooMany = TOO_MANY.exec(line);
    if (tooMany) {
      parsed.pmtu = Number(tooMany[1]);
      parsed.finished = true;
      continue;
    }
    const hop = HOP.exec(line);
    if (!hop) {
      parsed.errors.push(line.trim());
      continue;
    }
    const ttl = Number(hop[1]);
    const rest = `${hop[2]}${hop[3]}`;
    if (/^no reply\b/.test(rest)) {
      parsed.hops.push({ ttl, address: null });
      continue;
    }
    if (/^send failed\b/.test(rest)) {
      parsed.errors.push(`hop ${ttl}: send failed (no route to the target?)`);
      continue;
    }
    parsed.hops.push({ ttl, address: hop[2]! });
    const mtu = /\bpmtu (\d+)/.exec(hop[3]!);
    if (mtu) {
      const value = Number(mtu[1]);
      if (parsed.dropAtTtl === null && value < (parsed.localMtu ?? parsed.pmtu ?? Infinity)) parsed.dropAtTtl = ttl;
      parsed.pmtu = value;
    }
    if (/\breached\b/.test(hop[3]!)) parsed.reached = true;
  }
  return parsed;
}

export interface TracepathOptions {
  host: string;
  maxHops: number;
  timeoutMs: number;
  signal?: AbortSignal | undefined;
  /** The binary (default `tracepath` from PATH). */
  command?: string;
  /** argv run in front of it, e.g. `ip netns exec NS` (tests run it inside a namespace). */
  commandPrefix?: readonly string[];
}

export async function runTracepath(options: TracepathOptions): Promise<PathMtuResult> {
  const command = options.command ?? 'tracepath';
  if (options.host.startsWith('-')) {
    return { ok: false, error: `invalid host "${options.host}"`, tool: null, pmtu: null, dropAtTtl: null, reached: false };
  }
  const run = await runTool([...(options.commandPrefix ?? []), ...lineBuffered(), command, '-n', '-m', String(options.maxHops), options.host], { timeoutMs: options.timeoutMs, signal: options.signal, tool: command });
  if (run.failure) return { ok: false, error: run.failure, tool: null, pmtu: null, dropAtTtl: null, reached: false };
  const tool = await toolVersion(command, '-V');
  const parse = parseTracepath(run.stdout);
  const complaint = clipText([...parse.errors, run.stderr.trim()].filter(Boolean).join('; '), 500);
  let error: string | null = null;
  if (run.timedOut) error = `tracepath timed out after ${options.timeoutMs} ms; the path MTU is known only up to the last hop that answered`;
  else if (parse.pmtu === null) error = `tracepath reported no path MTU${complaint ? `: ${complaint}` : ''}`;
  else if (!parse.reached) error = `the target did not answer within ${options.maxHops} hops; the path MTU is known only up to the last hop that answered${complaint ? ` (${complaint})` : ''}`;
  return { ok: error === null, error, tool, pmtu: parse.pmtu, dropAtTtl: parse.dropAtTtl, reached: parse.reached };
}
