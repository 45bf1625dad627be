/**
 * Greece Impact eInvoicing, JWT bearer login: POST {base}/Authentication/login with JSON
 * `{"vat", "key"}`; the answer carries `accessToken` (a JWT, 15 minutes) and `refreshToken`, an
 * object whose `token` member is the refresh token (7 days). Refresh: POST {base}/Authentication/refresh
 * with the refresh token as a bare JSON string and the current access token as Bearer; same answer.
 * The error bodies are undocumented, so messages are read defensively from common shapes.
 */
import type { AccountConfig } from '../../config/index.js';
import type { HttpRequest, HttpResponse } from '../http.js';
import {
  buildRequest,
  decodeJwtClaims,
  failureForStatus,
  isRecord,
  member,
  missingCredentials,
  parseJsonBody,
  readErrorDetails,
  sendTokenRequest,
  tokenValueProblem,
} from '../oauth-common.js';
import { identityUrl } from '../options.js';
import {
  failure,
  type Authority,
  type AuthorityDeps,
  type AuthorityModule,
  type CredentialField,
  type Credentials,
  type LoginResult,
  type RefreshRequest,
} from '../types.js';

const SERVICE = 'Impact eInvoicing API';

/** Documented lifetimes, used when the answer does not say otherwise. */
export const DEFAULT_ACCESS_LIFETIME_S = 15 * 60;
export const DEFAULT_REFRESH_LIFETIME_S = 7 * 86_400;
/**
 * A lifetime read from the answer outside these bounds is not believed. exp - iat is the authority's own
 * statement and is believed down to 1 s (believing a longer life than the token has would serve it expired);
 * exp - now depends on this box's clock, so a short result there more likely means a clock far ahead.
 */
const STATED_LIFETIME_BOUNDS_S = [1, 86_400] as const;
const ACCESS_LIFETIME_BOUNDS_S = [60, 86_400] as const;
const REFRESH_LIFETIME_BOUNDS_S = [60, 90 * 86_400] as const;
const MAX_REFRESH_TOKEN_CHARS = 16 * 1024;

const JSON_HEADERS = { 'content-type': 'application/json', accept: 'application/json' };

export function buildTokenRequest(account: AccountConfig, credentials: Credentials): HttpRequest {
  return buildRequest(account, `${account.identityUrl}/Authentication/login`, {
    headers: JSON_HEADERS,
    body: JSON.stringify({ vat: credentials.vat ?? '', key: credentials.apiKey ?? '' }),
  });
}

export function buildRefreshRequest(account: AccountConfig, refreshToken: string, accessToken: string): HttpRequest {
  return buildRequest(account, `${account.identityUrl}/Authentication/refresh`, {
    headers: { ...JSON_HEADERS, authorization: `Bearer ${accessToken}` },
    body: JSON.stringify(refreshToken),
  });
}

const within = (v: number, [min, max]: readonly [number, number]): boolean => Number.isFinite(v) && v >= min && v <= max;

/**
 * The access token's lifetime from its JWT claims: exp - iat when both are there (independent of
 * this box's clock; believed however short), else exp - now; the documented 15 minutes when there
 * is no exp or the result is implausible (a POS clock far off).
 */
export function accessLifetimeS(accessToken: string, now: number): number {
  const claims = decodeJwtClaims(accessToken);
  const exp = claims?.exp;
  if (typeof exp !== 'number') return DEFAULT_ACCESS_LIFETIME_S;
  const iat = claims?.iat;
  const stated = typeof iat === 'number' && exp > iat;
  const lifetime = stated ? exp - iat : exp - Math.floor(now / 1000);
  return within(lifetime, stated ? STATED_LIFETIME_BOUNDS_S : ACCESS_LIFETIME_BOUNDS_S) ? Math.floor(lifetime) : DEFAULT_ACCESS_LIFETIME_S;
}

const EXPIRY_MEMBERS = ['expires', 'expiresAt', 'expires_at', 'expiration', 'expirationDate', 'expiryDate', 'expiry', 'expiresOn', 'validTo', 'validUntil'];
const CREATED_MEMBERS = ['created', 'createdAt', 'created_at', 'createdOn', 'issued', 'issuedAt', 'issued_at', 'validFrom'];
const RELATIVE_MEMBERS = ['expiresIn', 'expires_in', 'lifetime'];

/** Milliseconds since the epoch from an ISO date, epoch seconds or epoch milliseconds. */
function instantMs(v: unknown): number | undefined {
  if (typeof v === 'number' && Number.isFinite(v) && v > 1e9) return v > 1e12 ? v : v * 1000;
  if (typeof v === 'string' && /^\d{4}-\d{2}-\d{2}/.test(v.trim())) {
    const t = Date.parse(v.trim());
    return Number.isNaN(t) ? undefined : t;
  }
  return undefined;
}

function firstOf<T>(obj: Record<string, unknown>, names: ReadonlyArray<string>, read: (v: unknown) => T | undefined): T | undefined {
  for (const name of names) {
    const v = read(member(obj, name));
    if (v !== undefined) return v;
  }
  return undefined;
}

