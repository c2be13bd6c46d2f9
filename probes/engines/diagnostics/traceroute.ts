/**
 * Debian's traceroute (Dmitry Butskoy's "modern traceroute for Linux") with
 * numeric output. Chosen over `mtr --report --json`: it needs no raw socket
 * (UDP probes, errors read through IP_RECVERR), sends the probes of many hops
 * at once so a healthy path is traced in well under a second, and prints
 * every probe's own RTT; mtr needs its setuid helper and runs whole cycles
 * (10 by default, one a second) and reports per-hop aggregates instead.
 *
 * Output, one line per TTL (probes of one hop may be answered by different
 * routers under ECMP; an address is printed only when it changes; the real
 * output has numeric addresses where this shows names):
 *
 *   traceroute to <peer> (<peer>), 16 hops max, 60 byte packets
 *    1  <router>    0.263 ms  0.215 ms  0.204 ms
 *    2  <peer>      0.194 ms *  <other>     0.164 ms !H
 */
import { isIP } from 'node:net';
import type { TracerouteResult } from '../../../protocol/index.js';
import { clipText } from '../../../protocol/index.js';
import { lineBuffered, runTool, toolVersion } from './tools.js';

export interface TracerouteHop {
  ttl: number;
  probes: { address: string | null; rttUs: number | null; flag: string | null }[];
}

export interface TracerouteParse {
  /** The address traceroute resolved the target to (from its header line); null when it printed none. */
  destination: string | null;
  maxHops: number | null;
  hops: TracerouteHop[];
  /** Lines that are neither the header nor a hop, e.g. "connect: Network is unreachable". */
  errors: string[];
}

const HEADER = /^traceroute(?:6)? to \S+ \(([^)]+)\), (\d+) hops max/;
const HOP = /^\s*(\d+)\s+(.*)$/;

/** Parse `traceroute -n` output. Unknown text never throws: it is kept as an error line. */
export function parseTraceroute(text: string): TracerouteParse {
  const parsed: TracerouteParse = { destination: null, maxHops: null, hops: [], errors: [] };
  for (const raw of text.split('\n')) {
    const line = raw.trimEnd();
    if (!line.trim()) continue;
    const header = HEADER.exec(line.trim());
    if (header) {
      parsed.destination = header[1]!;
      parsed.maxHops = Number(header[2]);
      continue;
    }
    const hop = HOP.exec(line);
    if (!hop) {
      parsed.errors.push(line.trim());
      continue;
    }
    const probes: TracerouteHop['probes'] = [];
    let address: string | null = null;
    const tokens = hop[2]!.trim().split(/\s+/);
    for (let i = 0; i < tokens.length; i++) {
      const token = tokens[i]!;
      if (token === '*') {
        probes.push({ address: null, rttUs: null, flag: null });
      } else if (isIP(token)) {
        address = token;
      } else if (/^\d+(\.\d+)?$/.test(token) && tokens[i + 1] === 'ms') {
        probes.push({ address, rttUs: Math.round(Number(token) * 1000 * 1000) / 1000, flag: null });
        i++;
        if (tokens[i + 1]?.startsWith('!')) probes[probes.length - 1]!.flag = tokens[++i]!;
      } else {
        // Not an address, an RTT or a flag we know: keep the line as evidence rather than guess.
        parsed.errors.push(line.trim());
        break;
      }
    }
    if (probes.length > 0) parsed.hops.push({ ttl: Number(hop[1]), probes });
  }
  return parsed;
}

/** The destination answered on the last hop (without an unreachable flag of a router in front of it). */
export function tracerouteReached(parse: TracerouteParse): boolean {
  const last = parse.hops.at(-1);
  if (!last || !parse.destination) return false;
  return last.probes.some((p) => p.address === parse.destination && p.flag === null);
}

export interface TracerouteOptions {
  host: string;
  maxHops: number;
  sourceAddress?: string | null | undefined;
  timeoutMs: number;
  signal?: AbortSignal | undefined;
  /** The binary (default `traceroute` from PATH). */
  command?: string;
  /** argv run in front of it, e.g. `ip netns exec NS` (tests run it inside a namespace). */
  commandPrefix?: readonly string[];
}

/** Probes per hop and the longest wait for one (seconds): a silent hop costs at most this. */
const PROBES_PER_HOP = 3;
const WAIT_S = 1;

export async function runTraceroute(options: TracerouteOptions): Promise<TracerouteResult> {
  const command = options.command ?? 'traceroute';
  if (options.host.startsWith('-')) {
    return { ok: false, error: `invalid host "${options.host}"`, tool: null, maxHops: options.maxHops, reached: false, hops: [] };
  }
  const argv = [...(options.commandPrefix ?? []), ...lineBuffered(), command, '-n', '-q', String(PROBES_PER_HOP), '-w', String(WAIT_S), '-m', String(options.maxHops)];
  if (options.sourceAddress) argv.push('-s', options.sourceAddress);
  argv.push(options.host);
  const run = await runTool(argv, { timeoutMs: options.timeoutMs, signal: options.signal, tool: command });
  if (run.failure) return { ok: false, error: run.failure, tool: null, maxHops: options.maxHops, reached: false, hops: [] };
  const tool = await toolVersion(command, '--version');
  const parse = parseTraceroute(run.stdout);
  const hops = parse.hops.slice(0, 64).map((h) => ({ ttl: h.ttl, probes: h.probes.slice(0, 10) }));
  const reached = tracerouteReached(parse);
  const complaint = clipText([...parse.errors, run.stderr.trim()].filter(Boolean).join('; '), 500);
  let error: string | null = null;
  if (run.timedOut) error = `traceroute timed out after ${options.timeoutMs} ms (hops so far are kept)`;
  else if (run.code !== 0) error = `traceroute exited with ${run.code}${complaint ? `: ${complaint}` : ''}`;
  else if (hops.length === 0) error = `traceroute printed no hop${complaint ? `: ${complaint}` : ''}`;
  return { ok: error === null, error, tool, maxHops: options.maxHops, reached, hops };
}
