// HTTP access to the citymesh API (same origin). Every failure becomes an
// ApiError whose message is fit to show to an operator.
import type {
  CapacityResponse,
  CentreView,
  ErrorResponse,
  LinkView,
  SeriesResponse,
  StatusResponse,
  ThroughputHistoryResponse,
  UtilisationResponse,
  ThroughputTestStatus,
} from '../../api/contract.js';
import { authHeaders } from './token.js';

const TIMEOUT_MS = 10_000;

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

async function requestJson<T>(method: 'GET' | 'POST', url: string, signal?: AbortSignal): Promise<T> {
  const path = url.split('?', 1)[0] ?? url; // messages name the endpoint, not every parameter
  const timeout = AbortSignal.timeout(TIMEOUT_MS);
  const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
  let res: Response;
  try {
    res = await fetch(url, { method, headers: { accept: 'application/json', ...authHeaders() }, signal: combined });
  } catch (err) {
    if (signal?.aborted) throw err; // cancelled by the caller: not an API problem
    const why = timeout.aborted ? `no answer within ${TIMEOUT_MS / 1000} s` : 'network error';
    throw new ApiError(path, 0, `API unreachable (${why}) — ${method} ${path}`);
  }
  let body: unknown;
  try {
    body = await res.json();
  } catch {
    const st = `HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''}`;
    throw new ApiError(path, res.status, `${method} ${path} → ${st}, not a JSON answer: is the citymesh API behind this address?`);
  }
  if (!res.ok) {
    const detail = isErrorResponse(body) ? `${body.error}: ${body.reason}` : res.statusText;
    if (res.status === 401) {
      throw new ApiError(path, 401, 'This dashboard needs an operator token: open the link with #token=… that the server printed (or your administrator gave you).');
    }
    throw new ApiError(path, res.status, `${method} ${path} → HTTP ${res.status} ${detail}`);
  }
  return body as T;
}

const getJson = <T>(url: string, signal?: AbortSignal): Promise<T> => requestJson<T>('GET', url, signal);

const linkPath = (x: string, y: string): string => `/v1/links/${encodeURIComponent(x)}/${encodeURIComponent(y)}`;

export async function fetchCentres(): Promise<CentreView[]> {
  return (await getJson<{ centres: CentreView[] }>('/v1/centres')).centres;
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
