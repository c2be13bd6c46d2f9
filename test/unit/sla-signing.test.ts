/**
 * Signed reports: canonical JSON is deterministic and whitespace-free; a
 * signed document verifies untouched and fails with any one byte altered;
 * the key is created once with mode 0600 and reloaded unchanged.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { canonicalJson, loadOrCreateSigningKey, ReportSigner, verifySignedDocument } from '../../api/report-signing.js';

const dir = mkdtempSync(join(tmpdir(), 'citymesh-sla-signing-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('canonical JSON', () => {
  it('sorts keys at every depth, has no whitespace, and writes numbers the shortest way', () => {
    expect(canonicalJson({ b: 1, a: [3, { d: 0.1, c: null }], é: 'x', A: true })).toBe('{"A":true,"a":[3,{"c":null,"d":0.1}],"b":1,"é":"x"}');
    expect(canonicalJson({ x: 1e21, y: 1.5e-7, z: -0, w: 0.9984953703703704 })).toBe('{"w":0.9984953703703704,"x":1e+21,"y":1.5e-7,"z":0}');
    expect(canonicalJson({ s: 'line\nquote"tab\t' })).toBe('{"s":"line\\nquote\\"tab\\t"}');
    expect(canonicalJson({ gone: undefined, kept: 1 })).toBe('{"kept":1}');
  });

  it('is the same for the same value however it was built', () => {
    const one = { month: '2026-09', links: [{ id: 'a~b', value: 1 / 3 }], total: { verdict: 'met' } };
    const two = JSON.parse(JSON.stringify({ total: { verdict: 'met' }, links: [{ value: 1 / 3, id: 'a~b' }], month: '2026-09' }));
    expect(canonicalJson(two)).toBe(canonicalJson(one));
  });

  it('refuses values JSON cannot carry', () => {
    expect(() => canonicalJson({ v: Number.NaN })).toThrow(/NaN/);
    expect(() => canonicalJson({ v: Infinity })).toThrow(/Infinity/);
  });
});

describe('signing and verifying', () => {
  const { privateKey } = generateKeyPairSync('ed25519');
  const signer = new ReportSigner(privateKey);
  const report = {
    format: 'citymesh-sla-report/1', month: '2026-09', network: 'Shanghai, "test"',
    total: { verdict: 'breach', links: { total: 2, met: 1, breach: 1, insufficientData: 0 } },
    links: [{ id: 'alfa~bravo', value: 0.9984953703703704, breachMinutes: 65 }],
  };
  const { document, reportSha256 } = signer.sign(report);

  it('verifies an untouched document and names the key', () => {
    const result = verifySignedDocument(document, signer.publicKeyPem);
    expect(result).toMatchObject({ ok: true, fingerprint: signer.fingerprint, report });
    expect(signer.fingerprint).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(reportSha256).toMatch(/^[0-9a-f]{64}$/);
    expect(verifySignedDocument(document + '\n', signer.publicKeyPem).ok).toBe(true); // a saved file's final newline
  });

  it('fails when any single byte is altered', () => {
    const bytes = Buffer.from(document, 'utf8');
    let checked = 0;
    for (let i = 0; i < bytes.length; i++) {
      for (const delta of [1, -1]) {
        const altered = Buffer.from(bytes);
        altered[i] = (altered[i]! + delta + 256) % 256;
        const result = verifySignedDocument(altered.toString('utf8'), signer.publicKeyPem);
        expect(result.ok, `byte ${i} ${String.fromCharCode(bytes[i]!)} -> ${delta}`).toBe(false);
        checked++;
      }
    }
    expect(checked).toBe(bytes.length * 2);
  });

  it('fails for a figure changed in place, naming why', () => {
    const altered = document.replace('"breachMinutes":65', '"breachMinutes":64');
    expect(altered).not.toBe(document);
    expect(verifySignedDocument(altered, signer.publicKeyPem)).toEqual({
      ok: false, reason: 'the signature does not match the report: the report was altered or signed by another key',
    });
  });

  it('fails for a re-serialised file, another key, or another algorithm', () => {
    expect(verifySignedDocument(JSON.stringify(JSON.parse(document), null, 2), signer.publicKeyPem)).toMatchObject({ ok: false, reason: expect.stringMatching(/canonical/) });
    const other = new ReportSigner(generateKeyPairSync('ed25519').privateKey);
    expect(verifySignedDocument(document, other.publicKeyPem)).toMatchObject({ ok: false, reason: expect.stringMatching(/signed by key sha256:/) });
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    expect(verifySignedDocument(document, rsa)).toMatchObject({ ok: false, reason: expect.stringMatching(/not Ed25519/) });
    // A valid signature moved onto another report is refused.
    const forged = canonicalJson({ ...JSON.parse(document), report: { ...report, month: '2026-10' } });
    expect(verifySignedDocument(forged, signer.publicKeyPem).ok).toBe(false);
  });
});

describe('the signing key file', () => {
  it('is created on first use with mode 0600 in a 0700 directory, and reloaded unchanged', () => {
    const file = join(dir, 'data-keys', 'report-signing.pem');
    const first = loadOrCreateSigningKey(file);
    expect(first.created).toBe(true);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'data-keys')).mode & 0o777).toBe(0o700);
    expect(readFileSync(file, 'utf8')).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    const second = loadOrCreateSigningKey(file);
    expect(second.created).toBe(false);
    expect(second.signer.fingerprint).toBe(first.signer.fingerprint);
  });

  it('warns about a key other users can read, and refuses a key that is not Ed25519', () => {
    const loose = join(dir, 'loose.pem');
    writeFileSync(loose, generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o644 });
    const warnings: string[] = [];
    loadOrCreateSigningKey(loose, (m) => warnings.push(m));
    expect(warnings.join()).toMatch(/readable by other users.*chmod 600/);
    const rsa = join(dir, 'rsa.pem');
    writeFileSync(rsa, generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    expect(() => loadOrCreateSigningKey(rsa)).toThrow(/must be Ed25519/);
  });
});
