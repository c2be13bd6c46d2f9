/**
 * Byte-for-byte stream forwarders between a TCP endpoint and a Unix socket.
 *
 * They are the only bridge between the fabric and the root namespace, and it
 * needs no address there: inside the noc namespace a forwarder listens on a
 * Unix socket in the filesystem (which all namespaces share) and connects to
 * the server on 127.0.0.1; in the root namespace a forwarder listens on
 * 127.0.0.1 and connects to that Unix socket. Loopback and a file: no
 * interface, address or route is added to the root namespace. WebSockets
 * (the live feed) pass through unchanged: this is a byte pipe.
 */
import { rmSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';

export type Endpoint = { path: string } | { host: string; port: number };

function describe(e: Endpoint): string {
  return 'path' in e ? `unix:${e.path}` : `${e.host}:${e.port}`;
}

export interface Forwarder {
  readonly server: Server;
  /** The TCP port actually bound (when listening on TCP with port 0). */
  readonly port: number | null;
  close(): Promise<void>;
}

export async function startForwarder(listen: Endpoint, target: Endpoint): Promise<Forwarder> {
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect('path' in target ? { path: target.path } : { host: target.host, port: target.port });
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  if ('path' in listen) rmSync(listen.path, { force: true });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error) => reject(new Error(`forwarder ${describe(listen)}: ${error.message}`)));
    const done = () => resolve();
    if ('path' in listen) server.listen(listen.path, done);
    else server.listen({ host: listen.host, port: listen.port }, done);
  });
  const address = server.address();
  return {
    server,
    port: typeof address === 'object' && address ? address.port : null,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      if ('path' in listen) rmSync(listen.path, { force: true });
    },
  };
}

/** Child-process entry: `forward unix:PATH HOST:PORT` (listen on the first, connect to the second). */
export async function forwardMain(args: string[]): Promise<void> {
  const parse = (s: string | undefined): Endpoint => {
    if (!s) throw new Error('usage: forward unix:PATH|HOST:PORT unix:PATH|HOST:PORT');
    if (s.startsWith('unix:')) return { path: s.slice(5) };
    const i = s.lastIndexOf(':');
    return { host: s.slice(0, i), port: Number(s.slice(i + 1)) };
  };
  const listen = parse(args[0]);
  const target = parse(args[1]);
  const fwd = await startForwarder(listen, target);
  process.stdout.write(`forward ready: ${describe(listen)} -> ${describe(target)}\n`);
  const stop = () => void fwd.close().then(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}
