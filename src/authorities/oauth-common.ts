/**
 * Pieces every token-service adapter shares: building the request (Basic auth, form bodies, the
 * account's extra headers and TLS options), sending it, Retry-After, the standard OAuth token answer
 * and error object, reading error details out of less standard bodies, and the mapping of HTTP
 * statuses to typed failures. Nothing here holds state.
 */
import type { AccountConfig } from '../config/index.js';
import { CLIENT_ID, CLIENT_SECRET } from './options.js';
import { DEFAULT_MAX_RESPONSE_BYTES, TransportError, type HttpRequest, type HttpResponse } from './http.js';
import {
  failure,
  type Authority,
  type AuthorityDeps,
  type BasicAuthEncoding,
  type CredentialField,
  type Credentials,
  type IssuedToken,
  type LoginFailure,
  type LoginInterop,
  type LoginResult,
} from './types.js';

/** Longest wait we accept from a Retry-After; anything longer is clamped. */
export const MAX_RETRY_AFTER_MS = 3_600_000;
const MAX_TOKEN_CHARS = 16 * 1024;
const MAX_LIFETIME_S = 30 * 86_400;
const MAX_ERROR_CHARS = 100;
const MAX_DESCRIPTION_CHARS = 200;

// ---------------------------------------------------------------------------------------------
// Building requests

/** One value encoded as application/x-www-form-urlencoded does it (space as `+`). */
export function formEncode(value: string): string {
  return new URLSearchParams([['', value]]).toString().slice(1);
}

/**
 * An HTTP Basic `Authorization` value. `rfc6749` (OAuth servers, RFC 6749 section 2.3.1) form-encodes
 * the id and the secret before joining them; `plain` (RFC 7617) joins them as they are.
 */
export function basicAuth(id: string, secret: string, encoding: BasicAuthEncoding = 'rfc6749'): string {
  const pair = encoding === 'rfc6749' ? `${formEncode(id)}:${formEncode(secret)}` : `${id}:${secret}`;
  return `Basic ${Buffer.from(pair, 'utf8').toString('base64')}`;
}

/** Whether the two Basic encodings of these credentials differ (else a server reads both alike). */
export function basicEncodingsDiffer(credentials: Credentials): boolean {
  const id = credentials.clientId ?? '';
  const secret = credentials.clientSecret ?? '';
  return formEncode(id) !== id || formEncode(secret) !== secret;
}

/** How people are told which Basic encoding a server accepted. */
export function describeBasicEncoding(encoding: BasicAuthEncoding): string {
  return encoding === 'plain' ? 'the plain (RFC 7617) encoding' : 'the RFC 6749 (form-encoded) encoding';
}

/** A form body of the given fields in order, leaving out those without a value. */
export function formBody(fields: ReadonlyArray<readonly [string, string | undefined]>): string {
  const form = new URLSearchParams();
  for (const [name, value] of fields) if (value !== undefined && value !== '') form.append(name, value);
  return form.toString();
}

/**
 * A POST to a token service with the account's timeouts, TLS options and extra headers. The
 * account's `headers` come first (names lower-cased); the adapter's own headers win over them.
 * A header without a value (undefined or empty) is left out.
 */
export function buildRequest(
  account: AccountConfig,
  url: string,
  parts: { headers: Record<string, string | undefined>; body?: string },
): HttpRequest {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(account.headers ?? {})) headers[name.toLowerCase()] = value;
  for (const [name, value] of Object.entries(parts.headers)) {
    if (value !== undefined && value !== '') headers[name.toLowerCase()] = value;
  }
  return {
    url,
    method: 'POST',
    headers,
    ...(parts.body !== undefined ? { body: parts.body } : {}),
    timeouts: account.timeouts,
    maxResponseBytes: DEFAULT_MAX_RESPONSE_BYTES,
    ...(account.tls !== undefined ? { tls: account.tls } : {}),
  };
}

export type ClientAuthMethod = 'client_secret_basic' | 'client_secret_post';

export interface ClientCredentialsOptions {
  url: string;
  clientAuth: ClientAuthMethod;
  scope?: string | undefined;
  /** Sent as the form parameter `audience` (Auth0 style). */
  audience?: string | undefined;
  /** RFC 8707 resource indicators, each sent as a `resource` form parameter. */
  resource?: string | ReadonlyArray<string> | undefined;
  /** client_secret_basic: how the ID and secret are encoded (default rfc6749). */
  basicAuthEncoding?: BasicAuthEncoding | undefined;
  /** The authority's own headers (device headers, `onbehalfof`, ...). */
  headers?: Record<string, string | undefined>;
}

