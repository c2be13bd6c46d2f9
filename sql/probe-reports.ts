/**
 * What probes say about themselves (table probe_reports, migration 0013):
 * written by whichever server a probe talks to, read by every server.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { formatDateTime64, parseDateTime64 } from './time.js';

export interface ProbeReportRow {
  reportedAtUs: number;
  centre: string;
  datapath: 'native' | 'js';
  datapathReason: string | null;
  reflectorTimestamping: string;
  enginesUnavailable: Record<string, string>;
  reflector: { received: number; reflected: number; drops: Record<string, number> } | null;
}

export async function insertProbeReport(client: ClickHouseClient, r: ProbeReportRow): Promise<void> {
  await client.insert({
    table: 'probe_reports',
    values: [{
      reported_at: formatDateTime64(r.reportedAtUs).slice(0, 23),
      centre: r.centre,
      datapath: r.datapath,
      datapath_reason: r.datapathReason ?? '',
      reflector_ts: r.reflectorTimestamping,
      engines_unavailable: r.enginesUnavailable,
      reflector_received: r.reflector?.received ?? 0,
      reflector_reflected: r.reflector?.reflected ?? 0,
      reflector_drops: r.reflector?.drops ?? {},
    }],
    format: 'JSONEachRow',
  });
}

/** The newest report of every centre that reported in the last `days` days. */
export async function latestProbeReports(client: ClickHouseClient, days = 30): Promise<ProbeReportRow[]> {
  const result = await client.query({
    query: `
SELECT centre, toString(max(reported_at)) AS last_at,
       argMax(datapath, reported_at) AS datapath, argMax(datapath_reason, reported_at) AS datapath_reason,
       argMax(reflector_ts, reported_at) AS reflector_ts, argMax(engines_unavailable, reported_at) AS engines_unavailable,
       argMax(reflector_received, reported_at) AS received, argMax(reflector_reflected, reported_at) AS reflected,
       argMax(reflector_drops, reported_at) AS drops
FROM probe_reports
WHERE reported_at >= now64(3) - toIntervalDay({days:UInt32})
GROUP BY centre
ORDER BY centre`,
    query_params: { days },
    format: 'JSONEachRow',
  });
  const rows = await result.json<{
    centre: string; last_at: string; datapath: string; datapath_reason: string; reflector_ts: string;
    engines_unavailable: Record<string, string>; received: string | number; reflected: string | number; drops: Record<string, string | number>;
  }>();
  return rows.map((r) => ({
    reportedAtUs: parseDateTime64(r.last_at),
    centre: r.centre,
    datapath: r.datapath === 'native' ? 'native' : 'js',
    datapathReason: r.datapath_reason || null,
    reflectorTimestamping: r.reflector_ts,
    enginesUnavailable: r.engines_unavailable,
    reflector: { received: Number(r.received), reflected: Number(r.reflected), drops: Object.fromEntries(Object.entries(r.drops).map(([k, v]) => [k, Number(v)])) },
  }));
}
