/**
 * A time line that counts suspend, for deadlines that the world keeps while the box sleeps (a token's
 * expiry). Node's timers and performance.now() run on Linux's CLOCK_MONOTONIC, which stops during suspend;
 * CLOCK_BOOTTIME (the first field of /proc/uptime) does not. Reading /proc on every request would cost a
 * file read, so the boot time is sampled against the monotonic clock and kept as an offset:
 *
 *   now() = monotonic() + offset,   offset = uptime - monotonic at the last sample (it only ever grows).
 *
 * The offset is sampled again (a) when the wall clock has moved differently from the monotonic clock since
 * the last sample, which a resume from suspend does (the wall clock is the RTC's; an NTP step does it too,
 * and then the sample finds no suspend), so a request right after a resume already sees the slept time; and
 * (b) every CHECK_INTERVAL_MS from a timer, so that timers planned before the sleep are planned again
 * within that long even when no request comes. A jump of more than JUMP_MS is reported to the listeners.
 * Where boot time cannot be read (not Linux, /proc absent) the line is the monotonic clock.
 */
import type { BootTime, Clock, Timer } from './clock.js';

export interface Timeline {
  /** Milliseconds on the time line that counts suspend (origin arbitrary; never goes back). */
  now(): number;
  /** This boot's id and uptime (suspend included) for storing beside a deadline, when known. */
  boot(): BootTime | undefined;
  /** Samples boot time now; returns the suspended time it found since the last sample (0: none). */
  check(): number;
  /** Tells the listener of every jump (a suspend of more than JUMP_MS); returns its removal. */
  onJump(listener: (suspendedMs: number) => void): () => void;
  /** Starts (idempotent) and stops the periodic check. */
  start(): void;
  stop(): void;
}

/** How often the periodic check samples boot time: the longest a timer planned before a suspend runs late. */
export const CHECK_INTERVAL_MS = 10_000;
/** A suspend shorter than this is folded into the line silently; a longer one re-plans. */
export const JUMP_MS = 1_000;
/** Wall and monotonic clocks that drift apart by more than this make now() sample boot time. */
const WALL_SLACK_MS = 1_000;
/** Gains below this are /proc/uptime's 10 ms resolution, not time: the offset is left as it is. */
const NOISE_MS = 50;

export function createTimeline(clock: Clock, options: { checkIntervalMs?: number } = {}): Timeline {
  const interval = options.checkIntervalMs ?? CHECK_INTERVAL_MS;
  const listeners = new Set<(ms: number) => void>();
  let offset = 0;
  let wallGap = clock.now() - clock.monotonic();
  let timer: Timer | undefined;
  let running = false;

  const sample = (): number => {
    const mono = clock.monotonic();
    wallGap = clock.now() - mono;
    const boot = clock.boot?.();
    if (!boot) return 0;
    const gained = boot.uptimeMs - mono - offset;
    if (gained < NOISE_MS) return 0;
    offset += gained;
    return gained;
  };
  // The first sample sets the origin; it is not a jump.
  const first = clock.boot?.();
  if (first) offset = first.uptimeMs - clock.monotonic();

  const check = (): number => {
    const gained = sample();
    if (gained > JUMP_MS) for (const l of [...listeners]) l(gained);
    return gained > JUMP_MS ? gained : 0;
  };

  const tick = (): void => {
    timer = undefined;
    if (!running) return;
    check();
    if (running) timer = clock.setTimer(tick, interval);
  };

  return {
    now() {
      const mono = clock.monotonic();
      if (Math.abs(clock.now() - mono - wallGap) > WALL_SLACK_MS) check();
      return mono + offset; // one reading of the clock: the token route asks on every request
    },
    boot: () => clock.boot?.(),
    check,
    onJump(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    start() {
      if (running) return;
      running = true;
      timer = clock.setTimer(tick, interval);
    },
    stop() {
      running = false;
      timer?.cancel();
      timer = undefined;
    },
  };
}
