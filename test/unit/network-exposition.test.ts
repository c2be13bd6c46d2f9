import { describe, expect, it } from 'vitest';
import { histogramSamples, negotiateFormat, render, type Family } from '../../api/network-metrics/exposition.js';
import { linkState } from '../../api/path-status.js';

const families: Family[] = [
  { name: 'x_packets', type: 'counter', help: 'Packets\nsent \\ here', samples: [{ suffix: '_total', labels: { link: 'a~"b"' }, value: 3 }] },
  { name: 'x_rtt_seconds', type: 'histogram', help: 'RTT', unit: 'seconds', samples: histogramSamples({ p: '1' }, ['0.001', '0.002'], [1, 2], 3, 0.0045) },
  { name: 'x_window_seconds', type: 'gaugehistogram', help: 'Window', samples: histogramSamples({}, ['0.001'], [1], 1, 0.0005, true) },
  { name: 'x_mode', type: 'info', help: 'Mode', samples: [{ suffix: '_info', labels: { mode: 'kernel' }, value: 1 }] },
  { name: 'x_ratio', type: 'gauge', help: 'R', samples: [{ suffix: '', labels: {}, value: Infinity }] },
];

describe('exposition', () => {
  it('writes text 0.0.4: counters and infos under their sample names, no gauge histograms, escaped help and labels', () => {
    expect(render(families, 'prometheus')).toBe([
      '# HELP x_packets_total Packets\\nsent \\\\ here', '# TYPE x_packets_total counter', 'x_packets_total{link="a~\\"b\\""} 3',
      '# HELP x_rtt_seconds RTT', '# TYPE x_rtt_seconds histogram',
      'x_rtt_seconds_bucket{p="1",le="0.001"} 1', 'x_rtt_seconds_bucket{p="1",le="0.002"} 2', 'x_rtt_seconds_bucket{p="1",le="+Inf"} 3',
      'x_rtt_seconds_count{p="1"} 3', 'x_rtt_seconds_sum{p="1"} 0.0045',
      '# HELP x_mode_info Mode', '# TYPE x_mode_info gauge', 'x_mode_info{mode="kernel"} 1',
      '# HELP x_ratio R', '# TYPE x_ratio gauge', 'x_ratio +Inf', '',
    ].join('\n'));
  });

  it('writes OpenMetrics: family names without suffixes, UNIT, gauge histograms, # EOF', () => {
    const text = render(families, 'openmetrics');
    expect(text).toContain('# TYPE x_packets counter\n# HELP x_packets Packets\\nsent \\\\ here\nx_packets_total{link="a~\\"b\\""} 3\n');
    expect(text).toContain('# TYPE x_rtt_seconds histogram\n# UNIT x_rtt_seconds seconds\n');
    expect(text).toContain('# TYPE x_window_seconds gaugehistogram\n# HELP x_window_seconds Window\nx_window_seconds_bucket{le="0.001"} 1\nx_window_seconds_bucket{le="+Inf"} 1\nx_window_seconds_gcount 1\nx_window_seconds_gsum 0.0005\n');
    expect(text).toContain('# TYPE x_mode info\n# HELP x_mode Mode\nx_mode_info{mode="kernel"} 1\n');
    expect(text.endsWith('# EOF\n')).toBe(true);
  });

  it('negotiates: ?format wins, then the Accept header by q-value, else text 0.0.4', () => {
    expect(negotiateFormat(undefined, undefined)).toBe('prometheus');
    expect(negotiateFormat('*/*', undefined)).toBe('prometheus');
    expect(negotiateFormat('application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1', undefined)).toBe('openmetrics');
    expect(negotiateFormat('application/openmetrics-text;q=0.2,text/plain;q=0.9', undefined)).toBe('prometheus');
    expect(negotiateFormat('application/openmetrics-text', 'prometheus')).toBe('prometheus');
    expect(negotiateFormat(undefined, 'xml')).toEqual({ error: expect.stringContaining('format: "xml" is not a format') });
    expect(negotiateFormat(undefined, ['openmetrics'])).toBe('openmetrics');
    expect(negotiateFormat(undefined, ['openmetrics', 'openmetrics'])).toEqual({ error: expect.stringMatching(/^format: given 2 times; give it once/) });
    // A refused value is quoted clipped, its length said, and no lone surrogate goes back out.
    const huge = negotiateFormat(undefined, `\ud800${'x'.repeat(100_000)}`) as { error: string };
    expect(huge.error).toMatch(/^format: "\ufffdx{39}"… \(100001 characters\) is not a format/);
    expect(huge.error.length).toBeLessThan(200);
  });
});

describe('a link\'s live state from its two directions', () => {
  it('is the worse direction, at best stale when one direction never reported, nodata only when neither did', () => {
    expect(linkState('ok', 'warn')).toBe('warn');
    expect(linkState('breach', 'stale')).toBe('breach');
    expect(linkState('warn', 'stale')).toBe('stale');
    expect(linkState('ok', 'nodata')).toBe('stale');
    expect(linkState('nodata', 'breach')).toBe('breach');
    expect(linkState('nodata', 'nodata')).toBe('nodata');
  });
});
