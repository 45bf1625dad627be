/**
 * A request to a token endpoint as the shared server handles it: the faults first (drop, latency, an injected
 * answer), then the method and the body cap, then the wire's own endpoint; the token counters and a log line.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { type Clock, sleep } from '../lib/clock.js';
import type { Logger } from '../lib/log.js';
import type { FaultDecision, FaultState } from './faults.js';
import { type Answer, BODY_CAP, type BodyResult, cleanPath, JSON_TYPE, readBody, send } from './http.js';
import type { TokenStats } from './token-stats.js';
import type { TokenEndpoint, Wire } from './wire/types.js';

export interface TokenRequestDeps {
  wire: Wire;
  faults: FaultState;
  stats: TokenStats;
  clock: Clock;
  log: Logger;
}

export async function handleTokenRequest(
  deps: TokenRequestDeps,
  endpoint: TokenEndpoint,
  req: IncomingMessage,
  res: ServerResponse,
  signal: AbortSignal,
): Promise<void> {
  deps.stats.request(req.headers);
  const fault = deps.faults.take();
  if (fault.kind === 'drop') {
    deps.stats.count('dropped');
    deps.log.debug('token request dropped (fault)', { fault: 'drop', path: endpoint.path });
    req.socket.destroy();
    return;
  }
  const body = req.method === 'POST' ? await readBody(req) : { kind: 'ok' as const, body: Buffer.alloc(0) };
  if (body.kind === 'aborted') {
    deps.log.debug('token request aborted by the client');
    return;
  }
  if (fault.latencyMs > 0) {
    try {
      await sleep(deps.clock, fault.latencyMs, signal);
    } catch {
      return; // stopped meanwhile; the connection is gone
    }
  }
  const answer = tokenAnswer(deps.wire, fault, endpoint, req, body);
  if (!send(res, answer)) return;
  deps.stats.answered(answer);
  const fields: Record<string, unknown> = { path: endpoint.path, status: answer.status };
  if (fault.kind !== 'none') fields.fault = fault.kind;
  if (answer.error) fields.error = answer.error;
  deps.log.debug('token request answered', fields);
}

/** An injected fault answers whatever the request was; else the method, the body cap, then the endpoint. */
function tokenAnswer(
  wire: Wire,
  fault: FaultDecision,
  endpoint: TokenEndpoint,
  req: IncomingMessage,
  body: Exclude<BodyResult, { kind: 'aborted' }>,
): Answer {
  const injected = faultAnswer(fault, wire);
  if (injected) return injected;
  if (req.method !== 'POST') return wire.errors.methodNotAllowed(cleanPath(req.method ?? ''));
  if (body.kind === 'too_large') {
    const answer = wire.errors.tooLarge(BODY_CAP);
    if (!body.drained) answer.close = true;
    return answer;
  }
  return endpoint.handle({ headers: req.headers, body: body.body });
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
