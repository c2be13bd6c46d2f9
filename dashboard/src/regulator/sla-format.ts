// Formatting of SLA figures for the regulator page: shares, ratios, minutes,
// verdicts, and instants in the policy's time zone (a month is a calendar
// month there, so its times are shown there too).
import type { SlaCriterion, SlaCriterionResult, SlaVerdict } from '../../../api/contract.js';
import { fmtGbps } from '../format.js';

export const CRITERIA: readonly SlaCriterion[] = ['latency', 'loss', 'availability', 'capacity_provisioned', 'capacity_tested'];

export const CRITERION_TEXT: Record<SlaCriterion, string> = {
  latency: 'Latency',
  loss: 'Loss',
  availability: 'Availability',
  capacity_provisioned: 'Capacity provisioned',
  capacity_tested: 'Capacity tested',
};

export const VERDICT_TEXT: Record<SlaVerdict, string> = {
  met: 'met',
  breach: 'breach',
  insufficient_data: 'insufficient data',
};

const nf = new Intl.NumberFormat('en');

/** A whole count with thousands separators; "—" for null. */
export function fmtCount(v: number | null | undefined): string {
  return v == null || !Number.isFinite(v) ? '—' : nf.format(v);
}

/**
 * A share (0..1) as a percentage, rounded down so that a value just under a
 * target never shows as meeting it (0.99899 → "99.898%", not "99.9%").
 */
export function fmtShare(v: number | null | undefined): string {
  if (v == null || !Number.isFinite(v)) return '—';
  if (v >= 1) return '100%';
  if (v <= 0) return '0%';
  const pct = Math.floor(v * 1e5) / 1e3;
  return `${trimZeros(pct.toFixed(3))}%`;
}

/** A loss ratio as a percentage with three significant figures ("0.116%"). */
export function fmtRatio(v: number | null | undefined): string {
  if (v == null || !Number.isFinite(v)) return '—';
  if (v === 0) return '0%';
  const pct = v * 100;
  return `${pct >= 1 ? trimZeros(pct.toFixed(2)) : String(Number(pct.toPrecision(3)))}%`;
}

function trimZeros(s: string): string {
  return s.includes('.') ? s.replace(/\.?0+$/, '') : s;
}

/** A criterion's value in its unit. */
export function fmtValue(c: Pick<SlaCriterionResult, 'unit'>, v: number | null): string {
  switch (c.unit) {
    case 'share_of_minutes':
      return fmtShare(v);
    case 'ratio':
      return fmtRatio(v);
    case 'Gbps':
      return fmtGbps(v);
  }
}

/** "≥ 99.9%", "≤ 0.1%", "≥ 95 Gb/s"; empty when there is no target (centres, the network). */
export function fmtTarget(c: SlaCriterionResult): string {
  if (c.target === null) return '';
  const op = c.comparison === '>=' ? '≥' : '≤';
  const v = c.unit === 'share_of_minutes' ? `${trimZeros((c.target * 100).toFixed(4))}%` : fmtValue(c, c.target);
  return `${op} ${v}`;
}

/** Minutes as "65 min", "1,000 min (16 h 40 min)". */
export function fmtMinutes(v: number | null | undefined): string {
  if (v == null || !Number.isFinite(v)) return '—';
  if (v < 120) return `${fmtCount(v)} min`;
  const d = Math.floor(v / 1440);
  const h = Math.floor((v % 1440) / 60);
  const m = v % 60;
  const long = [d ? `${d} d` : '', h ? `${h} h` : '', m ? `${m} min` : ''].filter(Boolean).join(' ');
  return `${fmtCount(v)} min (${long})`;
}

/** Instants formatted in one time zone (the policy's). */
export class Zoned {
  private readonly full: Intl.DateTimeFormat;
  private readonly day: Intl.DateTimeFormat;
  private readonly hm: Intl.DateTimeFormat;

  constructor(readonly timeZone: string) {
    const make = (o: Intl.DateTimeFormatOptions): Intl.DateTimeFormat => {
      try {
        return new Intl.DateTimeFormat('en-GB', { ...o, timeZone });
      } catch {
        return new Intl.DateTimeFormat('en-GB', { ...o, timeZone: 'UTC' }); // an unknown zone: say UTC rather than fail
      }
    };
    this.full = make({ year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', hour12: false });
    this.day = make({ month: 'short', day: 'numeric' });
    this.hm = make({ hour: '2-digit', minute: '2-digit', hour12: false });
  }

  /** "2026-11-03 14:05" (ISO-like, in the zone). */
  dateTime(d: Date | number | string | null | undefined): string {
    const date = toDate(d);
    if (!date) return '—';
    const p = Object.fromEntries(this.full.formatToParts(date).map((x) => [x.type, x.value]));
    return `${p.year}-${p.month}-${p.day} ${p.hour === '24' ? '00' : p.hour}:${p.minute}`;
  }

  /** "3 Nov". */
  date(d: Date | number | string | null | undefined): string {
    const date = toDate(d);
    return date ? this.day.format(date) : '—';
  }

  /** "14:05". */
  time(d: Date | number | string | null | undefined): string {
    const date = toDate(d);
    return date ? this.hm.format(date).replace(/^24:/, '00:') : '—';
  }
}

function toDate(d: Date | number | string | null | undefined): Date | null {
  if (d == null) return null;
  const date = d instanceof Date ? d : new Date(d);
  return Number.isNaN(date.getTime()) ? null : date;
}
