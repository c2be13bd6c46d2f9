/** ClickHouse DateTime64 text form in UTC: `2026-11-29 06:46:55.123456`. */
export function formatDateTime64(unixMicros: number): string {
  const micros = Math.round(unixMicros);
  const millis = Math.floor(micros / 1000);
  const iso = new Date(millis).toISOString(); // 2026-11-29T06:46:55.123Z
  const sub = String(((micros % 1_000_000) + 1_000_000) % 1_000_000).padStart(6, '0');
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)}.${sub}`;
}

/** Parse the UTC text form ClickHouse returns for DateTime/DateTime64 into Unix microseconds. */
export function parseDateTime64(text: string): number {
  const [date, time = '00:00:00'] = text.split(' ');
  const [hms, frac = ''] = time.split('.');
  const seconds = Date.parse(`${date}T${hms}Z`) / 1000;
  if (Number.isNaN(seconds)) throw new Error(`not a ClickHouse DateTime: ${JSON.stringify(text)}`);
  return seconds * 1_000_000 + Number((frac + '000000').slice(0, 6));
}
