/**
 * SLA minutes materialised from the rollup (migration 0016, sql/sla-minutes.ts)
 * give the month the same figures as merging latency_1m at read time, on a
 * real embedded store (no server, so no scheduled run moves under the test):
 *
 * - six hours of three links with spread-out RTTs (t-digest at work), loss,
 *   a one-way minute, a maintenance window and a self-load window: the month
 *   and a link's minutes are equal, value for value, before the materialiser
 *   ran, after it merged some hours, and after all;
 * - a late train into a materialised hour shows at once (its link-hour is
 *   read from latency_1m again) and is the same once merged again;
 * - data stored before migrations 0015/0016: the seeded train counts make the
 *   month equal to the one from the raw trains, and the status lists its paths.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { linkInput } from '../../api/sla-report.js';
import {
  insertLoadWindows, insertMaintenance, insertTrains, latestPathStatus, materialiseSlaHours, materialiseSlaMinutes, migrate,
  schemaMigrations, slaCompliance, slaHoursToMaterialise, slaLinkMinutes, type SlaQuery, type Store, type TrainRow,
} from '../../sql/index.js';
import { Rng } from '../helpers/fuzz.js';
import { recentThirtyDayMonth, slaTopology, train } from '../helpers/sla-month.js';
import { tempStores } from '../helpers/temp-store.js';

const M = recentThirtyDayMonth();
const t = slaTopology();
const HOURS = 6;
const LINKS = [['alfa', 'bravo'], ['alfa', 'charlie'], ['bravo', 'charlie']] as const;
const store = tempStores();

/** Six trains per minute and direction, 20 packets each, spread RTTs; some minutes slow, lossy or one-way. */
function hoursOfTrains(fromMinute: number, minutes: number, seed: number): TrainRow[] {
  const rng = new Rng(seed);
  const rows: TrainRow[] = [];
  for (let i = fromMinute; i < fromMinute + minutes; i++) {
    for (const [a, b] of LINKS) {
      for (const [src, dst] of [[a, b], [b, a]] as const) {
        if (a === 'bravo' && src === 'charlie' && i % 97 === 5) continue; // one-way minutes: covered is false
        for (let k = 0; k < 6; k++) {
          const row = train(src, dst, (M.startS + i * 60 + k * 10 + 1) * 1e6, 0, 20, i % 53 === 7 && k === 0 ? 3 : 0);
          const slow = i % 41 === 11;
          row.rtts_us = Array.from({ length: row.received }, () => (slow && rng.next() < 0.1 ? 2500 + 1000 * rng.next() : 300 + 400 * rng.next()));
          rows.push(row);
        }
      }
    }
  }
  return rows;
}

const query = (source: SlaQuery['source'], links: readonly (readonly [string, string])[] = LINKS): SlaQuery => ({
  startS: M.startS, endS: M.startS + 86_400, engine: 'stamp', source, loadGuardMs: 3000,
  links: links.map(([a, b]) => linkInput(t.topology.linkBetween(a, b)!)),
});

async function month(client: Store['client']): Promise<unknown> {
  const [scopes, minutes] = await Promise.all([
    slaCompliance(client, query('rollup')),
    slaLinkMinutes(client, query('rollup', [LINKS[2]])),
  ]);
  return { scopes, minutes };
}

