/**
 * The month from link-hour summaries (migration 0018) equals the month from
 * every materialised minute, on trains stored in a real embedded store and
 * merged by the materialiser (no server, so no scheduled run moves under the
 * test):
 *
 * - eight hours of four links with spread-out RTTs: slow minutes (one run
 *   across an hour boundary), lossy minutes, one-way minutes, a link with
 *   missing minutes and a missing hour, a maintenance and a self-load
 *   window; several policies (each changes which hours are taken whole) and
 *   a period that starts and ends inside hours: scopes and breach timelines
 *   equal, value for value;
 * - a policy number that is not finite is refused, naming link and field;
 * - a late train into a rolled-up hour that breached nothing: the month
 *   shows it at once and stays the same once the hour is merged again;
 * - with every materialised minute gone from sla_minutes, the month is
 *   unchanged: its hours' summaries list every minute that can breach (a
 *   run across an hour boundary, loss breaches); under a policy most
 *   minutes breach they cannot, and the same month then differs (it reads
 *   the minutes).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { linkInput } from '../../api/sla-report.js';
import {
  insertLoadWindows, insertMaintenance, insertTrains, materialiseSlaMinutes, migrate, slaCompliance, slaHoursToMaterialise, slaReadPlan,
  slaLinkTimeline, type SlaLinkInput, type SlaQuery, type Store, type TrainRow,
} from '../../sql/index.js';
import { Rng } from '../helpers/fuzz.js';
import { recentThirtyDayMonth, slaTopology, train } from '../helpers/sla-month.js';
import { tempStores } from '../helpers/temp-store.js';

const M = recentThirtyDayMonth();
const t = slaTopology();
const HOURS = 8;
const LINKS = [['alfa', 'bravo'], ['alfa', 'charlie'], ['bravo', 'charlie'], ['bravo', 'delta']] as const;
const store = tempStores();

/**
 * Two trains per minute and direction, 20 packets each, RTTs spread over
 * 300-700 µs (under the 2 ms p99 target). The stories, by minute of the
 * period: alfa~bravo slow in 130-134 and across the 3 → 4 boundary
 * (236-243); alfa~charlie loses packets in 310-312; bravo~charlie one-way in
 * 70-72; bravo~delta has no trains in 100-129 nor in hour 6.
 */
function trains(links: readonly (readonly [string, string])[], hours: number, seed: number): TrainRow[] {
  const rng = new Rng(seed);
  const rows: TrainRow[] = [];
  for (let i = 0; i < hours * 60; i++) {
    for (const [a, b] of links) {
      if (a === 'bravo' && b === 'delta' && ((i >= 100 && i < 130) || Math.floor(i / 60) === 6)) continue;
      const slow = a === 'alfa' && b === 'bravo' && ((i >= 130 && i < 135) || (i >= 236 && i < 244));
      const lossy = a === 'alfa' && b === 'charlie' && i >= 310 && i < 313;
      for (const [src, dst] of [[a, b], [b, a]] as const) {
        if (a === 'bravo' && b === 'charlie' && src === 'charlie' && i >= 70 && i < 73) continue;
        for (let k = 0; k < 2; k++) {
          const row = train(src, dst, (M.startS + i * 60 + k * 20 + 3) * 1e6, 0, 20, lossy && k === 0 ? 2 : 0);
          row.rtts_us = Array.from({ length: row.received }, () => (slow && rng.next() < 0.5 ? 2500 + 1000 * rng.next() : 300 + 400 * rng.next()));
          rows.push(row);
        }
      }
    }
  }
  return rows;
}

const policies: Record<string, (l: SlaLinkInput) => SlaLinkInput> = {
  topology: (l) => l,
  'p50 under 0.5 ms (most hours breach)': (l) => ({ ...l, percentile: 0.5, rttTargetUs: 500 }),
  'no loss at all': (l) => ({ ...l, lossRatioMax: 0 }),
  'p90 under 5 ms, loss under 0.5': (l) => ({ ...l, percentile: 0.9, rttTargetUs: 5000, lossRatioMax: 0.5 }),
  // Links judged at different levels in one month: each hour is decided by its own link's level.
  'a level per link': (l) => (l.b === 'bravo' ? { ...l, percentile: 0.5, rttTargetUs: 500 } : l.b === 'charlie' ? { ...l, percentile: 0.9, rttTargetUs: 600 } : l),
};

function query(policy: (l: SlaLinkInput) => SlaLinkInput, startS = M.startS, endS = M.startS + HOURS * 3600, linkHours = true): SlaQuery {
  return {
    startS, endS, engine: 'stamp', source: 'rollup', loadGuardMs: 3000, linkHours,
    links: LINKS.map(([a, b]) => policy(linkInput(t.topology.linkBetween(a, b)!))),
  };
}

