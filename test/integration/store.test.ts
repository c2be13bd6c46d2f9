/**
 * The store on the real embedded engine: migrations are idempotent and
 * recorded, series come from raw trains or the rollup depending on range,
 * and a second process on the same data directory gets a one-line error.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toRow } from '../../collector/index.js';
import { insertTrains, linkSeries, migrate, openStore, seriesPlan, type Store } from '../../sql/index.js';

const dataDir = mkdtempSync(join(tmpdir(), 'citymesh-store-'));
let store: Store;

beforeAll(async () => {
  store = await openStore({ dataDir });
});
afterAll(async () => {
  await store?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

async function schemaSnapshot(): Promise<unknown> {
  const result = await store.client.query({
    query: "SELECT name, create_table_query FROM system.tables WHERE database = currentDatabase() ORDER BY name",
    format: 'JSONEachRow',
  });
  return result.json();
}

describe('migrations', () => {
  it('apply once, record each version in the ledger, and change nothing when run again', async () => {
    const first = await migrate(store.client);
    expect(first.applied).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13, 14, 15, 16, 17, 18, 19]);
    const before = await schemaSnapshot();
    const second = await migrate(store.client);
    expect(second).toEqual({ applied: [], skipped: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13, 14, 15, 16, 17, 18, 19] });
    expect(await schemaSnapshot()).toEqual(before);
    const ledger = await store.client.query({ query: 'SELECT version, name FROM schema_migrations ORDER BY version', format: 'JSONEachRow' });
    expect(await ledger.json()).toEqual([
      { version: 1, name: 'latency_trains' },
      { version: 2, name: 'latency_rollup_1m' },
      { version: 3, name: 'train_ids' },
      { version: 4, name: 'capacity' },
      { version: 5, name: 'sla' },
      { version: 6, name: 'coordination' },
      { version: 7, name: 'alerts' },
      { version: 8, name: 'diagnostics' },
      { version: 9, name: 'load_windows' },
      { version: 10, name: 'batch_ledger' },
      { version: 12, name: 'latency_totals' },
      { version: 13, name: 'timestamping' },
      { version: 14, name: 'self_load_totals' },
      { version: 15, name: 'path_latest' },
      { version: 16, name: 'sla_minutes_hourly_rollup' },
      { version: 17, name: 'path_recent' },
      { version: 18, name: 'sla_link_hours' },
      { version: 19, name: 'latency_1m_recent' },
    ]);
  });
});

describe('series', () => {
  it('chooses raw trains for short ranges, the 1-minute rollup for long ones, whole hours (the hourly rollup) for months', () => {
    expect(seriesPlan(0, 15 * 60e6, 900)).toEqual({ source: 'raw', stepS: 1 });
    expect(seriesPlan(0, 3600e6, 600)).toEqual({ source: 'raw', stepS: 6 });
    expect(seriesPlan(0, 7 * 86_400e6, 1000)).toEqual({ source: 'rollup', stepS: 660 });
    expect(seriesPlan(0, 30 * 86_400e6, 600)).toEqual({ source: 'rollup', stepS: 4320 });
    expect(seriesPlan(0, 395 * 86_400e6, 600)).toEqual({ source: 'rollup', stepS: 57_600 });
  });

  it('computes exact percentiles from raw packets and t-digest ones from the rollup, aligned with gaps', async () => {
    const base = Math.floor(Date.now() / 60_000) * 60_000 * 1000 - 30 * 60e6; // a minute boundary, 30 min ago
    const rows = [0, 1, 2].map((i) =>
      toRow('a', 'series-test', {
        trainId: `series-test-${i}`,
        dst: 'b', engine: 'stamp', startedAtUs: base + i * 1e6, flow: 0, srcPort: 1, dscp: 0,
        sent: 4, received: 4, lost: 0, duplicated: 0, reordered: 0,
        rttMinUs: 100, rttMedianUs: 250, rttP99Us: 400, rttMaxUs: 400, jitterUs: 100,
        rttsUs: [100, 200, 300, 400], synced: false, errorEstimateUs: 0, fwdUs: [], revUs: [],
      }),
    );
    await insertTrains(store.client, rows, 'series-test');
    const raw = await linkSeries(store.client, { src: 'a', dst: 'b', engine: 'stamp', fromUs: base, toUs: base + 10e6, points: 10 });
    expect(raw.source).toBe('raw');
    expect(raw.t.slice(0, 4)).toEqual([base / 1e6, base / 1e6 + 1, base / 1e6 + 2, base / 1e6 + 3]);
    expect(raw.packets.slice(0, 4)).toEqual([4, 4, 4, 0]);
    expect(raw.minUs[0]).toBe(100);
    expect(raw.maxUs[0]).toBe(400);
    expect(raw.p50Us[3]).toBeNull(); // a gap is null, never zero
    expect(raw.lossRatio[0]).toBe(0);

    const rollup = await linkSeries(store.client, { src: 'a', dst: 'b', engine: 'stamp', fromUs: base - 3600e6, toUs: base + 3600e6, points: 60 });
    expect(rollup.source).toBe('rollup');
    expect(rollup.stepS).toBe(120);
    const i = rollup.t.indexOf(Math.floor(base / 1e6 / 120) * 120);
    expect(rollup.packets[i]).toBe(12);
    expect(rollup.minUs[i]).toBe(100);
    expect(rollup.maxUs[i]).toBe(400);
    expect(rollup.p99Us[i]).toBeGreaterThanOrEqual(300);
    expect(rollup.p99Us[i]).toBeLessThanOrEqual(400);

    // Ten days in 60 points: 4-hour steps from the hourly rollup, the same packets and extremes.
    const hourly = await linkSeries(store.client, { src: 'a', dst: 'b', engine: 'stamp', fromUs: base - 5 * 86_400e6, toUs: base + 5 * 86_400e6, points: 60 });
    expect(hourly.stepS).toBe(14_400);
    const h = hourly.t.indexOf(Math.floor(base / 1e6 / 14_400) * 14_400);
    expect([hourly.packets[h], hourly.minUs[h], hourly.maxUs[h]]).toEqual([12, 100, 400]);
    expect(hourly.packets.reduce((sum, n) => sum + n, 0)).toBe(12);
  });
});

describe('request settings', () => {
  it('do not carry over: an insert without a token after one with a token is not taken for a replay', async () => {
    await store.client.command({ query: 'CREATE TABLE settings_carry (x UInt32) ENGINE = MergeTree ORDER BY x SETTINGS non_replicated_deduplication_window = 100' });
    await store.client.insert({ table: 'settings_carry', values: [{ x: 1 }], format: 'JSONEachRow', clickhouse_settings: { insert_deduplication_token: 'carry-test' } });
    await store.client.insert({ table: 'settings_carry', values: [{ x: 2 }], format: 'JSONEachRow' });
    await store.client.insert({ table: 'settings_carry', values: [{ x: 3 }], format: 'JSONEachRow' });
    const result = await store.client.query({ query: 'SELECT x FROM settings_carry ORDER BY x', format: 'JSONEachRow' });
    expect((await result.json<{ x: number }>()).map((r) => r.x)).toEqual([1, 2, 3]);
  });
});

describe('data directory lock', () => {
  it('a second process on the same directory exits with one clear line', () => {
    const result = spawnSync(process.execPath, ['bin/citymesh.js', 'server', '--data-dir', dataDir, '--port', '0', '--config', 'config/demo-loopback.yaml'], {
      encoding: 'utf8',
      env: {
        ...process.env,
        CITYMESH_TOKEN_LINGANG: 't1', CITYMESH_TOKEN_JINSHAN: 't2', CITYMESH_TOKEN_SONGJIANG: 't3',
        CITYMESH_TOKEN_PUDONG: 't4', CITYMESH_TOKEN_XUHUI: 't5', CITYMESH_OPERATOR_TOKEN: 't6', CITYMESH_REGULATOR_TOKEN: 't7', CITYMESH_LOG_LEVEL: 'silent',
      },
      timeout: 60_000,
    });
    expect(result.status).toBe(1);
    const lines = result.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(`data directory ${dataDir} is already in use by another process`);
    expect(result.stderr).not.toMatch(/\bat .*\.js:\d+/); // no stack trace
  });
});
