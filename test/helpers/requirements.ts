import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { datapathStatus } from '../../probes/engines/stamp/native.js';

/** Why a test cannot run here, or null when it can. Used with `it.skipIf`/`describe.skipIf`. */
export function missingCommand(command: string, debianPackage: string): string | null {
  const found = spawnSync('sh', ['-c', `command -v ${command}`], { encoding: 'utf8' }).status === 0;
  return found ? null : `${command} not found: install the Debian package ${debianPackage} (.ci/run does)`;
}

export const CHROMIUM = '/usr/bin/chromium';

export function missingChromium(): string | null {
  return existsSync(CHROMIUM) ? null : `${CHROMIUM} not found: install the Debian package chromium (.ci/run does)`;
}

/** Print the reason once, so a skipped test says why in the CI log. */
export function skipReason(reason: string | null): boolean {
  if (reason) process.stderr.write(`skipping: ${reason}\n`);
  return reason !== null;
}

/**
 * Flags for headless Chromium on this machine: no sandbox (root), no GPU, and no
 * background networking (the machine's closed network refuses those connections).
 */
export const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync',
] as const;

/**
 * Why the native STAMP datapath cannot run here, or null: asked with any
 * CITYMESH_STAMP_DATAPATH override set aside (a test of the native path must
 * not skip because the environment chose the Node one).
 */
export function nativeDatapathMissing(): string | null {
  const saved = process.env.CITYMESH_STAMP_DATAPATH;
  delete process.env.CITYMESH_STAMP_DATAPATH;
  try {
    return datapathStatus().reason;
  } finally {
    if (saved !== undefined) process.env.CITYMESH_STAMP_DATAPATH = saved;
  }
}
