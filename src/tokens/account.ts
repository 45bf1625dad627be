/**
 * One account's token state and its transitions, as pure functions: each takes a state and what happened
 * and returns the next state, never touching a clock, a timer, the store or the network (the caller passes
 * the times in). Times named `...At` are on the token time line (lib/timeline.ts: it counts suspend);
 * times named `...AtWall` are wall-clock milliseconds, kept for display only.
 */
import type { LoginFailure } from '../authorities/index.js';
import type { TokenState, UnavailableReason } from '../api/index.js';
import type { RetryableReason } from './policy.js';

export interface HeldToken {
  readonly accessToken: string;
  readonly tokenType: string;
  readonly scope?: string;
  readonly lifetimeMs: number;
  readonly expiresAt: number;
  readonly refreshAt: number;
}

/** impact-gr: a refresh token, and the access token it goes with (sent as Bearer when renewing). */
export interface HeldRefresh {
  readonly refreshToken: string;
  readonly accessToken: string;
  readonly expiresAtWall: number;
}

export interface LastError {
  readonly reason: UnavailableReason;
  readonly message: string;
  readonly atWall: number;
  readonly failure?: LoginFailure;
}

export interface AccountState {
  readonly token?: HeldToken;
  readonly refresh?: HeldRefresh;
  /** Failed logins in a row, whatever the reason (the backoff's attempt number for outages). */
  readonly failures: number;
  /**
   * Refusals of the credentials in a row (the rejected wait's attempt number): another kind of failure between
   * two refusals starts the count again, so two 5xx answers before a refusal do not make its wait 4x longer.
   */
  readonly rejections?: number;
  /** No login before this (backoff, a login limit, a not-provisioned recheck); 0: none pending. */
  readonly nextAttemptAt: number;
  readonly lastError?: LastError;
  /** Credentials version that was refused; a different version lifts the wait. */
  readonly rejectedVersion?: number;
  /** The last login that got an answer, and the last that got a token (wall clock). */
  readonly lastLoginAtWall?: number;
  readonly lastSuccessAtWall?: number;
  /** When a till last made the agent drop a token (forced refresh). */
  readonly lastForcedAt?: number;
  /** The token was restored across a reboot (its age rests on the wall clock): log in at once to confirm it. */
  readonly unconfirmed?: boolean;
}

export const INITIAL_STATE: AccountState = Object.freeze({ failures: 0, nextAttemptAt: 0 });

/** Reasons an account waits for new credentials rather than for time. */
export type WaitingReason = Extract<UnavailableReason, 'credentials_rejected' | 'not_provisioned'>;

export function tokenState(s: AccountState, now: number): TokenState {
  if (!s.token) return 'none';
  if (now >= s.token.expiresAt) return 'expired';
  return now >= s.token.refreshAt ? 'stale' : 'fresh';
}

/** The token, if it has at least minTtlMs left. */
export function usableToken(s: AccountState, now: number, minTtlMs: number): HeldToken | undefined {
  const t = s.token;
  return t && now < t.expiresAt && t.expiresAt - now >= minTtlMs ? t : undefined;
}

export function waitsForCredentials(s: AccountState): s is AccountState & { lastError: LastError & { reason: WaitingReason } } {
  return s.lastError?.reason === 'credentials_rejected' || s.lastError?.reason === 'not_provisioned';
}

/** A login (or refresh) that got a token. */
export function loggedIn(
  s: AccountState,
  e: { token: HeldToken; refresh?: HeldRefresh; atWall: number },
): AccountState {
  return {
    token: e.token,
    ...(e.refresh ? { refresh: e.refresh } : {}),
    failures: 0,
    nextAttemptAt: 0,
    lastLoginAtWall: e.atWall,
    lastSuccessAtWall: e.atWall,
    ...(s.lastForcedAt !== undefined ? { lastForcedAt: s.lastForcedAt } : {}),
  };
}

/**
 * A login that was refused or could not happen, for a reason that is retried after a backoff. A refusal of
 * the credentials remembers their version (`version`), so that a new one lifts the wait.
 */
