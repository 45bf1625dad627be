/**
 * The real CLI's `run` against options an account's authority does not use: each stops the agent at start,
 * naming the key, before anything is opened (the configs a new user tried, seven of which used to start).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { runCli } from '../support/harness.js';

const CASES: Array<[authority: string, url: Record<string, string>, option: string, value: unknown]> = [
  ['oauth2', { tokenUrl: 'https://auth.example.com/token' }, 'deviceProfile', 'generic-x86'],
  ['impact-gr', { identityUrl: 'https://einvoiceapiuat.impact.gr' }, 'deviceProfile', 'generic-x86'],
  ['sepay', { identityUrl: 'https://einvoice-api-sandbox.sepay.vn' }, 'deviceProfile', 'generic-x86'],
  ['eta-einvoicing', { identityUrl: 'https://id.eta.gov.eg' }, 'deviceProfile', 'generic-x86'],
  ['myinvois', { identityUrl: 'https://preprod-api.myinvois.hasil.gov.my' }, 'deviceProfile', 'generic-x86'],
  ['oauth2', { tokenUrl: 'https://auth.example.com/token' }, 'loginsPerMinute', 5],
  ['eta-ereceipt', { identityUrl: 'https://id.eta.gov.eg' }, 'loginsPerMinute', 5],
  ['sepay', { identityUrl: 'https://einvoice-api-sandbox.sepay.vn' }, 'identity', { posserial: 'X' }],
];

describe('run refuses an option the authority does not use, by name', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pta-options-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const [authority, url, option, value] of CASES) {
    it(`${authority} with ${option}: exit 1 naming accounts.shop.${option}`, async () => {
      const stateDir = join(dir, `${authority}-${option}`);
      const config = join(dir, `${authority}-${option}.json`);
      writeFileSync(config, JSON.stringify({ socket: join(stateDir, 'agent.sock'), stateDir, accounts: { shop: { authority, ...url, [option]: value } } }));
      const r = await runCli(['run', '--config', config]);
      assert.equal(r.code, 1, r.stderr);
      assert.ok(r.stderr.includes(`accounts.shop.${option}: not used by authority ${authority}; remove it`), r.stderr);
      assert.ok(!existsSync(stateDir), 'nothing was created');
    });
  }
});

describe('provision: an account the config does not have is a usage error', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pta-prov-usage-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('exit 2 naming the accounts there are', async () => {
    const config = join(dir, 'config.json');
    writeFileSync(config, JSON.stringify({ socket: join(dir, 'agent.sock'), stateDir: join(dir, 'state'), accounts: { default: { authority: 'sepay', identityUrl: 'https://einvoice-api-sandbox.sepay.vn' } } }));
    const r = await runCli(['provision', '--config', config, '--account', 'tilll', '--stdin'], { stdin: '{}' });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /^pos-token-agent: unknown account tilll; the config .*config\.json has: default; see pos-token-agent status\n$/);
    assert.ok(!existsSync(join(dir, 'state')), 'nothing was created');
  });
});

describe('run --check: the config as run would take it, without running', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pta-check-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('exit 0 naming the accounts, or 1 naming each problem; nothing is opened either way', async () => {
    const stateDir = join(dir, 'state');
    const config = join(dir, 'config.json');
    const account = { authority: 'eta-ereceipt', identityUrl: 'https://id.eta.gov.eg', identity: { posserial: 'SN-1' } };
    writeFileSync(config, JSON.stringify({ socket: join(dir, 'agent.sock'), stateDir, accounts: { default: account } }));
    const good = await runCli(['run', '--check', '--config', config]);
    assert.equal(good.code, 0, good.stderr);
    assert.equal(good.stdout, `${config} is valid: 1 account(s): default\n`);

    writeFileSync(config, JSON.stringify({ socket: join(dir, 'agent.sock'), stateDir, accounts: { default: { ...account, loginsPerMinute: 5, deviceProfile: 'generic-x68' } } }));
    const bad = await runCli(['run', '--check', '--config', config]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /accounts\.default\.loginsPerMinute: not used by authority eta-ereceipt; remove it/);
    writeFileSync(config, JSON.stringify({ socket: join(dir, 'agent.sock'), stateDir, accounts: { default: { ...account, deviceProfile: 'generic-x68' } } }));
    const profile = await runCli(['run', '--check', '--config', config]);
    assert.equal(profile.code, 1);
    assert.match(profile.stderr, /device profile "generic-x68" not found in .*; available: .*generic-x86/);
    assert.ok(!existsSync(stateDir) && !existsSync(join(dir, 'agent.sock')), 'nothing was created');
  });
});
