// HTTP access to the citymesh API (same origin). Every failure becomes an
// ApiError whose message is fit to show to an operator.
import type {
  CentreView,
  ErrorResponse,
  LinkView,
  SeriesResponse,
  StatusResponse,
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

async function getJson<T>(url: string, signal?: AbortSignal): Promise<T> {
  const path = url.split('?', 1)[0] ?? url; // messages name the endpoint, not every parameter
  const timeout = AbortSignal.timeout(TIMEOUT_MS);
  const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
  let res: Response;
  try {
    res = await fetch(url, { headers: { accept: 'application/json', ...authHeaders() }, signal: combined });
  } catch (err) {
    if (signal?.aborted) throw err; // cancelled by the caller: not an API problem
    const why = timeout.aborted ? `no answer within ${TIMEOUT_MS / 1000} s` : 'network error';
    throw new ApiError(path, 0, `API unreachable (${why}) — GET ${path}`);
  }
  let body: unknown;
  try {
    body = await res.json();
  } catch {
    const st = `HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''}`;
    throw new ApiError(path, res.status, `GET ${path} → ${st}, not a JSON answer: is the citymesh API behind this address?`);
  }
  if (!res.ok) {
    const detail = isErrorResponse(body) ? `${body.error}: ${body.reason}` : res.statusText;
    if (res.status === 401) {
      throw new ApiError(path, 401, 'This dashboard needs an operator token: open the link with #token=… that the server printed (or your administrator gave you).');
    }
    throw new ApiError(path, res.status, `GET ${path} → HTTP ${res.status} ${detail}`);
  }
  return body as T;
}

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
  const path = `/v1/links/${encodeURIComponent(src)}/${encodeURIComponent(dst)}/series?${q}`;
  return getJson<SeriesResponse>(path, signal);
}
