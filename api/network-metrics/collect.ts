/**
 * The network as Prometheus metric families: per measured direction and
 * engine (labels link, src, dst, engine), per link (link, a, b), per
 * interface and per centre. Everything is read from ClickHouse at the scrape,
 * so every server behind a load balancer answers the same figures and
 * counters never step back when a scrape lands on another server.
 *
 * Label sets are bounded by the topology: links and centres it names, the
 * engines of the plan (stamp, icmp), the five live states, the four
 * timestamping modes. No train, flow or port ever becomes a label.
 *
 * Our own load: trains measured while citymesh's own throughput test loaded
 * the link are in none of the latency, loss and verdict families, as the SLA
 * and the alerts leave them out, so a PromQL rule or panel written on them
 * needs no extra matcher to agree with citymesh. What was left out is
 * published on its own (citymesh_self_load_packets_*), so the packets add up.
 * The counters were split when each train was stored (a counter cannot take
 * anything back later); the window, jitter and verdict are judged on the load
 * windows known at the scrape (sql/load-windows.ts).
 */
import { selfLoadGuardMs } from '../../collector/index.js';
import { TIMESTAMPING_MODES } from '../../protocol/index.js';
import { type Link, type Topology } from '../../topology/index.js';
import {
  alertCentresLastSeen, latestNicStates, latestThroughputTests, pathTotals, pathWindows, RTT_BUCKET_BOUNDS_S,
  type PathCounts, type PathWindow, type Store,
} from '../../sql/index.js';
import type { PathState } from '../contract.js';
import { judgedPathStatuses, linkState, PATH_STATES, probeStatuses, STALE_AFTER_S, STATUS_WINDOW_S } from '../path-status.js';
import { linkCapacity } from '../routes/capacity/index.js';
import { histogramSamples, type Family, type Labels, type Sample } from './exposition.js';

const GBPS_TO_BYTES = 1e9 / 8;

interface PathKey {
  link: Link;
  src: string;
  dst: string;
  engine: string;
}

const pathLabels = (p: PathKey): Labels => ({ link: p.link.id, src: p.src, dst: p.dst, engine: p.engine });
const linkLabels = (l: Link): Labels => ({ link: l.id, a: l.a, b: l.b });

/** Every path the topology measures (plan engines, both directions), plus engines seen in the data for those directions. */
function pathsOf(topology: Topology, seen: { src: string; dst: string; engine: string }[]): PathKey[] {
  const engines = new Set<string>(['stamp']);
  if (topology.probing.icmp.enabled) engines.add('icmp');
  const keys = new Map<string, PathKey>();
  const add = (link: Link, src: string, dst: string, engine: string) => keys.set(`${src}>${dst}>${engine}`, { link, src, dst, engine });
  for (const l of topology.links) for (const [src, dst] of [[l.a, l.b], [l.b, l.a]] as const) for (const e of engines) add(l, src, dst, e);
  for (const r of seen) {
    const l = topology.linkBetween(r.src, r.dst);
    if (l && ENGINE_LABEL.test(r.engine)) add(l, r.src, r.dst, r.engine);
  }
  return [...keys.values()].sort((x, y) => x.link.id.localeCompare(y.link.id) || x.src.localeCompare(y.src) || x.engine.localeCompare(y.engine));
}

const EMPTY_LE = RTT_BUCKET_BOUNDS_S.map(() => 0);

/** Engine names that may become a label value (the same bound as the protocol's engine names). */
const ENGINE_LABEL = /^[a-z][a-z0-9_-]{0,31}$/;

/** One of the four timestamping modes; anything else a store might hold reads as unknown, so the label stays bounded. */
function boundedMode(mode: string): string {
  return (TIMESTAMPING_MODES as readonly string[]).includes(mode) ? mode : 'unknown';
}

