/**
 * Login limits that an authority imposes across accounts (MyInvois: 12 logins per minute per
 * client ID). Counted on the token time line (lib/timeline.ts) in a sliding 60 s window per key; a 429 from the
 * authority blocks the key for everyone sharing it until its Retry-After has passed.
 */
const WINDOW_MS = 60_000;

export type LimitDecision = { ok: true } | { ok: false; retryAt: number };

export interface LoginLimiter {
  /** Takes a slot for a login now, or says when the next one frees up. */
  take(key: string, perMinute: number, now: number): LimitDecision;
  /** The authority said 429: nobody sharing the key logs in before `until`. */
  block(key: string, until: number): void;
}

export function createLoginLimiter(): LoginLimiter {
  const keys = new Map<string, { starts: number[]; blockedUntil: number }>();
  return {
    take(key, perMinute, now) {
      let k = keys.get(key);
      if (!k) keys.set(key, (k = { starts: [], blockedUntil: 0 }));
      if (now < k.blockedUntil) return { ok: false, retryAt: k.blockedUntil };
      while (k.starts.length && k.starts[0]! <= now - WINDOW_MS) k.starts.shift();
      if (k.starts.length >= perMinute) {
        return { ok: false, retryAt: k.starts[k.starts.length - perMinute]! + WINDOW_MS };
      }
      k.starts.push(now);
      return { ok: true };
    },
    block(key, until) {
      let k = keys.get(key);
      if (!k) keys.set(key, (k = { starts: [], blockedUntil: 0 }));
      k.blockedUntil = Math.max(k.blockedUntil, until);
    },
  };
}
