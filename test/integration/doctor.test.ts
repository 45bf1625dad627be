/**
 * doctor through the real CLI (dist/cli/main.js) against a real agent: whether the agent runs the config file as it
 * is (edited without a reload, then reloaded; a reload refused), and a user who may not read the config (the CLI
 * run as nobody: a real permission denied, explained, with doctor as root as the fix, not the set-up).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ConfigStatusBody } from '../../src/api/index.js';
import { ask, CLI, fixture, runCli, waitFor, type CliResult, type Fixture } from '../support/harness.js';

interface Check {
  name: string;
  status: string;
  detail: string;
  fix?: string;
}

function checkOf(r: CliResult, name: string): Check {
  const report = JSON.parse(r.stdout) as { checks: Check[] };
  const c = report.checks.find((x) => x.name === name);
  assert.ok(c, `no check ${name}: ${r.stdout}${r.stderr}`);
  return c;
}

describe('doctor: which config the running agent runs', () => {
  let f: Fixture;
  before(async () => {
    f = await fixture();
    const p = await f.provision(undefined, []);
    assert.equal(p.code, 0, p.stderr);
    f.agent.start();
    await f.agent.ready();
  });
  after(() => f.cleanup());

  const doctor = () => runCli(['doctor', '--config', f.configPath, '--json', '--no-login']);
  const generation = async () => ((await ask(f.socket, '/v1/status')).json.config as ConfigStatusBody).generation;

  it('a config edited without a reload: a warning saying to reload (exit 0); after SIGHUP, ok with generation 2', async () => {
    const first = await doctor();
    assert.equal(first.code, 0, first.stdout);
    assert.equal(checkOf(first, 'agent.config').status, 'ok');
    assert.match(checkOf(first, 'agent.config').detail, /^the agent runs this config \(generation 1, loaded \S+Z\)$/);

    f.writeConfig({}, { logLevel: 'info' });
    const edited = await doctor();
    assert.equal(edited.code, 0, 'a warning: the agent serves with the config it has');
    const c = checkOf(edited, 'agent.config');
    assert.equal(c.status, 'warn');
    assert.equal(c.detail, `${f.configPath} has changed since the agent loaded it: the running agent runs an earlier version of ${f.configPath} (generation 1, loaded ${c.detail.match(/loaded (\S+Z)\)$/)?.[1]})`);
    assert.match(c.fix ?? '', /^reload the agent to apply it: send the agent SIGHUP \(kill -HUP with its process id\) \(a change of socket, .* takes effect only when the agent is started again\)$/);

    f.agent.child!.kill('SIGHUP');
    await waitFor('the reload', async () => ((await generation()) === 2 ? true : undefined));
    const reloaded = await doctor();
    assert.equal(reloaded.code, 0);
    assert.match(checkOf(reloaded, 'agent.config').detail, /^the agent runs this config \(generation 2, loaded \S+Z\)$/);
    assert.equal(checkOf(reloaded, 'agent.config').status, 'ok');
  });

  it('a reload refused (a device profile that does not exist): its problem, and to fix it before reloading', async () => {
    f.writeConfig({ deviceProfile: 'no-such-till' });
    const output = f.agent.output.length;
    f.agent.child!.kill('SIGHUP');
    await waitFor('the refusal', () => f.agent.output.slice(output).includes('config reload refused') || undefined);
    const r = await doctor();
    const c = checkOf(r, 'agent.config');
    assert.equal(c.status, 'warn');
    assert.match(c.detail, /its last reload, at \S+Z, was refused: account default: device profile "no-such-till" not found/);
    assert.equal(c.fix, 'fix what the refused reload names, then reload: send the agent SIGHUP (kill -HUP with its process id)');
    assert.equal(checkOf(r, 'default.identity').status, 'fail', 'and the identity check names the profile too');
    f.writeConfig({}, { logLevel: 'info' });
  });
});

describe('doctor: a user who may not read the config', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pta-doctor-perm-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it(
    'run as nobody: permission denied naming the file, its owner and mode, and doctor as root as the fix',
    { skip: process.getuid?.() !== 0 ? 'needs root to run the CLI as another user' : false },
    async () => {
      chmodSync(dir, 0o711);
      const config = join(dir, 'config.json');
      writeFileSync(config, JSON.stringify({ socket: join(dir, 'agent.sock'), stateDir: join(dir, 'state'), accounts: {} }));
      chmodSync(config, 0o640);
      const r = await new Promise<CliResult>((resolve) => {
        const child = spawn(process.execPath, [CLI, 'doctor', '--config', config, '--json'], { uid: 65534, gid: 65534, stdio: ['ignore', 'pipe', 'pipe'] });
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
        child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
        // A node or a checkout that nobody may reach (a clone in a 0700 temporary directory) fails the spawn itself:
        // say so instead of leaving the error unhandled.
        child.on('error', (err) => resolve({ code: null, stdout, stderr: `cannot run the CLI as nobody: ${err.message}` }));
        child.on('close', (code) => resolve({ code, stdout, stderr }));
      });
      assert.equal(r.code, 1, r.stderr);
      const c = checkOf(r, 'config');
      assert.equal(c.status, 'fail');
      assert.match(c.detail, new RegExp(`^permission denied: doctor, running as (user nobody|uid 65534), cannot read ${config}: ${config} is 0640 root:root \\(only root and the group root may\\)$`));
      assert.match(c.fix ?? '', new RegExp(`^run doctor as root: (sudo )?pos-token-agent doctor --config ${config}$`));
      assert.doesNotMatch(c.fix ?? '', /set-up|provision|edit/);
    },
  );
});
