/**
 * The token side's counters: requests, answers by status, tokens issued and refreshed, rejections, and the last
 * request's headers with the secret ones redacted.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Answer } from './http.js';
import type { EmulatorStats } from './types.js';

const REDACTED_HEADERS = new Set(['presharedkey', 'authorization', 'proxy-authorization', 'cookie']);

export interface TokenStats {
  /** A token request arrived with these headers. */
  request(headers: IncomingHttpHeaders): void;
  /** One more answer (or drop) of this status. */
  count(status: string): void;
  /** An answer was written. */
  answered(answer: Answer): void;
  /** A copy. */
  get(): EmulatorStats;
  reset(): void;
}

function emptyStats(refresh: boolean): EmulatorStats {
  return refresh ? { requests: 0, issued: 0, rejected: 0, byStatus: {}, refreshed: 0 } : { requests: 0, issued: 0, rejected: 0, byStatus: {} };
}

function redactedHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  const seen: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    seen[name] = REDACTED_HEADERS.has(name) ? '[redacted]' : Array.isArray(value) ? value.join(', ') : value;
  }
  return seen;
}

/** `refresh`: the authority has refresh tokens, so the stats count refreshes. */
export function createTokenStats(refresh: boolean): TokenStats {
  let stats = emptyStats(refresh);
  const count = (status: string): void => {
    stats.byStatus[status] = (stats.byStatus[status] ?? 0) + 1;
  };
  return {
    request(headers) {
      stats.requests += 1;
      stats.lastRequestHeaders = redactedHeaders(headers);
    },
    count,
    answered(answer) {
      count(String(answer.status));
      if (answer.issued) stats.issued += 1;
      if (answer.refreshed && stats.refreshed !== undefined) stats.refreshed += 1;
      if (answer.status >= 400 && answer.status < 500) stats.rejected += 1;
    },
    get() {
      const copy: EmulatorStats = { ...stats, byStatus: { ...stats.byStatus } };
      if (stats.lastRequestHeaders) copy.lastRequestHeaders = { ...stats.lastRequestHeaders };
      return copy;
    },
    reset() {
      stats = emptyStats(refresh);
    },
  };
}
