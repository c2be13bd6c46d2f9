/**
 * Silence matchers, with Alertmanager's semantics: every matcher must match
 * the alert's labels (a missing label is the empty string); `isEqual: false`
 * negates; a regex matches the whole value (anchored at both ends).
 *
 * Regular expressions are RE2 (the `re2js` port), as in Alertmanager: an
 * automaton, no backtracking, so a match costs time linear in the value for a
 * program whose size RE2 bounds (repeat counts at most 1000, pattern at most
 * MAX_REGEX_LENGTH characters). A pattern written for a backtracking engine
 * (`(a+)+$`, nested quantifiers) is matched in the same linear time; syntax
 * that needs backtracking (backreferences, lookaround) is refused when the
 * silence is created. A JavaScript RegExp froze every server here: a silence is
 * stored and re-evaluated every 15 s on every server, and JavaScript cannot
 * interrupt a running regex.
 */
import { RE2JS } from 're2js';
import type { SilenceMatcher, SilenceRow } from '../../sql/index.js';
import type { Labels } from './fingerprint.js';

export type SilenceState = 'pending' | 'active' | 'expired';

const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
export const MAX_REGEX_LENGTH = 256;
/** Label values citymesh generates are ids and short words; a longer value is compared on its first this many characters. */
const MAX_VALUE_LENGTH = 1024;

/** Compiled patterns by source; bounded, since every evaluation re-reads the silences. */
const compiled = new Map<string, RE2JS | null>();
const MAX_COMPILED = 1000;

/** Why a matcher list cannot be used, or null when it can. */
export function matchersProblem(matchers: SilenceMatcher[]): string | null {
  if (matchers.length === 0) return 'matchers: a silence needs at least one matcher';
  for (const [i, m] of matchers.entries()) {
    if (!LABEL_NAME.test(m.name)) return `matchers[${i}].name: "${m.name}" is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)`;
    if (m.isRegex) {
      if (m.value.length > MAX_REGEX_LENGTH) return `matchers[${i}].value: a regular expression is at most ${MAX_REGEX_LENGTH} characters`;
      try {
        compileAnchored(m.value);
      } catch (error) {
        return `matchers[${i}].value: not a valid regular expression (RE2 syntax, as in Alertmanager: ${(error as Error).message})`;
      }
    }
  }
  // As in Alertmanager: a silence that would also match an alert without any labels would silence everything.
  if (matchers.every((m) => matcherMatches(m, ''))) {
    return 'matchers: at least one matcher must not match the empty string (this silence would silence every alert)';
  }
  return null;
}

function compileAnchored(pattern: string): RE2JS {
  return RE2JS.compile(`^(?:${pattern})$`);
}

/** The compiled pattern, or null for one RE2 cannot compile (stored before RE2 was used): it matches nothing. */
function regexFor(pattern: string): RE2JS | null {
  let re = compiled.get(pattern);
  if (re === undefined) {
    try {
      re = pattern.length > MAX_REGEX_LENGTH ? null : compileAnchored(pattern);
    } catch {
      re = null;
    }
    if (compiled.size >= MAX_COMPILED) compiled.delete(compiled.keys().next().value!);
    compiled.set(pattern, re);
  }
  return re;
}

function matcherMatches(m: SilenceMatcher, value: string): boolean {
  let hit: boolean;
  if (m.isRegex) {
    const re = regexFor(m.value);
    if (re === null) return false; // an unusable matcher silences nothing, negated or not
    hit = re.matches(value.slice(0, MAX_VALUE_LENGTH));
  } else {
    hit = m.value === value;
  }
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
