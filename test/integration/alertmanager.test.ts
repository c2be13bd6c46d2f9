/**
 * citymesh as an alert source for the real Alertmanager (Debian's 0.25),
 * started on 127.0.0.1 with a temporary data directory. Breaches go through
 * the real ingest path (POST /v1/ingest with each centre's token); the
 * server's AlertService evaluates on the test's clock and posts to
 * POST /api/v2/alerts of two Alertmanagers, the first of which is down
 * (failover). Alertmanager routes to a receiver on loopback, one group per
 * link; its silence suppresses one link's alert and its inhibition rule mutes
 * the loss alert of a link that is down.
 *
 *   alfa~bravo     RTT 9 ms (target 5 ms), then back to 0.5 ms: firing, then resolved at the receiver
 *   alfa~charlie   every packet lost both ways: LinkDown and LinkPacketLoss fire; only LinkDown is notified
 *   bravo~charlie  RTT 9 ms under an Alertmanager silence: suppressed, never notified
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fingerprint } from '../../api/alerts/fingerprint.js';
import { parseTopology } from '../../topology/index.js';
import { missingAlertmanager, startAlertmanager, type RunningTool } from '../helpers/prometheus.js';
import { freePort, removeTempDirs } from '../helpers/processes.js';
import { skipReason } from '../helpers/requirements.js';
import { startTestServer, testTopology, waitFor, type TestServer, ingestFetch } from '../helpers/stack.js';

const skip = skipReason(missingAlertmanager());
const base = testTopology(['alfa', 'bravo', 'charlie'], '127.0.76');

interface Notification {
  atMs: number;
  body: {
    status: string;
    groupLabels: Record<string, string>;
    alerts: { status: string; labels: Record<string, string>; fingerprint: string; endsAt: string; generatorURL: string }[];
  };
}

const received: Notification[] = [];
let receiver: Server;
let alertmanager: RunningTool | null = null;
let server: TestServer;
let deadUrl: string;
let batch = 0;

/** One train per second per direction over [fromMs, toMs), all with the same RTT (or every packet lost). */
async function ingest(fromMs: number, toMs: number, rttUs: (link: string) => number | 'lost'): Promise<void> {
  for (const src of ['alfa', 'bravo', 'charlie']) {
    const samples = [];
    for (let t = fromMs; t < toMs; t += 1000) {
      for (const dst of ['alfa', 'bravo', 'charlie'].filter((d) => d !== src)) {
        const rtt = rttUs([src, dst].sort().join('~'));
        const rtts = rtt === 'lost' ? [] : Array(10).fill(rtt);
        samples.push({
          trainId: `am-${src}-${dst}-${t}`, dst, engine: 'stamp', startedAtUs: t * 1000, flow: 0, srcPort: 40000, dscp: 46,
          sent: 10, received: rtts.length, lost: 10 - rtts.length, duplicated: 0, reordered: 0,
          rttMinUs: rtts[0] ?? null, rttMedianUs: rtts[0] ?? null, rttP99Us: rtts[0] ?? null, rttMaxUs: rtts[0] ?? null,
          jitterUs: rtts.length > 1 ? 0 : null, rttsUs: rtts, synced: false, errorEstimateUs: 1000, fwdUs: [], revUs: [],
        });
      }
    }
    const response = await ingestFetch(`${server.url}/v1/ingest`, {
      method: 'POST',
      headers: { authorization: `Bearer ${base.tokens[src]}`, 'content-type': 'application/json' },
      body: JSON.stringify({ type: 'batch', batchId: `am-${src}-${++batch}`, samples }),
    });
    expect(response.status, await response.clone().text()).toBe(200);
  }
}

async function amAlerts(): Promise<{ labels: Record<string, string>; fingerprint: string; status: { state: string; silencedBy: string[]; inhibitedBy: string[] } }[]> {
  const response = await fetch(`${alertmanager!.url}/api/v2/alerts`);
  expect(response.status).toBe(200);
  return (await response.json()) as never;
}

