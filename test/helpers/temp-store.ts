import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { openStore, type Store } from '../../sql/index.js';

/**
 * Embedded stores, each in a fresh temporary directory, all removed after the
 * calling file's tests (retried: the engine may hold a file a moment after close).
 * Call once at a test file's top level; open one store per test with the returned function.
 */
export function tempStores(): (name: string) => Promise<Store> {
  const dirs: string[] = [];
  afterAll(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
  });
  return (name) => {
    const dir = mkdtempSync(join(tmpdir(), `citymesh-${name}-`));
    dirs.push(dir);
    return openStore({ dataDir: dir });
  };
}
