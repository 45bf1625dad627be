/**
 * Sends a request to an account's API with the account's token: the one path both the proxy and the outbox
 * take. A 401 drops that token, the token manager logs in once (shared with every other waiter of the account)
 * and the request goes again, once. Every phase has a deadline: connect, the answer's headers, the whole
 * exchange. The answer's body is handed back as a stream (the proxy pipes it; the outbox reads it capped).
 */
import type { Agent as HttpAgent, IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, RequestOptions } from 'node:http';
import type { Socket } from 'node:net';
import { apiLimits, type AccountConfig, type AccountTls, type ApiLimits } from '../config/index.js';
import type { TokenAnswer, TokenError } from '../tokens/index.js';
const http = process.getBuiltinModule('node:http');
const { urlToHttpOptions } = process.getBuiltinModule('node:url');
/** node:https (with node:tls, about 10 MiB) loads when an https API is first asked, not at start. */
const https = (): typeof import('node:https') => process.getBuiltinModule('node:https');

/** What forwarding needs of the token manager. */
export interface ForwardTokenSource {
  getToken(account: string, minTtlS: number): Promise<TokenAnswer>;
  /** getToken's answer when it needs no waiting (the token manager's hot path); undefined: ask getToken. */
  peek?(account: string, minTtlS: number): TokenAnswer | undefined;
  refresh(account: string, rejectedToken: string, minTtlS: number): Promise<TokenAnswer>;
}

/** The account a request is sent for: where its API is and how long to wait. */
export interface ForwardAccount {
  name: string;
  apiUrl: string;
  api: ApiLimits;
  tls: AccountTls;
}

const VIEWS = new WeakMap<AccountConfig, ForwardAccount>();

/**
 * The account as the sender needs it, limits with their defaults; made once per config object (a reload makes new
 * ones), so the proxy and the outbox take it without work on each request.
 */
export function forwardAccountOf(account: AccountConfig & { apiUrl: string }): ForwardAccount {
  let view = VIEWS.get(account);
  if (!view) VIEWS.set(account, (view = { name: account.name, apiUrl: account.apiUrl, api: apiLimits(account), tls: account.tls }));
  return view;
}

export interface ForwardRequest {
  account: ForwardAccount;
  method: string;
  /** Already resolved under apiUrl (forward/path.ts). */
  url: URL;
  /** Sent as they are: the caller has dropped what must not go (hop-by-hop, the till's Authorization). */
  headers: OutgoingHttpHeaders;
  body?: Buffer;
  signal?: AbortSignal;
}

export type ForwardFailure = 'unreachable' | 'timeout';

/** Methods a client may send again on its own when a connection fails (RFC 9110, 9.2.2). */
const IDEMPOTENT: ReadonlySet<string> = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

export type ForwardResult =
  /** The API answered (any status; a 401 only after the forced login and resend). Read or drop `body`. */
  | { ok: true; status: number; headers: IncomingHttpHeaders; body: IncomingMessage; attempts: 1 | 2 }
  /** No usable token: the token manager's answer. */
  | { ok: false; kind: 'token'; error: TokenError; attempts: 0 | 1 }
  | { ok: false; kind: ForwardFailure; message: string; attempts: 1 | 2 };

export interface Forwarder {
  forward(request: ForwardRequest): Promise<ForwardResult>;
  /** Closes idle connections. */
  close(): void;
}

export interface ForwarderDeps {
  tokens: ForwardTokenSource;
  /**
   * The agent for a proxy or special TLS (authorities/http.ts `agentFor`); undefined: a plain keep-alive agent.
   */
  agentFor?: (url: string, tls: AccountTls, connectMs: number) => Promise<HttpAgent | undefined>;
  /** Most connections kept per API host (default 64). */
  maxSockets?: number;
}

/** A token with less left than this is renewed before it is sent (it must outlive the exchange). */
export const FORWARD_MIN_TTL_S = 30;

