/**
 * Per-key sliding-window limiter on a monotonic time line. Refused attempts are not recorded,
 * so a client that keeps knocking is let in as soon as the window frees.
 */
export interface SlidingWindow {
  /** Records an attempt at `now`, or returns the whole seconds until one would be allowed. */
  take(key: string, now: number): { allowed: true } | { allowed: false; retryAfterS: number };
  clear(): void;
}

export function createSlidingWindow(limit: number, windowMs = 60_000, maxKeys = 10_000): SlidingWindow {
  const hits = new Map<string, number[]>();

  const prune = (now: number): void => {
    for (const [key, times] of hits) {
      if (times.every((t) => t <= now - windowMs)) hits.delete(key);
    }
    // Still too many live keys: forget the oldest ones rather than grow without bound.
    for (const key of hits.keys()) {
      if (hits.size < maxKeys) break;
      hits.delete(key);
    }
  };

  return {
    take(key, now) {
      let times = hits.get(key);
      if (times) {
        times = times.filter((t) => t > now - windowMs);
        hits.set(key, times);
      } else {
        if (hits.size >= maxKeys) prune(now);
        times = [];
        hits.set(key, times);
      }
      if (times.length >= limit) {
        const oldest = times[0] ?? now;
        return { allowed: false, retryAfterS: Math.max(1, Math.ceil((oldest + windowMs - now) / 1000)) };
      }
      times.push(now);
      return { allowed: true };
    },
    clear() {
      hits.clear();
    },
  };
}
