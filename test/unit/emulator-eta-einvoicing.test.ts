import assert from 'node:assert/strict';
import { createPublicKey, verify } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { FakeClock } from '../../src/lib/clock.js';
import { createEmulator, DEMO_PRINCIPALS, type Emulator, type EmulatorClient } from '../../src/emulator/index.js';

const WALL_START = Date.UTC(2026, 0, 1);
const FORM = 'application/x-www-form-urlencoded';

const ERP: EmulatorClient = { clientId: 'erp-1', clientSecrets: ['erp-secret-1', 'erp-secret-2'], scopes: ['InvoicingAPI', 'B2C'] };
const PLAIN: EmulatorClient = { clientId: 'plain-1', clientSecrets: ['plain-secret'] };
const INTERMEDIARY: EmulatorClient = {
  clientId: 'inter-1',
  clientSecrets: ['inter-secret'],
  intermediary: true,
  onbehalfof: ['100015840'],
};
const BLOCKED: EmulatorClient = { clientId: 'blocked-1', clientSecrets: ['b-secret'], status: 'blocked' };
const EXPIRED: EmulatorClient = { clientId: 'expired-1', clientSecrets: ['e-secret'], status: 'expired' };

function basic(id: string, secret: string): string {
  return `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;
}

interface Req {
  client?: EmulatorClient;
  form?: Record<string, string>;
  body?: string;
  headers?: Record<string, string>;
  /** Leave out the Authorization header. */
  noAuth?: boolean;
}

function login(emu: Emulator, r: Req = {}): Promise<Response> {
  const client = r.client ?? ERP;
  const headers: Record<string, string> = { 'content-type': FORM, ...r.headers };
  if (!r.noAuth) headers.authorization ??= basic(client.clientId, client.clientSecrets[0]!);
  const body = r.body ?? new URLSearchParams(r.form ?? { grant_type: 'client_credentials' }).toString();
  return fetch(`${emu.url}/connect/token`, { method: 'POST', headers, body });
}

async function expectError(res: Response, error: string, status = 400): Promise<string> {
  const text = await res.text();
  assert.equal(res.status, status, text);
  const body = JSON.parse(text) as { error: string; error_description: string };
  assert.equal(body.error, error, text);
  assert.ok(body.error_description.length > 0);
  for (const c of [ERP, PLAIN, INTERMEDIARY]) for (const s of c.clientSecrets) assert.ok(!text.includes(s), 'no secret');
  return body.error_description;
}

function claimsOf(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
}

describe('eta-einvoicing emulator (strict)', () => {
  const clock = new FakeClock(WALL_START);
  const emu = createEmulator({ authority: 'eta-einvoicing', clients: [ERP, PLAIN, INTERMEDIARY, BLOCKED, EXPIRED], clock });
  before(() => emu.start());
  after(() => emu.stop());

  test('Basic credentials and grant_type answer a signed token with every allowed scope', async () => {
    const res = await login(emu);
    assert.equal(res.status, 200);
    const body = (await res.json()) as Record<string, unknown>;
    assert.deepEqual(Object.keys(body).sort(), ['access_token', 'expires_in', 'scope', 'token_type']);
    assert.equal(body.token_type, 'Bearer');
    assert.equal(body.expires_in, 3600);
    assert.equal(body.scope, 'InvoicingAPI B2C');
    const [h, p, s] = String(body.access_token).split('.') as [string, string, string];
    const key = createPublicKey({ key: emu.publicJwk(), format: 'jwk' });
    assert.ok(verify('sha256', Buffer.from(`${h}.${p}`), key, Buffer.from(s, 'base64url')));
    const claims = claimsOf(String(body.access_token));
    assert.equal(claims.client_id, ERP.clientId);
    assert.equal(claims.aud, 'InvoicingAPI');
    assert.equal(claims.iat, WALL_START / 1000);
    assert.equal(claims.exp, WALL_START / 1000 + 3600);
    assert.equal(emu.authority, 'eta-einvoicing');
    assert.deepEqual(emu.paths, { token: '/connect/token' });
  });

  test('the second secret works; a requested scope narrows the grant; default scope InvoicingAPI', async () => {
    const second = await login(emu, { headers: { authorization: basic(ERP.clientId, ERP.clientSecrets[1]!) } });
    assert.equal(second.status, 200);
    await second.arrayBuffer();
    const narrowed = (await (await login(emu, { form: { grant_type: 'client_credentials', scope: 'B2C' } })).json()) as {
      scope: string;
    };
    assert.equal(narrowed.scope, 'B2C');
    const plain = (await (await login(emu, { client: PLAIN })).json()) as { scope: string };
    assert.equal(plain.scope, 'InvoicingAPI');
  });

  test('invalid_scope for a scope the client does not have', async () => {
    const res = await login(emu, { client: PLAIN, form: { grant_type: 'client_credentials', scope: 'InvoicingAPI B2C' } });
    assert.match(await expectError(res, 'invalid_scope'), /"B2C"/);
  });

  test('strict refusals: credentials in the body, client_id beside Basic, content type, unknown and repeated fields', async () => {
    const inBody = { grant_type: 'client_credentials', client_id: PLAIN.clientId, client_secret: PLAIN.clientSecrets[0]! };
    assert.match(await expectError(await login(emu, { noAuth: true, form: inBody }), 'invalid_request'), /Basic/);
    const idToo = { grant_type: 'client_credentials', client_id: ERP.clientId };
    await expectError(await login(emu, { form: idToo }), 'invalid_request');
    await expectError(await login(emu, { headers: { 'content-type': 'application/json' } }), 'invalid_request');
    const extra = { grant_type: 'client_credentials', audience: 'x' };
    assert.match(await expectError(await login(emu, { form: extra }), 'invalid_request'), /"audience"/);
    await expectError(await login(emu, { body: 'grant_type=client_credentials&grant_type=client_credentials' }), 'invalid_request');
    await expectError(await login(emu, { headers: { onbehalfof: '100 015' } }), 'invalid_request');
  });

  test('invalid_client: no credentials, unknown client, wrong secret, not Basic', async () => {
    await expectError(await login(emu, { noAuth: true }), 'invalid_client');
    await expectError(await login(emu, { headers: { authorization: basic('nobody', 'x') } }), 'invalid_client');
    await expectError(await login(emu, { headers: { authorization: basic(ERP.clientId, 'wrong') } }), 'invalid_client');
    await expectError(await login(emu, { headers: { authorization: 'Bearer abc' } }), 'invalid_client');
  });

  test('invalid_request without grant_type; unsupported_grant_type otherwise', async () => {
    assert.match(await expectError(await login(emu, { form: {} }), 'invalid_request'), /grant_type/);
    await expectError(await login(emu, { form: { grant_type: 'password' } }), 'unsupported_grant_type');
  });

  test('unauthorized_client for a blocked or expired system user', async () => {
    assert.equal(await expectError(await login(emu, { client: BLOCKED }), 'unauthorized_client'), 'User blocked');
    assert.equal(await expectError(await login(emu, { client: EXPIRED }), 'unauthorized_client'), 'User expired');
  });

  test('onbehalfof: checked against the allowed list; mandatory for an intermediary; free otherwise', async () => {
    const ok = await login(emu, { client: INTERMEDIARY, headers: { onbehalfof: '100015840' } });
    assert.equal(ok.status, 200);
    assert.equal(claimsOf(((await ok.json()) as { access_token: string }).access_token).onbehalfof, '100015840');
    await expectError(await login(emu, { client: INTERMEDIARY, headers: { onbehalfof: '999999999' } }), 'unauthorized_client');
    assert.match(await expectError(await login(emu, { client: INTERMEDIARY }), 'invalid_request'), /onbehalfof/);
    const free = await login(emu, { client: PLAIN, headers: { onbehalfof: '123456789' } });
    assert.equal(free.status, 200);
    await free.arrayBuffer();
  });

  test('invalid_grant and any other code through the error fault', async () => {
    emu.setFaults({ error: { code: 'invalid_grant', description: 'User expired', count: 1 } });
    assert.equal(await expectError(await login(emu), 'invalid_grant'), 'User expired');
    assert.equal((await login(emu)).status, 200);
  });

  test('discovery names client_secret_basic', async () => {
    const conf = (await (await fetch(`${emu.url}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
    assert.deepEqual(conf.token_endpoint_auth_methods_supported, ['client_secret_basic']);
    assert.equal(conf.token_endpoint, `${emu.url}/connect/token`);
  });

  test('clients: addClient, admin add and list without secrets; keys of other authorities refused', async () => {
    emu.addClient({ clientId: 'late', clientSecrets: ['late-secret'] });
    assert.equal((await login(emu, { headers: { authorization: basic('late', 'late-secret') } })).status, 200);
    const res = await fetch(`${emu.url}/_emulator/clients`, {
      method: 'POST',
      body: JSON.stringify({ clientId: 'admin-added', clientSecrets: ['admin-secret'], onbehalfof: ['100015840'] }),
    });
    assert.equal(res.status, 201);
    assert.deepEqual(await res.json(), { clientId: 'admin-added' });
    const list = await (await fetch(`${emu.url}/_emulator/clients`)).text();
    assert.match(list, /admin-added/);
    assert.ok(!list.includes('admin-secret') && !list.includes(ERP.clientSecrets[0]!));
    assert.throws(() => emu.addClient({ ...PLAIN, authMethod: 'client_secret_post' }), /authMethod: not used by this authority/);
    assert.throws(() => emu.addDevice({ clientId: 'd', clientSecrets: ['s'], posserial: 'p' }), /registers clients/);
    const devices = await fetch(`${emu.url}/_emulator/devices`);
    assert.equal(devices.status, 404);
    assert.match(await devices.text(), /registers clients/);
  });
});

