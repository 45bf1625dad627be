/**
 * The oauth2 authority against a second real OAuth 2.0 server, glewlwyd 2.7 (Debian's package; see
 * test/support/glewlwyd.ts), which reads HTTP Basic credentials as they are (RFC 7617) instead of
 * form-decoding them (RFC 6749 section 2.3.1), answers several refusals with an empty 403, sends the
 * non-standard codes `scope_invalid` and `authorization_type_invalid`, and knows RFC 8707 `resource`.
 * Every request the agent makes is counted. Skipped, saying why, where glewlwyd is not installed; .ci/run
 * installs it.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createHttpClient, type HttpClient, type NodeHttpClient } from '../../src/authorities/http.js';
import { parseConfig } from '../../src/authorities/index.js';
import { decodeJwtClaims, formEncode } from '../../src/authorities/oauth-common.js';
import { createOAuth2 } from '../../src/authorities/oauth2/index.js';
import type { Credentials, LoginInterop, LoginResult } from '../../src/authorities/types.js';
import { failed, succeeded } from '../fixtures/authorities/support.js';
import { glewlwydMissing, startGlewlwyd, type Glewlwyd } from '../support/glewlwyd.js';
import { AgentProcess, ask, runCli } from '../support/harness.js';

/** Every character issue 14 names, and more: `:` `%` `+` `~` `/` `=`, a space, `é`, `&`, `"`. */
const SECRET = 'a:b%2F+c~d/e=f g&h"é-9';
const BOTH: Credentials = { clientId: 'pos-agent', clientSecret: SECRET };
const BASIC_ONLY: Credentials = { clientId: 'pos-basic', clientSecret: `${SECRET}:basic` };
const POST_ONLY: Credentials = { clientId: 'pos-post', clientSecret: `${SECRET}:post` };
const NO_GRANT: Credentials = { clientId: 'pos-nogrant', clientSecret: `${SECRET}:nogrant` };
const SCOPE = 'pos.read';
const RESOURCE = 'https://api.example.test/einvoice';
const TTL_S = 1200;

/** Counts requests and keeps each one's Basic pair as sent (decoded from base64, nothing more). */
class Counting implements HttpClient {
  readonly pairs: Array<string | undefined> = [];
  constructor(private readonly inner: NodeHttpClient = createHttpClient({ env: {} })) {}
  request: HttpClient['request'] = (req) => {
    const auth = req.headers.authorization;
    this.pairs.push(auth?.startsWith('Basic ') ? Buffer.from(auth.slice(6), 'base64').toString('utf8') : undefined);
    return this.inner.request(req);
  };
  close(): void {
    this.inner.close();
  }
}

const missing = glewlwydMissing();

