/**
 * Placement evidence for the city's scheduling platform: from one centre, the
 * state of each direct link right now. Latency is exact (raw packets of the
 * last `windowS` seconds, worst direction); capacity is measured (the newest
 * successful throughput test within `testMaxAgeS`, its worse direction).
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { parseDateTime64 } from './time.js';

export interface PlacementEvidence {
  peer: string;
  /** Trains from the centre to the peer, and back, in the window. */
  outTrains: number;
  inTrains: number;
  /** Worst direction's exact p99 RTT (µs); null unless both directions delivered packets. */
  rttP99Us: number | null;
  lossRatio: number | null;
  /** Newest successful test's worse direction, bit/s. */
  testedBps: number | null;
  testedAtUs: number | null;
}

export async function placementEvidence(
  client: ClickHouseClient,
  q: { centre: string; peers: string[]; windowS: number; testMaxAgeS: number; engine: string },
): Promise<PlacementEvidence[]> {
  if (q.peers.length === 0) return [];
  const result = await client.query({
    query: `
WITH
lat AS (
    SELECT if(src = {centre:String}, dst, src) AS peer,
           countIf(src = {centre:String}) AS out_trains,
           countIf(dst = {centre:String}) AS in_trains,
           sumIf(received, src = {centre:String}) AS out_received,
           sumIf(received, dst = {centre:String}) AS in_received,
           quantileExactArrayIf(0.99)(rtts_us, src = {centre:String}) AS out_p99,
           quantileExactArrayIf(0.99)(rtts_us, dst = {centre:String}) AS in_p99,
           sum(sent) AS l_sent, sum(lost) AS l_lost
    FROM latency_trains
    WHERE engine = {engine:String} AND ts >= now64(6) - toIntervalSecond({window:UInt32})
      AND ((src = {centre:String} AND dst IN {peers:Array(String)}) OR (dst = {centre:String} AND src IN {peers:Array(String)}))
    GROUP BY peer
),
tput AS (
    SELECT if(src = {centre:String}, dst, src) AS peer,
           -- Two tests of a link can share a timestamp (one from each end): the test id breaks the tie, whatever the read order.
           argMax(least(coalesce(forward_bps, reverse_bps), coalesce(reverse_bps, forward_bps)), (ts, test_id)) AS t_bps,
           toString(max(ts)) AS t_at
    FROM throughput_tests
    WHERE ok AND (forward_bps IS NOT NULL OR reverse_bps IS NOT NULL) AND ts >= now64(3) - toIntervalSecond({test_age:UInt32})
      AND ((src = {centre:String} AND dst IN {peers:Array(String)}) OR (dst = {centre:String} AND src IN {peers:Array(String)}))
    GROUP BY peer
)
SELECT p.peer AS peer, out_trains, in_trains,
       if(out_received > 0 AND in_received > 0, greatest(out_p99, in_p99), NULL) AS rtt_p99_us,
       if(l_sent > 0, l_lost / l_sent, NULL) AS loss_ratio,
       if(t_at != '', t_bps, NULL) AS tested_bps, t_at
FROM (SELECT arrayJoin({peers:Array(String)}) AS peer) AS p
LEFT JOIN lat ON lat.peer = p.peer
LEFT JOIN tput ON tput.peer = p.peer
ORDER BY rtt_p99_us IS NULL, rtt_p99_us, peer
SETTINGS join_use_nulls = 0`,
    query_params: { centre: q.centre, peers: q.peers, window: q.windowS, test_age: q.testMaxAgeS, engine: q.engine },
    format: 'JSONEachRow',
  });
  const rows = await result.json<{
    peer: string; out_trains: number; in_trains: number; rtt_p99_us: number | null; loss_ratio: number | null;
    tested_bps: number | null; t_at: string;
  }>();
  return rows.map((r) => ({
    peer: r.peer,
    outTrains: Number(r.out_trains),
    inTrains: Number(r.in_trains),
    rttP99Us: finite(r.rtt_p99_us),
    lossRatio: finite(r.loss_ratio),
    testedBps: finite(r.tested_bps),
    testedAtUs: r.t_at ? parseDateTime64(r.t_at) : null,
  }));
}

function finite(v: number | null | undefined): number | null {
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}
