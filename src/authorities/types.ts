import type { AccountConfig, DeviceIdentity } from '../config/index.js';
import type { HttpClient } from './http.js';

export type { DeviceIdentity };

/** Secrets as provisioned; which fields apply depends on the authority. */
export interface Credentials {
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

export type LoginResult = { ok: true; token: IssuedToken } | { ok: false; failure: LoginFailure };

export interface LoginRequest {
  account: AccountConfig;
  credentials: Credentials;
  identity: DeviceIdentity;
  signal?: AbortSignal;
}

/** Renewal with a refresh token (impact-gr). */
export interface RefreshRequest extends LoginRequest {
  refreshToken: string;
  /** The current (possibly expired) access token, sent as Bearer where the authority asks for it. */
  accessToken: string;
}

export interface CredentialField {
  name: keyof Credentials;
  label: string;
  secret: boolean;
  required: boolean;
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