class ForwardError extends Error {
  constructor(
    readonly kind: ForwardFailure,
    message: string,
  ) {
    super(message);
  }
}

export function createForwarder(deps: ForwarderDeps): Forwarder {
  // Idle connections are closed after 4 s, before a server's own idle limit (Node's is 5 s): the race in which a
  // server closes a connection just as a request is written on it (a reset, see `once`) then seldom arises.
  const options = { keepAlive: true, maxSockets: deps.maxSockets ?? 64, scheduling: 'lifo' as const, timeout: 4_000 };
  let httpsAgent: HttpAgent | undefined;
  const plain = { http: new http.Agent(options), https: (): HttpAgent => (httpsAgent ??= new (https().Agent)(options)) };
  const special = new Map<string, Promise<HttpAgent | undefined>>();
  /** The agents found, by the same key: the hot path takes them without a promise. */
  const found = new Map<string, HttpAgent>();
  /**
   * The agent found for a URL and account, by the URL object: the proxy's URLs are shared between requests (see
   * createTargetResolver), so its hot path finds the agent without making the key (the URL's origin, a string).
   */
  let byUrl = new WeakMap<URL, { account: ForwardAccount; agent: HttpAgent }>();

  const agentOf = (req: ForwardRequest): Promise<HttpAgent> | HttpAgent => {
    const hit = byUrl.get(req.url);
    if (hit?.account === req.account) return hit.agent;
    const fallback = httpOptionsOf(req.url).protocol === 'https:' ? plain.https() : plain.http;
    const tls = req.account.tls;
    if (!deps.agentFor) return fallback;
    const key = `${req.url.origin}|${tls.legacyServerConnect}|${tls.caFile ?? ''}|${req.account.api.connectMs}`;
    const known = found.get(key);
    if (known) {
      byUrl.set(req.url, { account: req.account, agent: known });
      return known;
    }
    let pending = special.get(key);
    if (!pending) special.set(key, (pending = deps.agentFor(req.url.href, tls, req.account.api.connectMs)));
    return pending.then((agent) => {
      found.set(key, agent ?? fallback);
      return agent ?? fallback;
    });
  };

  const authorizationOf = bearerOf();

  const once = (req: ForwardRequest, token: string): Promise<IncomingMessage> => {
    const chosen = agentOf(req);
    const authorization = authorizationOf(token);
    if (chosen instanceof http.Agent) return exchange(req, authorization, chosen, true);
    return chosen.then((agent) => exchange(req, authorization, agent, true));
  };

  return {
    async forward(req) {
      const name = req.account.name;
      const first = deps.tokens.peek?.(name, FORWARD_MIN_TTL_S) ?? (await deps.tokens.getToken(name, FORWARD_MIN_TTL_S));
      if (!first.ok) return { ok: false, kind: 'token', error: first.error, attempts: 0 };
      let res: IncomingMessage;
      try {
        res = await once(req, first.token.accessToken);
      } catch (err) {
        return failed(err, 1);
      }
      if (res.statusCode !== 401) return answered(res, 1);
      res.resume(); // drained, so the connection can carry the resend
      const renewed = await deps.tokens.refresh(name, first.token.accessToken, FORWARD_MIN_TTL_S);
      if (!renewed.ok) return { ok: false, kind: 'token', error: renewed.error, attempts: 1 };
      try {
        return answered(await once(req, renewed.token.accessToken), 2);
      } catch (err) {
        return failed(err, 2);
      }
    },
    close() {
      plain.http.destroy();
      httpsAgent?.destroy();
      for (const p of special.values()) void p.then((a) => a?.destroy(), () => undefined);
      special.clear();
      found.clear();
      byUrl = new WeakMap();
    },
  };
}

function answered(res: IncomingMessage, attempts: 1 | 2): ForwardResult {
  return { ok: true, status: res.statusCode ?? 502, headers: res.headers, body: res, attempts };
}

