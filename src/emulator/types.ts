/**
 * The public types of the identity-service emulator. See `index.ts` for the face.
 */
import type { JsonWebKey } from 'node:crypto';
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/log.js';

/** The wire formats the emulator speaks; the names are the agent's `authority` values. */
export type EmulatorAuthority = 'eta-ereceipt' | 'eta-einvoicing' | 'myinvois' | 'impact-gr' | 'sepay' | 'oauth2';

/** Where each authority's principals are registered: option key, admin path `/_emulator/<kind>`. */
export type PrincipalKind = 'devices' | 'clients' | 'companies';

export interface EmulatorPaths {
  /** The login: POST here. */
  token: string;
  /** impact-gr only: POST the refresh token here. */
  refresh?: string;
}

// ---------- principals ----------

export type DeviceStatus = 'active' | 'blocked' | 'deactivated';

/** An eta-ereceipt POS. */
export interface EmulatorDevice {
  clientId: string;
  /** The portal issues two secrets; either works. */
  clientSecrets: string[];
  posserial: string;
  /** If set, the header must equal it; if unset any value (<= 50 chars) or absence is accepted. */
  pososversion?: string;
  /** Same rule as pososversion, <= 10 chars. */
  posmodelframework?: string;
  /** If set, header `presharedkey` must equal it; if unset any value (<= 200 chars) or absence is accepted. */
  presharedKey?: string;
  /** Scope put in the answer and the token, default "InvoicingAPI". */
  scope?: string;
  status?: DeviceStatus;
}

/** `blocked` and `expired` are the "system user blocked or expired" of the ETA and MyInvois docs. */
export type ClientStatus = 'active' | 'blocked' | 'expired';

export type ClientAuthMethod = 'client_secret_basic' | 'client_secret_post';

/**
 * A client of eta-einvoicing, myinvois, sepay or oauth2. Keys an authority does not use are refused by name:
 * `scopes` (not sepay), `onbehalfof` and `intermediary` (eta-einvoicing, myinvois), `authMethod` and
 * `audiences` (oauth2).
 */
export interface EmulatorClient {
  clientId: string;
  /** One or more secrets; any works. */
  clientSecrets: string[];
  /**
   * The scopes this client may ask for; a request naming another one is refused with invalid_scope. Without a
   * `scope` parameter the token carries all of them (IdentityServer's rule). Default ["InvoicingAPI"] for
   * eta-einvoicing and myinvois, none for oauth2 (then any requested scope is invalid_scope and the answer
   * carries no `scope`).
   */
  scopes?: string[];
  /**
   * The taxpayers this client may act for via header `onbehalfof`: eta-einvoicing registration numbers;
   * myinvois `TIN` (matches `TIN` and any `TIN:ROB`) or `TIN:ROB` (matches exactly). Unset: any value passes.
   */
  onbehalfof?: string[];
  /** An intermediary must send `onbehalfof`; without it the login is refused with invalid_request. */
  intermediary?: boolean;
  /** oauth2: how the client authenticates; strict mode refuses the other method. Default client_secret_basic. */
  authMethod?: ClientAuthMethod;
  /** oauth2: the `audience` values it may ask for (else invalid_target). Unset: any value is accepted. */
  audiences?: string[];
  status?: ClientStatus;
}

/** An impact-gr company: logs in with `{vat, key}`. */
export interface EmulatorCompany {
  vat: string;
  apiKey: string;
}

// ---------- wire shapes chosen where the docs are silent ----------

/**
 * impact-gr: the answer of POST /Authentication/login and /Authentication/refresh. The docs name `accessToken`
 * (a JWT, 15 minutes) and `refreshToken` ("an object whose `token` member is the refresh token", 7 days); the
 * emulator adds `expiresAt` (ISO 8601 UTC, milliseconds, `Z`) to the object, the usual ASP.NET shape. Clients
 * must not need it: the JWT's `exp` and the 7 days are what the docs give.
 */
export interface ImpactTokenAnswer {
  accessToken: string;
  refreshToken: { token: string; expiresAt: string };
}

/**
 * impact-gr errors: RFC 9457 problem details as ASP.NET Core writes them (`application/problem+json`):
 * 400 `{type, title: "One or more validation errors occurred.", status, errors: {field: [message]}, traceId}`;
 * 401 (unknown VAT, wrong key, bad bearer, unknown/expired/used refresh token) `{type, title: "Unauthorized",
 * status: 401, detail, traceId}` (a bad bearer adds `WWW-Authenticate: Bearer error="invalid_token"`);
 * 415 wrong Content-Type (strict); 405, 413, 429, 5xx alike with their titles.
 */
export interface ImpactProblem {
  type: string;
  title: string;
  status: number;
  detail?: string;
  errors?: Record<string, string[]>;
  traceId: string;
}

