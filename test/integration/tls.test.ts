/**
 * TLS end to end: the server speaks https/wss with a certificate from a
 * private CA; a probe given that CA connects and its trains are stored; a
 * probe without it refuses the server (it verifies, it does not trust blindly).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../../api/server.js';
import { resolveServerSettings } from '../../api/settings.js';
import { countTrains } from '../../sql/index.js';
import { missingCommand, skipReason } from '../helpers/requirements.js';
import { quietLogger, testAgent, testTopology, waitFor } from '../helpers/stack.js';

describe.skipIf(skipReason(missingCommand('openssl', 'openssl')))('TLS', () => {
  const dir = mkdtempSync(join(tmpdir(), 'citymesh-tls-'));
  const topo = testTopology(['uniform', 'victor'], '127.0.14');
  let server: RunningServer;

  beforeAll(async () => {
    const ssl = (args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
    ssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=citymesh test CA', '-keyout', 'ca.key', '-out', 'ca.pem']);
    ssl(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=127.0.0.1', '-keyout', 'server.key', '-out', 'server.csr']);
    // Node checks the IP against subjectAltName, not the CN.
    writeFileSync(join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1\n');
    ssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '1',
      '-extfile', 'san.ext', '-out', 'server.pem']);
    server = await startServer(
      resolveServerSettings({ port: 0, host: '127.0.0.1', dataDir: join(dir, 'data'), tlsCert: join(dir, 'server.pem'), tlsKey: join(dir, 'server.key') }, {}),
      quietLogger,
      { topology: topo.topology },
    );
  });

  afterAll(async () => {
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves https, and a probe that trusts the CA stores its trains over wss', async () => {
    expect(server.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const health = await new Promise<string>((resolve, reject) => {
      request(`${server.url}/healthz`, { ca: readFileSync(join(dir, 'ca.pem')) }, (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d));
        res.on('end', () => resolve(body));
      }).on('error', reject).end();
    });
    expect(JSON.parse(health)).toEqual({ status: 'ok' });

    const wsUrl = `${server.url.replace(/^https/, 'wss')}/v1/probe`;
    const agents = ['uniform', 'victor'].map((c) => testAgent({ wsUrl }, topo, c, { caFile: join(dir, 'ca.pem') }));
    for (const a of agents) await a.start();
    await waitFor('trains over wss', async () => (await countTrains(server.store.client)) > 0);
    await Promise.all(agents.map((a) => a.stop()));
  });

  it('a probe without the CA refuses the server certificate', async () => {
    const wsUrl = `${server.url.replace(/^https/, 'wss')}/v1/probe`;
    const errors: string[] = [];
    const agent = testAgent({ wsUrl }, topo, 'uniform', {
      logger: Object.assign(Object.create(quietLogger), { warn: (o: { err?: string }) => errors.push(String(o.err)) }),
    });
    void agent.start().catch(() => undefined);
    await waitFor('a certificate error', () => errors.some((e) => /self[- ]signed|unable to verify|certificate/i.test(e)));
    expect(agent.stats().connected).toBe(false);
    await agent.stop();
  });
});
