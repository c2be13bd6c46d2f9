/**
 * Topology texts for configuration tests: the smallest valid one, and the
 * message a refused one gets.
 */
import { expect } from 'vitest';
import { ConfigError, hashToken, parseTopology } from '../../topology/index.js';

/**
 * Centres a and b (probes on 127.0.0.2 and .3) and the link between them.
 * `head` goes before `centres:` (e.g. a `probing:` section), `linkExtra`
 * under the link (lines indented four spaces), `tail` at the end.
 */
export function twoCentreTopology(parts: { head?: string; linkExtra?: string; tail?: string } = {}): string {
  return `name: t
${parts.head ?? ''}centres:
  - id: a
    name: A
    district: D
    probe: { host: 127.0.0.2, token_sha256: ${hashToken('x')} }
  - id: b
    name: B
    district: D
    probe: { host: 127.0.0.3, token_sha256: ${hashToken('y')} }
links:
  - between: [a, b]
    capacity_gbps: 100
${parts.linkExtra ?? ''}${parts.tail ?? ''}`;
}

/** The ConfigError message `text` is refused with; fails the test when it is accepted. */
export function topologyProblems(text: string, file = 'bad.yaml', env: NodeJS.ProcessEnv = {}): string {
  try {
    parseTopology(text, file, { env });
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error('expected the topology to be refused');
}
