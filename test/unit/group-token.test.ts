import { describe, expect, it } from 'vitest';
import { groupToken } from '../../collector/batch-ingest.js';

describe('groupToken', () => {
  it('a group of one keeps its batch\'s own token (deduplicated as a lone batch always was, also across servers)', () => {
    expect(groupToken(['alpha/b-1/0123456789abcdef'])).toBe('alpha/b-1/0123456789abcdef');
  });

  it('the same members give the same token in any order; other members, or one more, give another', () => {
    const members = ['alpha/b-1/aaaa', 'beta/b-7/bbbb', 'alpha/b-2/cccc'];
    const token = groupToken(members);
    expect(groupToken([...members].reverse())).toBe(token);
    expect(groupToken(['alpha/b-1/aaaa', 'beta/b-7/bbbb', 'alpha/b-2/dddd'])).not.toBe(token);
    expect(groupToken([...members, 'gamma/b-1/eeee'])).not.toBe(token);
    expect(groupToken(members.slice(0, 2))).not.toBe(token);
    // Not a concatenation a member could reproduce: a fixed-length hash under its own prefix.
    expect(token).toMatch(/^group\/3\/[0-9a-f]{32}$/);
  });
});
