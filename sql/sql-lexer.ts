/**
 * Just enough of ClickHouse's lexical grammar to rewrite DDL safely: names,
 * keywords, string literals, numbers, punctuation, with comments and white
 * space skipped. Positions point into the original text, so a rewrite can
 * copy every untouched span byte for byte. Parsing proper is left to the real
 * parser: the cluster tests feed every rewritten statement to ClickHouse.
 */

export interface Token {
  /** word: keyword or bare name; name: `quoted` or "quoted" identifier. */
  type: 'word' | 'name' | 'string' | 'number' | 'punct';
  /** The token as written. */
  text: string;
  /** Names and strings unquoted; words as written. */
  value: string;
  start: number;
  end: number;
}

export function lex(sql: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < sql.length) {
    const c = sql[i]!;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (sql.startsWith('--', i)) {
      const eol = sql.indexOf('\n', i);
      i = eol < 0 ? sql.length : eol;
      continue;
    }
    if (sql.startsWith('/*', i)) {
      const close = sql.indexOf('*/', i + 2);
      if (close < 0) throw new Error(`unterminated /* comment at offset ${i}`);
      i = close + 2;
      continue;
    }
    const start = i;
    if (c === "'" || c === '`' || c === '"') {
      let value = '';
      i++;
      for (;;) {
        if (i >= sql.length) throw new Error(`unterminated ${c === "'" ? 'string' : 'quoted name'} at offset ${start}`);
        const d = sql[i]!;
        if (d === '\\' && i + 1 < sql.length) {
          value += sql[i + 1];
          i += 2;
        } else if (d === c && sql[i + 1] === c) {
          value += c;
          i += 2;
        } else if (d === c) {
          i++;
          break;
        } else {
          value += d;
          i++;
        }
      }
      tokens.push({ type: c === "'" ? 'string' : 'name', text: sql.slice(start, i), value, start, end: i });
      continue;
    }
    let type: Token['type'];
    if (/[A-Za-z_]/.test(c)) {
      while (i < sql.length && /[A-Za-z0-9_$]/.test(sql[i]!)) i++;
      type = 'word';
    } else if (/[0-9]/.test(c)) {
      while (i < sql.length && /[A-Za-z0-9_.]/.test(sql[i]!)) i++;
      type = 'number';
    } else {
      i++;
      type = 'punct';
    }
    const text = sql.slice(start, i);
    tokens.push({ type, text, value: text, start, end: i });
  }
  return tokens;
}

/** Is `token` the keyword `keyword` (case-insensitive, unquoted)? */
export function isKeyword(token: Token | undefined, keyword: string): boolean {
  return token?.type === 'word' && token.value.toUpperCase() === keyword;
}

/** Do the tokens from `at` spell these keywords in order? */
export function isKeywords(tokens: readonly Token[], at: number, ...keywords: string[]): boolean {
  return keywords.every((keyword, k) => isKeyword(tokens[at + k], keyword));
}

/** A table, column or database name: a bare word or a quoted identifier. */
export function isName(token: Token | undefined): token is Token {
  return token?.type === 'word' || token?.type === 'name';
}

/** Index of the bracket closing the one at `open` (round or square). */
export function closingBracket(tokens: readonly Token[], open: number): number {
  let depth = 0;
  for (let k = open; k < tokens.length; k++) {
    const text = tokens[k]!.text;
    if (tokens[k]!.type !== 'punct') continue;
    if (text === '(' || text === '[') depth++;
    else if (text === ')' || text === ']') {
      depth--;
      if (depth === 0) return k;
    }
  }
  throw new Error(`unbalanced "${tokens[open]?.text}" at offset ${tokens[open]?.start}`);
}

/** Token ranges [from, to) between top-level commas in tokens[from, to). */
export function splitTopLevel(tokens: readonly Token[], from: number, to: number): Array<[number, number]> {
  const ranges: Array<[number, number]> = [];
  let depth = 0;
  let itemStart = from;
  for (let k = from; k < to; k++) {
    const token = tokens[k]!;
    if (token.type !== 'punct') continue;
    if (token.text === '(' || token.text === '[') depth++;
    else if (token.text === ')' || token.text === ']') depth--;
    else if (token.text === ',' && depth === 0) {
      ranges.push([itemStart, k]);
      itemStart = k + 1;
    }
  }
  if (itemStart < to) ranges.push([itemStart, to]);
  return ranges;
}

/** Index of the first top-level token in [from, to) that is one of the keywords, or -1. */
export function findTopLevelKeyword(tokens: readonly Token[], from: number, to: number, keywords: readonly string[]): number {
  let depth = 0;
  for (let k = from; k < to; k++) {
    const token = tokens[k]!;
    if (token.type === 'punct' && (token.text === '(' || token.text === '[')) depth++;
    else if (token.type === 'punct' && (token.text === ')' || token.text === ']')) depth--;
    else if (depth === 0 && keywords.some((keyword) => isKeyword(token, keyword))) return k;
  }
  return -1;
}

/** The original text of tokens[from, to). */
export function textOf(sql: string, tokens: readonly Token[], from: number, to: number): string {
  if (to <= from) return '';
  return sql.slice(tokens[from]!.start, tokens[to - 1]!.end);
}
