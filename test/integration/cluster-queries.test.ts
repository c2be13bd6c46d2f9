/**
 * The application's own queries through the cluster schema's Distributed
 * tables, in the real engine, embedded. The schema rendered for a cluster
 * (sql/cluster.ts) is created as cluster-schema.test.ts does it (Replicated
 * engine line swapped for the plain one, nothing else changed) over cluster
 * citymesh_local: one shard whose one replica is this very process.
 *
 * Why that cluster runs here without a network: a Distributed table sends a
 * shard's part of a query over TCP unless the replica is "local", which
 * ClickHouse decides per replica as host resolving to an address of this
 * machine AND port equal to this server's tcp_port (system.clusters.is_local).
 * The embedded engine (clickhouse-local) listens on nothing and has no
 * tcp_port unless the config names one; with <tcp_port>9000</tcp_port> and
 * replica localhost:9000 the replica is local and, with
 * prefer_localhost_replica=1 (the default), runs in-process. Nothing listens
 * on 9000: were the replica ever judged remote, the query would fail with
 * "Connection refused (localhost:9000)" rather than pass unnoticed.
 *
 * What one shard proves, and what it cannot: every read and write of the app
 * resolves through the Distributed names (rewritten to X_local on the shard),
 * views fire on the shard, batch tokens deduplicate through Distributed, and
 * the cluster session settings are accepted. ClickHouse runs a one-shard
 * query whole on that shard, though (no partial aggregates merged across
 * shards, no double-distributed IN check), so cross-shard merging is not
 * exercised here. Two in-process shards would need different data, i.e. a
 * per-replica <default_database>, and a replica with one is never local.
 *
 * The same data goes into a single-node schema (default database) and the
 * cluster schema (database citymesh) through the app's insert functions and
 * the collector's ingest path (a retried batch included); then every
 * exported read of sql/ runs on both stores and must return the same result.
 * The cluster store is opened with `cluster`, so it runs with the settings
 * the app uses on a cluster (clusterInsertSettings() and
 * distributed_product_mode = 'global'), all of them: insert_quorum is kept,
 * a non-replicated table ignores it (and select_sequential_consistency).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ClickHouseClient } from '@clickhouse/client';
import { Session } from 'chdb';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Collector, createCollectorMetrics, LiveHub } from '../../collector/index.js';
import {
  alertCentresLastSeen, alertClockRuns, alertEventsBetween, alertLinkRuns, alertThroughputRuns, claimJobSlot, countTrains,
  diagnosticRequest, diagnosticRequestsSince, diagnosticRuns, diagnosticRunsById, duplicateTrainIds, formatDateTime64,
  insertAlertEvent, insertDiagnosticRequest, insertDiagnostics, insertLoadWindows, insertMaintenance, loadWindowsBetween, insertNotification, insertSilence, insertSlaReport,
  jobSlotHolder, latestAlertEpisodes, latestNicStates, latestPathStatus, latestThroughputTests, linkSeries, liveTrainsSince,
  maintenanceWindows, migrate, notificationStates, openStore, pathChanges, placementEvidence, renderClusterSchema, samplesStoredSince,
  schemaMigrations, silences, slaCompliance, slaLinkMinutes, slaLinkTimeline, slaMonthBounds, slaMonthOf, slaMonthsWithData,
  slaReportDocuments, slaReportIndex, throughputHistory, throughputTestById, trainsBetween, utilisationSeries,
  type DiagnosticsRow, type LinkRunKind, type NicRow, type SlaLinkInput, type SlaQuery, type Store, type ThroughputRow, type TrainRow,
} from '../../sql/index.js';
import { createWithoutCluster } from '../helpers/cluster-schema.js';
import { monthData, probeBatch } from '../helpers/cluster-data.js';
import { insertAll, recentThirtyDayMonth, slaTopology } from '../helpers/sla-month.js';

const CLUSTER = 'citymesh_local';
const DATABASE = 'citymesh';
const dir = mkdtempSync(join(tmpdir(), 'citymesh-cluster-queries-'));
const month = recentThirtyDayMonth();
const TZ = 'Asia/Shanghai';
/** Minutes of the month that hold data (the rest of the month is uncovered, which the SLA figures show). */
const DATA_MINUTES = 120;
const testStartMs = Date.now();
/** Recent data (the collector's): whole minutes before now, so now-relative windows see all of it. */
const nowMinuteS = Math.floor(testStartMs / 60_000) * 60;
const { topology } = slaTopology();