function failed(err: unknown, attempts: 1 | 2): ForwardResult {
  if (err instanceof ForwardError) return { ok: false, kind: err.kind, message: err.message, attempts };
  return { ok: false, kind: 'unreachable', message: describe(err), attempts };
}

function describe(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  return e.code ? `${e.code}: ${firstLine(e.message)}` : firstLine(String(e?.message ?? err));
}

function firstLine(s: string): string {
  return s.split('\n')[0]!.slice(0, 300);
}

/** `Bearer <token>`, made once per token, not once per request. */
function bearerOf(): (token: string) => string {
  let lastToken: string | undefined;
  let lastAuthorization = '';
  return (token) => {
    if (token !== lastToken) {
      lastToken = token;
      lastAuthorization = `Bearer ${token}`;
    }
    return lastAuthorization;
  };
}

/** A URL as node:http's request options (what http.request makes of a URL each time), made once per URL object. */
const HTTP_OPTIONS = new WeakMap<URL, Readonly<RequestOptions>>();
function httpOptionsOf(url: URL): Readonly<RequestOptions> {
  let options = HTTP_OPTIONS.get(url);
  if (!options) HTTP_OPTIONS.set(url, (options = urlToHttpOptions(url)));
  return options;
}

/**
 * One request: resolves with the answer once its headers arrive; the body then has until the total deadline.
 * Rejects with ForwardError (timeout or unreachable). With `resend`, a reset on a kept-alive connection before
 * anything was answered sends an idempotent request once more (see below).
 */
function exchange(req: ForwardRequest, authorization: string, agent: HttpAgent, resend: boolean): Promise<IncomingMessage> {
  const limits = req.account.api;
  const target = httpOptionsOf(req.url);
  const secure = target.protocol === 'https:';
  const send = secure ? https().request : http.request;
  const headers: OutgoingHttpHeaders = { ...req.headers, authorization };
  if (req.body !== undefined) headers['content-length'] = req.body.length;
  return new Promise<IncomingMessage>((resolve, reject) => {
    const timers: NodeJS.Timeout[] = [];
    const stop = () => timers.splice(0).forEach(clearTimeout);
    const out = send({ ...target, method: req.method, headers, agent, signal: req.signal });
    const deadline = (ms: number, what: string) => {
      const t = setTimeout(() => out.destroy(new ForwardError('timeout', `the API did not ${what} within ${ms} ms`)), ms);
      t.unref();
      timers.push(t);
      return t;
    };
    const total = deadline(limits.totalMs, 'answer in full');
    out.once('socket', (socket: Socket) => {
      if (!socket.connecting) return;
      const t = deadline(limits.connectMs, 'accept a connection');
      socket.once(secure ? 'secureConnect' : 'connect', () => clearTimeout(t));
    });
    out.once('finish', () => deadline(limits.responseMs, 'answer'));
    out.once('response', (res) => {
      for (const t of timers) if (t !== total) clearTimeout(t);
      // The whole exchange stays bounded: a body that trickles past totalMs is cut.
      res.once('close', stop);
      resolve(res);
    });
    out.once('error', (err) => {
      stop();
      if (err instanceof ForwardError) return reject(err);
      // A reset on a kept-alive connection is most often the server closing it as idle, the request unread (Node's
      // advice is to send again). But it is also what a server that handled the request and then lost the
      // connection looks like, so only an idempotent request goes again unasked (RFC 9110, 9.2.2). A POST or a
      // PATCH fails here as unreachable: the proxy's till decides, and the outbox sends it again as a counted
      // attempt (its resend metric, the entry's attempts) instead of a silent second copy.
      const reused = out.reusedSocket && (err as NodeJS.ErrnoException).code === 'ECONNRESET';
      if (reused && resend && IDEMPOTENT.has(req.method.toUpperCase())) return resolve(exchange(req, authorization, agent, false));
      reject(Object.assign(new ForwardError('unreachable', describe(err)), { reused }));
    });
    out.end(req.body);
  });
}
