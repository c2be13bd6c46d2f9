/**
 * Cooperation between stateless servers through ClickHouse (migration 0006):
 * slot claims for jobs that must run once, and the tail of freshly stored
 * trains that feeds every server's live feed.
 */
import type { ClickHouseClient } from '@clickhouse/client';
import { formatDateTime64, parseDateTime64 } from './time.js';
import type { ProbeEngineName } from '../protocol/index.js';

/**
 * Claim `slot` of `job` for `holder`. Every contender inserts its own row
 * with the same deduplication token; ClickHouse stores only the first block
 * for a token, so exactly one row exists afterwards and its holder won.
 * Returns true only when this holder's row is the one stored. A contender
 * that cannot see the winner's row yet (a replica that has not fetched it)
 * sees no row of its own and correctly concludes it lost.
 */
export async function claimJobSlot(client: ClickHouseClient, job: string, slot: string, holder: string): Promise<boolean> {
  await client.insert({
    table: 'job_claims',
    values: [{ job, slot, holder, claimed_at: formatDateTime64(Date.now() * 1000) }],
    format: 'JSONEachRow',
    clickhouse_settings: { insert_deduplication_token: `claim/${job}/${slot}`, insert_deduplicate: 1, async_insert: 0 },
  });
  return (await jobSlotHolder(client, job, slot)) === holder;
}

/**
 * Who holds a slot, or null when nobody claimed it (or its row is not visible
 * here yet). On a replicated cluster the claim is written with a quorum (the
 * cluster insert settings) and read with sequential consistency, and if two
 * rows ever exist (a replica that lagged behind Keeper can store a block under
 * a token already used, ClickHouse #41048) everyone picks the same one: the
 * earliest claim, then the smallest holder.
 */
export async function jobSlotHolder(client: ClickHouseClient, job: string, slot: string): Promise<string | null> {
  const result = await client.query({
    query: `SELECT holder FROM job_claims WHERE job = {job:String} AND slot = {slot:String} ORDER BY claimed_at, holder LIMIT 1`,
    query_params: { job, slot },
    format: 'JSONEachRow',
    clickhouse_settings: { select_sequential_consistency: '1' },
  });
  const rows = await result.json<{ holder: string }>();
  return rows[0]?.holder ?? null;
}

export interface LiveTrainRow {
  storedAtUs: number;
  trainId: string;
  src: string;
  dst: string;
  engine: ProbeEngineName;
  flow: number;
  startedAtUs: number;
  sent: number;
  received: number;
  rttMinUs: number | null;
  rttMedianUs: number | null;
  rttP99Us: number | null;
  rttMaxUs: number | null;
  jitterUs: number | null;
}

/** Trains stored at or after `sinceUs` (insert time on the storing node), oldest first, at most `limit`. */
export async function liveTrainsSince(client: ClickHouseClient, sinceUs: number, limit: number): Promise<LiveTrainRow[]> {
  const result = await client.query({
    query: `SELECT stored_at, train_id, src, dst, engine, flow, ts, sent, received,
                   rtt_min_us, rtt_median_us, rtt_p99_us, rtt_max_us, jitter_us
            FROM live_trains
            WHERE stored_at >= {since:DateTime64(3, 'UTC')}
            ORDER BY stored_at, train_id
            LIMIT {limit:UInt32}`,
    query_params: { since: formatDateTime64(sinceUs).slice(0, 23), limit },
    format: 'JSONEachRow',
  });
  const rows = await result.json<{
    stored_at: string; train_id: string; src: string; dst: string; engine: string; flow: number; ts: string;
    sent: number; received: number; rtt_min_us: number | null; rtt_median_us: number | null;
    rtt_p99_us: number | null; rtt_max_us: number | null; jitter_us: number | null;
  }>();
  return rows.map((r) => ({
    storedAtUs: parseDateTime64(r.stored_at),
    trainId: r.train_id,
    src: r.src,
    dst: r.dst,
    engine: r.engine === 'icmp' ? 'icmp' : 'stamp',
    flow: Number(r.flow),
    startedAtUs: parseDateTime64(r.ts),
    sent: Number(r.sent),
    received: Number(r.received),
    rttMinUs: r.rtt_min_us,
    rttMedianUs: r.rtt_median_us,
    rttP99Us: r.rtt_p99_us,
    rttMaxUs: r.rtt_max_us,
    jitterUs: r.jitter_us,
  }));
}
