/**
 * Serves the embedded store over ClickHouse's own HTTP interface, on loopback,
 * so several citymesh processes on one machine share one data directory: the
 * engine binds a directory to one process, and this process is it. Every
 * other process (servers behind a load balancer in a rehearsal, the lease and
 * live-feed tests) points `CLICKHOUSE_URL` here and uses the official client
 * exactly as it would against a ClickHouse server. Production runs a real
 * ClickHouse server or cluster instead; this is not a database server, only
 * the slice of the HTTP protocol that @clickhouse/client speaks:
 *
 *   POST /?query_id&database&<settings>&param_<name>=<text>[&query=<sql>]
 *        body: the SQL, or (with ?query=) the data of an INSERT
 *   GET  /ping                        -> "Ok.\n"
 *   GET  /?query=SELECT 1             (the client's ping)
 *   errors: non-2xx, X-ClickHouse-Exception-Code, body "Code: N. DB::Exception: …"
 *
 * Parameters stay in their text form, exactly as ClickHouse receives them
 * over HTTP; the engine parses them by the type in the `{name:Type}` slot.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { isLoopbackHost } from './engine-node.js';
import { openStore, type Store } from './store.js';

export interface EmbeddedStoreServerOptions {
  dataDir: string;
  /** Loopback only (127.0.0.0/8 or ::1): there is no authentication. */
  host?: string;
  /** 0 picks a free port; ClickHouse's own HTTP port is 8123. */
  port?: number;
}

export interface EmbeddedStoreServer {
  /** http://host:port, the value for CLICKHOUSE_URL. */
  url: string;
  port: number;
  store: Store;
  close(): Promise<void>;
}

/** URL parameters that are part of the HTTP protocol, not ClickHouse settings. */
const PROTOCOL_PARAMS = new Set([
  'query', 'query_id', 'database', 'session_id', 'session_timeout', 'session_check', 'user', 'password', 'role',
  'default_format', 'compress', 'decompress', 'quota_key', 'buffer_size', 'wait_end_of_query',
]);

/** ClickHouse's default URI limit (http_max_uri_size): long parameter lists travel in the URL. */
const MAX_URI_BYTES = 1024 * 1024;


