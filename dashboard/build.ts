// Builds the dashboard: bundles two pages with esbuild into dist/dashboard/public
// (dashboard/src/main.ts → app.js, the live dashboard at /; dashboard/src/regulator/main.ts
// → regulator.js, the monthly SLA reports at /regulator.html) and copies the static
// files beside them.
// Run as `node dist/dashboard/build.js` (after tsc), or import buildDashboard().
import { build } from 'esbuild';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, rm, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { dashboardPublicDir, packageRoot } from '../api/public-dir.js';

const ENTRY = join('dashboard', 'src', 'main.ts');
/** Bundles: the output name (without .js) and the entry point. */
const ENTRIES: { out: string; entry: string }[] = [
  { out: 'app', entry: ENTRY },
  { out: 'regulator', entry: join('dashboard', 'src', 'regulator', 'main.ts') },
];

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
    entryPoints: ENTRIES.map((e) => ({ in: join(root, e.entry), out: e.out })),
    tsconfig: join(root, 'dashboard', 'tsconfig.json'),
    outdir: outDir,
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
    [join(srcDir, 'regulator.html'), 'regulator.html'],
    [join(srcDir, 'regulator.css'), 'regulator.css'],
    [uplotCss, 'uPlot.min.css'],
  ];
  await Promise.all(copies.map(([from, to]) => copyFile(from, join(outDir, to))));

  return { outDir, files: [...ENTRIES.flatMap((e) => [`${e.out}.js`, `${e.out}.js.map`]), ...copies.map(([, to]) => to)] };
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
