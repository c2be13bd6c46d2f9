/**
 * Silence matchers, with Alertmanager's semantics: every matcher must match
 * the alert's labels (a missing label is the empty string); `isEqual: false`
 * negates; a regex matches the whole value (anchored at both ends).
 */
import type { SilenceMatcher, SilenceRow } from '../../sql/index.js';
import type { Labels } from './fingerprint.js';

export type SilenceState = 'pending' | 'active' | 'expired';

const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const MAX_REGEX_LENGTH = 256;

/** Why a matcher list cannot be used, or null when it can. */
export function matchersProblem(matchers: SilenceMatcher[]): string | null {
  if (matchers.length === 0) return 'matchers: a silence needs at least one matcher';
  for (const [i, m] of matchers.entries()) {
    if (!LABEL_NAME.test(m.name)) return `matchers[${i}].name: "${m.name}" is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)`;
    if (m.isRegex) {
      if (m.value.length > MAX_REGEX_LENGTH) return `matchers[${i}].value: a regular expression is at most ${MAX_REGEX_LENGTH} characters`;
      try {
        compile(m.value);
      } catch (error) {
        return `matchers[${i}].value: not a valid regular expression (${(error as Error).message})`;
      }
    }
  }
  // As in Alertmanager: a silence that would also match an alert without any labels would silence everything.
  if (matchers.every((m) => matcherMatches(m, ''))) {
    return 'matchers: at least one matcher must not match the empty string (this silence would silence every alert)';
  }
  return null;
}

function compile(pattern: string): RegExp {
  return new RegExp(`^(?:${pattern})$`, 'u');
}

function matcherMatches(m: SilenceMatcher, value: string): boolean {
  const hit = m.isRegex ? compile(m.value).test(value) : m.value === value;
  return m.isEqual ? hit : !hit;
}

export function silenceMatches(matchers: SilenceMatcher[], labels: Labels): boolean {
  return matchers.every((m) => matcherMatches(m, labels[m.name] ?? ''));
}

export function silenceState(s: SilenceRow, nowMs: number): SilenceState {
  if (s.endsAtMs <= nowMs) return 'expired';
  return s.startsAtMs > nowMs ? 'pending' : 'active';
}

/** Ids of the silences active at `nowMs` that match `labels`. */
export function silencedBy(all: SilenceRow[], labels: Labels, nowMs: number): string[] {
  return all.filter((s) => silenceState(s, nowMs) === 'active' && silenceMatches(s.matchers, labels)).map((s) => s.id);
}
