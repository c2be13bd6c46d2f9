/**
 * Loads and checks the topology file. Every problem is reported with the
 * file, the path inside it, the line, and what is wrong; nothing starts on a
 * config that does not fully check out.
 */
import { readFileSync } from 'node:fs';
import { LineCounter, parseDocument, isNode } from 'yaml';
import type { z } from 'zod';
import { hashToken } from './principals.js';
import { unstorableText } from '../protocol/index.js';
import { camelKeys, type CamelKeys } from './camel-keys.js';
import { topologySchema, type TopologyDocument } from './schema.js';
import { buildAlertsPolicy, type AlertsPolicy } from './alerts.js';

export interface Centre {
  id: string;
  name: string;
  nameLocal: string | null;
  district: string;
  lat: number | null;
  lon: number | null;
  probe: {
    host: string;
    stampPort: number;
    listenAddress: string;
    sourceAddress: string | null;
    /** sha-256 of every token the probe may present, hex (several while a token is rotated; empty when none is configured). */
    tokenSha256s: string[];
    throughputPort: number;
    interfaces: { name: string; peer: string | null }[];
  };
}

export interface Link {
  id: string;
  a: string;
  b: string;
  name: string;
  capacityGbps: number;
  rttTargetMs: number;
  /** Each direction's p99 one-way delay target, ms (sla.one_way_target_ms). */
  oneWayTargetMs: number;
  throughputFloorGbps: number;
  /** The SLA policy this link is judged by: defaults from `sla:` with the link's overrides applied. */
  sla: LinkSlaPolicy;
}

export interface LinkSlaPolicy {
  /** Per-minute RTT percentile target (worst direction), ms. */
  rttTargetMs: number;
  /** Which per-minute percentile is judged: 0.5, 0.9, 0.95 or 0.99. */
  percentile: number;
  latencyMinutesMin: number;
  lossRatioMax: number;
  availabilityMin: number;
  coverageMin: number;
  /** Committed (provisioned) capacity, Gb/s: the link's capacity_gbps, or sla.capacity_min_gbps when it declares none. */
  capacityGbps: number;
  throughputFloorGbps: number;
}

/** The `sla:` section as the schema says it (defaults applied), camelCased. */
export type SlaPolicy = CamelKeys<TopologyDocument['sla']>;

/** The `probing:` section as the schema says it (defaults applied), camelCased. */
export type ProbingPolicy = CamelKeys<TopologyDocument['probing']>;

export interface Person {
  name: string;
  /** sha-256 of every token this person may present (several while a token is rotated). */
  tokenSha256s: string[];
}

export interface Topology {
  file: string;
  name: string;
  sla: SlaPolicy;
  probing: ProbingPolicy;
  centres: Centre[];
  links: Link[];
  access: { operators: Person[]; regulators: Person[] };
  /** Alert rules and webhooks; null when the file has no `alerts:` section (nothing is evaluated). */
  alerts: AlertsPolicy | null;
  centre(id: string): Centre | undefined;
  /** The link joining two centres, in either order. */
  linkBetween(x: string, y: string): Link | undefined;
  /** Ids of centres directly linked to `id`. */
  peersOf(id: string): string[];
}

export interface ConfigProblem {
  path: string;
  line: number | null;
  message: string;
}

const MAX_PROBLEMS_SHOWN = 20;

export class ConfigError extends Error {
  readonly code = 'CONFIG_INVALID';
  constructor(readonly file: string, readonly problems: ConfigProblem[]) {
    // The first problems are listed; a file with thousands (a list of bad entries) still gets a message one can read.
    const shown = problems.slice(0, MAX_PROBLEMS_SHOWN);
    super(
      `invalid topology ${file}:\n` +
        shown.map((p) => `  ${file}${p.line ? `:${p.line}` : ''}: ${p.path || '(top level)'}: ${p.message}`).join('\n') +
        (problems.length > shown.length ? `\n  … and ${problems.length - shown.length} more problems` : ''),
    );
    this.name = 'ConfigError';
  }
}

export function linkId(x: string, y: string): string {
  return x < y ? `${x}~${y}` : `${y}~${x}`;
}


export interface LoadOptions {
  env?: NodeJS.ProcessEnv;
  /** When false, a token_env that is not set leaves that centre without a token instead of failing. */
  requireTokens?: boolean;
}

