import { describe, expect, it } from 'vitest';
import { hashToken, loadTopology, parseTopology } from '../../topology/index.js';
import { planFor } from '../../collector/index.js';
import { topologyProblems, twoCentreTopology } from '../helpers/topology-yaml.js';

const problems = (text: string, file = 'bad.yaml'): string => topologyProblems(text, file);

const valid = twoCentreTopology();

describe('topology files', () => {
  it('ships a Shanghai full mesh of the five named centres', () => {
    const topology = loadTopology('config/shanghai.yaml', { requireTokens: false });
    expect(topology.centres.map((c) => c.id)).toEqual(['lingang', 'jinshan', 'songjiang', 'pudong', 'xuhui']);
    expect(topology.links).toHaveLength(10);
    for (const c of topology.centres) expect(topology.peersOf(c.id)).toHaveLength(4);
    expect(topology.links.every((l) => l.capacityGbps >= 100)).toBe(true);
    expect(topology.sla.timezone).toBe('Asia/Shanghai');
  });

  it('ships a loopback demo whose probes all live on 127.0.0.x', () => {
    const topology = loadTopology('config/demo-loopback.yaml', { requireTokens: false });
    expect(topology.centres.length).toBeGreaterThanOrEqual(2);
    for (const c of topology.centres) {
      expect(c.probe.host).toMatch(/^127\.0\.0\.\d+$/);
      expect(c.probe.sourceAddress).toBe(c.probe.host);
    }
  });

  it('builds each probe a plan to every linked centre', () => {
    const plan = planFor(parseTopology(valid, 'ok.yaml'), 'a');
    expect(plan.tasks.map((t) => t.id)).toEqual(['stamp:a>b', 'icmp:a>b']);
    expect(plan.tasks[0]).toMatchObject({ host: '127.0.0.3', port: 862, dst: 'b' });
  });

  it('names file, path, line and problem for a wrong type', () => {
    const message = problems(valid.replace('capacity_gbps: 100', 'capacity_gbps: fast'));
    expect(message).toContain('bad.yaml:13: links[0].capacity_gbps:');
    expect(message).toMatch(/expected number/);
  });

  it('refuses YAML syntax errors with a line', () => {
    expect(problems('name: [unclosed\ncentres: []\n')).toMatch(/bad\.yaml:\d+: \(top level\): YAML syntax/);
  });

  it('refuses unknown keys, unknown centres in links, self links, duplicates and bad cron', () => {
    expect(problems(valid.replace('name: t', 'name: t\ncolour: blue'))).toMatch(/unknown key\(s\) "colour"/);
    expect(problems(valid.replace('between: [a, b]', 'between: [a, z]'))).toMatch(/links\[0\]\.between\[1\]: unknown centre "z"/);
    expect(problems(valid.replace('between: [a, b]', 'between: [a, a]'))).toMatch(/two different centres/);
    expect(problems(valid.replace('- id: b', '- id: a'))).toMatch(/centres\[1\]\.id: duplicate centre id "a"/);
    expect(problems(`${valid}probing:\n  stamp:\n    schedule: "every second"\n`)).toMatch(/probing\.stamp\.schedule: must be a valid 6-field cron/);
  });

  it('requires the environment variable a token_env names, unless asked not to', () => {
    const text = valid.replace(`token_sha256: ${hashToken('x')}`, 'token_env: TOKEN_A');
    expect(problems(text)).toMatch(/centres\[0\]\.probe\.token_env: environment variable TOKEN_A is not set/);
    const withEnv = parseTopology(text, 'ok.yaml', { env: { TOKEN_A: 'secret' } });
    expect(withEnv.centre('a')!.probe.tokenSha256s).toEqual([hashToken('secret')]);
    expect(parseTopology(text, 'ok.yaml', { env: {}, requireTokens: false }).centre('a')!.probe.tokenSha256s).toEqual([]);
  });

  it('reports a missing file by name', () => {
    expect(() => loadTopology('config/nope.yaml')).toThrow(/config\/nope\.yaml.*cannot read file/s);
  });
});