describe('eta-einvoicing emulator (lenient)', () => {
  const emu = createEmulator({ authority: 'eta-einvoicing', clients: [PLAIN], strict: false });
  before(() => emu.start());
  after(() => emu.stop());

  test('accepts credentials in the body, an unknown field and no content type; still checks the secret', async () => {
    const form = { grant_type: 'client_credentials', client_id: PLAIN.clientId, client_secret: PLAIN.clientSecrets[0]!, x: '1' };
    const res = await fetch(`${emu.url}/connect/token`, { method: 'POST', body: new Blob([new URLSearchParams(form).toString()]) });
    assert.equal(res.status, 200, await res.clone().text());
    await expectError(await login(emu, { noAuth: true, form: { ...form, client_secret: 'bad' } }), 'invalid_client');
  });

  test('DEMO_PRINCIPALS registers and logs in', async () => {
    const demo = DEMO_PRINCIPALS['eta-einvoicing'];
    const demoEmu = createEmulator({ authority: 'eta-einvoicing', ...demo.register });
    await demoEmu.start();
    try {
      const res = await fetch(`${demoEmu.url}${demo.account.tokenPath}`, {
        method: 'POST',
        headers: { 'content-type': FORM, authorization: basic(demo.credentials.clientId!, demo.credentials.clientSecret!) },
        body: 'grant_type=client_credentials&scope=InvoicingAPI',
      });
      assert.equal(res.status, 200);
      await res.arrayBuffer();
    } finally {
      await demoEmu.stop();
    }
  });
});
