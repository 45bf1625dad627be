/** Set-up's pure parts: systemd's time spans (how long to wait for the agent) and the durable config write. */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { parseTimespan } from '../../src/cli/commands/setup-agent.js';
import { writeDurably } from '../../src/cli/commands/setup-config.js';

describe('parseTimespan (systemctl show -p TimeoutStartUSec --value)', () => {
  test('what systemd prints, in milliseconds', () => {
    for (const [text, ms] of [
      ['1min 30s', 90_000],
      ['90s', 90_000],
      ['5min', 300_000],
      ['500ms', 500],
      ['1h 2min 3s', 3_723_000],
      ['1.5s', 1_500],
      ['2d', 172_800_000],
      ['250us', 0.25],
      ['1min 30s\n', 90_000],
    ] as const) {
      assert.equal(parseTimespan(text), ms, text);
    }
    assert.equal(parseTimespan('infinity'), Infinity);
  });

  test('anything else is not a time span', () => {
    for (const text of ['', 'abc', '90', '1min abc', 'min', '-5s', '1 minute']) assert.equal(parseTimespan(text), undefined, JSON.stringify(text));
  });
});

describe('writeDurably', () => {
  test('replaces the file whole, with the mode given, and leaves no temporary file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pta-durable-'));
    try {
      const file = join(dir, 'config.json');
      writeFileSync(file, 'old\n', { mode: 0o600 });
      writeDurably(file, '{"accounts":{}}\n', { mode: 0o640 });
      assert.equal(readFileSync(file, 'utf8'), '{"accounts":{}}\n');
      assert.equal(statSync(file).mode & 0o777, 0o640);
      writeDurably(file, Buffer.from('é\n'), { mode: 0o600, uid: statSync(file).uid, gid: statSync(file).gid });
      assert.equal(readFileSync(file, 'utf8'), 'é\n');
      assert.equal(statSync(file).mode & 0o777, 0o600);
      assert.deepEqual(readdirSync(dir), ['config.json']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