let session: Session;
let single: Store;
let clustered: Store;

beforeAll(async () => {
  const config = join(dir, 'config');
  mkdirSync(config, { recursive: true });
  writeFileSync(join(config, 'config.xml'), `<clickhouse>
    <tcp_port>9000</tcp_port>
    <remote_servers>
        <${CLUSTER}>
            <shard>
                <internal_replication>true</internal_replication>
                <replica><host>localhost</host><port>9000</port></replica>
            </shard>
        </${CLUSTER}>
    </remote_servers>
</clickhouse>
`);
  // The first connection starts the engine with the config; the stores' connections to the same directory share it.
  session = new Session(join(dir, 'data'), { connectionArgs: [`--config-file=${join(config, 'config.xml')}`] });
  single = await openStore({ dataDir: join(dir, 'data') });
  await migrate(single.client);
  const schema = renderClusterSchema(schemaMigrations, { cluster: CLUSTER, database: DATABASE });
  await createWithoutCluster(single.client, schema, DATABASE, CLUSTER);
  await deduplicateAsReplicated(single.client);
  clustered = await openStore({ dataDir: join(dir, 'data'), cluster: CLUSTER });
  // Each embedded connection is a session of its own: this one works in the cluster database, as a server given --database would.
  await clustered.client.command({ query: `USE ${DATABASE}` });
  await seed();
}, 120_000);
afterAll(async () => {
  await clustered?.close();
  await single?.close();
  session?.close();
  rmSync(dir, { recursive: true, force: true });
});

/**
 * A Replicated table deduplicates inserts by the block hashes it keeps in
 * Keeper (replicated_deduplication_window); its plain stand-in here ignores
 * that setting and would store a retried batch twice. Give each stand-in the
 * same window (the table's, else the engine's default) in its
 * non-replicated form: one replica's deduplication, as on the cluster.
 */
async function deduplicateAsReplicated(client: ClickHouseClient): Promise<void> {
  const tables = await rows<{ name: string; engine_full: string }>(client,
    `SELECT name, engine_full FROM system.tables WHERE database = '${DATABASE}' AND engine LIKE '%MergeTree'`);
  const [fallback] = await rows<{ value: string }>(client, "SELECT value FROM system.merge_tree_settings WHERE name = 'replicated_deduplication_window'");
  for (const table of tables) {
    const window = /\breplicated_deduplication_window = (\d+)/.exec(table.engine_full)?.[1] ?? fallback!.value;
    await client.command({ query: `ALTER TABLE ${DATABASE}.${table.name} MODIFY SETTING non_replicated_deduplication_window = ${window}` });
  }
}

async function rows<T>(client: ClickHouseClient, query: string): Promise<T[]> {
  return (await client.query({ query, format: 'JSONEachRow' })).json<T>();
}

/** Run `call` on both stores; the cluster result must equal the single-node one. Returns the single-node result. */
async function same<T>(what: string, call: (client: ClickHouseClient) => Promise<T>, normalise: (v: T) => unknown = (v) => v): Promise<T> {
  const expected = await call(single.client);
  let got: T;
  try {
    got = await call(clustered.client);
  } catch (error) {
    throw new Error(`${what} fails on the Distributed schema: ${(error as Error).message}`);
  }
  expect(normalise(got), what).toEqual(normalise(expected));
  return expected;
}

/** Both stores, one after the other (inserts). */
async function onBoth(write: (client: ClickHouseClient) => Promise<unknown>): Promise<void> {
  await write(single.client);
  await write(clustered.client);
}

const minuteUs = (minute: number) => (month.startS + minute * 60) * 1e6;

