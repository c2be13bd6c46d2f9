/**
 * Probe failover between collectors, with real processes on loopback: two
 * `citymesh server` processes, each on its own embedded store, and one
 * `citymesh probe --server URL1,URL2`. The server the probe is using is
 * SIGKILLed mid-stream; the probe moves to the other one and its spool drains
 * there. Every train the probe spooled is stored on one server or the other,
 * and no store holds a train twice.
 */
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { collectorStartIndex } from '../../probes/agent.js';
import { CitymeshProcess, freePort, killAll, removeTempDirs, storedTrainIds, tempDir } from '../helpers/processes.js';
import { getJson, startTestServer, testAgent, testTopology, waitFor } from '../helpers/stack.js';

afterAll(async () => {
  await killAll();
  removeTempDirs();
});

async function trainsOn(port: number, operatorToken: string): Promise<number> {
  const { body } = await getJson<{ paths: { trains: number }[] }>(`http://127.0.0.1:${port}/v1/status`, operatorToken);
  return body.paths.reduce((sum, p) => sum + p.trains, 0);
}

describe('probe with two collector URLs', () => {
  it('the server in use is SIGKILLed: the probe streams on to the other and loses nothing', async () => {
    const topo = testTopology(['xray', 'yankee'], '127.0.81');
    const configFile = join(tempDir('config'), 'topology.yaml');
    writeFileSync(configFile, topo.yaml);
    const servers = await Promise.all([0, 1].map(async (i) => {
      const port = await freePort();
      const dataDir = join(tempDir(`data${i + 1}`), 'store');
      const child = new CitymeshProcess(['server', '--config', configFile, '--data-dir', dataDir, '--port', String(port), '--log-level', 'warn'], {});
      return { port, dataDir, child, url: `ws://127.0.0.1:${port}/v1/probe` };
    }));
    await Promise.all(servers.map((s) => s.child.waitForStdout('citymesh server:')));
    // The peer's reflector answers the probe's STAMP packets, so trains carry real RTTs.
    const reflector = new CitymeshProcess(['reflect', '--port', String(topo.stampPort), '--host', topo.addresses.yankee!], {});
    await reflector.waitForStdout('STAMP reflector listening');

    const spooled = new Set<string>();
    const connectedTo: string[] = [];
    const spoolDir = tempDir('spool');
    const probe = new CitymeshProcess(
      ['probe', '--server', servers.map((s) => s.url).join(','), '--centre', 'xray', '--spool-dir', spoolDir, '--log-level', 'debug', '--drain-timeout-s', '60'],
      { CITYMESH_TOKEN: topo.tokens.xray! },
      (line) => {
        let entry: { msg?: string; trainId?: string; server?: string };
        try {
          entry = JSON.parse(line) as typeof entry;
        } catch {
          return;
        }
        if (entry.msg === 'train spooled' && entry.trainId) spooled.add(entry.trainId);
        if (entry.msg?.startsWith('collector connected') && entry.server) connectedTo.push(entry.server);
      },
    );

    await waitFor('the probe connected to one of the servers', () => connectedTo.length > 0);
    const first = servers.find((s) => s.url === connectedTo[0])!;
    const second = servers.find((s) => s !== first)!;
    await waitFor('trains stored on the first server', async () => (await trainsOn(first.port, topo.operatorToken)) >= 4);

    await first.child.kill('SIGKILL');
    const spooledBeforeKill = new Set(spooled);
    await waitFor('the probe moved to the second server', () => connectedTo.includes(second.url));
    await waitFor('trains measured after the failover', () => spooled.size >= spooledBeforeKill.size + 6);
    await waitFor('trains stored on the second server', async () => (await trainsOn(second.port, topo.operatorToken)) >= 6);

    expect(await probe.kill('SIGTERM')).toBe(0); // stop flushes and waits (bounded) for every ack
    expect(readdirSync(spoolDir).filter((f) => f.startsWith('batch-') || f.startsWith('journal-'))).toEqual([]);
    await second.child.kill('SIGTERM');
    await reflector.kill('SIGTERM');

    const onFirst = await storedTrainIds(first.dataDir);
    const onSecond = await storedTrainIds(second.dataDir);
    const overlap = [...onFirst.ids].filter((id) => onSecond.ids.has(id));
    process.stdout.write(
      `failover: trains generated ${spooled.size} (${spooledBeforeKill.size} before the kill), stored on server 1 ${onFirst.rows}, ` +
        `on server 2 ${onSecond.rows}, on both ${overlap.length}\n`,
    );

    // None lost: every train the probe spooled is in one store or the other.
    expect([...spooled].filter((id) => !onFirst.ids.has(id) && !onSecond.ids.has(id))).toEqual([]);
    // Nothing invented, and nothing twice within a store.
    expect([...onFirst.ids, ...onSecond.ids].filter((id) => !spooled.has(id))).toEqual([]);
    expect(onFirst.duplicates).toBe(0);
    expect(onSecond.duplicates).toBe(0);
    // Everything measured after the kill went to the second server.
    expect([...spooled].filter((id) => !spooledBeforeKill.has(id) && !onSecond.ids.has(id))).toEqual([]);
    expect(onFirst.rows).toBeGreaterThan(0);
    // A batch the first server stored but could not acknowledge before it died
    // was resent from the spool and is in both stores. That is at-least-once
    // between processes that do not share storage; with a shared ClickHouse
    // (several servers on one cluster), the batch id is the INSERT's
    // insert_deduplication_token and the resend is dropped there. Only trains
    // spooled before the kill can be in both.
    expect(overlap.filter((id) => !spooledBeforeKill.has(id))).toEqual([]);
  }, 180_000); // two server processes and a reconnect with back-off: took 51 s of the 60 s default at load 25
});

describe('collector list in the agent', () => {
  it('passes over dead URLs, settles on the live one, and reports which it uses', async () => {
    const topo = testTopology(['zulu', 'amber'], '127.0.81');
    const server = await startTestServer(topo.topology);
    const dead = await Promise.all([0, 1].map(async () => `ws://127.0.0.1:${await freePort()}/v1/probe`));
    const urls = [dead[0]!, dead[1]!, server.wsUrl];
    const agent = testAgent(server, topo, 'zulu', { serverUrl: urls });
    try {
      await agent.start();
      // It starts where the centre id hashes to and walks the list from there.
      const start = collectorStartIndex('zulu', urls.length);
      expect(agent.stats()).toMatchObject({ connected: true, server: server.wsUrl, failovers: (urls.length - 1 - start + urls.length) % urls.length });
    } finally {
      await agent.stop();
      await server.stop();
    }
  });

  it('spreads a fleet over the servers instead of starting every probe on the first', () => {
    const perServer = [0, 0, 0];
    for (let i = 0; i < 300; i++) perServer[collectorStartIndex(`centre-${i}`, 3)]!++;
    process.stdout.write(`start index of 300 centres over 3 servers: ${perServer.join(', ')}\n`);
    for (const n of perServer) expect(n).toBeGreaterThan(60);
  });
});
