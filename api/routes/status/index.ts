import { Hono } from 'hono';
import { latestPathStatus, latestProbeReports, type PathStatusRow } from '../../../sql/index.js';
import type { PathState, PathStatus, ProbeStatus, StatusResponse } from '../../contract.js';
import type { ApiDeps } from '../../deps.js';

/** Status is judged on the last minute of packets; a path silent for 60 s is stale. */
const WINDOW_S = 60;
const STALE_AFTER_S = 60;

export function statusRoutes(deps: ApiDeps) {
  return new Hono().get('/status', async (c) => {
    const [rows, reports] = await Promise.all([latestPathStatus(deps.store.client, WINDOW_S), latestProbeReports(deps.store.client)]);
    const known = new Set(deps.topology.centres.map((c) => c.id));
    const probes: ProbeStatus[] = reports.filter((r) => known.has(r.centre)).map((r) => ({
      centre: r.centre, reportedAt: new Date(r.reportedAtUs / 1000).toISOString(), datapath: r.datapath, datapathReason: r.datapathReason,
      reflectorTimestamping: r.reflectorTimestamping, enginesUnavailable: r.enginesUnavailable, reflector: r.reflector,
    }));
    const unavailable = (centre: string, engine: string) => probes.find((p) => p.centre === centre)?.enginesUnavailable[engine] ?? null;
    const nowUs = Date.now() * 1000;
    const byKey = new Map(rows.map((r) => [`${r.src}>${r.dst}>${r.engine}`, r]));
    const paths: PathStatus[] = [];
    for (const link of deps.topology.links) {
      for (const [src, dst] of [[link.a, link.b], [link.b, link.a]] as const) {
        for (const engine of ['stamp', 'icmp'] as const) {
          const row = byKey.get(`${src}>${dst}>${engine}`);
          const missing = unavailable(src, engine);
          if (!row && engine === 'icmp' && !missing) continue;
          paths.push({ ...toStatus(src, dst, engine, row, link.rttTargetMs, link.sla.lossRatioMax, nowUs), engineUnavailable: missing });
        }
      }
    }
    const body: StatusResponse = { generatedAt: new Date(nowUs / 1000).toISOString(), windowS: WINDOW_S, staleAfterS: STALE_AFTER_S, paths, probes };
    return c.json(body);
  });
}

function toStatus(
  src: string, dst: string, engine: 'stamp' | 'icmp', row: PathStatusRow | undefined,
  targetMs: number, lossRatioMax: number, nowUs: number,
): Omit<PathStatus, 'engineUnavailable'> {
  if (!row) {
    return { src, dst, engine, lastTs: null, trains: 0, rttP50Ms: null, rttP99Ms: null, jitterMs: null, lossRatio: null, targetMs, state: 'nodata', timestamping: null };
  }
  const p99 = ms(row.rttP99Us);
  let state: PathState;
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
    timestamping: row.timestamping,
  };
}

function ms(us: number | null): number | null {
  return us === null ? null : us / 1000;
}
