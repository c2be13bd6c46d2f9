/**
 * Alertmanager's alert fingerprint (prometheus/common model.LabelSet.Fingerprint):
 * 64-bit FNV-1a over the label names in byte order, each name and value
 * followed by the byte 0xff, written as 16 hex digits. Same labels, same
 * fingerprint, on every server and across restarts, so it can key the stored
 * state; receivers that already deduplicate Alertmanager alerts by
 * fingerprint treat ours the same way.
 */
const OFFSET = 0xcbf29ce484222325n;
const PRIME = 0x100000001b3n;
const MASK = 0xffffffffffffffffn;
const SEPARATOR = 0xff;

export type Labels = Record<string, string>;

export function fingerprintValue(labels: Labels): bigint {
  const names = Object.keys(labels).sort(compareBytes);
  let hash = OFFSET;
  const add = (byte: number) => {
    hash ^= BigInt(byte);
    hash = (hash * PRIME) & MASK;
  };
  for (const name of names) {
    for (const byte of Buffer.from(name, 'utf8')) add(byte);
    add(SEPARATOR);
    for (const byte of Buffer.from(labels[name]!, 'utf8')) add(byte);
    add(SEPARATOR);
  }
  return hash;
}

export function fingerprint(labels: Labels): string {
  return fingerprintValue(labels).toString(16).padStart(16, '0');
}

/** Go's sort.Strings order: by UTF-8 bytes (JavaScript's default sort compares UTF-16 units). */
function compareBytes(x: string, y: string): number {
  return Buffer.compare(Buffer.from(x, 'utf8'), Buffer.from(y, 'utf8'));
}
