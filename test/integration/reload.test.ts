/**
 * `pos-token-agent reload --pid PID` (the unit's ExecReload): SIGHUP to a real agent, then its answer from
 * `/v1/status`: exit 0 once the new config runs, 1 when the agent refused it (with the problems) or did not
 * answer in time. So `systemctl reload` fails on a refused config, with nothing outside the package.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import type { StatusBody } from '../../src/api/index.js';
import { configFileSha256 } from '../../src/config/index.js';
import { ask, fixture, runCli, type Fixture } from '../support/harness.js';

describe('pos-token-agent reload', () => {
  let f: Fixture;
  before(async () => {
    f = await fixture();
    assert.equal((await f.provision()).code, 0);
    f.agent.start();
    await f.agent.ready();
  });
  after(() => f.cleanup());

  const config = async (): Promise<NonNullable<StatusBody['config']>> => ((await ask(f.socket, '/v1/status')).json as unknown as StatusBody).config!;
  const reload = (extra: string[] = []) => runCli(['reload', '--pid', String(f.agent.child!.pid), '--socket', f.socket, ...extra]);

  it('waits until the agent runs the new config, and says which', async () => {
    const before = await config();
    f.writeConfig({ apiUrl: f.emulator.url });
    const r = await reload();
    assert.equal(r.code, 0, r.stderr);
    const after = await config();
    assert.equal(after.generation, before.generation + 1, 'taken before reload exited');
    assert.equal(after.sha256, configFileSha256(readFileSync(f.configPath, 'utf8')));
    assert.match(r.stdout, new RegExp(`^reload: config generation ${after.generation} taken \\(${f.configPath.replace(/[.]/g, '\\.')}, sha256 ${after.sha256}\\)$`, 'm'));
  });

  it('exits 1 with the problems when the agent refuses the config; the agent keeps serving the one it had', async () => {
    const before = await config();
    const good = readFileSync(f.configPath, 'utf8');
    try {
      f.writeConfig({ deviceProfile: 'generic-x68' });
      const r = await reload();
      assert.equal(r.code, 1, r.stdout);
      assert.match(r.stderr, /^reload: the agent refused the config and keeps running the one it had:\n {2}- account default: device profile "generic-x68" not found/m);
      const after = await config();
      assert.equal(after.generation, before.generation);
      assert.equal(after.sha256, before.sha256);
      assert.equal((await ask(f.socket, '/v1/token')).status, 200, 'still serving');
    } finally {
      writeFileSync(f.configPath, good);
    }
  });

  it('exits 1 when no new config nor a refusal comes within --timeout; 1 for a process that is not there; 2 without --pid', async () => {
    // A process that ignores SIGHUP stands in for an agent that never gets to the reload.
    const deaf = spawn(process.execPath, ['-e', "process.on('SIGHUP', () => {}); setTimeout(() => {}, 30_000)"], { stdio: 'ignore' });
    try {
      await new Promise((r) => setTimeout(r, 300));
      const r = await runCli(['reload', '--pid', String(deaf.pid), '--socket', f.socket, '--timeout', '1']);
      assert.equal(r.code, 1, r.stdout);
      assert.match(r.stderr, /reported neither a new config nor a refusal within 1 s/);
    } finally {
      deaf.kill('SIGKILL');
    }
    const gone = await runCli(['reload', '--pid', '999999999', '--socket', f.socket]);
    assert.equal(gone.code, 1);
    assert.match(gone.stderr, /cannot signal process 999999999 \(no such process\)/);
    const usage = await runCli(['reload', '--socket', f.socket]);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /--pid takes the agent's process id/);
  });
});
