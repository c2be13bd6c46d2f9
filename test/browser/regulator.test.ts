/**
 * The regulator page (/regulator.html) in real headless Chromium against a
 * real server on the embedded store, over a hand-made 30-day month
 * (Asia/Shanghai, one train per minute per direction, 10 packets each):
 *
 *   alfa~bravo     meets everything (0.5 ms, NICs at 100G, a test at 96 Gb/s)
 *   alfa~charlie   latency: 60 + 5 minutes over the 5 ms target (one direction each) → breach
 *   bravo~charlie  a day without data, no NIC samples, no test → insufficient data
 *
 * With a regulator token: pick the month, read the verdicts from the table,
 * open a breaching link's timeline, download the CSV; then, once an operator
 * has finalised the month, the page defaults to it and the signed report
 * downloads and verifies. Tokens without access see the reason in the page.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BrowserContext, Download, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifySignedDocument } from '../../api/report-signing.js';
import { REPORT_COLUMNS } from '../../api/sla-csv.js';
import type { NicRow, ThroughputRow, TrainRow } from '../../sql/index.js';
import { closeChromium, launchChromium, waitInPage, cspViolations } from '../helpers/browser.js';
import { missingChromium, skipReason } from '../helpers/requirements.js';
import { insertAll, nic, recentThirtyDayMonth, throughput, train } from '../helpers/sla-month.js';
import { startTestServer, testTopology, type TestServer } from '../helpers/stack.js';

const outputDir = join('test-output', 'browser');
const skip = skipReason(missingChromium());
const M = recentThirtyDayMonth();

/** Microseconds at minute i of the month, plus `s` seconds. */
const at = (i: number, s = 30): number => (M.startS + i * 60 + s) * 1e6;
const inRange = (i: number, from: number, to: number): boolean => i >= from && i < to;

function buildMonth(): { trains: TrainRow[]; nics: NicRow[]; tests: ThroughputRow[] } {
  const trains: TrainRow[] = [];
  const nics: NicRow[] = [];
  for (let i = 0; i < M.minutes; i++) {
    trains.push(train('alfa', 'bravo', at(i), 500), train('bravo', 'alfa', at(i), 500));
    nics.push(nic('alfa', 'bravo', at(i, 10), 100_000));
    trains.push(train('alfa', 'charlie', at(i), inRange(i, 5000, 5060) ? 8000 : 600));
    trains.push(train('charlie', 'alfa', at(i), inRange(i, 20_000, 20_005) ? 7000 : 620));
    nics.push(nic('alfa', 'charlie', at(i, 10), 100_000));
    if (!inRange(i, 40_000, 41_440)) trains.push(train('bravo', 'charlie', at(i), 700), train('charlie', 'bravo', at(i), 700));
  }
  const tests = [throughput('alfa', 'bravo', at(2000), 97.5, 96), throughput('alfa', 'charlie', at(2100), 97, 97)];
  return { trains, nics, tests };
}

