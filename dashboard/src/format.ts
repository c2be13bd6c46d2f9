// Number and time formatting shared by the matrix, the charts and the header.

/** Milliseconds with precision that suits the magnitude: 0.123, 1.23, 12.3, 123. */
export function fmtMs(v: number | null | undefined, unit = true): string {
  if (v == null || !Number.isFinite(v)) return '—';
  const a = Math.abs(v);
  const s = a < 1 ? v.toFixed(3) : a < 10 ? v.toFixed(2) : a < 100 ? v.toFixed(1) : v.toFixed(0);
  return unit ? `${s} ms` : s;
}

/** The matrix cell value: two decimals below 10 ms (e.g. "0.12"). */
export function fmtCellMs(v: number): string {
  const a = Math.abs(v);
  return a < 10 ? v.toFixed(2) : a < 100 ? v.toFixed(1) : v.toFixed(0);
}

/** A percentage (input already in %). */
export function fmtPct(pct: number | null | undefined): string {
  if (pct == null || !Number.isFinite(pct)) return '—';
  if (pct === 0) return '0%';
  const a = Math.abs(pct);
  return `${a >= 10 ? pct.toFixed(0) : a >= 1 ? pct.toFixed(1) : a >= 0.01 ? pct.toFixed(2) : '<0.01'}%`;
}

const timeFmt = new Intl.DateTimeFormat(undefined, {
  hour: '2-digit',
  minute: '2-digit',
  second: '2-digit',
  hour12: false,
});

export function fmtTime(d: Date | number | string | null | undefined): string {
  if (d == null) return '—';
  const date = d instanceof Date ? d : new Date(d);
  return Number.isNaN(date.getTime()) ? '—' : timeFmt.format(date);
}

/** Gb/s: whole numbers as they are (provisioned speeds: "100", "25"), measurements to about three figures. */
export function fmtGbps(v: number | null | undefined, unit = true): string {
  if (v == null || !Number.isFinite(v)) return '—';
  const a = Math.abs(v);
  const s = Number.isInteger(v)
    ? String(v)
    : a >= 100
      ? v.toFixed(0)
      : a >= 10
        ? v.toFixed(1)
        : a >= 1
          ? v.toFixed(2)
          : String(Number(v.toPrecision(2)));
  return unit ? `${s} Gb/s` : s;
}

const dateTimeFmt = new Intl.DateTimeFormat(undefined, {
  month: 'short',
  day: 'numeric',
  hour: '2-digit',
  minute: '2-digit',
  second: '2-digit',
  hour12: false,
});

/** The time of day for today's instants, with the date for older ones. */
export function fmtWhen(d: Date | number | string | null | undefined): string {
  if (d == null) return '—';
  const date = d instanceof Date ? d : new Date(d);
  if (Number.isNaN(date.getTime())) return '—';
  return date.toDateString() === new Date().toDateString() ? timeFmt.format(date) : dateTimeFmt.format(date);
}
