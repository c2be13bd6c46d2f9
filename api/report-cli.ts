/**
 * `citymesh report`: fetch a month's SLA report from a running server, and
 * `citymesh report verify`: check a downloaded signed report offline. Only
 * fetch, node:fs and node:crypto: a regulator's laptop needs no database.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { monthProblem } from './month.js';
import { verifySignedDocument } from './report-signing.js';

export interface ReportFlags {
  month: string;
  link?: string;
  format: 'json' | 'csv';
  signed?: boolean;
  minutes?: boolean;
  output?: string;
  server: string;
  tokenFile?: string;
}

function token(tokenFile: string | undefined): string | null {
  if (tokenFile) return readFileSync(tokenFile, 'utf8').trim();
  return process.env.CITYMESH_TOKEN || null;
}

async function get(server: string, path: string, bearer: string | null, accept = 'application/json'): Promise<string> {
  const url = new URL(path, server.endsWith('/') ? server : `${server}/`);
  let response: Response;
  try {
    response = await fetch(url, { headers: { accept, ...(bearer ? { authorization: `Bearer ${bearer}` } : {}) } });
  } catch (error) {
    throw new Error(`cannot reach ${url.origin}: ${(error as Error).cause ? String((error as Error & { cause: unknown }).cause) : (error as Error).message}`);
  }
  const text = await response.text();
  if (!response.ok) {
    let reason = text.slice(0, 300);
    try {
      const body = JSON.parse(text) as { error?: string; reason?: string };
      if (body.reason) reason = `${body.error}: ${body.reason}`;
    } catch { /* not JSON */ }
    throw new Error(`${url.pathname}: HTTP ${response.status}: ${reason}`);
  }
  return text;
}

/** "a~b", or "a-b" resolved against the server's links (centre ids may contain "-"). */
async function resolveLink(flags: ReportFlags, bearer: string | null): Promise<[string, string]> {
  const given = flags.link!;
  if (given.includes('~')) {
    const [a, b] = given.split('~');
    return [a!, b!];
  }
  const { links } = JSON.parse(await get(flags.server, 'v1/links', bearer)) as { links: { a: string; b: string }[] };
  const match = links.filter((l) => `${l.a}-${l.b}` === given || `${l.b}-${l.a}` === given);
  if (match.length !== 1) throw new Error(`--link: "${given}" ${match.length ? 'is ambiguous' : 'matches no link'}; use a~b`);
  return given.startsWith(`${match[0]!.a}-`) ? [match[0]!.a, match[0]!.b] : [match[0]!.b, match[0]!.a];
}

export async function runReport(flags: ReportFlags): Promise<void> {
  const problem = monthProblem(flags.month);
  if (problem) throw new Error(`--month: ${problem}`);
  const bearer = token(flags.tokenFile);
  if (!bearer) throw new Error('no token: pass --token-file (a regulator or operator token) or set CITYMESH_TOKEN');
  let path: string;
  let accept = flags.format === 'csv' ? 'text/csv' : 'application/json';
  if (flags.signed) {
    if (flags.link || flags.format === 'csv') throw new Error('--signed downloads the whole signed month (JSON); it takes no --link or --format csv');
    path = `v1/sla/months/${flags.month}/report`;
    accept = 'application/json';
  } else if (flags.link) {
    const [a, b] = await resolveLink(flags, bearer);
    path = `v1/sla/months/${flags.month}/links/${encodeURIComponent(a)}/${encodeURIComponent(b)}${flags.minutes ? '/minutes' : ''}?format=${flags.format}`;
  } else {
    if (flags.minutes) throw new Error('--minutes needs --link');
    path = `v1/sla/months/${flags.month}?format=${flags.format}`;
  }
  let text = await get(flags.server, path, bearer, accept);
  // The signed document is written byte for byte (its signature covers exactly these bytes); other JSON is indented.
  if (!flags.signed && flags.format === 'json') text = JSON.stringify(JSON.parse(text), null, 2) + '\n';
  if (flags.output) {
    writeFileSync(flags.output, text);
    process.stderr.write(`wrote ${flags.output}\n`);
  } else {
    process.stdout.write(text);
  }
}

export interface VerifyFlags {
  publicKey?: string;
  server?: string;
}

/** Exit code 0 when the document verifies, 1 otherwise; prints what was checked. */
export async function runVerify(file: string, flags: VerifyFlags): Promise<number> {
  if (!flags.publicKey && !flags.server) throw new Error('give the public key: --public-key FILE (pinned, preferred) or --server URL (fetched from GET /v1/sla/public-key)');
  const pem = flags.publicKey ? readFileSync(flags.publicKey, 'utf8') : await get(flags.server!, 'v1/sla/public-key', null, 'application/x-pem-file');
  const text = readFileSync(file, 'utf8');
  const result = verifySignedDocument(text, pem);
  if (!result.ok) {
    process.stdout.write(`NOT VERIFIED: ${file}: ${result.reason}\n`);
    return 1;
  }
  const report = result.report as {
    format?: string; month?: string; network?: string; seq?: number;
    total?: { verdict: string; links: { total: number; met: number; breach: number; insufficientData: number } };
    report?: { total?: { verdict: string } };
  };
  const what = report.format === 'citymesh-sla-amendment/1'
    ? `amendment ${report.seq} of ${report.month}`
    : `SLA report for ${report.month} of "${report.network}"`;
  const summary = report.total
    ? `; network verdict ${report.total.verdict} (${report.total.links.total} links: ${report.total.links.met} met, ${report.total.links.breach} breach, ${report.total.links.insufficientData} insufficient data)`
    : report.report?.total ? `; recomputed network verdict ${report.report.total.verdict}` : '';
  process.stdout.write(`verified: ${what}, signed by ${result.fingerprint}${summary}\n`);
  return 0;
}
