/**
 * The fabric's plan, before anything touches the system: which namespaces,
 * which interfaces and addresses, what each link's delay and rate are, and
 * the topology file the server and probes run on.
 *
 * Shape:
 *  - one namespace per centre, one for the NOC (the server);
 *  - per link a veth pair, one end in each centre, its own /30;
 *  - per centre a management veth to the NOC, its own /30, never shaped:
 *    probe <-> collector traffic does not cross the measured links;
 *  - per centre a service address (/32 on lo): the topology's `probe.host`.
 *    A peer routes it over the direct link only (a /32 route via the link);
 *    the centre's delay relay owns it for STAMP (UDP) and throughput (TCP)
 *    and forwards to the probe on 127.0.0.1 (see relay.ts). No default
 *    routes and no forwarding anywhere: nothing can take another path.
 *
 * Addresses come from the benchmarking range of RFC 2544 / RFC 6890
 * (198.18/15, never routed), built from octets at run time: links from its
 * first /16, management /30s and service addresses from the second. They
 * exist only inside the namespaces a run creates, so parallel runs can reuse
 * them.
 *
 * Delay per link: great-circle distance between the centres x route factor
 * (fibre runs 1.3-1.6x the straight line; 1.5 by default) x 5 µs/km, one way.
 * Rate per link: capacity x scale (default 1/100: "100 Gb/s" becomes a
 * 1 Gbit/s tbf), stated in the link names and the topology name.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { hashToken, parseTopology } from '../../topology/index.js';
import { slaPolicySchema } from '../../topology/schema.js';

export interface CentreSpec {
  id: string;
  name: string;
  nameLocal?: string | undefined;
  district: string;
  lat: number;
  lon: number;
}

export interface LinkSpec {
  a: string;
  b: string;
  capacityGbps: number;
  rttTargetMs?: number | undefined;
  throughputFloorGbps?: number | undefined;
  /** One-way delay override, µs (default: from the coordinates). */
  delayUs?: number | undefined;
}

export interface FabricSpec {
  /** Topology name (the scale is appended). */
  name: string;
  centres: CentreSpec[];
  links: LinkSpec[];
  /** Link rate = capacity x rateScale (default 0.01). */
  rateScale: number;
  /** Fibre route length / straight line (default 1.5). */
  routeFactor: number;
  /** Light in fibre, µs per km (default 5). */
  usPerKm: number;
  stampPort: number;
  throughputPort: number;
  /** `sla:` section as written in YAML (snake_case); throughput floors are scaled when written. */
  sla: Record<string, unknown>;
  /** `probing:` section as written in YAML (snake_case). */
  probing: Record<string, unknown>;
}

export interface LinkEnd {
  centre: string;
  ns: string;
  dev: string;
  address: string;
}

export interface LinkPlan {
  /** `${a}~${b}` with a < b, as the API names links. */
  id: string;
  a: LinkEnd;
  b: LinkEnd;
  index: number;
  distanceKm: number;
  /** Injected one-way delay, µs (what the relays start with once `applyDelays` runs). */
  delayUs: number;
  capacityGbps: number;
  /** tbf rate on both ends, Mbit/s (capacity x scale). */
  rateMbit: number;
  throughputFloorGbps: number;
  rttTargetMs: number | undefined;
}

export interface CentrePlan {
  spec: CentreSpec;
  ns: string;
  /** Service address: the topology's probe.host, on lo, owned by the relay. */
  service: string;
  mgmt: { dev: string; address: string; nocDev: string; nocAddress: string };
  /** Interfaces towards each peer. */
  ends: { peer: string; link: LinkPlan; dev: string; address: string; peerAddress: string }[];
  token: string;
}

export interface FabricPlan {
  spec: FabricSpec;
  tag: string;
  nocNs: string;
  centres: CentrePlan[];
  links: LinkPlan[];
  operatorToken: string;
  /** The server's port inside the noc namespace. */
  serverPort: number;
}

/** Every namespace of a run is named `${NS_PREFIX}p<pid>-<hex>-...`: cleanup finds leftovers by it. */
export const NS_PREFIX = 'cmfab-';
export const NS_PATTERN = /^cmfab-p(\d+)-([0-9a-f]+)[-_]/;

const dotted = (...octets: number[]) => octets.join('.');
const BENCH = [198, 18] as const;
const BENCH_2 = [198, 19] as const;
/** Link k: a /30 in the first /16 of the benchmarking range; host 1 = end a, 2 = end b. */
const linkAddress = (k: number, host: 1 | 2) => dotted(BENCH[0], BENCH[1], (k * 4 + host) >> 8, (k * 4 + host) & 255);
/** Management /30 of centre i in the second /16 (below its 200th /24); host 1 = noc, 2 = centre. */
const mgmtAddress = (i: number, host: 1 | 2) => dotted(BENCH_2[0], BENCH_2[1], (i * 4 + host) >> 8, (i * 4 + host) & 255);
/** Service address of centre i. */
const serviceAddress = (i: number) => dotted(BENCH_2[0], BENCH_2[1], 200, i + 1);

