/**
 * Secrets at rest through the real agent: a state database from another machine, and one whose key
 * was lost. Proves: the agent does not crash but keeps its socket up and answers 503 not_provisioned
 * naming the problem; doctor fails the database check with a re-provision hint; `provision` sets the
 * unusable database and key aside (kept, not deleted) and the running agent serves a token from the
 * fresh one within seconds, without a restart.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ask, DEMO_CREDENTIALS, fixture, runCli, waitFor, type Fixture } from '../support/harness.js';
import { openDatabase } from '../../src/store/sqlite.js';

/** Makes the database look as if it was made on another box: its stored machine hash no longer matches. */
function moveToAnotherMachine(stateDir: string): void {
  const db = openDatabase(join(stateDir, 'state.db'));
  try {
    const binding = db.prepare("SELECT value FROM meta WHERE key = 'key_binding'").pluck().get();
    assert.equal(binding, 'machine-id', 'this box has a machine id, so the key is bound to it');
    db.prepare("UPDATE meta SET value = ? WHERE key = 'machine_hash'").run('0'.repeat(32));
  } finally {
    db.close();
  }
}

describe('state from another machine, or without its key, through the real agent', () => {
  let f: Fixture;
  before(async () => {
    f = await fixture();
  });
  after(() => f.cleanup());

  for (const [what, spoil, reason] of [
    ['a database from another machine', (x: Fixture) => moveToAnotherMachine(x.stateDir), /another machine/],
    ['a lost key', (x: Fixture) => unlinkSync(join(x.stateDir, 'secret.key')), /secret key .* is missing/],
  ] as const) {
    it(`${what}: 503 not_provisioned naming it, doctor's hint, then provision recovers the running agent`, async () => {
      const p = await f.provision(DEMO_CREDENTIALS, []);
      assert.equal(p.code, 0, p.stderr);
      spoil(f);
      f.agent.output = '';
      f.agent.start();
      await f.agent.ready();

      const refused = await waitFor('not_provisioned', async () => {
        const r = await ask(f.socket, '/v1/token');
        return r.status === 503 ? r : undefined;
      });
      assert.equal(refused.json.reason, 'not_provisioned');
      assert.match(String(refused.json.message), reason);
      assert.match(String(refused.json.message), /re-provision|restore the key/);
      assert.equal(f.agent.child?.exitCode, null, 'the agent keeps running');

      const doctor = await runCli(['doctor', '--config', f.configPath, '--json', '--no-login']);
      assert.equal(doctor.code, 1);
      const report = JSON.parse(doctor.stdout) as { checks: Array<{ name: string; status: string; detail: string; fix?: string }> };
      const failed = report.checks.filter((c) => c.status === 'fail').map((c) => `${c.name}: ${c.detail} / ${c.fix}`);
      assert.ok(failed.some((c) => /re-provision|restore it|provision --account/.test(c)), failed.join('\n'));

      const again = await f.provision(DEMO_CREDENTIALS, []);
      assert.equal(again.code, 0, again.stderr);
      assert.match(again.stderr, /could not be used on this machine|kept as/);
      const kept = readdirSync(f.stateDir).filter((n) => n.includes('.unusable-'));
      assert.ok(kept.some((n) => n.startsWith('state.db.unusable-')), `the old database is kept: ${kept.join(', ')}`);

      const served = await waitFor(
        'a token from the fresh database',
        async () => {
          const r = await ask(f.socket, '/v1/token');
          return r.status === 200 ? r : undefined;
        },
        30_000,
      );
      assert.ok(served.json.access_token);
      assert.match(f.agent.output, /the state database can be used again/);
      await f.agent.stop();
      for (const n of readdirSync(f.stateDir)) if (n.includes('.unusable-')) unlinkSync(join(f.stateDir, n));
      assert.ok(existsSync(join(f.stateDir, 'state.db')));
    });
  }
});
