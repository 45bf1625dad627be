/** `pos-token-agent identity`, run in-process against a temporary config. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { identityCommand } from '../../../src/cli/commands/identity.js';
import { CliError, type Io, UnknownAccountError, UsageError } from '../../../src/cli/common.js';
import { ConfigError, DEFAULT_CONFIG_PATH } from '../../../src/config/index.js';
import { openPtyPair, ptySkipReason } from '../../support/pty.js';
import { startFakeModule } from './fake-module.js';
import { SHIPPED_PROFILES, tree } from './helpers.js';

const REPO = resolve(import.meta.dirname, '../../..');

let dir: string;
before(() => (dir = mkdtempSync(join(tmpdir(), 'pos-identity-cli-'))));
after(() => rmSync(dir, { recursive: true, force: true }));

const ETA = { authority: 'eta-ereceipt', identityUrl: 'https://id.eta.gov.eg' };

/** Writes a config with these accounts, reading files under `root`; returns its path. */
function config(accounts: Record<string, unknown>, root = tree('x86')): string {
  const path = join(dir, `config-${Math.random().toString(36).slice(2, 8)}.json`);
  writeFileSync(path, JSON.stringify({ stateDir: dir, deviceProfileDirs: [SHIPPED_PROFILES], identityRoot: root, accounts }));
  return path;
}

async function run(argv: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (c: Buffer) => (out += c.toString()));
  stderr.on('data', (c: Buffer) => (err += c.toString()));
  const io: Io = { stdout, stderr, stdin: new PassThrough(), env };
  const code = await identityCommand(argv, io);
  return { code, stdout: out, stderr: err };
}