describe.skipIf(skip)('regulator page in Chromium', () => {
  // Local-script names: one of them hostile, to show it stays text.
  const hostile = '<img src=x onerror="window.__pwned=1">';
  const topo = testTopology(['alfa', 'bravo', 'charlie'], '127.0.17', { slaExtra: '  auto_finalise: false', nameLocal: { alfa: '上海', bravo: hostile } });
  let server: TestServer;
  let browser: BrowserContext;
  const problems: string[] = [];

  beforeAll(async () => {
    server = await startTestServer(topo.topology);
    const { trains, nics, tests } = buildMonth();
    await insertAll(server.store.client, trains, nics, tests, 'regulator-month');
    browser = await launchChromium({ viewport: { width: 1400, height: 1000 }, acceptDownloads: true });
  }, 240_000);

  afterAll(async () => {
    await closeChromium(browser);
    await server?.stop();
  });

  async function open(token: string | null, hash = ''): Promise<Page> {
    const page = await browser.newPage();
    page.on('pageerror', (error) => problems.push(error.message));
    await page.goto(`${server.url}/regulator.html${token ? `#token=${encodeURIComponent(token)}` : hash}`);
    return page;
  }

  const monthReady = (page: Page, month: string) =>
    waitInPage(page, `(() => { const t = document.getElementById('sla-table'); return t?.dataset.month === ${JSON.stringify(month)} && t?.dataset.state === 'ready'; })()`, 60_000);

  async function downloadText(page: Page, selector: string): Promise<{ download: Download; text: string }> {
    const [download] = await Promise.all([page.waitForEvent('download', { timeout: 30_000 }), page.click(selector)]);
    const path = await download.path();
    return { download, text: readFileSync(path, 'utf8') };
  }

  it('shows the month with a regulator token: verdicts, a breach timeline, the CSV', async () => {
    const page = await open(topo.regulatorToken);
    // The token left the address bar at once; nothing is finalised, so the default is the month in progress.
    await waitInPage(page, "document.body.dataset.state === 'ready'", 60_000);
    expect(await page.evaluate<string>('location.hash')).not.toContain('token');
    expect(await page.getAttribute('#month-state', 'data-state')).toBe('in_progress');
    expect(await page.$$eval('#month option', (os) => os.map((o) => o.getAttribute('value')))).toContain(M.month);
    expect(await page.getAttribute('a.nav', 'href')).toBe('./');

    // Pick the seeded month.
    await page.selectOption('#month', M.month);
    await monthReady(page, M.month);
    expect(await page.getAttribute('#month-state', 'data-state')).toBe('open');
    expect(decodeURIComponent(await page.evaluate<string>('location.hash'))).toBe(`#${M.month}`);
    const rows = await page.$$eval('#sla-table tbody tr[data-link]', (trs) =>
      trs.map((tr) => ({
        link: tr.getAttribute('data-link'),
        verdict: tr.getAttribute('data-verdict'),
        criteria: Object.fromEntries(
          [...tr.querySelectorAll('td[data-criterion]')].map((td) => [
            td.getAttribute('data-criterion'),
            { verdict: td.getAttribute('data-verdict'), breachMinutes: td.querySelector('.sub')?.getAttribute('data-breach-minutes') ?? null },
          ]),
        ),
      })),
    );
    const row = (id: string) => rows.find((r) => r.link === id)!;
    expect(rows.map((r) => [r.link, r.verdict])).toEqual([
      ['alfa~bravo', 'met'],
      ['alfa~charlie', 'breach'],
      ['bravo~charlie', 'insufficient_data'],
    ]);
    for (const c of ['latency', 'loss', 'availability', 'capacity_provisioned', 'capacity_tested', 'coverage']) {
      expect(row('alfa~bravo').criteria[c]?.verdict, c).toBe('met');
    }
    expect(row('alfa~charlie').criteria.latency).toEqual({ verdict: 'breach', breachMinutes: '65' });
    expect(row('alfa~charlie').criteria.loss?.verdict).toBe('met');
    for (const c of ['latency', 'loss', 'availability', 'capacity_provisioned', 'capacity_tested', 'coverage']) {
      expect(row('bravo~charlie').criteria[c]?.verdict, c).toBe('insufficient_data');
    }
    // insufficient data looks different from met (not the same colour).
    const background = (sel: string) =>
      page.evaluate<string>(`(() => { const s = getComputedStyle(document.querySelector(${JSON.stringify(sel)})); return s.backgroundImage + s.backgroundColor; })()`);
    expect(await background('#sla-table tr[data-link="bravo~charlie"] td[data-criterion="latency"]')).not.toBe(
      await background('#sla-table tr[data-link="alfa~bravo"] td[data-criterion="latency"]'),
    );
    const scopes = await page.$$eval('#sla-summary tbody tr', (trs) => trs.map((tr) => [tr.getAttribute('data-id'), tr.getAttribute('data-verdict')]));
    expect(scopes).toEqual([
      ['network', 'breach'],
      ['alfa', 'breach'],
      ['bravo', 'insufficient_data'],
      ['charlie', 'breach'],
    ]);
    // Each centre's local-script name beside its name (from the topology), the hostile one as text.
    await waitInPage(page, "document.querySelectorAll('#sla-summary .name-local').length === 2", 30_000);
    const names = await page.$$eval('#sla-summary tbody tr', (trs) =>
      trs.map((tr) => [tr.getAttribute('data-id'), tr.querySelector('th .name')?.textContent ?? null, tr.querySelector('th .name-local')?.textContent ?? null]),
    );
    expect(names).toEqual([
      ['network', 'test topology', null],
      ['alfa', 'Centre alfa', '上海'],
      ['bravo', 'Centre bravo', hostile],
      ['charlie', 'Centre charlie', null],
    ]);
    expect(await page.evaluate('document.querySelectorAll("img").length')).toBe(0);
    expect(await page.evaluate('"__pwned" in window')).toBe(false);
    expect(await page.isDisabled('#dl-signed')).toBe(true);

    // A breaching link: its runs are drawn on the timeline, the minute evidence below.
    await page.click('#sla-table tr[data-link="alfa~charlie"] th');
    await waitInPage(page, "(() => { const t = document.getElementById('timeline'); return t?.dataset.link === 'alfa~charlie' && t?.dataset.state === 'ready'; })()", 30_000);
    expect(Number(await page.getAttribute('#timeline', 'data-breaches'))).toBe(2);
    expect(decodeURIComponent(await page.evaluate<string>('location.hash'))).toBe(`#${M.month}/alfa~charlie`);
    expect(await page.$$eval('#runs tbody tr[data-lane="latency"]', (trs) => trs.map((tr) => tr.lastElementChild?.textContent))).toEqual(['60', '5']);
    await waitInPage(page, "document.getElementById('evidence')?.dataset.state === 'ready'", 60_000);
    expect(Number(await page.getAttribute('#evidence', 'data-points'))).toBe(M.minutes);
    expect(await page.$$eval('#link-detail canvas', (list) => list.length)).toBeGreaterThanOrEqual(2);

    // The link without enough data: no breach runs, a "no data" lane of a day.
    await page.click('#sla-table tr[data-link="bravo~charlie"] th');
    await waitInPage(page, "(() => { const t = document.getElementById('timeline'); return t?.dataset.link === 'bravo~charlie' && t?.dataset.state === 'ready' && document.getElementById('evidence')?.dataset.state === 'ready'; })()", 60_000);
    expect(await page.getAttribute('#timeline', 'data-breaches')).toBe('0');
    expect(await page.$$eval('#runs tbody tr[data-lane="nodata"]', (trs) => trs.map((tr) => tr.lastElementChild?.textContent))).toEqual(['1440']);

    // The CSV, fetched with the token and saved from a Blob.
    const csv = await downloadText(page, '#dl-csv');
    expect(csv.download.suggestedFilename()).toBe(`citymesh-sla-${M.month}.csv`);
    expect(csv.text.startsWith(`${REPORT_COLUMNS.join(',')}\r\n`)).toBe(true);
    expect(csv.text).toContain(`${M.month},Asia/Shanghai,provisional,link,alfa~charlie,`);
    expect(await page.getAttribute('#dl-csv', 'data-state')).toBe('done');
    const json = await downloadText(page, '#dl-json');
    expect(JSON.parse(json.text)).toMatchObject({ month: M.month, state: 'provisional' });

    expect(await page.isHidden('#error')).toBe(true);
    await page.close();
  }, 180_000);

  it('defaults to the finalised month, and its signed report downloads and verifies', async () => {
    const finalise = await fetch(`${server.url}/v1/sla/months/${M.month}/finalise`, {
      method: 'POST',
      headers: { authorization: `Bearer ${topo.operatorToken}` },
    });
    expect(finalise.status).toBe(201);

    const page = await open(topo.regulatorToken);
    await monthReady(page, M.month);
    expect(await page.inputValue('#month')).toBe(M.month);
    expect(await page.getAttribute('#month-state', 'data-state')).toBe('finalised');
    await waitInPage(page, "document.getElementById('amendments')?.dataset.pending === 'none'", 60_000);
    expect(await page.isDisabled('#dl-signed')).toBe(false);

    const signed = await downloadText(page, '#dl-signed');
    expect(signed.download.suggestedFilename()).toBe(`citymesh-sla-${M.month}.signed.json`);
    const key = await downloadText(page, '#dl-key');
    expect(key.text).toMatch(/^-----BEGIN PUBLIC KEY-----/);
    const verified = verifySignedDocument(signed.text, key.text);
    expect(verified.ok).toBe(true);
    expect(await page.textContent('#key-fingerprint')).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(await page.textContent('#verify-cmd')).toContain(`citymesh report verify citymesh-sla-${M.month}.signed.json`);

    // The signed figures in the table, and the breaching link's timeline for the screenshot.
    expect(await page.getAttribute('#sla-table tr[data-link="alfa~charlie"]', 'data-verdict')).toBe('breach');
    await page.click('#sla-table tr[data-link="alfa~charlie"] th');
    await waitInPage(page, "(() => { const t = document.getElementById('timeline'); return t?.dataset.link === 'alfa~charlie' && t?.dataset.state === 'ready' && Number(t?.dataset.breaches) > 0 && document.getElementById('evidence')?.dataset.state === 'ready'; })()", 60_000);
    expect(await page.isHidden('#error')).toBe(true);
    mkdirSync(outputDir, { recursive: true });
    await page.screenshot({ path: join(outputDir, 'regulator.png'), fullPage: true });

    // A breach run in the list zooms both charts to it.
    const runStart = M.startS + 5000 * 60;
    await page.click('#runs tbody tr[data-lane="latency"]');
    const range = async (id: string) => [Number(await page.getAttribute(id, 'data-from')), Number(await page.getAttribute(id, 'data-to'))];
    const [from, to] = await range('#timeline');
    expect(from).toBeLessThan(runStart);
    expect(to).toBeGreaterThan(runStart + 3600);
    expect(to! - from!).toBeLessThan(86_400);
    expect(await range('#evidence')).toEqual([from, to]);

    // A reload keeps the month and the link (the token stays in session storage).
    await page.reload();
    await waitInPage(page, `(() => { const t = document.getElementById('timeline'); return document.body.dataset.month === ${JSON.stringify(M.month)} && t?.dataset.link === 'alfa~charlie' && t?.dataset.state === 'ready'; })()`, 60_000);
    await page.close();
  }, 180_000);

  it('works with an operator token, and says why in the page when a token has no access', async () => {
    const operator = await open(topo.operatorToken, '');
    await waitInPage(operator, "document.body.dataset.state === 'ready'", 60_000);
    expect(await operator.$$eval('#sla-table tbody tr[data-link]', (trs) => trs.length)).toBe(3);
    expect(await operator.isHidden('#error')).toBe(true);
    await operator.close();

    const probe = await open(topo.tokens.alfa!);
    await probe.waitForSelector('#error:not([hidden])', { timeout: 30_000 });
    expect(await probe.textContent('#error')).toMatch(/may not read SLA reports.*403/);
    expect(await probe.getAttribute('#sla-table', 'data-state')).toBe('error');
    await probe.close();

    const anonymous = await open(null);
    await anonymous.waitForSelector('#error:not([hidden])', { timeout: 30_000 });
    expect(await anonymous.textContent('#error')).toMatch(/needs a regulator \(or operator\) token/);
    await anonymous.close();

    // The live dashboard links here.
    const main = await browser.newPage();
    await main.goto(`${server.url}/`);
    expect(await main.getAttribute('header a.nav', 'href')).toBe('regulator.html');
    await main.close();

    expect(problems).toEqual([]);
  }, 120_000);

  it('the pages ran under the Content-Security-Policy the server sends, with no violation', () => {
    expect(cspViolations(browser)).toEqual([]);
  });
});
