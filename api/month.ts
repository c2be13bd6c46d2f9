/** Which calendar months citymesh reports on; its own module so the report CLI loads no store. */
export const MONTH_PATTERN = /^(20\d\d)-(0[1-9]|1[0-2])$/;

/**
 * Why `month` is not a month citymesh can report on, or null. Says which rule
 * it breaks: the form (YYYY-MM), a month number that does not exist, or a year
 * outside what the store holds (2000-01 to 2099-12; raw data is kept 400 days).
 */
export function monthProblem(month: string): string | null {
  const form = /^(\d{4})-(\d{2})$/.exec(month);
  if (!form) return `"${month}" must be YYYY-MM, e.g. 2026-11`;
  const mm = Number(form[2]);
  if (mm < 1 || mm > 12) return `"${month}": there is no month ${form[2]} (01 to 12)`;
  if (!MONTH_PATTERN.test(month)) return `"${month}" is out of range: months from 2000-01 to 2099-12 can be reported`;
  return null;
}
