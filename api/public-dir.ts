// Where the built dashboard lives, for the API server to serve it statically.
// Node-only; no dependency on the browser code.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The nearest directory at or above `start` that holds a package.json (and
 * satisfies `accept`, if given); null when there is none.
 */
export function findPackageRoot(start: string, accept: (dir: string) => boolean = () => true): string | null {
  let dir = start;
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && accept(dir)) return dir;
    const up = dirname(dir);
    if (up === dir) return null;
    dir = up;
  }
}

/**
 * The citymesh package root: found from this module's own location (works from
 * the sources and from dist/), else from the working directory.
 */
export function packageRoot(accept?: (dir: string) => boolean): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const root = findPackageRoot(here, accept) ?? findPackageRoot(process.cwd(), accept);
  if (root === null) throw new Error(`citymesh package root not found above ${here} or ${process.cwd()}`);
  return root;
}

/** Absolute path of dist/dashboard/public (index.html, app.js, regulator.html, regulator.js, the CSS files). */
export function dashboardPublicDir(root: string = packageRoot()): string {
  return join(root, 'dist', 'dashboard', 'public');
}
