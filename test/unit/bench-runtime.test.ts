/**
 * How the bench picks its runtimes (bench/runtime.ts): BENCH_RUNTIMES, the unit's flags (or BENCH_NODE_FLAGS), and
 * whether a package's dist/ is the repository's build (a stale tarball is rebuilt, not measured).
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, test } from 'node:test';
import { chosenRuntimes, distDifferences, unitRun } from '../../bench/runtime.js';

const REPO = resolve(import.meta.dirname, '../..');

describe('chosenRuntimes (BENCH_RUNTIMES)', () => {
  test('unset or empty: both, the packaged one first', () => {
    assert.deepEqual(chosenRuntimes(undefined), ['packaged', 'machine']);
    assert.deepEqual(chosenRuntimes(' '), ['packaged', 'machine']);
  });

  test('a list, in its order, each once', () => {
    assert.deepEqual(chosenRuntimes('machine'), ['machine']);
    assert.deepEqual(chosenRuntimes('machine, packaged,machine'), ['machine', 'packaged']);
  });

  test('an unknown name: an error naming it and the known ones', () => {
    assert.throws(() => chosenRuntimes('packaged,node24'), /unknown runtime "node24" \(packaged, machine\)/);
  });
});

describe('unitRun', () => {
  test("the repository's unit, its flags named as coming from it", () => {
    const unit = unitRun(REPO, undefined);
    assert.equal(unit.flagsFrom, 'systemd/pos-token-agent.service');
    assert.deepEqual(unit.args, ['run']);
  });

  test('BENCH_NODE_FLAGS replaces the flags (empty: none), the rest stays the unit\'s', () => {
    const unit = unitRun(REPO, ' --max-semi-space-size=1  --lite-mode ');
    assert.deepEqual(unit.nodeFlags, ['--max-semi-space-size=1', '--lite-mode']);
    assert.equal(unit.flagsFrom, 'BENCH_NODE_FLAGS');
    assert.equal(unit.env.NODE_ENV, 'production');
    assert.deepEqual(unitRun(REPO, '').nodeFlags, []);
  });
});

describe("distDifferences: is the package's dist/ this build?", () => {
  function tree(files: Record<string, string>): string {
    const dir = mkdtempSync(join(tmpdir(), 'bench-dist-'));
    for (const [path, text] of Object.entries(files)) {
      mkdirSync(join(dir, path, '..'), { recursive: true });
      writeFileSync(join(dir, path), text);
    }
    return dir;
  }

  test('the same files: none; source maps (the package leaves them out) do not count', () => {
    const repo = tree({ 'cli/main.js': 'a', 'agent.js': 'b', 'agent.js.map': '{}' });
    const pkg = tree({ 'cli/main.js': 'a', 'agent.js': 'b' });
    try {
      assert.deepEqual(distDifferences(repo, pkg), []);
    } finally {
      rmSync(repo, { recursive: true, force: true });
      rmSync(pkg, { recursive: true, force: true });
    }
  });

  test('a changed, a missing and an extra file are each named', () => {
    const repo = tree({ 'cli/main.js': 'new', 'agent.js': 'b', 'lib/added.js': 'c' });
    const pkg = tree({ 'cli/main.js': 'old', 'agent.js': 'b', 'lib/gone.js': 'd' });
    try {
      assert.deepEqual(distDifferences(repo, pkg).sort(), ['cli/main.js', 'lib/added.js', 'lib/gone.js']);
    } finally {
      rmSync(repo, { recursive: true, force: true });
      rmSync(pkg, { recursive: true, force: true });
    }
  });
});
