import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { FakeClock } from '../../src/lib/clock.js';
import { createEmulator, DEMO_PRINCIPALS, type Emulator, type EmulatorClient } from '../../src/emulator/index.js';

const WALL_START = Date.UTC(2026, 0, 1);
const FORM = 'application/x-www-form-urlencoded';

const ERP: EmulatorClient = { clientId: 'my-erp', clientSecrets: ['my-erp-secret'] };
const OTHER: EmulatorClient = { clientId: 'my-other', clientSecrets: ['my-other-secret'] };
const INTERMEDIARY: EmulatorClient = {
  clientId: 'my-inter',
  clientSecrets: ['my-inter-secret'],
  intermediary: true,
  onbehalfof: ['C2584563200', 'IG21136626090:201901234567'],
};
const BLOCKED: EmulatorClient = { clientId: 'my-blocked', clientSecrets: ['x-secret'], status: 'blocked' };
const EXPIRED: EmulatorClient = { clientId: 'my-expired', clientSecrets: ['y-secret'], status: 'expired' };

function credentials(client: EmulatorClient): Record<string, string> {
  return { grant_type: 'client_credentials', client_id: client.clientId, client_secret: client.clientSecrets[0]! };
}

function login(
  emu: Emulator,
  form: Record<string, string> = credentials(ERP),
  headers: Record<string, string> = {},
): Promise<Response> {
  return fetch(`${emu.url}/connect/token`, {
    method: 'POST',
    headers: { 'content-type': FORM, ...headers },
    body: new URLSearchParams(form).toString(),
  });
}

async function expectError(res: Response, error: string, status = 400): Promise<string> {
  const text = await res.text();
  assert.equal(res.status, status, text);
  const body = JSON.parse(text) as { error: string; error_description: string };
  assert.equal(body.error, error, text);
  for (const c of [ERP, OTHER, INTERMEDIARY]) assert.ok(!text.includes(c.clientSecrets[0]!), 'no secret in the answer');
  return body.error_description;
}

describe('myinvois emulator (strict)', () => {
  const emu = createEmulator({
    authority: 'myinvois',
    clients: [ERP, OTHER, INTERMEDIARY, BLOCKED, EXPIRED],
    rateLimitPerMinute: 0,
  });
  before(() => emu.start());
  after(() => emu.stop());

  test('form credentials answer a token; scope InvoicingAPI by default and on request', async () => {
    const res = await login(emu);
    assert.equal(res.status, 200);
    const body = (await res.json()) as Record<string, unknown>;
    assert.equal(body.token_type, 'Bearer');
    assert.equal(body.expires_in, 3600);
    assert.equal(body.scope, 'InvoicingAPI');
    assert.equal(typeof body.access_token, 'string');
    const asked = await login(emu, { ...credentials(ERP), scope: 'InvoicingAPI' });
    assert.equal(((await asked.json()) as { scope: string }).scope, 'InvoicingAPI');
  });

  test('strict refusals: Basic header, content type, unknown field, repeated field, malformed onbehalfof', async () => {
    const auth = { authorization: `Basic ${Buffer.from('my-erp:my-erp-secret').toString('base64')}` };
    assert.match(await expectError(await login(emu, { grant_type: 'client_credentials' }, auth), 'invalid_request'), /Authorization/);
    assert.match(await expectError(await login(emu, credentials(ERP), auth), 'invalid_request'), /Authorization/);
    await expectError(await login(emu, credentials(ERP), { 'content-type': 'text/plain' }), 'invalid_request');
    assert.match(await expectError(await login(emu, { ...credentials(ERP), resource: 'x' }), 'invalid_request'), /"resource"/);
    const twice = `${new URLSearchParams(credentials(ERP)).toString()}&scope=a&scope=b`;
    const res = await fetch(`${emu.url}/connect/token`, { method: 'POST', headers: { 'content-type': FORM }, body: twice });
    assert.match(await expectError(res, 'invalid_request'), /more than once/);
    await expectError(await login(emu, credentials(ERP), { onbehalfof: 'C258 4563' }), 'invalid_request');
    await expectError(await login(emu, credentials(ERP), { onbehalfof: 'C2584563200:ROB:X' }), 'invalid_request');
  });

  test('documented errors, spelled as the doc spells them', async () => {
    await expectError(await login(emu, { ...credentials(ERP), client_secret: 'wrong' }), 'invalid_client');
    await expectError(await login(emu, { ...credentials(ERP), client_id: 'nobody' }), 'invalid_client');
    await expectError(await login(emu, { grant_type: 'client_credentials' }), 'invalid_client');
    await expectError(await login(emu, { ...credentials(ERP), grant_type: 'authorization_code' }), 'unsupported_grant_type');
    const { grant_type: _g, ...noGrant } = credentials(ERP);
    await expectError(await login(emu, noGrant), 'invalid_request');
    await expectError(await login(emu, { ...credentials(ERP), scope: 'InvoicingAPI Admin' }), 'invalid_scope');
    assert.equal(await expectError(await login(emu, credentials(BLOCKED)), 'unauthorised_client'), 'User blocked');
    assert.equal(await expectError(await login(emu, credentials(EXPIRED)), 'unauthorised_client'), 'User expired');
    emu.setFaults({ error: { code: 'invalid_grant', count: 1 } });
    await expectError(await login(emu), 'invalid_grant');
  });

  test('onbehalfof TIN or TIN:ROB, mandatory for an intermediary, checked against its list', async () => {
    const inter = credentials(INTERMEDIARY);
    for (const value of ['C2584563200', 'C2584563200:202001000001', 'IG21136626090:201901234567']) {
      const res = await login(emu, inter, { onbehalfof: value });
      assert.equal(res.status, 200, value);
      await res.arrayBuffer();
    }
    await expectError(await login(emu, inter, { onbehalfof: 'IG21136626090:999999999999' }), 'unauthorised_client');
    await expectError(await login(emu, inter, { onbehalfof: 'IG21136626090' }), 'unauthorised_client');
    await expectError(await login(emu, inter, { onbehalfof: 'C9999999999' }), 'unauthorised_client');
    assert.match(await expectError(await login(emu, inter), 'invalid_request'), /intermediary/);
    const free = await login(emu, credentials(ERP), { onbehalfof: 'C1111111111:2020' });
    assert.equal(free.status, 200, 'no list registered: any well-formed value');
    await free.arrayBuffer();
  });
});

