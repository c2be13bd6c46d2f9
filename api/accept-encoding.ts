/**
 * Whether a request's Accept-Encoding lets us answer with gzip (RFC 9110
 * §12.5.3): `gzip` (or `x-gzip`) listed with a non-zero q, or `*` with a
 * non-zero q and gzip not refused by name. Anything malformed counts as not
 * acceptable for that entry; nothing here can throw, and the header is read
 * once, in O(its length) (Node caps a header block at 16 KiB).
 */
export function acceptsGzip(header: string | undefined): boolean {
  if (!header) return false;
  let named: boolean | null = null;
  let star = false;
  for (const entry of header.split(',')) {
    const [token = '', ...params] = entry.split(';');
    const coding = token.trim().toLowerCase();
    if (coding !== 'gzip' && coding !== 'x-gzip' && coding !== '*') continue;
    let q = 1;
    for (const param of params) {
      const [key = '', value = ''] = param.split('=');
      if (key.trim().toLowerCase() !== 'q') continue;
      // A qvalue is 0 to 1 with at most three decimals; anything else is not a weight we honour.
      q = /^\s*(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)\s*$/.test(value) ? Number(value) : 0;
    }
    if (coding === '*') star = q > 0;
    else named = (named ?? false) || q > 0;
  }
  return named ?? star;
}
