/**
 * Token rotation in the topology: token_sha256 and token_env take one value
 * (the shipped form) or a list, may be combined, and every listed token
 * authenticates its principal; mistakes are refused with file, line and path.
 */
import { describe, expect, it } from 'vitest';
import { authenticate, hashToken, parseTopology } from '../../topology/index.js';
import { topologyProblems } from '../helpers/topology-yaml.js';

const topologyWith = (centreA: string, operator = `token_sha256: ${hashToken('op')}`) => `name: t
centres:
  - id: a
    name: A
    district: D
    probe:
      host: 127.0.0.2
${centreA.replace(/^/gm, '      ')}
  - id: b
    name: B
    district: D
    probe: { host: 127.0.0.3, token_sha256: ${hashToken('b')} }
links:
  - between: [a, b]
    capacity_gbps: 100
access:
  operators:
    - name: noc
      ${operator}
`;

const problems = (text: string, env: NodeJS.ProcessEnv = {}): string => topologyProblems(text, 'rot.yaml', env);

describe('token rotation in the topology', () => {
  it('keeps the single-token forms valid', () => {
    const bySha = parseTopology(topologyWith(`token_sha256: ${hashToken('old')}`), 'rot.yaml');
    expect(bySha.centre('a')!.probe.tokenSha256s).toEqual([hashToken('old')]);
    const byEnv = parseTopology(topologyWith('token_env: TOKEN_A'), 'rot.yaml', { env: { TOKEN_A: 'old' } });
    expect(byEnv.centre('a')!.probe.tokenSha256s).toEqual([hashToken('old')]);
  });

  it('accepts every listed token while a token is rotated, in any combination of the two keys', () => {
    const text = topologyWith(`token_sha256: [${hashToken('old')}, ${hashToken('new')}]\ntoken_env: [TOKEN_NEXT]`, `token_sha256: [${hashToken('op')}, ${hashToken('op2')}]`);
    const topology = parseTopology(text, 'rot.yaml', { env: { TOKEN_NEXT: 'next' } });
    for (const token of ['old', 'new', 'next']) expect(authenticate(topology, token)).toEqual({ role: 'probe', name: 'a' });
    for (const token of ['op', 'op2']) expect(authenticate(topology, token)).toEqual({ role: 'operator', name: 'noc' });
    expect(authenticate(topology, 'retired')).toEqual({ role: 'anonymous', name: 'anonymous' });
    expect(authenticate(topology, 'b')).toEqual({ role: 'probe', name: 'b' });
  });

  it('refuses an empty list, a wrong type, an unset variable in a list, with the line and path', () => {
    expect(problems(topologyWith('token_sha256: []'))).toMatch(/rot\.yaml:8: centres\[0\]\.probe\.token_sha256: must list at least one sha-256/);
    expect(problems(topologyWith('token_sha256: 42'))).toMatch(/centres\[0\]\.probe\.token_sha256: must be the sha-256 \(64 hex\) of a token, or a list of them/);
    expect(problems(topologyWith(`token_sha256: [${hashToken('old')}, nothex]`))).toMatch(/centres\[0\]\.probe\.token_sha256\[1\]: must be 64 lower-case hex/);
    expect(problems(topologyWith('token_env: [TOKEN_A, TOKEN_B]'), { TOKEN_A: 'x' })).toMatch(/centres\[0\]\.probe\.token_env\[1\]: environment variable TOKEN_B is not set/);
  });

  it('refuses the same token listed twice, or given to two principals', () => {
    expect(problems(topologyWith(`token_sha256: [${hashToken('old')}, ${hashToken('old')}]`))).toMatch(/centres\[0\]\.probe\.token_sha256\[1\]: the same token is listed twice/);
    expect(problems(topologyWith(`token_sha256: [${hashToken('old')}, ${hashToken('b')}]`))).toMatch(
      /centres\[1\]\.probe\.token_sha256: the same token is already given to centres\[0\]\.probe; every principal needs its own/,
    );
    expect(problems(topologyWith(`token_sha256: ${hashToken('old')}`, 'token_env: OPERATOR'), { OPERATOR: 'old' })).toMatch(
      /access\.operators\[0\]\.token_env: the same token is already given to centres\[0\]\.probe/,
    );
  });
});
