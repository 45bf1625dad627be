import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createEmulator, DEMO_PRINCIPALS, type Emulator, type EmulatorClient } from '../../src/emulator/index.js';

const FORM = 'application/x-www-form-urlencoded';

const BASIC: EmulatorClient = {
  clientId: 'svc:basic',
  clientSecrets: ['basic s3cret+%'],
  scopes: ['invoices.read', 'invoices.write'],
  audiences: ['https://api.example.test', 'https://other.example.test'],
};
const POST: EmulatorClient = { clientId: 'svc-post', clientSecrets: ['post-s3cret'], authMethod: 'client_secret_post' };
const BLOCKED: EmulatorClient = { clientId: 'svc-blocked', clientSecrets: ['blocked-s3cret'], status: 'blocked' };

/** RFC 6749 section 2.3.1: form-encode, then base64. */
function basic(id: string, secret: string): string {
  const enc = (s: string): string => encodeURIComponent(s).replace(/%20/g, '+');
  return `Basic ${Buffer.from(`${enc(id)}:${enc(secret)}`).toString('base64')}`;
}

function login(
  emu: Emulator,
  form: Record<string, string> = { grant_type: 'client_credentials' },
  headers: Record<string, string> = { authorization: basic(BASIC.clientId, BASIC.clientSecrets[0]!) },
): Promise<Response> {
  return fetch(`${emu.url}/oauth2/token`, {
    method: 'POST',
    headers: { 'content-type': FORM, ...headers },
    body: new URLSearchParams(form).toString(),
  });
}

const postForm = (extra: Record<string, string> = {}): Record<string, string> => ({
  grant_type: 'client_credentials',
  client_id: POST.clientId,
  client_secret: POST.clientSecrets[0]!,
  ...extra,
});

async function expectError(res: Response, error: string, status = 400): Promise<string> {
  const text = await res.text();
  assert.equal(res.status, status, text);
  const body = JSON.parse(text) as { error: string; error_description: string };
  assert.equal(body.error, error, text);
  for (const c of [BASIC, POST]) assert.ok(!text.includes(c.clientSecrets[0]!), 'no secret in the answer');
  return body.error_description;
}

function claimsOf(body: unknown): Record<string, unknown> {
  const token = (body as { access_token: string }).access_token;
  return JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
}

