/**
 * What a receiver sees: Alertmanager fingerprints (checked against
 * prometheus/common's own test vectors), the webhook message version "4"
 * field by field, and silence matchers.
 */
import { describe, expect, it } from 'vitest';
import { fingerprint, fingerprintValue } from '../../api/alerts/fingerprint.js';
import { buildWebhookMessage, groupKey, labelSetString, rfc3339, ZERO_TIME } from '../../api/alerts/payload.js';
import { matchersProblem, silencedBy, silenceMatches, silenceState } from '../../api/alerts/silences.js';
import type { SilenceRow } from '../../sql/index.js';

/** 64-bit FNV-1a, written out plainly as the reference. */
function fnv1a(bytes: Buffer): bigint {
  let h = 0xcbf29ce484222325n;
  for (const b of bytes) h = ((h ^ BigInt(b)) * 0x100000001b3n) % 2n ** 64n;
  return h;
}

describe('fingerprint', () => {
  it('is Alertmanager\'s: prometheus/common model.LabelsToSignature test vectors', () => {
    expect(fingerprintValue({})).toBe(14695981039346656037n);
    expect(fingerprintValue({ name: 'garland, briggs', fear: 'love is not enough' })).toBe(5799056148416392346n);
    expect(fingerprint({})).toBe('cbf29ce484222325');
  });

  it('depends on the labels only, not their order, and tells different label sets apart', () => {
    const labels = { alertname: 'LinkLatencyHigh', severity: 'warning', link: 'alfa~bravo', src: 'alfa', dst: 'bravo' };
    const reordered = { dst: 'bravo', src: 'alfa', link: 'alfa~bravo', severity: 'warning', alertname: 'LinkLatencyHigh' };
    expect(fingerprint(reordered)).toBe(fingerprint(labels));
    expect(fingerprint(labels)).toMatch(/^[0-9a-f]{16}$/);
    expect(fingerprint({ ...labels, severity: 'critical' })).not.toBe(fingerprint(labels));
    // The separator keeps name/value boundaries apart: {a: "bc"} is not {ab: "c"}.
    expect(fingerprint({ a: 'bc' })).not.toBe(fingerprint({ ab: 'c' }));
    // Names sort by UTF-8 bytes, as Go's sort.Strings does: U+FF5E (EF BD 9E) before U+1F600 (F0 9F 98 80),
    // although JavaScript's UTF-16 order puts the emoji first.
    const goOrder = fnv1a(Buffer.concat(['\uFF5E', 'y', '\u{1F600}', 'x'].flatMap((s) => [Buffer.from(s, 'utf8'), Buffer.from([0xff])])));
    expect(fingerprintValue({ '\u{1F600}': 'x', '\uFF5E': 'y' })).toBe(goOrder);
  });
});

describe('webhook message (Alertmanager webhook_config, version 4)', () => {
  const labels = { alertname: 'LinkLatencyHigh', severity: 'warning', link: 'alfa~bravo', src: 'alfa', dst: 'bravo' };
  const annotations = { summary: 'p99 RTT 9.00 ms > 5 ms on alfa–bravo', description: 'worse direction 9.00 ms, target 5 ms' };
  const startsAtMs = Date.UTC(2026, 10, 29, 6, 46, 55, 123);

  it('carries one firing alert with every field Alertmanager sends, endsAt the zero time', () => {
    const message = buildWebhookMessage('noc', 'https://noc.example', {
      status: 'firing', fingerprint: fingerprint(labels), labels, annotations, startsAtMs, endsAtMs: null,
      generatorURL: 'https://noc.example/#alfa%3Ebravo',
    });
    expect(Object.keys(message).sort()).toEqual(
      ['alerts', 'commonAnnotations', 'commonLabels', 'externalURL', 'groupKey', 'groupLabels', 'receiver', 'status', 'truncatedAlerts', 'version'],
    );
    expect(message.version).toBe('4');
    expect(message.groupKey).toBe('{}:{alertname="LinkLatencyHigh", dst="bravo", link="alfa~bravo", severity="warning", src="alfa"}');
    expect(message.truncatedAlerts).toBe(0);
    expect(message.status).toBe('firing');
    expect(message.receiver).toBe('noc');
    expect(message.groupLabels).toEqual(labels);
    expect(message.commonLabels).toEqual(labels);
    expect(message.commonAnnotations).toEqual(annotations);
    expect(message.externalURL).toBe('https://noc.example');
    expect(message.alerts).toHaveLength(1);
    const [alert] = message.alerts;
    expect(Object.keys(alert!).sort()).toEqual(['annotations', 'endsAt', 'fingerprint', 'generatorURL', 'labels', 'startsAt', 'status']);
    expect(alert).toEqual({
      status: 'firing', labels, annotations, startsAt: '2026-11-29T06:46:55.123Z', endsAt: '0001-01-01T00:00:00Z',
      generatorURL: 'https://noc.example/#alfa%3Ebravo', fingerprint: fingerprint(labels),
    });
    // Every time is RFC 3339 as Go parses it.
    expect(alert!.startsAt).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/);
    expect(ZERO_TIME).toBe('0001-01-01T00:00:00Z');
  });

  it('says resolved with the end time', () => {
    const message = buildWebhookMessage('noc', 'https://noc.example', {
      status: 'resolved', fingerprint: fingerprint(labels), labels, annotations, startsAtMs, endsAtMs: startsAtMs + 61_000, generatorURL: 'x',
    });
    expect(message.status).toBe('resolved');
    expect(message.alerts[0]).toMatchObject({ status: 'resolved', startsAt: '2026-11-29T06:46:55.123Z', endsAt: '2026-11-29T06:47:56.123Z' });
  });

  it('writes label sets as Alertmanager does, quoting values', () => {
    expect(labelSetString({ b: 'x"y', a: '1' })).toBe('{a="1", b="x\\"y"}');
    expect(groupKey({})).toBe('{}:{}');
    expect(rfc3339(0)).toBe('1970-01-01T00:00:00.000Z');
  });
});