function diagnosticsRow(src: string, dst: string, minute: number, hops: string[], requestId = ''): DiagnosticsRow {
  const addresses = hops.map((h) => (h === '*' ? ['', '', ''] : h.split('|')));
  return {
    ts: formatDateTime64(minuteUs(minute)).slice(0, 23), src, dst, run_id: `dg-${src}-${dst}-${minute}`, request_id: requestId,
    trigger: requestId ? 'operator' : 'breach', reason: 'p99 above target', duration_ms: 1200, tr_ok: true, tr_error: '', tr_tool: 'traceroute',
    tr_max_hops: 16, tr_reached: true, hop_ttls: hops.map((_, i) => i + 1), hop_addresses: addresses,
    hop_rtts_us: addresses.map((h) => h.map((a) => (a ? 100 + a.length : null))), hop_flags: addresses.map((h) => h.map(() => '')),
    pmtu_ok: true, pmtu_error: '', pmtu_tool: 'tracepath', pmtu: 1500, pmtu_drop_ttl: null, pmtu_reached: true,
    ft_ok: true, ft_error: '', ft_count: 100, ft_interval_ms: 10, ft_sent: 100, ft_received: 99,
    ft_rtt_min_us: 700, ft_rtt_median_us: 750, ft_rtt_p99_us: 900, ft_rtt_max_us: 950, ft_jitter_us: 20, batch_id: `dg-batch-${minute}`,
  };
}

/** Everything both stores hold, written the same way into each. */
async function seed(): Promise<void> {
  const { trains, nics, tests } = monthData(month.startS, DATA_MINUTES);
  await onBoth((client) => insertAll(client, trains, nics, tests, 'month'));
  await onBoth(async (client) => {
    await insertMaintenance(client, {
      id: 'mw-ab', scope: 'link', a: 'alfa', b: 'bravo', startS: month.startS + 100 * 60, endS: month.startS + 110 * 60,
      reason: 'fibre splice', declaredAtMs: (month.startS - 86_400) * 1000, declaredBy: 'noc',
    });
    await insertMaintenance(client, {
      id: 'mw-late', scope: 'centre', a: 'echo', b: '', startS: month.startS + 5 * 60, endS: month.startS + 15 * 60,
      reason: 'declared after the fact', declaredAtMs: (month.startS + 20 * 60) * 1000, declaredBy: 'noc',
    });
    // Our own throughput test on alfa~charlie during minutes 40-41 (planned by a server, measured by the probe),
    // and one on bravo~delta that never reported back (only its planned span).
    await insertLoadWindows(client, [
      { windowId: 'tp-ac', a: 'alfa', b: 'charlie', startMs: minuteUs(40) / 1000 + 30_000, endMs: minuteUs(41) / 1000 + 30_000, source: 'planned', trigger: 'schedule', recordedBy: 'server:x' },
      { windowId: 'tp-bd', a: 'bravo', b: 'delta', startMs: minuteUs(60) / 1000, endMs: minuteUs(60) / 1000 + 22_000, source: 'planned', trigger: 'operator', recordedBy: 'server:x' },
    ], 'load-planned');
    await insertLoadWindows(client, [
      { windowId: 'tp-ac', a: 'alfa', b: 'charlie', startMs: minuteUs(40) / 1000 + 31_000, endMs: minuteUs(40) / 1000 + 45_000, source: 'measured', trigger: 'schedule', recordedBy: 'probe:alfa' },
    ], 'load-measured');
    for (const seq of [0, 1]) {
      await insertSlaReport(client, {
        month: month.month, seq, kind: seq === 0 ? 'final' : 'amendment', document: `{"month":"${month.month}","seq":${seq}}`,
        reportSha256: `sha-${seq}`, publicKeyFingerprint: 'fp-1', publicKey: 'pk-1', createdAtMs: (month.endS + 3600 * (seq + 1)) * 1000, createdBy: 'noc',
      });
    }
    await insertDiagnostics(client, [
      diagnosticsRow('alfa', 'charlie', 31, ['r1', 'r2|r3', 'charlie']),
      diagnosticsRow('alfa', 'charlie', 35, ['r1', 'r9', 'charlie'], 'req-1'),
      diagnosticsRow('charlie', 'alfa', 36, ['s1', '*', 'alfa']),
      diagnosticsRow('alfa', 'charlie', 50, ['r1', 'r2', 'charlie']),
    ], 'diagnostics-1');
    // Requests are kept 7 days: these are recent.
    await insertDiagnosticRequest(client, { requestId: 'req-1', a: 'alfa', b: 'charlie', requestedBy: 'noc', requestedAtUs: (nowMinuteS - 600) * 1e6 });
    await insertDiagnosticRequest(client, { requestId: 'req-2', a: 'bravo', b: 'delta', requestedBy: 'noc', requestedAtUs: (nowMinuteS - 300) * 1e6 });
    const firing = {
      fingerprint: 'fp-latency-ac', alertname: 'LinkLatencyHigh', status: 'firing' as const, startsAtMs: minuteUs(32) / 1000,
      activeAtMs: minuteUs(30) / 1000, endsAtMs: null, eventAtMs: minuteUs(32) / 1000, labels: { link: 'alfa~charlie', severity: 'warning' },
      annotations: { summary: 'p99 above 2 ms' }, value: 3090, threshold: 2000, unit: 'us', silencedBy: [], link: 'alfa~charlie', centre: '',
    };
    await insertAlertEvent(client, firing);
    await insertAlertEvent(client, { ...firing, status: 'resolved', endsAtMs: minuteUs(60) / 1000, eventAtMs: minuteUs(61) / 1000, value: 790 });
    await insertAlertEvent(client, { ...firing, fingerprint: 'fp-down-bc', alertname: 'LinkDown', startsAtMs: minuteUs(91) / 1000, eventAtMs: minuteUs(91) / 1000, link: 'bravo~charlie', labels: { link: 'bravo~charlie' }, value: 20 });
    await insertSilence(client, {
      id: 'sil-1', matchers: [{ name: 'link', value: 'alfa~bravo', isRegex: false, isEqual: true }], startsAtMs: minuteUs(0) / 1000,
      endsAtMs: minuteUs(200) / 1000, createdBy: 'noc', comment: 'works', updatedAtMs: minuteUs(0) / 1000, updatedBy: 'noc', version: 1,
    });
    await insertSilence(client, {
      id: 'sil-1', matchers: [{ name: 'link', value: 'alfa~bravo', isRegex: false, isEqual: true }], startsAtMs: minuteUs(0) / 1000,
      endsAtMs: minuteUs(300) / 1000, createdBy: 'noc', comment: 'extended', updatedAtMs: minuteUs(10) / 1000, updatedBy: 'ops', version: 2,
    });
    for (const outcome of ['sending', 'failed', 'sending', 'sent'] as const) {
      const attempt = outcome === 'sending' || outcome === 'failed' ? 0 : 1;
      await insertNotification(client, {
        fingerprint: 'fp-latency-ac', startsAtMs: minuteUs(32) / 1000, receiver: 'noc-webhook', status: 'firing',
        attemptAtMs: minuteUs(32 + attempt + (outcome === 'sent' ? 1 : 0)) / 1000, outcome, httpStatus: outcome === 'failed' ? 503 : 200,
        attempts: attempt + 1, error: outcome === 'failed' ? 'HTTP 503' : '', alertname: 'LinkLatencyHigh',
      });
    }
  });
  // The collector's own path (toRow and the four inserts with the batch token); each batch is sent twice, as a probe that missed the ack does.
  for (const store of [single, clustered]) {
    const collector = new Collector({
      store, topology, hub: new LiveHub(), logger: pino({ level: 'silent' }), metrics: createCollectorMetrics(new Registry()),
    });
    try {
      for (const centre of ['alfa', 'bravo', 'charlie', 'delta', 'echo']) {
        for (let attempt = 0; attempt < 2; attempt++) {
          const outcome = await collector.ingestText(centre, probeBatch(topology, centre, `live-${centre}-1`, nowMinuteS));
          expect(outcome, `${centre} attempt ${attempt + 1} on ${store === single ? 'single node' : 'cluster'}`).toMatchObject({ ok: true });
        }
      }
    } finally {
      await collector.close();
    }
  }
}

