import type { z } from 'zod';
import type { AccountConfig, AuthorityConfigSpec, DeviceHeaders, DeviceIdentity } from '../config/index.js';
import type { HttpClient } from './http.js';

export type { DeviceHeaders, DeviceIdentity };

/** Secrets as provisioned; which fields apply depends on the authority (its module's `credentials`). */
export interface Credentials {
  [field: string]: string | undefined;
  clientId?: string;
  clientSecret?: string;
  presharedKey?: string;
  vat?: string;
  apiKey?: string;
}

export interface IssuedToken {
  accessToken: string;
  tokenType: string;
  /** Lifetime in seconds as the authority stated it. */
  expiresInS: number;
  scope?: string;
  /** impact-gr: a refresh token and its lifetime, when the authority issues one. */
  refreshToken?: string;
  refreshExpiresInS?: number;
}

export type FailureReason = 'credentials_rejected' | 'rate_limited' | 'upstream_unavailable';

export const FAILURE_CODES: Record<FailureReason, string> = {
  credentials_rejected: 'ERR_CREDENTIALS_REJECTED',
  rate_limited: 'ERR_RATE_LIMITED',
  upstream_unavailable: 'ERR_UPSTREAM_UNAVAILABLE',
};

/** An expected failure of a login. Safe to print: never holds a secret or a token. */
export interface LoginFailure {
  reason: FailureReason;
  code: string;
  message: string;
  httpStatus?: number;
  /** The authority's own `error` and `error_description`, verbatim. */
  error?: string;
  errorDescription?: string;
  /** From Retry-After, when the authority sent one. */
  retryAfterMs?: number;
}

/**
 * How HTTP Basic carries the client ID and secret: `rfc6749` form-encodes each before joining them (RFC 6749
 * section 2.3.1, what OAuth servers are meant to decode); `plain` joins them as they are (RFC 7617, what many
 * servers read).
 */
export type BasicAuthEncoding = 'rfc6749' | 'plain';

/**
 * What a token service was found to accept, learned by a login and kept by the caller with the credentials
 * (the authorities hold no state). Given back with the next login, it is tried first.
 */
export interface LoginInterop {
  /** The Basic encoding the server accepted (only for logins that authenticate with Basic). */
  basicAuthEncoding?: BasicAuthEncoding;
}

export type LoginResult = { ok: true; token: IssuedToken; interop?: LoginInterop } | { ok: false; failure: LoginFailure };

export interface LoginRequest {
  account: AccountConfig;
  credentials: Credentials;
  identity: DeviceIdentity;
  signal?: AbortSignal;
  /** What earlier logins with these credentials found the service to accept. */
  interop?: LoginInterop;
}

/** Renewal with a refresh token (impact-gr). */
export interface RefreshRequest extends LoginRequest {
  refreshToken: string;
  /** The current (possibly expired) access token, sent as Bearer where the authority asks for it. */
  accessToken: string;
}

export interface CredentialField {
  /** The key in the stored credentials and in `provision --stdin` JSON. */
  name: string;
  /** The prompt provisioning shows. */
  label: string;
  /** Hidden input; redacted from logs; never shown. */
  secret: boolean;
  required: boolean;
  /** The variable `pos-token-agent-provision --non-interactive` reads it from (POS_CLIENT_ID). */
  env: string;
}

/** Where an authority's token service is, as a technician is asked for it. */
export interface EndpointSpec extends Readonly<AuthorityConfigSpec['endpoint']> {
  /** The prompt ("Identity service URL", "Token endpoint URL"). */
  readonly label: string;
  /** Shown before the prompt: the authority's known services (pre-production, production). */
  readonly hint?: string;
  /** Paths the agent calls under a base URL (shown by doctor). */
  readonly paths: ReadonlyArray<string>;
}

/** The authority's API, where the proxy and the outbox send a till's documents (`accounts.NAME.apiUrl`). */
export interface ApiSpec {
  /** Shown to a technician: the authority's known API hosts. */
  readonly hint?: string;
  /** The documented submission paths under apiUrl (shown by doctor and --help; the examples of docs/till-developers.md). */
  readonly paths: ReadonlyArray<string>;
}

/**
 * One token service, described in one place: the registry (authorities/registry.ts) gives its options to
 * config validation, its credential fields to provisioning and log redaction, its device headers to
 * identity, and its factory to the token manager, provisioning and doctor. No state.
 */
export interface AuthorityModule {
  /** The `authority` value in the config. */
  readonly name: string;
  /** "Egypt ETA eReceipt". */
  readonly title: string;
  /** Option name -> schema, beyond the options every account takes; each optional but the endpoint's. */
  readonly options: Readonly<Record<string, z.ZodType>>;
  readonly endpoint: EndpointSpec;
  /** Its API, for the proxy and the outbox (every account takes `apiUrl`; this says what to put there). */
  readonly api?: ApiSpec;
  readonly credentials: ReadonlyArray<CredentialField>;
  /** The device headers it sends; absent: none (the account then takes no deviceProfile or identity). */
  readonly deviceHeaders?: DeviceHeaders;
  /** Login limits the authority imposes; loginsPerMinute makes the account take that option. */
  readonly limits?: { readonly loginsPerMinute?: { readonly default: number } };
  create(deps: AuthorityDeps): Authority;
}

export interface Authority {
  readonly name: string;
  /** Which credential fields provisioning asks for. */
  readonly credentialFields: ReadonlyArray<CredentialField>;
  login(request: LoginRequest): Promise<LoginResult>;
  /**
   * Renews with a refresh token. A failure means "log in again" to the caller, except
   * rate_limited and upstream_unavailable, which the caller backs off from as for a login.
   */
  refresh?(request: RefreshRequest): Promise<LoginResult>;
  /**
   * A login limit the authority imposes across every account that shares a key (myinvois: 12 per
   * minute per client ID). The token manager enforces it before any request leaves the box.
   */
  loginLimit?(account: AccountConfig, credentials: Credentials): { key: string; perMinute: number } | undefined;
}

export interface AuthorityDeps {
  http: HttpClient;
  /** Wall clock, for Retry-After given as an HTTP date. */
  now: () => number;
}

export function failure(reason: FailureReason, message: string, extra: Partial<LoginFailure> = {}): LoginResult {
  return { ok: false, failure: { reason, code: FAILURE_CODES[reason], message, ...extra } };
}
