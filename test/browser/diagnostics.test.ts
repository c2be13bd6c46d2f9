/**
 * Diagnostics annotations on the link's latency charts, in real headless
 * Chromium against a running stack (server on the embedded store, two real
 * probes on loopback running the real traceroute and tracepath): the
 * "Run diagnostics" button gets both ends' results, the uPlot plugin draws
 * their markers and a maintenance window's band on the charts, the list
 * names them, and a click shows a run's hops, path MTU and fast train.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ProbeAgent } from '../../probes/agent.js';
import { closeChromium, launchChromium, waitInPage, cspViolations } from '../helpers/browser.js';
import { missingChromium, missingCommand, skipReason } from '../helpers/requirements.js';
import { startAgents, startTestServer, testTopology, type TestServer } from '../helpers/stack.js';

const outputDir = join('test-output', 'browser');
const skip = skipReason(missingChromium() ?? missingCommand('traceroute', 'traceroute') ?? missingCommand('tracepath', 'iputils-tracepath'));

describe.skipIf(skip)('diagnostics annotations in Chromium', () => {
  const topo = testTopology(['alfa', 'bravo'], '127.0.44', {
    probingExtra: '  diagnostics:\n    enabled: false\n    fast_train_count: 50',
  });
  let server: TestServer;
  let browser: BrowserContext;
  const agents: ProbeAgent[] = [];

  beforeAll(async () => {
    server = await startTestServer(topo.topology);
    agents.push(...(await startAgents(server, topo, ['alfa', 'bravo'])));
    browser = await launchChromium({ viewport: { width: 1280, height: 1100 } });
  });

  afterAll(async () => {
    await closeChromium(browser);
    await Promise.all(agents.map((a) => a.stop()));
    await server?.stop();
  });

  it('runs diagnostics from the page and shows them as markers and details on the link charts', async () => {
    // A maintenance window over the charts' 15 minutes (declared late: listed, excludes nothing).
    const start = new Date(Math.floor(Date.now() / 60_000) * 60_000 - 5 * 60_000);
    const end = new Date(start.getTime() + 20 * 60_000);
    const declared = await fetch(`${server.url}/v1/sla/maintenance`, {
      method: 'POST', headers: { authorization: `Bearer ${topo.operatorToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ link: 'alfa~bravo', start: start.toISOString(), end: end.toISOString(), reason: 'optics swap' }),
    });
    expect(declared.status).toBe(201);

    const page = await browser.newPage();
    const problems: string[] = [];
    page.on('pageerror', (error) => problems.push(error.message));
    await page.goto(`${server.url}/#token=${topo.operatorToken}`);
    await page.waitForSelector('#matrix td[data-src][data-dst]', { timeout: 30_000 });
    await page.click('#matrix td[data-src="alfa"][data-dst="bravo"]');
    await waitInPage(page, "document.getElementById('charts')?.dataset.state === 'ready'", 15_000);
    // The window is there before any run: one annotation, drawn as a band.
    await waitInPage(page, "document.getElementById('charts')?.dataset.annotations === '1'", 15_000);
    await waitInPage(page, "document.getElementById('charts')?.dataset.markers === '1'", 15_000);
    expect(await page.textContent('#annotation-list li[data-kind="maintenance"]')).toMatch(/Maintenance alfa~bravo until .*: optics swap \(declared late\)/);

    await page.click('#diag-run');
    expect(await page.isDisabled('#diag-run')).toBe(true);
    await waitInPage(page, "document.getElementById('diag-state')?.dataset.state === 'done'", 90_000);
    expect(await page.textContent('#diag-state')).toMatch(/^done: Centre (alfa|bravo) \d+ ms, Centre (alfa|bravo) \d+ ms$/);
    await waitInPage(page, "document.getElementById('diag-run')?.disabled === false", 15_000); // after the refresh

    // Both runs are listed and drawn (two run markers plus the band), on the 15-minute chart.
    await waitInPage(page, "document.getElementById('charts')?.dataset.annotations === '3'", 15_000);
    await waitInPage(page, "document.getElementById('charts')?.dataset.markers === '3'", 15_000);
    const items = await page.$$eval('#annotation-list li[data-kind="diagnostics"]', (lis) => lis.map((li) => li.textContent ?? ''));
    expect(items).toHaveLength(2);
    for (const text of items) {
      expect(text).toMatch(/Operator diagnostics Centre (alfa|bravo) → Centre (alfa|bravo): 1 hop, PMTU 65535, fast train p50 [\d.]+ ms p99 [\d.]+ ms loss/);
    }

    // A click shows the run: the hop table names the peer's address.
    await page.click('#annotation-list li[data-kind="diagnostics"]');
    await page.waitForSelector('#annotation-details:not([hidden]) table.hops td', { timeout: 10_000 });
    const details = (await page.textContent('#annotation-details')) ?? '';
    expect(details).toMatch(new RegExp(`(${topo.addresses.alfa!.replaceAll('.', '\\.')}|${topo.addresses.bravo!.replaceAll('.', '\\.')})`));
    expect(details).toMatch(/path MTU 65535 bytes · fast train 50 × 1 ms: p50 [\d.]+ ms, p99 [\d.]+ ms, loss/);
    expect(await page.isHidden('#error')).toBe(true);
    expect(problems).toEqual([]);

    mkdirSync(outputDir, { recursive: true });
    await page.screenshot({ path: join(outputDir, 'diagnostics.png'), fullPage: true });
  });

  it('the pages ran under the Content-Security-Policy the server sends, with no violation', () => {
    expect(cspViolations(browser)).toEqual([]);
  });
});
