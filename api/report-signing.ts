/**
 * Signed SLA reports: canonical JSON, the server's Ed25519 key, and the
 * offline verifier `citymesh report verify` runs. Only node:crypto and
 * node:fs, so verifying a report loads neither the database nor the server.
 *
 * Canonical JSON (RFC 8785 "JCS" for the values a report holds): object keys
 * sorted by UTF-16 code units, no whitespace, strings and numbers exactly as
 * ECMAScript JSON.stringify writes them (shortest round-trip numbers), no
 * NaN/Infinity, properties whose value is undefined left out.
 *
 * A signed document is the canonical JSON of
 *   { algorithm: "Ed25519", publicKeyFingerprint, report, signature }
 * where signature = base64(Ed25519(UTF-8 bytes of canonical(report))) and
 * publicKeyFingerprint = "sha256:" + hex(SHA-256(DER SubjectPublicKeyInfo)).
 * The file as served is exactly those bytes, so changing any byte of it makes
 * verification fail (the verifier also refuses a file that is not canonical).
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

export const SIGNATURE_ALGORITHM = 'Ed25519';

export function canonicalJson(value: unknown): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(value)) throw new Error(`canonical JSON has no representation for ${value}`);
      return JSON.stringify(value);
    case 'string':
      return JSON.stringify(value);
    case 'object': {
      if (Array.isArray(value)) return `[${value.map((v) => (v === undefined ? 'null' : canonicalJson(v))).join(',')}]`;
      const entries = Object.entries(value as Record<string, unknown>)
        .filter(([, v]) => v !== undefined)
        .sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0));
      return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
    }
    default:
      throw new Error(`canonical JSON has no representation for a ${typeof value}`);
  }
}

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text, 'utf8').digest('hex');
}

/** "sha256:<hex>" of the key's DER SubjectPublicKeyInfo. */
export function publicKeyFingerprint(key: KeyObject): string {
  const publicKey = key.type === 'private' ? createPublicKey(key) : key;
  return `sha256:${createHash('sha256').update(publicKey.export({ type: 'spki', format: 'der' })).digest('hex')}`;
}

export interface SignedDocument<T = unknown> {
  algorithm: typeof SIGNATURE_ALGORITHM;
  publicKeyFingerprint: string;
  report: T;
  signature: string;
}

export class ReportSigner {
  readonly publicKey: KeyObject;
  readonly publicKeyPem: string;
  readonly fingerprint: string;

  constructor(private readonly privateKey: KeyObject) {
    if (privateKey.asymmetricKeyType !== 'ed25519') {
      throw new Error(`the report signing key must be Ed25519 (got ${privateKey.asymmetricKeyType ?? privateKey.type})`);
    }
    this.publicKey = createPublicKey(privateKey);
    this.publicKeyPem = this.publicKey.export({ type: 'spki', format: 'pem' }).toString();
    this.fingerprint = publicKeyFingerprint(this.publicKey);
  }

  /**
   * The signed document's exact bytes (canonical JSON) and their SHA-256: the
   * hash of the file a regulator downloads, so `sha256sum` on it gives the same.
   */
  sign(report: unknown): { document: string; reportSha256: string } {
    const body = canonicalJson(report);
    const signature = sign(null, Buffer.from(body, 'utf8'), this.privateKey).toString('base64');
    const envelope: SignedDocument = { algorithm: SIGNATURE_ALGORITHM, publicKeyFingerprint: this.fingerprint, report, signature };
    const document = canonicalJson(envelope);
    return { document, reportSha256: sha256Hex(document) };
  }
}

/**
 * The server's signing key: read from `file`, or generated (Ed25519) on first
 * start and written there with mode 0600 in a directory of mode 0700.
 */
export function loadOrCreateSigningKey(file: string, warn: (message: string) => void = () => {}): { signer: ReportSigner; created: boolean } {
  if (!existsSync(file)) {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    const { privateKey } = generateKeyPairSync('ed25519');
    const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    try {
      writeFileSync(file, pem, { mode: 0o600, flag: 'wx' });
      chmodSync(file, 0o600);
      return { signer: new ReportSigner(privateKey), created: true };
    } catch (error) {
      // Another process created it first: use theirs.
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw new Error(`cannot write the report signing key ${file}: ${(error as Error).message}`);
    }
  }
  const mode = statSync(file).mode & 0o777;
  if (mode & 0o077) warn(`report signing key ${file} is readable by other users (mode ${mode.toString(8)}); run: chmod 600 ${file}`);
  let key: KeyObject;
  try {
    key = createPrivateKey(readFileSync(file));
  } catch (error) {
    throw new Error(`cannot read the report signing key ${file}: ${(error as Error).message.split('\n')[0]}`);
  }
  return { signer: new ReportSigner(key), created: false };
}

export type VerifyResult =
  | { ok: true; report: unknown; fingerprint: string }
  | { ok: false; reason: string };

/**
 * Check a downloaded signed document against a public key (PEM). Every
 * check names what failed: not JSON, not canonical, wrong algorithm, a
 * different key, or a signature that does not match the report.
 */
export function verifySignedDocument(text: string, publicKeyPem: string): VerifyResult {
  let key: KeyObject;
  try {
    key = createPublicKey(publicKeyPem);
  } catch (error) {
    return { ok: false, reason: `the public key is not a PEM public key: ${(error as Error).message.split('\n')[0]}` };
  }
  if (key.asymmetricKeyType !== 'ed25519') return { ok: false, reason: `the public key is ${key.asymmetricKeyType}, not Ed25519` };
  const body = text.endsWith('\n') ? text.slice(0, -1) : text;
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch (error) {
    return { ok: false, reason: `not JSON: ${(error as Error).message}` };
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return { ok: false, reason: 'not a signed report (expected a JSON object)' };
  const doc = parsed as Record<string, unknown>;
  const keys = Object.keys(doc).sort().join(',');
  if (keys !== 'algorithm,publicKeyFingerprint,report,signature') {
    return { ok: false, reason: `not a signed report: expected keys algorithm, publicKeyFingerprint, report, signature; found ${keys || 'none'}` };
  }
  let canonical: string;
  try {
    canonical = canonicalJson(doc);
  } catch (error) {
    return { ok: false, reason: (error as Error).message };
  }
  if (canonical !== body) return { ok: false, reason: 'the file is not in canonical form (it was re-serialised or altered)' };
  if (doc.algorithm !== SIGNATURE_ALGORITHM) return { ok: false, reason: `unsupported algorithm ${JSON.stringify(doc.algorithm)} (expected ${SIGNATURE_ALGORITHM})` };
  const fingerprint = publicKeyFingerprint(key);
  if (doc.publicKeyFingerprint !== fingerprint) {
    return { ok: false, reason: `signed by key ${String(doc.publicKeyFingerprint)}, but the public key given is ${fingerprint}` };
  }
  if (typeof doc.signature !== 'string') return { ok: false, reason: 'signature is not a string' };
  const signature = Buffer.from(doc.signature, 'base64');
  if (signature.length !== 64 || signature.toString('base64') !== doc.signature) return { ok: false, reason: 'signature is not 64 bytes of base64' };
  const valid = verify(null, Buffer.from(canonicalJson(doc.report), 'utf8'), key, signature);
  if (!valid) return { ok: false, reason: 'the signature does not match the report: the report was altered or signed by another key' };
  return { ok: true, report: doc.report, fingerprint };
}
