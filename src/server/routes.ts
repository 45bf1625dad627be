/**
 * The socket API as one table: path, methods, handler. What applies to every route is applied here, once, around
 * it: the gate (403, 412), an unknown path (404), a method the route does not take (405 with Allow), the answer to
 * an error (with X-Pos-Agent-Error), and the request counted under its route in /metrics.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ServerContext } from './context.js';
import { refusal } from './gate.js';
import { badRequest, HttpError, sendError } from './http.js';
import { cancelEntry, enqueueEntry, getEntry, listEntries, noSuchEntry, retryEntry } from './outbox.js';
import { absoluteFormRefused, PROXY_METHODS, PROXY_PREFIX, proxyRequest } from './proxy.js';
import { getHealth, getMetrics, getStatus } from './status.js';
import { getToken, refreshToken } from './token.js';

/** A route's handler; errors to answer are thrown as HttpError. HEAD is answered by the GET handler. */
export type Handler = (ctx: ServerContext, req: IncomingMessage, res: ServerResponse, url: URL) => void | Promise<void>;
/** The handler of a route matched on the raw request target (unparsed: the proxy must see dot segments to refuse them). */
export type RawHandler = (ctx: ServerContext, req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

interface RouteBase {
  /** The route in /metrics: its path, or for paths that carry an id or the API's own path, their prefix. */
  label: string;
  /** The part of the agent the route serves; without it the route is answered as an unknown path (404). */
  needs?: 'proxy' | 'outbox';
}

export type Route =
  | (RouteBase & { path: string | RegExp; methods: Readonly<Record<string, Handler>> })
  | (RouteBase & { rawPrefix: string; methods: Readonly<Record<string, RawHandler>> });

const OUTBOX_ID = '[0-9a-f-]{36}';

/** Every method of the proxy, to one handler. */
function anyMethod<H>(handler: H): Record<string, H> {
  return Object.fromEntries(PROXY_METHODS.map((m) => [m, handler]));
}

/** The socket API. A request is matched by raw prefix, then by exact path, then by the patterns in this order. */
export const ROUTES: ReadonlyArray<Route> = [
  { label: '/v1/token', path: '/v1/token', methods: { GET: getToken } },
  { label: '/v1/token/refresh', path: '/v1/token/refresh', methods: { POST: refreshToken } },
  { label: '/v1/status', path: '/v1/status', methods: { GET: getStatus } },
  { label: '/v1/health', path: '/v1/health', methods: { GET: getHealth } },
  { label: '/metrics', path: '/metrics', methods: { GET: getMetrics } },
  { label: '/v1/proxy', rawPrefix: PROXY_PREFIX, methods: anyMethod(proxyRequest), needs: 'proxy' },
  { label: '/v1/proxy', path: /^\/v1\/proxy(\/|$)/, methods: anyMethod(absoluteFormRefused), needs: 'proxy' },
  { label: '/v1/outbox', path: /^\/v1\/outbox\/?$/, methods: { GET: listEntries, POST: enqueueEntry }, needs: 'outbox' },
  { label: '/v1/outbox', path: new RegExp(`^/v1/outbox/${OUTBOX_ID}$`), methods: { GET: getEntry, DELETE: cancelEntry }, needs: 'outbox' },
  { label: '/v1/outbox', path: new RegExp(`^/v1/outbox/${OUTBOX_ID}/retry$`), methods: { POST: retryEntry }, needs: 'outbox' },
  { label: '/v1/outbox', path: /^\/v1\/outbox\//, methods: { GET: noSuchEntryRoute, POST: noSuchEntryRoute, DELETE: noSuchEntryRoute }, needs: 'outbox' },
];

function noSuchEntryRoute(): never {
  throw noSuchEntry();
}

type RawRoute = Extract<Route, { rawPrefix: string }>;
type PathRoute = Extract<Route, { path: string | RegExp }>;

/** The table sorted for lookup, once per server: raw prefixes, then exact paths by path, then patterns in order. */
export interface RouteIndex {
  /** With the answer findRoute gives for each, made once (the proxy's route is asked on every proxied request). */
  raw: ReadonlyArray<{ route: RawRoute; found: Found }>;
  exact: ReadonlyMap<string, PathRoute>;
  patterns: ReadonlyArray<PathRoute & { path: RegExp }>;
}

export function indexRoutes(routes: ReadonlyArray<Route>): RouteIndex {
  const raw: Array<{ route: RawRoute; found: Found }> = [];
  const exact = new Map<string, PathRoute>();
  const patterns: Array<PathRoute & { path: RegExp }> = [];
  for (const r of routes) {
    if ('rawPrefix' in r) raw.push({ route: r, found: Object.freeze({ route: r, url: undefined }) });
    else if (typeof r.path === 'string') exact.set(r.path, r);
    else patterns.push(r as PathRoute & { path: RegExp });
  }
  return { raw, exact, patterns };
}

type Found = { route: RawRoute; url: undefined } | { route: PathRoute | undefined; url: URL } | { route: undefined; url: undefined };

/** The route of a request target, by the raw target first, then by its parsed path (url undefined: unparseable). */
export function findRoute(index: RouteIndex, raw: string): Found {
  for (const r of index.raw) if (raw.startsWith(r.route.rawPrefix)) return r.found;
  let url: URL;
  try {
    url = new URL(raw, 'http://agent');
  } catch {
    return { route: undefined, url: undefined };
  }
  const path = url.pathname;
  return { route: index.exact.get(path) ?? index.patterns.find((r) => r.path.test(path)), url };
}

/** What the route takes, as the Allow header says it. */
export function allowed(route: Route): string {
  return Object.keys(route.methods).join(', ');
}

/** Answers one request through the table. Never throws: a failure is a 500 naming nothing but the log. */
export async function dispatch(ctx: ServerContext, index: RouteIndex, req: IncomingMessage, res: ServerResponse): Promise<void> {
  let label = 'other';
  try {
    const raw = req.url ?? '/';
    const found = findRoute(index, raw);
    if (found.route) label = found.route.label;
    const refused = refusal(req);
    if (refused) throw refused;
    const { route, url } = found;
    if (!route) throw url ? notFound(url.pathname) : badRequest('the request target is not a valid path');
    if (route.needs && !ctx.options[route.needs]) throw notFound(url?.pathname ?? raw.split('?')[0]!);
    const method = req.method === 'HEAD' && !Object.hasOwn(route.methods, 'HEAD') ? 'GET' : (req.method ?? '');
    if (!Object.hasOwn(route.methods, method)) {
      throw new HttpError(405, { error: 'method_not_allowed', message: `use ${allowed(route)}` }, { allow: allowed(route) });
    }
    if ('rawPrefix' in route) await route.methods[method]!(ctx, req, res);
    else if (url) await route.methods[method]!(ctx, req, res, url); // a path route was found by its parsed url
  } catch (err) {
    answerError(ctx, res, err, label);
  } finally {
    ctx.countRequest(label, res.statusCode);
  }
}

function notFound(path: string): HttpError {
  return new HttpError(404, { error: 'not_found', message: `no such endpoint: ${path.slice(0, 100)}` });
}

function answerError(ctx: ServerContext, res: ServerResponse, err: unknown, label: string): void {
  if (err instanceof HttpError) {
    sendError(res, err);
    return;
  }
  ctx.options.log.error('request failed', { route: label, error: String(err) });
  sendError(res, new HttpError(500, { error: 'internal_error', message: 'the agent failed to answer; see its log' }));
}