const policy = (a: string, b: string): SlaLinkInput => ({
  a, b, rttTargetUs: 2000, percentile: 0.99, latencyMinutesMin: 0.99, lossRatioMax: 0.001, availabilityMin: 0.999, coverageMin: 0.99,
  committedMbps: 100_000, floorBps: 95e9,
});
const allLinks = [['alfa', 'bravo'], ['alfa', 'charlie'], ['alfa', 'delta'], ['bravo', 'charlie'], ['bravo', 'delta'], ['charlie', 'echo']].map(([a, b]) => policy(a!, b!));

describe('citymesh_local: one shard, this process', () => {
  it('is a local replica, and the sharded tables are Distributed over it', async () => {
    expect(await rows(single.client, `SELECT host_name, port, is_local FROM system.clusters WHERE cluster = '${CLUSTER}'`)).toEqual([
      { host_name: 'localhost', port: 9000, is_local: 1 },
    ]);
    const engines = await rows<{ name: string; engine: string }>(clustered.client,
      `SELECT name, engine FROM system.tables WHERE database = '${DATABASE}' AND name IN ('latency_trains', 'latency_trains_local', 'latency_1m', 'live_trains', 'job_claims') ORDER BY name`);
    expect(engines).toEqual([
      { name: 'job_claims', engine: 'MergeTree' }, { name: 'latency_1m', engine: 'Distributed' }, { name: 'latency_trains', engine: 'Distributed' },
      { name: 'latency_trains_local', engine: 'MergeTree' }, { name: 'live_trains', engine: 'Distributed' },
    ]);
    const [settings] = await rows<Record<string, string>>(clustered.client,
      "SELECT getSetting('distributed_product_mode') AS mode, toString(getSetting('distributed_foreground_insert')) AS fg, currentDatabase() AS db");
    expect(settings).toEqual({ mode: 'global', fg: 'true', db: DATABASE });
    // A one-shard Distributed table hands the whole query, its names rewritten to the shard's tables, to that shard.
    const plan = await rows<{ explain: string }>(clustered.client, 'EXPLAIN SELECT src, count() FROM latency_trains GROUP BY src');
    expect(plan.map((r) => r.explain).join('\n')).toContain(`ReadFromMergeTree (${DATABASE}.latency_trains_local)`);
  });

  it('stores the same rows through Distributed (the collector\'s retried batches once), and the views fire on the shard', async () => {
    const counts = async (client: ClickHouseClient) => rows(client, `SELECT
        (SELECT count() FROM latency_trains) AS trains, (SELECT count() FROM nic_samples) AS nics, (SELECT count() FROM throughput_tests) AS tests,
        (SELECT sum(trains) FROM latency_1m) AS rolled, (SELECT count() FROM live_trains) AS live, (SELECT count() FROM diagnostics) AS diagnostics`);
    const [stored] = await same('row counts', counts);
    const monthTrains = 6 * DATA_MINUTES * 2 - 60; // bravo -> delta silent for an hour
    const liveTrains = 8 * (3 + 3 + 3 + 2 + 1); // eight minutes to each peer, once though each batch came twice
    expect(stored).toEqual({
      trains: monthTrains + liveTrains, nics: 6 * DATA_MINUTES * 2 + 12, tests: 6 * 4 + 1 + 5,
      rolled: monthTrains + liveTrains, live: monthTrains + liveTrains, diagnostics: 4,
    });
    expect(await rows(single.client, `SELECT count() AS n FROM ${DATABASE}.latency_trains_local`)).toEqual([{ n: (stored as { trains: number }).trains }]);
    expect(await same('duplicateTrainIds', duplicateTrainIds)).toEqual([]);
    await same('countTrains', (c) => countTrains(c));
    expect(await same('countTrains(alfa)', (c) => countTrains(c, 'alfa'))).toBeGreaterThan(0);
  });
});

