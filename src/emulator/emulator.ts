/**
 * The HTTP side of the emulator: routing, faults, stats, admin endpoints, start/stop.
 * The decisions on a token request live in token-request.ts, signing in jwt.ts.
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { sleep, systemClock } from '../lib/clock.js';
import { silentLogger } from '../lib/log.js';
import { createSigningKey } from './jwt.js';
import { createSlidingWindow, type SlidingWindow } from './rate-limit.js';
import { checkTokenRequest, headerValue } from './token-request.js';
import type { Emulator, EmulatorDevice, EmulatorFaults, EmulatorOptions, EmulatorStats } from './types.js';
import { validateDevice, validateFaults, type FaultsPatch } from './validate.js';

export const TOKEN_PATH = '/connect/token';
const DISCOVERY_PATH = '/.well-known/openid-configuration';
const JWKS_PATH = '/.well-known/openid-configuration/jwks';
const ADMIN_PREFIX = '/_emulator/';
const AUDIENCE = 'InvoicingAPI';
const DEFAULT_SCOPE = 'InvoicingAPI';
const BODY_CAP = 16 * 1024;
/** Past the cap a body is still drained (so the client can read the 413) up to this, then the socket is cut. */
const DRAIN_CAP = 1024 * 1024;
const REDACTED_HEADERS = new Set(['presharedkey', 'authorization', 'proxy-authorization', 'cookie']);

interface Answer {
  status: number;
  body: string;
  contentType: string;
  headers?: Record<string, string>;
  /** The OAuth error code, for logs. */
  error?: string;
  issued?: boolean;
  close?: boolean;
}

type BodyResult = { kind: 'ok'; body: Buffer } | { kind: 'too_large'; drained: boolean } | { kind: 'aborted' };

function json(value: unknown): string {
  return JSON.stringify(value);
}

function oauthError(status: number, error: string, description: string, headers?: Record<string, string>): Answer {
  const answer: Answer = {
    status,
    body: json({ error, error_description: description }),
    contentType: 'application/json',
    error,
  };
  if (headers) answer.headers = headers;
  return answer;
}

function jsonAnswer(status: number, value: unknown, headers?: Record<string, string>): Answer {
  const answer: Answer = { status, body: json(value), contentType: 'application/json; charset=utf-8' };
  if (headers) answer.headers = headers;
  return answer;
}

function readBody(req: IncomingMessage): Promise<BodyResult> {
  return new Promise((resolve) => {
    const declared = Number(headerValue(req.headers, 'content-length'));
    if (Number.isFinite(declared) && declared > DRAIN_CAP) {
      resolve({ kind: 'too_large', drained: false });
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (result: BodyResult): void => {
      if (done) return;
      done = true;
      req.off('data', onData);
      resolve(result);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > DRAIN_CAP) {
        req.socket.destroy();
        finish({ kind: 'aborted' });
      } else if (size <= BODY_CAP) {
        chunks.push(chunk);
      }
    };
    req.on('data', onData);
    req.once('end', () =>
      finish(size > BODY_CAP ? { kind: 'too_large', drained: true } : { kind: 'ok', body: Buffer.concat(chunks) }),
    );
    req.once('error', () => finish({ kind: 'aborted' }));
    req.once('close', () => finish({ kind: 'aborted' }));
  });
}

function formatHost(host: string): string {
  if (host === '0.0.0.0' || host === '') return '127.0.0.1';
  if (host === '::') return '[::1]';
  return host.includes(':') ? `[${host}]` : host;
}

function cleanPath(path: string): string {
  return path.replace(/[^\x21-\x7e]/g, '?').slice(0, 100);
}

function emptyStats(): EmulatorStats {
  return { requests: 0, issued: 0, rejected: 0, byStatus: {} };
}

function mustBeValid<T>(result: { ok: true; value: T } | { ok: false; problems: string[] }): T {
  if (!result.ok) throw new TypeError(result.problems.join('; '));
  return result.value;
}

