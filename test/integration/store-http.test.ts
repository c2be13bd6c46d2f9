/**
 * The embedded store served over ClickHouse's HTTP interface: the official
 * client, pointed at it by URL, must behave as it does in-process —
 * parameters byte-exact (the SQL-injection corpus included), errors with
 * ClickHouse's code and type, inserts deduplicated by token, the same
 * migrations, slot claims with one winner.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LiveHub } from '../../collector/index.js';
import { claimJobSlot, insertTrains, liveTrainsSince, migrate, openStore, serveEmbeddedStore, type EmbeddedStoreServer, type Store } from '../../sql/index.js';
import { train } from '../helpers/sla-month.js';

let dir: string;
let served: EmbeddedStoreServer;
let store: Store;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'citymesh-store-http-'));
  served = await serveEmbeddedStore({ dataDir: join(dir, 'data'), port: 0 });
  store = await openStore({ url: served.url, dataDir: 'unused' });
  await migrate(store.client);
});

afterAll(async () => {
  await store?.close();
  await served?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function one<T>(query: string, params: Record<string, unknown>): Promise<T> {
  const result = await store.client.query({ query, query_params: params, format: 'JSONEachRow' });
  return (await result.json<T>())[0]!;
}

describe('the embedded store over HTTP', () => {
  it('passes string parameters byte for byte, whatever they hold', async () => {
    const nasty = ["'; DROP TABLE latency_trains; --", 'tab\there', 'new\nline', 'back\\slash', "quote'", '\\N', '回声 – "x"', '\0nul', '{x:String}'];
    for (const value of nasty) {
      const row = await one<{ v: string; n: number }>('SELECT {v:String} AS v, length({v:String}) AS n', { v: value });
      expect(row.v).toBe(value);
      expect(Number(row.n)).toBe(Buffer.byteLength(value));
    }
    const row = await one<{ a: string[]; d: string; n: number | null; l: string }>(
      `SELECT {a:Array(String)} AS a, {d:DateTime64(3, 'UTC')} AS d, {n:Nullable(UInt8)} AS n, {l:LowCardinality(String)} AS l`,
      { a: ['east', 'west'], d: '2026-11-29 10:00:00.123', n: null, l: 'x\ty' },
    );
    expect(row).toEqual({ a: ['east', 'west'], d: '2026-11-29 10:00:00.123', n: null, l: 'x\ty' });
  });

  it('reports ClickHouse errors with their code and type, and refuses what it cannot carry', async () => {
    await expect(store.client.query({ query: 'SELECT * FROM no_such_table', format: 'JSONEachRow' })).rejects.toMatchObject({ code: '60', type: 'UNKNOWN_TABLE' });
    await expect(store.client.command({ query: 'SELEC 1' })).rejects.toMatchObject({ code: '62', type: 'SYNTAX_ERROR' });
    await expect(one('SELECT {a:Array(String)} AS a', { a: ["it's"] })).rejects.toThrow(/backslash escapes cannot be passed/);
    expect((await store.client.ping()).success).toBe(true);
  });

  it('stores a retried batch once (deduplication token) and feeds live_trains', async () => {
    const nowUs = Date.now() * 1000;
    const rows = [train('east', 'west', nowUs, 250), train('west', 'east', nowUs, 260)];
    await insertTrains(store.client, rows, 'store-http-batch-1');
    await insertTrains(store.client, rows, 'store-http-batch-1');
    const counted = await one<{ n: number }>('SELECT count() AS n FROM latency_trains WHERE batch_id = {b:String}', { b: 'sla-test' });
    expect(Number(counted.n)).toBe(2);
    const live = await liveTrainsSince(store.client, nowUs - 60e6, 100);
    expect(live.map((t) => t.trainId).sort()).toEqual(rows.map((r) => r.train_id).sort());
    // The hub publishes a train it has already seen only once (own ingest, then the tail).
    const hub = new LiveHub();
    const seen: string[] = [];
    hub.subscribe((trains) => seen.push(...trains.map((t) => t.trainId!)));
    hub.publish(live);
    hub.publish(live);
    expect(seen.sort()).toEqual(rows.map((r) => r.train_id).sort());
  });

  it('gives each job slot exactly one holder among racing claimants', async () => {
    for (let slot = 0; slot < 5; slot++) {
      const holders = Array.from({ length: 8 }, (_, i) => `server-${i}`);
      const won = await Promise.all(holders.map((h) => claimJobSlot(store.client, 'test-job', `slot-${slot}`, h)));
      expect(won.filter(Boolean)).toHaveLength(1);
    }
  });

  it('serves loopback only', async () => {
    await expect(serveEmbeddedStore({ dataDir: join(dir, 'other'), host: '0.0.0.0', port: 0 })).rejects.toThrow(/loopback only/);
  });
});