/** The alert-run queries return rows in no defined order (the rules key them by link or centre): compared sorted. */
const byLink = (runs: { a: string; b: string }[]) => [...runs].sort((x, y) => `${x.a}~${x.b}`.localeCompare(`${y.a}~${y.b}`));

const LOAD_GUARD_MS = 3000;
const monthQuery = (source: 'rollup' | 'raw', links = allLinks): SlaQuery => ({ startS: month.startS, endS: month.endS, engine: 'stamp', source, links, loadGuardMs: LOAD_GUARD_MS });
const dataEndMs = (month.startS + DATA_MINUTES * 60) * 1000;

describe('latency (sql/latency.ts)', () => {
  it('latestPathStatus, linkSeries (raw and rollup), trainsBetween', async () => {
    const status = await same('latestPathStatus', (c) => latestPathStatus(c, 1800));
    expect(status.length).toBe(12); // every direction the collector's batches measured, listed from the last day's rollup
    expect(status.filter((s) => s.trains === 8 && s.rttP99Us !== null)).toHaveLength(12);
    const raw = await same('linkSeries raw', (c) => linkSeries(c, {
      src: 'alfa', dst: 'bravo', engine: 'stamp', fromUs: (nowMinuteS - 600) * 1e6, toUs: nowMinuteS * 1e6, points: 120,
    }));
    expect(raw.source).toBe('raw');
    expect(raw.p99Us.filter((v) => v !== null)).toHaveLength(8);
    const rolled = await same('linkSeries rollup', (c) => linkSeries(c, {
      src: 'alfa', dst: 'charlie', engine: 'stamp', fromUs: minuteUs(0), toUs: minuteUs(DATA_MINUTES), points: 24,
    }));
    expect(rolled.source).toBe('rollup');
    expect(Math.max(...rolled.p99Us.map((v) => v ?? 0))).toBeGreaterThan(2000);
    const trains = await same('trainsBetween', (c) => trainsBetween(c, { src: 'charlie', dst: 'echo', fromUs: minuteUs(0), toUs: minuteUs(30), limit: 1000 }));
    expect(trains).toHaveLength(30);
  });
});

