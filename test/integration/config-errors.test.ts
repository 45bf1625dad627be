/**
 * Config mistakes through the real CLI (`dist/cli/main.js run`): a misspelled key gets "did you mean", a JSON
 * syntax error its line and column, a directory given as config says so, and a device profile that does not
 * exist stops `run` at start, listing the profiles there are, and makes a reload (SIGHUP) be refused while the
 * agent keeps serving with the config it has,
 * and `/v1/status` `config` says which config runs (the file's hash, its generation, the refused reload).
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ConfigStatusBody } from '../../src/api/index.js';
import { configFileSha256 } from '../../src/config/index.js';
import { ask, fixture, runCli, waitFor, type Fixture } from '../support/harness.js';

const PROFILES = resolve(import.meta.dirname, '../../device-profiles');
const AVAILABLE = 'available: generic-x86, manual, raspberry-pi, serial-fiscal-module';

describe('config errors through the real CLI', () => {
  let f: Fixture;
  before(async () => {
    f = await fixture();
    assert.equal((await f.provision()).code, 0);
  });
  after(() => f.cleanup());

  it('a misspelled key: "did you mean", exit 1 before anything starts', async () => {
    const account = { authority: 'eta-ereceipt', identityURL: f.emulator.url };
    writeFileSync(f.configPath, JSON.stringify({ socket: f.socket, stateDir: f.stateDir, logLevle: 'debug', accounts: { default: account } }));
    const r = await runCli(['run', '--config', f.configPath]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /\(top level\): unknown key "logLevle" \(did you mean "logLevel"\?\)/);
    assert.match(r.stderr, /accounts\.default: unknown key "identityURL" \(did you mean "identityUrl"\?\)/);
    f.writeConfig();
  });

  it('a JSON syntax error: line and column', async () => {
    writeFileSync(f.configPath, `{\n  "socket": ${JSON.stringify(f.socket)},\n  "accounts": {\n    "default": {,}\n  }\n}\n`);
    const r = await runCli(['run', '--config', f.configPath]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /not valid JSON at line 4, column 17: Expected property name or '\}'/);
    f.writeConfig();
  });

  it('a directory as --config: says it is a directory and to give the file', async () => {
    const r = await runCli(['run', '--config', f.dir]);
    assert.equal(r.code, 1, r.stderr);
    assert.equal(
      r.stderr.trim(),
      `pos-token-agent: invalid config ${f.dir}:\n  - cannot read the file: ${f.dir} is a directory; give the config file itself, such as ${f.configPath}`,
    );
  });

  it('a device profile that does not exist stops run at start, listing the available ones', async () => {
    f.writeConfig({ deviceProfile: 'generic-x68' }, { deviceProfileDirs: [PROFILES] });
    const r = await runCli(['run', '--config', f.configPath]);
    assert.equal(r.code, 1, `exit ${r.code}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`invalid config ${f.configPath.replace(/[.]/g, '\\.')}`));
    assert.ok(
      r.stderr.includes(`account default: device profile "generic-x68" not found in ${PROFILES}; ${AVAILABLE}`),
      r.stderr,
    );
    // The default directories: the bundled one, then /etc's.
    f.writeConfig({ deviceProfile: 'generic-x68' });
    const d = await runCli(['run', '--config', f.configPath]);
    assert.equal(d.code, 1, d.stderr);
    assert.ok(d.stderr.includes(`not found in ${PROFILES}, /etc/pos-token-agent/device-profiles; available: generic-x86`), d.stderr);
    f.writeConfig();
  });

  it('SIGHUP with a profile that does not exist is refused; the agent keeps serving; a good one is taken', async () => {
    f.writeConfig({ deviceProfile: 'manual' });
    const fileSha = (): string => configFileSha256(readFileSync(f.configPath, 'utf8'));
    const startedWith = fileSha();
    f.agent.start();
    await f.agent.ready();
    try {
      assert.equal((await ask(f.socket, '/v1/token')).status, 200);
      const first = (await ask(f.socket, '/v1/status')).json.config as ConfigStatusBody;
      assert.deepEqual([first.path, first.sha256, first.generation, first.reload_error], [f.configPath, startedWith, 1, null]);
      f.writeConfig({ deviceProfile: 'generic-x68' });
      f.agent.child!.kill('SIGHUP');
      await waitFor('the refusal in the log', () => f.agent.output.includes('config reload refused') || undefined);
      assert.match(f.agent.output, /account default: device profile \\"generic-x68\\" not found in .*available: generic-x86/);
      assert.doesNotMatch(f.agent.output, /config reloaded/);
      assert.equal((await ask(f.socket, '/v1/token')).status, 200, 'still serving');
      const status = await ask(f.socket, '/v1/status');
      assert.equal((status.json.accounts as Record<string, { state: string }>).default!.state, 'fresh');
      // It says which config it runs: not the file's (that one was refused), and why.
      const refused = status.json.config as ConfigStatusBody;
      assert.equal(refused.generation, 1);
      assert.equal(refused.sha256, startedWith);
      assert.notEqual(refused.sha256, fileSha());
      assert.match(refused.reload_error?.problems.join('\n') ?? '', /device profile "generic-x68" not found/);

      f.writeConfig({ deviceProfile: 'generic-x86' });
      f.agent.child!.kill('SIGHUP');
      await waitFor('the reload', () => f.agent.output.includes('config reloaded') || undefined);
      assert.equal((await ask(f.socket, '/v1/token')).status, 200);
      const taken = (await ask(f.socket, '/v1/status')).json.config as ConfigStatusBody;
      assert.deepEqual([taken.sha256, taken.generation, taken.reload_error, taken.pending_restart], [fileSha(), 2, null, []]);

      // A setting read only at start: the file runs, except that one, until a restart.
      f.writeConfig({ deviceProfile: 'generic-x86' }, { outbox: { maxEntries: 50 } });
      f.agent.child!.kill('SIGHUP');
      await waitFor('the third generation', async () => ((await ask(f.socket, '/v1/status')).json.config as ConfigStatusBody).generation === 3 || undefined);
      const pending = (await ask(f.socket, '/v1/status')).json.config as ConfigStatusBody;
      assert.deepEqual([pending.sha256, pending.pending_restart], [fileSha(), ['outbox']]);
    } finally {
      assert.equal(await f.agent.stop(), 0);
    }
  });
});
