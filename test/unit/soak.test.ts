/** The soak's decisions (test/support/soak.ts): the climb it fails on, and the node flags it reads from the unit. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, test } from 'node:test';
import { slopePerHour, trend, unitNode, type Sample } from '../support/soak.js';

const MIB = 2 ** 20;
/** A sample every 5 s for `seconds`, its value from `f(tS)` (bytes). */
const series = (seconds: number, f: (tS: number, i: number) => number): Sample[] =>
  Array.from({ length: Math.floor(seconds / 5) }, (_, i) => ({ tS: i * 5, value: f(i * 5, i) }));
/** A young generation's sawtooth: up to 3 MiB above the base, back down every 6 samples. */
const saw = (i: number): number => ((i % 6) / 5) * 3 * MIB;
/** Noise from a fixed sequence (no randomness in tests): within +-1 MiB. */
const wobble = (i: number): number => Math.sin(i * 12.9898) * MIB;

describe('soak: slope', () => {
  test('least squares in units per hour', () => {
    assert.ok(Math.abs(slopePerHour(series(600, (t) => 80 * MIB + (t / 300) * MIB)) / MIB - 12) < 1e-9);
    assert.equal(slopePerHour(series(600, () => 80 * MIB)), 0);
    assert.equal(slopePerHour([{ tS: 5, value: 1 }]), 0);
    assert.equal(slopePerHour([]), 0);
  });
});

describe('soak: a steady climb', () => {
  const RSS_LIMIT = 12 * MIB; // per hour, as the soak uses for RSS
  // `steep`: the slope alone is above the limit. Where it is and the series still does not climb, the thirds decide.
  const cases: Array<{ name: string; samples: Sample[]; steep: boolean; climbing: boolean }> = [
    {
      name: 'flat with a young generation sawtooth and noise',
      samples: series(480, (_, i) => 80 * MIB + saw(i) + wobble(i)),
      steep: false,
      climbing: false,
    },
    {
      name: "the issue's 25-minute run without a heap cap (83 -> 133 MiB, 120 MiB/h), noisy",
      samples: series(480, (t, i) => 83 * MIB + (t / 3600) * 120 * MIB + saw(i) + wobble(i)),
      steep: true,
      climbing: true,
    },
    { name: 'a leak of 20 MiB/h, smooth', samples: series(480, (t) => 80 * MIB + (t / 3600) * 20 * MIB), steep: true, climbing: true },
    {
      name: 'flat, then one late spike (a major collection that came late): steep slopes, the medians level',
      samples: series(480, (_, i, n = 96) => 80 * MIB + (i >= n - 8 && i < n - 3 ? 12 * MIB : 0) + wobble(i)),
      steep: true,
      climbing: false,
    },
    {
      name: 'settles from below, then flat (caches filled, the heap reached its cap): steep, the second half level',
      samples: series(480, (t) => 70 * MIB + Math.min(t, 120) * (10 / 120) * MIB),
      steep: true,
      climbing: false,
    },
    {
      name: 'a slow steady rise under the limit (3 MiB/h)',
      samples: series(480, (t) => 80 * MIB + (t / 3600) * 3 * MIB),
      steep: false,
      climbing: false,
    },
    { name: 'too few samples to judge (6), however steep', samples: series(30, (t) => 80 * MIB + t * MIB), steep: true, climbing: false },
    { name: 'falling', samples: series(480, (t) => 90 * MIB - (t / 3600) * 30 * MIB), steep: false, climbing: false },
    {
      // The packaged agent's anonymous memory in a 600 s soak: +3.2 MiB, most of it early, slowing down.
      name: 'slows down towards a bound (caches and arenas filling): steep, medians apart, the second half under the limit',
      samples: series(480, (t, i) => 120 * MIB + 3 * MIB * (1 - Math.exp(-t / 120)) + wobble(i) * 0.05),
      steep: true,
      climbing: false,
    },
    {
      // 2.7 MiB over the 8 minutes, under the sawtooth's 3: the thirds' medians still see it.
      name: 'a leak of 20 MiB/h on top of a young generation sawtooth and noise',
      samples: series(480, (t, i) => 80 * MIB + (t / 3600) * 20 * MIB + saw(i) + wobble(i)),
      steep: true,
      climbing: true,
    },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const r = trend(c.samples, RSS_LIMIT);
      assert.equal(r.slopePerHour > RSS_LIMIT, c.steep, `slope ${(r.slopePerHour / MIB).toFixed(1)} MiB/h`);
      const f = (v: number): string => (v / MIB).toFixed(2);
      assert.equal(r.climbing, c.climbing, `slope ${f(r.slopePerHour)} MiB/h, second half ${f(r.lastHalfSlopePerHour)}, thirds' medians ${f(r.firstThirdMedian)} -> ${f(r.lastThirdMedian)}`);
    });
  }

  test('the figures it reports', () => {
    const r = trend(series(90, (t) => t), 0);
    assert.deepEqual(
      { n: r.n, first: r.first, last: r.last, min: r.min, max: r.max, firstThirdMedian: r.firstThirdMedian, lastThirdMedian: r.lastThirdMedian },
      { n: 18, first: 0, last: 85, min: 0, max: 85, firstThirdMedian: 12.5, lastThirdMedian: 72.5 },
    );
    assert.equal(Math.round(r.slopePerHour), 3600);
    assert.equal(Math.round(r.lastHalfSlopePerHour), 3600);
    assert.equal(r.climbing, true);
  });
});

