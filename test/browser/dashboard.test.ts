/**
 * The dashboard in real headless Chromium against a running stack (server on
 * the embedded store, two real probes on loopback): the matrix fills in, the
 * chart holds data, and a new point arrives over the live feed without reload.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ProbeAgent } from '../../probes/agent.js';
import { closeChromium, launchChromium, waitInPage, cspViolations } from '../helpers/browser.js';
import { missingChromium, skipReason } from '../helpers/requirements.js';
import { startAgents, startTestServer, testTopology, type TestServer } from '../helpers/stack.js';

const outputDir = join('test-output', 'browser');
const skip = skipReason(missingChromium());

describe.skipIf(skip)('dashboard in Chromium', () => {
  const topo = testTopology(['north', 'south', 'west'], '127.0.5');
  let server: TestServer;
  let browser: BrowserContext;
  const agents: ProbeAgent[] = [];

  beforeAll(async () => {
    server = await startTestServer(topo.topology);
    agents.push(...(await startAgents(server, topo, ['north', 'south', 'west'])));
    browser = await launchChromium({ viewport: { width: 1280, height: 900 } });
  });

  afterAll(async () => {
    await closeChromium(browser);
    await Promise.all(agents.map((a) => a.stop()));
    await server?.stop();
  });

  it('shows the matrix, a chart with data, and a point arriving live', async () => {
    const page = await browser.newPage();
    const problems: string[] = [];
    page.on('pageerror', (error) => problems.push(error.message));
    await page.goto(`${server.url}/#token=${topo.operatorToken}`);

    // Matrix: a row and a column per centre, every measured direction filled in.
    await page.waitForSelector('#matrix td.has-data', { timeout: 30_000 });
    await waitInPage(page, "document.querySelectorAll('#matrix td.has-data').length >= 6", 30_000);
    const cells = await page.$$eval('#matrix td[data-src][data-dst]', (tds) =>
      tds.map((td) => ({ src: td.getAttribute('data-src'), dst: td.getAttribute('data-dst'), state: td.getAttribute('data-state'), text: td.textContent ?? '' })),
    );
    expect(cells).toHaveLength(6);
    for (const cell of cells) {
      expect(['ok', 'warn', 'breach']).toContain(cell.state);
      expect(cell.text).toMatch(/\d/);
    }

    // Live feed connected, chart has points, and a new one arrives without reload.
    await waitInPage(page, "document.body.dataset.live === 'connected'", 30_000);
    await waitInPage(page, "Number(document.getElementById('charts')?.dataset.points ?? 0) > 0", 30_000);
    const link = await page.getAttribute('#charts', 'data-link');
    expect(link).toMatch(/^(north|south|west)>(north|south|west)$/);
    const before = Number(await page.getAttribute('#charts', 'data-points'));
    await waitInPage(page, `Number(document.getElementById('charts')?.dataset.points ?? 0) > ${before}`, 30_000);
    const canvases = await page.$$eval('#charts canvas', (list) => list.length);
    expect(canvases).toBeGreaterThanOrEqual(3);

    // Clicking another cell switches the charts to that direction.
    const other = cells.find((c) => `${c.src}>${c.dst}` !== link)!;
    await page.click(`#matrix td[data-src="${other.src}"][data-dst="${other.dst}"]`);
    await waitInPage(page, `document.getElementById('charts')?.dataset.link === ${JSON.stringify(`${other.src}>${other.dst}`)}`, 15_000);

    await waitInPage(page, "document.getElementById('charts')?.dataset.state === 'ready' && Number(document.getElementById('charts')?.dataset.points ?? 0) > 0", 30_000);

    mkdirSync(outputDir, { recursive: true });
    await page.screenshot({ path: join(outputDir, 'dashboard.png'), fullPage: true });
    expect(problems).toEqual([]);
  });

  it('the pages ran under the Content-Security-Policy the server sends, with no violation', () => {
    expect(cspViolations(browser)).toEqual([]);
  });
});
