/**
 * The regulator's path end to end with the built CLI: download a finalised
 * month's signed report with a read-only token, verify it offline (pinned
 * key, or the key the server publishes), see an altered copy refused; fetch
 * CSV and one link's detail.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPORT_COLUMNS } from '../../api/sla-csv.js';
import { parseRfc4180 } from '../helpers/rfc4180.js';
import { insertAll, recentThirtyDayMonth, slaTopology, train } from '../helpers/sla-month.js';
import { startTestServer, type TestServer } from '../helpers/stack.js';

const M = recentThirtyDayMonth();
const t = slaTopology();
const dir = mkdtempSync(join(tmpdir(), 'citymesh-sla-cli-'));
const tokenFile = join(dir, 'regulator.token');
let server: TestServer;

/** Run the built CLI without blocking this process (the server under test lives here). */
function cli(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const env = { ...process.env };
  delete env.CITYMESH_TOKEN;
  const child = spawn(process.execPath, ['bin/citymesh.js', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'], timeout: 60_000 });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, stdout, stderr })));
}

beforeAll(async () => {
  server = await startTestServer(t.topology);
  const trains = [];
  for (let i = 0; i < 600; i++) {
    const ts = (M.startS + i * 60 + 30) * 1e6;
    trains.push(train('alfa', 'bravo', ts, i < 50 ? 2600 : 500), train('bravo', 'alfa', ts, 500));
  }
  await insertAll(server.store.client, trains, [], [], 'sla-cli');
  writeFileSync(tokenFile, `${t.regulatorToken}\n`, { mode: 0o600 });
  const response = await fetch(`${server.url}/v1/sla/months/${M.month}/finalise`, { method: 'POST', headers: { authorization: `Bearer ${t.operatorToken}` } });
  expect(response.status).toBe(201);
}, 120_000);

afterAll(async () => {
  await server?.stop();
  if (server) rmSync(`${server.dataDir}-keys`, { recursive: true, force: true });
  rmSync(dir, { recursive: true, force: true });
});

describe('citymesh report', () => {
  it('downloads the signed report byte for byte and verifies it offline', async () => {
    const file = join(dir, `citymesh-sla-${M.month}.signed.json`);
    const got = await cli('report', '--month', M.month, '--signed', '--server', server.url, '--token-file', tokenFile, '-o', file);
    expect(got.code, got.stderr).toBe(0);
    const served = await (await fetch(`${server.url}/v1/sla/months/${M.month}/report`, { headers: { authorization: `Bearer ${t.regulatorToken}` } })).text();
    expect(readFileSync(file, 'utf8')).toBe(served);

    const viaServer = await cli('report', 'verify', file, '--server', server.url);
    expect(viaServer.code, viaServer.stdout + viaServer.stderr).toBe(0);
    expect(viaServer.stdout).toMatch(new RegExp(`^verified: SLA report for ${M.month} of "SLA test network", signed by sha256:[0-9a-f]{64}; network verdict insufficient_data \\(6 links: 0 met, 0 breach, 6 insufficient data\\)`));

    const keyFile = join(dir, 'citymesh-public.pem');
    writeFileSync(keyFile, await (await fetch(`${server.url}/v1/sla/public-key`)).text());
    const pinned = await cli('report', 'verify', file, '--public-key', keyFile);
    expect(pinned.code).toBe(0);

    const altered = join(dir, 'altered.json');
    writeFileSync(altered, served.replace(/"breachMinutes":50/, '"breachMinutes":49'));
    expect(readFileSync(altered, 'utf8')).not.toBe(served);
    const refused = await cli('report', 'verify', altered, '--public-key', keyFile);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toMatch(/^NOT VERIFIED: .*the signature does not match the report/);
  });

  it('prints CSV and one link\'s detail (a-b resolved against the server\'s links)', async () => {
    const csv = await cli('report', '--month', M.month, '--format', 'csv', '--server', server.url, '--token-file', tokenFile);
    expect(csv.code, csv.stderr).toBe(0);
    const [header, ...rows] = parseRfc4180(csv.stdout);
    expect(header).toEqual([...REPORT_COLUMNS]);
    expect(rows.find((r) => r[4] === 'alfa~bravo' && r[6] === 'latency')![7]).toBe('insufficient_data');

    const detail = await cli('report', '--month', M.month, '--link', 'bravo-alfa', '--server', server.url, '--token-file', tokenFile);
    expect(detail.code, detail.stderr).toBe(0);
    const body = JSON.parse(detail.stdout) as { link: { id: string }; timeline: { latency: { minutes: number }[] } };
    expect(body.link.id).toBe('alfa~bravo');
    expect(body.timeline.latency).toEqual([expect.objectContaining({ minutes: 50 })]);
  });

  it('says what is wrong: no token, a bad month, a role that may not read', async () => {
    const noToken = await cli('report', '--month', M.month, '--server', server.url);
    expect(noToken.code).toBe(1);
    expect(noToken.stderr).toMatch(/no token/);
    const badMonth = await cli('report', '--month', '2026-13', '--server', server.url, '--token-file', tokenFile);
    expect(badMonth.stderr).toMatch(/--month: "2026-13": there is no month 13/);
    const outOfRange = await cli('report', '--month', '1999-01', '--server', server.url, '--token-file', tokenFile);
    expect(outOfRange.code).toBe(1);
    expect(outOfRange.stderr).toMatch(/--month: "1999-01" is out of range: months from 2000-01 to 2099-12/);
    const badForm = await cli('report', '--month', '2026-1', '--server', server.url, '--token-file', tokenFile);
    expect(badForm.stderr).toMatch(/--month: "2026-1" must be YYYY-MM/);
    const probeFile = join(dir, 'probe.token');
    writeFileSync(probeFile, `${t.probeToken}-alfa`);
    const probe = await cli('report', '--month', M.month, '--server', server.url, '--token-file', probeFile);
    expect(probe.code).toBe(1);
    expect(probe.stderr).toMatch(/HTTP 403: forbidden/);
    const noKey = await cli('report', 'verify', join(dir, 'x.json'));
    expect(noKey.stderr).toMatch(/--public-key FILE/);
  });
});
