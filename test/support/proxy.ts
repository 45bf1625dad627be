/**
 * An HTTP CONNECT proxy for tests, on loopback. It counts tunnels, can require Proxy-Authorization (Basic),
 * can refuse every CONNECT with a status, and maps host names (which need not exist) to loopback, so a
 * client can reach "https://id.eta.test" through it while resolving nothing itself.
 */
import { createServer, type IncomingMessage } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { closeServer, track } from './tls.js';

export interface ConnectProxyOptions {
  auth?: { user: string; password: string };
  /** Answer every CONNECT with this status instead of opening the tunnel. */
  refuseStatus?: number;
  /** Where a tunnel's host name goes; 127.0.0.1 for every name by default. */
  resolve?: (host: string) => string;
}

export interface ConnectProxy {
  port: number;
  /** http://127.0.0.1:port, without credentials. */
  url: string;
  /** The same URL with the configured user and password in it. */
  urlWithAuth: string;
  /** Tunnels opened. */
  tunnels: number;
  /** Every CONNECT target asked for (host:port), opened or not. */
  targets: string[];
  /** CONNECTs refused for missing or wrong Proxy-Authorization. */
  authFailures: number;
  close(): Promise<void>;
}

export async function startConnectProxy(options: ConnectProxyOptions = {}): Promise<ConnectProxy> {
  const server = createServer((_req, res) => {
    res.writeHead(405, { 'content-type': 'text/plain' });
    res.end('only CONNECT here\n');
  });
  const proxy: ConnectProxy = {
    port: 0,
    url: '',
    urlWithAuth: '',
    tunnels: 0,
    targets: [],
    authFailures: 0,
    close: () => closeServer(server, sockets),
  };
  const tunnelSockets = new Set<Socket>();
  server.on('connect', (req: IncomingMessage, client: Socket, head: Buffer) => {
    const target = req.url ?? '';
    proxy.targets.push(target);
    client.on('error', () => {});
    if (options.auth) {
      const expected = `Basic ${Buffer.from(`${options.auth.user}:${options.auth.password}`).toString('base64')}`;
      if (req.headers['proxy-authorization'] !== expected) {
        proxy.authFailures++;
        client.end('HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="test"\r\nContent-Length: 0\r\n\r\n');
        return;
      }
    }
    if (options.refuseStatus !== undefined) {
      client.end(`HTTP/1.1 ${options.refuseStatus} Refused\r\nContent-Length: 0\r\n\r\n`);
      return;
    }
    const m = /^(.+):(\d+)$/.exec(target);
    if (!m) {
      client.end('HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    const host = (options.resolve ?? (() => '127.0.0.1'))(m[1]!.replace(/^\[|\]$/g, ''));
    const upstream = connect(Number(m[2]), host, () => {
      proxy.tunnels++;
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    tunnelSockets.add(upstream);
    upstream.on('close', () => {
      tunnelSockets.delete(upstream);
      client.destroy();
    });
    upstream.on('error', () => client.end('HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n'));
    client.on('close', () => upstream.destroy());
  });
  const sockets = track(server);
  const baseClose = proxy.close;
  proxy.close = async () => {
    for (const s of tunnelSockets) s.destroy();
    await baseClose();
  };
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxy.port = (server.address() as AddressInfo).port;
  proxy.url = `http://127.0.0.1:${proxy.port}`;
  proxy.urlWithAuth = options.auth
    ? `http://${encodeURIComponent(options.auth.user)}:${encodeURIComponent(options.auth.password)}@127.0.0.1:${proxy.port}`
    : proxy.url;
  return proxy;
}
