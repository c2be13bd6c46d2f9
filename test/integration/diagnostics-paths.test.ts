/**
 * Path changes as the SQL in sql/diagnostics.ts computes them, on the real
 * embedded ClickHouse: sequences of stored traceroutes per src → dst, and
 * which of them count as a change. Hop addresses are plain strings here.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { insertDiagnostics, migrate, openStore, pathChanges, formatDateTime64, type DiagnosticsRow, type Store } from '../../sql/index.js';

let store: Store;
let dir: string;
const t0 = Date.UTC(2026, 10, 2, 8, 0, 0) * 1000;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'citymesh-paths-'));
  store = await openStore({ dataDir: dir });
  await migrate(store.client);
});
afterAll(async () => {
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** Hops as written by hand: 'a|b' = two routers answered that TTL, '*' = none did. */
function row(src: string, dst: string, minute: number, hops: string[], reached: boolean): DiagnosticsRow {
  const addresses = hops.map((h) => (h === '*' ? ['', '', ''] : h.split('|')));
  return {
    ts: formatDateTime64(t0 + minute * 60e6).slice(0, 23), src, dst, run_id: `dg-${src}-${dst}-${minute}`, request_id: '', trigger: 'breach',
    reason: 'test', duration_ms: 1, tr_ok: hops.length > 0, tr_error: hops.length > 0 ? '' : 'traceroute not found', tr_tool: '', tr_max_hops: 16,
    tr_reached: reached, hop_ttls: hops.map((_, i) => i + 1), hop_addresses: addresses,
    hop_rtts_us: addresses.map((h) => h.map((a) => (a ? 10 : null))), hop_flags: addresses.map((h) => h.map(() => '')),
    pmtu_ok: true, pmtu_error: '', pmtu_tool: '', pmtu: 1500, pmtu_drop_ttl: null, pmtu_reached: true,
    ft_ok: false, ft_error: 'none', ft_count: 0, ft_interval_ms: 0, ft_sent: 0, ft_received: 0,
    ft_rtt_min_us: null, ft_rtt_median_us: null, ft_rtt_p99_us: null, ft_rtt_max_us: null, ft_jitter_us: null, batch_id: `b-${src}-${minute}`,
  };
}

async function changes(src: string, dst: string, fromMinute = -10): Promise<{ minute: number; before: string[][]; after: string[][] }[]> {
  const found = await pathChanges(store.client, { a: src, b: dst, fromUs: t0 + fromMinute * 60e6, toUs: t0 + 100 * 60e6 });
  return found.filter((c) => c.src === src).map((c) => ({ minute: (c.tsUs - t0) / 60e6, before: c.before, after: c.after }));
}

describe('path changes', () => {
  it('ignores a destination that rate-limits its answers and shows up after silent hops', async () => {
    await insertDiagnostics(store.client, [
      row('s1', 'd1', 0, ['r1', 'dest'], true),
      row('s1', 'd1', 1, ['r1', '*', '*', '*', 'dest'], true),
      row('s1', 'd1', 2, ['r1', 'dest'], true),
    ], 's1');
    expect(await changes('s1', 'd1')).toEqual([]);
  });

  it('treats ECMP answers from the same routers as the same path, a new router as a change', async () => {
    await insertDiagnostics(store.client, [
      row('s2', 'd2', 0, ['r1|r2', 'dest'], true),
      row('s2', 'd2', 1, ['r2', 'dest'], true),
      row('s2', 'd2', 2, ['r3', 'dest'], true),
    ], 's2');
    expect(await changes('s2', 'd2')).toEqual([{ minute: 2, before: [['r2'], ['dest']], after: [['r3'], ['dest']] }]);
  });

  it('sees a path that got longer or shorter', async () => {
    await insertDiagnostics(store.client, [
      row('s3', 'd3', 0, ['r1', 'dest'], true),
      row('s3', 'd3', 1, ['r1', '*', 'x', 'dest'], true),
      row('s3', 'd3', 2, ['r1', 'dest'], true),
    ], 's3');
    expect((await changes('s3', 'd3')).map((c) => c.minute)).toEqual([1, 2]);
  });

  it('skips runs whose traceroute heard nothing, and compares with the run before the window', async () => {
    await insertDiagnostics(store.client, [
      row('s4', 'd4', 0, ['r1', 'dest'], true),
      row('s4', 'd4', 1, [], false),
      row('s4', 'd4', 2, ['*', '*', '*'], false),
      row('s4', 'd4', 3, ['r1', 'dest'], true),
      row('s4', 'd4', 4, ['r9', 'dest'], true),
    ], 's4');
    expect((await changes('s4', 'd4')).map((c) => c.minute)).toEqual([4]);
    expect(await changes('s4', 'd4', 3.5)).toEqual([{ minute: 4, before: [['r1'], ['dest']], after: [['r9'], ['dest']] }]);
    // Each direction is its own sequence.
    await insertDiagnostics(store.client, [row('d4', 's4', 5, ['q1', 'dest'], true)], 'd4');
    expect(await changes('d4', 's4')).toEqual([]);
  });
});