describe('capacity (sql/capacity.ts)', () => {
  it('throughputHistory, throughputTestById, latestThroughputTests, latestNicStates, utilisationSeries', async () => {
    const history = await same('throughputHistory', (c) => throughputHistory(c, 'bravo', 'alfa', minuteUs(0), minuteUs(DATA_MINUTES)));
    expect(history).toHaveLength(5);
    const one = history[2]!;
    expect(await same('throughputTestById', (c) => throughputTestById(c, one.src, one.dst, one.testId, one.tsUs - 1e6))).toEqual(one);
    expect(await same('throughputTestById, none stored', (c) => throughputTestById(c, one.src, one.dst, `${one.testId}-not-stored`, one.tsUs - 1e6))).toBeNull();
    const latest = await same('latestThroughputTests', latestThroughputTests);
    expect(latest.length).toBeGreaterThanOrEqual(5);
    expect(await same('latestNicStates', latestNicStates)).toHaveLength(12);
    const util = await same('utilisationSeries', (c) => utilisationSeries(c, 'charlie', 'echo', minuteUs(0), minuteUs(DATA_MINUTES), 12));
    expect(util.peak.filter((v) => v !== null)).toHaveLength(12);
  });
});

describe('SLA (sql/sla.ts)', () => {
  it('slaMonthBounds, slaMonthOf, slaMonthsWithData', async () => {
    expect(await same('slaMonthBounds', (c) => slaMonthBounds(c, month.month, TZ))).toEqual({ startS: month.startS, endS: month.endS });
    expect(await same('slaMonthOf', (c) => slaMonthOf(c, minuteUs(10), TZ))).toBe(month.month);
    const thisMonth = await slaMonthOf(single.client, nowMinuteS * 1e6, TZ);
    expect(await same('slaMonthsWithData', (c) => slaMonthsWithData(c, TZ))).toEqual([thisMonth, month.month]);
  });

  it('slaCompliance, slaLinkTimeline and slaLinkMinutes, from the rollups and from the raw trains', async () => {
    for (const source of ['rollup', 'raw'] as const) {
      const scopes = await same(`slaCompliance ${source}`, (c) => slaCompliance(c, monthQuery(source)));
      expect(scopes.filter((s) => s.kind === 'link')).toHaveLength(6);
      const link = (id: string) => scopes.find((s) => s.kind === 'link' && s.id === id)!;
      // Minute 40 of the breach run was our own test (measured end and guard: one minute), not the network.
      expect(link('alfa~charlie').latency_breach_minutes).toBe(29);
      expect(link('alfa~charlie').self_load_minutes).toBe(1);
      // A test that never reported back counts for its planned span, guarded: minutes 59 and 60.
      expect(link('bravo~delta').self_load_minutes).toBe(2);
      expect(link('bravo~delta').excluded_minutes).toBe(2);
      expect(link('alfa~delta').loss_breach_minutes).toBe(20);
      expect(link('bravo~charlie').availability_breach_minutes).toBe(10);
      expect(link('alfa~bravo').excluded_minutes).toBe(10);
      expect(link('charlie~echo').nic_breach_minutes).toBe(10);
      expect(link('charlie~echo').tests_below).toBe(4);
      const timeline = await same(`slaLinkTimeline ${source}`, (c) => slaLinkTimeline(c, monthQuery(source, [policy('alfa', 'charlie')])));
      expect(timeline.latency).toEqual([[month.startS + 30 * 60, 10], [month.startS + 41 * 60, 19]]);
      const minutes = await same(`slaLinkMinutes ${source}`, (c) => slaLinkMinutes(c, monthQuery(source, [policy('alfa', 'bravo')])));
      expect(minutes.t).toHaveLength(month.minutes);
      expect(minutes.excluded.filter(Boolean)).toHaveLength(10);
      expect(minutes.selfLoad.filter(Boolean)).toHaveLength(0);
      const loaded = await same(`slaLinkMinutes ${source} (self load)`, (c) => slaLinkMinutes(c, monthQuery(source, [policy('alfa', 'charlie')])));
      expect(loaded.t.filter((_, i) => loaded.selfLoad[i] === 1)).toEqual([month.startS + 40 * 60]);
      expect(loaded.excluded[40]).toBe(1);
      expect(loaded.latencyBreach[40]).toBe(0);
    }
    const loads = await same('loadWindowsBetween', (c) => loadWindowsBetween(c, { fromS: month.startS, toS: month.endS, guardMs: LOAD_GUARD_MS }));
    expect(loads.map((w) => [w.windowId, w.minutes, w.sources])).toEqual([['tp-ac', 1, ['measured', 'planned']], ['tp-bd', 2, ['planned']]]);
    expect(loads[0]!.endMs - loads[0]!.startMs).toBe(15_000);
  });

  it('maintenanceWindows, slaReportIndex, slaReportDocuments, samplesStoredSince', async () => {
    const windows = await same('maintenanceWindows', (c) => maintenanceWindows(c, month.startS, month.endS));
    expect(windows.map((w) => [w.id, w.declaredLate])).toEqual([['mw-late', true], ['mw-ab', false]]);
    expect(await same('slaReportIndex', slaReportIndex)).toHaveLength(2);
    expect((await same('slaReportDocuments', (c) => slaReportDocuments(c, month.month))).map((d) => d.seq)).toEqual([0, 1]);
    expect(await same('samplesStoredSince', (c) => samplesStoredSince(c, month.startS, month.endS, testStartMs - 1000))).toBe(6 * DATA_MINUTES * 2 - 60 + 25);
  });
});

