/**
 * The dashboard's capacity view in real headless Chromium against a running
 * stack (server on the embedded store, three real probes on loopback with
 * throughput tests and NIC sampling on): switch to Capacity, select a link,
 * run a test from the page, and see its result in the history chart and the
 * matrix cell; the view survives a reload and switching back to Latency works.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ProbeAgent } from '../../probes/agent.js';
import { closeChromium, launchChromium, waitInPage, cspViolations } from '../helpers/browser.js';
import { missingChromium, skipReason } from '../helpers/requirements.js';
import { capacityOverrides, startAgents, startTestServer, testTopology, type TestServer } from '../helpers/stack.js';

const outputDir = join('test-output', 'browser');
const skip = skipReason(missingChromium());
const throughputPort = 40_000 + Math.floor(Math.random() * 10_000);

describe.skipIf(skip)('dashboard capacity view in Chromium', () => {
  const topo = testTopology(['alfa', 'bravo', 'charlie'], '127.0.16', capacityOverrides(throughputPort));
  let server: TestServer;
  let browser: BrowserContext;
  const agents: ProbeAgent[] = [];

  beforeAll(async () => {
    server = await startTestServer(topo.topology);
    agents.push(...(await startAgents(server, topo, ['alfa', 'bravo', 'charlie'])));
    browser = await launchChromium({ viewport: { width: 1280, height: 1000 } });
  });

  afterAll(async () => {
    await closeChromium(browser);
    await Promise.all(agents.map((a) => a.stop()));
    await server?.stop();
  });

  it('switches to Capacity, runs a test from the page and shows its result', async () => {
    const page = await browser.newPage();
    const problems: string[] = [];
    page.on('pageerror', (error) => problems.push(error.message));
    await page.goto(`${server.url}/#token=${topo.operatorToken}`);
    await page.waitForSelector('#matrix td[data-src][data-dst]', { timeout: 30_000 });

    // The switch: the matrix, the key and the panel change, and the URL keeps the view.
    await page.click('.views button[data-view="capacity"]');
    await waitInPage(page, "document.getElementById('matrix')?.dataset.view === 'capacity'", 5_000);
    expect(await page.isVisible('#capacity')).toBe(true);
    expect(await page.isVisible('#charts')).toBe(false);
    expect(await page.getAttribute('.views button[data-view="capacity"]', 'aria-pressed')).toBe('true');
    expect(decodeURIComponent(await page.evaluate<string>('location.hash'))).toMatch(/^#capacity(:|$)/);

    // Every linked pair carries a verdict once /v1/capacity answered (no test yet: not "met").
    await waitInPage(page, "document.querySelectorAll('#matrix td[data-verdict]').length === 6", 15_000);
    const cells = await page.$$eval('#matrix td[data-src][data-dst]', (tds) =>
      tds.map((td) => ({ verdict: td.getAttribute('data-verdict'), state: td.getAttribute('data-state') })),
    );
    for (const cell of cells) {
      expect(['unknown', 'nodata']).toContain(cell.verdict);
      expect(cell.state).toBeNull();
    }

    // Select alfa → bravo: its panel loads (lo is mapped at both ends).
    await page.click('#matrix td[data-src="alfa"][data-dst="bravo"]');
    await waitInPage(page, "document.getElementById('capacity')?.dataset.link === 'alfa~bravo'", 5_000);
    expect(decodeURIComponent(await page.evaluate<string>('location.hash'))).toBe('#capacity:alfa>bravo');
    await waitInPage(page, "document.getElementById('capacity')?.dataset.state === 'ready'", 15_000);
    expect(await page.getAttribute('#capacity', 'data-tests')).toBe('0');
    await waitInPage(page, "document.querySelectorAll('#capacity-nics tbody tr[data-oper]').length >= 2", 15_000);

    // Run a test from the page: it is followed to the end and lands in the history chart.
    await page.click('#capacity-run');
    expect(await page.isDisabled('#capacity-run')).toBe(true);
    await waitInPage(page, "Number(document.getElementById('capacity')?.dataset.tests ?? 0) > 0", 60_000);
    await waitInPage(page, "document.getElementById('capacity')?.dataset.testState === 'done'", 30_000);
    expect(await page.textContent('#capacity-test')).toMatch(/test done: .*\d.*Gb\/s/);
    expect(await page.isDisabled('#capacity-run')).toBe(false);

    // The matrix cell shows the tested throughput; loopback has no speed, so the verdict stays unknown.
    const cell = '#matrix td[data-src="alfa"][data-dst="bravo"]';
    await waitInPage(page, `(() => { const td = document.querySelector(${JSON.stringify(cell)}); return !!td && /\\d/.test(td.querySelector('.v')?.textContent ?? ''); })()`, 20_000);
    expect(await page.getAttribute(cell, 'data-verdict')).toBe('unknown');
    expect(await page.getAttribute(cell, 'title')).toMatch(/tested .*: met/);
    expect(await page.getAttribute('#matrix td[data-src="bravo"][data-dst="alfa"]', 'data-verdict')).toBe('unknown');
    expect(await page.getAttribute('#capacity', 'data-verdict')).toBe('unknown');
    expect(await page.getAttribute('#capacity', 'data-provisioned-gbps')).toBe('');

    // A reload keeps the view and the link (the token stays in session storage).
    await page.reload();
    await waitInPage(page, "document.getElementById('capacity')?.dataset.link === 'alfa~bravo' && document.getElementById('capacity')?.dataset.state === 'ready' && Number(document.getElementById('capacity')?.dataset.tests ?? 0) > 0", 20_000);
    expect(await page.isVisible('#capacity')).toBe(true);
    expect(await page.$$eval('#capacity canvas', (list) => list.length)).toBeGreaterThanOrEqual(2);
    expect(await page.isHidden('#error')).toBe(true);

    mkdirSync(outputDir, { recursive: true });
    await page.screenshot({ path: join(outputDir, 'capacity.png'), fullPage: true });

    // Back to latency: the charts return and the cells carry data-state again.
    await page.click('.views button[data-view="latency"]');
    await waitInPage(page, "document.getElementById('matrix')?.dataset.view === 'latency'", 5_000);
    expect(await page.isVisible('#charts')).toBe(true);
    expect(await page.isVisible('#capacity')).toBe(false);
    expect(decodeURIComponent(await page.evaluate<string>('location.hash'))).toBe('#alfa>bravo');
    expect(await page.$$eval('#matrix td[data-verdict]', (list) => list.length)).toBe(0);
    await waitInPage(page, "document.getElementById('charts')?.dataset.link === 'alfa>bravo'", 5_000);

    expect(problems).toEqual([]);
  });

  it('the pages ran under the Content-Security-Policy the server sends, with no violation', () => {
    expect(cspViolations(browser)).toEqual([]);
  });
});
