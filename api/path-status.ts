/**
 * The live state of every measured direction, as /v1/status shows it and the
 * network metrics publish it: judged on the last minute of packets, stale
 * after a minute of silence. One judgement, so the dashboard and a Grafana
 * panel never disagree about a link.
 */
import { selfLoadGuardMs } from '../collector/index.js';
import { ENGINES, type ProbeEngineName } from '../protocol/index.js';
import { type Topology } from '../topology/index.js';
import { latestPathStatus, latestProbeReports, type PathStatusRow, type Store } from '../sql/index.js';
import type { OneWayVerdict, PathState, PathStatus, ProbeStatus } from './contract.js';

export const STATUS_WINDOW_S = 60;
export const STALE_AFTER_S = 60;

/** What each configured centre's probe last reported about itself: datapath, reflector, engines it cannot run. */
export async function probeStatuses(store: Store, topology: Topology): Promise<ProbeStatus[]> {
  const reports = await latestProbeReports(store.client);
  const known = new Set(topology.centres.map((c) => c.id));
  return reports.filter((r) => known.has(r.centre)).map((r) => ({
    centre: r.centre, reportedAt: new Date(r.reportedAtUs / 1000).toISOString(), datapath: r.datapath, datapathReason: r.datapathReason,
    reflectorTimestamping: r.reflectorTimestamping, enginesUnavailable: r.enginesUnavailable, reflector: r.reflector,
  }));
}

/**
 * Every direction of every link (stamp always; icmp where it has data, or where the
 * probe says its engine is unavailable), judged at `nowUs`: the window is
 * (nowUs − STATUS_WINDOW_S, nowUs]. /v1/status reads these through
 * StatusSnapshots (status-snapshot.ts), a whole second at a time; the network
 * metrics judge their scrape's instant.
 */
export async function judgedPathStatuses(store: Store, topology: Topology, nowUs: number, probes?: ProbeStatus[]): Promise<PathStatus[]> {
  const [rows, reported] = await Promise.all([
    latestPathStatus(store.client, STATUS_WINDOW_S, selfLoadGuardMs(topology.probing), nowUs), probes ?? probeStatuses(store, topology),
  ]);
  return judgePaths(topology, rows, reported, nowUs);
}

/** The verdict of every direction from the window's rows (sql latestPathStatus at `nowUs`) and the probes' reports. */
export function judgePaths(topology: Topology, rows: readonly PathStatusRow[], reported: readonly ProbeStatus[], nowUs: number): PathStatus[] {
  // The first report of a centre, as a search through the list would find it.
  const unavailableBy = new Map<string, Record<string, string>>();
  for (const p of reported) if (!unavailableBy.has(p.centre)) unavailableBy.set(p.centre, p.enginesUnavailable);
  const unavailable = (centre: string, engine: string) => unavailableBy.get(centre)?.[engine] ?? null;
  const byKey = new Map(rows.map((r) => [`${r.src}>${r.dst}>${r.engine}`, r]));
  const paths: PathStatus[] = [];
  for (const link of topology.links) {
    for (const [src, dst] of [[link.a, link.b], [link.b, link.a]] as const) {
      for (const engine of ENGINES) {
        const row = byKey.get(`${src}>${dst}>${engine}`);
        const missing = unavailable(src, engine);
        if (!row && engine === 'icmp' && !missing) continue;
        paths.push({ ...toStatus(src, dst, engine, row, link.rttTargetMs, link.sla.lossRatioMax, link.oneWayTargetMs, nowUs), engineUnavailable: missing });
      }
    }
  }
  return paths;
}

function toStatus(
  src: string, dst: string, engine: ProbeEngineName, row: PathStatusRow | undefined,
  targetMs: number, lossRatioMax: number, oneWayTargetMs: number, nowUs: number,
): Omit<PathStatus, 'engineUnavailable'> {
  if (!row) {
    return {
      src, dst, engine, lastTs: null, trains: 0, rttP50Ms: null, rttP99Ms: null, jitterMs: null, lossRatio: null, targetMs, state: 'nodata',
      oneWay: { p99Ms: null, basis: null, targetMs: oneWayTargetMs, state: 'nodata' }, timestamping: null,
    };
  }
  const p99 = ms(row.rttP99Us);
  let state: PathState;
  // A window holding only trains of our own throughput test has nothing the alerts would judge either: stale.
  if (nowUs - row.lastTsUs > STALE_AFTER_S * 1e6 || row.trains === 0) state = 'stale';
  else if ((row.lossRatio ?? 0) >= 1 || (p99 !== null && p99 > targetMs) || (row.lossRatio ?? 0) > lossRatioMax) state = 'breach';
  else if ((p99 !== null && p99 > 0.8 * targetMs) || (row.lossRatio ?? 0) > 0) state = 'warn';
  else state = 'ok';
  return {
    src, dst, engine,
    lastTs: new Date(row.lastTsUs / 1000).toISOString(),
    trains: row.trains,
    rttP50Ms: ms(row.rttP50Us),
    rttP99Ms: p99,
    jitterMs: ms(row.jitterUs),
    lossRatio: row.lossRatio,
    targetMs,
    state,
    oneWay: oneWayVerdict(row, p99, state, oneWayTargetMs),
    timestamping: row.timestamping,
  };
}

/**
 * The one-way delay against its target: measured when the window's clocks were
 * synchronised, else RTT p99 / 2. Stale stays stale; with no delay at all (every
 * packet lost) the direction's own verdict stands.
 */
function oneWayVerdict(row: PathStatusRow, rttP99Ms: number | null, state: PathState, targetMs: number): OneWayVerdict {
  const measured = ms(row.oneWayP99Us);
  const p99Ms = measured ?? (rttP99Ms === null ? null : rttP99Ms / 2);
  const basis = measured !== null ? 'measured' : p99Ms !== null ? 'rtt_half' : null;
  let oneWayState: PathState;
  if (state === 'stale' || p99Ms === null) oneWayState = state;
  else if (p99Ms > targetMs) oneWayState = 'breach';
  else if (p99Ms > 0.8 * targetMs) oneWayState = 'warn';
  else oneWayState = 'ok';
  return { p99Ms, basis, targetMs, state: oneWayState };
}

function ms(us: number | null): number | null {
  return us === null ? null : us / 1000;
}

const LINK_RANK: Record<PathState, number> = { nodata: 0, ok: 1, warn: 2, stale: 3, breach: 4 };

/**
 * A link's verdict from its two directions: the worse one; a link with one
 * direction unmeasured is at best stale (half of it is not known), and
 * nodata only when neither direction has ever reported.
 */
export function linkState(ab: PathState, ba: PathState): PathState {
  if (ab === 'nodata' && ba === 'nodata') return 'nodata';
  const worst = LINK_RANK[ab] >= LINK_RANK[ba] ? ab : ba;
  if (ab === 'nodata' || ba === 'nodata') return LINK_RANK[worst] >= LINK_RANK.stale ? worst : 'stale';
  return worst;
}

export const PATH_STATES: readonly PathState[] = ['ok', 'warn', 'breach', 'stale', 'nodata'];
