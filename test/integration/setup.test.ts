/**
 * pos-token-agent-provision (`pos-token-agent setup`) beyond what deploy.test.ts covers: interactively on a
 * real pseudo-terminal (socat), where a secret typed shows nothing; the config written only through the
 * agent's schema; a change of authority that leaves no option the new one refuses.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createEmulator, DEMO_DEVICE, type Emulator } from '../../src/emulator/index.js';
import { runCommand, type CommandResult } from '../support/harness.js';
import { ptySkipReason } from '../support/pty.js';

const REPO = resolve(import.meta.dirname, '../..');
const MAIN = join(REPO, 'dist/cli/main.js');
const PROVISION = join(REPO, 'scripts/provision.sh');

type Run = CommandResult;
const run = (args: string[], env: Record<string, string> = {}): Promise<Run> => runCommand('bash', [PROVISION, ...args], env);

/** A tree as install.sh --root leaves it, enough for set-up: the config directory and the state directory. */
function makeRoot(): { root: string; config: string } {
  const root = mkdtempSync(join(tmpdir(), 'pta-setup-'));
  mkdirSync(join(root, 'etc/pos-token-agent'), { recursive: true });
  mkdirSync(join(root, 'var/lib/pos-token-agent'), { recursive: true, mode: 0o700 });
  mkdirSync(join(root, 'run/pos-token-agent'), { recursive: true });
  return { root, config: join(root, 'etc/pos-token-agent/config.json') };
}

