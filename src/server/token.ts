/**
 * `GET /v1/token` and `POST /v1/token/refresh`, and the hot path: a well-formed GET /v1/token for an account
 * holding a fresh token is answered from `peek`, without a promise, a URL parse or a serialization per request.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { DEFAULT_MIN_TTL_S, type TokenBody } from '../api/index.js';
import type { ServedToken, TokenAnswer, TokenError } from '../tokens/index.js';
import { knownAccount, unknownAccount } from './accounts.js';
import type { ServerContext, TokenBodyText, TokenTarget } from './context.js';
import { accountParam, badRequest, expectString, HttpError, MAX_BODY_BYTES, minTtlParam, payloadTooLarge, readJson, sendError } from './http.js';
import { refusal } from './gate.js';

/** Distinct request targets whose parse is kept (tills ask for the same one again and again). */
const TARGET_CACHE_SIZE = 64;

/**
 * The hot path: answers a GET /v1/token that passes the gate, for an account holding a fresh token, and says
 * so; anything else (an error to answer, a token to wait for) it leaves to the route table, which checks it all.
 */
export function answerFresh(ctx: ServerContext, req: IncomingMessage, res: ServerResponse): boolean {
  if (req.method !== 'GET' || !ctx.source.peek || refusal(req) !== undefined) return false;
  const target = ctx.tokenTargets(req.url ?? '/');
  if (!target) return false;
  const answer = ctx.source.peek(target.account, target.minTtl);
  if (!answer) return false;
  sendToken(ctx, res, answer);
  ctx.countRequest('/v1/token', res.statusCode);
  return true;
}

/** GET /v1/token: a fresh token was already answered by answerFresh; here a token may need waiting for. */
export async function getToken(ctx: ServerContext, req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
  const account = accountParam(url.searchParams.get('account'));
  const rawMinTtl = url.searchParams.get('min_ttl');
  const minTtl = rawMinTtl === null ? DEFAULT_MIN_TTL_S : minTtlParam(rawMinTtl);
  if (ctx.options.accounts) knownAccount(ctx.options.accounts, account, ctx.configFile);
  sendToken(ctx, res, await ctx.source.getToken(account, minTtl));
}

/** POST /v1/token/refresh `{"account"?, "rejected_token", "min_ttl"?}`. */
export async function refreshToken(ctx: ServerContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const body = await readJson(req, MAX_BODY_BYTES, (size) => payloadTooLarge('the body', size, MAX_BODY_BYTES, { fixed: 'POST /v1/token/refresh' }));
  const account = accountParam(body.account === undefined ? null : expectString(body.account, 'account'));
  if (body.rejected_token === undefined) throw badRequest('rejected_token is required');
  const rejected = expectString(body.rejected_token, 'rejected_token');
  // A JSON number only: anything else ('' here) fails the same check as a bad query value.
  const minTtl = body.min_ttl === undefined ? DEFAULT_MIN_TTL_S : minTtlParam(typeof body.min_ttl === 'number' ? String(body.min_ttl) : '');
  if (ctx.options.accounts) knownAccount(ctx.options.accounts, account, ctx.configFile);
  sendToken(ctx, res, await ctx.source.refresh(account, rejected, minTtl));
}

function sendToken(ctx: ServerContext, res: ServerResponse, answer: TokenAnswer): void {
  if (!answer.ok) {
    sendError(res, tokenHttpError(answer.error));
    return;
  }
  if (res.headersSent) return;
  const body = ctx.tokenBodies(answer.token);
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length, 'cache-control': 'no-store' });
  res.end(res.req.method === 'HEAD' ? undefined : body.text);
}

/** A token error as the agent answers it (the token routes, and the proxy when it has no token to send). */
export function tokenHttpError(e: TokenError): HttpError {
  switch (e.kind) {
    case 'unknown_account':
      return unknownAccount(e.message, e.known);
    case 'min_ttl_unsatisfiable':
      return new HttpError(400, {
        error: 'min_ttl_unsatisfiable',
        message: e.message,
        ...(e.minTtlS !== undefined ? { min_ttl: e.minTtlS } : {}),
        ...(e.lifetimeS !== undefined ? { lifetime_s: e.lifetimeS } : {}),
      });
    case 'refresh_limited':
      return new HttpError(429, { error: 'refresh_limited', message: e.message, retry_after: e.retryAfterS }, { 'retry-after': String(e.retryAfterS) });
    case 'unavailable':
      return new HttpError(
        503,
        { error: 'token_unavailable', reason: e.reason, message: e.message, retry_after: e.retryAfterS },
        { 'retry-after': String(e.retryAfterS) },
      );
  }
}

/** GET /v1/token targets already checked: their account and min_ttl, or null when they need the full path. */
export function createTargetCache(): (raw: string) => TokenTarget | null {
  const targets = new Map<string, TokenTarget | null>();
  // The last target asked, compared before the map: a till asks for the same one again and again, and a request's
  // target is a new string each time, which a map lookup must hash first.
  let lastRaw: string | undefined;
  let lastTarget: TokenTarget | null = null;
  return (raw) => {
    if (raw === lastRaw) return lastTarget;
    let t = targets.get(raw);
    if (t === undefined) {
      t = parseTarget(raw);
      if (targets.size >= TARGET_CACHE_SIZE) targets.delete(targets.keys().next().value!);
      targets.set(raw, t);
    }
    lastRaw = raw;
    lastTarget = t;
    return t;
  };
}

function parseTarget(raw: string): TokenTarget | null {
  try {
    const url = new URL(raw, 'http://agent');
    if (url.pathname !== '/v1/token') return null;
    const minTtl = url.searchParams.get('min_ttl');
    return { account: accountParam(url.searchParams.get('account')), minTtl: minTtl === null ? DEFAULT_MIN_TTL_S : minTtlParam(minTtl) };
  } catch {
    return null; // the full path answers it with the right error
  }
}

/**
 * The JSON of the last 200 answer per account: the same token with the same seconds left is serialized once
 * (expires_in changes once a second), not once per request.
 */
export function createTokenBodyCache(): (t: ServedToken) => TokenBodyText {
  const last = new Map<string, TokenBodyText>();
  return (t) => {
    const hit = last.get(t.account);
    if (hit && sameAnswer(hit.token, t)) return hit;
    const text = JSON.stringify(tokenBody(t));
    const body = { token: t, text, length: Buffer.byteLength(text) };
    last.set(t.account, body);
    return body;
  };
}

/** The same answer: the same object (the token manager answers one while nothing in it changes) or the same fields. */
function sameAnswer(a: ServedToken, b: ServedToken): boolean {
  return (
    a === b ||
    (a.accessToken === b.accessToken && a.expiresIn === b.expiresIn && a.expiresAt === b.expiresAt && a.tokenType === b.tokenType && a.scope === b.scope)
  );
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
