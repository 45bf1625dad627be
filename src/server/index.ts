/**
 * The socket API: HTTP/1.1 over a Unix socket, JSON bodies. It asks a TokenSource; it never logs in.
 * The routes are one table (routes.ts); this file makes the server around it and gives it its life.
 */
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import { DEFAULT_CONFIG_PATH } from '../config/index.js';
import { createTargetResolver } from '../forward/index.js';
import { systemClock } from '../lib/clock.js';
import type { Counter, CounterSeries } from '../lib/metrics.js';
import type { ServerContext, ServerOptions, TokenSource } from './context.js';
import { answerClientError, listenOnInheritedFd, listenOnPath, MAX_HEADER_BYTES } from './listen.js';
import { dispatch, indexRoutes, ROUTES } from './routes.js';
import { answerFresh, createTargetCache, createTokenBodyCache } from './token.js';

export interface AgentServer {
  listen(): Promise<void>;
  close(): Promise<void>;
}

export function createAgentServer(source: TokenSource, options: ServerOptions): AgentServer {
  const ctx = serverContext(source, options);
  const routes = indexRoutes(ROUTES);
  const firstRequestSeen = new WeakSet<Socket>();
  const server: Server = createServer(
    {
      maxHeaderSize: MAX_HEADER_BYTES,
      headersTimeout: options.limits.headersTimeoutMs,
      requestTimeout: options.limits.headersTimeoutMs * 2,
      keepAliveTimeout: Math.min(5_000, options.limits.idleTimeoutMs),
      // Node checks headersTimeout/requestTimeout only this often (30 s by default), which let a client
      // trickling partial headers hold a connection for half a minute.
      connectionsCheckingInterval: Math.min(1_000, options.limits.headersTimeoutMs),
      noDelay: true,
    },
    (req, res) => {
      firstRequestSeen.add(req.socket);
      if (!answerFresh(ctx, req, res)) void dispatch(ctx, routes, req, res);
    },
  );
  server.maxConnections = options.limits.maxConnections;
  server.timeout = options.limits.idleTimeoutMs;
  // A connection must deliver its first request's headers within headersTimeoutMs. Node's own check
  // (above) does not cover a connection that never sends a byte once the checking interval is short,
  // so the first request gets its own deadline; later ones on a kept-alive connection are covered by
  // keepAliveTimeout and headersTimeout.
  server.on('connection', (socket: Socket) => {
    const timer = setTimeout(() => {
      if (!firstRequestSeen.has(socket)) socket.destroy();
    }, options.limits.headersTimeoutMs);
    timer.unref();
    socket.once('close', () => clearTimeout(timer));
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => answerClientError(err, socket, ctx.requests));

  let closing: Promise<void> | undefined;
  return {
    async listen() {
      if (options.listenFd !== undefined) await listenOnInheritedFd(server, options.listenFd, options.socketPath, options.log);
      // A backlog as deep as the connection limit: a burst of tills connecting at once (after a reboot, or while
      // the loop is busy for a moment) waits in the kernel's queue instead of failing with EAGAIN at 511.
      else await listenOnPath(server, options.socketPath, options.limits.maxConnections, options.log);
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
        const t = setTimeout(() => server.closeAllConnections(), 2_000);
        t.unref();
      });
      return closing;
    },
  };
}

function serverContext(source: TokenSource, options: ServerOptions): ServerContext {
  const clock = options.clock ?? systemClock;
  const requests = options.metrics?.counter('pos_token_agent_http_requests_total', 'Socket API requests by route and status.');
  return {
    source,
    options,
    clock,
    startedMono: clock.monotonic(),
    requests,
    countRequest: requestCounter(requests),
    configFile: () => options.config?.().path ?? DEFAULT_CONFIG_PATH,
    tokenBodies: createTokenBodyCache(),
    tokenTargets: createTargetCache(),
    proxyTargets: createTargetResolver(),
  };
}

/** Counts a request under its route and status, each series resolved once (the routes and statuses are few). */
function requestCounter(requests: Counter | undefined): (route: string, status: number) => void {
  if (!requests) return () => undefined;
  const byRoute = new Map<string, Map<number, CounterSeries>>();
  return (route, status) => {
    let byStatus = byRoute.get(route);
    if (!byStatus) byRoute.set(route, (byStatus = new Map()));
    let series = byStatus.get(status);
    if (!series) byStatus.set(status, (series = requests.series({ route, status: String(status) })));
    series.inc();
  };
}

export type { AccountDirectory, OutboxSource, OutboxView, ProxySource, ServerOptions, TokenSource } from './context.js';
export { ROUTES, type Route } from './routes.js';
export { accountStatusBody, statusBodies } from './status.js';
const { createServer } = process.getBuiltinModule('node:http');
