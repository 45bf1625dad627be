/**
 * The authority registry: every built-in authority against every account option (an option it does not use
 * is refused by name, one it uses accepted), and a new authority registered from one module, with config
 * validation, provisioning prompts, log redaction and doctor working for it and nothing else changed.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { z } from 'zod';
import {
  authorities,
  createHttpClient,
  createRegistry,
  parseConfig,
  type AuthorityModule,
  type AuthorityRegistry,
} from '../../src/authorities/index.js';
import { buildRequest, parseOAuthTokenResponse, sendTokenRequest } from '../../src/authorities/oauth-common.js';
import { identityUrl } from '../../src/authorities/options.js';
import { credentialFieldsHelp, gatherCredentials, provisionAccount } from '../../src/cli/commands/provision.js';
import type { Io } from '../../src/cli/common.js';
import { accountFingerprint, ConfigError } from '../../src/config/index.js';
import { runDoctor } from '../../src/doctor/index.js';
import { createLogger } from '../../src/lib/log.js';
import { stateAccess } from '../../src/state.js';
import { openStore } from '../../src/store/index.js';

type Json = Record<string, unknown>;

/** A valid sample value of every account option any authority takes. */
const SAMPLES: Record<string, unknown> = {
  identityUrl: 'https://id.example.com',
  tokenUrl: 'https://auth.example.com/oauth2/token',
  scope: 'InvoicingAPI',
  onbehalfof: '100200300',
  audience: 'https://api.example.com',
  clientAuth: 'client_secret_post',
  basicAuthEncoding: 'plain',
  resource: ['https://api.example.com/einvoice', 'urn:example:receipts'],
  deviceProfile: 'generic-x86',
  identity: { posserial: 'SN-1' },
  loginsPerMinute: 6,
};

/** Options every account takes, whatever its authority. */
const COMMON: Record<string, unknown> = {
  headers: { 'X-Branch': '3' },
  tls: { legacyServerConnect: true },
  timeouts: { connectMs: 2_000 },
  backoff: { initialS: 2 },
  forcedRefreshMinIntervalS: 30,
};

/** Which options each authority uses, as docs/authorities.md describes them (its URL first). */
const USES: Record<string, ReadonlyArray<string>> = {
  'eta-ereceipt': ['identityUrl', 'deviceProfile', 'identity'],
  'eta-einvoicing': ['identityUrl', 'scope', 'onbehalfof', 'clientAuth', 'basicAuthEncoding'],
  myinvois: ['identityUrl', 'scope', 'onbehalfof', 'loginsPerMinute'],
  'impact-gr': ['identityUrl'],
  sepay: ['identityUrl', 'basicAuthEncoding'],
  oauth2: ['tokenUrl', 'scope', 'audience', 'resource', 'clientAuth', 'basicAuthEncoding'],
};

function problemsOf(json: unknown, registry: AuthorityRegistry = authorities): string[] {
  try {
    registry.parseConfig(json, 'test.json');
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.problems;
  }
  assert.fail('expected the config to be refused');
}

describe('every authority x every option', () => {
  test('the table names every built-in authority and every option any of them takes', () => {
    assert.deepEqual(Object.keys(USES), [...authorities.names]);
    const declared = new Set(authorities.modules.flatMap((m) => Object.keys(m.options)));
    for (const option of declared) assert.ok(option in SAMPLES, `option ${option} has a sample here`);
  });

  for (const authority of Object.keys(USES)) {
    const used = USES[authority]!;
    const url = used[0]!;
    for (const option of Object.keys(SAMPLES)) {
      if (option === url) continue;
      const uses = used.includes(option);
      test(`${authority}: ${option} is ${uses ? 'accepted' : 'refused by name'}`, () => {
        const account = { authority, [url]: SAMPLES[url], [option]: SAMPLES[option] };
        if (uses) {
          const parsed = parseConfig({ accounts: { main: account } }, 'test.json').accounts.main!;
          assert.deepEqual(parsed[option], SAMPLES[option]);
        } else {
          assert.deepEqual(problemsOf({ accounts: { main: account } }), [
            `accounts.main.${option}: not used by authority ${authority}; remove it`,
          ]);
        }
      });
    }
    test(`${authority}: the common options are accepted, and its URL is required`, () => {
      const parsed = parseConfig({ accounts: { main: { authority, [url]: SAMPLES[url], ...COMMON } } }, 'test.json').accounts.main!;
      assert.deepEqual(parsed.headers, COMMON.headers);
      assert.equal(parsed.tls.legacyServerConnect, true);
      assert.equal(parsed.timeouts.connectMs, 2_000);
      assert.equal(parsed.forcedRefreshMinIntervalMs, 30_000);
      assert.deepEqual(problemsOf({ accounts: { main: { authority } } }), [
        `accounts.main.${url}: expected a URL (required for authority ${authority})`,
      ]);
    });
  }
});