export async function collectNetworkFamilies(store: Store, topology: Topology, nowMs: number): Promise<Family[]> {
  const started = performance.now();
  const client = store.client;
  const guardMs = selfLoadGuardMs(topology.probing);
  const probes = await probeStatuses(store, topology);
  const [totals, windows, statuses, nics, tests, seen] = await Promise.all([
    pathTotals(client),
    pathWindows(client, STATUS_WINDOW_S, nowMs, guardMs),
    judgedPathStatuses(store, topology, nowMs * 1000, probes),
    latestNicStates(client),
    latestThroughputTests(client),
    alertCentresLastSeen(client, {
      rawFromMs: nowMs - 600_000, horizonS: (nowMs - 86_400_000) / 1000, nowMs: nowMs + 1, centres: topology.centres.map((c) => c.id),
    }),
  ]);
  const key = (r: { src: string; dst: string; engine: string }) => `${r.src}>${r.dst}>${r.engine}`;
  const totalBy = new Map<string, PathCounts>(totals.network.map((r) => [key(r), r]));
  const selfLoadBy = new Map<string, PathCounts>(totals.selfLoad.map((r) => [key(r), r]));
  const windowBy = new Map<string, PathWindow>(windows.map((r) => [key(r), r]));
  const paths = pathsOf(topology, [...totals.network, ...totals.selfLoad, ...windows]);

  const family = (name: string, type: Family['type'], help: string, samples: Sample[], unit?: string): Family =>
    ({ name, type, help, samples, ...(unit ? { unit } : {}) });
  const perPath = (value: (p: PathKey) => number | null): Sample[] =>
    paths.flatMap((p) => {
      const v = value(p);
      return v === null ? [] : [{ suffix: '', labels: pathLabels(p), value: v }];
    });

  const families: Family[] = [
    family('citymesh_rtt_seconds', 'histogram',
      'Round-trip time of every probe packet stored, per measured direction and engine (counts since the totals table was created; use rate/increase)',
      paths.flatMap((p) => {
        const t = totalBy.get(key(p));
        return histogramSamples(pathLabels(p), RTT_BUCKET_BOUNDS_S, t?.rttLe ?? EMPTY_LE, t?.rttCount ?? 0, (t?.rttSumUs ?? 0) / 1e6);
      }), 'seconds'),
    family('citymesh_packets_sent', 'counter', 'Probe packets sent, per measured direction and engine (as stored)',
      perPath((p) => totalBy.get(key(p))?.sent ?? 0).map((s) => ({ ...s, suffix: '_total' }))),
    family('citymesh_packets_received', 'counter', 'Probe packets that came back, per measured direction and engine (as stored)',
      perPath((p) => totalBy.get(key(p))?.received ?? 0).map((s) => ({ ...s, suffix: '_total' }))),
    family('citymesh_packets_lost', 'counter', 'Probe packets lost, per measured direction and engine (as stored)',
      perPath((p) => totalBy.get(key(p))?.lost ?? 0).map((s) => ({ ...s, suffix: '_total' }))),
    family('citymesh_self_load_packets_sent', 'counter',
      'Probe packets sent while citymesh\'s own throughput test loaded the link, per measured direction and engine: left out of every other family here, as out of the SLA and the alerts',
      perPath((p) => selfLoadBy.get(key(p))?.sent ?? 0).map((s) => ({ ...s, suffix: '_total' }))),
    family('citymesh_self_load_packets_lost', 'counter',
      'Probe packets lost while citymesh\'s own throughput test loaded the link, per measured direction and engine (left out of citymesh_packets_lost_total)',
      perPath((p) => selfLoadBy.get(key(p))?.lost ?? 0).map((s) => ({ ...s, suffix: '_total' }))),
    family('citymesh_rtt_window_seconds', 'gaugehistogram',
      `Round-trip time of the probe packets measured in the last ${STATUS_WINDOW_S} s, per measured direction and engine (the dashboard's window)`,
      paths.flatMap((p) => {
        const w = windowBy.get(key(p));
        return histogramSamples(pathLabels(p), RTT_BUCKET_BOUNDS_S, w?.rttLe ?? EMPTY_LE, w?.rttCount ?? 0, (w?.rttSumUs ?? 0) / 1e6, true);
      }), 'seconds'),
    family('citymesh_jitter_seconds', 'gauge',
      `Mean absolute packet delay variation (RFC 3393 IPDV) of the trains measured in the last ${STATUS_WINDOW_S} s; absent without data`,
      perPath((p) => {
        const j = windowBy.get(key(p))?.jitterUs;
        return j === null || j === undefined ? null : j / 1e6;
      }), 'seconds'),
    family('citymesh_last_train_timestamp_seconds', 'gauge', `When the newest train of the last ${STATUS_WINDOW_S} s was measured (Unix time); absent without data`,
      perPath((p) => {
        const w = windowBy.get(key(p));
        return w ? w.lastTsMs / 1000 : null;
      }), 'seconds'),
  ];

  // Links: SLA targets, capacity, the live verdict.
  const links = topology.links;
  const capacities = links.map((l) => ({ l, c: linkCapacity(l, nics, tests) }));
  const stateOf = new Map(statuses.filter((s) => s.engine === topology.sla.engine).map((s) => [`${s.src}>${s.dst}`, s.state]));
  families.push(
    family('citymesh_link_rtt_target_seconds', 'gauge', 'SLA round-trip target of the link, at the SLA percentile (label percentile), worse direction',
      links.map((l) => ({ suffix: '', labels: { ...linkLabels(l), percentile: String(l.sla.percentile) }, value: l.sla.rttTargetMs / 1000 })), 'seconds'),
    family('citymesh_link_loss_target_ratio', 'gauge', 'SLA ceiling on lost / sent probe packets, both directions',
      links.map((l) => ({ suffix: '', labels: linkLabels(l), value: l.sla.lossRatioMax })), 'ratio'),
    family('citymesh_link_committed_capacity_bytes_per_second', 'gauge', 'Capacity the link is committed to (capacity_gbps), bytes/s',
      links.map((l) => ({ suffix: '', labels: linkLabels(l), value: l.capacityGbps * GBPS_TO_BYTES }))),
    family('citymesh_link_provisioned_capacity_bytes_per_second', 'gauge',
      'Lowest negotiated speed of the interfaces carrying the link (newest NIC samples), bytes/s; absent when unknown',
      capacities.flatMap(({ l, c }) => (c.provisioned.gbps === null ? [] : [{ suffix: '', labels: linkLabels(l), value: c.provisioned.gbps * GBPS_TO_BYTES }]))),
    family('citymesh_link_throughput_floor_bytes_per_second', 'gauge', 'SLA floor for tested throughput, slower direction, bytes/s',
      links.map((l) => ({ suffix: '', labels: linkLabels(l), value: l.throughputFloorGbps * GBPS_TO_BYTES }))),
    family('citymesh_link_tested_throughput_bytes_per_second', 'gauge',
      'Goodput of the newest throughput test, per direction (src sends to dst), bytes/s; absent when that test failed or there is none',
      capacities.flatMap(({ l, c }) => [
        [l.a, l.b, c.tested.abGbps], [l.b, l.a, c.tested.baGbps],
      ].flatMap(([src, dst, g]) => (g === null ? [] : [{ suffix: '', labels: { link: l.id, src: src as string, dst: dst as string }, value: (g as number) * GBPS_TO_BYTES }])))),
    family('citymesh_link_throughput_test_timestamp_seconds', 'gauge', 'When the newest throughput test of the link ran (Unix time), successful or not',
      capacities.flatMap(({ l, c }) => (c.tested.at === null ? [] : [{ suffix: '', labels: linkLabels(l), value: Date.parse(c.tested.at) / 1000 }])), 'seconds'),
    family('citymesh_link_state', 'gauge',
      `Live verdict of the link (1 for its state, 0 for the others): the worse direction of the SLA engine over the last ${STATUS_WINDOW_S} s, as /v1/status; stale after ${STALE_AFTER_S} s without trains`,
      links.flatMap((l) => {
        const state: PathState = linkState(stateOf.get(`${l.a}>${l.b}`) ?? 'nodata', stateOf.get(`${l.b}>${l.a}`) ?? 'nodata');
        return PATH_STATES.map((s) => ({ suffix: '', labels: { ...linkLabels(l), state: s }, value: s === state ? 1 : 0 }));
      })),
  );

  // Interfaces (the NICs a probe samples for a link) and centres.
  const nicLabels = (n: { centre: string; interface: string; peer: string }) => {
    const l = topology.linkBetween(n.centre, n.peer);
    return { centre: n.centre, interface: n.interface, peer: n.peer, link: l?.id ?? '' };
  };
  const mapped = nics.filter((n) => topology.centre(n.centre) && topology.linkBetween(n.centre, n.peer));
  families.push(
    family('citymesh_interface_speed_bytes_per_second', 'gauge', 'Negotiated speed of an interface carrying a link (newest sample of the last day), bytes/s; absent when the NIC reports none',
      mapped.flatMap((n) => (n.speedMbps === null ? [] : [{ suffix: '', labels: nicLabels(n), value: (n.speedMbps * 1e6) / 8 }]))),
    family('citymesh_interface_utilisation_ratio', 'gauge', 'Busier direction of an interface carrying a link over its newest sampling interval, 0..1 of its speed',
      mapped.flatMap((n) => (n.utilisation === null ? [] : [{ suffix: '', labels: nicLabels(n), value: n.utilisation }])), 'ratio'),
  );
  const seenBy = new Map(seen.map((s) => [s.centre, s.lastSeenMs]));
  families.push(
    family('citymesh_probe_up', 'gauge', `1 when the centre's probe stored a train in the last ${STALE_AFTER_S} s, else 0`,
      topology.centres.map((c) => {
        const last = seenBy.get(c.id) ?? null;
        return { suffix: '', labels: { centre: c.id }, value: last !== null && nowMs - last <= STALE_AFTER_S * 1000 ? 1 : 0 };
      })),
    family('citymesh_probe_last_train_timestamp_seconds', 'gauge', 'When the centre\'s newest stored train was measured (Unix time, last day); absent when none',
      topology.centres.flatMap((c) => {
        const last = seenBy.get(c.id) ?? null;
        return last === null ? [] : [{ suffix: '', labels: { centre: c.id }, value: last / 1000 }];
      }), 'seconds'),
    family('citymesh_probe_timestamping', 'info',
      `How the newest train of the last ${STATUS_WINDOW_S} s was timestamped at each end (end: sender or reflector; mode: ${TIMESTAMPING_MODES.join(', ')}), per measured direction and engine; absent without such a train`,
      statuses.flatMap((s) => {
        const link = topology.linkBetween(s.src, s.dst);
        if (!link || !s.timestamping) return [];
        return (['sender', 'reflector'] as const).map((end) => ({
          suffix: '_info',
          labels: { ...pathLabels({ link, src: s.src, dst: s.dst, engine: s.engine }), end, mode: boundedMode(s.timestamping![end]) },
          value: 1,
        }));
      })),
    family('citymesh_probe_datapath', 'info',
      'How the centre\'s probe measures, as it last reported (datapath: native, kernel timestamps off the JavaScript event loop, or js, the fallback; reflector_mode: how its reflector stamps)',
      probes.map((p) => ({ suffix: '_info', labels: { centre: p.centre, datapath: p.datapath, reflector_mode: boundedMode(p.reflectorTimestamping) }, value: 1 }))),
    family('citymesh_probe_engine_unavailable', 'gauge',
      'Engines of the plan the centre\'s probe reported it cannot run (1; the reason is in /v1/status), absent when it can',
      probes.flatMap((p) => Object.keys(p.enginesUnavailable).filter((e) => ENGINE_LABEL.test(e)).sort()
        .map((engine) => ({ suffix: '', labels: { centre: p.centre, engine }, value: 1 })))),
    family('citymesh_network_metrics_query_seconds', 'gauge', 'Time this server took to read these figures from ClickHouse for this scrape',
      [{ suffix: '', labels: {}, value: Number(((performance.now() - started) / 1000).toFixed(4)) }], 'seconds'),
  );
  return families;
}
