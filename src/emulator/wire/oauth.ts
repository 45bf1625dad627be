/**
 * What every OAuth 2.0 token endpoint the emulator speaks shares (eta-ereceipt, eta-einvoicing, myinvois,
 * oauth2): the form body, client authentication parsing, secret comparison, the RFC 6749 section 5.2 error
 * object, and the IdentityServer discovery documents.
 */
import { jsonAnswer, type Answer } from '../http.js';
import type { WireErrors } from './types.js';
const { createHash, timingSafeEqual } = process.getBuiltinModule('node:crypto');

export const FORM_TYPE = 'application/x-www-form-urlencoded';
export const OPENID_CONFIGURATION = '/.well-known/openid-configuration';
export const OPENID_JWKS = '/.well-known/openid-configuration/jwks';

export function sameSecret(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

/** Compares with every secret (no early exit), so timing does not tell which one matched. */
export function matchesAny(given: string, secrets: readonly string[]): boolean {
  let matched = false;
  for (const s of secrets) matched = sameSecret(given, s) || matched;
  return matched;
}

const FIELD_NAME = /^[A-Za-z_][A-Za-z0-9_.-]{0,39}$/;
const MEDIA_TYPE = /^[A-Za-z0-9!#$&^_.+-]{1,40}\/[A-Za-z0-9!#$&^_.+-]{1,60}$/;

/**
 * Text from the client that is safe to quote in an error description: short, printable, identifier-like,
 * and not (part of) any configured secret.
 */
export function quotable(text: string, secrets: readonly string[], pattern: RegExp = FIELD_NAME): string | undefined {
  if (!pattern.test(text)) return undefined;
  for (const secret of secrets) {
    if (secret.length > 0 && (text.includes(secret) || (text.length >= 6 && secret.includes(text)))) return undefined;
  }
  return text;
}

/** Checks a Content-Type against one media type (a charset parameter allowed); returns a deviation or undefined. */
export function checkContentType(value: string | undefined, expected: string, secrets: readonly string[]): string | undefined {
  if (value === undefined || value.trim() === '') return `missing Content-Type (expected ${expected})`;
  const [type = '', ...params] = value.split(';');
  const media = type.trim().toLowerCase();
  if (media !== expected) {
    const shown = quotable(media, secrets, MEDIA_TYPE);
    return `Content-Type ${shown === undefined ? 'given' : JSON.stringify(shown)} is not ${expected}`;
  }
  for (const param of params) {
    const name = (param.split('=')[0] ?? '').trim().toLowerCase();
    if (name === '' && param.trim() === '') continue;
    if (name !== 'charset') {
      const shown = quotable(name, secrets, FIELD_NAME);
      return `unexpected Content-Type parameter ${shown === undefined ? '(name not shown)' : JSON.stringify(shown)}; only charset is allowed`;
    }
  }
  return undefined;
}

export interface FormSpec<F extends string> {
  fields: readonly F[];
  /** Refuse a field not in `fields` (else it is ignored). */
  refuseUnknown: boolean;
  /** Ends the message about an unknown field, e.g. "the eReceipt token request takes only ...". */
  takes: string;
  secrets: readonly string[];
}

export type FormResult<F extends string> =
  | { ok: true; values: Partial<Record<F, string>> }
  | { ok: false; description: string };

/** Reads a form body: a known field given twice is refused (RFC 6749 section 3.2), unknown ones as `spec` says. */
export function parseForm<F extends string>(body: Buffer, spec: FormSpec<F>): FormResult<F> {
  const values: Partial<Record<F, string>> = {};
  for (const [name, value] of new URLSearchParams(body.toString('utf8'))) {
    if ((spec.fields as readonly string[]).includes(name)) {
      const field = name as F;
      if (values[field] !== undefined) return { ok: false, description: `form field ${field} is given more than once` };
      values[field] = value;
    } else if (spec.refuseUnknown) {
      const shown = quotable(name, spec.secrets);
      return {
        ok: false,
        description: `unexpected form field ${shown === undefined ? '(name not shown)' : JSON.stringify(shown)}; ${spec.takes}`,
      };
    }
  }
  return { ok: true, values };
}

export type BasicCredentials = { ok: true; id: string; secret: string } | { ok: false };

/**
 * Reads `Authorization: Basic ...`; undefined when the header is absent. With `formEncoded` both parts are
 * form-urlencoded before base64 (RFC 6749 section 2.3.1), else they are taken as they are (RFC 7617).
 */
export function basicCredentials(header: string | undefined, formEncoded = true): BasicCredentials | undefined {
  if (header === undefined) return undefined;
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (!m?.[1]) return { ok: false };
  const decoded = Buffer.from(m[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return { ok: false };
  const unform = (s: string): string => {
    if (!formEncoded) return s;
    try {
      return decodeURIComponent(s.replace(/\+/g, ' '));
    } catch {
      return s;
    }
  };
  return { ok: true, id: unform(decoded.slice(0, colon)), secret: unform(decoded.slice(colon + 1)) };
}

/** RFC 6749 section 5.2. */
export function oauthError(status: number, error: string, description: string, headers?: Record<string, string>): Answer {
  const answer: Answer = {
    status,
    body: JSON.stringify({ error, error_description: description }),
    contentType: 'application/json',
    error,
  };
  if (headers) answer.headers = headers;
  return answer;
}

/** The answer of a successful client-credentials login. */
export function oauthToken(token: string, lifetimeS: number, scope: string | undefined): Answer {
  const value: Record<string, unknown> = { access_token: token, token_type: 'Bearer', expires_in: lifetimeS };
  if (scope !== undefined) value.scope = scope;
  return { ...jsonAnswer(200, value), issued: true };
}

export const OAUTH_ERRORS: WireErrors = Object.freeze({
  methodNotAllowed: (method: string) =>
    oauthError(405, 'invalid_request', `method ${method} is not allowed; use POST`, { allow: 'POST' }),
  tooLarge: (limit: number) => oauthError(413, 'invalid_request', `request body is larger than ${limit} bytes`),
  rateLimited: (retryAfter: string, description: string) =>
    oauthError(429, 'rate_limited', description, { 'retry-after': retryAfter }),
  serverError: (status: number) => ({
    ...jsonAnswer(status, { error: 'server_error', error_description: 'injected fault' }),
    error: 'server_error',
  }),
  injected: (status: number, code: string, description: string) => oauthError(status, code, description),
  tokenless: () => JSON.stringify({ token_type: 'Bearer', expires_in: 3600 }),
});

/** IdentityServer's discovery document and JWKS, as eta-ereceipt, eta-einvoicing and myinvois serve them. */
export function openidDocuments(
  base: string,
  jwk: unknown,
  opts: { tokenPath: string; authMethods: readonly string[]; scopes: readonly string[] },
): Record<string, unknown> {
  return {
    [OPENID_CONFIGURATION]: {
      issuer: base,
      token_endpoint: `${base}${opts.tokenPath}`,
      jwks_uri: `${base}${OPENID_JWKS}`,
      grant_types_supported: ['client_credentials'],
      token_endpoint_auth_methods_supported: [...opts.authMethods],
      response_types_supported: ['token'],
      id_token_signing_alg_values_supported: ['RS256'],
      scopes_supported: [...opts.scopes],
    },
    [OPENID_JWKS]: { keys: [jwk] },
  };
}
