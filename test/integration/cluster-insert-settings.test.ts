/**
 * A store opened for a cluster sends the cluster's insert settings with the
 * collector's own inserts (insertTrains, as the collector calls it), merged
 * with each batch's deduplication token. Observed inside the real engine: a
 * materialized view on latency_trains records, with getSetting(), the
 * settings each INSERT ran with. There is no ClickHouse cluster here, so what
 * the settings do on one (foreground distributed insert, quorum, Keeper
 * deduplication) is not exercised; that they arrive is.
 *
 * The embedded engine keeps a request's settings for later requests of the
 * same session, so each store below is a fresh session and the plain store
 * goes first.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { toRow } from '../../collector/index.js';
import { clusterInsertSettings, insertTrains, migrate, openStore, type Store } from '../../sql/index.js';

const dataDir = mkdtempSync(join(tmpdir(), 'citymesh-cluster-settings-'));
let store: Store | undefined;

afterAll(async () => {
  await store?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

const watched = Object.keys(clusterInsertSettings());

function train(id: string) {
  return toRow('alfa', `batch-${id}`, {
    trainId: id, dst: 'bravo', engine: 'stamp', startedAtUs: Date.now() * 1000, flow: 0, srcPort: 1, dscp: 0,
    sent: 1, received: 1, lost: 0, duplicated: 0, reordered: 0, rttMinUs: 100, rttMedianUs: 100, rttP99Us: 100, rttMaxUs: 100,
    jitterUs: null, rttsUs: [100], synced: false, errorEstimateUs: 0, fwdUs: [], revUs: [],
  });
}

async function seen(client: Store['client'], trainId: string): Promise<Record<string, string>> {
  const result = await client.query({
    query: 'SELECT token, settings FROM insert_settings_seen WHERE train_id = {id:String}',
    query_params: { id: trainId },
    format: 'JSONEachRow',
  });
  const rows = await result.json<{ token: string; settings: Record<string, string> }>();
  expect(rows).toHaveLength(1);
  return { token: rows[0]!.token, ...rows[0]!.settings };
}

describe('cluster insert settings', () => {
  it('are absent from a plain store\'s inserts and present, beside the batch token, in a cluster store\'s', async () => {
    store = await openStore({ dataDir });
    await migrate(store.client);
    await store.client.command({
      query: 'CREATE TABLE insert_settings_seen (train_id String, token String, settings Map(String, String)) ENGINE = MergeTree ORDER BY train_id',
    });
    const captured = watched.map((name) => `'${name}', toString(getSetting('${name}'))`).join(', ');
    await store.client.command({
      query: `CREATE MATERIALIZED VIEW insert_settings_mv TO insert_settings_seen AS
              SELECT train_id, toString(getSetting('insert_deduplication_token')) AS token, map(${captured}) AS settings FROM latency_trains`,
    });
    await insertTrains(store.client, [train('plain-1')], 'token-plain-1');
    const plain = await seen(store.client, 'plain-1');
    expect(plain.token).toBe('token-plain-1');
    expect(plain.insert_quorum).toBe('0');
    expect(plain.distributed_foreground_insert).toBe('false');
    await store.close();

    store = await openStore({ dataDir, cluster: 'citymesh' });
    await insertTrains(store.client, [train('cluster-1')], 'token-cluster-1');
    const clustered = await seen(store.client, 'cluster-1');
    expect(clustered.token).toBe('token-cluster-1');
    // What the engine makes of clusterInsertSettings() when they are given to a query directly.
    const direct = await store.client.query({ query: `SELECT map(${captured}) AS settings`, format: 'JSONEachRow', clickhouse_settings: clusterInsertSettings() });
    const [{ settings: expected }] = (await direct.json<{ settings: Record<string, string> }>()) as [{ settings: Record<string, string> }];
    expect({ ...clustered, token: undefined }).toEqual({ ...expected, token: undefined });
    expect(expected.insert_quorum).not.toBe(plain.insert_quorum);
    expect(expected.distributed_foreground_insert).not.toBe(plain.distributed_foreground_insert);

    // The same batch again with its token, the cluster settings merged in: stored once, and counted once in
    // the rollup (whose table keeps its own window; the capture table has none, so it sees the retry).
    await insertTrains(store.client, [train('cluster-1')], 'token-cluster-1');
    const counts = await store.client.query({
      query: `SELECT (SELECT count() FROM latency_trains WHERE train_id = 'cluster-1') AS stored,
                     (SELECT sum(trains) FROM latency_1m WHERE src = 'alfa' AND dst = 'bravo') AS rolled_up,
                     (SELECT count() FROM insert_settings_seen WHERE train_id = 'cluster-1') AS inserts`,
      format: 'JSONEachRow',
    });
    expect(await counts.json()).toEqual([{ stored: 1, rolled_up: 2, inserts: 2 }]);
  });
});