/** sepay errors, as the doc's example: `{success: false, error: {code, message}}`, message in Vietnamese. */
export interface SepayError {
  success: false;
  error: { code: string; message: string };
}

// ---------- faults, stats, options ----------

export interface EmulatorFaults {
  /** Delay before every answer of a token endpoint. */
  latencyMs?: number;
  /** The next N token requests answer 5xx (status5xx, default 503), alternately with a JSON and an HTML body. */
  fail5xx?: number;
  status5xx?: number;
  /**
   * The next `count` token requests answer 429 with that Retry-After header value (seconds or an HTTP
   * date; any header-safe text is accepted so that clients' handling of odd values can be tested).
   */
  rateLimit?: { count: number; retryAfter: string };
  /** The next N token requests: the socket is destroyed without any answer. */
  drop?: number;
  /** The next N token requests answer 200 with, alternately, a body that is not JSON and one lacking the token. */
  malformed?: number;
  /**
   * Answer this error in the authority's own shape (OAuth `{error, error_description}`, sepay
   * `{success:false, error:{code, message}}`, impact-gr problem details with `title` = code); status default
   * 400; count omitted = until faults are cleared.
   */
  error?: { code: string; description?: string; count?: number; status?: number };
  /** Overrides expires_in / the access-token lifetime while set. */
  lifetimeS?: number;
  /** impact-gr only: the next N refreshes answer 401 as for an expired refresh token (the token is left as is). */
  refreshFail?: number;
}

/**
 * Faults of the submission API (`/api/...`), apart from the token endpoints' ones. They act on requests that
 * passed the bearer check, in this order: drop, rateLimit, fail5xx, revoke401, error.
 */
export interface EmulatorApiFaults {
  /** Delay before every answer of the API. */
  latencyMs?: number;
  /** The next N API requests answer 5xx (status5xx, default 503) in the authority's error shape. */
  fail5xx?: number;
  status5xx?: number;
  /** The next `count` API requests answer 429 with that Retry-After header value. */
  rateLimit?: { count: number; retryAfter: string };
  /**
   * The next N API requests are read and handled (recorded, their uuids accepted) but the connection is
   * destroyed without an answer: the answer is lost, as when a network fails after the server committed.
   */
  drop?: number;
  /** The next N API requests answer 401 and the token they presented is revoked: the client must log in again. */
  revoke401?: number;
  /** Answer this 4xx (default 400) in the authority's error shape; count omitted = until cleared. */
  error?: { code: string; description?: string; count?: number; status?: number };
}

/** One request to the submission API that passed the bearer check, as recorded. */
export interface ApiSubmission {
  /** 1, 2, ... in arrival order; restarts at 1 after the records are cleared. */
  seq: number;
  /** ISO 8601 on the emulator's clock. */
  at: string;
  method: string;
  /** The path, without the query. */
  path: string;
  /** The status answered (for a dropped request: the one it would have had). */
  status: number;
  tokenJti: string;
  /** The body parsed as JSON; null when empty, not JSON, or too large. */
  body: unknown;
  /** The document uuids it carried: eReceipt `header.uuid`s, or the body's `uuid`/`id` member. */
  uuids: string[];
  /** One of its uuids had been accepted before. */
  duplicate: boolean;
  /** The API fault that acted on it, if any. */
  fault?: 'drop' | 'rateLimit' | 'fail5xx' | 'revoke401' | 'error';
}

/** The submission API's counters (in EmulatorStats.api). */
export interface EmulatorApiStats {
  /** Requests under /api/, bearer refused or not, dropped included. */
  requests: number;
  /** Answered 2xx. */
  accepted: number;
  /** Answered 4xx after the bearer check passed (bad bodies, injected errors, 429, 413). */
  rejected: number;
  /** Answered 401: the bearer was missing, not this emulator's, expired or revoked; revoke401 included. */
  unauthorized: number;
  /** Requests that carried a uuid accepted before (their `duplicate` flag). */
  duplicates: number;
  /** By HTTP status ("202", "401", ...); dropped connections under "dropped". */
  byStatus: Record<string, number>;
}

export interface EmulatorStats {
  /** Requests to the token endpoints (any method), including dropped ones. */
  requests: number;
  /** Tokens issued (200 answers carrying a real token; `malformed` answers are not counted); refreshes included. */
  issued: number;
  /** Token requests answered 4xx. */
  rejected: number;
  /** Token requests by HTTP status ("200", "400", ...); dropped connections under "dropped". */
  byStatus: Record<string, number>;
  /** Headers of the last token request; lower-case names; presharedkey and authorization are "[redacted]". */
  lastRequestHeaders?: Record<string, string>;
  /** impact-gr only: successful refreshes (also counted in `issued`). */
  refreshed?: number;
  /** The submission API; present once it has seen a request since the last reset. */
  api?: EmulatorApiStats;
}