describe('myinvois emulator (lenient)', () => {
  const emu = createEmulator({ authority: 'myinvois', clients: [ERP], strict: false });
  before(() => emu.start());
  after(() => emu.stop());

  test('accepts Basic credentials, an unknown field and an odd onbehalfof', async () => {
    const auth = { authorization: `Basic ${Buffer.from('my-erp:my-erp-secret').toString('base64')}` };
    const res = await login(emu, { grant_type: 'client_credentials', extra: '1' }, { ...auth, onbehalfof: 'C 1' });
    assert.equal(res.status, 200, await res.clone().text());
    await expectError(await login(emu, { ...credentials(ERP), client_secret: 'bad' }), 'invalid_client');
  });
});

describe('myinvois login limit: 12 per minute per client ID', () => {
  const clock = new FakeClock(WALL_START);
  const demo = DEMO_PRINCIPALS.myinvois;
  const emu = createEmulator({ authority: 'myinvois', clients: [ERP, OTHER, ...demo.register.clients!], clock });
  before(() => emu.start());
  after(() => emu.stop());

  test('the 13th login within a minute gets 429 with Retry-After; another client ID is not affected', async () => {
    for (let i = 0; i < 12; i++) {
      const res = await login(emu);
      assert.equal(res.status, 200, `login ${i + 1}`);
      await res.arrayBuffer();
      await clock.advance(1_000);
    }
    // Logins at t = 0..11 s; now t = 12 s.
    const limited = await login(emu);
    assert.equal(limited.status, 429);
    assert.equal(limited.headers.get('retry-after'), '48');
    assert.equal(await expectError(limited, 'rate_limited', 429), 'too many token requests for this client ID; retry after 48 s');
    assert.equal((await login(emu, credentials(OTHER))).status, 200, 'another client ID');
    const d = demo.credentials;
    const demoLogin = await login(emu, { grant_type: 'client_credentials', client_id: d.clientId!, client_secret: d.clientSecret! });
    assert.equal(demoLogin.status, 200, 'the demo client too');
    await clock.advance(47_000);
    assert.equal((await login(emu)).status, 429, 'still inside the window');
    await clock.advance(1_000);
    assert.equal((await login(emu)).status, 200, 'the first login has left the window');
  });

  test('failed attempts count too (the doc warns that bad logins can get a client blocked)', async () => {
    await clock.advance(120_000);
    for (let i = 0; i < 12; i++) await (await login(emu, { ...credentials(OTHER), client_secret: 'wrong' })).arrayBuffer();
    assert.equal((await login(emu, credentials(OTHER))).status, 429);
  });
});
