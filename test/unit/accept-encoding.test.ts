import { describe, expect, it } from 'vitest';
import { acceptsGzip } from '../../api/accept-encoding.js';

describe('acceptsGzip (RFC 9110 Accept-Encoding)', () => {
  it.each([
    ['gzip', true],
    ['gzip, deflate', true], // what Node's fetch sends
    ['gzip, deflate, br, zstd', true], // what Chromium sends
    ['x-gzip', true],
    ['br;q=1.0, gzip;q=0.5', true],
    ['*', true],
    ['*;q=0.3', true],
    ['\tGZIP ; Q=0.001', true],
    ['gzip;q=1.000', true],
    ['gzip;level=9', true], // unknown parameters ignored
    ['gzip;q=0, gzip;q=1', true], // listed twice: any non-zero weight
  ] as const)('%j: gzip', (header, ok) => expect(acceptsGzip(header)).toBe(ok));

  it.each([
    [undefined, false],
    ['', false],
    ['identity', false],
    ['br, deflate', false],
    ['gzip;q=0', false],
    ['gzip;q=0.000', false],
    ['*;q=0.5, gzip;q=0', false], // refused by name beats the wildcard
    ['*;q=0', false],
    ['gzip;q=2', false], // not a qvalue
    ['gzip;q=-1', false],
    ['gzip;q=0.0001', false], // four decimals: not a qvalue
    ['gzip;q=', false],
    ['gzip;q=nan', false],
    ['gzip;q=1e0', false],
    ['gzipx', false],
    [';;;,,,=;q', false],
    [`${'x,'.repeat(8000)}gzip;q=abc`, false],
  ] as const)('%j: not gzip', (header, ok) => expect(acceptsGzip(header)).toBe(ok));
});
