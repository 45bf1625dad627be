/**
 * The bench's pure helpers (bench/lib.ts): reading smaps_rollup, the node flags of the shipped unit, and counting
 * collections in `node --trace-gc` output. The bench itself is run by hand (`npm run bench`), not by the tests.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, test } from 'node:test';
import { countGc, gcLogMark, gcSince, parseSmapsRollup, parseUnit, peakOf, perTenThousand, systemdWords } from '../../bench/lib.js';

const REPO = resolve(import.meta.dirname, '../..');
const KiB = 1024;

// A bare Node 24 idle, as Linux 6.18 prints it.
const ROLLUP_6_18 = `00400000-7ffe3a274000 ---p 00000000 00:00 0                              [rollup]
Rss:               43256 kB
Pss:               39925 kB
Pss_Dirty:          8168 kB
Pss_Anon:           8152 kB
Pss_File:          31773 kB
Pss_Shmem:             0 kB
Shared_Clean:       3476 kB
Shared_Dirty:          0 kB
Private_Clean:     31612 kB
Private_Dirty:      8168 kB
Referenced:        43256 kB
Anonymous:          8152 kB
KSM:                   0 kB
LazyFree:              0 kB
AnonHugePages:         0 kB
Swap:                  0 kB
SwapPss:               0 kB
Locked:                0 kB
`;

describe('parseSmapsRollup', () => {
  test('RSS, PSS, private (clean + dirty), anonymous and file-backed (RSS - anonymous), in bytes', () => {
    assert.deepEqual(parseSmapsRollup(ROLLUP_6_18), {
      rss: 43256 * KiB,
      pss: 39925 * KiB,
      private: (31612 + 8168) * KiB,
      privateDirty: 8168 * KiB,
      anonymous: 8152 * KiB,
      fileBacked: (43256 - 8152) * KiB,
      pssFile: 31773 * KiB,
    });
  });

  test('an older kernel without Pss_File: the rest is read, pssFile left out', () => {
    const old = ROLLUP_6_18.split('\n').filter((l) => !l.startsWith('Pss_')).join('\n');
    const s = parseSmapsRollup(old);
    assert.equal(s.rss, 43256 * KiB);
    assert.equal('pssFile' in s, false);
  });

  test('a field the bench needs is missing: the error names it', () => {
    const without = ROLLUP_6_18.split('\n').filter((l) => !l.startsWith('Anonymous:')).join('\n');
    assert.throws(() => parseSmapsRollup(without), /no Anonymous line/);
  });

  test('peakOf keeps each field at its own maximum', () => {
    const a = parseSmapsRollup(ROLLUP_6_18);
    const b = { ...a, rss: a.rss + 1, anonymous: a.anonymous - 1 };
    assert.deepEqual(peakOf(a, b), { ...a, rss: a.rss + 1 });
    assert.deepEqual(peakOf(undefined, b), b);
    assert.equal(peakOf(undefined, undefined), undefined);
  });
});

describe('parseUnit: how the shipped service runs node', () => {
  test("the repository's unit: node, the script and its arguments, NODE_ENV", () => {
    const unit = parseUnit(readFileSync(join(REPO, 'systemd/pos-token-agent.service'), 'utf8'));
    assert.equal(unit.node, '/usr/bin/node');
    assert.equal(unit.script, '/opt/pos-token-agent/dist/cli/main.js');
    assert.deepEqual(unit.args, ['run']);
    assert.equal(unit.env.NODE_ENV, 'production');
    for (const flag of unit.nodeFlags) assert.match(flag, /^-/, `${flag} is not a node flag`);
  });

  test('the words between the node binary and the script are its flags', () => {
    const unit = parseUnit('[Service]\nExecStart=/usr/bin/node --max-semi-space-size=1 --stack-size=900 /opt/p/dist/cli/main.js run\n');
    assert.deepEqual(unit.nodeFlags, ['--max-semi-space-size=1', '--stack-size=900']);
    assert.deepEqual(unit.args, ['run']);
  });

  test('no flags: none', () => {
    assert.deepEqual(parseUnit('ExecStart=/usr/bin/node /opt/p/dist/cli/main.js run').nodeFlags, []);
  });

  test('prefixes, quotes, a continued line, and the last ExecStart= after a reset', () => {
    const unit = parseUnit(
      [
        'ExecStart=/usr/bin/node /old.js',
        'ExecStart=',
        'ExecStart=-/usr/lib/p/node/bin/node "--title=pos token" \\',
        '  --max-old-space-size=48 /usr/lib/p/dist/cli/main.js run --verbose',
      ].join('\n'),
    );
    assert.equal(unit.node, '/usr/lib/p/node/bin/node');
    assert.deepEqual(unit.nodeFlags, ['--title=pos token', '--max-old-space-size=48']);
    assert.deepEqual(unit.args, ['run', '--verbose']);
  });

  test('NODE_* variables of Environment= lines, others left out; CacheDirectory=', () => {
    const unit = parseUnit(
      [
        'ExecStart=/usr/bin/node /opt/p/dist/cli/main.js run',
        'Environment=NODE_ENV=production',
        'Environment="NODE_OPTIONS=--max-semi-space-size=1 --lite-mode" POS_TOKEN_AGENT_CONFIG=/etc/p/config.json',
        'CacheDirectory=pos-token-agent',
      ].join('\n'),
    );
    assert.deepEqual(unit.env, { NODE_ENV: 'production', NODE_OPTIONS: '--max-semi-space-size=1 --lite-mode' });
    assert.equal(unit.cacheDirectory, 'pos-token-agent');
  });

  test('no ExecStart, or one naming no script: an error saying so', () => {
    assert.throws(() => parseUnit('[Service]\nType=notify\n'), /no ExecStart= line/);
    assert.throws(() => parseUnit('ExecStart=/usr/bin/pos-token-agent run'), /names no script/);
  });

  test('systemdWords: quotes, escapes, an unterminated quote', () => {
    assert.deepEqual(systemdWords(`a "b c" 'd "e"' f\\ g ""`), ['a', 'b c', 'd "e"', 'f g', '']);
    assert.throws(() => systemdWords('a "b'), /unterminated "/);
  });
});

describe('countGc: collections in node --trace-gc output', () => {
  // Node 24.22 (V8 13.6) and Node 20.20 (V8 11.3), as they print them; among the program's own output.
  const LINES = [
    '[30652:0x1e8b2000]       18 ms: Scavenge 4.9 (5.7) -> 4.5 (6.7) MB, pooled: 0 MB, 1.08 / 0.00 ms  (average mu = 1.000, current mu = 1.000) allocation failure; ',
    'ready',
    '[30660:0x2d2ce000]       22 ms: Mark-Compact 3.9 (5.6) -> 3.8 (6.3) MB, pooled: 0 MB, 4.94 / 0.00 ms  (average mu = 0.727, current mu = 0.727) testing; GC in old space requested',
    '[31080:0x5a4ee40]       70 ms: Scavenge 3.9 (4.0) -> 3.6 (5.0) MB, 1.57 / 0.00 ms  (average mu = 1.000, current mu = 1.000) allocation failure; ',
    '[30667:0x45320e50]      183 ms: Mark-Compact 55.5 (86.9) -> 47.1 (80.6) MB, 3.77 / 0.00 ms  (+ 1.3 ms in 34 steps since start of marking, biggest step 0.1 ms, walltime since start of marking 72 ms) (average mu = 1.000, current mu = 1.000) finalize incremental marking via stack guard; GC in old space requested',
    '[30667:0x45320e50]     5000 ms: Mark-Compact (reduce) 10.1 (12.0) -> 9.0 (11.0) MB, pooled: 0 MB, 2.00 / 0.00 ms  (average mu = 0.9, current mu = 0.9) idle notification: finalize idle round; memory reducer',
    '[30667:0x45320e50]     6000 ms: Minor Mark-Sweep 8.0 (9.0) -> 7.0 (9.0) MB, pooled: 0 MB, 0.50 / 0.00 ms  (average mu = 0.9, current mu = 0.9) allocation failure;',
    '{"level":"info","msg":"a log line that mentions Scavenge 1 MB, 2 / 3 ms"}',
  ];

  test('young (Scavenge, Minor Mark-Sweep) and full (Mark-Compact) collections, and their pauses', () => {
    const c = countGc(LINES.join('\n'));
    assert.equal(c.young, 3);
    assert.equal(c.full, 3);
    assert.equal(Math.round(c.pauseMs * 100), Math.round((1.08 + 4.94 + 1.57 + 3.77 + 2.0 + 0.5) * 100));
    assert.equal(c.lastAfterMb, 7.0);
  });

  test('allocation: each heap size before a collection minus the one after the previous, from the one given', () => {
    const text = [
      '[1:0x1]   10 ms: Scavenge 4.9 (5.7) -> 4.5 (6.7) MB, pooled: 0 MB, 1.08 / 0.00 ms  (average mu = 1.000, current mu = 1.000) allocation failure; ',
      '[1:0x1]   20 ms: Scavenge 20.5 (22.0) -> 4.0 (22.0) MB, pooled: 0 MB, 1.00 / 0.00 ms  (average mu = 1.000, current mu = 1.000) allocation failure; ',
      '[1:0x1]   30 ms: Mark-Compact 12.0 (22.0) -> 3.0 (20.0) MB, pooled: 0 MB, 3.00 / 0.00 ms  (average mu = 1.000, current mu = 1.000) testing; ',
    ].join('\n');
    // Without the heap size before the text, the first collection's allocation is unknown: (20.5 - 4.5) + (12 - 4).
    assert.equal(countGc(text).allocatedMb, 24);
    // With it (1.0 after the collection before): + (4.9 - 1.0).
    assert.equal(Math.round(countGc(text, 1.0).allocatedMb * 10), 279);
    assert.equal(countGc(text).lastAfterMb, 3);
  });

  test('nothing traced: zeros', () => {
    assert.deepEqual(countGc('ready\n'), { young: 0, full: 0, pauseMs: 0, allocatedMb: 0 });
    assert.deepEqual(countGc('ready\n', 2), { young: 0, full: 0, pauseMs: 0, allocatedMb: 0, lastAfterMb: 2 });
  });

  test('gcLogMark/gcSince count only the complete lines written after the mark', () => {
    const dir = mkdtempSync(join(tmpdir(), 'bench-gc-'));
    try {
      const log = join(dir, 'gc.log');
      assert.equal(gcLogMark(log), 0, 'no file yet');
      writeFileSync(log, `${LINES[0]}\n${LINES[3]!.slice(0, 30)}`); // the second line half written
      const mark = gcLogMark(log);
      appendFileSync(log, `${LINES[3]!.slice(30)}\n${LINES[2]}\n${LINES[0]!.slice(0, 20)}`);
      const c = gcSince(log, mark);
      assert.deepEqual([c.young, c.full], [1, 1]);
      // From 4.5 MB after the collection before the mark: (3.9 - 4.5 -> 0) + (3.9 - 3.6).
      assert.equal(Math.round(c.allocatedMb * 10), 3);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('perTenThousand', () => {
    assert.equal(perTenThousand(5, 50_000), 1);
    assert.ok(Number.isNaN(perTenThousand(5, 0)));
  });
});