/** RFC 6749 section 4.4: a client-credentials token request. */
export function buildClientCredentialsRequest(
  account: AccountConfig,
  credentials: Credentials,
  options: ClientCredentialsOptions,
): HttpRequest {
  const id = credentials.clientId ?? '';
  const secret = credentials.clientSecret ?? '';
  const inBody = options.clientAuth === 'client_secret_post';
  const body = formBody([
    ['grant_type', 'client_credentials'],
    ['client_id', inBody ? id : undefined],
    ['client_secret', inBody ? secret : undefined],
    ['scope', options.scope],
    ['audience', options.audience],
    ...[options.resource ?? []].flat().map((r) => ['resource', r] as const),
  ]);
  return buildRequest(account, options.url, {
    headers: {
      ...options.headers,
      'content-type': 'application/x-www-form-urlencoded',
      accept: 'application/json',
      authorization: inBody ? undefined : basicAuth(id, secret, options.basicAuthEncoding),
    },
    body,
  });
}

// ---------------------------------------------------------------------------------------------
// A client-credentials authority

/** The credentials of every client-credentials authority but eReceipt. */
export const CLIENT_CREDENTIAL_FIELDS: ReadonlyArray<CredentialField> = Object.freeze([CLIENT_ID, CLIENT_SECRET]);

/**
 * How an account authenticates with HTTP Basic. `mode` is its basicAuthEncoding option; `preferred` is what
 * `auto` tries first when no earlier login has learned better (OAuth servers: rfc6749; SePay documents plain).
 */
export interface BasicAuthPolicy {
  mode: 'auto' | BasicAuthEncoding;
  preferred: BasicAuthEncoding;
}

export interface ClientCredentialsSpec {
  name: string;
  /** How messages name the service ("MyInvois identity service"). */
  service: string;
  /** The request; `encoding` is the Basic encoding to use when the account authenticates with Basic. */
  buildTokenRequest(account: AccountConfig, credentials: Credentials, encoding?: BasicAuthEncoding): HttpRequest;
  parseTokenResponse(res: HttpResponse, now: number, secrets: ReadonlyArray<string | undefined>): LoginResult;
  /** A refusal before any request leaves the box (beyond clientId and clientSecret being present). */
  precheck?(credentials: Credentials): LoginResult | undefined;
  /** How this account uses HTTP Basic; undefined when it sends the credentials in the body. */
  basicAuth?(account: AccountConfig): BasicAuthPolicy | undefined;
  /** What commonly makes this service refuse a login without saying why, for this account (shown as hints). */
  silentRefusalCauses?(account: AccountConfig, basic: boolean): ReadonlyArray<string>;
  loginLimit?: Authority['loginLimit'];
}

/**
 * An answer that may mean "I could not read your Basic credentials": 400 invalid_client, 401 or 403. Only
 * such a refusal makes `auto` try the other encoding.
 */
export function isBasicRefusal(f: LoginFailure): boolean {
  if (f.reason !== 'credentials_rejected') return false;
  if (f.httpStatus === 401 || f.httpStatus === 403) return true;
  return f.httpStatus === 400 && f.error !== undefined && canonicalOAuthError(f.error) === 'invalid_client';
}

/** A refusal that gives no reason at all: no error code and no description. */
export function isSilentRefusal(f: LoginFailure): boolean {
  return (
    f.reason === 'credentials_rejected' &&
    (f.httpStatus === 400 || f.httpStatus === 401 || f.httpStatus === 403) &&
    f.error === undefined &&
    f.errorDescription === undefined
  );
}

/**
 * What commonly makes an OAuth server refuse a client-credentials login without a reason (glewlwyd answers an
 * empty 403 for each), naming the account options to check.
 */
