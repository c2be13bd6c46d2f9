/**
 * The live window from path_recent (migration 0017), on a real embedded
 * store: /v1/status's query and the network metrics' window read the last
 * hour of trains ordered by time instead of latency_trains.
 *
 * - trains of the window are counted once, with exact percentiles, our own
 *   load (marked by the collector) left out; a backfill older than the hour
 *   never enters the table, so no insert of old data can fill it;
 * - data stored before the migration: its seed copies the last hour once,
 *   and the status counts those trains once.
 */
import { describe, expect, it } from 'vitest';
import {
  insertTrains, latestPathStatus, migrate, pathWindows, schemaMigrations, type Store, type TrainRow,
} from '../../sql/index.js';
import { train } from '../helpers/sla-month.js';
import { tempStores } from '../helpers/temp-store.js';

const store = tempStores();

/** Ten trains alfa → bravo over the last 20 s, 10 packets each, RTTs 100 … 199 µs in all: exact p50 150, p99 199. */
function windowTrains(nowUs: number): TrainRow[] {
  return Array.from({ length: 10 }, (_, i) => {
    const row = train('alfa', 'bravo', nowUs - 20e6 + i * 1e6, 0);
    row.rtts_us = Array.from({ length: 10 }, (_, k) => 100 + i * 10 + k);
    return row;
  });
}

async function recentRows(s: Store): Promise<number> {
  const result = await s.client.query({ query: 'SELECT count() AS n FROM path_recent', format: 'JSONEachRow' });
  return Number((await result.json<{ n: number }>())[0]!.n);
}

describe('path_recent: the live window', () => {
  it('counts the window once with exact percentiles, leaves our own load out, and never takes a backfill', async () => {
    const s = await store('path-recent');
    try {
      await migrate(s.client);
      const nowUs = Date.now() * 1000;
      const ours = train('alfa', 'bravo', nowUs - 5e6, 9000);
      ours.self_load = 1;
      // A month-old day of trains in one INSERT (24 hourly partitions of latency_trains' month): none is live.
      const backfill = Array.from({ length: 24 * 60 }, (_, m) => train('bravo', 'alfa', nowUs - 30 * 86_400e6 + m * 60e6, 700));
      await insertTrains(s.client, [...windowTrains(nowUs), ours, train('bravo', 'alfa', nowUs - 2 * 3600e6, 800)], 'path-recent-live');
      await insertTrains(s.client, backfill, 'path-recent-backfill');
      expect(await recentRows(s)).toBe(11);

      const status = await latestPathStatus(s.client, 60);
      const ab = status.find((p) => p.src === 'alfa' && p.dst === 'bravo')!;
      expect([ab.trains, ab.rttP50Us, ab.rttP99Us, ab.lossRatio, ab.selfLoadTrains]).toEqual([10, 150, 199, 0, 1]);
      // bravo → alfa measured two hours ago: listed (path_latest), nothing in the window.
      expect(status.find((p) => p.src === 'bravo' && p.dst === 'alfa')?.trains).toBe(0);

      const windows = await pathWindows(s.client, 60, Date.now(), 0);
      expect(windows.map((w) => [w.src, w.dst, w.trains, w.sent, w.rttCount, w.rttSumUs])).toEqual([
        ['alfa', 'bravo', 10, 100, 100, Array.from({ length: 100 }, (_, k) => 100 + k).reduce((x, y) => x + y, 0)],
      ]);
    } finally {
      await s.close();
    }
  });

  it('is seeded from the last hour of trains stored before migration 0017, each train once', async () => {
    const s = await store('path-recent-seed');
    try {
      await migrate(s.client, schemaMigrations.filter((m) => m.version <= 16));
      const nowUs = Date.now() * 1000;
      await insertTrains(s.client, [...windowTrains(nowUs), train('bravo', 'alfa', nowUs - 2 * 3600e6, 800)], 'before-0017');
      expect((await migrate(s.client, schemaMigrations.filter((m) => m.version <= 17))).applied).toEqual([17]);
      expect(await recentRows(s)).toBe(10);
      // Applying the seed statement again (an interrupted migration run again) copies nothing twice.
      const seed = schemaMigrations.find((m) => m.version === 17)!.statements.at(-1)!;
      await s.client.command({ query: seed });
      expect(await recentRows(s)).toBe(10);
      const ab = (await latestPathStatus(s.client, 60)).find((p) => p.src === 'alfa' && p.dst === 'bravo')!;
      expect([ab.trains, ab.rttP50Us, ab.rttP99Us]).toEqual([10, 150, 199]);
    } finally {
      await s.close();
    }
  });
});
