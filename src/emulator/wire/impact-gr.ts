/**
 * Greece Impact eInvoicing, bearer-token authentication:
 * - POST /Authentication/login, JSON `{"vat", "key"}`, no authorization: `{accessToken, refreshToken: {token,
 *   expiresAt}}` (see ImpactTokenAnswer); access token a JWT of 15 minutes, refresh token 7 days.
 * - POST /Authentication/refresh, `Authorization: Bearer <access token>` (an expired one is fine: that is when
 *   clients refresh), body the refresh token as a bare JSON string: the same shape with a new refresh token;
 *   the old one stops working (rotation).
 * Errors are ASP.NET Core problem details (impact-gr-problems.ts); a refused refresh is 401, upon which clients log
 * in again.
 */
import { headerValue, type Answer } from '../http.js';
import type { EmulatorCompany, ImpactTokenAnswer } from '../types.js';
import { validateCompany } from '../validate.js';
import { ERRORS, invalid, problem, unauthorized } from './impact-gr-problems.js';
import { checkContentType, quotable, sameSecret } from './oauth.js';
import { createRegistry, type Registry } from './registry.js';
import type { Wire, WireContext, WireRequest, WireSpec } from './types.js';
const { randomBytes } = process.getBuiltinModule('node:crypto');

const LOGIN_PATH = '/Authentication/login';
const REFRESH_PATH = '/Authentication/refresh';
const JSON_MEDIA = 'application/json';
/** Refresh tokens kept at most; the oldest are forgotten first. */
const MAX_REFRESH_TOKENS = 100_000;

type Parsed = { ok: true; value: unknown } | { ok: false; answer: Answer };

function parseJson(body: Buffer): Parsed {
  try {
    return { ok: true, value: JSON.parse(body.toString('utf8')) };
  } catch {
    return { ok: false, answer: invalid('$', 'the body is not valid JSON') };
  }
}

/** One emulator's impact-gr state, which the endpoints share. */
interface Impact {
  ctx: WireContext;
  companies: Registry<EmulatorCompany>;
  /** Live refresh tokens: token → company and expiry (wall ms). Used ones are deleted. */
  refreshTokens: Map<string, { vat: string; expiresAt: number }>;
}

function create(ctx: WireContext): Wire {
  const companies = createRegistry<EmulatorCompany>({
    kind: 'companies',
    validate: validateCompany,
    id: (c) => c.vat,
    summary: (c) => ({ vat: c.vat }),
    secrets: (c) => [c.apiKey],
  });
  const impact: Impact = { ctx, companies, refreshTokens: new Map() };
  return {
    principals: companies,
    errors: ERRORS,
    documents: () => ({}),
    endpoints: [
      { path: LOGIN_PATH, handle: (req) => login(impact, req) },
      { path: REFRESH_PATH, handle: (req) => refresh(impact, req) },
    ],
    expireRefreshTokens() {
      const count = impact.refreshTokens.size;
      impact.refreshTokens.clear();
      return count;
    },
  };
}

/** The wire checks both endpoints share: Content-Type (strict) and a JSON body. */
function readJson(impact: Impact, req: WireRequest): Parsed {
  if (impact.ctx.strict) {
    const deviation = checkContentType(headerValue(req.headers, 'content-type'), JSON_MEDIA, impact.companies.secrets());
    if (deviation) return { ok: false, answer: problem(415, { detail: deviation }) };
  }
  return parseJson(req.body);
}