export function oauthSilentRefusalCauses(account: AccountConfig, basic: boolean): string[] {
  const method = basic ? 'client_secret_basic' : 'client_secret_post';
  const other = basic ? 'client_secret_post' : 'client_secret_basic';
  const causes = ['a wrong client ID or secret (provision again)', `the client may not authenticate with ${method} (try clientAuth ${other})`];
  causes.push(
    account.scope === undefined
      ? 'the server requires a scope and none is set (set scope)'
      : 'the scope is not one this client may ask for (check scope)',
  );
  const fixed = account.basicAuthEncoding;
  if (basic && (fixed === 'rfc6749' || fixed === 'plain')) {
    causes.push(`the server reads Basic credentials another way than basicAuthEncoding ${fixed} (try basicAuthEncoding auto)`);
  }
  return causes;
}

const otherEncoding = (e: BasicAuthEncoding): BasicAuthEncoding => (e === 'rfc6749' ? 'plain' : 'rfc6749');

/**
 * An Authority that logs in with clientId and clientSecret. One request per login, except that with Basic
 * and basicAuthEncoding `auto`, a refusal (isBasicRefusal) of credentials whose two encodings differ is
 * followed by exactly one more request with the other encoding. Whichever the server accepted is reported
 * in the result's `interop`, for the caller to give back next time; a second refusal is the login's failure.
 */
export function createClientCredentialsAuthority(deps: AuthorityDeps, spec: ClientCredentialsSpec): Authority {
  return {
    name: spec.name,
    credentialFields: CLIENT_CREDENTIAL_FIELDS,
    async login({ account, credentials, signal, interop }) {
      const refused = missingCredentials(credentials, ['clientId', 'clientSecret']) ?? spec.precheck?.(credentials);
      if (refused) return refused;
      const secret = credentials.clientSecret;
      // A server may echo the secret as it was sent, form-encoded included.
      const secrets = [secret, secret !== undefined ? formEncode(secret) : undefined];
      const send = (encoding?: BasicAuthEncoding): Promise<LoginResult> =>
        sendTokenRequest(deps, spec.buildTokenRequest(account, credentials, encoding), signal, spec.service, (res, now) =>
          spec.parseTokenResponse(res, now, secrets),
        );
      const basic = spec.basicAuth?.(account);
      const explain = (r: LoginResult, note?: string): LoginResult => {
        if (r.ok) return r;
        const causes = isSilentRefusal(r.failure) ? (spec.silentRefusalCauses?.(account, basic !== undefined) ?? []) : [];
        if (note === undefined && causes.length === 0) return r;
        const message = `${r.failure.message}${note ?? ''}${causes.length ? `; common causes: ${causes.join('; ')}` : ''}`;
        return { ok: false, failure: { ...r.failure, message } };
      };
      if (!basic) return explain(await send());

      const first = basic.mode !== 'auto' ? basic.mode : (interop?.basicAuthEncoding ?? basic.preferred);
      const accepted = (r: LoginResult, encoding: BasicAuthEncoding): LoginResult =>
        r.ok ? { ...r, interop: { ...interop, basicAuthEncoding: encoding } satisfies LoginInterop } : r;
      const result = accepted(await send(first), first);
      if (result.ok || basic.mode !== 'auto' || !isBasicRefusal(result.failure) || !basicEncodingsDiffer(credentials)) {
        return explain(result);
      }
      const second = otherEncoding(first);
      const retried = accepted(await send(second), second);
      if (retried.ok || !isBasicRefusal(retried.failure)) return explain(retried);
      return explain(
        retried,
        ` (client_secret_basic was refused with both encodings of the client ID and secret: ${describeBasicEncoding(first)}, then ${describeBasicEncoding(second)})`,
      );
    },
    ...(spec.loginLimit ? { loginLimit: spec.loginLimit } : {}),
  };
}

// ---------------------------------------------------------------------------------------------
// Checking credentials before anything leaves the box

/** credentials_rejected naming the missing fields, or undefined when all are there. */
export function missingCredentials(credentials: Credentials, fields: ReadonlyArray<keyof Credentials>): LoginResult | undefined {
  const missing = fields.filter((f) => !credentials[f]);
  if (missing.length === 0) return undefined;
  return failure(
    'credentials_rejected',
    `${missing.join(' and ')} ${missing.length > 1 ? 'are' : 'is'} required; run provision`,
  );
}

const PLACEHOLDER_WORDS =
  /^(?:change[-_ .]?me|replace[-_ .]?me|placeholder|todo|tbd|none|null|undefined|nil|n\/?a|example|sample|dummy|test|demo|default|secret|password|client[-_ .]?(?:id|secret))$/i;
