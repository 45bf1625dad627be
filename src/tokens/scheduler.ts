/**
 * When each account next needs the network, as a pure rule (`wakeAt`), and the timers that keep those
 * appointments on the token time line (lib/timeline.ts):
 * - one timer per account for its next attempt (renewal ahead of expiry, a retry after backoff, a recheck);
 * - a watch that looks for new credentials every CREDENTIALS_POLL_MS while some account waits for them;
 * - and, when the time line jumps (the box slept), every appointment made again at once, since timers run
 *   on the monotonic clock that stood still meanwhile.
 */
import type { Clock, Timer } from '../lib/clock.js';
import type { Timeline } from '../lib/timeline.js';
import type { AccountState } from './account.js';

/** How often the agent itself looks again at an account without usable credentials (retry_after says so). */
export const NOT_PROVISIONED_RECHECK_MS = 30_000;
/**
 * How often the stored credentials' version is read while an account waits for new credentials (refused
 * or missing): one indexed read per waiting account, so `provision` is noticed within about a second.
 */
export const CREDENTIALS_POLL_MS = 1_000;

/** When the account's next attempt is due (at least `now`). */
export function wakeAt(s: AccountState, now: number): number {
  if (s.lastError?.reason === 'not_provisioned') return Math.max(now, s.nextAttemptAt);
  // A token restored across a reboot is confirmed by a login as soon as backoff allows.
  if (s.token && !s.unconfirmed && now < s.token.refreshAt) return Math.max(s.token.refreshAt, s.nextAttemptAt);
  return Math.max(now, s.nextAttemptAt);
}

export interface Scheduler {
  /** Sets (or replaces) the account's timer: `due` runs at `at` on the time line. */
  at(name: string, at: number, due: () => void): void;
  cancel(name: string): void;
  /** Whether the account has a timer set. */
  has(name: string): boolean;
  /** Starts the credentials watch unless it runs; it stops by itself once `needed()` says no. */
  watch(): void;
  stop(): void;
}

export interface SchedulerDeps {
  clock: Clock;
  timeline: Timeline;
  /** The credentials watch: what it does on each round, and whether another round is needed. */
  credentials: { poll(): void; needed(): boolean };
  pollMs?: number;
}

export function createScheduler(deps: SchedulerDeps): Scheduler {
  const { clock, timeline, credentials } = deps;
  const pollMs = deps.pollMs ?? CREDENTIALS_POLL_MS;
  const timers = new Map<string, Timer>();
  let watchTimer: Timer | undefined;
  let stopped = false;

  const round = (): void => {
    watchTimer = undefined;
    if (stopped) return;
    credentials.poll();
    if (!stopped && credentials.needed()) watchTimer = clock.setTimer(round, pollMs);
  };

  return {
    at(name, at, due) {
      timers.get(name)?.cancel();
      if (stopped) return;
      const timer = clock.setTimer(() => {
        if (timers.get(name) === timer) timers.delete(name);
        due();
      }, at - timeline.now());
      timers.set(name, timer);
    },
    cancel(name) {
      timers.get(name)?.cancel();
      timers.delete(name);
    },
    has: (name) => timers.has(name),
    watch() {
      if (stopped || watchTimer || !credentials.needed()) return;
      watchTimer = clock.setTimer(round, pollMs);
    },
    stop() {
      stopped = true;
      for (const t of timers.values()) t.cancel();
      timers.clear();
      watchTimer?.cancel();
      watchTimer = undefined;
    },
  };
}