describe('soak: the node flags of the systemd unit', () => {
  const unit = (exec: string, extra = ''): string => `[Unit]\nDescription=x\n\n[Service]\n${extra}ExecStart=${exec}\nExecReload=/usr/bin/node /opt/x/dist/cli/main.js reload\n`;

  test('the flags between node and dist/cli/main.js; NODE_ENV and NODE_OPTIONS from Environment=; CacheDirectory=', () => {
    assert.deepEqual(unitNode(unit('/usr/bin/node /opt/pos-token-agent/dist/cli/main.js run')), { flags: [], env: {}, cacheDirectory: false });
    assert.deepEqual(
      unitNode(
        unit(
          '/usr/lib/pos-token-agent/node/bin/node --max-semi-space-size=1 --max-old-space-size=48 /usr/lib/pos-token-agent/dist/cli/main.js run',
          'Environment=NODE_ENV=production\nEnvironment="NODE_OPTIONS=--stack-size=900 --no-warnings" POS_TOKEN_AGENT_CONFIG=/etc/x.json\nCacheDirectory=pos-token-agent\n',
        ),
      ),
      {
        flags: ['--max-semi-space-size=1', '--max-old-space-size=48'],
        env: { NODE_ENV: 'production', NODE_OPTIONS: '--stack-size=900 --no-warnings' },
        cacheDirectory: true,
      },
    );
    assert.deepEqual(unitNode(unit('-/usr/bin/node "--title=pos agent" /opt/x/dist/cli/main.js run')).flags, ['--title=pos agent']);
  });

  test('a unit that does not run dist/cli/main.js with node is refused, naming the line', () => {
    assert.throws(() => unitNode('[Service]\nType=notify\n'), /no ExecStart= line/);
    assert.throws(() => unitNode(unit('/usr/bin/pos-token-agent run')), /ExecStart= does not run dist\/cli\/main\.js with node: ExecStart=\/usr\/bin\/pos-token-agent run/);
  });

  test("the repository's unit parses (the soak runs the agent with its flags)", () => {
    const parsed = unitNode(readFileSync(resolve(import.meta.dirname, '../../systemd/pos-token-agent.service'), 'utf8'));
    assert.ok(parsed.flags.every((f) => f.startsWith('--')), parsed.flags.join(' '));
  });
});
