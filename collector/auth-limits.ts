/**
 * Limits on failed authentication, shared by every door that checks a token
 * (HTTP bearer tokens, the /v1/live upgrade, probe hellos on /v1/probe).
 *
 * Three budgets, each a token bucket drained only by failures:
 *   per address     one client guessing;
 *   per credential  many addresses guessing one target (the centre a hello
 *                   names; for bearer tokens, the token presented, so a client
 *                   stuck on a revoked token is slowed too);
 *   global          a guesser spread over many addresses and targets.
 * The decision is taken BEFORE the token is checked: while a budget is empty
 * the answer is 429 (close 4429 for WebSockets) with Retry-After, whatever the
 * token, so an attacker learns nothing from requests beyond the budget.
 *
 * Lockout of legitimate clients: addresses that authenticated successfully in
 * the last day are exempt from the per-credential and global budgets (only
 * their own address budget applies), so a guesser elsewhere cannot lock a
 * working probe or operator out.
 */
import { createHash } from 'node:crypto';

export interface Budget {
  /** Failures per second allowed, sustained. */
  perSecond: number;
  /** Failures allowed at once. */
  burst: number;
}

export interface FailedAuthLimits {
  perAddress: Budget;
  perCredential: Budget;
  global: Budget;
}

export const defaultFailedAuthLimits: FailedAuthLimits = {
  perAddress: { perSecond: 0.5, burst: 20 },
  perCredential: { perSecond: 0.1, burst: 10 },
  global: { perSecond: 2, burst: 100 },
};

export type AuthLimitScope = 'address' | 'credential' | 'global';

export interface AuthRefusal {
  scope: AuthLimitScope;
  /** Whole seconds until the budget holds one failure again (at least 1). */
  retryAfterS: number;
}

const MAX_KEYS = 10_000;
const KNOWN_GOOD_MS = 24 * 3600_000;

class FailureBucket {
  private tokens: number;
  private last: number;

  constructor(private readonly budget: Budget, now: number) {
    this.tokens = budget.burst;
    this.last = now;
  }

  private refill(now: number): void {
    this.tokens = Math.min(this.budget.burst, this.tokens + ((now - this.last) / 1000) * this.budget.perSecond);
    this.last = now;
  }

  retryAfterS(now: number): number | null {
    this.refill(now);
    if (this.tokens >= 1) return null;
    return Math.max(1, Math.ceil((1 - this.tokens) / this.budget.perSecond));
  }

  consume(now: number): void {
    this.refill(now);
    this.tokens = Math.max(0, this.tokens - 1);
  }

  full(now: number): boolean {
    this.refill(now);
    return this.tokens >= this.budget.burst;
  }
}

export class FailedAuthLimiter {
  private readonly addresses = new Map<string, FailureBucket>();
  private readonly credentials = new Map<string, FailureBucket>();
  private readonly global: FailureBucket;
  private readonly knownGood = new Map<string, number>();
  private readonly refusedCounts: Record<AuthLimitScope, number> = { address: 0, credential: 0, global: 0 };
  private failures = 0;

  constructor(
    readonly limits: FailedAuthLimits = defaultFailedAuthLimits,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.global = new FailureBucket(limits.global, now());
  }

  /** The key of a presented bearer token: never the token itself. */
  static tokenKey(token: string): string {
    return `token:${createHash('sha256').update(token, 'utf8').digest('hex').slice(0, 32)}`;
  }

  /** Null when an attempt from `address` against `credential` may be checked, else why not and for how long. */
  check(address: string, credential: string): AuthRefusal | null {
    const t = this.now();
    const trusted = this.isKnownGood(address, t);
    const byAddress = this.addresses.get(address)?.retryAfterS(t);
    let refusal: AuthRefusal | null = byAddress ? { scope: 'address', retryAfterS: byAddress } : null;
    if (!refusal && !trusted) {
      const byCredential = this.credentials.get(credential)?.retryAfterS(t);
      if (byCredential) refusal = { scope: 'credential', retryAfterS: byCredential };
      else {
        const byGlobal = this.global.retryAfterS(t);
        if (byGlobal) refusal = { scope: 'global', retryAfterS: byGlobal };
      }
    }
    if (refusal) this.refusedCounts[refusal.scope]++;
    return refusal;
  }

  failed(address: string, credential: string): void {
    const t = this.now();
    this.failures++;
    bucketIn(this.addresses, address, this.limits.perAddress, t).consume(t);
    bucketIn(this.credentials, credential, this.limits.perCredential, t).consume(t);
    this.global.consume(t);
  }

  succeeded(address: string): void {
    if (this.knownGood.size >= MAX_KEYS && !this.knownGood.has(address)) this.knownGood.delete(this.knownGood.keys().next().value!);
    this.knownGood.delete(address);
    this.knownGood.set(address, this.now());
  }

  stats(): { failures: number; refused: Record<AuthLimitScope, number> } {
    return { failures: this.failures, refused: { ...this.refusedCounts } };
  }

  private isKnownGood(address: string, t: number): boolean {
    const at = this.knownGood.get(address);
    return at !== undefined && t - at < KNOWN_GOOD_MS;
  }
}

function bucketIn(map: Map<string, FailureBucket>, key: string, budget: Budget, t: number): FailureBucket {
  let bucket = map.get(key);
  if (!bucket) {
    if (map.size >= MAX_KEYS) {
      // Forget keys whose budget has refilled (they hold no state worth keeping), else the oldest.
      for (const [k, b] of map) if (b.full(t)) map.delete(k);
      if (map.size >= MAX_KEYS) map.delete(map.keys().next().value!);
    }
    bucket = new FailureBucket(budget, t);
    map.set(key, bucket);
  }
  return bucket;
}
