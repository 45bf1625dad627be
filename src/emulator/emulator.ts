/**
 * The shared server of the emulator: routing, faults, stats, the login limiter, signing, start/stop. What a
 * token request means is the business of the authority's wire module (wire/<name>.ts); the admin endpoints
 * live in admin.ts.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { sleep, systemClock } from '../lib/clock.js';
import { silentLogger } from '../lib/log.js';
import { ADMIN_PREFIX, handleAdmin } from './admin.js';
import { API_PREFIX, createApi, DEFAULT_API_BODY_CAP } from './api.js';
import { createApiAuth } from './api-auth.js';
import { createApiFaultState } from './api-faults.js';
import { createApiRecords } from './api-records.js';
import { createFaultState, type FaultDecision } from './faults.js';
import { type Answer, BODY_CAP, cleanPath, JSON_TYPE, jsonAnswer, readBody, send } from './http.js';
import { createSigningKey } from './jwt.js';
import { createSlidingWindow } from './rate-limit.js';
import type {
  Emulator,
  EmulatorAuthority,
  EmulatorOptions,
  EmulatorPaths,
  EmulatorStats,
  PrincipalKind,
} from './types.js';
import { validateApiFaults, validateFaults } from './validate.js';
import { WIRES } from './wire/index.js';
import type { TokenEndpoint, Wire, WireSpec } from './wire/types.js';

const DEFAULT_REFRESH_LIFETIME_S = 7 * 24 * 3600;
const REDACTED_HEADERS = new Set(['presharedkey', 'authorization', 'proxy-authorization', 'cookie']);
const PRINCIPAL_KINDS: readonly PrincipalKind[] = ['devices', 'clients', 'companies'];

/** The token paths of every authority. */
export const TOKEN_PATHS: Readonly<Record<EmulatorAuthority, EmulatorPaths>> = Object.freeze(
  Object.fromEntries(Object.entries(WIRES).map(([name, spec]) => [name, Object.freeze({ ...spec.paths })])) as Record<
    EmulatorAuthority,
    EmulatorPaths
  >,
);

export const AUTHORITIES = Object.freeze(Object.keys(WIRES)) as readonly EmulatorAuthority[];

function formatHost(host: string): string {
  if (host === '0.0.0.0' || host === '') return '127.0.0.1';
  if (host === '::') return '[::1]';
  return host.includes(':') ? `[${host}]` : host;
}

function emptyStats(refresh: boolean): EmulatorStats {
  return refresh ? { requests: 0, issued: 0, rejected: 0, byStatus: {}, refreshed: 0 } : { requests: 0, issued: 0, rejected: 0, byStatus: {} };
}

function mustBeValid<T>(result: { ok: true; value: T } | { ok: false; problems: string[] }): T {
  if (!result.ok) throw new TypeError(result.problems.join('; '));
  return result.value;
}

function nonNegativeInt(name: string, value: number): number {
  if (!Number.isInteger(value) || value < 0) throw new TypeError(`${name}: expected a non-negative integer`);
  return value;
}

/** Renders what a fault does to a token request, in the wire's own shapes. */
function faultAnswer(decision: FaultDecision, wire: Wire): Answer | undefined {
  switch (decision.kind) {
    case 'rateLimit':
      return wire.errors.rateLimited(decision.retryAfter, 'too many requests (injected fault)');
    case 'fail5xx':
      return decision.html
        ? {
            status: decision.status,
            contentType: 'text/html; charset=utf-8',
            body: `<html><head><title>${decision.status} Service Unavailable</title></head><body><h1>${decision.status}</h1><p>The service is temporarily unavailable.</p></body></html>`,
          }
        : wire.errors.serverError(decision.status);
    case 'malformed':
      return {
        status: 200,
        contentType: JSON_TYPE,
        body: decision.notJson ? '{"access_token": "eyJhbGciOi' : wire.errors.tokenless(),
      };
    case 'error':
      return wire.errors.injected(decision.status, decision.code, decision.description);
    default:
      return undefined;
  }
}

