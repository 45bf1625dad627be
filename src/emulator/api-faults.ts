/**
 * The submission API's injected faults: state, merging, and what they do to the next API request. Kept apart from
 * the token endpoints' faults (faults.ts) so that a test can fail one side while the other works.
 */
import { mergeFaults, takeErrorFault } from './faults.js';
import type { EmulatorApiFaults } from './types.js';
import type { ApiFaultsPatch } from './validate.js';

export type ApiFaultDecision =
  | { kind: 'none'; latencyMs: number }
  | { kind: 'drop'; latencyMs: number }
  | { kind: 'rateLimit'; latencyMs: number; retryAfter: string }
  | { kind: 'fail5xx'; latencyMs: number; status: number }
  | { kind: 'revoke401'; latencyMs: number }
  | { kind: 'error'; latencyMs: number; status: number; code: string; description: string };

export interface ApiFaultState {
  /** A copy of the faults still active. */
  current(): EmulatorApiFaults;
  apply(patch: ApiFaultsPatch): void;
  clear(): void;
  /** Decides what the faults do to this request (one that passed the bearer check); consumes the counters used. */
  take(): ApiFaultDecision;
}

export function createApiFaultState(): ApiFaultState {
  let faults: EmulatorApiFaults = {};

  /** Forgets counters that have run out, so the faults shown are the ones still active. */
  const sweep = (): void => {
    if (faults.drop === 0) delete faults.drop;
    if (faults.fail5xx === 0) delete faults.fail5xx;
    if (faults.revoke401 === 0) delete faults.revoke401;
    if (faults.rateLimit?.count === 0) delete faults.rateLimit;
    if (faults.error?.count === 0) delete faults.error;
  };

  const takeUnswept = (): ApiFaultDecision => {
    const latencyMs = faults.latencyMs ?? 0;
    if (faults.drop) {
      faults.drop -= 1;
      return { kind: 'drop', latencyMs };
    }
    if (faults.rateLimit && faults.rateLimit.count > 0) {
      faults.rateLimit = { ...faults.rateLimit, count: faults.rateLimit.count - 1 };
      return { kind: 'rateLimit', latencyMs, retryAfter: faults.rateLimit.retryAfter };
    }
    if (faults.fail5xx) {
      faults.fail5xx -= 1;
      return { kind: 'fail5xx', latencyMs, status: faults.status5xx ?? 503 };
    }
    if (faults.revoke401) {
      faults.revoke401 -= 1;
      return { kind: 'revoke401', latencyMs };
    }
    return takeErrorFault(faults, latencyMs) ?? { kind: 'none', latencyMs };
  };

  return {
    current: () => structuredClone(faults),
    apply(patch) {
      faults = mergeFaults(faults, patch);
      sweep();
    },
    clear() {
      faults = {};
    },
    take() {
      // The happy path: no fault set, nothing to consume.
      if (faults.latencyMs === undefined && Object.keys(faults).length === 0) return { kind: 'none', latencyMs: 0 };
      const decision = takeUnswept();
      sweep();
      return decision;
    },
  };
}
