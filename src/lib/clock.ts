const { readFileSync } = process.getBuiltinModule('node:fs');
/**
 * Time as a collaborator. Decision code never calls Date.now() or setTimeout directly:
 * it asks a Clock, so tests drive time with FakeClock and nothing sleeps for real.
 */

export interface Timer {
  cancel(): void;
}

export interface Clock {
  /** Wall-clock milliseconds since the epoch (may jump). */
  now(): number;
  /** Monotonic milliseconds from an arbitrary origin (never jumps). */
  monotonic(): number;
  /** Runs fn after ms on the monotonic time line. The timer never keeps the process alive. */
  setTimer(fn: () => void, ms: number): Timer;
  /**
   * Which boot this is and how long since it started, suspend included (Linux: boot_id and
   * /proc/uptime): a time line that survives a restart of the agent and ignores wall-clock steps.
   * Undefined where it cannot be read.
   */
  boot?(): BootTime | undefined;
}

export interface BootTime {
  id: string;
  uptimeMs: number;
}

let bootId: string | null | undefined;

/** Linux's boot id and uptime; undefined elsewhere or when /proc cannot be read. */
export function readBootTime(): BootTime | undefined {
  try {
    bootId ??= readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim() || null;
    if (!bootId) return undefined;
    const uptimeS = Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
    return Number.isFinite(uptimeS) ? { id: bootId, uptimeMs: uptimeS * 1000 } : undefined;
  } catch {
    bootId = null;
    return undefined;
  }
}

export const systemClock: Clock = Object.freeze({
  now: () => Date.now(),
  monotonic: () => performance.now(),
  boot: readBootTime,
  setTimer(fn: () => void, ms: number): Timer {
    const handle = setTimeout(fn, Math.max(0, Math.min(ms, 2 ** 31 - 1)));
    handle.unref();
    return { cancel: () => clearTimeout(handle) };
  },
});

/** Resolves after ms, or rejects with the signal's reason when aborted first. */
export function sleep(clock: Clock, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = (): void => {
      timer.cancel();
      reject(signal?.reason);
    };
    const timer = clock.setTimer(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

interface FakeTimer {
  id: number;
  at: number;
  fn: () => void;
}

/**
 * A clock for tests. Time moves only when the test says so; `waitForTimer()` tells the
 * test when the code under test has started waiting.
 */
export class FakeClock implements Clock {
  #wall: number;
  #mono = 0;
  #timers: FakeTimer[] = [];
  #nextId = 1;
  #waiters: Array<() => void> = [];

  constructor(wallStart = Date.UTC(2026, 0, 1)) {
    this.#wall = wallStart;
  }

  now(): number {
    return this.#wall;
  }

  /**
   * One boot for the whole test, its uptime on the monotonic time line plus any `suspend()`; `reboot()` starts
   * another.
   */
  #bootId = 1;
  #bootOrigin = 0;
  #suspendedMs = 0;
  boot(): BootTime {
    return { id: `fake-boot-${this.#bootId}`, uptimeMs: this.#mono - this.#bootOrigin + this.#suspendedMs };
  }

  /** A new boot: another boot id, and uptime starts again from 0 (the monotonic clock goes on). */
  reboot(): void {
    this.#bootId += 1;
    this.#bootOrigin = this.#mono;
    this.#suspendedMs = 0;
  }

  /**
   * The box sleeps for ms: the wall clock and the boot time line (Linux CLOCK_BOOTTIME) move on, the monotonic
   * clock (CLOCK_MONOTONIC) does not, and no timer fires (they run on the monotonic clock, as Node's do).
   */
  suspend(ms: number): void {
    this.#wall += ms;
    this.#suspendedMs += ms;
  }

  monotonic(): number {
    return this.#mono;
  }

  setTimer(fn: () => void, ms: number): Timer {
    const timer: FakeTimer = { id: this.#nextId++, at: this.#mono + Math.max(0, ms), fn };
    this.#timers.push(timer);
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
    return { cancel: () => (this.#timers = this.#timers.filter((t) => t !== timer)) };
  }

  /** Number of timers still pending. */
  get pendingTimers(): number {
    return this.#timers.length;
  }

  /** Monotonic time at which the earliest pending timer fires, or undefined. */
  nextTimerAt(): number | undefined {
    let min: number | undefined;
    for (const t of this.#timers) if (min === undefined || t.at < min) min = t.at;
    return min;
  }

  /** Resolves the next time the code under test sets a timer. */
  waitForTimer(): Promise<void> {
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Moves both time lines forward, firing due timers in order; awaits microtasks between them. */
  async advance(ms: number): Promise<void> {
    const target = this.#mono + ms;
    for (;;) {
      const due = this.#timers
        .filter((t) => t.at <= target)
        .sort((a, b) => a.at - b.at || a.id - b.id)[0];
      if (!due) break;
      this.#timers = this.#timers.filter((t) => t !== due);
      this.#wall += due.at - this.#mono;
      this.#mono = due.at;
      due.fn();
      await flushMicrotasks();
    }
    this.#wall += target - this.#mono;
    this.#mono = target;
    await flushMicrotasks();
  }

  /** Moves the wall clock only (an NTP step or a wrong RTC), not the monotonic one. */
  jumpWall(ms: number): void {
    this.#wall += ms;
  }
}

export async function flushMicrotasks(): Promise<void> {
  for (let i = 0; i < 20; i++) await new Promise<void>((r) => setImmediate(r));
}
