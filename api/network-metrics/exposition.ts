/**
 * Writes metric families in the Prometheus text format (0.0.4) and in
 * OpenMetrics 1.0. prom-client, which serves the server's own /metrics, has
 * no way to publish a histogram whose counts were made elsewhere (here: by
 * ClickHouse), nor gauge histograms; the two formats are small and fully
 * specified, and the tests feed this output to Prometheus's own parsers
 * (a real scrape, and `promtool check metrics`).
 *
 * Sample names are the same in both formats, so one PromQL query works on
 * either (an info is `X_info` in both), except that gauge histograms exist in
 * OpenMetrics only: the 0.0.4 format has no such type and its parsers refuse
 * an `le` label anywhere but on a histogram, so they are left out there.
 */
import { clipText } from '../../protocol/index.js';

export type FamilyType = 'counter' | 'gauge' | 'histogram' | 'gaugehistogram' | 'info';

export type Labels = Record<string, string>;

export interface Sample {
  /** Appended to the family name: '' for gauges, '_total', '_bucket', '_sum', '_count', '_gcount', '_gsum', '_info'. */
  suffix: string;
  labels: Labels;
  value: number;
}

export interface Family {
  /** Without `_total` (counters) or `_info` (infos): the OpenMetrics family name. */
  name: string;
  type: FamilyType;
  help: string;
  /** OpenMetrics UNIT; the name must end with `_<unit>`. */
  unit?: string;
  samples: Sample[];
}

export type ExpositionFormat = 'prometheus' | 'openmetrics';

export const CONTENT_TYPES: Record<ExpositionFormat, string> = {
  prometheus: 'text/plain; version=0.0.4; charset=utf-8',
  openmetrics: 'application/openmetrics-text; version=1.0.0; charset=utf-8',
};

/** Longest part of a refused value an error message repeats. */
const ECHO_CHARS = 40;

/** A refused value as an error message quotes it: clipped, lone surrogates replaced, its length said when clipped. */
function quoted(value: string): string {
  const clipped = clipText(value, ECHO_CHARS);
  return `${JSON.stringify(clipped)}${clipped.length < value.length ? `… (${value.length} characters)` : ''}`;
}

/**
 * The format a client asked for: `?format=` wins (given once), then the
 * Accept header's preference (Prometheus asks for OpenMetrics first, with
 * q-values), else the 0.0.4 text format every scraper reads. A refused
 * `format` is quoted back clipped: a megabyte of it is not echoed.
 */
export function negotiateFormat(accept: string | undefined, explicit: string | readonly string[] | undefined): ExpositionFormat | { error: string } {
  const given = explicit === undefined ? [] : typeof explicit === 'string' ? [explicit] : explicit;
  if (given.length > 1) return { error: `format: given ${given.length} times; give it once, "prometheus" (text 0.0.4) or "openmetrics"` };
  if (given.length === 1) {
    const value = given[0]!;
    if (value === 'openmetrics' || value === 'prometheus') return value;
    return { error: `format: ${quoted(value)} is not a format; use "prometheus" (text 0.0.4) or "openmetrics"` };
  }
  let best: { format: ExpositionFormat; q: number } = { format: 'prometheus', q: 0 };
  for (const part of (accept ?? '').split(',')) {
    const [type, ...params] = part.trim().split(';').map((s) => s.trim());
    const qParam = params.find((p) => p.startsWith('q='));
    const q = qParam ? Number(qParam.slice(2)) : 1;
    if (!Number.isFinite(q)) continue;
    const format: ExpositionFormat | null = type === 'application/openmetrics-text' ? 'openmetrics' : type === 'text/plain' ? 'prometheus' : null;
    if (format && q > best.q) best = { format, q };
  }
  return best.format;
}

function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

function sampleLine(name: string, s: Sample): string {
  const labels = Object.entries(s.labels);
  const text = labels.length === 0 ? '' : `{${labels.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',')}}`;
  return `${name}${s.suffix}${text} ${formatValue(s.value)}\n`;
}

function renderPrometheus(families: Family[]): string {
  let out = '';
  const block = (name: string, type: string, help: string, samples: Sample[], suffixed: (s: Sample) => string) => {
    out += `# HELP ${name} ${escapeHelp(help)}\n# TYPE ${name} ${type}\n`;
    for (const s of samples) out += sampleLine(suffixed(s), { ...s, suffix: '' });
  };
  for (const f of families) {
    switch (f.type) {
      case 'counter':
        block(`${f.name}_total`, 'counter', f.help, f.samples, () => `${f.name}_total`);
        break;
      case 'info':
        block(`${f.name}_info`, 'gauge', f.help, f.samples, () => `${f.name}_info`);
        break;
      case 'gaugehistogram':
        // 0.0.4 has no gauge histogram (its parsers read `le` only on histograms): OpenMetrics only.
        break;
      default:
        block(f.name, f.type, f.help, f.samples, (s) => `${f.name}${s.suffix}`);
    }
  }
  return out;
}

function renderOpenMetrics(families: Family[]): string {
  let out = '';
  for (const f of families) {
    out += `# TYPE ${f.name} ${f.type}\n`;
    if (f.unit) out += `# UNIT ${f.name} ${f.unit}\n`;
    out += `# HELP ${f.name} ${escapeHelp(f.help)}\n`;
    for (const s of f.samples) out += sampleLine(f.name, s);
  }
  return `${out}# EOF\n`;
}

export function render(families: Family[], format: ExpositionFormat): string {
  return format === 'openmetrics' ? renderOpenMetrics(families) : renderPrometheus(families);
}

/** Samples of a histogram (or gauge histogram) from cumulative bucket counts: `le` buckets, +Inf, sum and count. */
export function histogramSamples(
  labels: Labels, boundsText: readonly string[], cumulative: readonly number[], count: number, sum: number, gauge = false,
): Sample[] {
  const samples: Sample[] = boundsText.map((le, i) => ({ suffix: '_bucket', labels: { ...labels, le }, value: cumulative[i] ?? 0 }));
  samples.push({ suffix: '_bucket', labels: { ...labels, le: '+Inf' }, value: count });
  samples.push({ suffix: gauge ? '_gcount' : '_count', labels, value: count });
  samples.push({ suffix: gauge ? '_gsum' : '_sum', labels, value: sum });
  return samples;
}