/** True when an IPv4 address lies in the ranges the fabric uses (the whole benchmarking /15). */
export function inFabricRange(address: string): boolean {
  const p = address.split('.').map(Number);
  return p.length === 4 && p[0] === BENCH[0] && (p[1] === BENCH[1] || p[1] === BENCH_2[1]);
}

/** Great-circle distance, km. */
export function haversineKm(lat1: number, lon1: number, lat2: number, lon2: number): number {
  const rad = Math.PI / 180;
  const dLat = (lat2 - lat1) * rad;
  const dLon = (lon2 - lon1) * rad;
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(lat1 * rad) * Math.cos(lat2 * rad) * Math.sin(dLon / 2) ** 2;
  return 2 * 6371.0088 * Math.asin(Math.min(1, Math.sqrt(h)));
}

/** One-way fibre delay between two centres, µs. */
export function fibreDelayUs(a: CentreSpec, b: CentreSpec, routeFactor: number, usPerKm: number): number {
  return haversineKm(a.lat, a.lon, b.lat, b.lon) * routeFactor * usPerKm;
}

export interface FromFileOptions {
  /** Keep only these centres (and the links among them). */
  centres?: string[] | undefined;
  rateScale?: number | undefined;
  routeFactor?: number | undefined;
  /** Replace the probing section (YAML snake_case object). */
  probing?: Record<string, unknown> | undefined;
  /** Merge into the sla section. */
  sla?: Record<string, unknown> | undefined;
  stampPort?: number | undefined;
  throughputPort?: number | undefined;
}

/** Read a citymesh topology file (e.g. config/shanghai.yaml) as a fabric spec. Centres need a location. */
export function specFromTopologyFile(file: string, opts: FromFileOptions = {}): FabricSpec {
  const text = readFileSync(file, 'utf8');
  const checked = parseTopology(text, file, { requireTokens: false }); // precise errors for a bad file
  const doc = parseYaml(text) as {
    name: string;
    sla?: Record<string, unknown>;
    probing?: Record<string, unknown>;
    centres: { id: string; name: string; name_local?: string; district: string; location?: { lat: number; lon: number } }[];
    links: { between: [string, string]; rtt_target_ms?: number; throughput_floor_gbps?: number }[];
  };
  const keep = opts.centres ? new Set(opts.centres) : null;
  if (keep) {
    for (const id of keep) if (!doc.centres.some((c) => c.id === id)) throw new Error(`${file}: no centre "${id}" (has ${doc.centres.map((c) => c.id).join(', ')})`);
  }
  const centres = doc.centres
    .filter((c) => !keep || keep.has(c.id))
    .map((c): CentreSpec => {
      if (!c.location) throw new Error(`${file}: centre "${c.id}" has no location; the fabric derives link delays from coordinates`);
      return { id: c.id, name: c.name, nameLocal: c.name_local, district: c.district, lat: c.location.lat, lon: c.location.lon };
    });
  const ids = new Set(centres.map((c) => c.id));
  const links = doc.links
    .filter((l) => ids.has(l.between[0]) && ids.has(l.between[1]))
    .map((l): LinkSpec => ({ a: l.between[0], b: l.between[1], capacityGbps: checked.linkBetween(l.between[0], l.between[1])!.capacityGbps, rttTargetMs: l.rtt_target_ms, throughputFloorGbps: l.throughput_floor_gbps }));
  if (links.length === 0) throw new Error(`${file}: no links among ${[...ids].join(', ')}`);
  return {
    name: doc.name,
    centres,
    links,
    rateScale: opts.rateScale ?? 0.01,
    routeFactor: opts.routeFactor ?? 1.5,
    usPerKm: 5,
    stampPort: opts.stampPort ?? 862,
    throughputPort: opts.throughputPort ?? 5201,
    sla: { ...(doc.sla ?? {}), ...(opts.sla ?? {}) },
    probing: opts.probing ?? doc.probing ?? {},
  };
}

/** Interface names: at most 15 characters; fall back to an index when an id is too long. */
function ifName(prefix: string, id: string, fallback: number): string {
  const name = `${prefix}${id}`;
  return name.length <= 15 ? name : `${prefix}${fallback}`;
}

