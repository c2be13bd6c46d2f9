/**
 * `citymesh probe --check` run as a process against a real server on
 * loopback: a good host reports ok (clock and iperf3 exactly as this machine
 * really is), and a wrong token, a closed port, a non-writable spool directory
 * each fail with a fix, and exit 1.
 */
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hashToken } from '../../topology/index.js';
import { type TestStatus } from '../../collector/index.js';
import type { CheckResult } from '../../probes/check.js';
import { readClockSync } from '../../probes/engines/stamp/clock.js';
import { detectIperf3 } from '../../probes/engines/throughput/index.js';
import { freePort } from '../helpers/processes.js';
import { missingCommand } from '../helpers/requirements.js';
import { startTestServer, testAgent, testTopology, waitFor, type TestServer } from '../helpers/stack.js';

const throughputPort = 30_000 + Math.floor(Math.random() * 10_000);
const topo = testTopology(['quince', 'rowan'], '127.0.82', {
  probingExtra: `  throughput:
    enabled: true
    schedule: "0 0 0 1 1 *"
    seconds: 1
    omit_seconds: 0
    streams: 1
    direction: forward
    engine: native
    port: ${throughputPort}`,
});
const dir = mkdtempSync(join(tmpdir(), 'citymesh-check-'));
let server: TestServer;

