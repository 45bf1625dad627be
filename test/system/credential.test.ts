/**
 * The sealing key as an encrypted systemd credential, docs/technicians.md's recipe, in a booted Debian 12: provisioning
 * run by pos-token-agent-provision in the service's context seals with the credential; running it again (a
 * rotation) keeps that database (it used to set it aside and make a key-file one, so that tills got 503
 * not_provisioned after the next restart while doctor said all passed); the agent restarted serves; a command
 * run outside the context is refused and changes nothing; the state directory stays 0700.
 */
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createEmulator, DEMO_DEVICE, type Emulator } from '../../src/emulator/index.js';
import { openDatabase } from '../../src/store/sqlite.js';
import {
  BASE_PACKAGES,
  bookwormRoot,
  debFields,
  debFile,
  demoProvisionEnv,
  dependsNames,
  freshRoot,
  Machine,
  must,
  provisionInside,
  removeRoot,
  bootedSystemSkip,
  waitUntil,
} from './support.js';

const SKIP = bootedSystemSkip();
const STATE = '/var/lib/pos-token-agent';
const CRED = '/etc/credstore.encrypted/pos-token-agent.key';

describe('the key as a systemd credential, under a booted systemd', { skip: SKIP }, () => {
  let work = '';
  let m: Machine;
  let emulator: Emulator;

  const provision = (secret: string) => provisionInside(m, demoProvisionEnv(emulator.url, secret));
  const stateFiles = () => readdirSync(m.hostPath(STATE)).filter((n) => !/-(wal|shm)$/.test(n)).sort();
  const keySource = () => {
    const db = openDatabase(m.hostPath(`${STATE}/state.db`), { readonly: true, fileMustExist: true });
    try {
      return db.prepare("SELECT value FROM meta WHERE key = 'key_source'").pluck().get();
    } finally {
      db.close();
    }
  };
  const tillToken = () => m.exec(['pos-token-agent', 'token'], { user: 'till', timeoutMs: 60_000 });

  before(
    async () => {
      const deb = debFile('amd64');
      if (!existsSync(deb)) throw new Error(`${deb} is missing: run npm run package first`);
      // dbus beyond the package's Depends: set-up runs its steps in the service's context with systemd-run --wait,
      // which talks D-Bus (without it set-up says so and stops: systemd.test.ts checks that on a root without it).
      const cached = await bookwormRoot([...BASE_PACKAGES, 'dbus', ...dependsNames((await debFields(deb)).Depends)], (s) => console.log(`# ${s}`));
      work = mkdtempSync(join(tmpdir(), 'pta-credential-'));
      await freshRoot(cached, join(work, 'root'));
      emulator = createEmulator({ devices: [DEMO_DEVICE], rateLimitPerMinute: 0, host: '127.0.0.1', port: 0 });
      await emulator.start();

      mkdirSync(join(work, 'root/root/debs'), { recursive: true });
      copyFileSync(deb, join(work, 'root/root/debs', basename(deb)));
      m = new Machine(join(work, 'root'), `pta-cred-${process.pid}`, join(work, 'console.log'));
      await m.boot();
      must('dpkg -i', await m.exec(['dpkg', '-i', `/root/debs/${basename(deb)}`], { env: { DEBIAN_FRONTEND: 'noninteractive' }, timeoutMs: 5 * 60_000 }));
      must('useradd till', await m.exec(['useradd', '--create-home', '--groups', 'pos-token-clients', 'till']));
    },
    { timeout: 30 * 60_000 },
  );

  after(
    async () => {
      await m?.shutdown();
      await emulator?.stop();
      if (work) removeRoot(join(work, 'root'));
    },
    { timeout: 3 * 60_000 },
  );

  it('the technicians\' recipe: the credential, a drop-in, then pos-token-agent-provision seals with it', { timeout: 5 * 60_000 }, async () => {
    must(
      'systemd-creds encrypt',
      await m.sh(
        `mkdir -p /etc/credstore.encrypted && head -c 32 /dev/urandom | systemd-creds encrypt --name=pos-token-agent.key - ${CRED}`,
      ),
    );
    mkdirSync(m.hostPath('/etc/systemd/system/pos-token-agent.service.d'), { recursive: true });
    writeFileSync(
      m.hostPath('/etc/systemd/system/pos-token-agent.service.d/credential.conf'),
      `[Service]\nLoadCredentialEncrypted=pos-token-agent.key:${CRED}\n`,
    );
    must('daemon-reload', await m.exec(['systemctl', 'daemon-reload']));
    const p = await provision(DEMO_DEVICE.clientSecrets[0]!);
    assert.equal(p.code, 0, p.stderr + p.stdout);
    assert.match(p.stdout, /Doctor:\s+ok/);
    assert.equal(keySource(), 'systemd credential');
    assert.deepEqual(stateFiles(), ['state.db'], 'no key file: the key is the credential');
    const t = await tillToken();
    assert.equal(t.code, 0, t.stderr);
  });

  it('running it again (a rotation) keeps the credential-sealed database, and the restarted agent serves', { timeout: 5 * 60_000 }, async () => {
    const p = await provision(DEMO_DEVICE.clientSecrets[1] ?? DEMO_DEVICE.clientSecrets[0]!);
    assert.equal(p.code, 0, p.stderr + p.stdout);
    assert.doesNotMatch(p.stderr, /could not be used on this machine|kept as/);
    assert.deepEqual(stateFiles(), ['state.db'], 'nothing set aside, no key file made');
    assert.equal(keySource(), 'systemd credential');
    must('restart', await m.exec(['systemctl', 'restart', 'pos-token-agent.service']));
    const served = await waitUntil('a token after the restart', async () => {
      const t = await tillToken();
      return t.code === 0 ? t : undefined;
    }, 60_000);
    assert.match(served.stdout.trim(), /^[\w-]+\.[\w-]+\.[\w-]+$/);
    assert.equal(statSync(m.hostPath(STATE)).mode & 0o777, 0o700, 'the state directory stays 0700');
  });

  it('a command outside the service context is refused and changes nothing', { timeout: 2 * 60_000 }, async () => {
    const before = stateFiles();
    const r = await m.exec(['runuser', '-u', 'pos-token-agent', '--', 'pos-token-agent', 'provision', '--account', 'default', '--stdin', '--no-verify'], {
      stdin: JSON.stringify({ clientId: DEMO_DEVICE.clientId, clientSecret: 'x', presharedKey: DEMO_DEVICE.presharedKey }),
    });
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /sealed with the systemd credential pos-token-agent\.key/);
    assert.deepEqual(stateFiles(), before);
    const t = await tillToken();
    assert.equal(t.code, 0, t.stderr);
  });
});
