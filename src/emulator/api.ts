/**
 * The authorities' submission APIs under /api/, on the token service's own server and port (so an account's
 * `apiUrl` is the emulator's base URL). Strict like the token side: every request needs a bearer token this
 * emulator issued and has not revoked; then the API faults; then the route (api-routes.ts). Everything that
 * passed the bearer check is recorded (api-records.ts) for tests to read back.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type Clock, sleep } from '../lib/clock.js';
import type { Logger } from '../lib/log.js';
import type { ApiAuth } from './api-auth.js';
import type { ApiFaultDecision, ApiFaultState } from './api-faults.js';
import type { ApiRecords } from './api-records.js';
import {
  type ApiCall,
  type ApiErrorKind,
  type ApiErrorRenderer,
  bodyUuids,
  DOCUMENTS_PATH,
  documentSubmission,
  ECHO_PATH,
  echoAnswer,
  genericEndpoint,
  LARGE_PATH,
  largeAnswer,
  type Outcome,
  type ParsedBody,
  RECEIPTS_PATH,
  receiptSubmission,
  type RouteDeps,
} from './api-routes.js';
import { type ApiStats, createApiStats } from './api-stats.js';
import { type Answer, type BodyLimits, type BodyResult, headerValue, jsonAnswer, readBody, send } from './http.js';
import type { ApiSubmission, EmulatorApiStats, EmulatorAuthority } from './types.js';
import type { WireErrors } from './wire/types.js';
const { randomUUID } = process.getBuiltinModule('node:crypto');

export const API_PREFIX = '/api/';
export const DEFAULT_API_BODY_CAP = 6 * 1024 * 1024;

export interface ApiDeps {
  authority: EmulatorAuthority;
  clock: Clock;
  log: Logger;
  auth: ApiAuth;
  faults: ApiFaultState;
  records: ApiRecords;
  /** The wire's error shapes, for the authorities without ETA's API error shape. */
  errors: WireErrors;
  maxBodyBytes: number;
}

export interface ApiServer {
  handle(req: IncomingMessage, res: ServerResponse, signal: AbortSignal): Promise<void>;
  /** A copy, or undefined before the first request since the last reset. */
  stats(): EmulatorApiStats | undefined;
  resetStats(): void;
}

/** The codes each style uses for the server's own refusals: ETA's PascalCase ones, or OAuth-like ones. */
const CODES: Record<ApiErrorKind, [eta: string, other: string]> = {
  unauthorized: ['Unauthorized', 'invalid_token'],
  badStructure: ['BadStructure', 'invalid_request'],
  tooLarge: ['MaximumSizeExceeded', 'request_too_large'],
  methodNotAllowed: ['MethodNotAllowed', 'method_not_allowed'],
  rateLimited: ['TooManyRequests', 'rate_limited'],
  serverError: ['ServiceUnavailable', 'server_error'],
};

/** ETA's API errors: `{error: {code, message, target, details}}` with a `correlationId` header. */
function etaRenderer(): ApiErrorRenderer {
  return (status, code, message, extra = {}) => {
    const name = (CODES as Record<string, [string, string]>)[code]?.[0] ?? code;
    const body = { error: { code: name, message, target: extra.target ?? '', details: [] } };
    return { ...jsonAnswer(status, body, { correlationId: randomUUID(), ...extra.headers }), error: name };
  };
}

/** The other authorities: their token service's error shape (OAuth, SePay's, problem details). */
function wireRenderer(errors: WireErrors): ApiErrorRenderer {
  return (status, code, message, extra = {}) => {
    const name = (CODES as Record<string, [string, string]>)[code]?.[1] ?? code;
    const answer = errors.injected(status, name, message);
    return extra.headers ? { ...answer, headers: { ...answer.headers, ...extra.headers } } : answer;
  };
}

const ETA_STYLE: ReadonlySet<EmulatorAuthority> = new Set(['eta-ereceipt', 'eta-einvoicing']);

function parseBody(raw: Buffer): ParsedBody {
  if (raw.length === 0) return { kind: 'empty' };
  try {
    return { kind: 'json', value: JSON.parse(raw.toString('utf8')) as unknown };
  } catch {
    return { kind: 'invalid' };
  }
}

const INVALID_TOKEN = (description: string): Record<string, string> => ({
  'www-authenticate': `Bearer error="invalid_token", error_description="${description.replace(/["\\]/g, '')}"`,
});

/** Which route a path goes to. */
function dispatch(call: ApiCall, authority: EmulatorAuthority, routeDeps: RouteDeps): Outcome {
  const lower = call.path.toLowerCase();
  if (call.path === LARGE_PATH) return largeAnswer(call, routeDeps);
  if (call.path === ECHO_PATH || call.path.startsWith(`${ECHO_PATH}/`)) return echoAnswer(call);
  if (authority === 'eta-ereceipt' && lower === RECEIPTS_PATH) return receiptSubmission(call, routeDeps);
  if (authority === 'eta-einvoicing' && lower === DOCUMENTS_PATH) return documentSubmission(call, routeDeps, 'internalID');
  if (authority === 'myinvois' && lower === DOCUMENTS_PATH) return documentSubmission(call, routeDeps, 'codeNumber');
  return genericEndpoint(call, routeDeps);
}

function unauthorizedAnswer(error: ApiErrorRenderer, description: string): Answer {
  return error(401, 'unauthorized', description, { headers: INVALID_TOKEN(description) });
}

