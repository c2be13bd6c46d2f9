/**
 * The topology's `alerts:` section: defaults, durations in seconds or with
 * units, webhooks, and errors that name the file, the line, the path and
 * what is wrong.
 */
import { describe, expect, it } from 'vitest';
import { formatDuration, parseDurationMs, parseTopology } from '../../topology/index.js';
import { topologyProblems, twoCentreTopology } from '../helpers/topology-yaml.js';

const base = twoCentreTopology();

const problems = (alerts: string, env: NodeJS.ProcessEnv = {}): string => topologyProblems(`${base}${alerts}`, 'alerts.yaml', env);

describe('durations', () => {
  it('reads units, combinations and plain seconds', () => {
    expect(parseDurationMs('30s')).toBe(30_000);
    expect(parseDurationMs('5m')).toBe(300_000);
    expect(parseDurationMs('1h30m')).toBe(5_400_000);
    expect(parseDurationMs('4h')).toBe(14_400_000);
    expect(parseDurationMs('1d')).toBe(86_400_000);
    expect(parseDurationMs('250ms')).toBe(250);
    expect(parseDurationMs('0')).toBe(0);
    expect(parseDurationMs(45)).toBe(45_000);
    expect(parseDurationMs(0.5)).toBe(500);
    for (const bad of ['', '5', 'm', '5 m', '5min', '-5m', '1.5h', 'soon', '1m1h']) expect(parseDurationMs(bad), bad).toBeNull();
    expect(parseDurationMs(-1)).toBeNull();
  });

  it('writes them back in the shortest exact form', () => {
    expect([0, 250, 30_000, 300_000, 5_400_000, 14_400_000, 90_061_001].map(formatDuration)).toEqual(['0s', '250ms', '30s', '5m', '1h30m', '4h', '1d1h1m1s1ms']);
    for (const ms of [1, 999, 61_000, 7 * 86_400_000]) expect(parseDurationMs(formatDuration(ms))).toBe(ms);
  });
});

