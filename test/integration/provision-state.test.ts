/**
 * What provisioning leaves in the state, through the real CLI: the token of its check login carries the
 * boot it was obtained in (so a restart in the same boot measures its age by uptime, as for the agent's
 * own logins), and a database sealed with the key from a systemd credential is never set aside by a
 * provisioning run that was not given that credential (it used to be, silently, and tills then got
 * 503 not_provisioned after the next restart while doctor said all passed).
 */
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ask, DEMO_CREDENTIALS, fixture, runCli, waitFor, type Fixture } from '../support/harness.js';
import { openDatabase } from '../../src/store/sqlite.js';

function tokenRow(stateDir: string): { boot_id: string | null; boot_uptime_ms: number | null; obtained_at: number } {
  const db = openDatabase(join(stateDir, 'state.db'), { readonly: true });
  try {
    return db.prepare('SELECT boot_id, boot_uptime_ms, obtained_at FROM tokens WHERE account = ?').get('default') as never;
  } finally {
    db.close();
  }
}

function meta(stateDir: string, key: string): unknown {
  const db = openDatabase(join(stateDir, 'state.db'), { readonly: true });
  try {
    return db.prepare('SELECT value FROM meta WHERE key = ?').pluck().get(key);
  } finally {
    db.close();
  }
}

describe('provisioning and the state it leaves', () => {
  let f: Fixture;
  before(async () => {
    f = await fixture();
  });
  after(() => f.cleanup());

  it("stores its check login's token with this boot's id and uptime", async () => {
    const uptimeBefore = Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]) * 1000;
    const p = await f.provision(DEMO_CREDENTIALS, []);
    assert.equal(p.code, 0, p.stderr);
    const uptimeAfter = Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]) * 1000;
    const row = tokenRow(f.stateDir);
    assert.equal(row.boot_id, readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim());
    assert.ok(row.boot_uptime_ms !== null && row.boot_uptime_ms >= uptimeBefore - 1 && row.boot_uptime_ms <= uptimeAfter + 1,
      `uptime ${row.boot_uptime_ms} within ${uptimeBefore}..${uptimeAfter}`);
    assert.equal(meta(f.stateDir, 'key_source'), 'key file');

    // The agent restarted in this boot takes it by uptime, without a login.
    const issued = f.emulator.stats().issued;
    f.agent.output = '';
    f.agent.start();
    await f.agent.ready();
    const r = await ask(f.socket, '/v1/token');
    assert.equal(r.status, 200, r.text);
    assert.equal(f.emulator.stats().issued, issued, 'no login: the stored token is used');
    assert.match(f.agent.output, /uptime \(same boot\)/);
    await f.agent.stop();
  });

  it('a database sealed with a systemd credential: refused without it, never set aside; with it, provisioning and the agent work', async () => {
    // As systemd passes it: $CREDENTIALS_DIRECTORY/pos-token-agent.key, 32 random bytes.
    const creds = join(f.dir, 'credentials');
    mkdirSync(creds, { recursive: true, mode: 0o700 });
    writeFileSync(join(creds, 'pos-token-agent.key'), randomBytes(32), { mode: 0o400 });
    // Start again from an empty state directory, sealed with the credential this time.
    for (const n of readdirSync(f.stateDir)) if (n.startsWith('state.db') || n.startsWith('secret.key')) {
      (await import('node:fs')).rmSync(join(f.stateDir, n));
    }
    const withCred = (args: string[], stdin = JSON.stringify(DEMO_CREDENTIALS)) =>
      runCli(['provision', '--config', f.configPath, '--account', 'default', '--stdin', ...args], {
        stdin,
        env: { CREDENTIALS_DIRECTORY: creds },
      });
    const sealed = await withCred([]);
    assert.equal(sealed.code, 0, sealed.stderr);
    assert.equal(meta(f.stateDir, 'key_source'), 'systemd credential');
    // SQLite's -wal and -shm come and go with connections; the files that hold state are the rest.
    const files = () => readdirSync(f.stateDir).filter((n) => !/-(wal|shm)$/.test(n)).sort();
    const before = files();
    assert.deepEqual(before, ['state.db']);

    // Re-provisioning outside the service's context (no credential): refused, naming the way to do it.
    const outside = await f.provision(DEMO_CREDENTIALS, []);
    assert.equal(outside.code, 1);
    assert.match(outside.stderr, /sealed with the systemd credential pos-token-agent\.key/);
    assert.match(outside.stderr, /systemd-run/);
    assert.deepEqual(files(), before, 'nothing set aside, no key file made');

    // Doctor outside the context says so, and does not ask for a re-provisioning.
    const doctor = await runCli(['doctor', '--config', f.configPath, '--json', '--no-login']);
    const report = JSON.parse(doctor.stdout) as { checks: Array<{ name: string; status: string; detail: string; fix?: string }> };
    const db = report.checks.find((c) => c.name === 'state.database');
    assert.equal(db?.status, 'fail');
    assert.match(String(db?.fix), /service's context/);
    assert.doesNotMatch(String(db?.fix), /re-provision every account/);

    // In the context (as pos-token-agent-provision runs it there): rotating works and the agent serves.
    const rotated = await withCred([]);
    assert.equal(rotated.code, 0, rotated.stderr);
    f.agent.output = '';
    f.agent.start({ CREDENTIALS_DIRECTORY: creds });
    await f.agent.ready();
    const served = await waitFor('a token sealed under the credential', async () => {
      const r = await ask(f.socket, '/v1/token');
      return r.status === 200 ? r : undefined;
    });
    assert.ok(served.json.access_token);
    await f.agent.stop();
  });
});