export function loadTopology(file: string, options: LoadOptions = {}): Topology {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError(file, [{ path: '', line: null, message: `cannot read file: ${(error as Error).message}` }]);
  }
  return parseTopology(text, file, options);
}

export function parseTopology(text: string, file: string, options: LoadOptions = {}): Topology {
  const env = options.env ?? process.env;
  const requireTokens = options.requireTokens ?? true;
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      file,
      doc.errors.map((e) => ({ path: '', line: lineCounter.linePos(e.pos[0]).line, message: `YAML syntax: ${e.message.split('\n')[0]}` })),
    );
  }
  const lineOf = (path: (string | number)[]): number | null => {
    for (let depth = path.length; depth >= 0; depth--) {
      const node = doc.getIn(path.slice(0, depth), true);
      if (isNode(node) && node.range) return lineCounter.linePos(node.range[0]).line;
    }
    return null;
  };
  const raw: unknown = doc.toJS();
  // Before the schema: names, reasons and ids end up in rows, reports and CSV, where a lone surrogate cannot go.
  const unstorable = unstorableText(raw);
  if (unstorable) throw new ConfigError(file, [{ path: unstorable.field, line: lineOf(unstorable.path), message: unstorable.problem }]);
  const parsed = topologySchema.safeParse(raw);
  if (!parsed.success) {
    throw new ConfigError(file, parsed.error.issues.map((issue) => zodProblem(issue, lineOf)));
  }
  const problems: ConfigProblem[] = [];
  const topology = build(parsed.data, file, env, requireTokens, (path, message) => problems.push({ path: formatPath(path), line: lineOf(path), message }));
  if (problems.length > 0) throw new ConfigError(file, problems);
  return topology;
}

function zodProblem(issue: z.core.$ZodIssue, lineOf: (path: (string | number)[]) => number | null): ConfigProblem {
  const path = issue.path.filter((p): p is string | number => typeof p !== 'symbol');
  let message = issue.message;
  if (issue.code === 'unrecognized_keys') message = `unknown key(s) ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}`;
  return { path: formatPath(path), line: lineOf(path), message };
}

function formatPath(path: (string | number)[]): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('');
}

type Report = (path: (string | number)[], message: string) => void;

