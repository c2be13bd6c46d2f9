/**
 * What a benchmark reports: one figure per measured quantity, printed as one
 * JSON line (`{name, value, unit, ceiling, ratio, target, met}`) the moment it
 * is measured, and gathered into a table at the end of the run.
 *
 * `ratio` always reads "fraction of the ceiling reached": value / ceiling for
 * rates (higher is better), ceiling / value for times and costs (lower is
 * better). A ratio of 1 means as fast as the ceiling measured in the same run.
 */

export type Better = 'higher' | 'lower';

export interface Figure {
  name: string;
  /** null when it could not be measured here; `note` says why. */
  value: number | null;
  unit: string;
  ceiling: number | null;
  ratio: number | null;
  /** The target in words and the unit of `value`, e.g. "< 50" or ">= 10000"; null when the issue sets none. */
  target: string | null;
  /** null when there is no target or no value. */
  met: boolean | null;
  note?: string;
}

export interface FigureInput {
  name: string;
  value: number | null;
  unit: string;
  better: Better;
  ceiling?: number | null;
  /** A numeric target on `value`. */
  target?: { op: '<' | '<=' | '>' | '>='; value: number } | null;
  note?: string;
}

/** Rounds to a few significant digits so the JSON stays readable. */
export function round(x: number | null): number | null {
  if (x === null || !Number.isFinite(x)) return null;
  if (x === 0) return 0;
  const digits = Math.max(0, 3 - Math.floor(Math.log10(Math.abs(x))));
  return Number(x.toFixed(Math.min(digits, 6)));
}

export function makeFigure(f: FigureInput): Figure {
  const ceiling = f.ceiling ?? null;
  let ratio: number | null = null;
  if (f.value !== null && ceiling !== null && f.value > 0 && ceiling > 0) {
    ratio = f.better === 'higher' ? f.value / ceiling : ceiling / f.value;
  }
  let met: boolean | null = null;
  if (f.target && f.value !== null) {
    const t = f.target.value;
    met = f.target.op === '<' ? f.value < t : f.target.op === '<=' ? f.value <= t : f.target.op === '>' ? f.value > t : f.value >= t;
  }
  return {
    name: f.name,
    value: round(f.value),
    unit: f.unit,
    ceiling: round(ceiling),
    ratio: ratio === null ? null : Number(ratio.toFixed(3)),
    target: f.target ? `${f.target.op} ${f.target.value}` : null,
    met,
    ...(f.note ? { note: f.note } : {}),
  };
}

/** Prints the figure as one JSON line on stdout and returns it. */
export function emit(f: FigureInput): Figure {
  const figure = makeFigure(f);
  process.stdout.write(`${JSON.stringify(figure)}\n`);
  return figure;
}

/** A line of context for people (how it was measured, what was tried); never parsed. */
export function note(bench: string, text: string): void {
  process.stdout.write(`# ${bench}: ${text}\n`);
}

export function isFigureLine(line: string): boolean {
  return line.startsWith('{"name":');
}

function cell(v: number | null): string {
  return v === null ? '-' : String(v);
}

/** The closing table: one row per figure, misses marked. */
export function table(figures: Figure[]): string {
  const rows = figures.map((f) => [
    f.name,
    cell(f.value),
    f.unit,
    cell(f.ceiling),
    cell(f.ratio),
    f.target ?? '-',
    f.met === null ? '-' : f.met ? 'met' : 'MISSED',
  ]);
  const head = ['figure', 'value', 'unit', 'ceiling', 'ratio', 'target', ''];
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => (i === 1 || i === 3 || i === 4 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}
