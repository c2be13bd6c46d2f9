/**
 * The embedded engine's background work, as benchmarks see it.
 */
import type { ClickHouseClient } from '@clickhouse/client';

/**
 * Wait (bounded by `boundMs`) until no background merge runs, and say how
 * long that took and what was left: a figure measured next should price the
 * work its own load causes, not the backlog of a burst measured before it
 * (or of data generated in bulk, as 30 days arriving over 30 days would have
 * been merged long ago).
 */
export async function settleMerges(client: ClickHouseClient, boundMs: number): Promise<{ waitedMs: number; mergesLeft: number }> {
  const start = performance.now();
  for (;;) {
    const [row] = await client.query({ query: 'SELECT count() AS n FROM system.merges', format: 'JSONEachRow' }).then((r) => r.json<{ n: number | string }>());
    const mergesLeft = Number(row?.n ?? 0);
    const waitedMs = performance.now() - start;
    if (mergesLeft === 0 || waitedMs >= boundMs) return { waitedMs, mergesLeft };
    await new Promise((r) => setTimeout(r, 500));
  }
}
