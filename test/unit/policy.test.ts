import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { refreshDelayMs, retryDelayMs } from '../../src/tokens/index.js';

const policy = { initialMs: 1_000, maxMs: 300_000, rejectedRetryMs: 300_000 };

describe('refreshDelayMs', () => {
  it('is 2/3 of the lifetime +-10%', () => {
    assert.equal(refreshDelayMs(3_600_000, () => 0.5), 2_400_000);
    assert.equal(refreshDelayMs(3_600_000, () => 0), 2_160_000);
    assert.equal(refreshDelayMs(3_600_000, () => 1), 2_640_000);
  });
});

describe('retryDelayMs', () => {
  const cases: Array<[string, Parameters<typeof retryDelayMs>[0], number, number]> = [
    ['first network failure ~1 s', { attempt: 1, reason: 'upstream_unavailable', policy, random: () => 0.5 }, 1_000, 1_000],
    ['doubles', { attempt: 4, reason: 'upstream_unavailable', policy, random: () => 0.5 }, 8_000, 8_000],
    ['jitter low', { attempt: 4, reason: 'upstream_unavailable', policy, random: () => 0 }, 6_400, 6_400],
    ['jitter high', { attempt: 4, reason: 'upstream_unavailable', policy, random: () => 1 }, 9_600, 9_600],
    ['capped at 5 min', { attempt: 30, reason: 'upstream_unavailable', policy, random: () => 1 }, 300_000, 300_000],
    ['Retry-After on 429', { attempt: 1, reason: 'rate_limited', retryAfterMs: 30_000, policy, random: () => 0 }, 30_000, 30_000],
    ['Retry-After plus up to 10%', { attempt: 1, reason: 'rate_limited', retryAfterMs: 30_000, policy, random: () => 1 }, 33_000, 33_000],
    ['429 without Retry-After backs off', { attempt: 3, reason: 'rate_limited', policy, random: () => 0.5 }, 4_000, 4_000],
    ['503 Retry-After shorter than backoff', { attempt: 5, reason: 'upstream_unavailable', retryAfterMs: 1_000, policy, random: () => 0.5 }, 16_000, 16_000],
    ['rejected waits 5 min at least', { attempt: 1, reason: 'credentials_rejected', policy, random: () => 0 }, 300_000, 300_000],
    ['rejected grows', { attempt: 2, reason: 'credentials_rejected', policy, random: () => 0 }, 600_000, 600_000],
    ['rejected capped at 1 h', { attempt: 10, reason: 'credentials_rejected', policy, random: () => 1 }, 3_600_000, 3_600_000],
    ['identity failure backs off', { attempt: 2, reason: 'identity_unavailable', policy, random: () => 0.5 }, 2_000, 2_000],
  ];
  for (const [name, input, min, max] of cases) {
    it(name, () => {
      const d = retryDelayMs(input);
      assert.ok(d >= min && d <= max, `${d} not in [${min}, ${max}]`);
    });
  }
  it('is bounded for any attempt and random value', () => {
    for (let attempt = 1; attempt < 100; attempt++) {
      for (const r of [0, 0.3, 0.999]) {
        const d = retryDelayMs({ attempt, reason: 'upstream_unavailable', policy, random: () => r });
        assert.ok(d > 0 && d <= policy.maxMs);
      }
    }
  });
});
