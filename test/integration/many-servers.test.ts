/**
 * Several stateless servers on one ClickHouse, as real processes: the
 * data directory served by the engine's own listeners (`citymesh store
 * serve`), two `citymesh server` processes on it, real probes.
 *
 * - the monthly finalisation job: both servers run its schedule (every 2 s
 *   here); every slot is claimed in ClickHouse and run by exactly one server,
 *   and the month is finalised once;
 * - the live feed: probes stream to server A only; a browser on server B sees
 *   their trains, through ClickHouse (B tails live_trains);
 * - failover: probes given both servers lose A to SIGKILL, go on with B, and
 *   every train they spooled is stored exactly once: the batch in flight when
 *   A died is resent to B and dropped by its deduplication token.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { insertTrains, openStore, type Store } from '../../sql/index.js';
import { CitymeshProcess, freePort, killAll, probeProcess } from '../helpers/processes.js';
import { recentThirtyDayMonth, train } from '../helpers/sla-month.js';
import { testTopology, waitFor } from '../helpers/stack.js';

const topo = testTopology(['east', 'west'], '127.0.62', { slaExtra: '  finalise_grace_hours: 0\n  auto_finalise: true' });

interface JobRun {
  server: 'A' | 'B';
  slot: string;
  finalised: string[];
}

const STORE_PASSWORD = 'many-servers-store-password';
let dir: string;
let storeProcess: CitymeshProcess;
let storeUrl: string;
let store: Store;
const servers: { name: 'A' | 'B'; port: number; process: CitymeshProcess }[] = [];
const runs: JobRun[] = [];
const finalisedLogs: { server: string; month: string }[] = [];
/** Per slot, the servers that tried to claim it (won or lost). */
const attempts = new Map<string, Set<string>>();
const month = recentThirtyDayMonth();

function serverProcess(name: 'A' | 'B', port: number, configFile: string): CitymeshProcess {
  // Logs are JSON lines on stderr.
  return new CitymeshProcess(
    ['server', '--config', configFile, '--port', String(port), '--data-dir', join(dir, `unused-${name}`), '--signing-key', join(dir, 'keys', 'report-signing.pem'), '--log-level', 'debug'],
    { CLICKHOUSE_URL: storeUrl, CLICKHOUSE_USER: 'citymesh', CLICKHOUSE_PASSWORD: STORE_PASSWORD, CITYMESH_SLA_JOB_SCHEDULE: '*/2 * * * * *' },
    (line) => {
      if (!line.startsWith('{')) return;
      const entry = JSON.parse(line) as { msg?: string; slot?: string; finalised?: string[]; month?: string };
      if (entry.msg?.startsWith('job slot') && (entry as { job?: string }).job === 'sla-reports') {
        attempts.set(entry.slot!, new Set([...(attempts.get(entry.slot!) ?? []), name]));
      }
      if (entry.msg === 'SLA job ran on this server') runs.push({ server: name, slot: entry.slot!, finalised: entry.finalised ?? [] });
      if (entry.msg === 'SLA report finalised') finalisedLogs.push({ server: name, month: entry.month! });
    },
  );
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'citymesh-many-'));
  const storePort = await freePort();
  storeProcess = new CitymeshProcess(['store', 'serve', '--data-dir', join(dir, 'store'), '--port', String(storePort), '--tcp-port', '0'], { CLICKHOUSE_PASSWORD: STORE_PASSWORD });
  await storeProcess.waitForStdout('served at');
  storeUrl = `http://127.0.0.1:${storePort}`;
  store = await openStore({ url: storeUrl, dataDir: 'unused', username: 'citymesh', password: STORE_PASSWORD });

  const configFile = join(dir, 'topology.yaml');
  writeFileSync(configFile, topo.yaml);
  // Server A first: it migrates the store and creates the shared signing key; B finds both.
  const portA = await freePort();
  servers.push({ name: 'A', port: portA, process: serverProcess('A', portA, configFile) });
  await servers[0]!.process.waitForStdout('citymesh server: dashboard');
  // A complete past month with a little data, ready to finalise (grace 0).
  await insertTrains(store.client, [train('east', 'west', month.startS * 1e6 + 60e6, 300), train('west', 'east', month.startS * 1e6 + 60e6, 300)], 'many-servers-month');
  const portB = await freePort();
  servers.push({ name: 'B', port: portB, process: serverProcess('B', portB, configFile) });
  await servers[1]!.process.waitForStdout('citymesh server: dashboard');
}, 120_000);