describe('accountFingerprint across the registry', () => {
  test('keeps the layout of 0.2 for the built-in options, so an upgrade keeps the stored token', () => {
    const c = parseConfig(
      {
        accounts: {
          r: { authority: 'eta-ereceipt', identityUrl: 'https://id.eta.gov.eg/', deviceProfile: 'generic-x86' },
          o: { authority: 'oauth2', tokenUrl: 'https://a.example/t?x=1', scope: 's', audience: 'a', clientAuth: 'client_secret_post' },
          m: { authority: 'myinvois', identityUrl: 'https://api.myinvois.hasil.gov.my', onbehalfof: 'C1', loginsPerMinute: 5 },
        },
      },
      'test.json',
    );
    assert.equal(accountFingerprint(c.accounts.r!), '["eta-ereceipt","https://id.eta.gov.eg",null,{},"generic-x86",null,null,null,null,{}]');
    assert.equal(accountFingerprint(c.accounts.o!), '["oauth2","https://a.example/t?x=1","https://a.example/t?x=1",{},null,"s",null,"a","client_secret_post",{}]');
    assert.equal(accountFingerprint(c.accounts.m!), '["myinvois","https://api.myinvois.hasil.gov.my",null,{},null,null,"C1",null,null,{}]');
  });

  test('basicAuthEncoding and resource join it only when set (accounts without them keep their stored token)', () => {
    const account = (extra: Json) =>
      parseConfig({ accounts: { o: { authority: 'oauth2', tokenUrl: 'https://a.example/t', ...extra } } }, 'test.json').accounts.o!;
    const base = '["oauth2","https://a.example/t","https://a.example/t",{},null,null,null,null,null,{}';
    assert.equal(accountFingerprint(account({})), `${base}]`);
    assert.equal(accountFingerprint(account({ basicAuthEncoding: 'plain' })), `${base},[["basicAuthEncoding","plain"]]]`);
    assert.equal(
      accountFingerprint(account({ resource: 'https://api.example/', basicAuthEncoding: 'auto' })),
      `${base},[["basicAuthEncoding","auto"],["resource","https://api.example/"]]]`,
    );
  });
});

// ---------------------------------------------------------------------------------------------------
// A seventh authority, from one module

const ACME_SERVICE = 'Acme tax service';
const ACME_OPTIONS = {
  identityUrl,
  tenant: z.string().regex(/^[a-z]{2,10}$/, 'expected 2 to 10 lower-case letters').optional(),
};

/** Logs in with a username and PIN as a JSON body, sends posserial as `x-device`, and its `tenant` as a header. */
const acme: AuthorityModule = {
  name: 'acme-tax',
  title: 'Acme Tax (test)',
  options: ACME_OPTIONS,
  endpoint: { option: 'identityUrl', kind: 'base', label: 'Acme service URL', hint: 'Acme: https://tax.acme.test', paths: ['/auth'] },
  credentials: [
    { name: 'username', label: 'Acme user name', secret: false, required: true, env: 'POS_USERNAME' },
    { name: 'pin', label: 'Acme PIN', secret: true, required: true, env: 'POS_PIN' },
  ],
  deviceHeaders: { fields: ['posserial'], required: ['posserial'] },
  create: (deps) => ({
    name: 'acme-tax',
    credentialFields: acme.credentials,
    async login({ account, credentials, identity, signal }) {
      const req = buildRequest(account, `${account.identityUrl}/auth`, {
        headers: {
          'content-type': 'application/json',
          'x-device': identity.posserial,
          'x-tenant': typeof account.tenant === 'string' ? account.tenant : undefined,
        },
        body: JSON.stringify({ user: credentials.username, pin: credentials.pin }),
      });
      return sendTokenRequest(deps, req, signal, ACME_SERVICE, (res, now) => parseOAuthTokenResponse(res, now, ACME_SERVICE));
    },
  }),
};

