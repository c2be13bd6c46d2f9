// HTTP access to the citymesh API (same origin). Every failure becomes an
// ApiError whose message is fit to show to an operator. Requests name their
// route as the server registers it (`GET /v1/links/:src/:dst/series`), and the
// answer's type is that route's entry in the API contract: no response type
// is written or asserted here.
import type { ApiRoute, ApiRoutes, CentreView, ErrorResponse, LinkView, SeriesResponse } from '../../api/contract.js';
import { authHeaders } from './token.js';

const TIMEOUT_MS = 10_000;
/** Month reports and minute evidence are computed on request: allow them longer. */
const SLA_TIMEOUT_MS = 60_000;
const DOWNLOAD_TIMEOUT_MS = 120_000;

export class ApiError extends Error {
  constructor(
    readonly path: string,
    /** HTTP status, or 0 when the server could not be reached. */
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

function isErrorResponse(v: unknown): v is ErrorResponse {
  return typeof v === 'object' && v !== null && 'error' in v && typeof v.error === 'string' && 'reason' in v && typeof v.reason === 'string';
}

let unauthorizedHint =
  'This dashboard needs an operator token: open the link with #token=… that the server printed (or your administrator gave you).';

/** What a 401 tells the user (each page names the token it needs). */
export function setUnauthorizedHint(text: string): void {
  unauthorizedHint = text;
}

/** Sends one request with the token; network failures and timeouts become ApiError (status 0). */
async function send(method: string, url: string, accept: string, signal: AbortSignal | undefined, timeoutMs: number, body?: unknown): Promise<Response> {
  const path = url.split('?', 1)[0] ?? url; // messages name the endpoint, not every parameter
  const timeout = AbortSignal.timeout(timeoutMs);
  const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
  try {
    const headers = { accept, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...authHeaders() };
    return await fetch(url, { method, headers, signal: combined, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  } catch (err) {
    if (signal?.aborted) throw err; // cancelled by the caller: not an API problem
    const why = timeout.aborted ? `no answer within ${timeoutMs / 1000} s` : 'network error';
    throw new ApiError(path, 0, `API unreachable (${why}) — ${method} ${path}`);
  }
}

/** The ApiError for an answer that is not 2xx (`body`: its parsed JSON, or undefined). */
function failure(method: string, path: string, res: Response, body: unknown): ApiError {
  const detail = isErrorResponse(body) ? `${body.error}: ${body.reason}` : res.statusText;
  if (res.status === 401) return new ApiError(path, 401, unauthorizedHint);
  return new ApiError(path, res.status, `${method} ${path} → HTTP ${res.status} ${detail}`);
}

/** The `:name` parameters of a route's path. */
type ParamNames<P extends string> = P extends `${string}:${infer Name}/${infer Rest}` ? Name | ParamNames<`/${Rest}`> : P extends `${string}:${infer Name}` ? Name : never;
type RouteParams<R extends ApiRoute> = R extends `${string} ${infer Path}` ? { [K in ParamNames<Path>]: string } : never;

export interface CallOptions {
  query?: URLSearchParams;
  /** For POSTs that take one. */
  body?: unknown;
  signal?: AbortSignal | undefined;
  timeoutMs?: number;
}

/** The route's path with its parameters filled in (each URL-encoded). */
function routeUrl<R extends ApiRoute>(route: R, params: RouteParams<R>): { method: string; path: string } {
  const space = route.indexOf(' ');
  const method = route.slice(0, space);
  const template = route.slice(space + 1);
  const values: Record<string, string> = params;
  const path = template.replace(/:([A-Za-z]+)/g, (_m, name: string) => encodeURIComponent(values[name] ?? ''));
  return { method, path };
}

/** Calls one API route; the answer has the type the contract gives that route. */
export async function call<R extends ApiRoute>(route: R, params: RouteParams<R>, options: CallOptions = {}): Promise<ApiRoutes[R]> {
  const { method, path } = routeUrl(route, params);
  const url = options.query ? `${path}?${options.query}` : path;
  const signal = options.signal;
  const timeoutMs = options.timeoutMs ?? TIMEOUT_MS;
  const res = await send(method, url, 'application/json', signal, timeoutMs, options.body);
  let body: ApiRoutes[R];
  try {
    body = await res.json();
  } catch {
    if (signal?.aborted) throw signal.reason;
    const st = `HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''}`;
    throw new ApiError(path, res.status, `${method} ${path} → ${st}, not a JSON answer: is the citymesh API behind this address?`);
  }
  if (!res.ok) throw failure(method, path, res, body);
  return body;
}

/** A file fetched with the token (a plain link cannot send the Authorization header). */
export interface DownloadedFile {
  blob: Blob;
  /** From Content-Disposition, when the server names the file. */
  filename: string | null;
  headers: Headers;
}

/** The filename of a Content-Disposition header (`filename="…"` or `filename*=UTF-8''…`), or null. */
export function dispositionFilename(header: string | null): string | null {
  if (!header) return null;
  const star = /filename\*\s*=\s*UTF-8''([^;]+)/i.exec(header);
  if (star) {
    try {
      return decodeURIComponent(star[1]!.trim());
    } catch {
      // fall through to the plain form
    }
  }
  const plain = /filename\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]+))/i.exec(header);
  const name = plain ? (plain[1]?.replace(/\\(.)/g, '$1') ?? plain[2] ?? null) : null;
  // Never a path: only the last segment, and nothing that could be hidden or empty.
  const base = name?.split(/[\\/]/).pop()?.replace(/^\.+/, '') ?? '';
  return base || null;
}

/** GET `url` with the token and `accept`; the whole body as a Blob. */
export async function fetchFile(url: string, accept: string, signal?: AbortSignal, timeoutMs = DOWNLOAD_TIMEOUT_MS): Promise<DownloadedFile> {
  const path = url.split('?', 1)[0] ?? url;
  const res = await send('GET', url, accept, signal, timeoutMs);
  if (!res.ok) {
    let body: unknown;
    try {
      body = await res.json();
    } catch {
      body = undefined;
    }
    throw failure('GET', path, res, body);
  }
  let blob: Blob;
  try {
    blob = await res.blob();
  } catch (err) {
    if (signal?.aborted) throw err;
    throw new ApiError(path, 0, `GET ${path}: the download broke off (${err instanceof Error ? err.message : String(err)})`);
  }
  return { blob, filename: dispositionFilename(res.headers.get('content-disposition')), headers: res.headers };
}

/** The topology's name (shown in the header: a scaled test fabric says so there) and its centres. */
export function fetchCentres(): Promise<{ name: string; centres: CentreView[] }> {
  return call('GET /v1/centres', {});
}

export async function fetchLinks(): Promise<LinkView[]> {
  return (await call('GET /v1/links', {})).links;
}

export const fetchStatus = () => call('GET /v1/status', {});

export function fetchSeries(src: string, dst: string, from: Date, to: Date, points: number, signal?: AbortSignal): Promise<SeriesResponse> {
  const query = new URLSearchParams({
    from: from.toISOString(),
    to: to.toISOString(),
    points: String(Math.max(1, Math.round(points))),
    engine: 'stamp',
  });
  return call('GET /v1/links/:src/:dst/series', { src, dst }, { query, signal });
}

export const fetchCapacity = (signal?: AbortSignal) => call('GET /v1/capacity', {}, { signal });

/** Throughput tests of the link between x and y (either order), oldest first. */
export function fetchThroughputHistory(x: string, y: string, from: Date, to: Date, signal?: AbortSignal) {
  const query = new URLSearchParams({ from: from.toISOString(), to: to.toISOString() });
  return call('GET /v1/links/:src/:dst/throughput', { src: x, dst: y }, { query, signal });
}

/** Utilisation of the interfaces at `src` that carry the link towards `dst`. */
export function fetchUtilisation(src: string, dst: string, from: Date, to: Date, points: number, signal?: AbortSignal) {
  const query = new URLSearchParams({
    from: from.toISOString(),
    to: to.toISOString(),
    points: String(Math.max(1, Math.round(points))),
  });
  return call('GET /v1/links/:src/:dst/utilisation', { src, dst }, { query, signal });
}

export type ThroughputTestStatus = ApiRoutes['GET /v1/throughput-tests/:id'];

/** Queues a test of the link between x and y (202 with its status). */
export const startThroughputTest = (x: string, y: string) => call('POST /v1/links/:src/:dst/throughput-tests', { src: x, dst: y });

export const fetchThroughputTest = (id: string, signal?: AbortSignal) => call('GET /v1/throughput-tests/:id', { id }, { signal });

// Monthly SLA reports (regulators and operators).

const slaMonthPath = (month: string): string => `/v1/sla/months/${encodeURIComponent(month)}`;

/** The month report's URL; `format: 'csv'` for the documented CSV. */
export function slaMonthUrl(month: string, format?: 'csv'): string {
  return `${slaMonthPath(month)}${format ? `?format=${format}` : ''}`;
}

/** A link's SLA URL: `''` for its detail (breach timeline), `'/minutes'` for the minute evidence. */
export function slaLinkUrl(month: string, a: string, b: string, part: '' | '/minutes' = '', format?: 'csv'): string {
  return `${slaMonthPath(month)}/links/${encodeURIComponent(a)}/${encodeURIComponent(b)}${part}${format ? `?format=${format}` : ''}`;
}

export const slaReportUrl = (month: string): string => `${slaMonthPath(month)}/report`;
export const slaAmendmentUrl = (month: string, seq: number): string => `${slaMonthPath(month)}/amendments/${seq}`;
export const SLA_PUBLIC_KEY_URL = '/v1/sla/public-key';

export const fetchSlaMonths = (signal?: AbortSignal) => call('GET /v1/sla/months', {}, { signal, timeoutMs: SLA_TIMEOUT_MS });

export const fetchSlaMonth = (month: string, signal?: AbortSignal) =>
  call('GET /v1/sla/months/:month', { month }, { signal, timeoutMs: SLA_TIMEOUT_MS });

export const fetchSlaAmendments = (month: string, signal?: AbortSignal) =>
  call('GET /v1/sla/months/:month/amendments', { month }, { signal, timeoutMs: SLA_TIMEOUT_MS });

export const fetchSlaLink = (month: string, a: string, b: string, signal?: AbortSignal) =>
  call('GET /v1/sla/months/:month/links/:a/:b', { month, a, b }, { signal, timeoutMs: SLA_TIMEOUT_MS });

export const fetchSlaMinutes = (month: string, a: string, b: string, signal?: AbortSignal) =>
  call('GET /v1/sla/months/:month/links/:a/:b/minutes', { month, a, b }, { signal, timeoutMs: SLA_TIMEOUT_MS });

/** Diagnostics runs, path changes and maintenance windows of the link between x and y. */
export function fetchAnnotations(x: string, y: string, from: Date, to: Date, signal?: AbortSignal) {
  const query = new URLSearchParams({ from: from.toISOString(), to: to.toISOString() });
  return call('GET /v1/links/:a/:b/annotations', { a: x, b: y }, { query, signal });
}

/** Asks both probes of the link to run diagnostics now (202 with the request id). */
export const startDiagnostics = (x: string, y: string) => call('POST /v1/links/:a/:b/diagnostics', { a: x, b: y });

/** A diagnostics run (by run id) or the runs answering a request (by request id). */
export const fetchDiagnostics = (x: string, y: string, id: string, signal?: AbortSignal) =>
  call('GET /v1/links/:a/:b/diagnostics/:id', { a: x, b: y, id }, { signal });