/**
 * The month and (with `timelines`) every link's breach runs, by link-hour summaries or by every minute; each
 * also computed in one query, the plan inside it (stagedPlanMaxBytes 0), which must give the same.
 */
async function month(client: Store['client'], q: SlaQuery, timelines = true): Promise<unknown> {
  const scopes = await slaCompliance(client, q);
  expect(await slaCompliance(client, { ...q, stagedPlanMaxBytes: 0 }), 'plan inline').toEqual(scopes);
  const runs = [];
  for (const link of timelines ? q.links : []) {
    const run = await slaLinkTimeline(client, { ...q, links: [link] });
    expect(await slaLinkTimeline(client, { ...q, links: [link], stagedPlanMaxBytes: 0 }), `${link.a}~${link.b} plan inline`).toEqual(run);
    runs.push(run);
  }
  return { scopes, runs };
}

describe('month from link-hour summaries against every materialised minute', () => {
  let s: Store;
  beforeAll(async () => {
    s = await store('sla-link-hours');
    await migrate(s.client);
    await insertTrains(s.client, trains(LINKS, HOURS, 11), 'eight-hours');
    await insertMaintenance(s.client, {
      id: 'w1', scope: 'link', a: 'alfa', b: 'charlie', startS: M.startS + 150 * 60, endS: M.startS + 160 * 60, reason: 'splice',
      declaredAtMs: (M.startS - 3600) * 1000, declaredBy: 'noc',
    });
    await insertLoadWindows(s.client, [{
      windowId: 'tp-1', a: 'bravo', b: 'charlie', startMs: (M.startS + 400 * 60 + 5) * 1000, endMs: (M.startS + 402 * 60) * 1000,
      source: 'measured', trigger: 'schedule', recordedBy: 'probe:bravo',
    }], 'load-tp-1');
    expect(await materialiseSlaMinutes(s.client, { nowMs: Date.now(), limit: 100_000 })).toBe(LINKS.length * HOURS - 1);
  }, 180_000);
  afterAll(async () => {
    await s?.close();
  });

  it('gives the same scopes and timelines under every policy, over whole hours and a period cut inside hours', async () => {
    for (const [name, policy] of Object.entries(policies)) {
      for (const [startS, endS] of [[M.startS, M.startS + HOURS * 3600], [M.startS + 37 * 60, M.startS + 7 * 3600 + 13 * 60]] as const) {
        // Breach runs (one query per link) for the whole period; the cut period compares the scopes.
        const timelines = startS === M.startS;
        const bySummaries = await month(s.client, query(policy, startS, endS), timelines);
        expect(bySummaries, `${name}, ${startS - M.startS} s to ${endS - M.startS} s`).toEqual(await month(s.client, query(policy, startS, endS, false), timelines));
      }
    }
    // The stories are in the figures, so equality above compares something.
    const [scopes] = [await slaCompliance(s.client, query(policies.topology!))];
    // A plan larger than stagedPlanMaxBytes (here any) is not handed over: the month is one query, the same month.
    expect(await slaCompliance(s.client, { ...query(policies.topology!), stagedPlanMaxBytes: 1 })).toEqual(scopes);
    const link = (id: string) => scopes.find((r) => r.kind === 'link' && r.id === id)!;
    expect(link('alfa~bravo').latency_breach_minutes).toBeGreaterThan(0);
    expect(link('alfa~bravo').latency_longest).toBeGreaterThan(1);
    expect(link('alfa~charlie').loss_breach_minutes).toBe(3);
    expect(link('alfa~charlie').excluded_minutes).toBe(10);
    expect(link('bravo~charlie').availability_breach_minutes + (HOURS * 60 - link('bravo~charlie').covered_minutes)).toBeGreaterThan(0);
    expect(link('bravo~charlie').self_load_minutes).toBe(3);
    expect(link('bravo~delta').covered_minutes).toBe(HOURS * 60 - 30 - 60);
  }, 600_000);

  it('refuses a policy number that is not finite, naming the link and the field, and a plan size that is not a byte count', async () => {
    const q = query(policies.topology!);
    const [first, ...rest] = q.links;
    await expect(slaCompliance(s.client, { ...q, links: [{ ...first!, rttTargetUs: Number.NaN }, ...rest] }))
      .rejects.toThrow('SLA policy of link alfa~bravo: rttTargetUs is NaN, not a finite number');
    await expect(slaLinkTimeline(s.client, { ...q, links: [{ ...first!, lossRatioMax: Number.POSITIVE_INFINITY }] }))
      .rejects.toThrow('SLA policy of link alfa~bravo: lossRatioMax is Infinity, not a finite number');
    for (const bytes of [-1, 0.5, Number.NaN]) {
      await expect(slaCompliance(s.client, { ...q, stagedPlanMaxBytes: bytes })).rejects.toThrow(`stagedPlanMaxBytes is ${bytes}, not a whole number of bytes`);
    }
  });

  it('shows a late train into a rolled-up hour at once, and the same once that hour is merged again', async () => {
    const q = query(policies.topology!);
    const before = (await slaCompliance(s.client, q)).find((r) => r.kind === 'link' && r.id === 'alfa~bravo')!;
    // Hour 7 of alfa~bravo breached nothing; a 9 ms train makes minute 430 a latency breach.
    await insertTrains(s.client, [train('bravo', 'alfa', (M.startS + 430 * 60 + 41) * 1e6, 9000, 20)], 'late');
    const now = await month(s.client, q);
    const lateHourPlan = await slaReadPlan(s.client, q);
    expect(lateHourPlan.stale).toBe(1); // alfa~bravo's hour 7 until the materialiser merges it again
    expect(now).toEqual(await month(s.client, query(policies.topology!, q.startS, q.endS, false)));
    const late = (now as { scopes: Awaited<ReturnType<typeof slaCompliance>> }).scopes.find((r) => r.kind === 'link' && r.id === 'alfa~bravo')!;
    expect(late.latency_breach_minutes).toBe(before.latency_breach_minutes + 1);
    expect(await slaHoursToMaterialise(s.client, { nowMs: Date.now(), limit: 100_000 })).toEqual([{ engine: 'stamp', a: 'alfa', b: 'bravo', hourS: M.startS + 7 * 3600 }]);
    expect(await materialiseSlaMinutes(s.client, { nowMs: Date.now(), limit: 100_000 })).toBe(1);
    expect(await month(s.client, q)).toEqual(now);
    expect(await month(s.client, query(policies.topology!, q.startS, q.endS, false))).toEqual(now);
    expect(await slaReadPlan(s.client, q)).toEqual({ ...lateHourPlan, stale: 0, summary: lateHourPlan.summary + 1 });
  }, 300_000);
});