const linkLabels = (alertname: string, link: string, severity: string) => {
  const [src, dst] = link.split('~') as [string, string];
  return { alertname, severity, link, src, dst };
};

beforeAll(async () => {
  if (skip) return;
  receiver = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8').on('data', (d: string) => (body += d)).on('end', () => {
      received.push({ atMs: Date.now(), body: JSON.parse(body) as Notification['body'] });
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  const hook = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
  alertmanager = await startAlertmanager(`route:
  receiver: noc
  group_by: [link]
  # Alertmanager flushes a new group at once when its alert started more than group_wait ago, before its
  # inhibitor has seen LinkDown: the breach below starts 3 s before the post, so the wait must be longer.
  group_wait: 10s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: noc
    webhook_configs: [{ url: '${hook}', send_resolved: true }]
inhibit_rules:
  - source_matchers: [alertname="LinkDown"]
    target_matchers: [alertname=~"LinkPacketLoss|LinkLatencyHigh"]
    equal: [link]
`);
  deadUrl = `http://127.0.0.1:${await freePort()}`; // nothing listens there: the first Alertmanager is down
  const topology = parseTopology(`${base.yaml}alerts:
  external_url: https://noc.example/citymesh
  rules:
    latency: { for: 0s }
    loss: { for: 0s }
    link_down: { for: 0s }
    probe_silent: { enabled: false }
    throughput: { enabled: false }
  alertmanagers:
    - { url: '${deadUrl}', timeout: 2s }
    - { url: '${alertmanager.url}/' }
`, 'alertmanager-test.yaml');
  server = await startTestServer(topology);
  await server.alerts.stop(); // the test evaluates on its own clock
}, 60_000);

afterAll(async () => {
  await server?.stop();
  await alertmanager?.stop();
  receiver?.closeAllConnections();
  await new Promise((r) => (receiver ? receiver.close(r) : r(undefined)));
  removeTempDirs();
});