describe('placement (sql/placement.ts)', () => {
  it('placementEvidence', async () => {
    const evidence = await same('placementEvidence', (c) => placementEvidence(c, {
      centre: 'alfa', peers: ['bravo', 'charlie', 'delta', 'echo'], windowS: 1800, testMaxAgeS: 3600, engine: 'stamp',
    }));
    expect(evidence.map((e) => [e.peer, e.outTrains, e.inTrains])).toEqual([['bravo', 8, 8], ['charlie', 8, 8], ['delta', 8, 8], ['echo', 0, 0]]);
    expect(evidence[0]!.testedBps).not.toBeNull();
  });
});

describe('alerts (sql/alerts.ts)', () => {
  it('alertLinkRuns (latency, loss, down; raw and rollup), alertThroughputRuns, alertClockRuns, alertCentresLastSeen', async () => {
    const links = allLinks.map((l) => ({ a: l.a, b: l.b, threshold: 2000, percentile: 0.99 }));
    for (const kind of ['latency', 'loss', 'down'] as LinkRunKind[]) {
      for (const source of ['raw', 'rollup'] as const) {
        const thresholds = links.map((l) => ({ ...l, threshold: kind === 'loss' ? 0.001 : l.threshold }));
        const runs = await same(`alertLinkRuns ${kind} ${source}`, (c) => alertLinkRuns(c, {
          kind, engine: kind === 'down' ? '' : 'stamp', stepS: 60, source, fromS: month.startS, nowMs: minuteUs(95) / 1000, links: thresholds, loadGuardMs: LOAD_GUARD_MS,
        }), byLink);
        expect(runs).toHaveLength(6);
        if (kind === 'down') expect(runs.find((r) => r.a === 'bravo' && r.b === 'charlie')).toMatchObject({ active: true, runStartMs: minuteUs(90) / 1000 });
        if (kind === 'latency') expect(runs.find((r) => r.b === 'charlie' && r.a === 'alfa')).toMatchObject({ active: false, recoveredAtMs: minuteUs(60) / 1000 });
      }
    }
    const tput = await same('alertThroughputRuns', (c) => alertThroughputRuns(c, {
      fromMs: minuteUs(0) / 1000, nowMs: dataEndMs, links: links.map((l) => ({ ...l, threshold: 95e9 })),
    }), byLink);
    expect(tput.find((r) => r.a === 'charlie')).toMatchObject({ active: true });
    const clocks = await same('alertClockRuns', (c) => alertClockRuns(c, {
      stepS: 60, fromS: nowMinuteS - 900, nowMs: nowMinuteS * 1000, maxErrorUs: 1000, centres: ['alfa', 'bravo'],
    }), (runs) => [...runs].sort((x, y) => x.centre.localeCompare(y.centre)));
    expect(clocks.map((r) => [r.centre, r.active]).sort()).toEqual([['alfa', false], ['bravo', true]]);
    const seen = await same('alertCentresLastSeen', (c) => alertCentresLastSeen(c, {
      rawFromMs: (nowMinuteS - 3600) * 1000, horizonS: month.startS, nowMs: nowMinuteS * 1000, centres: ['alfa', 'echo', 'nowhere'],
    }));
    expect(seen.map((r) => r.lastSeenMs === null)).toEqual([false, false, true]);
  });

  it('latestAlertEpisodes, alertEventsBetween, silences, notificationStates', async () => {
    expect(await same('latestAlertEpisodes', latestAlertEpisodes)).toHaveLength(3);
    expect(await same('alertEventsBetween', (c) => alertEventsBetween(c, { fromMs: minuteUs(0) / 1000, toMs: dataEndMs, link: 'alfa~charlie', limit: 100 }))).toHaveLength(2);
    expect((await same('silences', (c) => silences(c, { endsAfterMs: minuteUs(0) / 1000 }))).map((s) => s.version)).toEqual([2]);
    const states = await same('notificationStates', (c) => notificationStates(c, ['fp-latency-ac']));
    expect(states).toMatchObject([{ sent: 1, lastFailedMs: minuteUs(32) / 1000 }]);
  });
});