describe('a month read from the summaries alone', () => {
  it('is unchanged with every materialised minute gone from sla_minutes, while its hours list every minute that can breach', async () => {
    const s = await store('sla-link-hours-alone');
    try {
      await migrate(s.client);
      // Six hours of alfa~bravo (a slow run across the 3 -> 4 boundary) and alfa~charlie (lossy minutes in hour 5).
      await insertTrains(s.client, trains(LINKS.slice(0, 2), 6, 5), 'six-hours');
      await materialiseSlaMinutes(s.client, { nowMs: Date.now(), limit: 100_000 });
      const q: SlaQuery = { ...query(policies.topology!, M.startS, M.startS + 6 * 3600), links: query(policies.topology!).links.slice(0, 2) };
      const strict: SlaQuery = { ...q, links: q.links.map(policies['p50 under 0.5 ms (most hours breach)']!) };
      const before = await month(s.client, q);
      const strictBefore = await month(s.client, strict);
      expect(await month(s.client, { ...q, linkHours: false })).toEqual(before);
      expect(await month(s.client, { ...strict, linkHours: false })).toEqual(strictBefore);
      // How each month is read: every hour whole, settled and summarised, so by its summary alone unless the policy
      // breaches more minutes than an hour lists; minute by minute when summaries are not to be used.
      expect(await slaReadPlan(s.client, q)).toEqual({ summary: 12, minutes: 0, stale: 0, recent: 0 });
      const strictPlan = await slaReadPlan(s.client, strict);
      expect(strictPlan.minutes).toBeGreaterThan(0);
      expect(strictPlan.summary + strictPlan.minutes).toBe(12);
      expect(await slaReadPlan(s.client, { ...q, linkHours: false })).toEqual({ summary: 0, minutes: 12, stale: 0, recent: 0 });
      await s.client.command({ query: 'TRUNCATE TABLE sla_minutes' });
      expect(await month(s.client, q)).toEqual(before);
      // Decided by the summaries alone: a breach run across an hour boundary and loss breaches.
      const scopes = (before as { scopes: Awaited<ReturnType<typeof slaCompliance>> }).scopes;
      const link = (id: string) => scopes.find((r) => r.kind === 'link' && r.id === id)!;
      expect(link('alfa~bravo').latency_longest).toBe(8);
      expect(link('alfa~charlie').loss_breach_minutes).toBe(3);
      // Under a policy most minutes breach, an hour's listed minutes cannot decide it: the month reads its minutes,
      // which are gone now, so the same month differs (it would not if the lists were taken as complete).
      expect(await month(s.client, strict)).not.toEqual(strictBefore);
      // Read minute by minute, the same month now finds no minutes at all.
      const fromMinutes = (await slaCompliance(s.client, { ...q, linkHours: false })).find((r) => r.kind === 'network')!;
      expect(fromMinutes.covered_minutes).toBe(0);
    } finally {
      await s.close();
    }
  }, 240_000);
});