describe('oauth2 emulator (strict)', () => {
  const emu = createEmulator({ authority: 'oauth2', clients: [BASIC, POST, BLOCKED] });
  before(() => emu.start());
  after(() => emu.stop());

  test('client_secret_basic (form-encoded parts) answers every allowed scope and the first audience', async () => {
    const res = await login(emu);
    assert.equal(res.status, 200);
    const body = (await res.json()) as Record<string, unknown>;
    assert.equal(body.token_type, 'Bearer');
    assert.equal(body.expires_in, 3600);
    assert.equal(body.scope, 'invoices.read invoices.write');
    const claims = claimsOf(body);
    assert.equal(claims.sub, BASIC.clientId);
    assert.equal(claims.aud, 'https://api.example.test');
    assert.equal(emu.paths.token, '/oauth2/token');
  });

  test('client_secret_post; a client without scopes gets no scope member', async () => {
    const res = await login(emu, postForm(), {});
    assert.equal(res.status, 200);
    const body = (await res.json()) as Record<string, unknown>;
    assert.equal(body.scope, undefined);
    assert.equal(claimsOf(body).aud, undefined);
  });

  test('scope narrows; audience picks an allowed one', async () => {
    const res = await login(emu, { grant_type: 'client_credentials', scope: 'invoices.read', audience: 'https://other.example.test' });
    const body = (await res.json()) as Record<string, unknown>;
    assert.equal(body.scope, 'invoices.read');
    assert.equal(claimsOf(body).aud, 'https://other.example.test');
    const free = await login(emu, postForm({ audience: 'urn:anything' }), {});
    assert.equal(claimsOf(await free.json()).aud, 'urn:anything', 'no audiences registered: any');
  });

  test('unknown parameters are ignored, as RFC 6749 says', async () => {
    const res = await login(emu, { grant_type: 'client_credentials', resource: 'x', foo: 'bar' });
    assert.equal(res.status, 200);
    await res.arrayBuffer();
  });

  test('strict refusals: the other auth method, two methods, content type, repeated parameter', async () => {
    const wrongWay = { grant_type: 'client_credentials', client_id: BASIC.clientId, client_secret: BASIC.clientSecrets[0]! };
    assert.match(await expectError(await login(emu, wrongWay, {}), 'invalid_client'), /client_secret_basic/);
    const viaBasic = await login(emu, undefined, { authorization: basic(POST.clientId, POST.clientSecrets[0]!) });
    assert.equal(viaBasic.headers.get('www-authenticate')?.startsWith('Basic'), true);
    assert.match(await expectError(viaBasic, 'invalid_client', 401), /client_secret_post/);
    const both = { grant_type: 'client_credentials', client_secret: BASIC.clientSecrets[0]! };
    assert.match(await expectError(await login(emu, both), 'invalid_request'), /more than one method/);
    const otherId = { grant_type: 'client_credentials', client_id: POST.clientId };
    await expectError(await login(emu, otherId), 'invalid_request');
    const sameId = await login(emu, { grant_type: 'client_credentials', client_id: BASIC.clientId });
    assert.equal(sameId.status, 200, 'client_id beside Basic is allowed when it agrees');
    await sameId.arrayBuffer();
    const json = { 'content-type': 'application/json', authorization: basic(BASIC.clientId, BASIC.clientSecrets[0]!) };
    await expectError(await login(emu, undefined, json), 'invalid_request');
    const res = await fetch(`${emu.url}/oauth2/token`, {
      method: 'POST',
      headers: { 'content-type': FORM, authorization: basic(BASIC.clientId, BASIC.clientSecrets[0]!) },
      body: 'grant_type=client_credentials&scope=a&scope=b',
    });
    await expectError(res, 'invalid_request');
  });

  test('invalid_client: 401 with WWW-Authenticate after Basic or no credentials, 400 after post', async () => {
    const wrong = await login(emu, undefined, { authorization: basic(BASIC.clientId, 'wrong') });
    assert.equal(wrong.headers.get('www-authenticate'), 'Basic realm="token", charset="UTF-8"');
    await expectError(wrong, 'invalid_client', 401);
    const none = await login(emu, undefined, {});
    assert.ok(none.headers.get('www-authenticate'));
    await expectError(none, 'invalid_client', 401);
    const unknown = await login(emu, postForm({ client_id: 'nobody' }), {});
    assert.equal(unknown.headers.get('www-authenticate'), null);
    await expectError(unknown, 'invalid_client', 400);
    await expectError(await login(emu, postForm({ client_secret: 'bad' }), {}), 'invalid_client', 400);
  });

  test('the other standard errors', async () => {
    await expectError(await login(emu, { grant_type: 'password' }), 'unsupported_grant_type');
    await expectError(await login(emu, {}), 'invalid_request');
    await expectError(await login(emu, { grant_type: 'client_credentials', scope: 'admin' }), 'invalid_scope');
    await expectError(await login(emu, postForm({ scope: 'anything' }), {}), 'invalid_scope');
    await expectError(await login(emu, { grant_type: 'client_credentials', audience: 'https://evil.test' }), 'invalid_target');
    const blocked = { authorization: basic(BLOCKED.clientId, BLOCKED.clientSecrets[0]!) };
    await expectError(await login(emu, undefined, blocked), 'unauthorized_client');
  });

  test('RFC 8414 metadata and JWKS; no IdentityServer paths', async () => {
    const meta = (await (await fetch(`${emu.url}/.well-known/oauth-authorization-server`)).json()) as Record<string, unknown>;
    assert.equal(meta.token_endpoint, `${emu.url}/oauth2/token`);
    assert.deepEqual(meta.token_endpoint_auth_methods_supported, ['client_secret_basic', 'client_secret_post']);
    const jwks = (await (await fetch(String(meta.jwks_uri))).json()) as { keys: unknown[] };
    assert.deepEqual(jwks.keys, [emu.publicJwk()]);
    const idsrv = await fetch(`${emu.url}/connect/token`, { method: 'POST' });
    assert.equal(idsrv.status, 404);
    await idsrv.arrayBuffer();
  });
});

describe('oauth2 emulator (lenient)', () => {
  const emu = createEmulator({ authority: 'oauth2', clients: [BASIC, POST], strict: false });
  before(() => emu.start());
  after(() => emu.stop());

  test('accepts either method whatever the client is registered for, and both at once', async () => {
    const viaPost = { grant_type: 'client_credentials', client_id: BASIC.clientId, client_secret: BASIC.clientSecrets[0]! };
    assert.equal((await login(emu, viaPost, {})).status, 200);
    assert.equal((await login(emu, undefined, { authorization: basic(POST.clientId, POST.clientSecrets[0]!) })).status, 200);
    assert.equal((await login(emu, viaPost)).status, 200);
    await expectError(await login(emu, undefined, { authorization: basic(POST.clientId, 'bad') }), 'invalid_client', 401);
  });

  test('the demo principal logs in with its clientAuth', async () => {
    const demo = DEMO_PRINCIPALS.oauth2;
    assert.equal(demo.account.clientAuth, 'client_secret_basic');
    const demoEmu = createEmulator({ authority: 'oauth2', ...demo.register });
    await demoEmu.start();
    try {
      const res = await login(demoEmu, undefined, { authorization: basic(demo.credentials.clientId!, demo.credentials.clientSecret!) });
      assert.equal(res.status, 200);
      assert.equal(((await res.json()) as { scope: string }).scope, 'api');
    } finally {
      await demoEmu.stop();
    }
  });
});
