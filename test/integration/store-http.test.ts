/**
 * `citymesh store serve` as a process: a data directory the embedded store
 * wrote, served by the engine's own HTTP and native listeners (a real
 * ClickHouse node, sql/engine-node.ts), with a password. The official client
 * and a citymesh server, pointed at it by URL, must behave as in-process:
 * parameters byte-exact (the SQL-injection corpus included), errors with
 * ClickHouse's code and type, inserts deduplicated by token, slot claims with
 * one winner. Without the password nothing is readable, and no input on
 * either port (garbage, resets, failed handshakes) takes the node down.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LiveHub } from '../../collector/index.js';
import { claimJobSlot, engineNodeUnavailable, insertTrains, liveTrainsSince, migrate, openStore, type Store } from '../../sql/index.js';
import { CitymeshProcess, killAll, runCli } from '../helpers/processes.js';
import { skipReason } from '../helpers/requirements.js';
import { train } from '../helpers/sla-month.js';
import { startTestServer, testTopology } from '../helpers/stack.js';

const PASSWORD = 'store-serve-test-password';
const USER = 'citymesh';
const unavailable = skipReason(engineNodeUnavailable());
const seededAtUs = Date.now() * 1000;
const seeded = [train('east', 'west', seededAtUs, 250), train('west', 'east', seededAtUs, 260)];

let dir: string;
let served: CitymeshProcess;
let url: string;
let nativePort: number;
let store: Store;

beforeAll(async () => {
  if (unavailable) return;
  dir = mkdtempSync(join(tmpdir(), 'citymesh-store-serve-'));
  // The directory a single server wrote with its embedded store, then stopped.
  const embedded = await openStore({ dataDir: join(dir, 'data') });
  await migrate(embedded.client);
  await insertTrains(embedded.client, seeded, 'seeded-embedded');
  await embedded.close();

  served = new CitymeshProcess(['store', 'serve', '--data-dir', join(dir, 'data'), '--port', '0', '--tcp-port', '0'], { CLICKHOUSE_PASSWORD: PASSWORD });
  await served.waitForStdout('served at');
  const printed = /served at (http:\/\/127\.0\.0\.1:\d+) \(native 127\.0\.0\.1:(\d+)\), user citymesh/.exec(served.output);
  expect(printed, served.output).not.toBeNull();
  url = printed![1]!;
  nativePort = Number(printed![2]);
  store = await openStore({ url, dataDir: 'unused', username: USER, password: PASSWORD });
}, 120_000);

afterAll(async () => {
  await store?.close();
  if (served) {
    await served.kill('SIGTERM');
    await killAll();
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function one<T>(query: string, params: Record<string, unknown> = {}): Promise<T> {
  const result = await store.client.query({ query, query_params: params, format: 'JSONEachRow' });
  return (await result.json<T>())[0]!;
}

describe.skipIf(unavailable)('citymesh store serve: the engine\'s own listeners over a data directory', () => {
  it('serves what the embedded store wrote, with every migration already applied', async () => {
    const stored = await store.client.query({ query: 'SELECT train_id FROM latency_trains ORDER BY train_id', format: 'JSONEachRow' });
    expect((await stored.json<{ train_id: string }>()).map((r) => r.train_id)).toEqual(seeded.map((r) => r.train_id).sort());
    const report = await migrate(store.client);
    expect(report.applied, 'nothing left to apply').toEqual([]);
    expect(report.skipped.length).toBeGreaterThan(10);
  });

  it('passes parameters byte for byte, whatever they hold', async () => {
    const nasty = ["'; DROP TABLE latency_trains; --", 'tab\there', 'new\nline', 'back\\slash', "quote'", '\\N', '回声 – "x"', '\0nul', '{x:String}'];
    for (const value of nasty) {
      const row = await one<{ v: string; n: number }>('SELECT {v:String} AS v, length({v:String}) AS n', { v: value });
      expect(row.v).toBe(value);
      expect(Number(row.n)).toBe(Buffer.byteLength(value));
    }
    const row = await one<{ a: string[]; d: string; n: number | null; l: string }>(
      `SELECT {a:Array(String)} AS a, {d:DateTime64(3, 'UTC')} AS d, {n:Nullable(UInt8)} AS n, {l:LowCardinality(String)} AS l`,
      { a: ['east', "it's", 'back\\slash'], d: '2026-11-29 10:00:00.123', n: null, l: 'x\ty' },
    );
    expect(row).toEqual({ a: ['east', "it's", 'back\\slash'], d: '2026-11-29 10:00:00.123', n: null, l: 'x\ty' });
  });

  it('reports ClickHouse errors with their code and type', async () => {
    await expect(store.client.query({ query: 'SELECT * FROM no_such_table', format: 'JSONEachRow' })).rejects.toMatchObject({ code: '60', type: 'UNKNOWN_TABLE' });
    await expect(store.client.command({ query: 'SELEC 1' })).rejects.toMatchObject({ code: '62', type: 'SYNTAX_ERROR' });
    expect((await store.client.ping()).success).toBe(true);
  });

  it('stores a retried batch once (deduplication token) and feeds live_trains', async () => {
    const nowUs = Date.now() * 1000;
    const rows = [train('north', 'south', nowUs, 250), train('south', 'north', nowUs, 260)];
    await insertTrains(store.client, rows, 'store-serve-batch-1');
    await insertTrains(store.client, rows, 'store-serve-batch-1');
    const counted = await one<{ n: number }>('SELECT count() AS n FROM latency_trains WHERE src IN (\'north\', \'south\')');
    expect(Number(counted.n)).toBe(2);
    const live = (await liveTrainsSince(store.client, nowUs - 60e6, 100)).filter((t) => t.src === 'north' || t.src === 'south');
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

  it('a citymesh server works through it with the same user and password', async () => {
    const { topology, operatorToken } = testTopology(['east', 'west'], '127.0.75');
    const server = await startTestServer(topology, {}, { env: { CLICKHOUSE_URL: url, CLICKHOUSE_USER: USER, CLICKHOUSE_PASSWORD: PASSWORD } });
    try {
      const response = await fetch(`${server.url}/v1/links/east/west/trains?from=${new Date(seededAtUs / 1000 - 60_000).toISOString()}&to=${new Date(seededAtUs / 1000 + 60_000).toISOString()}`, {
        headers: { authorization: `Bearer ${operatorToken}` },
      });
      expect(response.status, await response.clone().text()).toBe(200);
      expect(JSON.stringify(await response.json())).toContain(seeded[0]!.train_id);
    } finally {
      await server.stop();
    }
  });

  it('without the password, nothing is readable or changeable, over HTTP or the native protocol', async () => {
    const anonymous: Record<string, string>[] = [{}, { 'X-ClickHouse-User': USER, 'X-ClickHouse-Key': 'wrong' }, { 'X-ClickHouse-User': 'default' }];
    for (const headers of anonymous) {
      for (const query of ['SELECT count() FROM latency_trains', 'SYSTEM STOP LISTEN HTTP', 'DROP TABLE latency_trains']) {
        const response = await fetch(`${url}/`, { method: 'POST', body: query, headers });
        expect(response.status, `${query} as ${JSON.stringify(headers)}: ${await response.clone().text()}`).toBeGreaterThanOrEqual(400);
        await response.arrayBuffer();
      }
    }
    for (const [user, password] of [[USER, 'wrong'], ['default', '']]) {
      await expect(one(`SELECT count() FROM remote('127.0.0.1:${nativePort}', default.latency_trains, '${user}', '${password}')`)).rejects.toThrow(/Authentication failed|Quota for user `default`.*exceeded|Not enough privileges/);
    }
    expect(Number((await one<{ n: number }>('SELECT count() AS n FROM latency_trains')).n)).toBeGreaterThanOrEqual(seeded.length);
  });

  it('no input on either port takes it down', async () => {
    const hostile: Buffer[] = [
      Buffer.from('\x00\x01\x02garbage\r\n\r\n'),
      Buffer.from([0x00, 0x0a, 0x63, 0x6c]), // a native hello cut short
      Buffer.from(`GET /${'x'.repeat(200_000)} HTTP/1.1\r\nHost: a\r\n\r\n`),
      Buffer.from('POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\nSELECT 1'), // a body cut short
      Buffer.from('POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n'),
    ];
    for (const port of [new URL(url).port, nativePort].map(Number)) {
      for (const bytes of hostile) {
        await sendAndReset(port, bytes);
      }
    }
    const badRequests: RequestInit[] = [
      { method: 'POST', body: gzipSync('SELECT 1').subarray(0, 10), headers: { 'Content-Encoding': 'gzip' } },
      { method: 'POST', body: 'SELECT 1', headers: { 'Content-Encoding': 'br' } },
      { method: 'POST', body: 'SELECT {x:UInt8}' },
      { method: 'DELETE' },
    ];
    for (const init of badRequests) {
      const response = await fetch(`${url}/?param_x=300&max_threads=notanumber`, { ...init, headers: { ...init.headers as Record<string, string>, 'X-ClickHouse-User': USER, 'X-ClickHouse-Key': PASSWORD } });
      expect(response.status, `${init.method} ${JSON.stringify(init.headers)}`).toBeLessThan(600);
      await response.arrayBuffer();
    }
    // A native handshake with a wrong password, from the node itself (this once terminated the engine).
    await expect(one(`SELECT 1 FROM remote('127.0.0.1:${nativePort}', system.one, '${USER}', 'wrong')`)).rejects.toThrow(/Authentication failed/);
    expect(await one('SELECT 1 AS ok')).toEqual({ ok: 1 });
    expect(await Promise.race([served.exited, 'running'])).toBe('running');
  });

  it('refuses to start without a password or with the engine\'s own user, naming what is wrong', async () => {
    const args = ['store', 'serve', '--data-dir', join(dir, 'other'), '--port', '0', '--tcp-port', '0'];
    const noPassword = await runCli(args, { CLICKHOUSE_PASSWORD: '' });
    expect(noPassword.code).toBe(1);
    expect(noPassword.stderr).toContain('the store needs a password: set CLICKHOUSE_PASSWORD');
    const emptyFile = join(dir, 'empty-password');
    writeFileSync(emptyFile, '\n');
    const empty = await runCli([...args, '--password-file', emptyFile]);
    expect(empty.stderr).toContain(`--password-file ${emptyFile}: the file is empty`);
    const engineUser = await runCli([...args, '--user', 'default'], { CLICKHOUSE_PASSWORD: PASSWORD });
    expect(engineUser.stderr).toMatch(/user "default".*the engine's own start-up user/);
    const badPort = await runCli([...args.slice(0, 4), '--port', '80800', '--tcp-port', '0'], { CLICKHOUSE_PASSWORD: PASSWORD });
    expect(badPort.stderr).toContain('--port: "80800" is not a TCP port number');
    const locked = await runCli(['store', 'serve', '--data-dir', join(dir, 'data'), '--port', '0', '--tcp-port', '0'], { CLICKHOUSE_PASSWORD: PASSWORD });
    expect(locked.code).toBe(1);
    expect(locked.stderr).toContain('is already in use by another process');
  });
});

/** Send `bytes` on a new connection and reset it (RST): whatever the node was reading fails mid-way. */
async function sendAndReset(port: number, bytes: Buffer): Promise<void> {
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => {});
  await new Promise((resolve) => socket.once('connect', resolve));
  await new Promise((resolve) => socket.write(bytes, resolve));
  socket.resetAndDestroy();
  await new Promise((resolve) => socket.once('close', resolve));
}