describe('pos-token-agent identity', () => {
  test('--json with the manual profile: every value from the config', async () => {
    const path = config({
      main: { ...ETA, deviceProfile: 'manual', identity: { posserial: 'SN-77', pososversion: 'Windows 10', posmodelframework: '4.8' } },
    });
    const r = await run(['--json', '--config', path]);
    assert.equal(r.code, 0);
    assert.deepEqual(JSON.parse(r.stdout), {
      account: 'main',
      authority: 'eta-ereceipt',
      profile: 'manual',
      values: {
        posserial: { value: 'SN-77', source: 'config identity.posserial' },
        pososversion: { value: 'Windows 10', source: 'config identity.pososversion' },
        posmodelframework: { value: '4.8', source: 'config identity.posmodelframework' },
      },
      errors: {},
      required: ['posserial'],
      ok: true,
    });
  });

  test('--json with serial-fiscal-module pointed at a pty through POS_FISCAL_PORT', { skip: ptySkipReason }, async () => {
    const pty = await openPtyPair();
    const module = await startFakeModule(pty.b, (q) => (q === 'SN?' ? { send: 'SN=FM-4242\r\n' } : 'silent'));
    try {
      const path = config({ till: { ...ETA, deviceProfile: 'serial-fiscal-module' } });
      const r = await run(['--json', '--account', 'till'], { POS_TOKEN_AGENT_CONFIG: path, POS_FISCAL_PORT: pty.a });
      assert.equal(r.code, 0, r.stderr);
      const body = JSON.parse(r.stdout) as { profile: string; values: Record<string, unknown>; errors: unknown };
      assert.equal(body.profile, 'serial-fiscal-module');
      assert.deepEqual(body.values.posserial, { value: 'FM-4242', source: `serialport ${pty.a}` });
      assert.deepEqual(body.errors, {});
      assert.deepEqual(module.queries, ['SN?']);
    } finally {
      await module.close();
      await pty.close();
    }
  });

  test('a table of each value and its source', async () => {
    const r = await run(['--config', config({ main: { ...ETA, deviceProfile: 'generic-x86' } })]);
    assert.equal(r.code, 0);
    assert.equal(
      r.stdout,
      [
        'account main (eta-ereceipt), device profile generic-x86',
        '',
        '  FIELD              VALUE                SOURCE',
        '  posserial          PF3XK2A9             dmi product_serial',
        '  pososversion       Debian GNU/Linux 12  os-release {NAME} {VERSION_ID}',
        '  posmodelframework  1                    static',
        '',
      ].join('\n'),
    );
  });

  test('a required value missing: the reasons, and exit 1', async () => {
    const r = await run(['--config', config({ main: { ...ETA, deviceProfile: 'generic-x86' } }, tree('x86-noserial'))]);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /^ {2}posserial +- +unreadable \(see below\); required$/m);
    assert.match(r.stdout, /^posserial: dmi product_serial: holds the placeholder "Default string"; dmi board_serial: cannot read/m);
    assert.match(r.stderr, /^pos-token-agent: the agent cannot log in with this identity: account main \(device profile generic-x86\): no posserial/);
    const json = await run(['--json', '--config', config({ main: { ...ETA, deviceProfile: 'generic-x86' } }, tree('x86-noserial'))]);
    assert.equal(json.code, 1);
    assert.equal((JSON.parse(json.stdout) as { ok: boolean }).ok, false);
  });

  test('an account without a profile and without posserial: exit 1 naming the config key', async () => {
    const r = await run(['--config', config({ main: ETA })]);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /no device profile \(config values only\)/);
    assert.match(r.stdout, /posserial +- +no source: not sent; required/);
    assert.match(r.stderr, /set accounts\.main\.identity\.posserial in the config, or give the account a deviceProfile/);
  });

  test('--profile reads with another profile than the account\'s', async () => {
    const path = config({ main: { ...ETA, deviceProfile: 'generic-x86' } }, tree('pi'));
    const r = await run(['--json', '--profile', 'raspberry-pi', '--config', path]);
    assert.equal(r.code, 0);
    const body = JSON.parse(r.stdout) as { profile: string; values: { posserial: { value: string } } };
    assert.equal(body.profile, 'raspberry-pi');
    assert.equal(body.values.posserial.value, '10000000abcdef01');
  });

  test('--detect lists the matching profiles; none matching exits 1', async () => {
    const r = await run(['--detect', '--config', config({ main: ETA }, tree('pi'))]);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^ {2}raspberry-pi +Raspberry Pi: serial from the device tree/m);
    assert.match(r.stdout, /Check one with: pos-token-agent identity --profile raspberry-pi/);
    const json = await run(['--detect', '--json', '--config', config({ main: ETA }, tree('x86'))]);
    assert.deepEqual(JSON.parse(json.stdout), {
      matches: [{ profile: 'generic-x86', description: 'x86 PC or POS terminal with SMBIOS firmware data: serial from DMI, OS from os-release', conditions: 2 }],
      invalid: [],
    });
    const none = await run(['--detect', '--config', config({ main: ETA }, tree('files'))]);
    assert.equal(none.code, 1);
    assert.match(none.stdout, /No device profile matches this hardware/);
  });

  test('a one-shot command stays alive across the pauses between serial tries', async () => {
    const profiles = join(dir, 'profiles');
    mkdirSync(profiles);
    const source = { source: 'serialport', path: '/nonexistent/ttyQ', baudRate: 9600, request: 'SN?\r\n', response: '^SN=(.*)$', timeoutMs: 100, retries: 1, retryPauseMs: 300 };
    writeFileSync(join(profiles, 'gone.json'), JSON.stringify({ name: 'gone', description: 'x', values: { posserial: source } }));
    const path = join(dir, 'gone-config.json');
    writeFileSync(path, JSON.stringify({ stateDir: dir, deviceProfileDirs: [profiles], accounts: { main: { ...ETA, deviceProfile: 'gone' } } }));
    const script = `
      import { identityCommand } from ${JSON.stringify(join(REPO, 'src/cli/commands/identity.ts'))};
      const code = await identityCommand(['--json', '--config', ${JSON.stringify(path)}], { stdout: process.stdout, stderr: process.stderr, stdin: process.stdin, env: {} });
      process.stdout.write('exit ' + code);`;
    const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: REPO, encoding: 'utf8', timeout: 20_000 });
    assert.equal(child.status, 0, child.stderr);
    assert.match(child.stdout, /all 2 tries \(100 ms each\) failed: cannot open \/nonexistent\/ttyQ: No such file or directory \(is the module connected\? is the path right\?\)"/);
    assert.match(child.stdout, /exit 1$/);
  });

  test('--help', async () => {
    const r = await run(['--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^Usage: pos-token-agent identity \[--account NAME\] \[--profile NAME\] \[--json\] \[--config FILE\]/);
  });

  test('usage errors', async () => {
    const two = config({ a: ETA, b: ETA });
    await assert.rejects(run(['--detect', '--account', 'a', '--config', two]), (e: unknown) => e instanceof UsageError && /--detect takes neither/.test(e.message));
    await assert.rejects(run(['--config', two]), (e: unknown) => e instanceof UsageError && /several accounts \(a, b\); choose one with --account/.test(e.message));
    await assert.rejects(run(['--profile', '../etc/x', '--config', two]), UsageError);
    await assert.rejects(run(['--bogus']), UsageError);
  });

  test('an unknown account or profile is a clear failure', async () => {
    const path = config({ main: ETA });
    await assert.rejects(
      run(['--account', 'nope', '--config', path]),
      (e: unknown) => e instanceof UnknownAccountError && /^unknown account nope; the config .* has: main; see pos-token-agent status$/.test(e.message),
    );
    await assert.rejects(run(['--account', 'constructor', '--config', path]), UnknownAccountError, 'not an inherited property');
    await assert.rejects(run(['--profile', 'nope', '--config', path]), (e: unknown) => e instanceof CliError && /^no device profile named "nope" in /.test(e.message));
  });

  test('--profile previews what the profile reads, also where the account sets identity values (noted)', async () => {
    const path = config({ main: { ...ETA, deviceProfile: 'manual', identity: { posserial: 'FIXED-1', posmodelframework: '7' } } });
    const plain = JSON.parse((await run(['--json', '--config', path])).stdout) as { values: Record<string, { value: string }> };
    assert.equal(plain.values.posserial!.value, 'FIXED-1', 'without --profile: what a login sends');
    const r = await run(['--json', '--profile', 'generic-x86', '--config', path]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), {
      account: 'main',
      authority: 'eta-ereceipt',
      profile: 'generic-x86',
      values: {
        posserial: { value: 'PF3XK2A9', source: 'dmi product_serial' },
        pososversion: { value: 'Debian GNU/Linux 12', source: 'os-release {NAME} {VERSION_ID}' },
        posmodelframework: { value: '1', source: 'static' },
      },
      errors: {},
      config_overrides: { posserial: 'FIXED-1', posmodelframework: '7' },
      required: ['posserial'],
      ok: true,
    });
    const table = await run(['--profile', 'generic-x86', '--config', path]);
    assert.equal(table.code, 0);
    assert.match(table.stdout, /^account main \(eta-ereceipt\), device profile generic-x86 \(preview\)$/m);
    assert.match(table.stdout, /^ {2}posserial +PF3XK2A9 +dmi product_serial$/m);
    assert.match(table.stdout, /^note: the config sets accounts\.main\.identity\.posserial \("FIXED-1"\); the agent sends that instead of the profile's value$/m);
    // The manual profile reads those values through its config sources: nothing to note.
    const manual = JSON.parse((await run(['--json', '--profile', 'manual', '--config', path])).stdout) as { values: Record<string, { value: string }>; config_overrides: unknown };
    assert.equal(manual.values.posserial!.value, 'FIXED-1');
    assert.deepEqual(manual.config_overrides, {});
  });

  test('several accounts and no --account: the one named default, when there is one', async () => {
    const path = config({ a: { ...ETA, identity: { posserial: 'A' } }, default: { ...ETA, identity: { posserial: 'D' } } });
    const r = await run(['--json', '--config', path]);
    assert.equal(r.code, 0, r.stderr);
    const body = JSON.parse(r.stdout) as { account: string; values: Record<string, { value: string }> };
    assert.equal(body.account, 'default');
    assert.equal(body.values.posserial!.value, 'D');
    assert.equal((JSON.parse((await run(['--json', '--account', 'a', '--config', path])).stdout) as { account: string }).account, 'a');
  });

  test('--profile without any config file: the default profile directories and identity root /', { skip: existsSync(DEFAULT_CONFIG_PATH) && `${DEFAULT_CONFIG_PATH} exists here` }, async () => {
    const r = await run(['--json', '--profile', 'generic-x86'], {});
    const body = JSON.parse(r.stdout) as { account: unknown; profile: string; values: Record<string, { value: string; source: string }> };
    assert.equal(body.account, null);
    assert.equal(body.profile, 'generic-x86');
    assert.deepEqual(body.values.posmodelframework, { value: '1', source: 'static' }, 'the bundled profile');
    const osRelease = readFileSync(existsSync('/etc/os-release') ? '/etc/os-release' : '/usr/lib/os-release', 'utf8');
    const name = /^NAME="?([^"\n]*)"?$/m.exec(osRelease)?.[1];
    assert.ok(body.values.pososversion!.value.startsWith(name!), `read from this box's /: ${body.values.pososversion!.value}`);
    const table = await run(['--profile', 'manual'], {});
    assert.equal(table.code, 1, 'manual needs the values in a config');
    assert.match(table.stdout, new RegExp(`^device profile manual as an eta-ereceipt account reads it; no config file \\(${DEFAULT_CONFIG_PATH.replace(/[.]/g, '\\.')} not found\\)`, 'm'));
    // Without --profile, or with a config named that does not exist, the config is needed as before.
    await assert.rejects(run([], {}), ConfigError);
    await assert.rejects(run(['--profile', 'generic-x86'], { POS_TOKEN_AGENT_CONFIG: join(dir, 'none.json') }), ConfigError);
  });

  test('--profile with a config that has no account yet (a fresh install) reads with that config\'s root', async () => {
    const path = config({}, tree('pi'));
    const r = await run(['--json', '--profile', 'raspberry-pi', '--config', path]);
    assert.equal(r.code, 0, r.stderr);
    const body = JSON.parse(r.stdout) as { account: unknown; values: Record<string, { value: string }> };
    assert.equal(body.account, null);
    assert.equal(body.values.posserial!.value, '10000000abcdef01');
    await assert.rejects(run(['--config', path]), (e: unknown) => e instanceof CliError && /^no account in .* yet \(preview a profile with --profile NAME\)$/.test(e.message));
  });
});