describe('oauth2 against glewlwyd (reads Basic as RFC 7617 has it)', { skip: missing ?? false }, () => {
  let server: Glewlwyd;

  before(async () => {
    server = await startGlewlwyd({
      scopes: [SCOPE, 'pos.admin'],
      resources: { [SCOPE]: [RESOURCE] },
      accessTokenTtlS: TTL_S,
      clients: [
        { ...spec(BOTH), scopes: [SCOPE] },
        { ...spec(BASIC_ONLY), scopes: [SCOPE], authMethods: ['client_secret_basic'] },
        { ...spec(POST_ONLY), scopes: [SCOPE], authMethods: ['client_secret_post'] },
        { ...spec(NO_GRANT), scopes: [SCOPE], grants: ['code'] },
      ],
    });
  });

  after(async () => {
    await server?.stop();
  });

  function spec(c: Credentials): { clientId: string; secret: string } {
    return { clientId: c.clientId!, secret: c.clientSecret! };
  }

  async function login(
    credentials: Credentials,
    extra: Record<string, unknown> = {},
    interop?: LoginInterop,
  ): Promise<{ result: LoginResult; pairs: Array<string | undefined> }> {
    const http = new Counting();
    try {
      const account = parseConfig({ accounts: { a: { authority: 'oauth2', tokenUrl: server.tokenUrl, ...extra } } }, 'test').accounts.a!;
      const result = await createOAuth2({ http, now: Date.now }).login({ account, credentials, identity: {}, ...(interop ? { interop } : {}) });
      return { result, pairs: http.pairs };
    } finally {
      http.close();
    }
  }

  const rfc6749 = (c: Credentials): string => `${formEncode(c.clientId!)}:${formEncode(c.clientSecret!)}`;
  const plain = (c: Credentials): string => `${c.clientId}:${c.clientSecret}`;

  test('the secret really differs between the two encodings', () => {
    assert.notEqual(rfc6749(BOTH), plain(BOTH));
  });

  test('client_secret_basic by default: RFC 6749 is refused, plain taken once, and the result says plain', async () => {
    const { result, pairs } = await login(BOTH, { scope: SCOPE });
    const token = succeeded(result);
    assert.equal(token.tokenType, 'Bearer', "glewlwyd's lower-case bearer");
    assert.equal(token.expiresInS, TTL_S);
    assert.equal(token.scope, SCOPE);
    assert.deepEqual(result.ok && result.interop, { basicAuthEncoding: 'plain' });
    assert.deepEqual(pairs, [rfc6749(BOTH), plain(BOTH)], 'exactly one extra request');
    assert.equal(decodeJwtClaims(token.accessToken)?.client_id, BOTH.clientId);
  });

  test('with plain learned, one request', async () => {
    const { result, pairs } = await login(BOTH, { scope: SCOPE }, { basicAuthEncoding: 'plain' });
    succeeded(result);
    assert.deepEqual(pairs, [plain(BOTH)]);
  });

  test('basicAuthEncoding plain: one request, on a client allowed client_secret_basic only', async () => {
    const { result, pairs } = await login(BASIC_ONLY, { scope: SCOPE, basicAuthEncoding: 'plain' });
    assert.deepEqual(succeeded(result).scope, SCOPE);
    assert.deepEqual(pairs, [plain(BASIC_ONLY)]);
  });

  test('basicAuthEncoding rfc6749: refused with no reason given, one request, and the message says what to try', async () => {
    const { result, pairs } = await login(BOTH, { scope: SCOPE, basicAuthEncoding: 'rfc6749' });
    const f = failed(result);
    assert.equal(f.reason, 'credentials_rejected');
    assert.equal(f.httpStatus, 403);
    assert.equal(f.error, undefined);
    assert.match(f.message, /^OAuth 2\.0 token endpoint rejected the login: HTTP 403 with no reason given \(no OAuth error object\); common causes: /);
    assert.match(f.message, /\(try basicAuthEncoding auto\)$/);
    assert.deepEqual(pairs, [rfc6749(BOTH)]);
  });

  test('client_secret_post with the same secret: one request, no Basic', async () => {
    const { result, pairs } = await login(POST_ONLY, { scope: SCOPE, clientAuth: 'client_secret_post' });
    assert.equal(succeeded(result).scope, SCOPE);
    assert.equal(result.ok && result.interop, undefined);
    assert.deepEqual(pairs, [undefined]);
  });

  test('a method the client is not allowed: an empty 403 either way; the hint names clientAuth', async () => {
    const post = await login(BASIC_ONLY, { scope: SCOPE, clientAuth: 'client_secret_post' });
    assert.match(failed(post.result).message, /the client may not authenticate with client_secret_post \(try clientAuth client_secret_basic\)/);
    assert.equal(post.pairs.length, 1, 'client_secret_post never retries');
    const basic = await login(POST_ONLY, { scope: SCOPE });
    const f = failed(basic.result);
    assert.match(f.message, /refused with both encodings/);
    assert.match(f.message, /\(try clientAuth client_secret_post\)/);
    assert.equal(basic.pairs.length, 2, 'refused both ways: two requests, never more');
  });

  test('a wrong secret: two requests, credentials_rejected saying both encodings were tried, never the secret', async () => {
    const wrong = { clientId: BOTH.clientId, clientSecret: `${SECRET}-wrong` };
    const { result, pairs } = await login(wrong, { scope: SCOPE });
    const f = failed(result);
    assert.equal(f.reason, 'credentials_rejected');
    assert.equal(f.httpStatus, 403);
    assert.match(
      f.message,
      /client_secret_basic was refused with both encodings of the client ID and secret: the RFC 6749 \(form-encoded\) encoding, then the plain \(RFC 7617\) encoding/,
    );
    assert.match(f.message, /common causes: a wrong client ID or secret \(provision again\)/);
    assert.equal(pairs.length, 2);
    assert.ok(!JSON.stringify(f).includes(wrong.clientSecret) && !JSON.stringify(f).includes(formEncode(wrong.clientSecret)));
  });

  test('no scope: glewlwyd answers an empty 403, and the hint says to set scope', async () => {
    const { result } = await login(BOTH, {}, { basicAuthEncoding: 'plain' });
    const f = failed(result);
    assert.equal(f.reason, 'credentials_rejected');
    assert.match(f.message, /the server requires a scope and none is set \(set scope\)/);
  });

  test('a scope the client may not have: scope_invalid, shown as invalid_scope, no second request', async () => {
    const { result, pairs } = await login(BOTH, { scope: 'pos.admin' }, { basicAuthEncoding: 'plain' });
    const f = failed(result);
    assert.equal(f.httpStatus, 400);
    assert.equal(f.error, 'scope_invalid', 'kept verbatim');
    assert.equal(f.message, "OAuth 2.0 token endpoint rejected the login: scope_invalid (invalid_scope); check the account's scope");
    assert.equal(pairs.length, 1);
  });

  test('a client without the client-credentials grant: authorization_type_invalid, shown as unauthorized_client', async () => {
    const { result } = await login(NO_GRANT, { scope: SCOPE, basicAuthEncoding: 'plain' });
    const f = failed(result);
    assert.equal(f.error, 'authorization_type_invalid');
    assert.match(f.message, /rejected the login: authorization_type_invalid \(unauthorized_client\); this client may not use the client-credentials grant/);
  });

  test('resource (RFC 8707): the token is for that resource; one the server does not serve is invalid_target', async () => {
    const { result } = await login(BOTH, { scope: SCOPE, resource: RESOURCE }, { basicAuthEncoding: 'plain' });
    assert.equal(decodeJwtClaims(succeeded(result).accessToken)?.aud, RESOURCE);
    const other = await login(BOTH, { scope: SCOPE, resource: ['https://elsewhere.example.test/'] }, { basicAuthEncoding: 'plain' });
    const f = failed(other.result);
    assert.equal(f.error, 'invalid_target');
    assert.match(f.message, /check the account's audience/);
  });

  test('the CLI: provision learns plain and says so; the agent then logs in without a refused request', { timeout: 60_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pta-glewlwyd-cli-'));
    const configPath = join(dir, 'config.json');
    const socket = join(dir, 'agent.sock');
    writeFileSync(
      configPath,
      JSON.stringify({
        socket,
        stateDir: join(dir, 'state'),
        proxy: { url: null },
        logLevel: 'debug',
        accounts: { default: { authority: 'oauth2', tokenUrl: server.tokenUrl, scope: SCOPE } },
      }),
    );
    const agent = new AgentProcess(configPath, socket);
    const refusals = (): number => (server.log().match(/Authorization invalid for client_id pos-agent/g) ?? []).length;
    try {
      const before = refusals();
      const provisioned = await runCli(['provision', '--config', configPath, '--account', 'default', '--stdin'], { stdin: JSON.stringify(BOTH) });
      assert.equal(provisioned.code, 0, provisioned.stderr);
      assert.match(provisioned.stdout, /The server accepted client_secret_basic with the plain \(RFC 7617\) encoding of the client ID and secret\./);
      assert.ok(!provisioned.stdout.includes(SECRET) && !provisioned.stderr.includes(SECRET));
      assert.equal(refusals() - before, 1, "provision's check login: RFC 6749 refused once");

      await runCli(['doctor', '--config', configPath, '--json']).then((d) => {
        const login = (JSON.parse(d.stdout) as { checks: Array<{ name: string; detail: string }> }).checks.find((c) => c.name === 'default.login');
        assert.match(login!.detail, /the server accepted client_secret_basic with the plain \(RFC 7617\) encoding/);
      });
      assert.equal(refusals() - before, 1, "doctor's login used the stored encoding");

      // The agent starts on provision's token; a forced refresh makes it log in.
      agent.start();
      await agent.ready();
      const first = (await ask(socket, '/v1/token')).json.access_token;
      const answer = await ask(socket, '/v1/token/refresh', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ account: 'default', rejected_token: first }),
      });
      assert.equal(answer.status, 200, answer.text);
      assert.notEqual(answer.json.access_token, first, 'a new login');
      assert.equal(refusals() - before, 1, 'the agent, after a restart and a forced login, never sent the refused encoding');
      assert.ok(!agent.output.includes(SECRET), 'no secret in the agent log');
    } finally {
      await agent.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