beforeAll(async () => {
  server = await startTestServer(topo.topology);
});
afterAll(async () => {
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function tokenFile(name: string, token: string): string {
  const file = join(dir, name);
  writeFileSync(file, `${token}\n`, { mode: 0o600 });
  return file;
}

interface CheckRun {
  code: number | null;
  results: CheckResult[];
  byName: (name: string) => CheckResult;
}

function runCheck(args: string[], options: { uid?: number; gid?: number; env?: NodeJS.ProcessEnv } = {}): Promise<CheckRun> {
  const { env, ...ids } = options;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['bin/citymesh.js', 'probe', '--check', '--json', ...args], {
      env: { ...process.env, CITYMESH_TOKEN: '', CITYMESH_SERVER: '', CITYMESH_CENTRE: '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
      ...ids,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    child.once('error', reject);
    child.once('close', (code) => {
      let results: CheckResult[];
      try {
        results = JSON.parse(stdout) as CheckResult[];
      } catch {
        reject(new Error(`probe --check printed no JSON (exit ${code}): ${stdout}${stderr}`));
        return;
      }
      resolve({
        code,
        results,
        byName: (name) => {
          const found = results.find((r) => r.check === name);
          if (!found) throw new Error(`no check "${name}" in ${JSON.stringify(results.map((r) => r.check))}`);
          return found;
        },
      });
    });
  });
}

const goodArgs = (spoolDir: string) => ['--server', server.wsUrl, '--centre', 'quince', '--token-file', tokenFile('good.token', topo.tokens.quince!), '--spool-dir', spoolDir];

describe('citymesh probe --check', () => {
  it('a good host: everything ok, clock and iperf3 reported as they really are', async () => {
    const run = await runCheck(goodArgs(join(dir, 'spool-good')));
    const collector = run.byName(`collector ${server.wsUrl}`);
    expect(collector).toMatchObject({ status: 'ok' });
    expect(collector.detail).toContain('token accepted for centre "quince"');
    expect(run.byName('token')).toMatchObject({ status: 'ok', detail: expect.stringContaining('mode 0600') });
    expect(run.byName('centre').status).toBe('ok');
    expect(run.byName('spool').status).toBe('ok');
    expect(run.byName('ping').status).toBe(missingCommand('ping', 'iputils-ping') ? 'fail' : 'ok');
    // The reflector port comes from the plan the server sent, not the default 862.
    expect(run.byName('reflector-port')).toMatchObject({ status: 'ok', detail: expect.stringContaining(`${topo.addresses.quince}:${topo.stampPort} (from the plan)`) });

    const clock = await readClockSync();
    expect(run.byName('clock').status).toBe(clock.synchronized ? 'ok' : 'warn');
    const iperf3 = await detectIperf3();
    const [major = 0, minor = 0] = (/(\d+)\.(\d+)/.exec(iperf3.version ?? '') ?? []).slice(1).map(Number);
    expect(run.byName('iperf3').status).toBe(iperf3.available && (major > 3 || (major === 3 && minor >= 16)) ? 'ok' : 'warn');
    if (iperf3.version) expect(run.byName('iperf3').detail).toContain(iperf3.version);

    for (const r of run.results) if (r.status !== 'ok') expect(r.fix, `${r.check} says how to fix it`).toBeTruthy();
    expect(run.code).toBe(run.results.some((r) => r.status === 'fail') ? 1 : 0);
    process.stdout.write(`probe --check on this machine:\n${run.results.map((r) => `  ${r.status} ${r.check}: ${r.detail}`).join('\n')}\n`);
  });

  it('a wrong token: the collector check fails, naming the token\'s sha-256 for the topology', async () => {
    // The servers may also come from the environment, as under systemd.
    const run = await runCheck(['--centre', 'quince', '--token-file', tokenFile('wrong.token', 'not-the-token'), '--spool-dir', join(dir, 'spool-wrong')], {
      env: { CITYMESH_SERVER: server.wsUrl },
    });
    const collector = run.byName(`collector ${server.wsUrl}`);
    expect(collector.status).toBe('fail');
    expect(collector.detail).toMatch(/bad_token/);
    expect(collector.fix).toContain(`sha-256 is ${hashToken('not-the-token')}`);
    expect(run.code).toBe(1);
  });

  it('an unreachable collector (a closed port on loopback) fails at TCP connect', async () => {
    const closed = `ws://127.0.0.1:${await freePort()}/v1/probe`;
    const run = await runCheck(['--server', closed, ...goodArgs(join(dir, 'spool-closed'))]);
    expect(run.byName(`collector ${server.wsUrl}`).status).toBe('ok');
    expect(run.byName(`collector ${closed}`)).toMatchObject({ status: 'fail', detail: expect.stringMatching(/TCP connect: .*ECONNREFUSED/), fix: expect.any(String) });
    expect(run.code).toBe(1);
  });

  it('a spool directory the probe\'s user cannot write fails', async () => {
    // Root writes anywhere, so as root the check runs as nobody, like a service user would.
    const asRoot = process.getuid?.() === 0;
    const parent = join(dir, 'readonly-parent');
    mkdirSync(parent, { mode: 0o755 });
    const spoolDir = join(parent, 'spool');
    mkdirSync(spoolDir);
    chmodSync(spoolDir, 0o555);
    chmodSync(dir, 0o755);
    const run = await runCheck(['--server', server.wsUrl, '--centre', 'quince', '--spool-dir', spoolDir], asRoot ? { uid: 65534, gid: 65534 } : {});
    expect(run.byName('spool')).toMatchObject({ status: 'fail', detail: expect.stringContaining('not writable'), fix: expect.stringContaining('--spool-dir') });
    expect(run.code).toBe(1);
  });

  it('beside running probes: the check takes neither a connection nor the throughput requests from the probe; ports in use are warnings', async () => {
    const agent = testAgent(server, topo, 'quince');
    const peer = testAgent(server, topo, 'rowan');
    await agent.start();
    await peer.start();
    try {
      const connections = async () => {
        const metrics = await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${topo.operatorToken}` } });
        return /citymesh_probe_connections\{centre="quince"\} (\d+)/.exec(await metrics.text())?.[1];
      };
      expect(await connections()).toBe('1');
      const run = await runCheck(goodArgs(join(dir, 'spool-beside')));
      expect(run.byName(`collector ${server.wsUrl}`).status).toBe('ok');
      expect(run.byName('reflector-port')).toMatchObject({ status: 'warn', detail: expect.stringContaining('in use') });
      expect(run.byName('throughput-port')).toMatchObject({ status: 'warn', detail: expect.stringContaining(`TCP ${topo.addresses.quince}:${throughputPort}`) });
      expect(await connections()).toBe('1');
      expect(agent.stats()).toMatchObject({ connected: true, server: server.wsUrl });
      // Had the check's connection replaced the probe's as the centre's socket, closing it would leave
      // the server no way to reach quince: the test would fail as "not connected".
      const headers = { authorization: `Bearer ${topo.operatorToken}` };
      const requested = (await (await fetch(`${server.url}/v1/links/quince/rowan/throughput-tests`, { method: 'POST', headers })).json()) as TestStatus;
      const finished = await waitFor('the throughput test to finish', async () => {
        const status = (await (await fetch(`${server.url}/v1/throughput-tests/${requested.testId}`, { headers })).json()) as TestStatus;
        return status.state === 'queued' || status.state === 'running' ? undefined : status;
      });
      expect(finished).toMatchObject({ client: 'quince', state: 'done', error: null });
    } finally {
      await Promise.all([agent.stop(), peer.stop()]);
    }
  });
});
