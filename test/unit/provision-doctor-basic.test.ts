/**
 * provision and doctor with client_secret_basic against a server that reads Basic credentials as RFC 7617 has
 * them (no form-decoding) and refuses anything else with an empty 403, as glewlwyd does: provision's check
 * login says which encoding the server accepted and stores it with the credentials; doctor reports it; a
 * refusal without a reason names the options to check.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, beforeEach, describe, test } from 'node:test';
import { createHttpClient, loadConfig } from '../../src/authorities/index.js';
import { provisionAccount, provisionCommand } from '../../src/cli/commands/provision.js';
import type { Io } from '../../src/cli/common.js';
import { runDoctor, type DoctorReport } from '../../src/doctor/index.js';
import { stateAccess } from '../../src/state.js';
import { openStore } from '../../src/store/index.js';

const ID = 'till-7';
const SECRET = 'p:a%s+s~w/o=r d-é';
const OTHER = { clientId: 'till-8', clientSecret: 'Yq3-tB9.kP0_zR7' };

/** RFC 7617 read strictly: base64-decode, split at the first colon, compare as they are. */
function plainBasic(req: IncomingMessage): [string, string] | undefined {
  const m = /^Basic ([A-Za-z0-9+/]+=*)$/.exec(req.headers.authorization ?? '');
  if (!m) return undefined;
  const text = Buffer.from(m[1]!, 'base64').toString('utf8');
  const colon = text.indexOf(':');
  return colon < 0 ? undefined : [text.slice(0, colon), text.slice(colon + 1)];
}

