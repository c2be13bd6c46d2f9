/**
 * Who a bearer token belongs to. Tokens are never stored: the topology holds
 * their sha-256, and every comparison is constant-time over every candidate,
 * so timing says nothing about which token (or how much of one) matched.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Topology } from './model.js';

export type Role = 'probe' | 'operator' | 'regulator' | 'anonymous';

export interface Principal {
  role: Role;
  /** Centre id for probes, the configured name for people. */
  name: string;
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

function sameHash(aHex: string, bHex: string): boolean {
  const a = Buffer.from(aHex, 'hex');
  const b = Buffer.from(bHex, 'hex');
  return a.length === b.length && a.length > 0 && timingSafeEqual(a, b);
}

/** Whether the token is one of the listed (several while a token is rotated); every candidate is compared. */
export function tokenMatches(token: string, sha256Hexes: readonly string[]): boolean {
  return findMatch(token, [{ value: true, sha256s: sha256Hexes }]) ?? false;
}

/** Every candidate hash of every principal is compared, match or not. */
function findMatch<T>(token: string, candidates: { value: T; sha256s: readonly string[] }[]): T | null {
  const hashed = hashToken(token);
  let found: T | null = null;
  for (const c of candidates) {
    for (const sha256 of c.sha256s) {
      if (sameHash(hashed, sha256) && found === null) found = c.value;
    }
  }
  return found;
}

export function findCentreByToken(topology: Topology, token: string): string | null {
  return findMatch(token, topology.centres.map((c) => ({ value: c.id, sha256s: c.probe.tokenSha256s })));
}

/** The principal a bearer token authenticates, or anonymous. */
export function authenticate(topology: Topology, token: string | null): Principal {
  if (!token) return { role: 'anonymous', name: 'anonymous' };
  const people = findMatch<Principal>(token, [
    ...topology.access.operators.map((p) => ({ value: { role: 'operator' as const, name: p.name }, sha256s: p.tokenSha256s })),
    ...topology.access.regulators.map((p) => ({ value: { role: 'regulator' as const, name: p.name }, sha256s: p.tokenSha256s })),
  ]);
  if (people) return people;
  const centre = findCentreByToken(topology, token);
  if (centre) return { role: 'probe', name: centre };
  return { role: 'anonymous', name: 'anonymous' };
}