describe('diagnostics (sql/diagnostics.ts)', () => {
  it('diagnosticRequestsSince, diagnosticRequest, diagnosticRuns, diagnosticRunsById, pathChanges', async () => {
    expect(await same('diagnosticRequestsSince', (c) => diagnosticRequestsSince(c, (nowMinuteS - 3600) * 1e6))).toHaveLength(2);
    expect(await same('diagnosticRequest', (c) => diagnosticRequest(c, 'req-2'))).toMatchObject({ a: 'bravo', b: 'delta' });
    expect(await same('diagnosticRuns', (c) => diagnosticRuns(c, { a: 'alfa', b: 'charlie', fromUs: minuteUs(0), toUs: minuteUs(DATA_MINUTES) }))).toHaveLength(4);
    expect(await same('diagnosticRunsById', (c) => diagnosticRunsById(c, { a: 'charlie', b: 'alfa', id: 'req-1' }))).toHaveLength(1);
    const changes = await same('pathChanges', (c) => pathChanges(c, { a: 'alfa', b: 'charlie', fromUs: minuteUs(0), toUs: minuteUs(DATA_MINUTES) }));
    expect(changes.map((p) => p.runId)).toEqual(['dg-alfa-charlie-35', 'dg-alfa-charlie-50']);
  });
});

describe('coordination (sql/coordination.ts)', () => {
  it('claimJobSlot and jobSlotHolder: the first claim of a slot wins, on either schema', async () => {
    for (const store of [single, clustered]) {
      expect(await claimJobSlot(store.client, 'sla-finalise', month.month, 'server-a')).toBe(true);
      expect(await claimJobSlot(store.client, 'sla-finalise', month.month, 'server-b')).toBe(false);
    }
    expect(await same('jobSlotHolder', (c) => jobSlotHolder(c, 'sla-finalise', month.month))).toBe('server-a');
    expect(await same('jobSlotHolder (unclaimed)', (c) => jobSlotHolder(c, 'sla-finalise', 'never'))).toBeNull();
  });

  it('liveTrainsSince (stored_at is each store\'s own insert time: compared without it)', async () => {
    const live = await same('liveTrainsSince', (c) => liveTrainsSince(c, (testStartMs - 1000) * 1000, 5000),
      (list) => list.map(({ storedAtUs: _, ...rest }) => rest).sort((x, y) => x.trainId.localeCompare(y.trainId)));
    expect(live).toHaveLength(6 * DATA_MINUTES * 2 - 60 + 96);
  });
});
