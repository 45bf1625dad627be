/** doctor's hints act on the config doctor was given: a --config is repeated in every command they suggest. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { runDoctor } from '../../src/doctor/index.js';

describe('doctor: hints name the config actually used', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pta-hints-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const config = join(dir, 'my config.json');
  writeFileSync(config, JSON.stringify({ socket: join(dir, 'agent.sock'), stateDir: join(dir, 'state'), accounts: {} }));

  test('given --config, the suggested commands carry it (shell-quoted)', async () => {
    const report = await runDoctor({ configPath: config, configFlag: config, env: {} });
    const fix = report.checks.find((c) => c.name === 'config')?.fix ?? '';
    assert.match(fix, new RegExp(`run pos-token-agent provision --config '${config.replace(/[.]/g, '\\.')}'\\)$`));
    assert.ok(!fix.includes('pos-token-agent-provision --config'), 'the set-up command finds the config by --config itself when asked');
  });

  test('without --config (the default place, or $POS_TOKEN_AGENT_CONFIG, which the commands find too) they do not', async () => {
    const report = await runDoctor({ configPath: config, env: {} });
    assert.match(report.checks.find((c) => c.name === 'config')?.fix ?? '', /run pos-token-agent provision\)$/);
  });
});