export async function serveEmbeddedStore(options: EmbeddedStoreServerOptions): Promise<EmbeddedStoreServer> {
  const host = options.host ?? '127.0.0.1';
  if (!isLoopbackHost(host)) {
    throw new Error(`--host ${host}: the embedded store is served on loopback only (it has no authentication); use a ClickHouse server for other hosts`);
  }
  const store = await openStore({ dataDir: options.dataDir });
  const server = createServer({ maxHeaderSize: MAX_URI_BYTES + 16 * 1024 }, (request, response) => {
    handle(store, request, response).catch((error: unknown) => {
      if (!response.headersSent) sendError(response, 500, '1001', 'STD_EXCEPTION', (error as Error).message);
      else response.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => {
      void store.close();
      reject(error.code === 'EADDRINUSE' ? new Error(`port ${options.port} on ${host} is already in use; pass --port`) : error);
    });
    server.listen(options.port ?? 8123, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://${host.includes(':') ? `[${host}]` : host}:${port}`,
    port,
    store,
    close: async () => {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await store.close();
    },
  };
}

async function handle(store: Store, request: IncomingMessage, response: ServerResponse): Promise<void> {
  const url = new URL(request.url ?? '/', 'http://store');
  if (url.pathname === '/ping' || (url.pathname === '/' && request.method === 'GET' && !url.searchParams.has('query'))) {
    response.writeHead(200, { 'Content-Type': 'text/plain; charset=UTF-8' }).end('Ok.\n');
    return;
  }
  if (url.pathname !== '/') {
    sendError(response, 404, '1001', 'UNKNOWN', `no handler for ${url.pathname}`);
    return;
  }
  if (request.method !== 'POST' && request.method !== 'GET') {
    sendError(response, 405, '1001', 'UNKNOWN', `method ${request.method} is not supported`);
    return;
  }
  const database = url.searchParams.get('database');
  if (database && database !== 'default') {
    sendError(response, 400, '81', 'UNKNOWN_DATABASE', `the embedded store has one database, "default"; got "${database}"`);
    return;
  }
  const body = await readBody(request);
  const queryInUrl = url.searchParams.get('query');
  const sql = queryInUrl ?? body;
  const values = queryInUrl !== null && body.length > 0 ? body : undefined;
  if (sql.trim().length === 0) {
    sendError(response, 400, '62', 'SYNTAX_ERROR', 'Empty query');
    return;
  }
  const queryParams: Record<string, string | null> = {};
  const settings: Record<string, string | number> = {};
  const slotTypes = placeholderTypes(sql);
  for (const [key, value] of url.searchParams) {
    if (key.startsWith('param_')) {
      const name = key.slice('param_'.length);
      const bound = fromHttpText(value, slotTypes.get(name));
      if (bound instanceof Error) {
        sendError(response, 400, '456', 'BAD_QUERY_PARAMETER', `query parameter '${name}': ${bound.message}`);
        return;
      }
      queryParams[name] = bound;
    } else if (!PROTOCOL_PARAMS.has(key) && !key.startsWith('http_')) settings[key] = /^-?\d+(\.\d+)?$/.test(value) ? Number(value) : value;
  }
  settings.default_format = url.searchParams.get('default_format') ?? 'TabSeparated';
  const queryId = url.searchParams.get('query_id') ?? undefined;
  let result;
  try {
    result = await store.client.exec({
      query: sql,
      ...(values !== undefined ? { values } : {}),
      query_params: queryParams,
      clickhouse_settings: settings,
      ...(queryId ? { query_id: queryId } : {}),
    } as Parameters<Store['client']['exec']>[0]);
  } catch (error) {
    const e = error as Error & { code?: string; type?: string; cause?: Error };
    const code = e.code && /^\d+$/.test(e.code) ? e.code : '1001';
    sendError(response, code === '62' ? 400 : 500, code, e.type ?? 'UNKNOWN', e.message);
    return;
  }
  response.writeHead(200, {
    'Content-Type': 'text/plain; charset=UTF-8',
    'X-ClickHouse-Query-Id': result.query_id,
    'X-ClickHouse-Summary': JSON.stringify(result.summary ?? {}),
    'X-ClickHouse-Format': String(settings.default_format),
  });
  await pipeline(result.stream, response);
}

/** `{name:Type}` slots of a statement, by name. */
function placeholderTypes(sql: string): Map<string, string> {
  const types = new Map<string, string>();
  for (const m of sql.matchAll(/\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*:\s*([^{}]+?)\s*\}/g)) types.set(m[1]!, m[2]!);
  return types;
}

const UNESCAPE: Record<string, string> = { '\\': '\\', t: '\t', n: '\n', r: '\r', '0': '\0', b: '\b', f: '\f', "'": "'" };

/**
 * HTTP carries parameters in ClickHouse's text (TSV-escaped) form; the
 * engine's binder takes a JS value and writes that form itself. For string
 * slots the text is unescaped so the binder's escaping restores it exactly;
 * other types (numbers, dates, arrays) are passed through when their text has
 * no escapes, which is the only form the binder reproduces byte for byte.
 */
function fromHttpText(text: string, type: string | undefined): string | null | Error {
  const base = (type ?? 'String').replace(/^(LowCardinality|Nullable)\((.*)\)$/, '$2').replace(/^(LowCardinality|Nullable)\((.*)\)$/, '$2');
  if (text === '\\N' && (type ?? '').includes('Nullable')) return null;
  if (/^(String|FixedString\(\d+\)|Enum(8|16)?\(.*\)|UUID|IPv[46])$/.test(base)) {
    return text.replace(/\\(.)/gs, (_, c: string) => UNESCAPE[c] ?? c);
  }
  if (text.includes('\\')) return new Error(`a ${type} value with backslash escapes cannot be passed through the embedded store's HTTP interface`);
  return text;
}

async function readBody(request: IncomingMessage): Promise<string> {
  const source = request.headers['content-encoding'] === 'gzip' ? request.pipe(createGunzip()) : request;
  const chunks: Buffer[] = [];
  for await (const chunk of source) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function sendError(response: ServerResponse, status: number, code: string, type: string, message: string): void {
  response.writeHead(status, { 'Content-Type': 'text/plain; charset=UTF-8', 'X-ClickHouse-Exception-Code': code });
  response.end(`Code: ${code}. DB::Exception: ${message}. (${type}) (version embedded chdb)\n`);
}