export function createEmulator(options: EmulatorOptions = {}): Emulator {
  const host = options.host ?? '127.0.0.1';
  const clock = options.clock ?? systemClock;
  const log = (options.log ?? silentLogger).child({ component: 'emulator' });
  const strict = options.strict ?? true;
  const lifetimeS = options.lifetimeS ?? 3600;
  if (!Number.isInteger(lifetimeS) || lifetimeS < 0) throw new TypeError('lifetimeS: expected a non-negative integer');
  const perMinute = options.rateLimitPerMinute ?? 30;
  if (!Number.isInteger(perMinute) || perMinute < 0) {
    throw new TypeError('rateLimitPerMinute: expected a non-negative integer');
  }
  const requestedPort = options.port ?? 0;
  if (!Number.isInteger(requestedPort) || requestedPort < 0 || requestedPort > 65535) {
    throw new TypeError('port: expected an integer from 0 to 65535');
  }

  const key = createSigningKey();
  const limiter: SlidingWindow | undefined = perMinute > 0 ? createSlidingWindow(perMinute) : undefined;
  const devices = new Map<string, EmulatorDevice>();
  (options.devices ?? []).forEach((d, i) => {
    const device = mustBeValid(validateDevice(d, `devices[${i}]`));
    devices.set(device.clientId, device);
  });

  let faults: EmulatorFaults = {};
  let served5xx = 0;
  let servedMalformed = 0;
  let stats = emptyStats();

  let port = requestedPort;
  let everStarted = false;
  let server: Server | undefined;
  let lifetime: AbortController | undefined;
  let op: Promise<void> = Promise.resolve();

  const baseUrl = (): string => {
    if (!everStarted) throw new Error('the emulator has no URL before start()');
    return `http://${formatHost(host)}:${port}`;
  };

  // ---------- faults ----------

  function applyFaultsPatch(patch: FaultsPatch): void {
    const next: Record<string, unknown> = { ...faults };
    for (const [k, v] of Object.entries(patch)) {
      if (v === null || v === undefined) delete next[k];
      else next[k] = v;
    }
    faults = next as EmulatorFaults;
    sweep();
  }

  /** Forgets counters that have run out, so the faults shown are the ones still active. */
  function sweep(): void {
    if (faults.drop === 0) delete faults.drop;
    if (faults.fail5xx === 0) delete faults.fail5xx;
    if (faults.malformed === 0) delete faults.malformed;
    if (faults.rateLimit?.count === 0) delete faults.rateLimit;
    if (faults.error?.count === 0) delete faults.error;
  }

  /** Decides, at arrival, what the faults do to this token request; consumes the counters used. */
  function takeFault(): ReturnType<typeof takeFaultUnswept> {
    const result = takeFaultUnswept();
    sweep();
    return result;
  }

  function takeFaultUnswept(): { drop: true } | { drop: false; latencyMs: number; answer?: Answer; fault?: string } {
    if (faults.drop) {
      faults.drop -= 1;
      return { drop: true };
    }
    const latencyMs = faults.latencyMs ?? 0;
    if (faults.rateLimit && faults.rateLimit.count > 0) {
      faults.rateLimit = { ...faults.rateLimit, count: faults.rateLimit.count - 1 };
      return {
        drop: false,
        latencyMs,
        fault: 'rateLimit',
        answer: oauthError(429, 'rate_limited', 'too many requests (injected fault)', {
          'retry-after': faults.rateLimit.retryAfter,
        }),
      };
    }
    if (faults.fail5xx) {
      faults.fail5xx -= 1;
      const status = faults.status5xx ?? 503;
      const html = served5xx++ % 2 === 1;
      return {
        drop: false,
        latencyMs,
        fault: 'fail5xx',
        answer: html
          ? {
              status,
              contentType: 'text/html; charset=utf-8',
              body: `<html><head><title>${status} Service Unavailable</title></head><body><h1>${status}</h1><p>The service is temporarily unavailable.</p></body></html>`,
            }
          : jsonAnswer(status, { error: 'server_error', error_description: 'injected fault' }),
      };
    }
    if (faults.malformed) {
      faults.malformed -= 1;
      const notJson = servedMalformed++ % 2 === 0;
      return {
        drop: false,
        latencyMs,
        fault: 'malformed',
        answer: {
          status: 200,
          contentType: 'application/json; charset=utf-8',
          body: notJson ? '{"access_token": "eyJhbGciOi' : json({ token_type: 'Bearer', expires_in: 3600 }),
          headers: { 'cache-control': 'no-store' },
        },
      };
    }
    if (faults.error && faults.error.count !== 0) {
      const { code, description, count } = faults.error;
      if (count !== undefined) faults.error = { ...faults.error, count: count - 1 };
      return {
        drop: false,
        latencyMs,
        fault: 'error',
        answer: oauthError(400, code, description ?? 'injected fault'),
      };
    }
    return { drop: false, latencyMs };
  }

  // ---------- answers ----------

  function send(res: ServerResponse, answer: Answer): boolean {
    if (res.destroyed || res.writableEnded || res.headersSent) return false;
    const headers: Record<string, string | number> = {
      'content-type': answer.contentType,
      'content-length': Buffer.byteLength(answer.body),
      'cache-control': 'no-store',
      pragma: 'no-cache',
      ...answer.headers,
    };
    if (answer.close) headers.connection = 'close';
    res.writeHead(answer.status, headers);
    res.end(answer.body);
    return true;
  }

  function issue(device: EmulatorDevice): Answer {
    const lifetime = faults.lifetimeS ?? lifetimeS;
    const iat = Math.floor(clock.now() / 1000);
    const scope = device.scope ?? DEFAULT_SCOPE;
    const token = key.sign({
      iss: baseUrl(),
      sub: device.clientId,
      client_id: device.clientId,
      aud: AUDIENCE,
      iat,
      nbf: iat,
      exp: iat + lifetime,
      jti: randomUUID(),
      posserial: device.posserial,
      scope,
    });
    return {
      ...jsonAnswer(200, { access_token: token, token_type: 'Bearer', expires_in: lifetime, scope }),
      issued: true,
    };
  }

  async function tokenRequest(req: IncomingMessage, res: ServerResponse, signal: AbortSignal): Promise<void> {
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

    const fault = takeFault();
    if (fault.drop) {
      count('dropped');
      log.debug('token request dropped (fault)', { fault: 'drop' });
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

    let answer: Answer;
    if (fault.answer) {
      answer = fault.answer;
    } else if (req.method !== 'POST') {
      answer = oauthError(405, 'invalid_request', `method ${cleanPath(req.method ?? '')} is not allowed; use POST`, {
        allow: 'POST',
      });
    } else if (body.kind === 'too_large') {
      answer = oauthError(413, 'invalid_request', `request body is larger than ${BODY_CAP} bytes`);
      if (!body.drained) answer.close = true;
    } else {
      answer = decide(req, body.body);
    }

    if (!send(res, answer)) return;
    count(String(answer.status));
    if (answer.issued) stats.issued += 1;
    if (answer.status >= 400 && answer.status < 500) stats.rejected += 1;
    const fields: Record<string, unknown> = { status: answer.status };
    if (fault.fault) fields.fault = fault.fault;
    if (answer.error) fields.error = answer.error;
    log.debug('token request answered', fields);
  }

  function decide(req: IncomingMessage, body: Buffer): Answer {
    const posserial = headerValue(req.headers, 'posserial');
    if (limiter && posserial !== undefined && posserial !== '' && posserial.length <= 100) {
      const verdict = limiter.take(posserial, clock.monotonic());
      if (!verdict.allowed) {
        return oauthError(
          429,
          'rate_limited',
          `too many token requests for this POS; retry after ${verdict.retryAfterS} s`,
          { 'retry-after': String(verdict.retryAfterS) },
        );
      }
    }
    const check = checkTokenRequest({ headers: req.headers, body, strict, devices });
    if (!check.ok) return oauthError(400, check.error, check.description);
    return issue(check.device);
  }

  // ---------- admin ----------

  async function admin(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const method = req.method ?? '';
    const route = path.slice(ADMIN_PREFIX.length);
    const allowed: Record<string, string[]> = {
      stats: ['GET'],
      'stats/reset': ['POST'],
      faults: ['GET', 'POST', 'DELETE'],
      devices: ['GET', 'POST'],
    };
    const methods = allowed[route];
    if (!methods) {
      send(res, jsonAnswer(404, { error: 'not_found', error_description: `no such path ${cleanPath(path)}` }));
      return;
    }
    if (!methods.includes(method)) {
      send(
        res,
        jsonAnswer(405, { error: 'method_not_allowed', error_description: `use ${methods.join(' or ')}` }, {
          allow: methods.join(', '),
        }),
      );
      return;
    }
    let input: unknown;
    if (method === 'POST' && route !== 'stats/reset') {
      const body = await readBody(req);
      if (body.kind === 'aborted') return;
      if (body.kind === 'too_large') {
        send(res, { ...oauthError(413, 'invalid_request', `body is larger than ${BODY_CAP} bytes`), close: !body.drained });
        return;
      }
      try {
        input = JSON.parse(body.body.toString('utf8'));
      } catch {
        send(res, oauthError(400, 'invalid_request', 'body is not valid JSON'));
        return;
      }
    }
    const invalid = (problems: string[]): void => {
      send(res, oauthError(400, 'invalid_request', problems.join('; ')));
    };
    switch (`${method} ${route}`) {
      case 'GET stats':
        send(res, jsonAnswer(200, emulator.stats()));
        return;
      case 'POST stats/reset':
        emulator.resetStats();
        send(res, jsonAnswer(200, { ok: true }));
        return;
      case 'GET faults':
        send(res, jsonAnswer(200, { faults }));
        return;
      case 'POST faults': {
        const result = validateFaults(input);
        if (!result.ok) return invalid(result.problems);
        applyFaultsPatch(result.value);
        log.info('faults set', { faults: Object.keys(faults) });
        send(res, jsonAnswer(200, { faults }));
        return;
      }
      case 'DELETE faults':
        emulator.clearFaults();
        send(res, jsonAnswer(200, { faults }));
        return;
      case 'GET devices':
        send(
          res,
          jsonAnswer(200, {
            devices: [...devices.values()].map((d) => ({
              clientId: d.clientId,
              posserial: d.posserial,
              status: d.status ?? 'active',
              scope: d.scope ?? DEFAULT_SCOPE,
            })),
          }),
        );
        return;
      case 'POST devices': {
        const result = validateDevice(input);
        if (!result.ok) return invalid(result.problems);
        devices.set(result.value.clientId, result.value);
        log.info('device added', { clientId: result.value.clientId, posserial: result.value.posserial });
        send(res, jsonAnswer(201, { clientId: result.value.clientId }));
        return;
      }
    }
  }

  // ---------- routing ----------

  async function route(req: IncomingMessage, res: ServerResponse, signal: AbortSignal): Promise<void> {
    let path: string;
    try {
      path = new URL(req.url ?? '/', 'http://emulator.invalid').pathname;
    } catch {
      send(res, jsonAnswer(400, { error: 'invalid_request', error_description: 'bad request target' }));
      return;
    }
    if (path === TOKEN_PATH) return tokenRequest(req, res, signal);
    if (path.startsWith(ADMIN_PREFIX)) return admin(req, res, path);
    if (path === DISCOVERY_PATH || path === JWKS_PATH) {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        send(res, jsonAnswer(405, { error: 'method_not_allowed', error_description: 'use GET' }, { allow: 'GET' }));
        return;
      }
      const base = baseUrl();
      const value =
        path === JWKS_PATH
          ? { keys: [key.publicJwk()] }
          : {
              issuer: base,
              token_endpoint: `${base}${TOKEN_PATH}`,
              jwks_uri: `${base}${JWKS_PATH}`,
              grant_types_supported: ['client_credentials'],
              token_endpoint_auth_methods_supported: ['client_secret_post'],
              response_types_supported: ['token'],
              id_token_signing_alg_values_supported: ['RS256'],
              scopes_supported: [DEFAULT_SCOPE],
            };
      send(res, { ...jsonAnswer(200, value), headers: { 'cache-control': 'max-age=60' } });
      return;
    }
    send(res, jsonAnswer(404, { error: 'not_found', error_description: `no such path ${cleanPath(path)}` }));
  }

  // ---------- lifecycle ----------

  async function doStart(): Promise<void> {
    if (server) return;
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
    get url() {
      return baseUrl();
    },
    get port() {
      return port;
    },
    start: () => serialize(doStart),
    stop: () => serialize(doStop),
    setFaults(patch) {
      applyFaultsPatch(mustBeValid(validateFaults(patch)));
    },
    clearFaults() {
      faults = {};
    },
    addDevice(device) {
      const valid = mustBeValid(validateDevice(device));
      devices.set(valid.clientId, valid);
    },
    stats() {
      const copy: EmulatorStats = { ...stats, byStatus: { ...stats.byStatus } };
      if (stats.lastRequestHeaders) copy.lastRequestHeaders = { ...stats.lastRequestHeaders };
      return copy;
    },
    resetStats() {
      stats = emptyStats();
    },
    publicJwk: () => key.publicJwk(),
  };
  return emulator;
}
