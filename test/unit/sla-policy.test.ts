/**
 * The SLA policy in the topology file: defaults, per-link overrides, and
 * errors that name the line and the rule.
 */
import { describe, expect, it } from 'vitest';
import { ConfigError, loadTopology, parseTopology } from '../../topology/index.js';

const base = (sla: string, linkExtra = '') => `name: policy test
sla:
${sla}
centres:
  - { id: a, name: A, district: D, probe: { host: 127.0.0.1, token_sha256: ${'a'.repeat(64)} } }
  - { id: b, name: B, district: D, probe: { host: 127.0.0.2, token_sha256: ${'b'.repeat(64)} } }
  - { id: c, name: C, district: D, probe: { host: 127.0.0.3, token_sha256: ${'c'.repeat(64)} } }
links:
  - between: [a, b]
    capacity_gbps: 100
${linkExtra}
  - between: [c, a]
    capacity_gbps: 400
`;

describe('SLA policy', () => {
  it('has documented defaults, and every link carries the policy it is judged by', () => {
    const t = parseTopology(base('  coverage_min: 0.99'), 'x.yaml');
    expect(t.sla).toMatchObject({
      rttP99TargetMs: 2, oneWayTargetMs: 1, percentile: 0.99, latencyMinutesMin: 0.999, lossRatioMax: 0.001, availabilityMin: 0.999,
      coverageMin: 0.99, throughputFloorGbps: 95, timezone: 'Asia/Shanghai', engine: 'stamp', finaliseGraceHours: 72, autoFinalise: true,
    });
    expect(t.linkBetween('a', 'c')!.sla).toEqual({
      rttTargetMs: 2, percentile: 0.99, latencyMinutesMin: 0.999, lossRatioMax: 0.001, availabilityMin: 0.999, coverageMin: 0.99,
      capacityGbps: 400, throughputFloorGbps: 95,
    });
  });

  it('applies per-link overrides on top of the defaults', () => {
    const t = parseTopology(
      base('  percentile: 0.95\n  loss_ratio_max: 0.01', '    rtt_target_ms: 1.5\n    percentile: 0.9\n    loss_ratio_max: 0.0005\n    availability_min: 0.99\n    coverage_min: 0.9\n    latency_minutes_min: 0.99\n    throughput_floor_gbps: 90'),
      'x.yaml',
    );
    expect(t.linkBetween('b', 'a')!.sla).toEqual({
      rttTargetMs: 1.5, percentile: 0.9, latencyMinutesMin: 0.99, lossRatioMax: 0.0005, availabilityMin: 0.99, coverageMin: 0.9,
      capacityGbps: 100, throughputFloorGbps: 90,
    });
    expect(t.linkBetween('a', 'c')!.sla).toMatchObject({ percentile: 0.95, lossRatioMax: 0.01 });
    expect(t.linkBetween('a', 'b')!.rttTargetMs).toBe(1.5); // the existing field keeps its meaning
  });

  it('names the line of a percentile the rollup does not keep, and of an unknown time zone', () => {
    const problem = (yaml: string) => {
      try {
        parseTopology(yaml, 'x.yaml');
      } catch (error) {
        return (error as ConfigError).message;
      }
      return 'no error';
    };
    expect(problem(base('  percentile: 0.999'))).toMatch(/x\.yaml:3: sla\.percentile: must be one of 0\.5, 0\.9, 0\.95, 0\.99/);
    expect(problem(base('  timezone: Mars/Olympus'))).toMatch(/x\.yaml:3: sla\.timezone: must be an IANA time zone/);
    expect(problem(base('  finalise_grace_hours: -1'))).toMatch(/sla\.finalise_grace_hours/);
  });

  it("holds every link to the city's capacity promise, and commits a link that declares none to it", () => {
    let message = 'no error';
    try {
      parseTopology(base('  capacity_min_gbps: 200'), 'x.yaml');
    } catch (error) {
      message = (error as ConfigError).message;
    }
    // links[0] (100 Gb/s) is below the promise, links[1] (400) is not; the line is the link's capacity_gbps.
    expect(message).toBe(
      'invalid topology x.yaml:\n  x.yaml:10: links[0].capacity_gbps: 100 Gb/s is below the city\'s promise for every direct link, ' +
        'sla.capacity_min_gbps: 200 Gb/s (raise the link or lower the promise)',
    );
    const t = parseTopology(base('  capacity_min_gbps: 100').replace('    capacity_gbps: 400\n', ''), 'x.yaml');
    expect(t.linkBetween('a', 'c')!.capacityGbps).toBe(100);
    expect(t.linkBetween('a', 'c')!.sla.capacityGbps).toBe(100);
  });

  it('gives every link the one-way target', () => {
    const t = parseTopology(base('  one_way_target_ms: 0.8'), 'x.yaml');
    expect(t.links.map((l) => l.oneWayTargetMs)).toEqual([0.8, 0.8]);
  });

  it('the shipped topologies still load', () => {
    for (const file of ['config/shanghai.yaml', 'config/demo-loopback.yaml']) {
      expect(loadTopology(file, { requireTokens: false }).sla.timezone).toBe('Asia/Shanghai');
    }
  });
});
