/**
 * Who a bearer token belongs to. Tokens are never stored: the topology holds
 * their sha-256, and every comparison is constant-time over every candidate,
 * so timing says nothing about which token (or how much of one) matched.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Topology } from './topology/index.js';

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

export function tokenMatches(token: string, sha256Hex: string | null): boolean {
  return sha256Hex !== null && sameHash(hashToken(token), sha256Hex);
}

/** Every candidate is compared, match or not. */
function findMatch<T>(token: string, candidates: { value: T; sha256: string | null }[]): T | null {
  const hashed = hashToken(token);
  let found: T | null = null;
  for (const c of candidates) {
    if (c.sha256 !== null && sameHash(hashed, c.sha256) && found === null) found = c.value;
  }
  return found;
}

export function findCentreByToken(topology: Topology, token: string): string | null {
  return findMatch(token, topology.centres.map((c) => ({ value: c.id, sha256: c.probe.tokenSha256 })));
}

/** The principal a bearer token authenticates, or anonymous. */
export function authenticate(topology: Topology, token: string | null): Principal {
  if (!token) return { role: 'anonymous', name: 'anonymous' };
  const people = findMatch<Principal>(token, [
    ...topology.access.operators.map((p) => ({ value: { role: 'operator' as const, name: p.name }, sha256: p.tokenSha256 })),
    ...topology.access.regulators.map((p) => ({ value: { role: 'regulator' as const, name: p.name }, sha256: p.tokenSha256 })),
  ]);
  if (people) return people;
  const centre = findCentreByToken(topology, token);
  if (centre) return { role: 'probe', name: centre };
  return { role: 'anonymous', name: 'anonymous' };
}