/** A new access token and a new refresh token for `vat`; expired (or too many) refresh tokens are forgotten. */
function issue(impact: Impact, vat: string, refreshed: boolean): Answer {
  const { ctx, refreshTokens } = impact;
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

function login(impact: Impact, req: WireRequest): Answer {
  const parsed = readJson(impact, req);
  if (!parsed.ok) return parsed.answer;
  const fields = loginFields(impact, parsed.value);
  if (!fields.ok) return fields.answer;
  const { vat, key } = fields.value;
  const verdict = impact.ctx.limit(vat);
  if (!verdict.allowed) {
    return ERRORS.rateLimited(String(verdict.retryAfterS), `too many logins for this VAT; retry after ${verdict.retryAfterS} s`);
  }
  const company = impact.companies.get(vat);
  // Compare the key even for an unknown VAT, so timing does not tell which VATs exist.
  const keyMatches = sameSecret(key, company?.apiKey ?? '\u0000');
  if (!company || !keyMatches) return unauthorized('invalid VAT or API key');
  return issue(impact, company.vat, false);
}

/** `{"vat", "key"}`: both non-empty strings of at most 200 characters; other members refused (strict). */
function loginFields(impact: Impact, input: unknown): { ok: true; value: { vat: string; key: string } } | { ok: false; answer: Answer } {
  const { strict } = impact.ctx;
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    return { ok: false, answer: invalid('$', 'expected a JSON object {"vat", "key"}') };
  }
  const fields: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(input)) {
    const field = strict ? name : name.toLowerCase();
    if (field === 'vat' || field === 'key') fields[field] = value;
    else if (strict) {
      const shown = quotable(name, impact.companies.secrets()) ?? '(name not shown)';
      return { ok: false, answer: invalid(shown, 'unexpected member; the login takes only vat and key') };
    }
  }
  for (const field of ['vat', 'key'] as const) {
    const wrong = memberProblem(field, fields[field]);
    if (wrong !== undefined) return { ok: false, answer: invalid(field, wrong) };
  }
  return { ok: true, value: { vat: fields.vat as string, key: fields.key as string } };
}

/** What is wrong with login member `field`, if anything. */
function memberProblem(field: string, value: unknown): string | undefined {
  if (value === undefined || value === null || value === '') return `The ${field} field is required.`;
  if (typeof value !== 'string') return `The ${field} field must be a string.`;
  if (value.length > 200) return `The ${field} field is longer than 200 characters.`;
  return undefined;
}

function refresh(impact: Impact, req: WireRequest): Answer {
  const parsed = readJson(impact, req);
  if (!parsed.ok) return parsed.answer;
  let token: unknown = parsed.value;
  if (!impact.ctx.strict && typeof token === 'object' && token !== null) {
    const obj = token as Record<string, unknown>;
    token = obj.token ?? obj.refreshToken;
  }
  if (typeof token !== 'string' || token === '') {
    return invalid('$', 'expected the refresh token as a non-empty JSON string');
  }
  const bearer = bearerVat(impact.ctx, headerValue(req.headers, 'authorization'));
  if (!bearer.ok) return bearer.answer;
  return redeem(impact, token, bearer.vat);
}

/**
 * The company of the access token in `Authorization: Bearer` (an expired one is fine); undefined without the
 * header outside strict mode.
 */
function bearerVat(ctx: WireContext, authorization: string | undefined): { ok: true; vat: string | undefined } | { ok: false; answer: Answer } {
  if (authorization === undefined) {
    if (ctx.strict) {
      return { ok: false, answer: unauthorized('missing Authorization: Bearer <access token>', { 'www-authenticate': 'Bearer' }) };
    }
    return { ok: true, vat: undefined };
  }
  const m = (ctx.strict ? /^Bearer +(\S+)$/i : /^Bearer\s*(\S+)$/i).exec(authorization.trim());
  const claims = m?.[1] ? ctx.key.verify(m[1]) : undefined;
  if (!claims || typeof claims.sub !== 'string') {
    return {
      ok: false,
      answer: unauthorized('the access token is not valid', {
        'www-authenticate': 'Bearer error="invalid_token", error_description="The signature is invalid"',
      }),
    };
  }
  return { ok: true, vat: claims.sub };
}

/** Spends a refresh token (rotation): live, not expired, issued with the bearer's company when there is one. */
function redeem(impact: Impact, token: string, vat: string | undefined): Answer {
  const { ctx, refreshTokens } = impact;
  if (ctx.takeRefreshFail()) return unauthorized('the refresh token has expired (injected fault)');
  const record = refreshTokens.get(token);
  if (!record) return unauthorized('the refresh token is not valid (unknown or already used)');
  if (ctx.clock.now() >= record.expiresAt) {
    refreshTokens.delete(token);
    return unauthorized('the refresh token has expired');
  }
  if (vat !== undefined && vat !== record.vat) {
    return unauthorized('the refresh token was not issued with this access token');
  }
  refreshTokens.delete(token);
  return issue(impact, record.vat, true);
}

export const impactGr: WireSpec = {
  authority: 'impact-gr',
  paths: { token: LOGIN_PATH, refresh: REFRESH_PATH },
  principalKind: 'companies',
  defaultLifetimeS: 900,
  defaultRateLimitPerMinute: 0,
  create,
};