describe.skipIf(skip)('alerts through the real Alertmanager', () => {
  it('routes a breach to the receiver past a dead Alertmanager, silences and inhibits in Alertmanager, resolves by endsAt', async () => {
    const silence = await fetch(`${alertmanager!.url}/api/v2/silences`, {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        matchers: [{ name: 'link', value: 'bravo~charlie', isRegex: false, isEqual: true }],
        startsAt: new Date().toISOString(), endsAt: new Date(Date.now() + 3_600_000).toISOString(), createdBy: 'test', comment: 'fibre work on bravo–charlie',
      }),
    });
    expect(silence.status, await silence.clone().text()).toBe(200);
    const { silenceID } = (await silence.json()) as { silenceID: string };

    const breachAt = Date.now();
    const breach = (link: string) => (link === 'alfa~charlie' ? 'lost' : 9000);
    await ingest(breachAt - 3000, breachAt, breach);
    const stored = Date.now();
    const firing = await server.alerts.evaluate(Date.now());
    const posted = Date.now();
    expect(firing.events.map((e) => `${e.alertname} ${e.link} ${e.status}`).sort()).toEqual([
      'LinkDown alfa~charlie firing', 'LinkLatencyHigh alfa~bravo firing', 'LinkLatencyHigh bravo~charlie firing', 'LinkPacketLoss alfa~charlie firing',
    ]);
    // Failover: the dead Alertmanager refused the connection, the live one took all four.
    expect(firing.alertmanagers).toEqual([
      { alertmanager: deadUrl, ok: false, httpStatus: 0, alerts: 4, error: expect.stringContaining('ECONNREFUSED') },
      { alertmanager: alertmanager!.url, ok: true, httpStatus: 200, alerts: 4, error: '' },
    ]);

    const groups = await waitFor('notifications for alfa~bravo and alfa~charlie', () => {
      const ab = received.find((n) => n.body.groupLabels.link === 'alfa~bravo' && n.body.status === 'firing');
      const ac = received.find((n) => n.body.groupLabels.link === 'alfa~charlie' && n.body.status === 'firing');
      return ab && ac ? { ab, ac } : undefined;
    });
    expect(groups.ab.body.alerts.map((a) => [a.labels.alertname, a.status])).toEqual([['LinkLatencyHigh', 'firing']]);
    expect(groups.ab.body.alerts[0]!.generatorURL).toBe('https://noc.example/citymesh/#alfa%3Ebravo');
    // Alertmanager's fingerprint is citymesh's: the same hash of the same labels.
    expect(groups.ab.body.alerts[0]!.fingerprint).toBe(fingerprint(linkLabels('LinkLatencyHigh', 'alfa~bravo', 'warning')));
    // The link is down: its loss alert is inhibited, only LinkDown is notified.
    expect(groups.ac.body.alerts.map((a) => a.labels.alertname)).toEqual(['LinkDown']);

    const inAm = await amAlerts();
    const state = (alertname: string, link: string) => inAm.find((a) => a.labels.alertname === alertname && a.labels.link === link)!.status;
    expect(state('LinkPacketLoss', 'alfa~charlie')).toEqual({
      state: 'suppressed', silencedBy: [], inhibitedBy: [fingerprint(linkLabels('LinkDown', 'alfa~charlie', 'critical'))],
    });
    expect(state('LinkLatencyHigh', 'bravo~charlie')).toEqual({ state: 'suppressed', silencedBy: [silenceID], inhibitedBy: [] });
    expect(state('LinkLatencyHigh', 'alfa~bravo')).toMatchObject({ state: 'active' });

    // alfa~bravo recovers; the others stay as they were. The resolved alert carries its endsAt.
    const recoverAt = Date.now();
    await ingest(breachAt, recoverAt + 1000, (link) => (link === 'alfa~bravo' ? 500 : breach(link)));
    const resolved = await server.alerts.evaluate(recoverAt + 1000);
    expect(resolved.events.map((e) => `${e.alertname} ${e.link} ${e.status}`)).toEqual(['LinkLatencyHigh alfa~bravo resolved']);
    const done = await waitFor('the resolved notification for alfa~bravo', () =>
      received.find((n) => n.body.groupLabels.link === 'alfa~bravo' && n.body.status === 'resolved'));
    expect(done.body.alerts.map((a) => [a.labels.alertname, a.status])).toEqual([['LinkLatencyHigh', 'resolved']]);
    expect(Date.parse(done.body.alerts[0]!.endsAt)).toBe(resolved.events[0]!.endsAtMs);

    // By the time the resolution arrived, nothing silenced or inhibited had been notified.
    const notified = received.flatMap((n) => n.body.alerts.map((a) => `${a.labels.alertname} ${a.labels.link}`));
    expect(notified).not.toContain('LinkLatencyHigh bravo~charlie');
    expect(notified).not.toContain('LinkPacketLoss alfa~charlie');

    const metrics = await (await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${base.operatorToken}` } })).text();
    expect(metrics).toContain(`citymesh_alertmanager_posts_total{alertmanager="${deadUrl}",outcome="failed"} 2`);
    expect(metrics).toContain(`citymesh_alertmanager_posts_total{alertmanager="${alertmanager!.url}",outcome="sent"} 2`);
    process.stdout.write(`alertmanager path: trains stored ${stored - breachAt} ms after the breach's last train; evaluation + post to both Alertmanagers ${posted - stored} ms; ` +
      `post answered → receiver ${groups.ab.atMs - posted} ms (alfa~bravo), ${groups.ac.atMs - posted} ms (alfa~charlie), group_wait 10s; ` +
      `resolve → receiver ${done.atMs - recoverAt} ms\n`);
  }, 90_000);
});