/** Placeholder wording anywhere in the value (checked case-insensitively, except the x's). */
const PLACEHOLDER_PARTS = /replace|placeholder|change[-_ ]?me|insert[-_ ]?here|(?:your|my)[-_ .]?(?:client|secret|api|key|id\b)/i;

/**
 * Why a credential value looks like a placeholder rather than something an authority issued, or
 * undefined when it looks real. Never quotes the value.
 */
export function placeholderProblem(value: string | undefined): string | undefined {
  if (value === undefined || value === '') return 'is empty';
  if (value.trim() !== value || /[\s\x00-\x1f\x7f]/.test(value)) return 'contains spaces or control characters';
  if (value.length < 8) return 'is too short';
  if (/^(.)\1*$/.test(value)) return 'repeats one character';
  if (/^[<{[(%$].*[>}\])%]$/.test(value) || value.startsWith('${')) return 'looks like a template placeholder';
  if (PLACEHOLDER_WORDS.test(value) || PLACEHOLDER_PARTS.test(value) || /x{4,}|X{4,}/.test(value)) return 'looks like a placeholder';
  return undefined;
}

// ---------------------------------------------------------------------------------------------
// Sending

/** Sends one token request; a transport fault becomes upstream_unavailable, anything else goes to `parse`. */
export async function sendTokenRequest(
  deps: AuthorityDeps,
  req: HttpRequest,
  signal: AbortSignal | undefined,
  service: string,
  parse: (res: HttpResponse, now: number) => LoginResult,
): Promise<LoginResult> {
  if (signal) req.signal = signal;
  let res: HttpResponse;
  try {
    res = await deps.http.request(req);
  } catch (err) {
    return transportFailure(err, service);
  }
  return parse(res, deps.now());
}

export function transportFailure(err: unknown, service: string): LoginResult {
  if (err instanceof TransportError) {
    return failure('upstream_unavailable', `${service} unreachable: ${err.message}`);
  }
  return failure('upstream_unavailable', `${service} unreachable: unexpected error`);
}

// ---------------------------------------------------------------------------------------------
// Reading answers

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

/** `text` with every occurrence of each secret (4 characters or more) replaced. */
export function redact(text: string, secrets: ReadonlyArray<string | undefined>): string {
  let out = text;
  for (const secret of secrets) {
    if (secret !== undefined && secret.length >= 4) out = out.split(secret).join('[redacted]');
  }
  return out;
}

function mediaType(res: HttpResponse): string {
  return (header(res, 'content-type') ?? '').split(';')[0]!.trim().toLowerCase();
}

