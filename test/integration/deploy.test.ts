/**
 * Field deployment: the systemd units (verify, security score), install.sh into a temporary
 * root, and provision.sh non-interactively against the bundled emulator.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../../src/authorities/index.js';
import { stateAccess } from '../../src/state.js';
import { openStore, type Store } from '../../src/store/index.js';
import { createEmulator, DEMO_DEVICE, type Emulator } from '../../src/emulator/index.js';
import { runCommand, type CommandResult } from '../support/harness.js';

const REPO = resolve(import.meta.dirname, '../..');
const UNITS = join(REPO, 'systemd');
const INSTALL = join(REPO, 'scripts/install.sh');
const PROVISION = join(REPO, 'scripts/provision.sh');
const IS_ROOT = process.getuid?.() === 0;
const has = (cmd: string): boolean => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

type Run = CommandResult;
const run = runCommand;

const mode = (p: string): number => statSync(p).mode & 0o7777;

/** Every path under dir with its type, mode and owner: what an idempotent install must leave alone. */
function snapshot(dir: string): string[] {
  const out: string[] = [];
  const walk = (p: string): void => {
    const st = lstatSync(p);
    const rel = p.slice(dir.length) || '/';
    if (/\/(node_modules|dist)\//.test(rel)) return;
    out.push(`${rel} ${st.isSymbolicLink() ? `-> ${readlinkSync(p)}` : (st.mode & 0o7777).toString(8)} ${st.uid}:${st.gid}`);
    if (st.isDirectory()) for (const n of readdirSync(p).sort()) walk(join(p, n));
  };
  walk(dir);
  return out;
}

function idOf(root: string, file: 'passwd' | 'group', name: string): number | undefined {
  const line = readFileSync(join(root, 'etc', file), 'utf8').split('\n').find((l) => l.startsWith(`${name}:`));
  return line ? Number(line.split(':')[2]) : undefined;
}

describe('systemd units', { skip: !has('systemd-analyze') && 'systemd-analyze is not installed' }, () => {
  it('pass systemd-analyze verify without a warning', async () => {
    let dir = UNITS;
    let tmp: string | undefined;
    if (!existsSync('/usr/bin/node')) {
      // verify checks that ExecStart's binary exists: point it at this node, as install.sh does.
      tmp = mkdtempSync(join(tmpdir(), 'pta-units-'));
      for (const n of ['pos-token-agent.service', 'pos-token-agent.socket']) {
        writeFileSync(join(tmp, n), readFileSync(join(UNITS, n), 'utf8').replaceAll('/usr/bin/node ', `${process.execPath} `));
      }
      dir = tmp;
    }
    try {
      const r = await run('systemd-analyze', ['verify', '--man=no', join(dir, 'pos-token-agent.service'), join(dir, 'pos-token-agent.socket')]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stderr.trim(), '', 'no warnings');
    } finally {
      if (tmp) rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('rate 2.0 or better with systemd-analyze security --offline', async () => {
    const r = await run('systemd-analyze', ['security', '--offline=yes', '--no-pager', join(UNITS, 'pos-token-agent.service')]);
    assert.equal(r.code, 0, r.stderr);
    const m = /Overall exposure level for pos-token-agent\.service: (\d+\.\d+) (\S+)/.exec(r.stdout);
    assert.ok(m, r.stdout.slice(-500));
    assert.ok(Number(m[1]) <= 2.0, `exposure ${m[1]} ${m[2]}`);
  });

  it('agree with each other and with the interface: socket path, owner, mode, program', () => {
    const service = readFileSync(join(UNITS, 'pos-token-agent.service'), 'utf8');
    const socket = readFileSync(join(UNITS, 'pos-token-agent.socket'), 'utf8');
    const sysusers = readFileSync(join(UNITS, 'pos-token-agent.sysusers'), 'utf8');
    const tmpfiles = readFileSync(join(UNITS, 'pos-token-agent.tmpfiles'), 'utf8');
    const key = (text: string, k: string): string[] => [...text.matchAll(new RegExp(`^${k}=(.*)$`, 'gm'))].map((x) => x[1]!);
    assert.deepEqual(key(socket, 'ListenStream'), ['/run/pos-token-agent/agent.sock']);
    assert.deepEqual(key(socket, 'SocketMode'), ['0660']);
    assert.deepEqual(key(socket, 'SocketUser'), ['pos-token-agent']);
    assert.deepEqual(key(socket, 'SocketGroup'), ['pos-token-clients']);
    assert.deepEqual(key(service, 'Type'), ['notify']);
    assert.deepEqual(key(service, 'NotifyAccess'), ['all']);
    assert.deepEqual(key(service, 'ExecStart'), ['/usr/bin/node --max-semi-space-size=2 --max-old-space-size=64 /opt/pos-token-agent/dist/cli/main.js run']);
    assert.deepEqual(key(service, 'CacheDirectory'), ['pos-token-agent'], "Node's compile cache: $CACHE_DIRECTORY");
    assert.deepEqual(key(service, 'CacheDirectoryMode'), ['0700']);
    assert.deepEqual(key(service, 'User'), ['pos-token-agent']);
    assert.deepEqual(key(service, 'StateDirectory'), ['pos-token-agent']);
    assert.deepEqual(key(service, 'StateDirectoryMode'), ['0700']);
    assert.deepEqual(key(service, 'DevicePolicy'), ['closed']);
    assert.deepEqual(key(service, 'DeviceAllow'), ['char-ttyS rw', 'char-ttyUSB rw', 'char-ttyACM rw']);
    assert.deepEqual(key(service, 'MemoryDenyWriteExecute'), [], 'V8 needs W+X memory');
    assert.deepEqual(key(service, 'RuntimeDirectory'), [], 'the socket unit owns /run/pos-token-agent');
    assert.match(service, /^WatchdogSec=\d+s?$/m);
    assert.match(sysusers, /^u pos-token-agent /m);
    assert.match(sysusers, /^g pos-token-clients /m);
    assert.match(sysusers, /^m pos-token-agent dialout$/m);
    assert.match(tmpfiles, /^d \/run\/pos-token-agent 0750 pos-token-agent pos-token-clients -$/m);
    // Documentation= names the technicians' guide where install.sh puts it (the package rewrites it to /usr/share/doc).
    for (const unit of [service, socket]) {
      const docs = key(unit, 'Documentation');
      assert.deepEqual(docs, ['file:/opt/pos-token-agent/docs/technicians.md']);
      assert.ok(existsSync(join(REPO, docs[0]!.slice('file:/opt/pos-token-agent/'.length))), `${docs[0]} is in the repository`);
    }
  });
});

describe('install.sh', () => {
  let root: string;
  let first: Run;
  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'pta-install-'));
    first = await run('bash', [INSTALL, '--root', root]);
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it('--help documents every option', async () => {
    const r = await run('bash', [INSTALL, '--help']);
    assert.equal(r.code, 0);
    for (const flag of ['--prefix', '--source', '--node', '--client-user', '--root', '--no-systemctl', '--no-users', '--uninstall', '--purge']) {
      assert.ok(r.stdout.includes(flag), flag);
    }
    assert.equal((await run('bash', [INSTALL, '--bogus'])).code, 2);
    assert.equal((await run('bash', [INSTALL, '--root', root, '--purge'])).code, 2, '--purge only with --uninstall');
  });

  it('installs the release, units, snippets, wrapper and a config skeleton', () => {
    assert.equal(first.code, 0, first.stderr + first.stdout);
    const prefix = join(root, 'opt/pos-token-agent');
    for (const p of ['dist/cli/main.js', 'package.json', 'systemd/pos-token-agent.service', 'scripts/provision.sh', 'README.md', 'docs/technicians.md', 'node_modules/better-sqlite3/package.json', 'node_modules/zod/package.json']) {
      assert.ok(existsSync(join(prefix, p)), p);
    }
    for (const dev of ['typescript', 'tsx', 'esbuild', '@types/node']) {
      assert.ok(!existsSync(join(prefix, 'node_modules', dev)), `dev dependency ${dev} left out`);
    }
    assert.equal(mode(prefix), 0o755);
    assert.equal(mode(join(prefix, 'dist/cli/main.js')) & 0o022, 0, 'program files are not writable by others');

    const unit = readFileSync(join(root, 'etc/systemd/system/pos-token-agent.service'), 'utf8');
    assert.match(unit, new RegExp(`^ExecStart=${process.execPath === '/usr/bin/node' ? '/usr/bin/node' : '.*node'} --max-semi-space-size=2 --max-old-space-size=64 /opt/pos-token-agent/dist/cli/main.js run$`, 'm'));
    assert.equal(mode(join(root, 'etc/systemd/system/pos-token-agent.service')), 0o644);
    assert.match(unit, /^Documentation=file:\/opt\/pos-token-agent\/docs\/technicians\.md$/m, 'the guide, where install.sh put it');
    assert.equal(mode(join(root, 'etc/systemd/system/pos-token-agent.socket')), 0o644);
    assert.ok(existsSync(join(root, 'etc/sysusers.d/pos-token-agent.conf')));
    assert.ok(existsSync(join(root, 'etc/tmpfiles.d/pos-token-agent.conf')));

    const wrapper = join(root, 'usr/local/bin/pos-token-agent');
    assert.equal(mode(wrapper), 0o755);
    assert.match(readFileSync(wrapper, 'utf8'), /^exec \S*node --max-semi-space-size=2 --max-old-space-size=64 \/opt\/pos-token-agent\/dist\/cli\/main\.js "\$@"$/m, 'the unit\'s node flags');
    assert.equal(readlinkSync(join(root, 'usr/local/sbin/pos-token-agent-provision')), '/opt/pos-token-agent/scripts/provision.sh');

    const config = join(root, 'etc/pos-token-agent/config.json');
    assert.equal(mode(config), 0o640);
    assert.equal(mode(join(root, 'etc/pos-token-agent')), 0o750);
    assert.deepEqual(JSON.parse(readFileSync(config, 'utf8')), {
      socket: `${root}/run/pos-token-agent/agent.sock`,
      stateDir: `${root}/var/lib/pos-token-agent`,
      logLevel: 'info',
      accounts: {},
    });
    assert.equal(mode(join(root, 'var/lib/pos-token-agent')), 0o700);
    assert.match(first.stdout, /would run: systemctl daemon-reload/);
    assert.match(first.stdout, /would run: systemctl enable pos-token-agent\.socket/);
  });

  it('installs units that pass systemd-analyze verify', { skip: !has('systemd-analyze') && 'systemd-analyze is not installed' }, async () => {
    const dir = join(root, 'etc/systemd/system');
    const r = await run('systemd-analyze', ['verify', '--man=no', join(dir, 'pos-token-agent.service'), join(dir, 'pos-token-agent.socket')]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr.trim(), '');
  });

  it('creates the user and groups in the root, and owns files by them', { skip: !(IS_ROOT && has('systemd-sysusers')) && 'needs root and systemd-sysusers' }, () => {
    const uid = idOf(root, 'passwd', 'pos-token-agent');
    const gid = idOf(root, 'group', 'pos-token-agent');
    assert.ok(uid !== undefined && gid !== undefined);
    assert.ok(idOf(root, 'group', 'pos-token-clients') !== undefined);
    assert.match(readFileSync(join(root, 'etc/group'), 'utf8'), /^dialout:.*pos-token-agent/m);
    const config = statSync(join(root, 'etc/pos-token-agent/config.json'));
    assert.deepEqual([config.uid, config.gid], [0, gid]);
    const state = statSync(join(root, 'var/lib/pos-token-agent'));
    assert.deepEqual([state.uid, state.gid], [uid, gid]);
    assert.equal(statSync(join(root, 'opt/pos-token-agent/dist/cli/main.js')).uid, 0);
  });

  it('the installed program runs with the production modules alone', async () => {
    const r = await run(process.execPath, [join(root, 'opt/pos-token-agent/dist/cli/main.js'), '--version']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')).version);
  });

  it('is idempotent: a second run changes nothing and keeps an edited config', async () => {
    const config = join(root, 'etc/pos-token-agent/config.json');
    const edited = readFileSync(config, 'utf8').replace('"info"', '"debug"');
    writeFileSync(config, edited);
    const before = snapshot(root);
    const again = await run('bash', [INSTALL, '--root', root]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /kept: .*config\.json/);
    assert.deepEqual(snapshot(root), before);
    assert.equal(readFileSync(config, 'utf8'), edited);
    assert.deepEqual(readdirSync(join(root, 'opt')), ['pos-token-agent'], 'no staging folders left behind');
  });

  it('--uninstall keeps config and state; --purge removes them', async () => {
    writeFileSync(join(root, 'var/lib/pos-token-agent/state.db'), 'x');
    const un = await run('bash', [INSTALL, '--root', root, '--uninstall']);
    assert.equal(un.code, 0, un.stderr);
    for (const gone of ['opt/pos-token-agent', 'etc/systemd/system/pos-token-agent.service', 'etc/systemd/system/pos-token-agent.socket', 'usr/local/bin/pos-token-agent', 'usr/local/sbin/pos-token-agent-provision', 'etc/sysusers.d/pos-token-agent.conf', 'etc/tmpfiles.d/pos-token-agent.conf']) {
      assert.ok(!existsSync(join(root, gone)), gone);
    }
    assert.ok(existsSync(join(root, 'var/lib/pos-token-agent/state.db')));
    assert.ok(existsSync(join(root, 'etc/pos-token-agent/config.json')));
    assert.match(un.stdout, /would run: systemctl disable --now pos-token-agent\.socket pos-token-agent\.service/);

    const reinstall = await run('bash', [INSTALL, '--root', root]);
    assert.equal(reinstall.code, 0, reinstall.stderr);
    assert.ok(existsSync(join(root, 'var/lib/pos-token-agent/state.db')), 'a reinstall finds the state');

    const purge = await run('bash', [INSTALL, '--root', root, '--uninstall', '--purge']);
    assert.equal(purge.code, 0, purge.stderr);
    assert.ok(!existsSync(join(root, 'var/lib/pos-token-agent')));
    assert.ok(!existsSync(join(root, 'etc/pos-token-agent')));
  });
});

describe('install.sh over a provisioned box', () => {
  let root: string;
  before(() => {
    root = mkdtempSync(join(tmpdir(), 'pta-reinstall-'));
  });
  after(() => rmSync(root, { recursive: true, force: true }));

  it('says "next: provision" only while there is no account, and starts a provisioned agent again after --uninstall', async () => {
    const fresh = await run('bash', [INSTALL, '--root', root]);
    assert.equal(fresh.code, 0, fresh.stderr);
    assert.match(fresh.stdout, /next: pos-token-agent-provision/);
    assert.doesNotMatch(fresh.stdout, /enable --now/);

    // As provisioning leaves it: an account in the config and a state database.
    const config = join(root, 'etc/pos-token-agent/config.json');
    const cfg = JSON.parse(readFileSync(config, 'utf8')) as { accounts: Record<string, unknown> };
    cfg.accounts.default = { authority: 'eta-ereceipt', identityUrl: 'https://id.preprod.eta.gov.eg', deviceProfile: 'generic-x86' };
    writeFileSync(config, JSON.stringify(cfg));
    writeFileSync(join(root, 'var/lib/pos-token-agent/state.db'), 'x');

    const upgrade = await run('bash', [INSTALL, '--root', root]);
    assert.equal(upgrade.code, 0, upgrade.stderr);
    assert.doesNotMatch(upgrade.stdout, /next:/, 'an upgrade of a provisioned box is not told to provision');

    const un = await run('bash', [INSTALL, '--root', root, '--uninstall']);
    assert.equal(un.code, 0, un.stderr);
    const reinstall = await run('bash', [INSTALL, '--root', root]);
    assert.equal(reinstall.code, 0, reinstall.stderr);
    assert.match(reinstall.stdout, /would run: systemctl enable --now pos-token-agent\.socket pos-token-agent\.service/);
    assert.doesNotMatch(reinstall.stdout, /next:/);
  });
});

describe('provision.sh --non-interactive', () => {
  let root: string;
  let emulator: Emulator;
  let config: string;
  let env: Record<string, string>;

  const provision = (args: string[] = [], extra: Record<string, string> = {}): Promise<Run> =>
    run('bash', [PROVISION, '--root', root, '--non-interactive', '--skip-doctor', ...args], { ...env, ...extra });
  /** The state as the CLI opens it (key file bound to the machine id). */
  const openState = async (): Promise<Store> =>
    openStore({ ...(await stateAccess(loadConfig(config, {}), { env: {} })).options, createKey: false });
  const storedSecret = async (): Promise<string | undefined> => {
    const store = await openState();
    try {
      return store.getCredentials('default')?.credentials.clientSecret;
    } finally {
      store.close();
    }
  };

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'pta-provision-'));
    const installed = await run('bash', [INSTALL, '--root', root]);
    assert.equal(installed.code, 0, installed.stderr);
    emulator = createEmulator({ devices: [DEMO_DEVICE], rateLimitPerMinute: 0 });
    await emulator.start();
    config = join(root, 'etc/pos-token-agent/config.json');
    env = {
      // The installed copy, with its production modules only.
      POS_TOKEN_AGENT_BIN: join(root, 'opt/pos-token-agent/dist/cli/main.js'),
      POS_AUTHORITY: 'eta-ereceipt',
      POS_IDENTITY_URL: emulator.url,
      POS_PROFILE: 'manual',
      POS_SERIAL: DEMO_DEVICE.posserial,
      POS_OS_VERSION: DEMO_DEVICE.pososversion!,
      POS_MODEL_FRAMEWORK: DEMO_DEVICE.posmodelframework!,
      POS_CLIENT_ID: DEMO_DEVICE.clientId,
      POS_CLIENT_SECRET: DEMO_DEVICE.clientSecrets[0]!,
      POS_PRESHARED_KEY: DEMO_DEVICE.presharedKey!,
    };
  });
  after(async () => {
    await emulator?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  it('--help documents every option and the environment', async () => {
    const r = await run('bash', [PROVISION, '--help']);
    assert.equal(r.code, 0);
    for (const word of ['--account', '--authority', '--identity-url', '--profile', '--serial', '--non-interactive', '--from', '--config', '--root', '--user', '--no-verify', '--no-systemctl', '--skip-doctor', 'POS_TOKEN_AGENT_BIN', 'POS_CLIENT_SECRET', 'POS_API_KEY']) {
      assert.ok(r.stdout.includes(word), word);
    }
    const argv = await run('bash', [PROVISION, '--client-secret', 'x']);
    assert.equal(argv.code, 2);
    assert.match(argv.stderr, /never taken on the command line/);
  });

  it('writes the account, checks the credentials with a login, stores them, and sums up', async () => {
    const r = await provision();
    assert.equal(r.code, 0, r.stderr);
    assert.equal(emulator.stats().issued, 1, 'one check login');
    const cfg = JSON.parse(readFileSync(config, 'utf8'));
    assert.deepEqual(cfg.accounts.default, {
      authority: 'eta-ereceipt',
      identityUrl: emulator.url,
      deviceProfile: 'manual',
      identity: { posserial: DEMO_DEVICE.posserial, pososversion: DEMO_DEVICE.pososversion, posmodelframework: DEMO_DEVICE.posmodelframework },
    });
    assert.equal(mode(config), 0o640, 'the config keeps its mode');
    assert.equal(await storedSecret(), DEMO_DEVICE.clientSecrets[0]);
    assert.match(r.stdout, /Account: +default/);
    assert.match(r.stdout, /Authority: +eta-ereceipt/);
    assert.match(r.stdout, /Profile: +manual/);
    assert.match(r.stdout, /Serial: +DEMO-POS-0001/);
    assert.match(r.stdout, /Token: +valid until \d{4}-\d\d-\d\d \d\d:\d\d UTC \(in (59|60) minutes\)/);
    assert.match(r.stdout, /Agent: +not answering \(not started here\)/);
    assert.match(r.stderr, /would run: systemctl enable --now pos-token-agent\.socket pos-token-agent\.service/);
    for (const secret of [DEMO_DEVICE.clientSecrets[0]!, DEMO_DEVICE.presharedKey!]) {
      assert.ok(!r.stdout.includes(secret) && !r.stderr.includes(secret), 'no secret in the output');
    }
    assert.ok(!existsSync(`${config}.provision-backup`));
  });

  it('re-running rotates the secret and keeps the rest', async () => {
    const configBefore = readFileSync(config, 'utf8');
    const store = await openState();
    const versionBefore = store.credentialsVersion('default')!;
    store.close();
    const r = await provision([], { POS_CLIENT_SECRET: DEMO_DEVICE.clientSecrets[1]! });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await storedSecret(), DEMO_DEVICE.clientSecrets[1]);
    assert.equal(readFileSync(config, 'utf8'), configBefore, 'the config is unchanged');
    const after = await openState();
    try {
      assert.equal(after.credentialsVersion('default'), versionBefore + 1);
      assert.ok(after.getToken('default'), 'a token is stored');
    } finally {
      after.close();
    }
  });

  it('with the installed agent running: doctor passes and the summary reads the agent', async () => {
    const agent = spawn(process.execPath, [join(root, 'opt/pos-token-agent/dist/cli/main.js'), 'run', '--config', config], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let log = '';
    agent.stderr.on('data', (d: Buffer) => (log += d.toString()));
    const exited = new Promise((r) => agent.on('exit', r));
    try {
      const socket = join(root, 'run/pos-token-agent/agent.sock');
      for (let i = 0; i < 200 && !existsSync(socket); i++) await new Promise((r) => setTimeout(r, 50));
      assert.ok(existsSync(socket), log);
      const r = await run('bash', [PROVISION, '--root', root, '--non-interactive'], env);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /Doctor: +(ok|not available in this version)/);
      assert.match(r.stdout, /Agent: +running; account default is fresh/);
      assert.match(r.stdout, /Serial: +DEMO-POS-0001/);
    } finally {
      agent.kill('SIGTERM');
      await exited;
    }
  });

  it('rejected credentials store nothing and leave the config as it was', async () => {
    const configBefore = readFileSync(config, 'utf8');
    const secretBefore = await storedSecret();
    const r = await provision(['--account', 'second', '--serial', 'OTHER-1'], { POS_CLIENT_SECRET: 'wrong-secret' });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /not stored/);
    assert.equal(readFileSync(config, 'utf8'), configBefore, 'the new account was taken out again');
    assert.equal(await storedSecret(), secretBefore);
  });

  it('non-interactive mode names what is missing', async () => {
    const r = await provision(['--account', 'third'], { POS_IDENTITY_URL: '', POS_AUTHORITY: '' });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /authority is missing: pass --authority or POS_AUTHORITY/);
  });

  it('--from FILE: JSON or env lines, refused unless only its owner can read it', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pta-from-'));
    try {
      const json = join(dir, 'creds.json');
      writeFileSync(json, JSON.stringify({ clientId: DEMO_DEVICE.clientId, clientSecret: DEMO_DEVICE.clientSecrets[0], presharedKey: DEMO_DEVICE.presharedKey }));
      chmodSync(json, 0o644);
      const { POS_CLIENT_ID: _a, POS_CLIENT_SECRET: _b, POS_PRESHARED_KEY: _c, ...noSecrets } = env;
      const refused = await run('bash', [PROVISION, '--root', root, '--non-interactive', '--skip-doctor', '--from', json], noSecrets);
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, /readable by others \(mode 644\).*chmod 600/);

      chmodSync(json, 0o600);
      const ok = await run('bash', [PROVISION, '--root', root, '--non-interactive', '--skip-doctor', '--from', json], noSecrets);
      assert.equal(ok.code, 0, ok.stderr);
      assert.equal(await storedSecret(), DEMO_DEVICE.clientSecrets[0]);

      const envFile = join(dir, 'creds.env');
      writeFileSync(
        envFile,
        `# rotation\nPOS_CLIENT_ID=${DEMO_DEVICE.clientId}\nexport POS_CLIENT_SECRET="${DEMO_DEVICE.clientSecrets[1]}"\nPOS_PRESHARED_KEY='${DEMO_DEVICE.presharedKey}'\n`,
        { mode: 0o600 },
      );
      const ok2 = await run('bash', [PROVISION, '--root', root, '--non-interactive', '--skip-doctor', '--from', envFile], noSecrets);
      assert.equal(ok2.code, 0, ok2.stderr);
      assert.equal(await storedSecret(), DEMO_DEVICE.clientSecrets[1]);

      writeFileSync(envFile, 'POS_CLIENT_SECRTE=typo\n', { mode: 0o600 });
      const typo = await run('bash', [PROVISION, '--root', root, '--non-interactive', '--skip-doctor', '--from', envFile], noSecrets);
      assert.equal(typo.code, 1);
      assert.match(typo.stderr, /unknown key POS_CLIENT_SECRTE/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('passes the credentials on standard input, never on a command line, and runs doctor', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pta-fakebin-'));
    try {
      // A stand-in for the CLI that records its argv and stdin.
      const fake = join(dir, 'pos-token-agent');
      writeFileSync(
        fake,
        `#!/bin/sh\nprintf '%s\\n' "ARGV $*" >>"${dir}/calls"\ncase "$1" in provision) cat >>"${dir}/calls"; echo >>"${dir}/calls"; echo stored ;; doctor) echo "doctor ok" ;; esac\nexit 0\n`,
        { mode: 0o755 },
      );
      const r = await run('bash', [PROVISION, '--root', root, '--non-interactive'], { ...env, POS_TOKEN_AGENT_BIN: fake });
      assert.equal(r.code, 0, r.stderr);
      const calls = readFileSync(join(dir, 'calls'), 'utf8');
      const argvLines = calls.split('\n').filter((l) => l.startsWith('ARGV '));
      assert.ok(argvLines.some((l) => l === `ARGV provision --account default --stdin --config ${config}`), calls);
      assert.ok(argvLines.some((l) => l.startsWith('ARGV doctor --config')), 'doctor runs');
      for (const l of argvLines) assert.ok(!l.includes(DEMO_DEVICE.clientSecrets[0]!) && !l.includes(DEMO_DEVICE.presharedKey!), l);
      const stdin = calls.split('\n').find((l) => l.startsWith('{'))!;
      assert.deepEqual(JSON.parse(stdin), {
        clientId: DEMO_DEVICE.clientId,
        clientSecret: DEMO_DEVICE.clientSecrets[0],
        presharedKey: DEMO_DEVICE.presharedKey,
      });
      assert.match(r.stdout, /Doctor: +ok/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