describe('materialised SLA minutes against latency_1m at read time', () => {
  let s: Store;
  let before: unknown;
  beforeAll(async () => {
    s = await store('sla-minutes');
    await migrate(s.client);
    await insertTrains(s.client, hoursOfTrains(0, HOURS * 60, 7), 'six-hours');
    await insertMaintenance(s.client, {
      id: 'w1', scope: 'link', a: 'alfa', b: 'bravo', startS: M.startS + 60 * 60, endS: M.startS + 75 * 60, reason: 'splice',
      declaredAtMs: (M.startS - 3600) * 1000, declaredBy: 'noc',
    });
    await insertLoadWindows(s.client, [{
      windowId: 'tp-1', a: 'alfa', b: 'charlie', startMs: (M.startS + 130 * 60 + 5) * 1000, endMs: (M.startS + 132 * 60) * 1000,
      source: 'measured', trigger: 'schedule', recordedBy: 'probe:alfa',
    }], 'load-tp-1');
    before = await month(s.client);
  }, 120_000);
  afterAll(async () => {
    await s?.close();
  });

  it('lists every link-hour with trains as not yet materialised, then none once merged; the figures never change', async () => {
    const pending = await slaHoursToMaterialise(s.client, { nowMs: Date.now(), limit: 100_000 });
    expect(pending.length).toBe(LINKS.length * HOURS);
    const scopes = before as { scopes: { kind: string; id: string; latency_breach_minutes: number; loss_breach_minutes: number; excluded_minutes: number; self_load_minutes: number; covered_minutes: number }[] };
    const link = (id: string) => scopes.scopes.find((r) => r.kind === 'link' && r.id === id)!;
    // The stories are in the data: breaches, excluded and one-way minutes.
    expect(link('alfa~bravo').excluded_minutes).toBe(15);
    expect(link('alfa~charlie').self_load_minutes).toBe(3);
    expect(link('bravo~charlie').covered_minutes).toBe(HOURS * 60 - 4);
    expect(link('alfa~bravo').latency_breach_minutes + link('alfa~bravo').loss_breach_minutes).toBeGreaterThan(0);

    // Half of the hours first: a month mixing both sources.
    await materialiseSlaHours(s.client, pending.filter((h) => h.hourS % 7200 === 0));
    expect(await month(s.client)).toEqual(before);
    expect(await materialiseSlaMinutes(s.client, { nowMs: Date.now(), limit: 100_000 })).toBe(pending.length / 2);
    expect(await slaHoursToMaterialise(s.client, { nowMs: Date.now(), limit: 100_000 })).toEqual([]);
    expect(await month(s.client)).toEqual(before);
    const [row] = await s.client.query({ query: 'SELECT count() AS n FROM sla_minutes FINAL', format: 'JSONEachRow' }).then((r) => r.json<{ n: number }>());
    expect(Number(row!.n)).toBe(LINKS.length * HOURS * 60);
  });

  it('a late train shows at once (its hour is read from latency_1m again) and stays the same once merged again', async () => {
    const late = train('charlie', 'bravo', (M.startS + 200 * 60 + 33) * 1e6, 9000, 20);
    await insertTrains(s.client, [late], 'late');
    const now = (await month(s.client)) as { minutes: { t: number[]; baPUs: (number | null)[]; baTrains: number[]; latencyBreach: number[] } };
    const i = now.minutes.t.indexOf(M.startS + 200 * 60);
    expect(now.minutes.baTrains[i]).toBe(7);
    expect(now.minutes.latencyBreach[i]).toBe(1);
    expect(now).not.toEqual(before);
    expect(await slaHoursToMaterialise(s.client, { nowMs: Date.now(), limit: 100_000 })).toEqual([{ engine: 'stamp', a: 'bravo', b: 'charlie', hourS: M.startS + 3 * 3600 }]);
    expect(await materialiseSlaMinutes(s.client, { nowMs: Date.now(), limit: 100_000 })).toBe(1);
    expect(await month(s.client)).toEqual(now);
  });
});

describe('data stored before migrations 0015 and 0016', () => {
  it('gives the same month as the raw trains, and the status lists its paths', async () => {
    const s = await store('sla-premigration');
    try {
      await migrate(s.client, schemaMigrations.filter((m) => m.version <= 14));
      // Every packet of a minute at one RTT: t-digest is exact there, so the rollup must equal the raw trains.
      const rows = LINKS.flatMap(([a, b]) => Array.from({ length: 180 }, (_, i) => [
        train(a, b, (M.startS + i * 60 + 5) * 1e6, 400 + (i % 9) * 300, 10, i % 61 === 3 ? 2 : 0),
        train(b, a, (M.startS + i * 60 + 7) * 1e6, 450),
      ]).flat());
      const nowUs = Date.now() * 1000;
      rows.push(train('alfa', 'bravo', nowUs - 120e6, 500), train('bravo', 'alfa', nowUs - 110e6, 500));
      await insertTrains(s.client, rows, 'before-0015');
      expect((await migrate(s.client)).applied).toEqual(schemaMigrations.filter((m) => m.version > 14).map((m) => m.version));
      const raw = await slaCompliance(s.client, query('raw'));
      expect(raw.find((r) => r.kind === 'network')!.covered_minutes).toBe(LINKS.length * 180);
      expect(await slaCompliance(s.client, query('rollup'))).toEqual(raw);
      await materialiseSlaMinutes(s.client, { nowMs: Date.now(), limit: 100_000 });
      expect(await slaCompliance(s.client, query('rollup'))).toEqual(raw);
      const status = await latestPathStatus(s.client, 60);
      expect(status.filter((p) => p.src === 'alfa' || p.dst === 'alfa').map((p) => [p.src, p.dst, p.trains])).toEqual(
        expect.arrayContaining([['alfa', 'bravo', 0], ['bravo', 'alfa', 0]]),
      );
    } finally {
      await s.close();
    }
  });
});
