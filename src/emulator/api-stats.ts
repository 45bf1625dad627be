/**
 * The submission API's counters: requests, answers by status, accepted, rejected, unauthorized, duplicates.
 */
import type { EmulatorApiStats } from './types.js';

export interface ApiStats {
  count(status: number | 'dropped'): void;
  request(): void;
  duplicate(): void;
  /** A copy, or undefined before the first request since the last reset. */
  get(): EmulatorApiStats | undefined;
  reset(): void;
}

function emptyStats(): EmulatorApiStats {
  return { requests: 0, accepted: 0, rejected: 0, unauthorized: 0, duplicates: 0, byStatus: {} };
}

/** The API's counters; undefined until the first request since the last reset. */
export function createApiStats(): ApiStats {
  let stats: EmulatorApiStats | undefined;
  const live = (): EmulatorApiStats => (stats ??= emptyStats());
  return {
    count(status) {
      const s = live();
      s.byStatus[status] = (s.byStatus[status] ?? 0) + 1;
      if (status === 'dropped') return;
      if (status >= 200 && status < 300) s.accepted += 1;
      else if (status === 401) s.unauthorized += 1;
      else if (status >= 400 && status < 500) s.rejected += 1;
    },
    request: () => void (live().requests += 1),
    duplicate: () => void (live().duplicates += 1),
    get: () => (stats ? { ...stats, byStatus: { ...stats.byStatus } } : undefined),
    reset() {
      stats = undefined;
    },
  };
}