/**
 * The refresh token's lifetime from the other members of the refreshToken object, if one of them
 * plausibly holds it (expires - created, else expires - now, or a relative expiresIn); else 7 days.
 */
export function refreshLifetimeS(refreshObject: Record<string, unknown>, now: number): number {
  const relative = firstOf(refreshObject, RELATIVE_MEMBERS, (v) =>
    typeof v === 'number' ? v : typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : undefined,
  );
  let lifetime = relative;
  if (lifetime === undefined) {
    const expires = firstOf(refreshObject, EXPIRY_MEMBERS, instantMs);
    const created = firstOf(refreshObject, CREATED_MEMBERS, instantMs);
    if (expires !== undefined) lifetime = (expires - (created ?? now)) / 1000;
  }
  return lifetime !== undefined && within(lifetime, REFRESH_LIFETIME_BOUNDS_S) ? Math.floor(lifetime) : DEFAULT_REFRESH_LIFETIME_S;
}

export interface ParseOptions {
  /** Values to redact should the answer echo them. */
  secrets?: ReadonlyArray<string | undefined>;
  action?: 'login' | 'refresh';
}

/** The answer to a login or a refresh (same shape). */
export function parseTokenResponse(res: HttpResponse, now: number, options: ParseOptions = {}): LoginResult {
  const action = options.action ?? 'login';
  if (res.status !== 200) {
    return failureForStatus(res, now, SERVICE, readErrorDetails(res, options.secrets), { action, expected: 'an error message' });
  }
  const malformed = (why: string): LoginResult => failure('upstream_unavailable', `${SERVICE} answered 200 to a ${action} with ${why}`, { httpStatus: 200 });
  const body = parseJsonBody(res);
  if (!body.ok) return malformed(body.why);
  if (!isRecord(body.value)) return malformed('an answer that is not a JSON object');
  const accessToken = member(body.value, 'accessToken');
  const problem = tokenValueProblem(accessToken, 'accessToken');
  if (problem !== undefined || typeof accessToken !== 'string') return malformed(problem ?? 'no accessToken');

  // The refresh token is optional: without one the next renewal is a login.
  const rt = member(body.value, 'refreshToken');
  const rtObject = isRecord(rt) ? rt : undefined;
  const refreshToken = rtObject ? member(rtObject, 'token') : rt;
  const usable = typeof refreshToken === 'string' && refreshToken.length > 0 && refreshToken.length <= MAX_REFRESH_TOKEN_CHARS;
  return {
    ok: true,
    token: {
      accessToken,
      tokenType: 'Bearer',
      expiresInS: accessLifetimeS(accessToken, now),
      ...(usable
        ? { refreshToken, refreshExpiresInS: rtObject ? refreshLifetimeS(rtObject, now) : DEFAULT_REFRESH_LIFETIME_S }
        : {}),
    },
  };
}

const CREDENTIALS: ReadonlyArray<CredentialField> = Object.freeze([
  { name: 'vat', label: 'Company VAT number (e.g. EL123456789)', secret: false, required: true, env: 'POS_VAT' },
  { name: 'apiKey', label: 'API key', secret: true, required: true, env: 'POS_API_KEY' },
]);

export function createImpactGr(deps: AuthorityDeps): Authority {
  return {
    name: 'impact-gr',
    credentialFields: CREDENTIALS,
    async login({ account, credentials, signal }) {
      const missing = missingCredentials(credentials, ['vat', 'apiKey']);
      if (missing) return missing;
      const secrets = [credentials.apiKey];
      return sendTokenRequest(deps, buildTokenRequest(account, credentials), signal, SERVICE, (res, now) =>
        parseTokenResponse(res, now, { secrets }),
      );
    },
    async refresh({ account, credentials, refreshToken, accessToken, signal }: RefreshRequest) {
      // Any credentials_rejected here means "log in again" to the caller.
      if (!refreshToken || !accessToken) return failure('credentials_rejected', 'no refresh token held; log in again');
      const secrets = [credentials.apiKey, refreshToken, accessToken];
      return sendTokenRequest(deps, buildRefreshRequest(account, refreshToken, accessToken), signal, SERVICE, (res, now) =>
        parseTokenResponse(res, now, { secrets, action: 'refresh' }),
      );
    },
  };
}

export const impactGr: AuthorityModule = Object.freeze<AuthorityModule>({
  name: 'impact-gr',
  title: 'Greece Impact eInvoicing',
  options: { identityUrl },
  endpoint: {
    option: 'identityUrl',
    kind: 'base',
    label: 'API base URL',
    hint: 'Impact eInvoicing API: UAT https://einvoiceapiuat.impact.gr, production https://einvoiceapi.impact.gr',
    paths: ['/Authentication/login', '/Authentication/refresh'],
  },
  api: { hint: 'Impact API: UAT https://einvoiceapiuat.impact.gr, production https://einvoiceapi.impact.gr', paths: [] },
  credentials: CREDENTIALS,
  create: createImpactGr,
});
