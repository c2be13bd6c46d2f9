/**
 * A V8 CPU profile of this process's main thread while `work` runs, summed
 * into self time by where the code lives (our folders, each dependency, GC,
 * native builtins), so a missed target comes with where the time went.
 */
import { Session } from 'node:inspector/promises';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

export interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  /** Share of busy (non-idle) main-thread time, by area, largest first. */
  areas: { area: string; share: number }[];
  /** Heaviest functions by self time. */
  functions: { fn: string; share: number }[];
  /** Fraction of the wall time the main thread was busy. */
  busy: number;
}

function areaOf(frame: ProfileNode['callFrame']): string {
  const { url, functionName } = frame;
  if (!url) {
    if (functionName === '(idle)') return '(idle)';
    if (functionName === '(garbage collector)') return 'gc';
    if (functionName === '(program)') return 'v8/native (program)';
    return `builtin ${functionName || '(anonymous)'}`;
  }
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return nm[1]!;
  if (url.startsWith('node:')) return `node ${url.slice(5).split('/')[0]}`;
  const ours = /\/dist(?:-tools)?\/([^/]+\/[^/]+)/.exec(url);
  return ours ? ours[1]!.replace(/\.js$/, '') : url;
}

export async function profile<T>(work: () => Promise<T>): Promise<{ result: T; summary: ProfileSummary }> {
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 500 });
  await session.post('Profiler.start');
  const result = await work();
  const { profile: p } = (await session.post('Profiler.stop')) as unknown as { profile: Profile };
  session.disconnect();
  return { result, summary: summarise(p) };
}

/** Self time by area and by function, from a V8 CPU profile (also a `node --cpu-prof` file). */
/** `skipUs`: samples in the profile's first microseconds are left out (start-up and JIT warm-up, to see the steady state). */
export function summarise(p: Profile, skipUs = 0): ProfileSummary {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const areas = new Map<string, number>();
  const fns = new Map<string, number>();
  let total = 0;
  let idle = 0;
  let at = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const node = byId.get(p.samples[i]!);
    const dt = p.timeDeltas[i] ?? 0;
    at += dt;
    if (!node || at < skipUs) continue;
    total += dt;
    const area = areaOf(node.callFrame);
    if (area === '(idle)') {
      idle += dt;
      continue;
    }
    areas.set(area, (areas.get(area) ?? 0) + dt);
    const file = node.callFrame.url.split('/').slice(-2).join('/');
    const fn = `${node.callFrame.functionName || '(anonymous)'}${file ? ` ${file}:${node.callFrame.lineNumber + 1}` : ''}`;
    fns.set(fn, (fns.get(fn) ?? 0) + dt);
  }
  const busy = total - idle;
  const top = (m: Map<string, number>, n: number) =>
    [...m.entries()].sort((a, b) => b[1] - a[1]).slice(0, n).map(([k, v]) => ({ k, share: busy > 0 ? v / busy : 0 }));
  return {
    areas: top(areas, 10).map(({ k, share }) => ({ area: k, share })),
    functions: top(fns, 10).map(({ k, share }) => ({ fn: k, share })),
    busy: total > 0 ? busy / total : 0,
  };
}

export function formatSummary(s: ProfileSummary): string[] {
  const pct = (x: number) => `${(x * 100).toFixed(1)} %`;
  return [
    `main thread busy ${pct(s.busy)} of the time; self time by area: ${s.areas.map((a) => `${a.area} ${pct(a.share)}`).join(', ')}`,
    `heaviest functions: ${s.functions.map((f) => `${f.fn} ${pct(f.share)}`).join('; ')}`,
  ];
}