const PIN = 'pin-7781-secret';

describe('a new authority registered from one module', () => {
  const registry = createRegistry([...authorities.modules, acme]);
  let server: Server;
  let url: string;
  const seen: Array<{ path: string; headers: IncomingMessage['headers']; body: string }> = [];
  let echoPin = false;
  let dir: string;

  before(async () => {
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        seen.push({ path: req.url ?? '', headers: req.headers, body });
        let sent: string | undefined;
        try {
          sent = (JSON.parse(body) as { pin?: string }).pin;
        } catch {
          sent = undefined; // doctor's network checks send no login body
        }
        const ok = req.url === '/auth' && sent === PIN;
        res.writeHead(ok ? 200 : 401, { 'content-type': 'application/json' });
        res.end(
          JSON.stringify(
            ok
              ? { access_token: 'acme-token-1', token_type: 'Bearer', expires_in: 600 }
              : { error: 'invalid_client', error_description: echoPin ? `bad pin ${sent}` : 'bad pin' },
          ),
        );
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    dir = mkdtempSync(join(tmpdir(), 'pta-registry-'));
  });
  after(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  });

  const acmeAccount = (extra: Json = {}): Json => ({ authority: 'acme-tax', identityUrl: url, identity: { posserial: 'SN-9' }, ...extra });

  test('config validation: its own option is accepted and checked, others refused by name, its URL required', () => {
    const parsed = registry.parseConfig({ accounts: { main: acmeAccount({ tenant: 'eg' }) } }, 'test.json').accounts.main!;
    assert.equal(parsed.tenant, 'eg');
    const other = registry.parseConfig({ accounts: { main: acmeAccount({ tenant: 'ma' }) } }, 'test.json').accounts.main!;
    assert.notEqual(accountFingerprint(parsed), accountFingerprint(other), 'its option is part of the fingerprint');
    assert.equal(parsed.identityUrl, url);
    assert.deepEqual(problemsOf({ accounts: { main: acmeAccount({ tenant: 'EG!' }) } }, registry), [
      'accounts.main.tenant: expected 2 to 10 lower-case letters',
    ]);
    assert.deepEqual(problemsOf({ accounts: { main: acmeAccount({ scope: 'x', loginsPerMinute: 3 }) } }, registry), [
      'accounts.main.scope: not used by authority acme-tax; remove it',
      'accounts.main.loginsPerMinute: not used by authority acme-tax; remove it',
    ]);
    assert.deepEqual(problemsOf({ accounts: { main: { authority: 'acme-tax' } } }, registry), [
      'accounts.main.identityUrl: expected a URL (required for authority acme-tax)',
    ]);
    // The built-in authorities learn of its option too: refused by name on them.
    assert.deepEqual(problemsOf({ accounts: { main: { authority: 'sepay', identityUrl: url, tenant: 'eg' } } }, registry), [
      'accounts.main.tenant: not used by authority sepay; remove it',
    ]);
    assert.match(problemsOf({ accounts: { main: { authority: 'acme' } } }, registry)[0]!, /expected one of .*oauth2, acme-tax, got "acme"/);
    // The built-in registry does not know it.
    assert.match(problemsOf({ accounts: { main: acmeAccount() } })[0]!, /^accounts\.main\.authority: expected one of eta-ereceipt,/);
  });

  test('provisioning: its fields are asked for with its prompts, the secret with nothing shown, and listed in --help', async () => {
    const stdin = Object.assign(new PassThrough(), { isTTY: true, setRawMode: () => stdin });
    let shown = '';
    const stderr = new PassThrough();
    stderr.on('data', (c: Buffer) => (shown += c.toString()));
    const io: Io = { stdin, stdout: new PassThrough(), stderr, env: {} };
    const gathering = gatherCredentials(io, registry.module('acme-tax'), { stdin: false });
    // Typed fast or pasted: both answers in one chunk.
    stdin.write(`alice\r${PIN}\r`);
    assert.deepEqual(await gathering, { username: 'alice', pin: PIN });
    assert.equal(shown, 'Acme user name: alice\nAcme PIN: \n', 'the PIN shows nothing, not even its length');
    assert.match(credentialFieldsHelp(registry), /^ {2}acme-tax +username, pin$/m);
  });

  test('provisioning: a verifying login through its module with the device header, then stored', async () => {
    const stateDir = join(dir, 'state');
    mkdirSync(stateDir, { mode: 0o700 });
    const configPath = join(dir, 'config.json');
    writeFileSync(
      configPath,
      JSON.stringify({
        socket: join(dir, 'agent.sock'),
        stateDir,
        deviceProfileDirs: [join(dir, 'profiles')],
        identityRoot: dir,
        proxy: { url: null },
        accounts: { till: acmeAccount({ tenant: 'eg' }) },
      }),
    );
    const config = registry.loadConfig(configPath, {});
    const env = {};
    const http = createHttpClient({ env });
    const result = await provisionAccount(config, 'till', { username: 'alice', pin: PIN }, { verify: true, http, env, authorities: registry });
    assert.deepEqual(result.verified, { expiresInS: 600 });
    const login = seen.at(-1)!;
    assert.equal(login.headers['x-device'], 'SN-9');
    assert.equal(login.headers['x-tenant'], 'eg');
    const access = await stateAccess(config, { env: {} });
    const store = openStore({ ...access.options, createKey: false });
    try {
      assert.deepEqual(store.getCredentials('till')?.credentials, { username: 'alice', pin: PIN });
    } finally {
      store.close();
    }

    // doctor: identity, stored credentials, network and a real login, all through the module.
    const report = await runDoctor({ configPath, env: {}, authorities: registry });
    const byName = new Map(report.checks.map((c) => [c.name, c]));
    assert.equal(byName.get('till.identity')?.status, 'ok', JSON.stringify(report.checks));
    assert.equal(byName.get('till.credentials')?.status, 'ok');
    assert.equal(byName.get('till.tcp')?.status, 'ok');
    assert.equal(byName.get('till.login')?.status, 'ok');
    assert.match(byName.get('till.login')!.detail, /valid for 600 s/);
    assert.ok(!JSON.stringify(report).includes(PIN), 'no secret in the report');
    assert.ok(readdirSync(stateDir).length > 0);
  });

  test('redaction: its secret field is redacted from logs, and a failure never repeats it', async () => {
    assert.ok(registry.secretFields.includes('pin'));
    assert.ok(!authorities.secretFields.includes('pin'));
    const lines: string[] = [];
    const log = createLogger({ write: (l) => lines.push(l), secretKeys: registry.secretFields });
    log.info('provisioned', { account: 'till', pin: PIN, nested: { PIN } });
    assert.ok(!lines.join('').includes(PIN), lines.join(''));
    assert.equal(JSON.parse(lines[0]!).pin, '[redacted]');

    echoPin = true;
    try {
      const authority = registry.create('acme-tax', { http: createHttpClient({ env: {} }), now: Date.now });
      const account = registry.parseConfig({ accounts: { main: acmeAccount() } }, 'test.json').accounts.main!;
      const r = await authority.login({ account, credentials: { username: 'alice', pin: `${PIN}-wrong` }, identity: { posserial: 'SN-9' } });
      assert.equal(r.ok, false);
      const text = JSON.stringify(r);
      assert.match(text, /credentials_rejected/);
      assert.ok(!text.includes(PIN), text);
      assert.match(text, /bad pin \[redacted\]/, 'the echoed PIN is replaced');
    } finally {
      echoPin = false;
    }
  });

  test('it touches one module: the built-in list is one import and one entry per authority', () => {
    const index = readFileSync(join(import.meta.dirname, '../../src/authorities/index.ts'), 'utf8');
    for (const name of authorities.names) {
      assert.match(index, new RegExp(`from '\\./${name}/index\\.js'`), `${name} is imported from its folder`);
    }
  });
});
