/**
 * The socket API's wire: every JSON body the agent writes and reads, typed once
 * ("The socket API" in docs/till-developers.md, and the extensions docs/changelog.md lists).
 *
 * The server builds its answers against these types, the client reads them with them. This file
 * imports nothing: server/, cli/, doctor/ and provisioning import it, never the other way.
 */

/** Every request carries `X-Pos-Agent: 1`; without it the answer is 412. */
export const AGENT_HEADER = 'x-pos-agent';
export const AGENT_HEADER_VALUE = '1';
/**
 * On every error answer the agent itself makes (never on one the API made and the proxy passed back), the
 * answer's `error` code: a till tells the agent's 503 from the API's by it.
 */
export const AGENT_ERROR_HEADER = 'x-pos-agent-error';

export const DEFAULT_ACCOUNT = 'default';
/** An account name, as the config allows it. */
export const ACCOUNT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
export const ACCOUNT_NAME_RULE = 'an account name is 1 to 64 letters, digits, ".", "_" or "-", starting with a letter or digit';
export const DEFAULT_MIN_TTL_S = 60;
export const MAX_MIN_TTL_S = 86_400;
export const MIN_TTL_RULE = `min_ttl must be whole seconds from 0 to ${MAX_MIN_TTL_S}`;

export function isAccountName(name: string): boolean {
  return ACCOUNT_NAME.test(name);
}

/** `min_ttl` as written in a query (or on a command line): whole seconds from 0 to MAX_MIN_TTL_S, else undefined. */
export function parseMinTtl(text: string): number | undefined {
  if (!/^\d{1,6}$/.test(text)) return undefined;
  const n = Number(text);
  return n <= MAX_MIN_TTL_S ? n : undefined;
}

export type TokenState = 'fresh' | 'stale' | 'expired' | 'none';

/** Fresh or stale (due for renewal): a token a till can use now. */
export function isUsableState(state: TokenState): boolean {
  return state === 'fresh' || state === 'stale';
}

export type UnavailableReason =
  | 'not_provisioned'
  | 'credentials_rejected'
  | 'upstream_unavailable'
  | 'rate_limited'
  | 'identity_unavailable';

/** 200 of `GET /v1/token` and `POST /v1/token/refresh`. */
export interface TokenBody {
  access_token: string;
  token_type: string;
  /** Whole seconds left. */
  expires_in: number;
  /** ISO 8601 UTC. */
  expires_at: string;
  account: string;
  scope: string | null;
}

/** The body of `POST /v1/token/refresh`. */
export interface RefreshRequestBody {
  /** Default `default`. */
  account?: string;
  /** The token an API refused. */
  rejected_token: string;
  /** Default 60. */
  min_ttl?: number;
}

/** The codes of an error body: the token answers', then the protocol's. */
export type ErrorCode =
  | 'token_unavailable'
  | 'refresh_limited'
  | 'unknown_account'
  | 'min_ttl_unsatisfiable'
  | ProtocolErrorCode;

export type ProtocolErrorCode =
  | 'bad_request'
  | 'forbidden'
  | 'precondition_failed'
  | 'not_found'
  | 'method_not_allowed'
  | 'unsupported_media_type'
  | 'payload_too_large'
  | 'internal_error'
  /** The proxy and the outbox ("Sending receipts" in docs/till-developers.md). */
  | 'api_not_configured'
  | 'upstream_unavailable'
  | 'upstream_timeout'
  | 'outbox_full'
  | 'not_cancellable'
  | 'not_retryable';

/** Every answer that is not a 2xx. `message` is for a person; `retry_after` matches the Retry-After header. */
export type ErrorBody =
  /** 503. */
  | { error: 'token_unavailable'; reason: UnavailableReason; message: string; retry_after: number }
  /** 429. */
  | { error: 'refresh_limited'; message: string; retry_after: number }
  /** 404; `known_accounts` (an extension, see docs/changelog.md) names the accounts the agent has. */
  | { error: 'unknown_account'; message: string; known_accounts?: string[] }
  /** 400; extensions: `min_ttl` (what was asked) and `lifetime_s` (how long the account's tokens live). */
  | { error: 'min_ttl_unsatisfiable'; message: string; min_ttl?: number; lifetime_s?: number }
  /**
   * 413: the one limit the request passed, in bytes, and the config key that raises it (null: a fixed limit).
   * `limit_bytes` and `setting` are an extension (see the README's changelog).
   */
  | { error: 'payload_too_large'; message: string; limit_bytes: number; setting: string | null }
  /** 507: a limit of the outbox (entries, bytes) or the disk is full; nothing acknowledged is lost. */
  | { error: 'outbox_full'; reason: OutboxFullReason; message: string }
  /** 409 from DELETE or retry: the entry's state does not allow it. */
  | { error: 'not_cancellable' | 'not_retryable'; message: string; state: OutboxEntryState }
  /** 400, 403, 404, 405, 409, 412, 415, 500, 502, 504 (and 400/408/431 for a malformed request). */
  | { error: ProtocolErrorCode; message: string };