function isJsonContentType(res: HttpResponse): boolean {
  return /^application\/([\w.+-]*\+)?json$/.test(mediaType(res));
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

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A member by name, matching case-insensitively when the exact spelling is absent. */
export function member(obj: Record<string, unknown>, name: string): unknown {
  if (name in obj) return obj[name];
  const lower = name.toLowerCase();
  const key = Object.keys(obj).find((k) => k.toLowerCase() === lower);
  return key === undefined ? undefined : obj[key];
}

/** Why a token value cannot be used as an HTTP header value, or undefined when it can. */
export function tokenValueProblem(value: unknown, name: string): string | undefined {
  if (typeof value !== 'string' || value.length === 0) return `an answer without ${name}`;
  if (value.length > MAX_TOKEN_CHARS || !/^[\x21-\x7e]+$/.test(value)) {
    return `an ${name} that is too long or has characters not allowed in a header`;
  }
  return undefined;
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
  const problem = tokenValueProblem(accessToken, 'access_token');
  if (problem !== undefined || typeof accessToken !== 'string') return { ok: false, why: problem ?? 'no access_token' };
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
    const shown = typeof raw === 'string' ? JSON.stringify(raw.slice(0, 20)) : String(raw);
    return { ok: false, why: `expires_in ${shown} out of range` };
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

export interface ErrorDetails {
  /** The authority's own error code. */
  error?: string;
  /** Its human-readable explanation. */
  errorDescription?: string;
}

const codeText = (v: unknown): string | undefined =>
  typeof v === 'number' && Number.isFinite(v) ? String(v) : typeof v === 'string' ? v : undefined;

function listText(v: unknown): string | undefined {
  // ASP.NET validation problems: { errors: { Field: ["msg", ...] } }; others: ["msg"] or [{ message }].
  const items: string[] = [];
  const add = (x: unknown, prefix = ''): void => {
    if (typeof x === 'string') items.push(`${prefix}${x}`);
    else if (isRecord(x)) {
      const m = member(x, 'message') ?? member(x, 'description');
      if (typeof m === 'string') items.push(`${prefix}${m}`);
    } else if (Array.isArray(x)) for (const y of x) add(y, prefix);
  };
  if (Array.isArray(v)) add(v);
  else if (isRecord(v)) for (const [k, x] of Object.entries(v)) add(x, `${k}: `);
  return items.length ? items.slice(0, 5).join('; ') : undefined;
}

/**
 * RFC 9457 problem details (ASP.NET's shape: impact-gr): `title` names the kind of problem and `detail`
 * this occurrence. With both there, the title is the code; a title alone stays the description.
 */
function problemTitle(value: Record<string, unknown>): string | undefined {
  const title = member(value, 'title');
  const detail = member(value, 'detail');
  if (typeof member(value, 'status') !== 'number' || typeof title !== 'string' || typeof detail !== 'string') return undefined;
  return title.trim() !== '' && detail.trim() !== '' ? title : undefined;
}

function detailsOf(value: unknown): { error?: unknown; description?: unknown } {
  if (typeof value === 'string') return { description: value };
  if (!isRecord(value)) return {};
  const e = member(value, 'error');
  const nested = isRecord(e) ? e : undefined;
  const error = typeof e === 'string' ? e
    : nested ? codeText(member(nested, 'code'))
    : codeText(member(value, 'code') ?? member(value, 'errorCode') ?? member(value, 'error_code')) ?? problemTitle(value);
  const description =
    [
      member(value, 'error_description'),
      nested && member(nested, 'message'),
      member(value, 'message'),
      member(value, 'detail'),
      member(value, 'errorMessage'),
      member(value, 'title'),
    ].find((d) => typeof d === 'string' && d.trim() !== '') ?? listText(member(value, 'errors'));
  return { error, description };
}

/**
 * The error code and explanation of an answer, from the common shapes: RFC 6749 `{error,
 * error_description}`, `{error: {code, message}}`, `{code, message}`, ASP.NET problem details
 * (`title`, `detail`, `errors`), or a short text/plain body. HTML and unreadable bodies give none.
 * Secrets are redacted and the texts shortened.
 */
export function readErrorDetails(res: HttpResponse, secrets: ReadonlyArray<string | undefined> = []): ErrorDetails {
  let raw: { error?: unknown; description?: unknown } = {};
  if (isJsonContentType(res)) {
    const body = parseJsonBody(res);
    if (body.ok) raw = detailsOf(body.value);
  } else if (mediaType(res) === 'text/plain') {
    raw = { description: res.body.subarray(0, 4096).toString('utf8') };
  }
  const safe = (v: unknown, max: number): string | undefined => (typeof v === 'string' ? clean(redact(v, secrets), max) : undefined);
  const error = safe(raw.error, MAX_ERROR_CHARS);
  const errorDescription = safe(raw.description, MAX_DESCRIPTION_CHARS);
  return {
    ...(error !== undefined ? { error } : {}),
    ...(errorDescription !== undefined ? { errorDescription } : {}),
  };
}

/**
 * Non-standard error codes some servers send, and the RFC 6749 code each means: MyInvois documents
 * `unauthorised_client`; glewlwyd answers `scope_invalid` and `authorization_type_invalid`.
 */
const OAUTH_ERROR_ALIASES: Record<string, string> = {
  unauthorised_client: 'unauthorized_client',
  scope_invalid: 'invalid_scope',
  authorization_type_invalid: 'unauthorized_client',
};

/** What a person can do about a standard OAuth error (RFC 6749 section 5.2, RFC 8707). */
const OAUTH_ERROR_HINTS: Record<string, string> = {
  invalid_client: 'check clientId and clientSecret (provision again)',
  invalid_grant: 'the credentials were refused; check they are still current on the portal',
  unauthorized_client: 'this client may not use the client-credentials grant; check its registration on the portal',
  unsupported_grant_type: 'this endpoint does not offer client credentials; check the URL',
  invalid_scope: "check the account's scope",
  invalid_target: "check the account's audience",
};

/** The standard spelling of an OAuth error code. */
export function canonicalOAuthError(error: string): string {
  return OAUTH_ERROR_ALIASES[error.toLowerCase()] ?? error.toLowerCase();
}

/** OAuth error codes that say "try again later" rather than "your request is wrong". */
const TRANSIENT_OAUTH_ERRORS = new Set(['server_error', 'temporarily_unavailable']);

export interface StatusFailureOptions {
  /** "login" or "refresh", for messages. */
  action?: 'login' | 'refresh';
  /** What was missing when a rejection carries no explanation ("an OAuth error object"). */
  expected?: string;
  /** Error codes that mean "try again later" even on a 400/401/403 (OAuth's server_error). */
  transientErrors?: ReadonlySet<string>;
  /** The setting to check on a 404 or 405 (default identityUrl). */
  urlSetting?: string;
}

/**
 * Maps an answer that is not a success to a typed failure: 429 rate_limited, 400/401/403
 * credentials_rejected (a configuration or credential problem: do not hammer), anything else
 * upstream_unavailable. Retry-After is kept on 429 and 5xx.
 */
export function failureForStatus(
  res: HttpResponse,
  now: number,
  service: string,
  details: ErrorDetails,
  options: StatusFailureOptions = {},
): LoginResult {
  const action = options.action ?? 'login';
  const status = res.status;
  const retryAfterMs = parseRetryAfter(header(res, 'retry-after'), now);
  const { error, errorDescription } = details;
  const extra = {
    httpStatus: status,
    ...(error !== undefined ? { error } : {}),
    ...(errorDescription !== undefined ? { errorDescription } : {}),
  };
  // A known non-standard code is shown with the standard one it means: `scope_invalid (invalid_scope)`.
  const standard = error !== undefined && canonicalOAuthError(error) !== error.toLowerCase() ? canonicalOAuthError(error) : undefined;
  const explained = [standard, errorDescription].filter((p) => p !== undefined).join(': ');
  const detail = error !== undefined ? `${error}${explained ? ` (${explained})` : ''}` : errorDescription;
  if (status === 429) {
    return failure('rate_limited', `${service} is rate limiting ${action === 'refresh' ? 'refreshes' : 'logins'} (429)`, {
      ...extra,
      ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
    });
  }
  const transient = error !== undefined && options.transientErrors?.has(error) === true;
  if ((status === 400 || status === 401 || status === 403) && !transient) {
    const hint = error !== undefined ? OAUTH_ERROR_HINTS[canonicalOAuthError(error)] : undefined;
    const what =
      detail !== undefined
        ? `${error === undefined ? `HTTP ${status}: ` : ''}${detail}${hint ? `; ${hint}` : ''}`
        : `HTTP ${status} with no reason given (no ${(options.expected ?? 'an error message').replace(/^an? /, '')})`;
    return failure('credentials_rejected', `${service} rejected the ${action}: ${what}`, extra);
  }
  const hint = status === 404 || status === 405 ? ` (check ${options.urlSetting ?? 'identityUrl'})` : '';
  return failure('upstream_unavailable', `${service} answered HTTP ${status}${hint}${detail !== undefined ? `: ${detail}` : ''}`, {
    ...extra,
    ...(retryAfterMs !== undefined && (status >= 500 || transient) ? { retryAfterMs } : {}),
  });
}

/**
 * Maps a standard OAuth token-endpoint answer to a LoginResult. `secrets` are redacted from
 * anything the answer says that ends up in the failure.
 */
export function parseOAuthTokenResponse(
  res: HttpResponse,
  now: number,
  service: string,
  secrets: ReadonlyArray<string | undefined> = [],
  urlSetting = 'identityUrl',
): LoginResult {
  const status = res.status;
  if (status === 200) {
    const body = parseJsonBody(res);
    if (!body.ok) return failure('upstream_unavailable', `${service} answered 200 with ${body.why}`, { httpStatus: status });
    const token = readTokenObject(body.value);
    if (!token.ok) return failure('upstream_unavailable', `${service} answered 200 with ${token.why}`, { httpStatus: status });
    return { ok: true, token: token.token };
  }
  return failureForStatus(res, now, service, readErrorDetails(res, secrets), {
    expected: 'an OAuth error object',
    transientErrors: TRANSIENT_OAUTH_ERRORS,
    urlSetting,
  });
}
