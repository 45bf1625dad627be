/**
 * The socket API: HTTP/1.1 over a Unix socket, JSON bodies. It asks a TokenSource; it never logs in.
 */
import { chmodSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type Socket } from 'node:net';
import { dirname } from 'node:path';
import {
  AGENT_HEADER,
  AGENT_HEADER_VALUE,
  DEFAULT_MIN_TTL_S,
  type ConfigStatusBody,
  type ErrorBody,
  type HealthBody,
  type StatusBody,
  type TokenBody,
} from '../api/index.js';
import type { ServerLimits } from '../config/index.js';
import { systemClock, type Clock } from '../lib/clock.js';
import type { Logger } from '../lib/log.js';
import type { MetricsRegistry } from '../lib/metrics.js';
import type { OutboxAccountStatus } from '../outbox/index.js';
import type { AccountStatus, ServedToken, TokenAnswer, TokenError } from '../tokens/index.js';
import { accountParam, allow, expectString, HttpError, minTtlParam, readJson, send } from './http.js';
import { handleOutbox, type OutboxSource } from './outbox.js';
import { handleProxy, PROXY_PREFIX, type ProxySource } from './proxy.js';
import { statusBodies } from './status.js';

/** What the server needs of the token manager. */
export interface TokenSource {
  getToken(account: string, minTtlS: number): Promise<TokenAnswer>;
  /** The answer without waiting when there is one (a fresh token); the hot path skips getToken's promises. */
  peek?(account: string, minTtlS: number): TokenAnswer | undefined;
  refresh(account: string, rejectedToken: string, minTtlS: number): Promise<TokenAnswer>;
  status(): Record<string, AccountStatus>;
  unhealthy(): string[];
}

/** What status and health need of the outbox (outbox/). */
export interface OutboxView {
  status(): Record<string, OutboxAccountStatus>;
  stalled(): string[];
}

export interface ServerOptions {
  socketPath: string;
  /** The API proxy (`/v1/proxy/NAME/...`); without it those paths are 404. */
  proxy?: ProxySource;
  /** The outbox (`/v1/outbox...`); without it those paths are 404. */
  outbox?: OutboxSource & { view: OutboxView };
  /** A listening socket inherited from systemd (LISTEN_FDS); when set, socketPath is only reported. */
  listenFd?: number;
  limits: ServerLimits;
  version: string;
  /** Which config the agent runs, for `/v1/status` `config`. */
  config?: () => ConfigStatusBody;
  log: Logger;
  clock?: Clock;
  metrics?: MetricsRegistry;
}

export interface AgentServer {
  listen(): Promise<void>;
  close(): Promise<void>;
}

/** The paths that are counted under their own name in /metrics; anything else is "other" (a bounded label). */
const ROUTES: ReadonlySet<string> = new Set(['/v1/token', '/v1/token/refresh', '/v1/status', '/v1/health', '/metrics']);
/** Routes counted under their prefix (what follows is a path or an id: unbounded). */
const PREFIX_ROUTES = ['/v1/proxy', '/v1/outbox'] as const;
const FORBIDDEN_HEADERS = ['origin', 'forwarded', 'x-forwarded-for'];
/** Distinct request targets whose parse is kept (tills ask for the same one again and again). */
const TARGET_CACHE_SIZE = 64;

