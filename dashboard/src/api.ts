// HTTP access to the citymesh API (same origin). Every failure becomes an
// ApiError whose message is fit to show to an operator.
import type {
  AnnotationsResponse,
  DiagnosticsDetailResponse,
  DiagnosticsRequestResponse,
  CapacityResponse,
  CentreView,
  ErrorResponse,
  LinkView,
  SeriesResponse,
  SlaAmendmentsResponse,
  SlaLinkDetailResponse,
  SlaMinutesResponse,
  SlaMonthResponse,
  SlaMonthsResponse,
  StatusResponse,
  ThroughputHistoryResponse,
  UtilisationResponse,
  ThroughputTestStatus,
} from '../../api/contract.js';
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
  return typeof v === 'object' && v !== null && typeof (v as ErrorResponse).error === 'string';
}

let unauthorizedHint =
  'This dashboard needs an operator token: open the link with #token=… that the server printed (or your administrator gave you).';

/** What a 401 tells the user (each page names the token it needs). */
export function setUnauthorizedHint(text: string): void {
  unauthorizedHint = text;
}

/** Sends one request with the token; network failures and timeouts become ApiError (status 0). */
async function send(method: 'GET' | 'POST', url: string, accept: string, signal: AbortSignal | undefined, timeoutMs: number): Promise<Response> {
  const path = url.split('?', 1)[0] ?? url; // messages name the endpoint, not every parameter
  const timeout = AbortSignal.timeout(timeoutMs);
  const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
  try {
    return await fetch(url, { method, headers: { accept, ...authHeaders() }, signal: combined });
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

async function requestJson<T>(method: 'GET' | 'POST', url: string, signal?: AbortSignal, timeoutMs = TIMEOUT_MS): Promise<T> {
  const path = url.split('?', 1)[0] ?? url;
  const res = await send(method, url, 'application/json', signal, timeoutMs);
  let body: unknown;
  try {
    body = await res.json();
  } catch {
    if (signal?.aborted) throw signal.reason;
    const st = `HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''}`;
    throw new ApiError(path, res.status, `${method} ${path} → ${st}, not a JSON answer: is the citymesh API behind this address?`);
  }
  if (!res.ok) throw failure(method, path, res, body);
  return body as T;
}

const getJson = <T>(url: string, signal?: AbortSignal, timeoutMs?: number): Promise<T> => requestJson<T>('GET', url, signal, timeoutMs);

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

const linkPath = (x: string, y: string): string => `/v1/links/${encodeURIComponent(x)}/${encodeURIComponent(y)}`;

/** The topology's name (shown in the header: a scaled test fabric says so there) and its centres. */
export async function fetchCentres(): Promise<{ name: string; centres: CentreView[] }> {
  return await getJson<{ name: string; centres: CentreView[] }>('/v1/centres');
}

export async function fetchLinks(): Promise<LinkView[]> {
  return (await getJson<{ links: LinkView[] }>('/v1/links')).links;
}

export function fetchStatus(): Promise<StatusResponse> {
  return getJson<StatusResponse>('/v1/status');
}

export function fetchSeries(
  src: string,
  dst: string,
  from: Date,
  to: Date,
  points: number,
  signal?: AbortSignal,
): Promise<SeriesResponse> {
  const q = new URLSearchParams({
    from: from.toISOString(),
    to: to.toISOString(),
    points: String(Math.max(1, Math.round(points))),
    engine: 'stamp',
  });
  return getJson<SeriesResponse>(`${linkPath(src, dst)}/series?${q}`, signal);
}

export function fetchCapacity(signal?: AbortSignal): Promise<CapacityResponse> {
  return getJson<CapacityResponse>('/v1/capacity', signal);
}

/** Throughput tests of the link between x and y (either order), oldest first. */
export function fetchThroughputHistory(x: string, y: string, from: Date, to: Date, signal?: AbortSignal): Promise<ThroughputHistoryResponse> {
  const q = new URLSearchParams({ from: from.toISOString(), to: to.toISOString() });
  return getJson<ThroughputHistoryResponse>(`${linkPath(x, y)}/throughput?${q}`, signal);
}

/** Utilisation of the interfaces at `src` that carry the link towards `dst`. */
export function fetchUtilisation(
  src: string,
  dst: string,
  from: Date,
  to: Date,
  points: number,
  signal?: AbortSignal,
): Promise<UtilisationResponse> {
  const q = new URLSearchParams({
    from: from.toISOString(),
    to: to.toISOString(),
    points: String(Math.max(1, Math.round(points))),
  });
  return getJson<UtilisationResponse>(`${linkPath(src, dst)}/utilisation?${q}`, signal);
}

export type { ThroughputTestStatus };

/** Queues a test of the link between x and y (202 with its status). */
export function startThroughputTest(x: string, y: string): Promise<ThroughputTestStatus> {
  return requestJson<ThroughputTestStatus>('POST', `${linkPath(x, y)}/throughput-tests`);
}

export function fetchThroughputTest(testId: string, signal?: AbortSignal): Promise<ThroughputTestStatus> {
  return getJson<ThroughputTestStatus>(`/v1/throughput-tests/${encodeURIComponent(testId)}`, signal);
}

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

export function fetchSlaMonths(signal?: AbortSignal): Promise<SlaMonthsResponse> {
  return getJson<SlaMonthsResponse>('/v1/sla/months', signal, SLA_TIMEOUT_MS);
}

export function fetchSlaMonth(month: string, signal?: AbortSignal): Promise<SlaMonthResponse> {
  return getJson<SlaMonthResponse>(slaMonthUrl(month), signal, SLA_TIMEOUT_MS);
}

export function fetchSlaAmendments(month: string, signal?: AbortSignal): Promise<SlaAmendmentsResponse> {
  return getJson<SlaAmendmentsResponse>(`${slaMonthPath(month)}/amendments`, signal, SLA_TIMEOUT_MS);
}

export function fetchSlaLink(month: string, a: string, b: string, signal?: AbortSignal): Promise<SlaLinkDetailResponse> {
  return getJson<SlaLinkDetailResponse>(slaLinkUrl(month, a, b), signal, SLA_TIMEOUT_MS);
}

export function fetchSlaMinutes(month: string, a: string, b: string, signal?: AbortSignal): Promise<SlaMinutesResponse> {
  return getJson<SlaMinutesResponse>(slaLinkUrl(month, a, b, '/minutes'), signal, SLA_TIMEOUT_MS);
}

/** Diagnostics runs, path changes and maintenance windows of the link between x and y. */
export function fetchAnnotations(x: string, y: string, from: Date, to: Date, signal?: AbortSignal): Promise<AnnotationsResponse> {
  const q = new URLSearchParams({ from: from.toISOString(), to: to.toISOString() });
  return getJson<AnnotationsResponse>(`${linkPath(x, y)}/annotations?${q}`, signal);
}

/** Asks both probes of the link to run diagnostics now (202 with the request id). */
export function startDiagnostics(x: string, y: string): Promise<DiagnosticsRequestResponse> {
  return requestJson<DiagnosticsRequestResponse>('POST', `${linkPath(x, y)}/diagnostics`);
}

/** A diagnostics run (by run id) or the runs answering a request (by request id). */
export function fetchDiagnostics(x: string, y: string, id: string, signal?: AbortSignal): Promise<DiagnosticsDetailResponse> {
  return getJson<DiagnosticsDetailResponse>(`${linkPath(x, y)}/diagnostics/${encodeURIComponent(id)}`, signal);
}
