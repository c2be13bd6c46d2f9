/**
 * A strict RFC 4180 reader for tests (no CSV package is a dependency): every
 * record ends with CRLF, a field is either plain (no comma, quote, CR or LF)
 * or quoted with inner quotes doubled, and every record has the header's
 * number of fields. Anything else throws, naming the offset.
 */
export function parseRfc4180(text: string): string[][] {
  const records: string[][] = [];
  let i = 0;
  while (i < text.length) {
    const record: string[] = [];
    for (;;) {
      let field = '';
      if (text[i] === '"') {
        i++;
        for (;;) {
          if (i >= text.length) throw new Error(`unterminated quoted field at offset ${i}`);
          if (text[i] === '"') {
            if (text[i + 1] === '"') {
              field += '"';
              i += 2;
              continue;
            }
            i++;
            break;
          }
          field += text[i++];
        }
      } else {
        while (i < text.length && text[i] !== ',' && text[i] !== '\r' && text[i] !== '\n') {
          if (text[i] === '"') throw new Error(`quote inside an unquoted field at offset ${i}`);
          field += text[i++];
        }
      }
      record.push(field);
      if (text[i] === ',') {
        i++;
        continue;
      }
      if (text[i] === '\r' && text[i + 1] === '\n') {
        i += 2;
        break;
      }
      throw new Error(`expected "," or CRLF at offset ${i}, found ${JSON.stringify(text.slice(i, i + 10))}`);
    }
    if (records.length > 0 && record.length !== records[0]!.length) {
      throw new Error(`record ${records.length + 1} has ${record.length} fields; the header has ${records[0]!.length}`);
    }
    records.push(record);
  }
  return records;
}