/** What a fault answers instead of the route, if it does; revoke401 also revokes the token. */
function faultAnswer(fault: ApiFaultDecision, jti: string, auth: ApiAuth, error: ApiErrorRenderer): Answer | undefined {
  switch (fault.kind) {
    case 'rateLimit':
      return error(429, 'rateLimited', 'too many requests (injected fault)', { headers: { 'retry-after': fault.retryAfter } });
    case 'fail5xx':
      return error(fault.status, 'serverError', 'the service is temporarily unavailable (injected fault)');
    case 'revoke401':
      auth.revoke(jti);
      return unauthorizedAnswer(error, 'the access token has been revoked');
    case 'error':
      return error(fault.status, fault.code, fault.description);
    default:
      return undefined;
  }
}

/** What the request handlers share. */
interface ApiContext {
  deps: ApiDeps;
  error: ApiErrorRenderer;
  routeDeps: RouteDeps;
  limits: BodyLimits;
  stats: ApiStats;
}

export function createApi(deps: ApiDeps): ApiServer {
  const eta = ETA_STYLE.has(deps.authority);
  const error = eta ? etaRenderer() : wireRenderer(deps.errors);
  const ctx: ApiContext = {
    deps,
    error,
    routeDeps: {
      records: deps.records,
      error,
      okHeaders: eta ? () => ({ correlationId: randomUUID() }) : () => undefined,
    },
    limits: { cap: deps.maxBodyBytes, drain: deps.maxBodyBytes + 1024 * 1024 },
    stats: createApiStats(),
  };
  return {
    handle: (req, res, signal) => handleApiRequest(ctx, req, res, signal),
    stats: () => ctx.stats.get(),
    resetStats: () => ctx.stats.reset(),
  };
}

/** The bearer check, the body, the faults' latency; then the answer. */
async function handleApiRequest(ctx: ApiContext, req: IncomingMessage, res: ServerResponse, signal: AbortSignal): Promise<void> {
  const { deps, stats } = ctx;
  stats.request();
  const verdict = deps.auth.check(headerValue(req.headers, 'authorization'));
  if (!verdict.ok) {
    if (send(res, unauthorizedAnswer(ctx.error, verdict.description))) stats.count(401);
    return;
  }
  const body = await readBody(req, ctx.limits);
  if (body.kind === 'aborted') return;
  const fault = deps.faults.take();
  if (fault.latencyMs > 0) {
    try {
      await sleep(deps.clock, fault.latencyMs, signal);
    } catch {
      return; // stopped meanwhile; the connection is gone
    }
  }
  const tooLarge = body.kind === 'too_large' ? { drained: body.drained } : undefined;
  answerCall(ctx, apiCall(req, body), fault, verdict.jti, tooLarge, res);
}

function apiCall(req: IncomingMessage, body: Exclude<BodyResult, { kind: 'aborted' }>): ApiCall {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  const raw = body.kind === 'ok' ? body.body : Buffer.alloc(0);
  return {
    method: req.method ?? '',
    path: q < 0 ? url : url.slice(0, q),
    query: q < 0 ? '' : url.slice(q + 1),
    headers: req.headers,
    raw,
    parsed: body.kind === 'ok' ? parseBody(raw) : { kind: 'empty' },
  };
}

/** Answers a request that passed the bearer check and whose body was read: faults, route, record, send. */
function answerCall(
  ctx: ApiContext,
  call: ApiCall,
  fault: ApiFaultDecision,
  jti: string,
  tooLarge: { drained: boolean } | undefined,
  res: ServerResponse,
): void {
  const { deps, stats } = ctx;
  const outcome = callOutcome(ctx, call, fault, jti, tooLarge);
  const record = submissionRecord(deps, call, outcome, fault, jti);
  deps.records.add(record, call.raw.length);
  if (outcome.duplicate) stats.duplicate();
  if (fault.kind === 'drop') {
    stats.count('dropped');
    deps.log.debug('API answer dropped (fault)', { path: call.path, seq: record.seq });
    res.socket?.destroy();
    return;
  }
  if (send(res, outcome.answer)) stats.count(outcome.answer.status);
}

/** An injected fault, else the body cap, else the route. */
function callOutcome(
  ctx: ApiContext,
  call: ApiCall,
  fault: ApiFaultDecision,
  jti: string,
  tooLarge: { drained: boolean } | undefined,
): Outcome {
  const injected = faultAnswer(fault, jti, ctx.deps.auth, ctx.error);
  if (injected) return { answer: injected, uuids: bodyUuids(call.path, call.parsed), duplicate: false };
  if (tooLarge) {
    const a = ctx.error(413, 'tooLarge', `the body is larger than ${ctx.deps.maxBodyBytes} bytes`);
    return { answer: tooLarge.drained ? a : { ...a, close: true }, uuids: [], duplicate: false };
  }
  return dispatch(call, ctx.deps.authority, ctx.routeDeps);
}

function submissionRecord(deps: ApiDeps, call: ApiCall, outcome: Outcome, fault: ApiFaultDecision, jti: string): ApiSubmission {
  const record: ApiSubmission = {
    seq: deps.records.nextSeq(),
    at: new Date(deps.clock.now()).toISOString(),
    method: call.method,
    path: call.path,
    status: outcome.answer.status,
    tokenJti: jti,
    body: call.parsed.kind === 'json' ? call.parsed.value : null,
    uuids: outcome.uuids,
    duplicate: outcome.duplicate,
  };
  if (fault.kind !== 'none') record.fault = fault.kind;
  return record;
}
