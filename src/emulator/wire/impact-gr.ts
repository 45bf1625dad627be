/**
 * Greece Impact eInvoicing, bearer-token authentication:
 * - POST /Authentication/login, JSON `{"vat", "key"}`, no authorization: `{accessToken, refreshToken: {token,
 *   expiresAt}}` (see ImpactTokenAnswer); access token a JWT of 15 minutes, refresh token 7 days.
 * - POST /Authentication/refresh, `Authorization: Bearer <access token>` (an expired one is fine: that is when
 *   clients refresh), body the refresh token as a bare JSON string: the same shape with a new refresh token;
 *   the old one stops working (rotation).
 * Errors are ASP.NET Core problem details (see ImpactProblem); a refused refresh is 401, upon which clients log
 * in again.
 */
import { randomBytes } from 'node:crypto';
import { headerValue, type Answer } from '../http.js';
import type { EmulatorCompany, ImpactProblem, ImpactTokenAnswer } from '../types.js';
import { validateCompany } from '../validate.js';
import { checkContentType, quotable, sameSecret } from './oauth.js';
import { createRegistry } from './registry.js';
import type { Wire, WireContext, WireErrors, WireRequest, WireSpec } from './types.js';

const LOGIN_PATH = '/Authentication/login';
const REFRESH_PATH = '/Authentication/refresh';
const JSON_MEDIA = 'application/json';
const PROBLEM_TYPE = 'application/problem+json; charset=utf-8';
/** Refresh tokens kept at most; the oldest are forgotten first. */
const MAX_REFRESH_TOKENS = 100_000;

const STATUS: Record<number, { title: string; type: string }> = {
  400: { title: 'Bad Request', type: 'https://tools.ietf.org/html/rfc9110#section-15.5.1' },
  401: { title: 'Unauthorized', type: 'https://tools.ietf.org/html/rfc9110#section-15.5.2' },
  405: { title: 'Method Not Allowed', type: 'https://tools.ietf.org/html/rfc9110#section-15.5.6' },
  413: { title: 'Content Too Large', type: 'https://tools.ietf.org/html/rfc9110#section-15.5.14' },
  415: { title: 'Unsupported Media Type', type: 'https://tools.ietf.org/html/rfc9110#section-15.5.16' },
  429: { title: 'Too Many Requests', type: 'https://tools.ietf.org/html/rfc6585#section-4' },
  500: { title: 'Internal Server Error', type: 'https://tools.ietf.org/html/rfc9110#section-15.6.1' },
  502: { title: 'Bad Gateway', type: 'https://tools.ietf.org/html/rfc9110#section-15.6.3' },
  503: { title: 'Service Unavailable', type: 'https://tools.ietf.org/html/rfc9110#section-15.6.4' },
  504: { title: 'Gateway Timeout', type: 'https://tools.ietf.org/html/rfc9110#section-15.6.5' },
};

function problem(
  status: number,
  fields: { title?: string; detail?: string; errors?: Record<string, string[]> },
  headers?: Record<string, string>,
): Answer {
  const known = STATUS[status];
  const body: ImpactProblem = {
    type: known?.type ?? 'about:blank',
    title: fields.title ?? known?.title ?? 'Error',
    status,
    traceId: `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-00`,
  };
  if (fields.detail !== undefined) body.detail = fields.detail;
  if (fields.errors !== undefined) body.errors = fields.errors;
  const answer: Answer = { status, body: JSON.stringify(body), contentType: PROBLEM_TYPE, error: body.title };
  if (headers) answer.headers = headers;
  return answer;
}

const invalid = (field: string, message: string): Answer =>
  problem(400, { title: 'One or more validation errors occurred.', errors: { [field]: [message] } });
const unauthorized = (detail: string, headers?: Record<string, string>): Answer => problem(401, { detail }, headers);

const ERRORS: WireErrors = Object.freeze({
  methodNotAllowed: () => problem(405, { detail: 'use POST' }, { allow: 'POST' }),
  tooLarge: (limit: number) => problem(413, { detail: `the body is larger than ${limit} bytes` }),
  rateLimited: (retryAfter: string, description: string) =>
    problem(429, { detail: description || 'too many requests' }, { 'retry-after': retryAfter }),
  serverError: (status: number) => problem(status, { detail: 'injected fault' }),
  injected: (status: number, code: string, description: string) => problem(status, { title: code, detail: description }),
  tokenless: () => JSON.stringify({ refreshToken: null }),
});

type Parsed = { ok: true; value: unknown } | { ok: false; answer: Answer };

function parseJson(body: Buffer): Parsed {
  try {
    return { ok: true, value: JSON.parse(body.toString('utf8')) };
  } catch {
    return { ok: false, answer: invalid('$', 'the body is not valid JSON') };
  }
}

