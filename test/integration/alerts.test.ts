/**
 * Issue 8's alert test, end to end on real parts: the real server (embedded
 * ClickHouse in a temp directory), trains whose timestamps the test controls
 * posted through POST /v1/ingest with each centre's probe token, and a real
 * HTTP receiver on 127.0.0.1. Two AlertService instances on the one store
 * take turns evaluating with explicit clocks, as two servers behind a load
 * balancer would, one slot each.
 *
 * Three links, one story each, on the same clock (t = seconds after t0):
 *   alfa~bravo     p99 9 ms (target 5 ms) one way during [60, 150): exactly one firing and one resolved webhook
 *   alfa~charlie   9 ms during [60, 300): fires at 95, no resend before the 2-minute resend interval, one resend at 215
 *   bravo~charlie  9 ms during [60, 300), silenced during [80, 200): stored and shown as silenced, nothing sent
 *                  until the silence ends, then one firing webhook
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fingerprint } from '../../api/alerts/fingerprint.js';
import type { WebhookMessage } from '../../api/alerts/payload.js';
import { AlertService, type EvaluationReport, type FiringAlert } from '../../api/alerts/service.js';
import type { AlertEventsResponse } from '../../api/contract.js';
import { parseTopology, type Topology } from '../../topology/index.js';
import { getJson, quietLogger, startTestServer, testTopology, type TestServer, ingestFetch } from '../helpers/stack.js';

const base = testTopology(['alfa', 'bravo', 'charlie'], '127.0.71');
const hookToken = `hook-${Math.random().toString(36).slice(2)}`;
const STEP_S = 5;
const END_S = 300;
/** Minute-aligned start, three hours back: inside the collector's accepted window, far from the wall clock. */
const t0 = Math.floor((Date.now() - 3 * 3_600_000) / 60_000) * 60_000;
const at = (s: number) => t0 + s * 1000;
const iso = (s: number) => new Date(at(s)).toISOString();

interface Received {
  /** The evaluation (seconds after t0) during which it arrived. */
  evaluation: number;
  authorization: string | undefined;
  contentType: string | undefined;
  message: WebhookMessage;
}

const received: Received[] = [];
let currentEvaluation = -1;
let receiver: Server;
let server: TestServer;
let topology: Topology;
let first: AlertService;
let second: AlertService;
const registries = [new Registry(), new Registry()];
const fired: FiringAlert[] = [];
const reports = new Map<number, EvaluationReport[]>();

/** RTT of the trains from src to dst at second s (µs). */
function rttUs(src: string, dst: string, s: number): number {
  const link = [src, dst].sort().join('~');
  if (link === 'alfa~bravo') return src === 'bravo' && s >= 60 && s < 150 ? 9000 : 500; // one direction only: the worse one counts
  if (link === 'alfa~charlie' || link === 'bravo~charlie') return s >= 60 && s < END_S ? 9000 : 500;
  return 500;
}

let ingestedUpTo = -1;
let batchSeq = 0;

/** Posts every train that starts before second `untilS` and was not posted yet, one batch per centre. */
async function ingestUntil(untilS: number): Promise<void> {
  for (const src of ['alfa', 'bravo', 'charlie']) {
    const samples = [];
    for (let s = 1; s < untilS && s <= END_S; s += STEP_S) {
      if (s <= ingestedUpTo) continue;
      for (const dst of ['alfa', 'bravo', 'charlie'].filter((d) => d !== src)) {
        const rtt = rttUs(src, dst, s);
        samples.push({
          trainId: `alerts-${src}-${dst}-${s}-${t0}`, dst, engine: 'stamp', startedAtUs: at(s) * 1000, flow: 0, srcPort: 40000, dscp: 46,
          sent: 10, received: 10, lost: 0, duplicated: 0, reordered: 0, rttMinUs: rtt, rttMedianUs: rtt, rttP99Us: rtt, rttMaxUs: rtt,
          jitterUs: 0, rttsUs: Array(10).fill(rtt), synced: false, errorEstimateUs: 1000, fwdUs: [], revUs: [],
        });
      }
    }
    if (samples.length === 0) continue;
    const response = await ingestFetch(`${server.url}/v1/ingest`, {
      method: 'POST',
      headers: { authorization: `Bearer ${base.tokens[src]}`, 'content-type': 'application/json' },
      body: JSON.stringify({ type: 'batch', batchId: `alerts-${src}-${++batchSeq}`, samples }),
    });
    expect(response.status, await response.clone().text()).toBe(200);
    expect(await response.json()).toMatchObject({ type: 'ack', stored: samples.length });
  }
  ingestedUpTo = Math.max(ingestedUpTo, untilS - 1);
}