export interface LastErrorBody {
  reason: UnavailableReason;
  message: string;
  /** ISO 8601 UTC. */
  at: string;
}

export type IdentityFieldName = 'posserial' | 'pososversion' | 'posmodelframework';

/** The device identity an account logs in with; identity values are not secrets. */
export interface IdentityStatusBody {
  posserial: string | null;
  pososversion: string | null;
  posmodelframework: string | null;
  profile: string | null;
  /** Where each value came from. */
  sources: Partial<Record<IdentityFieldName, string>>;
  /** True while a source fails and a stored value stands in for it. */
  degraded: boolean;
  problems: Partial<Record<IdentityFieldName, string>>;
  read_at: string | null;
}

/** One account in `GET /v1/status`. Never a secret or a token. Times are ISO 8601 UTC. */
/** An account's outbox in `GET /v1/status`. */
export interface OutboxStatusBody {
  queued: number;
  /** Age in whole seconds of the oldest queued entry; null when none waits. */
  oldest_queued_s: number | null;
  last_delivered_at: string | null;
  last_error: string | null;
}

export interface AccountStatusBody {
  authority: string;
  state: TokenState;
  expires_at: string | null;
  /** The last login (or refresh) that got an answer, whatever it was; or when a restored token was obtained. */
  last_login_at: string | null;
  /** The last login (or refresh) that got a token; or when a restored token was obtained. An extension. */
  last_success_at: string | null;
  last_error: LastErrorBody | null;
  identity: IdentityStatusBody;
  next_attempt_in_s: number | null;
  /** The account's outbox: present when the account has an apiUrl or entries. */
  outbox?: OutboxStatusBody;
}

/**
 * Which config the running agent runs (an extension, from 0.5.1): compare `sha256` with the file's
 * (`configFileSha256`) to learn whether a change was applied. `generation` counts the configs applied since the
 * agent started (1 at start, +1 per reload that took); `reload_error` is the last refused reload, cleared by the
 * next one that takes.
 */
export interface ConfigStatusBody {
  path: string;
  /** SHA-256 (hex) of the config file's text as the agent read it; null when the config did not come from a file. */
  sha256: string | null;
  generation: number;
  /** ISO 8601 UTC: when this config was applied. */
  loaded_at: string;
  reload_error: { at: string; problems: string[] } | null;
}

/** 200 of `GET /v1/status`. */
export interface StatusBody {
  version: string;
  uptime_s: number;
  /** An extension (0.5.1); absent from an agent that runs without a config file's identity (tests). */
  config?: ConfigStatusBody;
  accounts: Record<string, AccountStatusBody>;
}

/**
 * `GET /v1/health`: 200 ok, or 503 naming the failing accounts: without a usable token, or (`outbox_stalled`, an
 * extension) whose oldest queued outbox entry is older than `outbox.alertAfterS`.
 */
export type HealthBody = { status: 'ok' } | { status: 'unhealthy'; failing: string[]; outbox_stalled?: string[] };

// ---------- the outbox ----------

export type OutboxEntryState = 'queued' | 'sending' | 'delivered' | 'rejected' | 'cancelled';
export const OUTBOX_STATES: ReadonlyArray<OutboxEntryState> = ['queued', 'sending', 'delivered', 'rejected', 'cancelled'];
export type OutboxFullReason = 'entries' | 'bytes' | 'disk';
export const OUTBOX_METHODS = ['POST', 'PUT', 'PATCH', 'DELETE'] as const;
export type OutboxMethod = (typeof OUTBOX_METHODS)[number];
/** A till's own id for an entry: enqueue is idempotent by (account, key). */
export const OUTBOX_KEY = /^[\x21-\x7e]{1,200}$/;
export const OUTBOX_LIST_MAX = 1000;

/** The body of `POST /v1/outbox`. */
export interface EnqueueRequestBody {
  /** Default `default`. */
  account?: string;
  /** Default POST. */
  method?: OutboxMethod;
  /** Under the account's apiUrl, e.g. /api/v1/receiptsubmissions. */
  path: string;
  headers?: Record<string, string>;
  /** Sent as application/json. */
  body: unknown;
  key?: string;
}

/** 202 of `POST /v1/outbox`: durably stored. */
export interface EnqueuedBody {
  id: string;
  state: 'queued';
  /** 1: the next to go for its account. */
  position: number;
}

/** An entry (`GET /v1/outbox/ID`, 200 of a repeated key, and each of a list). Times are ISO 8601 UTC. */
export interface OutboxEntryBody {
  id: string;
  account: string;
  key: string | null;
  method: string;
  path: string;
  state: OutboxEntryState;
  attempts: number;
  created_at: string;
  delivered_at: string | null;
  last_error: string | null;
  /** The API's last answer (its body as JSON when it is JSON, else text, at most 64 KiB). */
  response: { status: number; body: unknown } | null;
  /** For a queued or sending entry: its place in the account's queue. */
  position?: number;
  /** `GET /v1/outbox/ID` only: the body as enqueued. */
  body?: unknown;
}

/** `GET /v1/outbox?account=&state=&limit=`: oldest first. */
export interface OutboxListBody {
  entries: OutboxEntryBody[];
}