export function createEmulator(options: EmulatorOptions = {}): Emulator {
  const authority = options.authority ?? 'eta-ereceipt';
  if (!Object.hasOwn(WIRES, authority)) throw new TypeError(`authority: expected one of ${AUTHORITIES.join(', ')}`);
  const spec: WireSpec = WIRES[authority];
  const host = options.host ?? '127.0.0.1';
  const clock = options.clock ?? systemClock;
  const log = (options.log ?? silentLogger).child({ component: 'emulator', authority });
  const strict = options.strict ?? true;
  const lifetimeS = nonNegativeInt('lifetimeS', options.lifetimeS ?? spec.defaultLifetimeS);
  const refreshLifetimeS = nonNegativeInt('refreshLifetimeS', options.refreshLifetimeS ?? DEFAULT_REFRESH_LIFETIME_S);
  const perMinute = nonNegativeInt('rateLimitPerMinute', options.rateLimitPerMinute ?? spec.defaultRateLimitPerMinute);
  const requestedPort = options.port ?? 0;
  if (!Number.isInteger(requestedPort) || requestedPort < 0 || requestedPort > 65535) {
    throw new TypeError('port: expected an integer from 0 to 65535');
  }
  const hasRefresh = spec.paths.refresh !== undefined;
  const apiMaxBodyBytes = nonNegativeInt('apiMaxBodyBytes', options.apiMaxBodyBytes ?? DEFAULT_API_BODY_CAP);

  const key = createSigningKey();
  const limiter = perMinute > 0 ? createSlidingWindow(perMinute) : undefined;
  const faults = createFaultState();
  let stats = emptyStats(hasRefresh);

  let port = requestedPort;
  let everStarted = false;
  let server: Server | undefined;
  let lifetime: AbortController | undefined;
  let op: Promise<void> = Promise.resolve();

  const baseUrl = (): string => {
    if (!everStarted) throw new Error('the emulator has no URL before start()');
    return `http://${formatHost(host)}:${port}`;
  };

  const wire = spec.create({
    strict,
    clock,
    key,
    accessToken(claims) {
      const lifetime = faults.lifetimeS() ?? lifetimeS;
      const iat = Math.floor(clock.now() / 1000);
      const jti = randomUUID();
      const token = key.sign({ iss: baseUrl(), iat, nbf: iat, exp: iat + lifetime, jti, ...claims });
      apiAuth.issued(jti);
      return { token, lifetimeS: lifetime };
    },
    refreshLifetimeS,
    limit: (k) => (limiter ? limiter.take(k, clock.monotonic()) : { allowed: true }),
    takeRefreshFail: () => faults.takeRefreshFail(),
  });
  const endpoints = new Map<string, TokenEndpoint>(wire.endpoints.map((e) => [e.path, e]));
  const apiAuth = createApiAuth({ key, clock, issuer: baseUrl });
  const apiFaults = createApiFaultState();
  const apiRecords = createApiRecords();
  const api = createApi({
    authority,
    clock,
    log,
    auth: apiAuth,
    faults: apiFaults,
    records: apiRecords,
    errors: wire.errors,
    maxBodyBytes: apiMaxBodyBytes,
  });

  const addPrincipal = (kind: PrincipalKind, input: unknown, path: string): void => {
    if (kind !== spec.principalKind) {
      throw new TypeError(`${path}: the ${authority} emulator registers ${spec.principalKind}, not ${kind}`);
    }
    mustBeValid(wire.principals.add(input, path));
  };
  for (const kind of PRINCIPAL_KINDS) {
    const list: unknown = options[kind];
    if (list === undefined) continue;
    if (!Array.isArray(list)) throw new TypeError(`${kind}: expected an array`);
    list.forEach((p, i) => addPrincipal(kind, p, `${kind}[${i}]`));
  }

  // ---------- token requests ----------

  async function tokenRequest(
    endpoint: TokenEndpoint,
    req: IncomingMessage,
    res: ServerResponse,
    signal: AbortSignal,
  ): Promise<void> {
    stats.requests += 1;
    const seen: Record<string, string> = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (value === undefined) continue;
      seen[name] = REDACTED_HEADERS.has(name) ? '[redacted]' : Array.isArray(value) ? value.join(', ') : value;
    }
    stats.lastRequestHeaders = seen;
    const count = (status: string): void => {
      stats.byStatus[status] = (stats.byStatus[status] ?? 0) + 1;
    };

    const fault = faults.take();
    if (fault.kind === 'drop') {
      count('dropped');
      log.debug('token request dropped (fault)', { fault: 'drop', path: endpoint.path });
      req.socket.destroy();
      return;
    }

    const body = req.method === 'POST' ? await readBody(req) : { kind: 'ok' as const, body: Buffer.alloc(0) };
    if (body.kind === 'aborted') {
      log.debug('token request aborted by the client');
      return;
    }
    if (fault.latencyMs > 0) {
      try {
        await sleep(clock, fault.latencyMs, signal);
      } catch {
        return; // stopped meanwhile; the connection is gone
      }
    }

    let answer = faultAnswer(fault, wire);
    if (answer) {
      // an injected fault answers whatever the request was
    } else if (req.method !== 'POST') {
      answer = wire.errors.methodNotAllowed(cleanPath(req.method ?? ''));
    } else if (body.kind === 'too_large') {
      answer = wire.errors.tooLarge(BODY_CAP);
      if (!body.drained) answer.close = true;
    } else {
      answer = endpoint.handle({ headers: req.headers, body: body.body });
    }

    if (!send(res, answer)) return;
    count(String(answer.status));
    if (answer.issued) stats.issued += 1;
    if (answer.refreshed && stats.refreshed !== undefined) stats.refreshed += 1;
    if (answer.status >= 400 && answer.status < 500) stats.rejected += 1;
    const fields: Record<string, unknown> = { path: endpoint.path, status: answer.status };
    if (fault.kind !== 'none') fields.fault = fault.kind;
    if (answer.error) fields.error = answer.error;
    log.debug('token request answered', fields);
  }

  // ---------- routing ----------

  async function route(req: IncomingMessage, res: ServerResponse, signal: AbortSignal): Promise<void> {
    // The API first: the benchmark's hot path skips URL parsing.
    if (req.url?.startsWith(API_PREFIX)) return api.handle(req, res, signal);
    let path: string;
    try {
      path = new URL(req.url ?? '/', 'http://emulator.invalid').pathname;
    } catch {
      send(res, jsonAnswer(400, { error: 'invalid_request', error_description: 'bad request target' }));
      return;
    }
    const endpoint = endpoints.get(path);
    if (endpoint) return tokenRequest(endpoint, req, res, signal);
    if (path.startsWith(ADMIN_PREFIX)) {
      return handleAdmin(req, res, path, {
        info: () => ({ authority, strict, paths: { ...spec.paths }, principals: spec.principalKind }),
        stats: () => emulator.stats(),
        resetStats: () => emulator.resetStats(),
        faults,
        principals: wire.principals,
        ...(wire.expireRefreshTokens ? { expireRefreshTokens: wire.expireRefreshTokens } : {}),
        api: { faults: apiFaults, records: apiRecords, revoke: () => apiAuth.revokeAll() },
        log,
      });
    }
    const documents = wire.documents(baseUrl());
    if (Object.hasOwn(documents, path)) {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        send(res, jsonAnswer(405, { error: 'method_not_allowed', error_description: 'use GET' }, { allow: 'GET' }));
        return;
      }
      send(res, { ...jsonAnswer(200, documents[path]), headers: { 'cache-control': 'max-age=60' } });
      return;
    }
    send(res, jsonAnswer(404, { error: 'not_found', error_description: `no such path ${cleanPath(path)}` }));
  }

  // ---------- lifecycle ----------

  async function doStart(): Promise<void> {
    if (server) return;
    await key.prepare();
    const srv = createServer({
      maxHeaderSize: 16 * 1024,
      headersTimeout: 10_000,
      requestTimeout: 30_000,
      connectionsCheckingInterval: 1_000,
    });
    srv.keepAliveTimeout = 5_000;
    const controller = new AbortController();
    srv.on('request', (req: IncomingMessage, res: ServerResponse) => {
      route(req, res, controller.signal).catch((err: unknown) => {
        log.error('emulator request failed', { err });
        if (!res.headersSent && !res.destroyed) {
          send(res, jsonAnswer(500, { error: 'server_error', error_description: 'emulator internal error' }));
        } else {
          res.destroy();
        }
      });
    });
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      srv.once('error', onError);
      srv.listen(port, host, () => {
        srv.off('error', onError);
        resolve();
      });
    });
    srv.on('error', (err) => log.error('emulator server error', { err }));
    port = (srv.address() as AddressInfo).port;
    everStarted = true;
    server = srv;
    lifetime = controller;
    log.info('emulator listening', { url: baseUrl(), strict });
  }

  async function doStop(): Promise<void> {
    const srv = server;
    if (!srv) return;
    server = undefined;
    lifetime?.abort();
    lifetime = undefined;
    await new Promise<void>((resolve) => {
      srv.close(() => resolve());
      srv.closeAllConnections();
    });
    log.info('emulator stopped', { port });
  }

  /** start() and stop() run one at a time, in call order. */
  const serialize = (fn: () => Promise<void>): Promise<void> => {
    const next = op.catch(() => undefined).then(fn);
    op = next;
    return next;
  };

  const emulator: Emulator = {
    authority,
    paths: Object.freeze({ ...spec.paths }),
    get url() {
      return baseUrl();
    },
    get port() {
      return port;
    },
    start: () => serialize(doStart),
    stop: () => serialize(doStop),
    setFaults(patch) {
      faults.apply(mustBeValid(validateFaults(patch, 'faults', { refresh: hasRefresh })));
    },
    clearFaults() {
      faults.clear();
    },
    addDevice: (device) => addPrincipal('devices', device, 'device'),
    addClient: (client) => addPrincipal('clients', client, 'client'),
    addCompany: (company) => addPrincipal('companies', company, 'company'),
    expireRefreshTokens() {
      if (!wire.expireRefreshTokens) throw new TypeError(`the ${authority} emulator has no refresh tokens`);
      return wire.expireRefreshTokens();
    },
    stats() {
      const copy: EmulatorStats = { ...stats, byStatus: { ...stats.byStatus } };
      if (stats.lastRequestHeaders) copy.lastRequestHeaders = { ...stats.lastRequestHeaders };
      const apiStats = api.stats();
      if (apiStats) copy.api = apiStats;
      return copy;
    },
    resetStats() {
      stats = emptyStats(hasRefresh);
      api.resetStats();
    },
    publicJwk: () => key.publicJwk(),
    apiSubmissions: () => apiRecords.list(),
    clearApiSubmissions: () => apiRecords.clear(),
    setApiFaults(patch) {
      apiFaults.apply(mustBeValid(validateApiFaults(patch, 'apiFaults')));
    },
    clearApiFaults() {
      apiFaults.clear();
    },
    revokeTokens: () => apiAuth.revokeAll(),
  };
  return emulator;
}