describe('silence matchers', () => {
  const labels = { alertname: 'LinkDown', severity: 'critical', link: 'alfa~bravo', src: 'alfa', dst: 'bravo' };
  const eq = (name: string, value: string) => ({ name, value, isRegex: false, isEqual: true });

  it('match when every matcher does, with negation and anchored regular expressions', () => {
    expect(silenceMatches([eq('alertname', 'LinkDown'), eq('link', 'alfa~bravo')], labels)).toBe(true);
    expect(silenceMatches([eq('alertname', 'LinkDown'), eq('link', 'alfa~charlie')], labels)).toBe(false);
    expect(silenceMatches([{ name: 'link', value: 'alfa~.*', isRegex: true, isEqual: true }], labels)).toBe(true);
    expect(silenceMatches([{ name: 'link', value: 'alfa', isRegex: true, isEqual: true }], labels)).toBe(false); // anchored
    expect(silenceMatches([{ name: 'severity', value: 'critical', isRegex: false, isEqual: false }], labels)).toBe(false);
    expect(silenceMatches([{ name: 'centre', value: '', isRegex: false, isEqual: true }, eq('alertname', 'LinkDown')], labels)).toBe(true); // absent = ""
  });

  it('refuse what cannot work, naming the matcher', () => {
    expect(matchersProblem([])).toMatch(/^matchers: a silence needs at least one matcher/);
    expect(matchersProblem([eq('1bad', 'x')])).toMatch(/^matchers\[0\]\.name: "1bad" is not a label name/);
    expect(matchersProblem([eq('alertname', 'x'), { name: 'link', value: '(', isRegex: true, isEqual: true }])).toMatch(/^matchers\[1\]\.value: not a valid regular expression/);
    expect(matchersProblem([{ name: 'link', value: '.*', isRegex: true, isEqual: true }])).toMatch(/would silence every alert/);
    expect(matchersProblem([{ name: 'link', value: 'x', isRegex: false, isEqual: false }])).toMatch(/would silence every alert/);
    expect(matchersProblem([eq('alertname', 'LinkDown')])).toBeNull();
  });

  it('use RE2: backtracking patterns match in linear time, syntax needing backtracking is refused', () => {
    const long = { link: 'a'.repeat(1000) + '!' };
    // Each of these takes exponential time in a backtracking engine on a value like `long.link`.
    for (const evil of ['(a+)+', '(a|aa)+', '(a*)*b', '(.*a){20}', '((a+)+)+$']) {
      expect(silenceMatches([{ name: 'link', value: evil, isRegex: true, isEqual: true }], long)).toBe(false);
    }
    expect(silenceMatches([{ name: 'link', value: '(a+)+!', isRegex: true, isEqual: true }], long)).toBe(true);
    expect(matchersProblem([{ name: 'link', value: '(a)\\1', isRegex: true, isEqual: true }])).toMatch(/^matchers\[0\]\.value: not a valid regular expression \(RE2/);
    expect(matchersProblem([{ name: 'link', value: 'a(?=b)', isRegex: true, isEqual: true }])).toMatch(/^matchers\[0\]\.value: not a valid regular expression/);
    expect(matchersProblem([{ name: 'link', value: '(a{1,100}){1,100}', isRegex: true, isEqual: true }])).toMatch(/repeat/);
  });

  it('a stored pattern RE2 cannot compile (written before RE2) silences nothing, negated or not, and never throws', () => {
    expect(silenceMatches([{ name: 'link', value: '(a)\\1', isRegex: true, isEqual: true }], labels)).toBe(false);
    expect(silenceMatches([{ name: 'link', value: '(a)\\1', isRegex: true, isEqual: false }], labels)).toBe(false);
  });

  it('apply only between their start and end', () => {
    const s: SilenceRow = {
      id: 's1', matchers: [eq('alertname', 'LinkDown')], startsAtMs: 1000, endsAtMs: 2000, createdBy: 'noc', comment: 'work',
      updatedAtMs: 0, updatedBy: 'noc', version: 1,
    };
    expect([999, 1000, 1999, 2000].map((t) => silenceState(s, t))).toEqual(['pending', 'active', 'active', 'expired']);
    expect(silencedBy([s], labels, 1500)).toEqual(['s1']);
    expect(silencedBy([s], labels, 2000)).toEqual([]);
    expect(silencedBy([s], { ...labels, alertname: 'LinkPacketLoss' }, 1500)).toEqual([]);
  });
});
