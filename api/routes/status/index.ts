import { Hono } from 'hono';
import { latestPathStatus, type PathStatusRow } from '../../../sql/index.js';
import type { PathState, PathStatus, StatusResponse } from '../../contract.js';
import type { ApiDeps } from '../../deps.js';

/** Status is judged on the last minute of packets; a path silent for 60 s is stale. */
const WINDOW_S = 60;
const STALE_AFTER_S = 60;

export function statusRoutes(deps: ApiDeps) {
  return new Hono().get('/status', async (c) => {
    const rows = await latestPathStatus(deps.store.client, WINDOW_S);
    const nowUs = Date.now() * 1000;
    const byKey = new Map(rows.map((r) => [`${r.src}>${r.dst}>${r.engine}`, r]));
    const paths: PathStatus[] = [];
    for (const link of deps.topology.links) {
      for (const [src, dst] of [[link.a, link.b], [link.b, link.a]] as const) {
        for (const engine of ['stamp', 'icmp'] as const) {
          const row = byKey.get(`${src}>${dst}>${engine}`);
          if (!row && engine === 'icmp') continue;
          paths.push(toStatus(src, dst, engine, row, link.rttTargetMs, link.sla.lossRatioMax, nowUs));
        }
      }
    }
    const body: StatusResponse = { generatedAt: new Date(nowUs / 1000).toISOString(), windowS: WINDOW_S, staleAfterS: STALE_AFTER_S, paths };
    return c.json(body);
  });
}

function toStatus(
  src: string, dst: string, engine: 'stamp' | 'icmp', row: PathStatusRow | undefined,
  targetMs: number, lossRatioMax: number, nowUs: number,
): PathStatus {
  if (!row) {
    return { src, dst, engine, lastTs: null, trains: 0, rttP50Ms: null, rttP99Ms: null, jitterMs: null, lossRatio: null, targetMs, state: 'nodata' };
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
  };
}

function ms(us: number | null): number | null {
  return us === null ? null : us / 1000;
}