/** set-up on a pseudo-terminal (socat, no echo: whatever is shown is what set-up writes), answered prompt by prompt. */
function wizard(root: string, extra: string[] = []) {
  const command = [process.execPath, MAIN, 'setup', '--root', root, '--skip-doctor', ...extra].join(' ');
  const child: ChildProcess = spawn('socat', ['-', `EXEC:${command},pty,setsid,ctty,stderr,echo=0`], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: '/root', LANG: 'C.UTF-8' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let screen = '';
  child.stdout!.on('data', (d: Buffer) => (screen += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  let seen = 0;
  return {
    screen: () => screen,
    /** What was shown since the last answer (the prompt it waits for included). */
    since: () => screen.slice(seen),
    /** Waits (at most 20 s) for `prompt` after what was answered so far, then types `text` and Enter. */
    async answer(prompt: RegExp, text: string): Promise<string> {
      const deadline = Date.now() + 20_000;
      while (!prompt.test(screen.slice(seen))) {
        if (Date.now() > deadline) assert.fail(`no prompt ${prompt} in:\n${screen}`);
        await new Promise((r) => setTimeout(r, 25));
      }
      const shown = screen.slice(seen);
      seen = screen.length;
      child.stdin!.write(`${text}\r`);
      return shown;
    },
    exit: () => Promise.race([exited, new Promise((r) => setTimeout(() => r('timeout'), 45_000))]),
    kill: () => child.kill('SIGTERM'),
  };
}

describe('pos-token-agent-provision: set-up in TypeScript', () => {
  let emulator: Emulator;
  const roots: string[] = [];

  before(async () => {
    emulator = createEmulator({ devices: [DEMO_DEVICE], rateLimitPerMinute: 0 });
    await emulator.start();
  });
  after(async () => {
    await emulator?.stop();
    for (const r of roots) rmSync(r, { recursive: true, force: true });
  });

  it('interactively on a real terminal: asks what is missing, and a secret typed shows nothing', { skip: ptySkipReason, timeout: 90_000 }, async () => {
    const { root, config } = makeRoot();
    roots.push(root);
    const w = wizard(root);
    try {
      await w.answer(/Account name \(tills ask for "default"\) \[default\]: $/, '');
      await w.answer(/Authority \[eta-ereceipt\]: $/, '');
      await w.answer(/Identity service URL: $/, emulator.url);
      await w.answer(/API URL: $/, '');
      await w.answer(/Device profile \[[a-z0-9.-]+\]: $/, 'manual');
      await w.answer(/POS serial number \(posserial\): $/, DEMO_DEVICE.posserial);
      await w.answer(/POS OS version \(pososversion\): $/, DEMO_DEVICE.pososversion!);
      await w.answer(/POS model\/framework \(posmodelframework\) \[1\]: $/, DEMO_DEVICE.posmodelframework!);
      await w.answer(/Client ID: $/, DEMO_DEVICE.clientId);
      await w.answer(/Client secret: $/, DEMO_DEVICE.clientSecrets[0]!);
      await w.answer(/POS preshared key \(Enter to leave out\): $/, DEMO_DEVICE.presharedKey!);
      assert.equal(await w.exit(), 0, w.screen());
    } finally {
      w.kill();
    }
    const screen = w.screen();
    // What the secret prompts showed: the prompt, then only the line end.
    assert.match(screen, /Client secret: \r?\n/);
    assert.match(screen, /POS preshared key \(Enter to leave out\): \r?\n/);
    for (const secret of [DEMO_DEVICE.clientSecrets[0]!, DEMO_DEVICE.presharedKey!]) assert.ok(!screen.includes(secret), 'no secret on screen');
    assert.ok(!/\*{3,}/.test(screen), 'no mask characters (they would tell the length)');
    assert.match(screen, new RegExp(`Client ID: ${DEMO_DEVICE.clientId}\\r?\\n`), 'what is not secret is shown as typed');
    assert.match(screen, /Token: +valid until/);
    const cfg = JSON.parse(readFileSync(config, 'utf8'));
    assert.deepEqual(cfg.accounts.default, {
      authority: 'eta-ereceipt',
      identityUrl: emulator.url,
      deviceProfile: 'manual',
      identity: { posserial: DEMO_DEVICE.posserial, pososversion: DEMO_DEVICE.pososversion, posmodelframework: DEMO_DEVICE.posmodelframework },
    });
  });

  it('interactively, a wrong answer is asked again with the reason; the API URL prompt shows the known hosts', { skip: ptySkipReason, timeout: 120_000 }, async () => {
    const { root, config } = makeRoot();
    roots.push(root);
    const w = wizard(root);
    let shown = '';
    try {
      await w.answer(/Account name \(tills ask for "default"\) \[default\]: $/, 'two words');
      shown = await w.answer(/Account name \(tills ask for "default"\) \[default\]: $/, '');
      assert.match(shown, /account name "two words": .*; try again/);
      await w.answer(/Authority \[eta-ereceipt\]: $/, 'eta-receipt');
      shown = await w.answer(/Authority \[eta-ereceipt\]: $/, '');
      assert.match(shown, /unknown authority eta-receipt \(known: eta-ereceipt, /);
      await w.answer(/Identity service URL: $/, 'http://id.example.com');
      shown = await w.answer(/Identity service URL: $/, emulator.url);
      assert.match(shown, /accounts\.default\.identityUrl: .*https:\/\/.*; try again/);
      // The API URL, asked after the identity URL, with the hosts the authority is known to have.
      shown = await w.answer(/API URL: $/, 'http://api.example.com');
      assert.match(shown, /ETA API: pre-production https:\/\/api\.preprod\.invoicing\.eta\.gov\.eg, production https:\/\/api\.invoicing\.eta\.gov\.eg/);
      assert.match(shown, /Enter to skip it \(no outbox, no proxy\)/);
      shown = await w.answer(/API URL: $/, emulator.url);
      assert.match(shown, /accounts\.default\.apiUrl: .*https:\/\/.*; try again/);
      await w.answer(/Device profile \[[a-z0-9.-]+\]: $/, 'no-such-profile');
      shown = await w.answer(/Device profile \[[a-z0-9.-]+\]: $/, 'manual');
      assert.match(shown, /device profile "no-such-profile" not found in .*available: .*manual.*; try again/);
      await w.answer(/POS serial number \(posserial\): $/, DEMO_DEVICE.posserial);
      await w.answer(/POS OS version \(pososversion\): $/, DEMO_DEVICE.pososversion!);
      await w.answer(/POS model\/framework \(posmodelframework\) \[1\]: $/, DEMO_DEVICE.posmodelframework!);
      // Credentials the check login refuses: asked again, the config kept meanwhile.
      await w.answer(/Client ID: $/, DEMO_DEVICE.clientId);
      await w.answer(/Client secret: $/, 'not-the-secret');
      await w.answer(/POS preshared key \(Enter to leave out\): $/, DEMO_DEVICE.presharedKey!);
      shown = await w.answer(/Client ID: $/, DEMO_DEVICE.clientId);
      assert.match(shown, /The credentials were not stored \(above\)\. Enter them again/);
      await w.answer(/Client secret: $/, DEMO_DEVICE.clientSecrets[0]!);
      await w.answer(/POS preshared key \(Enter to leave out\): $/, DEMO_DEVICE.presharedKey!);
      assert.equal(await w.exit(), 0, w.screen());
    } finally {
      w.kill();
    }
    assert.match(w.screen(), new RegExp(`API: +${emulator.url.replace(/[.]/g, '\\.')}`));
    const cfg = JSON.parse(readFileSync(config, 'utf8'));
    assert.deepEqual(cfg.accounts.default, {
      authority: 'eta-ereceipt',
      identityUrl: emulator.url,
      apiUrl: emulator.url,
      deviceProfile: 'manual',
      identity: { posserial: DEMO_DEVICE.posserial, pososversion: DEMO_DEVICE.pososversion, posmodelframework: DEMO_DEVICE.posmodelframework },
    });
  });

  it('run again (rotation), it offers the stored URL, API URL and profile as defaults; Enter keeps them', { skip: ptySkipReason, timeout: 90_000 }, async () => {
    const { root, config } = makeRoot();
    roots.push(root);
    const account = {
      authority: 'eta-ereceipt',
      identityUrl: emulator.url,
      apiUrl: `${emulator.url}/api`,
      deviceProfile: 'manual',
      identity: { posserial: DEMO_DEVICE.posserial, pososversion: DEMO_DEVICE.pososversion, posmodelframework: DEMO_DEVICE.posmodelframework },
    };
    const before = `${JSON.stringify({ socket: `${root}/run/pos-token-agent/agent.sock`, stateDir: `${root}/var/lib/pos-token-agent`, accounts: { default: account } }, null, 2)}\n`;
    writeFileSync(config, before, { mode: 0o640 });
    const url = emulator.url.replace(/[.]/g, '\\.');
    const w = wizard(root);
    try {
      await w.answer(new RegExp(`Identity service URL \\[${url}\\]: $`), '');
      const shown = await w.answer(new RegExp(`API URL \\[${url}/api\\]: $`), '');
      assert.match(shown, /Enter keeps it, "none" removes it/);
      await w.answer(/Device profile \[manual\]: $/, '');
      await w.answer(/Client ID: $/, DEMO_DEVICE.clientId);
      await w.answer(/Client secret: $/, DEMO_DEVICE.clientSecrets[0]!);
      await w.answer(/POS preshared key \(Enter to leave out\): $/, DEMO_DEVICE.presharedKey!);
      assert.equal(await w.exit(), 0, w.screen());
    } finally {
      w.kill();
    }
    assert.doesNotMatch(w.screen(), /Account name|Authority \[/, 'the only account and its authority are not asked again');
    assert.equal(readFileSync(config, 'utf8'), before, 'Enter kept every stored value');
    // "none" removes the API URL.
    const again = wizard(root);
    try {
      await again.answer(/Identity service URL \[[^\]]+\]: $/, '');
      await again.answer(/API URL \[[^\]]+\]: $/, 'none');
      await again.answer(/Device profile \[manual\]: $/, '');
      await again.answer(/Client ID: $/, DEMO_DEVICE.clientId);
      await again.answer(/Client secret: $/, DEMO_DEVICE.clientSecrets[0]!);
      await again.answer(/POS preshared key \(Enter to leave out\): $/, DEMO_DEVICE.presharedKey!);
      assert.equal(await again.exit(), 0, again.screen());
    } finally {
      again.kill();
    }
    const { apiUrl, ...rest } = account;
    assert.ok(apiUrl);
    assert.deepEqual(JSON.parse(readFileSync(config, 'utf8')).accounts.default, rest);
  });

  it('writes the config only through the schema: a value the agent would refuse changes nothing', async () => {
    const { root, config } = makeRoot();
    roots.push(root);
    const before = `${JSON.stringify({ socket: `${root}/run/pos-token-agent/agent.sock`, stateDir: `${root}/var/lib/pos-token-agent`, accounts: {} }, null, 2)}\n`;
    writeFileSync(config, before, { mode: 0o640 });
    const r = await run(['--root', root, '--non-interactive', '--skip-doctor', '--no-verify', '--authority', 'oauth2', '--identity-url', 'http://auth.example.com/token'], {
      POS_CLIENT_ID: 'c',
      POS_CLIENT_SECRET: 's3cret-value',
    });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /the config would not be valid, so it was not changed:\n {2}- accounts\.default\.tokenUrl: expected https:\/\//);
    assert.equal(readFileSync(config, 'utf8'), before);
    assert.ok(!r.stderr.includes('s3cret-value'));
  });

  it('a change of authority keeps the common options and drops those the new authority refuses', async () => {
    const { root, config } = makeRoot();
    roots.push(root);
    writeFileSync(
      config,
      JSON.stringify({
        socket: `${root}/run/pos-token-agent/agent.sock`,
        stateDir: `${root}/var/lib/pos-token-agent`,
        accounts: {
          default: { authority: 'eta-ereceipt', identityUrl: emulator.url, deviceProfile: 'manual', identity: { posserial: 'X-1' }, timeouts: { connectMs: 2000 } },
        },
      }),
      { mode: 0o640 },
    );
    const r = await run(['--root', root, '--non-interactive', '--skip-doctor', '--no-verify', '--authority', 'oauth2', '--identity-url', 'https://auth.example.com/oauth2/token'], {
      POS_CLIENT_ID: 'c',
      POS_CLIENT_SECRET: 's',
    });
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(JSON.parse(readFileSync(config, 'utf8')).accounts.default, {
      authority: 'oauth2',
      timeouts: { connectMs: 2000 },
      tokenUrl: 'https://auth.example.com/oauth2/token',
    });
    assert.match(r.stdout, /Authority: +oauth2 +\(https:\/\/auth\.example\.com\/oauth2\/token\)/);
    assert.match(r.stdout, /Token: +none yet \(stored without a check login\)/);
  });

  it('--api-url (or POS_API_URL) gives the account its API for the outbox and the proxy, through the schema too', async () => {
    const { root, config } = makeRoot();
    roots.push(root);
    writeFileSync(config, JSON.stringify({ socket: `${root}/run/pos-token-agent/agent.sock`, stateDir: `${root}/var/lib/pos-token-agent`, accounts: {} }), { mode: 0o640 });
    const args = ['--root', root, '--non-interactive', '--skip-doctor', '--no-verify', '--authority', 'oauth2', '--identity-url', 'https://auth.example.com/oauth2/token'];
    const env = { POS_CLIENT_ID: 'c', POS_CLIENT_SECRET: 's' };
    const refused = await run([...args, '--api-url', 'http://api.example.com'], env);
    assert.equal(refused.code, 1, refused.stderr);
    assert.match(refused.stderr, /accounts\.default\.apiUrl: expected https:\/\//);
    const r = await run(args, { ...env, POS_API_URL: 'https://api.example.com/v1' });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(readFileSync(config, 'utf8')).accounts.default.apiUrl, 'https://api.example.com/v1');
    const help = await runCommand(process.execPath, [MAIN, 'setup', '--help'], {});
    assert.match(help.stdout, /--api-url URL/);
    assert.match(help.stdout, /eta-ereceipt: pre-production https:\/\/api\.preprod\.invoicing\.eta\.gov\.eg/);
  });
});