describe('provision and doctor with client_secret_basic against a server that reads Basic as it is', () => {
  let server: Server;
  let tokenUrl: string;
  let logins = 0;
  let refuseAll = false;
  let dir: string;

  before(async () => {
    server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        if (req.method !== 'POST') {
          res.writeHead(404).end(); // doctor's reachability checks
          return;
        }
        logins++;
        const pair = plainBasic(req);
        const known = (pair?.[0] === ID && pair[1] === SECRET) || (pair?.[0] === OTHER.clientId && pair[1] === OTHER.clientSecret);
        if (refuseAll || !known) {
          res.writeHead(403, { 'content-length': '0' }).end();
          return;
        }
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ access_token: `tok-${logins}`, token_type: 'bearer', expires_in: 900 }));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    tokenUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/oidc/token`;
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'pta-basic-'));
    refuseAll = false;
    return () => rmSync(dir, { recursive: true, force: true });
  });

  const box = (account: Record<string, unknown> = {}) => {
    const stateDir = join(dir, 'state');
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    const configPath = join(dir, 'config.json');
    writeFileSync(
      configPath,
      JSON.stringify({
        socket: join(dir, 'agent.sock'),
        stateDir,
        proxy: { url: null },
        accounts: { shop: { authority: 'oauth2', tokenUrl, scope: 'pos.read', ...account } },
      }),
    );
    return { configPath, config: loadConfig(configPath, {}) };
  };

  const storedInterop = async (configPath: string) => {
    const access = await stateAccess(loadConfig(configPath, {}), { env: {} });
    const store = openStore({ ...access.options, createKey: false });
    try {
      return store.getCredentials('shop')?.interop;
    } finally {
      store.close();
    }
  };

  const loginCheck = (report: DoctorReport) => report.checks.find((c) => c.name === 'shop.login')!;

  test('provision says the server took the plain encoding and keeps it; doctor then logs in with it at once', async () => {
    const { configPath, config } = box();
    const before = logins;
    const result = await provisionAccount(config, 'shop', { clientId: ID, clientSecret: SECRET }, { verify: true, http: createHttpClient({ env: {} }), env: {} });
    assert.deepEqual(result.verified, { expiresInS: 900, basicAuthEncoding: 'plain' });
    assert.equal(logins - before, 2, 'RFC 6749 refused, plain accepted');
    assert.deepEqual(await storedInterop(configPath), { basicAuthEncoding: 'plain' }, 'stored with the credentials');

    const mid = logins;
    const report = await runDoctor({ configPath, env: {} });
    const login = loginCheck(report);
    assert.equal(login.status, 'ok', JSON.stringify(report.checks));
    assert.equal(
      login.detail,
      'one login succeeded: a token valid for 900 s; the server accepted client_secret_basic with the plain (RFC 7617) encoding ' +
        'of the client ID and secret',
    );
    assert.equal(logins - mid, 1, 'doctor tries what was learned first');
    assert.ok(!JSON.stringify(report).includes(SECRET));
  });

  test('provision prints which encoding was accepted, and nothing about it when the two encodings agree', async () => {
    const { configPath } = box();
    const run = async (credentials: Record<string, string>): Promise<string> => {
      const stdin = new PassThrough();
      const stdout = new PassThrough();
      let out = '';
      stdout.on('data', (c: Buffer) => (out += c.toString()));
      const io: Io = { stdin, stdout, stderr: new PassThrough(), env: {} };
      stdin.end(JSON.stringify(credentials));
      assert.equal(await provisionCommand(['--account', 'shop', '--stdin', '--config', configPath], io), 0);
      return out;
    };
    const odd = await run({ clientId: ID, clientSecret: SECRET });
    assert.match(odd, /valid for 900 s\. The server accepted client_secret_basic with the plain \(RFC 7617\) encoding of the client ID and secret\.\n$/);
    assert.ok(!odd.includes(SECRET));
    const same = await run(OTHER);
    assert.match(same, /valid for 900 s\.\n$/);
    assert.deepEqual(await storedInterop(configPath), { basicAuthEncoding: 'rfc6749' }, 'new credentials: learned afresh (plain is gone)');

    const report = await runDoctor({ configPath, env: {} });
    assert.match(loginCheck(report).detail, /; client_secret_basic \(the client ID and secret read the same in either Basic encoding\)$/);
  });

  test('basicAuthEncoding plain: one request, reported the same', async () => {
    const { configPath, config } = box({ basicAuthEncoding: 'plain' });
    const before = logins;
    await provisionAccount(config, 'shop', { clientId: ID, clientSecret: SECRET }, { verify: true, http: createHttpClient({ env: {} }), env: {} });
    assert.equal(logins - before, 1);
    const detail = loginCheck(await runDoctor({ configPath, env: {} })).detail;
    assert.match(detail, /with the plain \(RFC 7617\) encoding of the client ID and secret$/);
  });

  test('a refusal without a reason: provision and doctor say so, list the causes, and doctor names the options', async () => {
    const { configPath, config } = box();
    await provisionAccount(config, 'shop', { clientId: ID, clientSecret: SECRET }, { verify: false, env: {} });
    refuseAll = true;
    await assert.rejects(
      provisionAccount(config, 'shop', { clientId: ID, clientSecret: SECRET }, { verify: true, http: createHttpClient({ env: {} }), env: {} }),
      (err: Error) => {
        assert.match(err.message, /^verification failed, nothing stored: OAuth 2\.0 token endpoint rejected the login: HTTP 403 with no reason given/);
        assert.match(err.message, /refused with both encodings/);
        assert.match(err.message, /common causes: a wrong client ID or secret .*try clientAuth client_secret_post.*check scope/);
        assert.ok(!err.message.includes(SECRET));
        return true;
      },
    );
    const before = logins;
    const login = loginCheck(await runDoctor({ configPath, env: {} }));
    assert.equal(logins - before, 2, 'one login: two requests, never more');
    assert.equal(login.status, 'fail');
    assert.match(login.detail, /^login failed \(credentials_rejected\): .*with no reason given/);
    assert.equal(
      login.fix,
      'the server gave no reason: check the client ID and secret (pos-token-agent provision --account shop), and accounts.shop.clientAuth, ' +
        "accounts.shop.scope and accounts.shop.basicAuthEncoding against the client's registration on the server",
    );
  });
});
