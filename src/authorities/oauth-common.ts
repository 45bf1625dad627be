/**
 * Pieces every OAuth-style token endpoint shares: Retry-After, the standard token answer,
 * the standard error object, and the mapping of HTTP statuses to typed failures.
 */
import type { HttpResponse } from './http.js';
import { TransportError } from './http.js';
import { failure, type IssuedToken, type LoginResult } from './types.js';

/** Longest wait we accept from a Retry-After; anything longer is clamped. */
export const MAX_RETRY_AFTER_MS = 3_600_000;
const MAX_TOKEN_CHARS = 16 * 1024;
const MAX_LIFETIME_S = 30 * 86_400;

export function header(res: HttpResponse, name: string): string | undefined {
  const v = res.headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

/** Retry-After as delta-seconds or an HTTP date; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | undefined, now: number): number | undefined {
  if (value === undefined) return undefined;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Math.min(Number(trimmed) * 1000, MAX_RETRY_AFTER_MS);
  // An HTTP date (RFC 9110: IMF-fixdate, or the obsolete RFC 850 and asctime forms) starts with a day name;
  // anything else (negative or fractional numbers, free text) is unreadable, not "now".
  if (!/^(Mon|Tue|Wed|Thu|Fri|Sat|Sun)[a-z]*,? /i.test(trimmed)) return undefined;
  const at = Date.parse(trimmed);
  if (Number.isNaN(at)) return undefined;
  return Math.min(Math.max(0, at - now), MAX_RETRY_AFTER_MS);
}

/** Printable text from an untrusted answer, shortened. */
export function clean(value: unknown, max: number): string | undefined {
  if (typeof value !== 'string') return undefined;
  const s = value.replace(/[\x00-\x1f\x7f]+/g, ' ').trim();
  if (!s) return undefined;
  return s.length > max ? `${s.slice(0, max)}…` : s;
}

function isJsonContentType(res: HttpResponse): boolean {
  const ct = header(res, 'content-type') ?? '';
  return /^application\/([\w.+-]*\+)?json\b/i.test(ct.trim());
}

export function parseJsonBody(res: HttpResponse): { ok: true; value: unknown } | { ok: false; why: string } {
  if (!isJsonContentType(res)) {
    const ct = header(res, 'content-type');
    return { ok: false, why: `Content-Type ${ct ? JSON.stringify(clean(ct, 60)) : '(none)'} instead of JSON` };
  }
  try {
    return { ok: true, value: JSON.parse(res.body.toString('utf8')) };
  } catch {
    return { ok: false, why: 'a body that is not valid JSON' };
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Seconds between a JWT's iat and exp, when the token is a JWT carrying both. */
export function jwtLifetimeS(token: string): number | undefined {
  const claims = decodeJwtClaims(token);
  if (!claims) return undefined;
  const { exp, iat } = claims;
  if (typeof exp === 'number' && typeof iat === 'number' && exp > iat) return exp - iat;
  return undefined;
}

/** The payload of a JWT, unverified (the agent only reads `exp`/`iat`; the authority's APIs verify). */
export function decodeJwtClaims(token: string): Record<string, unknown> | undefined {
  const parts = token.split('.');
  if (parts.length !== 3 || !parts[1]) return undefined;
  try {
    const claims: unknown = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
    return isRecord(claims) ? claims : undefined;
  } catch {
    return undefined;
  }
}

/** Validates an RFC 6749 section 5.1 answer object into an IssuedToken. */
export function readTokenObject(value: unknown): { ok: true; token: IssuedToken } | { ok: false; why: string } {
  if (!isRecord(value)) return { ok: false, why: 'an answer that is not a JSON object' };
  const accessToken = value.access_token;
  if (typeof accessToken !== 'string' || accessToken.length === 0) {
    return { ok: false, why: 'an answer without access_token' };
  }
  if (accessToken.length > MAX_TOKEN_CHARS || !/^[\x21-\x7e]+$/.test(accessToken)) {
    return { ok: false, why: 'an access_token that is too long or has characters not allowed in a header' };
  }
  const tokenType = value.token_type === undefined ? 'Bearer' : value.token_type;
  if (typeof tokenType !== 'string' || tokenType.toLowerCase() !== 'bearer') {
    return { ok: false, why: `token_type ${JSON.stringify(clean(String(tokenType), 20))} instead of Bearer` };
  }
  let expiresIn: number | undefined;
  const raw = value.expires_in;
  if (typeof raw === 'number') expiresIn = raw;
  else if (typeof raw === 'string' && /^\d+$/.test(raw.trim())) expiresIn = Number(raw);
  else if (raw === undefined || raw === null) expiresIn = jwtLifetimeS(accessToken);
  if (expiresIn === undefined) {
    return { ok: false, why: 'an answer without a usable expires_in (and no exp/iat in the token)' };
  }
  if (!Number.isFinite(expiresIn) || expiresIn < 1 || expiresIn > MAX_LIFETIME_S) {
    return { ok: false, why: `expires_in ${JSON.stringify(raw)} out of range` };
  }
  const scope = typeof value.scope === 'string' ? clean(value.scope, 200) : undefined;
  return {
    ok: true,
    token: {
      accessToken,
      tokenType: 'Bearer',
      expiresInS: Math.floor(expiresIn),
      ...(scope !== undefined ? { scope } : {}),
    },
  };
}

/** Maps a standard OAuth token-endpoint answer to a LoginResult. */
export function parseOAuthTokenResponse(res: HttpResponse, now: number, service: string): LoginResult {
  const status = res.status;
  if (status === 200) {
    const body = parseJsonBody(res);
    if (!body.ok) return failure('upstream_unavailable', `${service} answered 200 with ${body.why}`, { httpStatus: status });
    const token = readTokenObject(body.value);
    if (!token.ok) return failure('upstream_unavailable', `${service} answered 200 with ${token.why}`, { httpStatus: status });
    return { ok: true, token: token.token };
  }
  const retryAfterMs = parseRetryAfter(header(res, 'retry-after'), now);
  if (status === 429) {
    return failure('rate_limited', `${service} is rate limiting logins (429)`, {
      httpStatus: status,
      ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
    });
  }
  if (status === 400 || status === 401 || status === 403) {
    const body = parseJsonBody(res);
    const obj = body.ok && isRecord(body.value) ? body.value : {};
    const error = clean(obj.error, 100);
    const errorDescription = clean(obj.error_description, 300);
    const what = error ? `${error}${errorDescription ? ` (${errorDescription})` : ''}` : `HTTP ${status} without an OAuth error object`;
    return failure('credentials_rejected', `${service} rejected the login: ${what}`, {
      httpStatus: status,
      ...(error !== undefined ? { error } : {}),
      ...(errorDescription !== undefined ? { errorDescription } : {}),
    });
  }
  const hint = status === 404 || status === 405 ? ' (check identityUrl)' : '';
  return failure('upstream_unavailable', `${service} answered HTTP ${status}${hint}`, {
    httpStatus: status,
    ...(retryAfterMs !== undefined && status >= 500 ? { retryAfterMs } : {}),
  });
}

export function transportFailure(err: unknown, service: string): LoginResult {
  if (err instanceof TransportError) {
    return failure('upstream_unavailable', `${service} unreachable: ${err.message}`);
  }
  return failure('upstream_unavailable', `${service} unreachable: unexpected error`);
}
