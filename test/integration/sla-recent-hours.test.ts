/**
 * A month to now reads its not yet materialised link-hours (the current
 * hour above all) from latency_1m_recent, the last hours alone (migration
 * 0019), when that table holds every train sla_hours counts for each of
 * them; otherwise all from latency_1m. On trains of the last 50 minutes in
 * a real embedded store, the period ending at the start of the current
 * minute (whose trains are past it, and counted by sla_hours):
 *
 * - every stale link-hour is read from latency_1m_recent, and the month,
 *   each link's breach runs and its minutes are the same as when they are
 *   read from latency_1m (that table emptied);
 * - with one link-hour where latency_1m_recent holds more trains than
 *   sla_hours counts (a seed that overlapped an insert), every stale
 *   link-hour is read from latency_1m, with the same figures;
 * - trains older than the previous hour or ahead of the next one (a
 *   backfill, a clock far off) stay out of it: one INSERT spanning 200 hours
 *   is stored whole (no partition per hour it spans) and leaves
 *   latency_1m_recent as it was.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { linkInput } from '../../api/sla-report.js';
import {
  insertTrains, migrate, slaCompliance, slaLinkMinutes, slaLinkTimeline, slaReadPlan, type SlaQuery, type Store, type TrainRow,
} from '../../sql/index.js';
import { Rng } from '../helpers/fuzz.js';
import { slaTopology, train } from '../helpers/sla-month.js';
import { tempStores } from '../helpers/temp-store.js';

const t = slaTopology();
const LINKS = [['alfa', 'bravo'], ['alfa', 'charlie'], ['bravo', 'charlie']] as const;
const store = tempStores();

/** Minutes of trains before now: within the previous and the current hour whenever the test runs (it takes seconds). */
const MINUTES = 50;

/** Three trains a minute per direction, 20 packets; alfa~bravo slow now and then, alfa~charlie lossy in three minutes. */
function trains(endS: number, seed: number): TrainRow[] {
  const rng = new Rng(seed);
  const rows: TrainRow[] = [];
  for (let i = 0; i < MINUTES; i++) {
    const minuteS = endS - (MINUTES - i) * 60;
    for (const [a, b] of LINKS) {
      for (const [src, dst] of [[a, b], [b, a]] as const) {
        for (let k = 0; k < 3; k++) {
          const lossy = a === 'alfa' && b === 'charlie' && i >= 20 && i < 23 && k === 0;
          const row = train(src, dst, (minuteS + k * 15 + 2) * 1e6, 0, 20, lossy ? 3 : 0);
          const slow = a === 'alfa' && b === 'bravo' && i % 7 === 3;
          row.rtts_us = Array.from({ length: row.received }, () => (slow && rng.next() < 0.4 ? 2500 + 2000 * rng.next() : 300 + 400 * rng.next()));
          rows.push(row);
        }
      }
    }
  }
  return rows;
}

describe('the month to now from latency_1m_recent', () => {
  let s: Store;
  let q: SlaQuery;
  beforeAll(async () => {
    s = await store('sla-recent-hours');
    await migrate(s.client);
    // Trains up to the current minute; the period ends at its start, as a month to now asks: the hour's trains
    // measured since (this minute's) are past the period, and still counted by sla_hours.
    const endS = Math.floor(Date.now() / 60_000) * 60;
    await insertTrains(s.client, trains(endS + 60, 7), 'recent');
    const firstS = endS + 60 - MINUTES * 60;
    q = { startS: firstS - (firstS % 3600) - 3600, endS, engine: 'stamp', source: 'rollup', loadGuardMs: 3000, links: LINKS.map(([a, b]) => linkInput(t.topology.linkBetween(a, b)!)) };
  }, 120_000);
  afterAll(async () => {
    await s?.close();
  });

  /** The month's scopes, every link's breach runs and one link's minutes. */
  async function everything(): Promise<unknown> {
    const scopes = await slaCompliance(s.client, q);
    const runs = [];
    for (const link of q.links) runs.push(await slaLinkTimeline(s.client, { ...q, links: [link] }));
    const minutes = await slaLinkMinutes(s.client, { ...q, links: [q.links[0]!] });
    return { scopes, runs, minutes };
  }

  it('reads every stale link-hour there, with the figures latency_1m gives', async () => {
    const plan = await slaReadPlan(s.client, q);
    // One or two hours of trains (the 50 minutes may span an hour boundary), none materialised.
    expect(plan.stale).toBeGreaterThanOrEqual(LINKS.length);
    expect(plan).toEqual({ summary: 0, minutes: 0, stale: plan.stale, recent: plan.stale });
    const fromRecent = await everything();
    // The stories are in the figures, so the comparisons below compare something.
    const scopes = (fromRecent as { scopes: Awaited<ReturnType<typeof slaCompliance>> }).scopes;
    const link = (id: string) => scopes.find((r) => r.kind === 'link' && r.id === id)!;
    expect(link('alfa~bravo').latency_breach_minutes).toBeGreaterThan(0);
    expect(link('alfa~charlie').loss_breach_minutes).toBe(3);
    expect(link('bravo~charlie').covered_minutes).toBe(MINUTES - 1);

    // One link-hour where latency_1m_recent holds a train more than sla_hours counts: all of them from latency_1m.
    await s.client.command({
      query: `INSERT INTO latency_1m_recent SELECT * FROM latency_1m_recent WHERE src = 'alfa' AND dst = 'bravo' ORDER BY minute DESC LIMIT 1`,
    });
    expect(await slaReadPlan(s.client, q)).toEqual({ ...plan, recent: 0 });
    expect(await everything()).toEqual(fromRecent);

    // None there (dropped, or written before the migration): every link-hour from latency_1m.
    await s.client.command({ query: 'TRUNCATE TABLE latency_1m_recent' });
    expect(await slaReadPlan(s.client, q)).toEqual({ ...plan, recent: 0 });
    expect(await everything()).toEqual(fromRecent);
  }, 180_000);

  it('keeps a backfill and a clock far off out, storing them whole', async () => {
    const count = () => s.client.query({ query: 'SELECT count() AS n FROM latency_1m_recent', format: 'JSONEachRow' })
      .then((r) => r.json<{ n: string }>()).then((rows) => Number(rows[0]!.n));
    const before = await count();
    const nowS = Math.floor(Date.now() / 1000);
    // 200 hours of one train each, ending three hours ago, and one train a day ahead: one INSERT.
    const rows = Array.from({ length: 200 }, (_, h) => train('delta', 'alfa', (nowS - (3 + h) * 3600) * 1e6, 500));
    rows.push(train('delta', 'alfa', (nowS + 86_400) * 1e6, 500));
    await insertTrains(s.client, rows, 'backfill');
    const stored = await s.client.query({ query: `SELECT count() AS n FROM latency_1m WHERE src = 'delta'`, format: 'JSONEachRow' })
      .then((r) => r.json<{ n: string }>());
    expect(Number(stored[0]!.n)).toBe(201);
    expect(await count()).toBe(before);
  }, 120_000);
});