/** Ingest up to second s, then let `service` evaluate at t0 + s. */
async function evaluateAt(service: AlertService, s: number): Promise<EvaluationReport> {
  await ingestUntil(s);
  currentEvaluation = s;
  const report = await service.evaluate(at(s));
  reports.set(s, [...(reports.get(s) ?? []), report]);
  return report;
}

const labelsOf = (link: string) => {
  const [src, dst] = link.split('~') as [string, string];
  return { alertname: 'LinkLatencyHigh', severity: 'warning', link, src, dst };
};
const fp = (link: string) => fingerprint(labelsOf(link));
const messagesFor = (link: string) => received.filter((r) => r.message.alerts[0]!.fingerprint === fp(link));

beforeAll(async () => {
  receiver = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => {
      received.push({
        evaluation: currentEvaluation, authorization: req.headers.authorization, contentType: req.headers['content-type'],
        message: JSON.parse(body) as WebhookMessage,
      });
      res.writeHead(200).end('ok');
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  const hookUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/alertmanager`;
  topology = parseTopology(`${base.yaml}alerts:
  external_url: https://noc.example/citymesh/
  resend_interval: 2m
  rules:
    latency: { for: 30s }
    loss: { for: 30s }
    link_down: { for: 30s }
    probe_silent: { for: 60s }
  webhooks:
    - name: noc
      url: ${hookUrl}
      send_resolved: true
      bearer_token_env: CITYMESH_TEST_HOOK_TOKEN
`, 'alerts-test.yaml', { env: { CITYMESH_TEST_HOOK_TOKEN: hookToken } });
  server = await startTestServer(topology);
  // The server's own 15-second ticks run on the wall clock; this test drives the clock itself.
  await server.alerts.stop();
  const make = (registry: Registry) => new AlertService({
    store: server.store, topology, logger: quietLogger, registry, onFiring: (a) => { fired.push(a); }, delivery: { attempts: 2, backoffMs: 50 },
  });
  [first, second] = [make(registries[0]!), make(registries[1]!)];
});

afterAll(async () => {
  await server?.stop();
  receiver?.closeAllConnections();
  await new Promise((r) => receiver?.close(r));
});

/**
 * The script, in stages that each run once, in order, whichever test needs
 * them first: so every test runs alone too (`-t`), and in any order after
 * the first. The first stage: pending, a silence, firing, resolved.
 */
let firesAndResolves: ReturnType<typeof runFiresAndResolves> | undefined;
const stageFiresAndResolves = () => (firesAndResolves ??= runFiresAndResolves());
async function runFiresAndResolves() {
  const quiet50 = await evaluateAt(first, 50);
  const pending = await evaluateAt(second, 75);
  const early = await first.snapshot(at(75));
  // The silence for bravo~charlie starts before anything fires.
  const silence = await first.createSilence({
    matchers: [{ name: 'alertname', value: 'LinkLatencyHigh', isRegex: false, isEqual: true }, { name: 'link', value: 'bravo~charlie', isRegex: false, isEqual: true }],
    startsAtMs: at(80), endsAtMs: at(200), comment: 'fibre work on bravo–charlie',
  }, 'test operator', at(80));
  const firing = await evaluateAt(first, 95);
  const firedAfter95 = fired.map((a) => a.link).sort();
  // Servers take turns, and a second server evaluating the very same slot changes nothing.
  const turns: [number, EvaluationReport][] = [];
  for (const [service, s] of [[second, 110], [first, 125], [second, 125], [second, 140]] as const) turns.push([s, await evaluateAt(service, s)]);
  const resolved = await evaluateAt(first, 155);
  const after: [number, EvaluationReport][] = [];
  for (const [service, s] of [[second, 170], [first, 185]] as const) after.push([s, await evaluateAt(service, s)]);
  return { quiet50, pending, early, silence, firing, firedAfter95, turns, resolved, after };
}

/** The second stage: evaluations past the silence's end and the resend interval. */
let resends: Promise<void> | undefined;
const stageResends = () =>
  (resends ??= (async () => {
    await stageFiresAndResolves();
    for (const [service, s] of [[second, 200], [first, 215], [second, 230], [first, 245], [second, 260]] as const) await evaluateAt(service, s);
  })());

describe('alerts from a scripted breach', () => {
  it('evaluates only in a slot this server claimed', async () => {
    const claims: [string, string][] = [];
    const loser = new AlertService({
      store: server.store, topology, logger: quietLogger, claim: async (job, slot) => (claims.push([job, slot]), false),
    });
    await ingestUntil(95);
    const before = { snapshot: await loser.snapshot(at(95)), received: received.length };
    expect(await loser.tick(at(95))).toBeNull();
    expect(claims).toEqual([['alerts', String(Math.floor(at(95) / 15_000) * 15_000)]]);
    expect(await loser.snapshot(at(95))).toEqual(before.snapshot); // nothing was recorded
    expect(received).toHaveLength(before.received); // nothing was sent
  });

  it('goes pending, fires after `for`, and resolves: exactly one firing and one resolved webhook', async () => {
    const { quiet50, pending, early, silence, firing, firedAfter95, turns, resolved, after } = await stageFiresAndResolves();
    expect(quiet50.events).toEqual([]);
    expect(pending).toMatchObject({ pending: 3, firing: 0, events: [], notifications: [] });
    expect(early.alerts.map((a) => [a.link, a.state, a.since]).sort()).toEqual([
      ['alfa~bravo', 'pending', iso(60)], ['alfa~charlie', 'pending', iso(60)], ['bravo~charlie', 'pending', iso(60)],
    ]);

    expect(silence).toMatchObject({ state: 'active', createdBy: 'test operator' });

    expect(firing.events.map((e) => [e.link, e.status, e.startsAtMs - t0, e.activeAtMs! - t0])).toEqual([
      ['alfa~bravo', 'firing', 90_000, 60_000], ['alfa~charlie', 'firing', 90_000, 60_000], ['bravo~charlie', 'firing', 90_000, 60_000],
    ].sort());
    expect(firing.events.find((e) => e.link === 'bravo~charlie')!.silencedBy).toEqual([silence.id]);
    expect(firing).toMatchObject({ firing: 2, silenced: 1, pending: 0 });
    expect(firedAfter95).toEqual(['alfa~bravo', 'alfa~charlie', 'bravo~charlie']);

    // Servers take turns, and a second server evaluating the very same slot changes nothing.
    for (const [s, r] of turns) {
      expect(r.events, `t=${s}`).toEqual([]);
      expect(r.notifications, `t=${s}`).toEqual([]);
    }
    expect(resolved.events.map((e) => [e.link, e.status, e.startsAtMs - t0, e.endsAtMs! - t0])).toEqual([['alfa~bravo', 'resolved', 90_000, 150_000]]);
    for (const [s, r] of after) expect(r.notifications, `t=${s}`).toEqual([]);

    const ab = messagesFor('alfa~bravo');
    expect(ab.map((r) => [r.evaluation, r.message.status])).toEqual([[95, 'firing'], [155, 'resolved']]);
    const labels = labelsOf('alfa~bravo');
    for (const r of ab) {
      const m = r.message;
      expect(r.authorization).toBe(`Bearer ${hookToken}`);
      expect(r.contentType).toBe('application/json');
      expect(Object.keys(m).sort()).toEqual(
        ['alerts', 'commonAnnotations', 'commonLabels', 'externalURL', 'groupKey', 'groupLabels', 'receiver', 'status', 'truncatedAlerts', 'version'],
      );
      expect(m.version).toBe('4');
      expect(m.groupKey).toBe('{}:{alertname="LinkLatencyHigh", dst="bravo", link="alfa~bravo", severity="warning", src="alfa"}');
      expect(m.truncatedAlerts).toBe(0);
      expect(m.receiver).toBe('noc');
      expect(m.groupLabels).toEqual(labels);
      expect(m.commonLabels).toEqual(labels);
      expect(m.externalURL).toBe('https://noc.example/citymesh');
      expect(m.alerts).toHaveLength(1);
      const alert = m.alerts[0]!;
      expect(Object.keys(alert).sort()).toEqual(['annotations', 'endsAt', 'fingerprint', 'generatorURL', 'labels', 'startsAt', 'status']);
      expect(alert.status).toBe(m.status);
      expect(alert.labels).toEqual(labels);
      expect(alert.annotations).toEqual(m.commonAnnotations);
      expect(alert.annotations.summary).toBe('p99 RTT 9.00 ms > 5 ms on alfa–bravo');
      expect(alert.annotations.description).toContain('9.00 ms');
      expect(alert.annotations.description).toContain('target of 5 ms');
      expect(alert.startsAt).toBe(iso(90));
      expect(alert.generatorURL).toBe('https://noc.example/citymesh/#alfa%3Ebravo');
      expect(alert.fingerprint).toBe(fingerprint(labels));
    }
    expect(ab[0]!.message.alerts[0]!.endsAt).toBe('0001-01-01T00:00:00Z');
    expect(ab[1]!.message.alerts[0]!.endsAt).toBe(iso(150));
  });

  it('re-sends a firing alert once per resend interval, never within it', async () => {
    await stageResends();
    expect(messagesFor('alfa~charlie').map((r) => [r.evaluation, r.message.status, r.message.alerts[0]!.startsAt])).toEqual([
      [95, 'firing', iso(90)], [215, 'firing', iso(90)],
    ]);
  });

  it('sends nothing while a silence matches, shows the alert as silenced, and notifies once the silence ends', async () => {
    await stageResends();
    const during = await first.snapshot(at(185));
    const bc = during.alerts.find((a) => a.link === 'bravo~charlie')!;
    expect(bc).toMatchObject({ state: 'silenced', since: iso(60), startsAt: iso(90), value: 9, threshold: 5, unit: 'ms' });
    expect(bc.silencedBy).toHaveLength(1);
    expect(during.alerts.find((a) => a.link === 'alfa~charlie')).toMatchObject({ state: 'firing', value: 9, threshold: 5 });
    expect(during.resolved.map((r) => [r.link, r.startsAt, r.endsAt])).toEqual([['alfa~bravo', iso(90), iso(150)]]);
    // Silenced during [80, 200): the first notification of the episode is the evaluation at 200.
    expect(messagesFor('bravo~charlie').map((r) => [r.evaluation, r.message.status])).toEqual([[200, 'firing']]);
    expect((await first.snapshot(at(215))).alerts.find((a) => a.link === 'bravo~charlie')!.state).toBe('firing');
  });

  it('sent nothing twice across the two services, and recorded every change once', async () => {
    await stageResends();
    expect(received).toHaveLength(5);
    expect(new Set(received.map((r) => `${r.message.alerts[0]!.fingerprint}/${r.evaluation}/${r.message.status}`)).size).toBe(5);
    expect(fired).toHaveLength(3); // one onFiring call per episode, whichever service recorded it
    const metrics = (await Promise.all(registries.map((r) => r.getSingleMetric('citymesh_alert_notifications_total')!.get())))
      .flatMap((m) => m.values)
      .filter((v) => v.labels.outcome === 'sent');
    const sum = (status: string) => metrics.filter((v) => v.labels.status === status).reduce((n, v) => n + v.value, 0);
    expect([sum('firing'), sum('resolved')]).toEqual([4, 1]);

    const { status, body } = await getJson<AlertEventsResponse>(
      `${server.url}/v1/alerts/events?from=${encodeURIComponent(iso(0))}&to=${encodeURIComponent(iso(400))}&link=bravo~alfa`, base.operatorToken,
    );
    expect(status).toBe(200);
    expect(body.link).toBe('alfa~bravo');
    expect(body.events.map((e) => [e.status, e.startsAt, e.endsAt, e.value, e.threshold, e.unit])).toEqual([
      ['resolved', iso(90), iso(150), 0.5, 5, 'ms'],
      ['firing', iso(90), null, 9, 5, 'ms'],
    ]);
    const all = await getJson<AlertEventsResponse>(`${server.url}/v1/alerts/events?from=${encodeURIComponent(iso(0))}&to=${encodeURIComponent(iso(400))}`, base.operatorToken);
    expect(all.body.events).toHaveLength(4); // three firing, one resolved: none doubled by the second service
  });
});