function build(doc: TopologyDocument, file: string, env: NodeJS.ProcessEnv, requireTokens: boolean, report: Report): Topology {
  /** Tokens given as their sha-256 and/or as names of the environment variables holding them (lists while rotating). */
  const owners = new Map<string, string>();
  const tokenHashes = (path: (string | number)[], spec: { token_sha256?: string | string[] | undefined; token_env?: string | string[] | undefined }): string[] => {
    const hashes: string[] = [];
    const add = (hash: string, where: (string | number)[]) => {
      const owner = owners.get(hash);
      if (owner === formatPath(path)) report(where, 'the same token is listed twice');
      else if (owner) report(where, `the same token is already given to ${owner}; every principal needs its own`);
      else owners.set(hash, formatPath(path));
      hashes.push(hash);
    };
    const itemPath = (key: 'token_env' | 'token_sha256', i: number) => (Array.isArray(spec[key]) ? [...path, key, i] : [...path, key]);
    const envNames = spec.token_env === undefined ? [] : [spec.token_env].flat();
    envNames.forEach((name, i) => {
      const token = env[name];
      if (token) add(hashToken(token), itemPath('token_env', i));
      else if (requireTokens) report(itemPath('token_env', i), `environment variable ${name} is not set`);
    });
    const sha256s = spec.token_sha256 === undefined ? [] : [spec.token_sha256].flat();
    sha256s.forEach((hash, i) => add(hash, itemPath('token_sha256', i)));
    if (envNames.length === 0 && sha256s.length === 0 && requireTokens) report(path, 'needs token_sha256 or token_env');
    return hashes;
  };
  const centres: Centre[] = [];
  const seen = new Map<string, number>();
  doc.centres.forEach((c, i) => {
    if (seen.has(c.id)) report(['centres', i, 'id'], `duplicate centre id "${c.id}" (first at centres[${seen.get(c.id)}])`);
    seen.set(c.id, i);
    const tokenSha256s = tokenHashes(['centres', i, 'probe'], c.probe);
    centres.push({
      id: c.id,
      name: c.name,
      nameLocal: c.name_local ?? null,
      district: c.district,
      lat: c.location?.lat ?? null,
      lon: c.location?.lon ?? null,
      probe: {
        host: c.probe.host,
        stampPort: c.probe.stamp_port,
        listenAddress: c.probe.listen_address ?? '0.0.0.0',
        sourceAddress: c.probe.source_address ?? null,
        tokenSha256s,
        throughputPort: c.probe.throughput_port ?? doc.probing.throughput.port,
        interfaces: c.probe.interfaces.map((iface) => ({ name: iface.name, peer: iface.link_to ?? null })),
      },
    });
  });
  const links: Link[] = [];
  const linkIndex = new Map<string, number>();
  doc.links.forEach((l, i) => {
    const [a, b] = l.between;
    if (!seen.has(a)) report(['links', i, 'between', 0], `unknown centre "${a}"`);
    if (!seen.has(b)) report(['links', i, 'between', 1], `unknown centre "${b}"`);
    if (a === b) report(['links', i, 'between'], `a link must join two different centres (got "${a}" twice)`);
    const key = linkId(a, b);
    if (linkIndex.has(key)) report(['links', i, 'between'], `duplicate link ${a}–${b} (first at links[${linkIndex.get(key)}])`);
    linkIndex.set(key, i);
    const [x, y] = a < b ? [a, b] : [b, a];
    const capacityGbps = l.capacity_gbps ?? doc.sla.capacity_min_gbps;
    if (capacityGbps < doc.sla.capacity_min_gbps) {
      report(['links', i, 'capacity_gbps'],
        `${capacityGbps} Gb/s is below the city's promise for every direct link, sla.capacity_min_gbps: ${doc.sla.capacity_min_gbps} Gb/s (raise the link or lower the promise)`);
    }
    links.push({
      id: key,
      a: x,
      b: y,
      name: l.name ?? `${x}–${y}`,
      capacityGbps,
      rttTargetMs: l.rtt_target_ms ?? doc.sla.rtt_p99_target_ms,
      oneWayTargetMs: doc.sla.one_way_target_ms,
      throughputFloorGbps: l.throughput_floor_gbps ?? doc.sla.throughput_floor_gbps,
      sla: {
        rttTargetMs: l.rtt_target_ms ?? doc.sla.rtt_p99_target_ms,
        percentile: l.percentile ?? doc.sla.percentile,
        latencyMinutesMin: l.latency_minutes_min ?? doc.sla.latency_minutes_min,
        lossRatioMax: l.loss_ratio_max ?? doc.sla.loss_ratio_max,
        availabilityMin: l.availability_min ?? doc.sla.availability_min,
        coverageMin: l.coverage_min ?? doc.sla.coverage_min,
        capacityGbps,
        throughputFloorGbps: l.throughput_floor_gbps ?? doc.sla.throughput_floor_gbps,
      },
    });
  });
  doc.centres.forEach((c, i) => {
    c.probe.interfaces.forEach((iface, j) => {
      if (iface.link_to && !linkIndex.has(linkId(c.id, iface.link_to))) {
        report(['centres', i, 'probe', 'interfaces', j, 'link_to'], `"${c.id}" has no link to "${iface.link_to}"`);
      }
    });
  });
  const byId = new Map(centres.map((c) => [c.id, c]));
  const byLink = new Map(links.map((l) => [l.id, l]));
  const s = doc.sla;
  const p = doc.probing;
  return {
    file,
    name: doc.name,
    sla: camelKeys(s),
    probing: camelKeys(p),
    centres,
    links,
    access: {
      operators: doc.access.operators.map((p, i) => ({ name: p.name, tokenSha256s: tokenHashes(['access', 'operators', i], p) })),
      regulators: doc.access.regulators.map((p, i) => ({ name: p.name, tokenSha256s: tokenHashes(['access', 'regulators', i], p) })),
    },
    alerts: doc.alerts ? buildAlertsPolicy(doc.alerts, env, requireTokens, (path, message) => report(['alerts', ...path], message)) : null,
    centre: (centreId) => byId.get(centreId),
    linkBetween: (x, y) => byLink.get(linkId(x, y)),
    peersOf: (centreId) =>
      links.flatMap((l) => (l.a === centreId ? [l.b] : l.b === centreId ? [l.a] : [])).sort(),
  };
}