describe('the alerts section', () => {
  it('is absent unless given: nothing is evaluated', () => {
    expect(parseTopology(base, 'ok.yaml').alerts).toBeNull();
  });

  it('gives every rule a default; clock synchronisation is off unless asked for', () => {
    const alerts = parseTopology(`${base}alerts: {}\n`, 'ok.yaml').alerts!;
    expect(alerts.resendIntervalMs).toBe(4 * 3_600_000);
    expect(alerts.externalUrl).toBeNull();
    expect(alerts.webhooks).toEqual([]);
    expect(alerts.rules).toEqual({
      latency: { enabled: true, forMs: 300_000, severity: 'warning' },
      loss: { enabled: true, forMs: 300_000, severity: 'warning' },
      linkDown: { enabled: true, forMs: 120_000, severity: 'critical' },
      throughput: { enabled: true, forMs: 0, severity: 'warning' },
      probeSilent: { enabled: true, forMs: 300_000, severity: 'critical' },
      clockUnsynced: { enabled: false, forMs: 600_000, severity: 'warning', maxErrorUs: 100 },
    });
  });

  it('reads durations, overrides, webhooks and their bearer tokens from the environment', () => {
    const alerts = parseTopology(`${base}alerts:
  external_url: https://noc.example/citymesh/
  resend_interval: 1h30m
  rules:
    latency: { for: 30s, severity: critical }
    link_down: { for: 90 }
    clock_unsynced: { enabled: true, max_error_us: 250 }
  webhooks:
    - name: noc
      url: https://hooks.example/alertmanager
      bearer_token_env: NOC_HOOK_TOKEN
    - name: chat
      url: http://127.0.0.1:9099/hook
      send_resolved: false
      timeout: 2s
`, 'ok.yaml', { env: { NOC_HOOK_TOKEN: 's3cret' } }).alerts!;
    expect(alerts.externalUrl).toBe('https://noc.example/citymesh');
    expect(alerts.resendIntervalMs).toBe(5_400_000);
    expect(alerts.rules.latency).toEqual({ enabled: true, forMs: 30_000, severity: 'critical' });
    expect(alerts.rules.linkDown.forMs).toBe(90_000);
    expect(alerts.rules.clockUnsynced).toMatchObject({ enabled: true, maxErrorUs: 250, forMs: 600_000 });
    expect(alerts.webhooks).toEqual([
      { name: 'noc', url: 'https://hooks.example/alertmanager', sendResolved: true, bearerToken: 's3cret', timeoutMs: 10_000 },
      { name: 'chat', url: 'http://127.0.0.1:9099/hook', sendResolved: false, bearerToken: null, timeoutMs: 2000 },
    ]);
  });

  it('names file, line, path and problem for every mistake', () => {
    const line = (text: string) => base.split('\n').length - 1 + text.split('\n').findIndex((l) => l.includes('<<')) + 1;
    const badFor = 'alerts:\n  rules:\n    latency:\n      for: 5 minutes <<\n';
    expect(problems(badFor.replace(' <<', ''))).toContain(
      `alerts.yaml:${line(badFor)}: alerts.rules.latency.for: "5 minutes" is not a duration: write it like "30s", "5m", "1h30m" or "4h" (or a number of seconds)`,
    );
    expect(problems('alerts:\n  resend_interval: 1s\n')).toMatch(/alerts\.yaml:\d+: alerts\.resend_interval: 1s is out of range: must be between 10s and 7d/);
    expect(problems('alerts:\n  rules:\n    latency: { for: true }\n')).toMatch(/alerts\.rules\.latency\.for: must be a duration like "30s", "5m" or "4h"/);
    expect(problems('alerts:\n  webhooks:\n    - { name: noc, url: "ftp://hooks.example/x" }\n')).toMatch(
      /alerts\.yaml:\d+: alerts\.webhooks\[0\]\.url: must be an http:\/\/ or https:\/\/ URL/,
    );
    expect(problems('alerts:\n  webhooks:\n    - { name: noc, url: "not a url" }\n')).toMatch(/alerts\.webhooks\[0\]\.url: must be an http/);
    expect(problems('alerts:\n  webhooks:\n    - { name: noc, url: "https://a.example/", colour: red }\n')).toMatch(/alerts\.webhooks\[0\]: unknown key\(s\) "colour"/);
    expect(problems('alerts:\n  webhooks:\n    - { name: noc, url: "https://a.example/" }\n    - { name: noc, url: "https://b.example/" }\n')).toMatch(
      /alerts\.yaml:\d+: alerts\.webhooks\[1\]\.name: duplicate webhook name "noc" \(first at webhooks\[0\]\)/,
    );
    expect(problems('alerts:\n  webhooks:\n    - { name: noc, url: "https://a.example/", bearer_token_env: HOOK_TOKEN }\n')).toMatch(
      /alerts\.webhooks\[0\]\.bearer_token_env: environment variable HOOK_TOKEN is not set/,
    );
    expect(problems('alerts:\n  rules:\n    latncy: { for: 1m }\n')).toMatch(/alerts\.rules: unknown key\(s\) "latncy"/);
    expect(problems('alerts:\n  rules:\n    loss: { severity: page }\n')).toMatch(/alerts\.rules\.loss\.severity:/);
    expect(problems('alerts:\n  external_url: noc.example\n')).toMatch(/alerts\.external_url: must be an http:\/\/ or https:\/\/ URL of the dashboard/);
  });

  it('reads Alertmanagers (trailing slash dropped, token from the environment) and names what is wrong with one', () => {
    const topology = parseTopology(`${base}alerts:\n  alertmanagers:\n    - { url: "http://am-1:9093/" }\n    - { url: "https://am.example/prefix", bearer_token_env: AM_TOKEN, timeout: 3s }\n`,
      'alerts.yaml', { env: { AM_TOKEN: 'secret' } });
    expect(topology.alerts!.alertmanagers).toEqual([
      { url: 'http://am-1:9093', bearerToken: null, timeoutMs: 10_000 },
      { url: 'https://am.example/prefix', bearerToken: 'secret', timeoutMs: 3000 },
    ]);
    expect(problems('alerts:\n  alertmanagers:\n    - { url: "am-1:9093" }\n')).toMatch(/alerts\.yaml:\d+: alerts\.alertmanagers\[0\]\.url: must be an http:\/\/ or https:\/\/ base URL without query/);
    expect(problems('alerts:\n  alertmanagers:\n    - { url: "http://am-1:9093/?x=1" }\n')).toMatch(/alerts\.alertmanagers\[0\]\.url: must be an http/);
    expect(problems('alerts:\n  alertmanagers:\n    - { url: "http://am-1:9093" }\n    - { url: "http://am-1:9093/" }\n')).toMatch(
      /alerts\.alertmanagers\[1\]\.url: duplicate Alertmanager "http:\/\/am-1:9093" \(first at alertmanagers\[0\]\)/,
    );
    expect(problems('alerts:\n  alertmanagers:\n    - { url: "http://am-1:9093", bearer_token_env: AM_TOKEN }\n')).toMatch(
      /alerts\.alertmanagers\[0\]\.bearer_token_env: environment variable AM_TOKEN is not set/,
    );
    expect(problems('alerts:\n  alertmanagers:\n    - { url: "http://am-1:9093", timeout: 5m }\n')).toMatch(/alerts\.alertmanagers\[0\]\.timeout: 5m is out of range/);
  });
});