afterAll(async () => {
  await killAll();
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function scalar<T>(query: string, params: Record<string, unknown> = {}): Promise<T[]> {
  const result = await store.client.query({ query, query_params: params, format: 'JSONEachRow' });
  return result.json<T>();
}

describe('two servers on one ClickHouse', () => {
  it('runs each slot of the finalisation job on exactly one server, and finalises the month once', async () => {
    await waitFor('the month finalised', async () => (await scalar<{ n: number }>(`SELECT count() AS n FROM sla_reports WHERE month = {m:String} AND seq = 0`, { m: month.month }))[0]!.n === 1, 60_000);
    // Several more slots, so both servers have had chances to run.
    await waitFor('8 job slots run', () => runs.length >= 8, 60_000).catch((error: Error) => {
      throw new Error(`${error.message}; runs seen: ${JSON.stringify(runs)}; finalised: ${JSON.stringify(finalisedLogs)}`);
    });
    const claims = await scalar<{ slot: string; holders: number }>(
      `SELECT slot, uniqExact(holder) AS holders FROM job_claims WHERE job = 'sla-reports' GROUP BY slot`,
    );
    const ranBy = new Map<string, string[]>();
    for (const run of runs) ranBy.set(run.slot, [...(ranBy.get(run.slot) ?? []), run.server]);
    const twice = [...ranBy].filter(([, who]) => who.length > 1);
    process.stdout.write(
      `many servers: ${runs.length} runs over ${ranBy.size} slots (A ${runs.filter((r) => r.server === 'A').length}, B ${runs.filter((r) => r.server === 'B').length}); ` +
        `${claims.length} slots claimed, ${[...attempts.values()].filter((a) => a.size === 2).length} tried by both; finalised by ${finalisedLogs.map((f) => f.server).join(',')}\n`,
    );
    expect(twice).toEqual([]);
    expect(claims.every((c) => Number(c.holders) === 1)).toBe(true);
    for (const slot of ranBy.keys()) expect(claims.map((c) => c.slot)).toContain(slot);
    expect(finalisedLogs.filter((f) => f.month === month.month)).toHaveLength(1);
    expect(runs.filter((r) => r.finalised.includes(month.month))).toHaveLength(1);
    // A real race: most slots were tried by both servers, and still ran once.
    const contested = [...ranBy.keys()].filter((slot) => attempts.get(slot)?.size === 2);
    expect(contested.length).toBeGreaterThanOrEqual(4);
  }, 150_000);

  it('shows trains stored through server A on server B\'s live feed, through ClickHouse', async () => {
    const [a, b] = servers;
    const seenOnB: { src: string; dst: string }[] = [];
    const live = new WebSocket(`ws://127.0.0.1:${b!.port}/v1/live?access_token=${topo.operatorToken}`);
    live.on('message', (data) => {
      const message = JSON.parse(String(data)) as { type: string; trains?: { src: string; dst: string }[] };
      if (message.type === 'trains') seenOnB.push(...message.trains!);
    });
    await new Promise((resolve, reject) => live.once('open', resolve).once('error', reject));
    const spooled = new Set<string>();
    const probes = ['east', 'west'].map((centre) =>
      probeProcess({ serverWsUrl: `ws://127.0.0.1:${a!.port}/v1/probe`, centre, token: topo.tokens[centre]!, spoolDir: join(dir, `spool-${centre}`), spooled }),
    );
    await waitFor('trains of both directions on B', () => seenOnB.some((t) => t.src === 'east') && seenOnB.some((t) => t.src === 'west'), 60_000);
    live.close();
    // Nothing reached B directly: no probe is connected to it.
    const metrics = await (await fetch(`http://127.0.0.1:${b!.port}/metrics`, { headers: { authorization: `Bearer ${topo.operatorToken}` } })).text();
    expect(metrics).toContain('citymesh_ingested_trains_total');
    expect(metrics).not.toMatch(/citymesh_ingested_trains_total\{centre="(east|west)"\} [1-9]/);
    process.stdout.write(`many servers: live feed on B carried ${seenOnB.length} trains stored through A\n`);
    await Promise.all(probes.map((p) => p.kill('SIGTERM')));
  }, 90_000);

  it('keeps every train exactly once when a server dies under probes that know both (shared ClickHouse dedups the resend)', async () => {
    const [a, b] = servers;
    const urls = `ws://127.0.0.1:${a!.port}/v1/probe,ws://127.0.0.1:${b!.port}/v1/probe`;
    const spooledBy = { east: new Set<string>(), west: new Set<string>() };
    const probes = (['east', 'west'] as const).map((centre) =>
      probeProcess({ serverWsUrl: urls, centre, token: topo.tokens[centre]!, spoolDir: join(dir, `failover-spool-${centre}`), spooled: spooledBy[centre] }),
    );
    const spooled = () => [...spooledBy.east, ...spooledBy.west];
    const storedRows = async () => scalar<{ train_id: string; src: string; n: number }>(
      `SELECT train_id, any(src) AS src, count() AS n FROM latency_trains WHERE train_id IN {ids:Array(String)} GROUP BY train_id`, { ids: spooled() },
    );
    const storedOf = (rows: { src: string }[], centre: string) => rows.filter((r) => r.src === centre).length;
    await waitFor('trains from both probes stored', async () => {
      const rows = await storedRows();
      return storedOf(rows, 'east') >= 3 && storedOf(rows, 'west') >= 3;
    }, 60_000);
    await a!.process.kill('SIGKILL');
    const atKill = { east: spooledBy.east.size, west: spooledBy.west.size };
    // Both probes back in business through B (the one that was on A has reconnected), each with
    // trains measured after the kill stored: only then is a stop a drain, not a disconnect.
    await waitFor('each probe storing through B after the kill', async () => {
      const rows = await storedRows();
      return storedOf(rows, 'east') >= atKill.east + 3 && storedOf(rows, 'west') >= atKill.west + 3;
    }, 60_000);
    await Promise.all(probes.map((p) => p.kill('SIGTERM'))); // stop: seal, drain to B, exit
    const stored = await storedRows();
    const twice = stored.filter((r) => Number(r.n) > 1);
    process.stdout.write(
      `many servers: failover with a shared store: ${spooled().length} trains spooled (${atKill.east + atKill.west} before the kill), ` +
        `${stored.length} stored, ${twice.length} twice\n`,
    );
    expect(twice).toEqual([]);
    expect(stored.map((r) => r.train_id).sort()).toEqual(spooled().sort());
  }, 150_000);
});
