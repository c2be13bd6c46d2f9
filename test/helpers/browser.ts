/**
 * Headless Chromium for browser tests: Debian's /usr/bin/chromium with the
 * flags this machine needs and a fresh profile directory, removed by
 * closeChromium once the browser has exited.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { CHROMIUM, CHROMIUM_ARGS } from './requirements.js';

const profiles = new WeakMap<BrowserContext, string>();
const violations = new WeakMap<BrowserContext, string[]>();

/** Content-Security-Policy violations any page of this browser reported on its console (the dashboard must cause none). */
export function cspViolations(context: BrowserContext): string[] {
  return [...(violations.get(context) ?? [])];
}

export async function launchChromium(options: { viewport: { width: number; height: number }; acceptDownloads?: boolean }): Promise<BrowserContext> {
  const profile = mkdtempSync(join(tmpdir(), 'citymesh-chromium-'));
  try {
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM, headless: true, args: [...CHROMIUM_ARGS], ...options,
    });
    profiles.set(context, profile);
    const seen: string[] = [];
    violations.set(context, seen);
    context.on('page', (page) => page.on('console', (message) => {
      if (/Content Security Policy/i.test(message.text())) seen.push(message.text());
    }));
    return context;
  } catch (error) {
    rmSync(profile, { recursive: true, force: true });
    throw error;
  }
}

/** Close the browser, then remove its profile (retrying while its last writes settle). */
export async function closeChromium(context: BrowserContext | undefined): Promise<void> {
  if (!context) return;
  await context.close();
  const profile = profiles.get(context);
  if (profile) rmSync(profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
}

/**
 * Wait until `expression` is truthy in the page. Polls with page.evaluate
 * (DevTools evaluation) instead of page.waitForFunction, whose in-page
 * `new Function` the dashboard's Content-Security-Policy (no 'unsafe-eval')
 * refuses: the tests run the pages under the policy they ship with.
 */
export async function waitInPage(page: Page, expression: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      if (await page.evaluate(expression)) return;
    } catch (error) {
      last = error; // a navigation in progress destroys the context: try again
    }
    if (Date.now() > deadline) throw new Error(`the page never satisfied ${expression} within ${timeoutMs} ms${last ? ` (last error: ${String(last)})` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