function create(ctx: WireContext): Wire {
  const companies = createRegistry<EmulatorCompany>({
    kind: 'companies',
    validate: validateCompany,
    id: (c) => c.vat,
    summary: (c) => ({ vat: c.vat }),
    secrets: (c) => [c.apiKey],
  });
  /** Live refresh tokens: token → company and expiry (wall ms). Used ones are deleted. */
  const refreshTokens = new Map<string, { vat: string; expiresAt: number }>();

  /** The wire checks both endpoints share: Content-Type (strict) and a JSON body. */
  function readJson(req: WireRequest): Parsed {
    if (ctx.strict) {
      const deviation = checkContentType(headerValue(req.headers, 'content-type'), JSON_MEDIA, companies.secrets());
      if (deviation) return { ok: false, answer: problem(415, { detail: deviation }) };
    }
    return parseJson(req.body);
  }

  function issue(vat: string, refreshed: boolean): Answer {
    const now = ctx.clock.now();
    const { token: accessToken } = ctx.accessToken({ sub: vat, vat });
    for (const [token, record] of refreshTokens) {
      if (refreshTokens.size < MAX_REFRESH_TOKENS && record.expiresAt > now) break;
      refreshTokens.delete(token);
    }
    const token = randomBytes(64).toString('base64');
    const expiresAt = now + ctx.refreshLifetimeS * 1000;
    refreshTokens.set(token, { vat, expiresAt });
    const value: ImpactTokenAnswer = { accessToken, refreshToken: { token, expiresAt: new Date(expiresAt).toISOString() } };
    return {
      status: 200,
      body: JSON.stringify(value),
      contentType: 'application/json; charset=utf-8',
      issued: true,
      refreshed,
    };
  }

  function login(req: WireRequest): Answer {
    const parsed = readJson(req);
    if (!parsed.ok) return parsed.answer;
    const input = parsed.value;
    if (typeof input !== 'object' || input === null || Array.isArray(input)) {
      return invalid('$', 'expected a JSON object {"vat", "key"}');
    }
    const fields: Record<string, unknown> = {};
    for (const [name, value] of Object.entries(input)) {
      const field = ctx.strict ? name : name.toLowerCase();
      if (field === 'vat' || field === 'key') fields[field] = value;
      else if (ctx.strict) {
        const shown = quotable(name, companies.secrets()) ?? '(name not shown)';
        return invalid(shown, 'unexpected member; the login takes only vat and key');
      }
    }
    for (const field of ['vat', 'key'] as const) {
      const value = fields[field];
      if (value === undefined || value === null || value === '') return invalid(field, `The ${field} field is required.`);
      if (typeof value !== 'string') return invalid(field, `The ${field} field must be a string.`);
      if (value.length > 200) return invalid(field, `The ${field} field is longer than 200 characters.`);
    }
    const vat = fields.vat as string;
    const verdict = ctx.limit(vat);
    if (!verdict.allowed) {
      return ERRORS.rateLimited(String(verdict.retryAfterS), `too many logins for this VAT; retry after ${verdict.retryAfterS} s`);
    }
    const company = companies.get(vat);
    // Compare the key even for an unknown VAT, so timing does not tell which VATs exist.
    const keyMatches = sameSecret(fields.key as string, company?.apiKey ?? '\u0000');
    if (!company || !keyMatches) return unauthorized('invalid VAT or API key');
    return issue(company.vat, false);
  }

  function refresh(req: WireRequest): Answer {
    const parsed = readJson(req);
    if (!parsed.ok) return parsed.answer;
    let token: unknown = parsed.value;
    if (!ctx.strict && typeof token === 'object' && token !== null) {
      const obj = token as Record<string, unknown>;
      token = obj.token ?? obj.refreshToken;
    }
    if (typeof token !== 'string' || token === '') {
      return invalid('$', 'expected the refresh token as a non-empty JSON string');
    }

    const authorization = headerValue(req.headers, 'authorization');
    let bearerVat: string | undefined;
    if (authorization === undefined) {
      if (ctx.strict) return unauthorized('missing Authorization: Bearer <access token>', { 'www-authenticate': 'Bearer' });
    } else {
      const m = (ctx.strict ? /^Bearer +(\S+)$/i : /^Bearer\s*(\S+)$/i).exec(authorization.trim());
      const claims = m?.[1] ? ctx.key.verify(m[1]) : undefined;
      if (!claims || typeof claims.sub !== 'string') {
        return unauthorized('the access token is not valid', {
          'www-authenticate': 'Bearer error="invalid_token", error_description="The signature is invalid"',
        });
      }
      bearerVat = claims.sub;
    }

    if (ctx.takeRefreshFail()) return unauthorized('the refresh token has expired (injected fault)');
    const record = refreshTokens.get(token);
    if (!record) return unauthorized('the refresh token is not valid (unknown or already used)');
    if (ctx.clock.now() >= record.expiresAt) {
      refreshTokens.delete(token);
      return unauthorized('the refresh token has expired');
    }
    if (bearerVat !== undefined && bearerVat !== record.vat) {
      return unauthorized('the refresh token was not issued with this access token');
    }
    refreshTokens.delete(token);
    return issue(record.vat, true);
  }

  return {
    principals: companies,
    errors: ERRORS,
    documents: () => ({}),
    endpoints: [
      { path: LOGIN_PATH, handle: login },
      { path: REFRESH_PATH, handle: refresh },
    ],
    expireRefreshTokens() {
      const count = refreshTokens.size;
      refreshTokens.clear();
      return count;
    },
  };
}

export const impactGr: WireSpec = {
  authority: 'impact-gr',
  paths: { token: LOGIN_PATH, refresh: REFRESH_PATH },
  principalKind: 'companies',
  defaultLifetimeS: 900,
  defaultRateLimitPerMinute: 0,
  create,
};
