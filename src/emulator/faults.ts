/**
 * The injected faults: state, merging, and what they do to the next token request. Decisions are abstract
 * (`{kind: 'rateLimit', retryAfter}`); the wire of the authority renders them in its own shape.
 */
import type { EmulatorFaults } from './types.js';
import type { FaultsPatch } from './validate.js';

export type FaultDecision =
  | { kind: 'drop' }
  | { kind: 'none'; latencyMs: number }
  | { kind: 'rateLimit'; latencyMs: number; retryAfter: string }
  | { kind: 'fail5xx'; latencyMs: number; status: number; html: boolean }
  | { kind: 'malformed'; latencyMs: number; notJson: boolean }
  | { kind: 'error'; latencyMs: number; status: number; code: string; description: string };

export interface FaultState {
  /** A copy of the faults still active. */
  current(): EmulatorFaults;
  apply(patch: FaultsPatch): void;
  clear(): void;
  /** Decides, at arrival, what the faults do to this token request; consumes the counters used. */
  take(): FaultDecision;
  /** Consumes one `refreshFail`; true when this refresh must fail. */
  takeRefreshFail(): boolean;
  /** The lifetime override, if set. */
  lifetimeS(): number | undefined;
}

export function createFaultState(): FaultState {
  let faults: EmulatorFaults = {};
  let served5xx = 0;
  let servedMalformed = 0;

  /** Forgets counters that have run out, so the faults shown are the ones still active. */
  const sweep = (): void => {
    if (faults.drop === 0) delete faults.drop;
    if (faults.fail5xx === 0) delete faults.fail5xx;
    if (faults.malformed === 0) delete faults.malformed;
    if (faults.refreshFail === 0) delete faults.refreshFail;
    if (faults.rateLimit?.count === 0) delete faults.rateLimit;
    if (faults.error?.count === 0) delete faults.error;
  };

  const takeUnswept = (): FaultDecision => {
    if (faults.drop) {
      faults.drop -= 1;
      return { kind: 'drop' };
    }
    const latencyMs = faults.latencyMs ?? 0;
    if (faults.rateLimit && faults.rateLimit.count > 0) {
      faults.rateLimit = { ...faults.rateLimit, count: faults.rateLimit.count - 1 };
      return { kind: 'rateLimit', latencyMs, retryAfter: faults.rateLimit.retryAfter };
    }
    if (faults.fail5xx) {
      faults.fail5xx -= 1;
      return { kind: 'fail5xx', latencyMs, status: faults.status5xx ?? 503, html: served5xx++ % 2 === 1 };
    }
    if (faults.malformed) {
      faults.malformed -= 1;
      return { kind: 'malformed', latencyMs, notJson: servedMalformed++ % 2 === 0 };
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
      const decision = takeUnswept();
      sweep();
      return decision;
    },
    takeRefreshFail() {
      if (!faults.refreshFail) return false;
      faults.refreshFail -= 1;
      sweep();
      return true;
    },
    lifetimeS: () => faults.lifetimeS,
  };
}

/** The `error` fault both the token service and the API take: its shape, and one use of it consumed. */
export interface ErrorFault {
  error?: { code: string; description?: string; count?: number; status?: number };
}

/** Consumes one use of `faults.error` (a count left undefined lasts until cleared); undefined when none is set. */
export function takeErrorFault(
  faults: ErrorFault,
  latencyMs: number,
): { kind: 'error'; latencyMs: number; status: number; code: string; description: string } | undefined {
  if (!faults.error || faults.error.count === 0) return undefined;
  const { code, description, count, status } = faults.error;
  if (count !== undefined) faults.error = { ...faults.error, count: count - 1 };
  return { kind: 'error', latencyMs, status: status ?? 400, code, description: description ?? 'injected fault' };
}

/** A validated patch merged into the faults: a key set to null (or undefined) is removed. */
export function mergeFaults<T extends object>(current: T, patch: object): T {
  const next: Record<string, unknown> = { ...(current as Record<string, unknown>) };
  for (const [k, v] of Object.entries(patch)) {
    if (v === null || v === undefined) delete next[k];
    else next[k] = v;
  }
  return next as T;
}
