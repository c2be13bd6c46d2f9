/**
 * Headless Chromium for browser tests: Debian's /usr/bin/chromium with the
 * flags this machine needs and a fresh profile directory, removed by
 * closeChromium once the browser has exited.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import { CHROMIUM, CHROMIUM_ARGS } from './requirements.js';

const profiles = new WeakMap<BrowserContext, string>();

export async function launchChromium(options: { viewport: { width: number; height: number }; acceptDownloads?: boolean }): Promise<BrowserContext> {
  const profile = mkdtempSync(join(tmpdir(), 'citymesh-chromium-'));
  try {
    const context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM, headless: true, args: [...CHROMIUM_ARGS], ...options,
    });
    profiles.set(context, profile);
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