export function failed(
  s: AccountState,
  e: { reason: RetryableReason; message: string; failure?: LoginFailure; atWall: number; retryAt: number; answered: boolean; version?: number },
): AccountState {
  return {
    ...s,
    failures: s.failures + 1,
    rejections: e.reason === 'credentials_rejected' ? rejectionsInARow(s) + 1 : 0,
    nextAttemptAt: e.retryAt,
    lastError: { reason: e.reason, message: e.message, atWall: e.atWall, ...(e.failure ? { failure: e.failure } : {}) },
    ...(e.reason === 'credentials_rejected' && e.version !== undefined ? { rejectedVersion: e.version } : {}),
    ...(e.answered ? { lastLoginAtWall: e.atWall } : {}),
  };
}

/** Refusals of the credentials in a row up to now: 0 unless the last failure was one. */
export function rejectionsInARow(s: AccountState): number {
  return s.lastError?.reason === 'credentials_rejected' ? (s.rejections ?? 0) : 0;
}

/** No usable credentials: looked at again at recheckAt, or as soon as a new version is stored. */
export function notProvisioned(
  s: AccountState,
  e: { message: string; atWall: number; recheckAt: number; version?: number },
): AccountState {
  const { rejectedVersion: _old, ...rest } = s;
  return {
    ...rest,
    failures: s.failures + 1,
    rejections: 0,
    nextAttemptAt: e.recheckAt,
    lastError: { reason: 'not_provisioned', message: e.message, atWall: e.atWall },
    ...(e.version !== undefined ? { rejectedVersion: e.version } : {}),
  };
}

/** A refresh token the authority refused: log in instead, keeping everything else. */
export function refreshRefused(s: AccountState): AccountState {
  const { refresh: _dropped, ...rest } = s;
  return rest;
}

/** A shared login limit has no slot: wait for it without growing the backoff. */
export function deferred(s: AccountState, e: { message: string; atWall: number; until: number }): AccountState {
  return { ...s, nextAttemptAt: e.until, lastError: { reason: 'rate_limited', message: e.message, atWall: e.atWall } };
}

/** A till says the authority refused this token: drop it and allow a login now. */
export function tokenDropped(s: AccountState, now: number): AccountState {
  const { token: _dropped, ...rest } = s;
  return { ...rest, lastForcedAt: now, nextAttemptAt: Math.min(s.nextAttemptAt, now) };
}

/** New credentials were stored: the wait for them is over. */
export function credentialsChanged(s: AccountState): AccountState {
  return { ...s, failures: 0, rejections: 0, nextAttemptAt: 0 };
}

/** The account's config changed in a way that makes its token another's: start again, keeping history. */
export function configChanged(s: AccountState): AccountState {
  return {
    failures: 0,
    nextAttemptAt: 0,
    ...(s.lastLoginAtWall !== undefined ? { lastLoginAtWall: s.lastLoginAtWall } : {}),
    ...(s.lastSuccessAtWall !== undefined ? { lastSuccessAtWall: s.lastSuccessAtWall } : {}),
    ...(s.lastForcedAt !== undefined ? { lastForcedAt: s.lastForcedAt } : {}),
  };
}

/** A stored token (and refresh token) taken back at start. */
export function restored(
  s: AccountState,
  e: { token?: HeldToken; refresh?: HeldRefresh; obtainedAtWall: number; acrossReboot: boolean },
): AccountState {
  return {
    ...s,
    ...(e.token ? { token: e.token, lastLoginAtWall: e.obtainedAtWall, lastSuccessAtWall: e.obtainedAtWall } : {}),
    ...(e.refresh ? { refresh: e.refresh } : {}),
    ...(e.token && e.acrossReboot ? { unconfirmed: true } : {}),
  };
}

/** Seconds a till should wait before asking again (at least 1). */
export function retryAfterS(s: AccountState, now: number): number {
  return Math.max(1, Math.ceil((s.nextAttemptAt - now) / 1000));
}
