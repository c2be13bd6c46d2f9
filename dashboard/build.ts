// Builds the dashboard: bundles dashboard/src/main.ts with esbuild into
// dist/dashboard/public/app.js and copies the static files beside it.
// Run as `node dist/dashboard/build.js` (after tsc), or import buildDashboard().
import { build } from 'esbuild';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, rm, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { dashboardPublicDir, packageRoot } from './public-dir.js';

const ENTRY = join('dashboard', 'src', 'main.ts');

export interface BuiltDashboard {
  outDir: string;
  files: string[];
}

export async function buildDashboard(
  // The root that has the dashboard sources (from dist/ this is two levels up).
  root: string = packageRoot((dir) => existsSync(join(dir, ENTRY))),
): Promise<BuiltDashboard> {
  const srcDir = join(root, 'dashboard', 'src');
  const outDir = dashboardPublicDir(root);
  await rm(outDir, { recursive: true, force: true });
  await mkdir(outDir, { recursive: true });

  await build({
    absWorkingDir: root,
    entryPoints: [join(root, ENTRY)],
    tsconfig: join(root, 'dashboard', 'tsconfig.json'),
    outfile: join(outDir, 'app.js'),
    bundle: true,
    minify: true,
    sourcemap: true,
    target: 'es2020',
    format: 'esm',
    platform: 'browser',
    logLevel: 'warning',
  });

  const uplotCss = createRequire(join(root, 'package.json')).resolve('uplot/dist/uPlot.min.css');
  const copies: [from: string, to: string][] = [
    [join(srcDir, 'index.html'), 'index.html'],
    [join(srcDir, 'style.css'), 'style.css'],
    [uplotCss, 'uPlot.min.css'],
  ];
  await Promise.all(copies.map(([from, to]) => copyFile(from, join(outDir, to))));

  return { outDir, files: ['app.js', 'app.js.map', ...copies.map(([, to]) => to)] };
}

const isMain = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (isMain) {
  try {
    const { outDir, files } = await buildDashboard();
    const sizes = await Promise.all(files.map(async (f) => `${f} ${((await stat(join(outDir, f))).size / 1024).toFixed(1)} KiB`));
    console.log(`dashboard built in ${relative(process.cwd(), outDir) || outDir}: ${sizes.join(', ')}`);
  } catch (err) {
    console.error(`dashboard build failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  }
}
