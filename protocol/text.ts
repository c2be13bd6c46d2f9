/**
 * Text the store can hold. A JavaScript string may contain a lone UTF-16
 * surrogate (half of a pair, e.g. text cut mid-character); it has no UTF-8
 * form, ClickHouse refuses the row, and a probe would retry that batch
 * forever. Every input (probe messages, API bodies, the topology file) is
 * checked here at validation, naming the field; text the probe itself cuts is
 * cut on character boundaries.
 */

/** A lone surrogate: in a `u` regex, paired surrogates are one astral code point and do not match. */
const LONE_SURROGATE = /\p{Cs}/u;

export function isStorableText(s: string): boolean {
  return !LONE_SURROGATE.test(s);
}

/** Why `s` cannot be stored, or null. */
export function textProblem(s: string): string | null {
  const m = LONE_SURROGATE.exec(s);
  if (!m) return null;
  const unit = m[0].charCodeAt(0).toString(16).toUpperCase();
  return `holds a lone UTF-16 surrogate (U+${unit} at index ${m.index}), which has no UTF-8 form and cannot be stored`;
}

/** One step down a parsed JSON value; a chain of them is a path, built only when it is reported. */
interface Crumb {
  parent: Crumb | null;
  key: string | number;
}

function pathOf(crumb: Crumb | null): (string | number)[] {
  const path: (string | number)[] = [];
  for (let c = crumb; c; c = c.parent) path.push(c.key);
  return path.reverse();
}

/**
 * The path of the first string (value or key) in a parsed JSON value that
 * cannot be stored, with the reason; null when all can. Iterative, so an
 * attacker's nesting depth costs no stack, and linear: each step keeps a link
 * to its parent instead of a copy of the path (a 100,000-deep array would
 * otherwise cost 5 billion copies and freeze the server).
 */
export function unstorableText(value: unknown): { field: string; path: (string | number)[]; problem: string } | null {
  const stack: [unknown, Crumb | null][] = [[value, null]];
  const found = (crumb: Crumb | null, problem: string) => {
    const path = pathOf(crumb);
    return { field: formatField(path), path, problem };
  };
  while (stack.length > 0) {
    const [v, crumb] = stack.pop()!;
    if (typeof v === 'string') {
      const problem = textProblem(v);
      if (problem) return found(crumb, problem);
    } else if (Array.isArray(v)) {
      for (let i = v.length - 1; i >= 0; i--) stack.push([v[i], { parent: crumb, key: i }]);
    } else if (v !== null && typeof v === 'object') {
      const entries = Object.entries(v as Record<string, unknown>);
      for (let i = entries.length - 1; i >= 0; i--) {
        const [k, child] = entries[i]!;
        const step = { parent: crumb, key: k };
        const problem = textProblem(k);
        if (problem) return found(step, `key ${problem}`);
        stack.push([child, step]);
      }
    }
  }
  return null;
}

/** `samples[0].dst`, the way every error names a field. */
function formatField(path: (string | number)[]): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('') || 'value';
}

/** At most `max` UTF-16 units, never ending in half a pair; lone surrogates already present become U+FFFD. */
export function clipText(s: string, max: number): string {
  let out = s.length > max ? s.slice(0, max) : s;
  const last = out.charCodeAt(out.length - 1);
  if (out.length < s.length && last >= 0xd800 && last <= 0xdbff) out = out.slice(0, -1);
  return out.replace(/\p{Cs}/gu, '\ufffd');
}
