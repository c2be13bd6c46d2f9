/**
 * The whole path on loopback: a server on the embedded store and two real
 * probe agents (STAMP reflectors and senders on their own 127.0.4.x
 * addresses) measuring each other; the API and the live feed show both
 * directions. Then the CLI one-shot tools against each other.
 */
import { spawn, spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { LiveMessage, SeriesResponse, StatusResponse } from '../../api/contract.js';
import type { ProbeAgent } from '../../probes/agent.js';
import { missingCommand, skipReason } from '../helpers/requirements.js';
import { getJson, startAgents, startTestServer, testTopology, waitFor, type TestServer } from '../helpers/stack.js';

const topo = testTopology(['east', 'west'], '127.0.4');
let server: TestServer;
const agents: ProbeAgent[] = [];

beforeAll(async () => {
  server = await startTestServer(topo.topology);
});
afterAll(async () => {
  await Promise.all(agents.map((a) => a.stop()));
  await server?.stop();
});

describe('server and two probes on loopback', () => {
  it('measures both directions, stores them, and streams them live', async () => {
    const live = new WebSocket(`${server.url.replace(/^http/, 'ws')}/v1/live?access_token=${topo.operatorToken}`);
    const received: LiveMessage[] = [];
    live.on('message', (data) => {
      const message = JSON.parse(String(data)) as LiveMessage;
      // One frame per stored batch: unpack it.
      if (message.type === 'trains') received.push(...message.trains);
      else received.push(message);
    });
    await new Promise((resolve) => live.once('open', resolve));

    agents.push(...(await startAgents(server, topo, ['east', 'west'])));

    const status = await waitFor('both directions in /v1/status', async () => {
      const { body } = await getJson<StatusResponse>(`${server.url}/v1/status`, topo.operatorToken);
      // A train can be lost whole when the machine is loaded (300 ms timeout): wait for answered packets.
      const paths = body.paths.filter((p) => p.engine === 'stamp' && p.trains > 0 && p.rttP50Ms !== null);
      return paths.length === 2 ? paths : undefined;
    });
    expect(status.map((p) => `${p.src}>${p.dst}`).sort()).toEqual(['east>west', 'west>east']);
    for (const path of status) {
      expect(path.rttP50Ms).toBeGreaterThan(0);
      expect(path.rttP99Ms).toBeGreaterThanOrEqual(path.rttP50Ms!);
      expect(path.lossRatio).toBeGreaterThanOrEqual(0);
      expect(path.lossRatio).toBeLessThan(1);
      expect(['ok', 'warn', 'breach']).toContain(path.state);
    }

    const trains = await waitFor('live train messages from both probes', () => {
      const t = received.filter((m): m is Extract<LiveMessage, { type: 'train' }> => m.type === 'train');
      return new Set(t.map((m) => m.src)).size === 2 ? t : undefined;
    });
    expect(received[0]).toMatchObject({ type: 'welcome' });
    expect(trains[0]!.sent).toBe(5);
    expect(new Set(trains.map((m) => m.flow))).toEqual(new Set([0, 1]));
    live.close();

    const { body: series } = await getJson<SeriesResponse>(`${server.url}/v1/links/east/west/series?points=300`, topo.operatorToken);
    expect(series.source).toBe('raw');
    expect(series.t.length).toBe(series.p99Ms.length);
    expect(series.packets.reduce((a, b) => a + b, 0)).toBeGreaterThan(0);

    // Each flow of the source-port sweep keeps its own source port, stable across trains.
    const { body: raw } = await getJson<{ trains: { flow: number; src_port: number; rtts_us: number[] }[] }>(
      `${server.url}/v1/links/east/west/trains`,
      topo.operatorToken,
    );
    const ports = new Map<number, Set<number>>();
    for (const t of raw.trains) ports.set(t.flow, (ports.get(t.flow) ?? new Set()).add(t.src_port));
    expect([...ports.keys()].sort()).toEqual([0, 1]);
    expect([...ports.values()].every((s) => s.size === 1)).toBe(true);
    expect(new Set([...ports.values()].map((s) => [...s][0])).size).toBe(2);
  });

  it('flushes buffered trains on stop, so what was measured is stored', async () => {
    const agent = agents[0]!;
    await agent.stop();
    const stats = agent.stats();
    expect(stats.spool.batches).toBe(0);
    expect(stats.spool.journalTrains).toBe(0);
    expect(stats.spool.droppedTrains).toBe(0);
    const count = await server.store.client.query({ query: "SELECT count() AS n FROM latency_trains WHERE src = 'east'", format: 'JSONEachRow' });
    const [row] = await count.json<{ n: number }>();
    expect(Number(row!.n)).toBe(stats.trains);
  });
});

describe('command line', () => {
  const cli = (...args: string[]) => spawnSync(process.execPath, ['bin/citymesh.js', ...args], { encoding: 'utf8', timeout: 60_000 });

  it('prints help', () => {
    const help = cli('--help');
    expect(help.status).toBe(0);
    for (const command of ['server', 'probe', 'demo', 'measure', 'reflect', 'config']) expect(help.stdout).toContain(command);
  });

  it('measures a STAMP train against a standalone reflector and reports JSON', async () => {
    const port = 40_000 + Math.floor(Math.random() * 10_000);
    const reflector = spawn(process.execPath, ['bin/citymesh.js', 'reflect', '--port', String(port), '--host', '127.0.4.9'], { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      await new Promise<void>((resolve, reject) => {
        reflector.stdout.on('data', (d: Buffer) => (String(d).includes('listening') ? resolve() : undefined));
        reflector.once('exit', (code) => reject(new Error(`reflector exited with ${code}`)));
      });
      const result = cli('measure', 'stamp', '--target', `127.0.4.9:${port}`, '--count', '20', '--flows', '2', '--json');
      expect(result.stderr).toBe('');
      const trains = JSON.parse(result.stdout) as { received: number; sent: number; rttsUs: number[]; srcPort: number }[];
      expect(trains).toHaveLength(2);
      for (const t of trains) {
        expect(t.sent).toBe(20);
        expect(t.received).toBe(20);
        expect(t.rttsUs.every((us) => us > 0)).toBe(true);
      }
      expect(trains[0]!.srcPort).not.toBe(trains[1]!.srcPort);
    } finally {
      reflector.kill('SIGINT');
    }
  });

  it.skipIf(skipReason(missingCommand('ping', 'iputils-ping')))('measures an ICMP train through the system ping', () => {
    const result = cli('measure', 'icmp', '--target', '127.0.0.1', '--count', '3', '--interval-ms', '200', '--json');
    const [train] = JSON.parse(result.stdout) as { received: number; rttsUs: number[] }[];
    expect(train!.received).toBe(3);
    expect(train!.rttsUs).toHaveLength(3);
  });

  it('refuses a malformed target with a clear error', () => {
    const result = cli('measure', 'stamp', '--target', 'localhost', '--count', '1');
    expect(result.status).toBe(1);
    expect(result.stderr.trim()).toBe('citymesh: --target: "localhost" must be HOST:PORT (e.g. 127.0.0.1:862, [::1]:862)');
  });
});