export function planFabric(spec: FabricSpec, tag: string, tokens: (id: string) => string, operatorToken: string): FabricPlan {
  if (spec.centres.length > 250) throw new Error('at most 250 centres');
  if (spec.links.length > 16_000) throw new Error('at most 16000 links');
  const nocNs = `${NS_PREFIX}${tag}_noc`;
  const byId = new Map(spec.centres.map((c) => [c.id, c]));
  const centres: CentrePlan[] = spec.centres.map((c, i) => ({
    spec: c,
    ns: `${NS_PREFIX}${tag}-${c.id}`,
    service: serviceAddress(i),
    mgmt: { dev: 'mgmt0', address: mgmtAddress(i, 2), nocDev: ifName('m-', c.id, i), nocAddress: mgmtAddress(i, 1) },
    ends: [],
    token: tokens(c.id),
  }));
  const centreOf = new Map(centres.map((c) => [c.spec.id, c]));
  const seen = new Set<string>();
  const links = spec.links.map((l, k): LinkPlan => {
    const [x, y] = l.a < l.b ? [l.a, l.b] : [l.b, l.a];
    const id = `${x}~${y}`;
    if (seen.has(id)) throw new Error(`duplicate link ${id}`);
    seen.add(id);
    const ca = centreOf.get(x);
    const cb = centreOf.get(y);
    if (!ca || !cb) throw new Error(`link ${id}: unknown centre`);
    const distanceKm = haversineKm(byId.get(x)!.lat, byId.get(x)!.lon, byId.get(y)!.lat, byId.get(y)!.lon);
    const link: LinkPlan = {
      id,
      index: k,
      a: { centre: x, ns: ca.ns, dev: ifName('to-', y, k), address: linkAddress(k, 1) },
      b: { centre: y, ns: cb.ns, dev: ifName('to-', x, k), address: linkAddress(k, 2) },
      distanceKm,
      delayUs: l.delayUs ?? distanceKm * spec.routeFactor * spec.usPerKm,
      capacityGbps: l.capacityGbps,
      rateMbit: scaledMbit(l.capacityGbps, spec.rateScale),
      throughputFloorGbps: (l.throughputFloorGbps ?? Number(spec.sla.throughput_floor_gbps ?? 95)) * spec.rateScale,
      rttTargetMs: l.rttTargetMs,
    };
    ca.ends.push({ peer: y, link, dev: link.a.dev, address: link.a.address, peerAddress: link.b.address });
    cb.ends.push({ peer: x, link, dev: link.b.dev, address: link.b.address, peerAddress: link.a.address });
    return link;
  });
  return { spec, tag, nocNs, centres, links, operatorToken, serverPort: 8080 };
}

/** "100 Gb/s" -> "1 Gbit/s" style. */
export function formatRate(mbit: number): string {
  return mbit >= 1000 ? `${+(mbit / 1000).toFixed(3)} Gbit/s` : `${+mbit.toFixed(1)} Mbit/s`;
}

/** A rate in Gb/s scaled for the fabric, in whole Mbit/s (at least 1). */
function scaledMbit(gbps: number, scale: number): number {
  return Math.max(1, Math.round(gbps * 1000 * scale));
}

export function scaleLabel(scale: number): string {
  return scale === 1 ? 'rates unscaled' : `rates scaled 1:${+(1 / scale).toFixed(2)}`;
}

/** The topology file the server and probes of this fabric run on. */
export function fabricTopologyYaml(plan: FabricPlan): string {
  const { spec } = plan;
  const sla: Record<string, unknown> = { ...spec.sla };
  if (typeof sla.throughput_floor_gbps === 'number') sla.throughput_floor_gbps = sla.throughput_floor_gbps * spec.rateScale;
  // The city's promise scales like the links (same rounding), so a link that keeps it unscaled keeps it scaled.
  const promise = typeof sla.capacity_min_gbps === 'number' ? sla.capacity_min_gbps : slaPolicySchema.parse({}).capacity_min_gbps;
  sla.capacity_min_gbps = scaledMbit(promise, spec.rateScale) / 1000;
  const doc = {
    name: `${spec.name} (network-namespace fabric, ${scaleLabel(spec.rateScale)})`,
    sla,
    probing: spec.probing,
    centres: plan.centres.map((c) => ({
      id: c.spec.id,
      name: c.spec.name,
      ...(c.spec.nameLocal ? { name_local: c.spec.nameLocal } : {}),
      // The dashboard shows the district with each centre: say there that this is a scaled fabric.
      district: `${c.spec.district} · fabric, ${scaleLabel(spec.rateScale)}`,
      location: { lat: c.spec.lat, lon: c.spec.lon },
      probe: {
        host: c.service,
        stamp_port: spec.stampPort,
        // The probe listens on loopback; the relay owns the service address.
        listen_address: '127.0.0.1',
        token_sha256: hashToken(c.token),
        throughput_port: spec.throughputPort,
        interfaces: c.ends.map((e) => ({ name: e.dev, link_to: e.peer })),
      },
    })),
    links: plan.links.map((l) => ({
      between: [l.a.centre, l.b.centre],
      name: `${l.a.centre}–${l.b.centre} (${+l.capacityGbps} Gb/s scaled to ${formatRate(l.rateMbit)}; fibre ${l.distanceKm.toFixed(0)} km x ${spec.routeFactor} = ${(l.delayUs / 1000).toFixed(3)} ms one way)`,
      capacity_gbps: +(l.rateMbit / 1000).toFixed(6),
      throughput_floor_gbps: +l.throughputFloorGbps.toFixed(6),
      ...(l.rttTargetMs !== undefined ? { rtt_target_ms: l.rttTargetMs } : {}),
    })),
    access: { operators: [{ name: 'fabric operator', token_sha256: hashToken(plan.operatorToken) }] },
  };
  const yaml = `# Generated by test/fabric for run ${plan.tag}: every address lives only inside this run's namespaces.\n${stringifyYaml(doc, { lineWidth: 0 })}`;
  parseTopology(yaml, 'fabric topology', { requireTokens: true }); // fail here, not in the server
  return yaml;
}
