/**
 * Refresh and retry policy as data plus pure functions, tested with tables of cases.
 */
import type { UnavailableReason } from '../api/index.js';
import type { BackoffPolicy } from '../config/index.js';

/**
 * Every reason a token is unavailable is retried after a backoff, except not_provisioned, which waits for
 * credentials. An authority's FailureReason must be one of these: the login pipeline hands it on unchanged.
 */
export type RetryableReason = Exclude<UnavailableReason, 'not_provisioned'>;

/** Refresh at about 2/3 of the lifetime, with +-10% jitter. */
export const REFRESH_FRACTION = 2 / 3;
export const REFRESH_JITTER = 0.1;
/** Longest a credentials_rejected retry interval grows to. */
export const REJECTED_MAX_MS = 3_600_000;

/** Milliseconds after receipt at which a token of this lifetime should be renewed. */
export function refreshDelayMs(lifetimeMs: number, random: () => number): number {
  const jitter = 1 + (random() * 2 - 1) * REFRESH_JITTER;
  return Math.max(0, Math.floor(lifetimeMs * REFRESH_FRACTION * jitter));
}

export interface RetryInput {
  /** 1 for the first failure in a row. */
  attempt: number;
  reason: RetryableReason;
  retryAfterMs?: number;
  policy: BackoffPolicy;
  random: () => number;
}

/** How long to wait before the next login after a failure. Always bounded and jittered. */
export function retryDelayMs({ attempt, reason, retryAfterMs, policy, random }: RetryInput): number {
  const n = Math.max(1, Math.min(attempt, 32));
  const jitter = (ms: number, spread: number): number => ms * (1 - spread + random() * 2 * spread);
  if (reason === 'credentials_rejected') {
    const cap = Math.max(REJECTED_MAX_MS, policy.rejectedRetryMs);
    const base = Math.min(cap, policy.rejectedRetryMs * 2 ** (n - 1));
    // Never sooner than the configured interval: jitter only upward.
    return Math.min(cap, Math.round(base * (1 + random() * 0.2)));
  }
  const expo = Math.min(policy.maxMs, policy.initialMs * 2 ** (n - 1));
  const backoff = Math.min(policy.maxMs, Math.round(jitter(expo, 0.2)));
  if (retryAfterMs !== undefined) {
    // The authority said when: wait at least that long, plus a little so a fleet does not return at once.
    return Math.max(Math.round(retryAfterMs * (1 + random() * 0.1)), reason === 'rate_limited' ? policy.initialMs : backoff);
  }
  return Math.max(policy.initialMs / 2, backoff);
}