export interface EmulatorOptions {
  /** Default eta-ereceipt. */
  authority?: EmulatorAuthority;
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0 (ephemeral). */
  port?: number;
  /**
   * Access-token lifetime in seconds. Default: 3600; impact-gr 900 (15 minutes); sepay 86400 (24 hours).
   */
  lifetimeS?: number;
  /** impact-gr: refresh-token lifetime in seconds, default 604800 (7 days), on the clock's wall time. */
  refreshLifetimeS?: number;
  /** eta-ereceipt POS devices. */
  devices?: EmulatorDevice[];
  /** eta-einvoicing, myinvois, sepay and oauth2 clients. */
  clients?: EmulatorClient[];
  /** impact-gr companies. */
  companies?: EmulatorCompany[];
  /**
   * Logins per key in a sliding 60 s window, past which 429 with Retry-After; 0 disables. The key and the
   * default: eta-ereceipt per posserial, 30; myinvois per client ID, 12 (the documented limit); eta-einvoicing,
   * sepay, oauth2 per client ID and impact-gr per VAT, 0.
   */
  rateLimitPerMinute?: number;
  /**
   * Default true: deviations from the documented wire are refused as the service would (400 invalid_request or
   * the service's own shape). false: tolerated where a real client might plausibly send them; credentials and
   * the authority's own checks still apply.
   */
  strict?: boolean;
  /** The submission API's body cap in bytes (413 past it); default 6 MiB, above the agent's default 5 MiB. */
  apiMaxBodyBytes?: number;
  clock?: Clock;
  log?: Logger;
}

export interface Emulator {
  readonly authority: EmulatorAuthority;
  /** The token paths of this authority (also exported as TOKEN_PATHS). */
  readonly paths: EmulatorPaths;
  /** e.g. http://127.0.0.1:41234; throws before the first start(). */
  readonly url: string;
  /** The port listened on; 0 before the first start(). */
  readonly port: number;
  /** Listens; after stop() it listens again on the same port. Calling it while running does nothing. */
  start(): Promise<void>;
  /** Closes the listener and destroys all open connections. Calling it while stopped does nothing. */
  stop(): Promise<void>;
  /** Merges into the current faults; a key set to undefined removes that fault. Throws TypeError when invalid. */
  setFaults(faults: EmulatorFaults): void;
  clearFaults(): void;
  /** eta-ereceipt: adds a device, replacing one with the same clientId. Throws TypeError when invalid. */
  addDevice(device: EmulatorDevice): void;
  /** eta-einvoicing, myinvois, sepay, oauth2: adds a client, replacing one with the same clientId. */
  addClient(client: EmulatorClient): void;
  /** impact-gr: adds a company, replacing one with the same VAT. */
  addCompany(company: EmulatorCompany): void;
  /** impact-gr: every refresh token issued so far stops working; returns how many there were. */
  expireRefreshTokens(): number;
  stats(): EmulatorStats;
  resetStats(): void;
  publicJwk(): JsonWebKey;
  /** What reached the submission API, in arrival order (a copy; at most the last 100,000). */
  apiSubmissions(): ApiSubmission[];
  /** Forgets the records and which uuids were accepted (so nothing is a duplicate any more). */
  clearApiSubmissions(): void;
  /** Merges into the API's faults; a key set to undefined removes that fault. Throws TypeError when invalid. */
  setApiFaults(faults: EmulatorApiFaults): void;
  clearApiFaults(): void;
  /** Every access token issued so far stops working at the API; returns how many were issued since the last call. */
  revokeTokens(): number;
}

/** A fixed principal per authority, for demos and tests. Not real credentials. */
export interface DemoPrincipal {
  authority: EmulatorAuthority;
  /** As `provision --stdin` takes them: clientId/clientSecret(/presharedKey), or vat/apiKey. */
  credentials: Readonly<{ clientId?: string; clientSecret?: string; presharedKey?: string; vat?: string; apiKey?: string }>;
  /** Spread into createEmulator's options to register it: `{devices}`, `{clients}` or `{companies}`. */
  register: Readonly<Pick<EmulatorOptions, 'devices' | 'clients' | 'companies'>>;
  /**
   * Account settings the agent needs besides `authority` and the URL: eta-ereceipt's `identity` header values,
   * oauth2's `clientAuth` and the token path to append to the emulator URL for `tokenUrl`.
   */
  account: Readonly<{
    identity?: Readonly<{ posserial: string; pososversion?: string; posmodelframework?: string }>;
    clientAuth?: ClientAuthMethod;
    tokenPath: string;
  }>;
}