export function createAgentServer(source: TokenSource, options: ServerOptions): AgentServer {
  const clock = options.clock ?? systemClock;
  const log = options.log;
  const startedMono = clock.monotonic();
  const requests = options.metrics?.counter('pos_token_agent_http_requests_total', 'Socket API requests by route and status.');
  const bodies = createTokenBodyCache();

  /** GET /v1/token targets already checked: their account and min_ttl, or null when they need the full path. */
  const tokenTargets = new Map<string, { account: string; minTtl: number } | null>();
  const tokenTarget = (raw: string): { account: string; minTtl: number } | null => {
    let t = tokenTargets.get(raw);
    if (t === undefined) {
      t = null;
      try {
        const url = new URL(raw, 'http://agent');
        if (url.pathname === '/v1/token') {
          const minTtl = url.searchParams.get('min_ttl');
          t = { account: accountParam(url.searchParams.get('account')), minTtl: minTtl === null ? DEFAULT_MIN_TTL_S : minTtlParam(minTtl) };
        }
      } catch {
        t = null; // the full path answers it with the right error
      }
      if (tokenTargets.size >= TARGET_CACHE_SIZE) tokenTargets.delete(tokenTargets.keys().next().value!);
      tokenTargets.set(raw, t);
    }
    return t;
  };

  /**
   * The hot path, without promises: a well-formed GET /v1/token for an account holding a fresh token.
   * Anything else (an error to answer, a token to wait for) goes through `handle`, which checks it all.
   */
  const answerFresh = (req: IncomingMessage, res: ServerResponse): boolean => {
    if (req.method !== 'GET' || !source.peek || req.headers[AGENT_HEADER] !== AGENT_HEADER_VALUE) return false;
    for (const h of FORBIDDEN_HEADERS) if (req.headers[h] !== undefined) return false;
    const target = tokenTarget(req.url ?? '/');
    if (!target) return false;
    const answer = source.peek(target.account, target.minTtl);
    if (!answer) return false;
    sendToken(res, answer, bodies);
    requests?.inc({ route: '/v1/token', status: '200' });
    return true;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    let route = 'other';
    try {
      let url: URL | undefined;
      // The proxy by its raw target, unparsed: URL resolves dot segments, and they must reach the proxy to be refused.
      const proxied = (req.url ?? '').startsWith(PROXY_PREFIX);
      if (proxied) route = '/v1/proxy';
      else {
        try {
          url = new URL(req.url ?? '/', 'http://agent');
          if (ROUTES.has(url.pathname)) route = url.pathname;
          else route = PREFIX_ROUTES.find((p) => url!.pathname === p || url!.pathname.startsWith(`${p}/`)) ?? route;
        } catch {
          url = undefined; // answered 400 below, once the header rules are applied
        }
      }
      for (const h of FORBIDDEN_HEADERS) {
        if (req.headers[h] !== undefined) {
          throw new HttpError(403, {
            error: 'forbidden',
            message: 'requests carrying Origin, Forwarded or X-Forwarded-For are refused',
          });
        }
      }
      if (req.headers[AGENT_HEADER] !== AGENT_HEADER_VALUE) {
        throw new HttpError(412, { error: 'precondition_failed', message: 'every request must carry the header X-Pos-Agent: 1' });
      }
      if (proxied && options.proxy) {
        await handleProxy(req, res, options.proxy, tokenHttpError, log);
        return;
      }
      if (!url) throw new HttpError(400, { error: 'bad_request', message: 'the request target is not a valid path' });
      if (route === '/v1/proxy' && options.proxy) {
        // An absolute-form target (http://host/v1/proxy/...): the proxy takes only origin-relative paths.
        throw new HttpError(400, { error: 'bad_request', message: 'the proxy takes an origin-relative path (/v1/proxy/ACCOUNT/...)' });
      }
      if (route === '/v1/outbox' && options.outbox) {
        await handleOutbox(req, res, url, options.outbox);
        return;
      }
      switch (url.pathname) {
        case '/v1/token': {
          allow(req, 'GET');
          const account = accountParam(url.searchParams.get('account'));
          const rawMinTtl = url.searchParams.get('min_ttl');
          const minTtl = rawMinTtl === null ? DEFAULT_MIN_TTL_S : minTtlParam(rawMinTtl);
          // A fresh token was already answered by answerFresh; here a token may need waiting for.
          sendToken(res, await source.getToken(account, minTtl), bodies);
          return;
        }
        case '/v1/token/refresh': {
          allow(req, 'POST');
          const body = await readJson(req);
          const account = accountParam(body.account === undefined ? null : expectString(body.account, 'account'));
          if (body.rejected_token === undefined) {
            throw new HttpError(400, { error: 'bad_request', message: 'rejected_token is required' });
          }
          const rejected = expectString(body.rejected_token, 'rejected_token');
          // A JSON number only: anything else ('' here) fails the same check as a bad query value.
          const minTtl =
            body.min_ttl === undefined
              ? DEFAULT_MIN_TTL_S
              : minTtlParam(typeof body.min_ttl === 'number' ? String(body.min_ttl) : '');
          sendToken(res, await source.refresh(account, rejected, minTtl), bodies);
          return;
        }
        case '/v1/status': {
          allow(req, 'GET');
          const body: StatusBody = {
            version: options.version,
            uptime_s: Math.floor((clock.monotonic() - startedMono) / 1000),
            ...(options.config ? { config: options.config() } : {}),
            accounts: statusBodies(source.status(), options.outbox?.view.status(), clock.now()),
          };
          send(res, 200, body);
          return;
        }
        case '/v1/health': {
          allow(req, 'GET');
          const noToken = source.unhealthy();
          const stalled = options.outbox?.view.stalled() ?? [];
          const failing = [...new Set([...noToken, ...stalled])];
          const body: HealthBody =
            failing.length === 0 ? { status: 'ok' } : { status: 'unhealthy', failing, ...(stalled.length ? { outbox_stalled: stalled } : {}) };
          send(res, failing.length === 0 ? 200 : 503, body);
          return;
        }
        case '/metrics':
          allow(req, 'GET');
          res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4', 'cache-control': 'no-store' });
          res.end(options.metrics?.render() ?? '');
          return;
        default:
          throw new HttpError(404, { error: 'not_found', message: `no such endpoint: ${url.pathname.slice(0, 100)}` });
      }
    } catch (err) {
      if (err instanceof HttpError) {
        send(res, err.status, err.body, err.headers);
      } else {
        log.error('request failed', { route, error: String(err) });
        send(res, 500, { error: 'internal_error', message: 'the agent failed to answer; see its log' });
      }
    } finally {
      requests?.inc({ route, status: String(res.statusCode) });
    }
  };

  const firstRequestSeen = new WeakSet<Socket>();
  const server: Server = createServer(
    {
      maxHeaderSize: 8 * 1024,
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
      if (!answerFresh(req, res)) void handle(req, res);
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

  server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    if (!socket.writable || (err.code === 'ECONNRESET' && !socket.bytesWritten)) {
      socket.destroy();
      return;
    }
    const [status, text] =
      err.code === 'HPE_HEADER_OVERFLOW'
        ? [431, 'Request Header Fields Too Large']
        : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? [408, 'Request Timeout']
          : [400, 'Bad Request'];
    const answer: ErrorBody = { error: 'bad_request', message: `malformed HTTP request (${err.code ?? 'parse error'})` };
    const body = JSON.stringify(answer);
    requests?.inc({ route: 'other', status: String(status) });
    socket.end(
      `HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
    if (err.code === 'HPE_HEADER_OVERFLOW') {
      // The client may still be sending its oversized headers: closing now would reset the connection and
      // could throw the 431 away before it is read. Drop what still comes; the client closes once answered,
      // and the first-request deadline bounds a client that does not.
      socket.resume();
    } else {
      socket.destroySoon?.();
    }
  });

  let closing: Promise<void> | undefined;
  return {
    async listen() {
      if (options.listenFd !== undefined) {
        await listenOnInheritedFd(server, options.listenFd, options.socketPath, log);
        return;
      }
      await prepareSocketPath(options.socketPath);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        // A backlog as deep as the connection limit: a burst of tills connecting at once (after a reboot, or while
        // the loop is busy for a moment) waits in the kernel's queue instead of failing with EAGAIN at 511.
        server.listen({ path: options.socketPath, backlog: options.limits.maxConnections }, () => {
          server.off('error', reject);
          resolve();
        });
      });
      chmodSync(options.socketPath, 0o660);
      server.on('error', (err) => log.error('socket server error', { error: String(err) }));
      log.info('listening', { socket: options.socketPath });
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

function tokenBody(t: ServedToken): TokenBody {
  return {
    access_token: t.accessToken,
    token_type: t.tokenType,
    expires_in: t.expiresIn,
    expires_at: t.expiresAt,
    account: t.account,
    scope: t.scope,
  };
}

/** A token error as the HttpError the proxy throws. */
function tokenHttpError(e: TokenError): HttpError {
  const [status, body, headers] = errorAnswer(e);
  return new HttpError(status, body, headers);
}

function errorAnswer(e: TokenError): [number, ErrorBody, Record<string, string>?] {
  switch (e.kind) {
    case 'unknown_account':
      return [404, { error: 'unknown_account', message: e.message, ...(e.known ? { known_accounts: e.known } : {}) }];
    case 'min_ttl_unsatisfiable':
      return [
        400,
        {
          error: 'min_ttl_unsatisfiable',
          message: e.message,
          ...(e.minTtlS !== undefined ? { min_ttl: e.minTtlS } : {}),
          ...(e.lifetimeS !== undefined ? { lifetime_s: e.lifetimeS } : {}),
        },
      ];
    case 'refresh_limited':
      return [429, { error: 'refresh_limited', message: e.message, retry_after: e.retryAfterS }, { 'retry-after': String(e.retryAfterS) }];
    case 'unavailable':
      return [
        503,
        { error: 'token_unavailable', reason: e.reason, message: e.message, retry_after: e.retryAfterS },
        { 'retry-after': String(e.retryAfterS) },
      ];
  }
}

interface CachedTokenBody {
  token: ServedToken;
  text: string;
  length: number;
}

/**
 * The JSON of the last 200 answer per account: the same token with the same seconds left is serialized once
 * (expires_in changes once a second), not once per request.
 */
function createTokenBodyCache(): (t: ServedToken) => CachedTokenBody {
  const last = new Map<string, CachedTokenBody>();
  return (t) => {
    const hit = last.get(t.account);
    if (
      hit &&
      hit.token.accessToken === t.accessToken &&
      hit.token.expiresIn === t.expiresIn &&
      hit.token.expiresAt === t.expiresAt &&
      hit.token.tokenType === t.tokenType &&
      hit.token.scope === t.scope
    ) {
      return hit;
    }
    const text = JSON.stringify(tokenBody(t));
    const body = { token: t, text, length: Buffer.byteLength(text) };
    last.set(t.account, body);
    return body;
  };
}

function sendToken(res: ServerResponse, answer: TokenAnswer, bodies: (t: ServedToken) => CachedTokenBody): void {
  if (!answer.ok) {
    send(res, ...errorAnswer(answer.error));
    return;
  }
  if (res.headersSent) return;
  const body = bodies(answer.token);
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length, 'cache-control': 'no-store' });
  res.end(res.req.method === 'HEAD' ? undefined : body.text);
}

/**
 * Serves on a listening socket systemd passed (socket activation). The path, its owner and
 * mode belong to the socket unit: nothing is unlinked or chmod'ed here. Only a Unix stream
 * socket is accepted, so a unit cannot turn the agent into a TCP service by mistake.
 */
async function listenOnInheritedFd(server: Server, fd: number, configured: string, log: Logger): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ fd }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  // Node reports an inet socket as an object, a Unix one opened from an fd as null (no name known).
  const address = server.address();
  if (address !== null && typeof address === 'object') {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    throw new Error(`the socket systemd passed as fd ${fd} is not a Unix stream socket; use ListenStream=/path in the socket unit`);
  }
  server.on('error', (err) => log.error('socket server error', { error: String(err) }));
  if (typeof address === 'string' && address !== '' && address !== configured) {
    log.info('the socket from systemd is not at the configured path; clients must use the one systemd listens on', {
      socket: address,
      configured,
    });
  }
  log.info('listening', { socket: address || configured, fd, from: 'systemd' });
}

/** Makes the socket's directory (0750) and replaces a stale socket file; refuses to steal a live one. */
async function prepareSocketPath(path: string): Promise<void> {
  const dir = dirname(path);
  try {
    lstatSync(dir);
  } catch {
    mkdirSync(dir, { recursive: true, mode: 0o750 });
    chmodSync(dir, 0o750);
  }
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return;
  }
  if (!st.isSocket()) throw new Error(`${path} exists and is not a socket; remove it or choose another socket path`);
  const live = await new Promise<boolean>((resolve) => {
    const c = connect(path);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
  if (live) throw new Error(`another process is already listening on ${path}`);
  unlinkSync(path);
}
export { accountStatusBody, statusBodies } from './status.js';
export type { OutboxSource } from './outbox.js';
export type { ProxySource } from './proxy.js';
