/**
 * The time line that counts suspend (lib/timeline.ts), on the fake clock: FakeClock.suspend() moves the wall
 * clock and boot time (CLOCK_BOOTTIME) but not the monotonic clock, and fires no timer, as a sleeping box does.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FakeClock, type BootTime, type Clock } from '../../src/lib/clock.js';
import { CHECK_INTERVAL_MS, createTimeline, JUMP_MS } from '../../src/lib/timeline.js';

describe('timeline', () => {
  it('runs with the monotonic clock while the box is awake', async () => {
    const clock = new FakeClock();
    const line = createTimeline(clock);
    const t0 = line.now();
    await clock.advance(90_000);
    assert.equal(line.now() - t0, 90_000);
  });

  it('counts a suspend at the first reading after it, before any timer fires', () => {
    const clock = new FakeClock();
    const line = createTimeline(clock);
    const t0 = line.now();
    clock.suspend(8 * 3_600_000);
    assert.equal(line.now() - t0, 8 * 3_600_000, 'the wall clock moved without the monotonic one: boot time is read again');
  });

  it('tells its listeners of a jump once, with its length', () => {
    const clock = new FakeClock();
    const line = createTimeline(clock);
    const jumps: number[] = [];
    line.onJump((ms) => jumps.push(ms));
    clock.suspend(600_000);
    line.now();
    line.now();
    assert.deepEqual(jumps, [600_000]);
  });

  it('the periodic check finds a suspend when nothing reads the time line', async () => {
    const clock = new FakeClock();
    const line = createTimeline(clock);
    const jumps: number[] = [];
    line.onJump((ms) => jumps.push(ms));
    line.start();
    clock.suspend(3_600_000);
    await clock.advance(CHECK_INTERVAL_MS);
    assert.deepEqual(jumps, [3_600_000]);
    line.stop();
    assert.equal(clock.pendingTimers, 0, 'stop cancels the check');
  });

  it('a wall-clock step (NTP) is not a suspend', () => {
    const clock = new FakeClock();
    const line = createTimeline(clock);
    const jumps: number[] = [];
    line.onJump((ms) => jumps.push(ms));
    const t0 = line.now();
    clock.jumpWall(86_400_000);
    assert.equal(line.now(), t0);
    clock.jumpWall(-2 * 86_400_000);
    assert.equal(line.now(), t0);
    assert.deepEqual(jumps, []);
  });

  it('a suspend shorter than JUMP_MS is counted but re-plans nothing; /proc/uptime rounding is not time', () => {
    const clock = new FakeClock();
    const line = createTimeline(clock);
    const jumps: number[] = [];
    line.onJump((ms) => jumps.push(ms));
    const t0 = line.now();
    clock.suspend(JUMP_MS - 100);
    assert.equal(line.check(), 0);
    assert.equal(line.now() - t0, JUMP_MS - 100);
    assert.deepEqual(jumps, []);
  });

  it('never goes back, even when a boot-time reading lags behind (10 ms resolution)', () => {
    let uptime = 5_000;
    let mono = 1_000;
    const clock: Clock = {
      now: () => 1e12 + mono,
      monotonic: () => mono,
      setTimer: () => ({ cancel() {} }),
      boot: (): BootTime => ({ id: 'b', uptimeMs: uptime }),
    };
    const line = createTimeline(clock);
    const t0 = line.now();
    mono += 1_000;
    uptime += 990; // read 10 ms short
    assert.equal(line.check(), 0);
    assert.equal(line.now() - t0, 1_000);
  });

  it('without boot time (not Linux) it is the monotonic clock', () => {
    let mono = 0;
    let wall = 1e12;
    const clock: Clock = { now: () => wall, monotonic: () => mono, setTimer: () => ({ cancel() {} }) };
    const line = createTimeline(clock);
    wall += 3_600_000;
    mono += 10;
    assert.equal(line.now(), 10);
    assert.equal(line.boot(), undefined);
  });
});
