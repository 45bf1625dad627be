import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { FakeClock } from '../../src/lib/clock.js';
import { createEmulator, DEMO_PRINCIPALS, type Emulator, type EmulatorClient } from '../../src/emulator/index.js';

const WALL_START = Date.UTC(2026, 0, 1);
/** The doc's own 401 example message. */
const DOC_MESSAGE = 'Thiếu hoặc sai định dạng trường bắt buộc.';

const SHOP: EmulatorClient = { clientId: 'shop-1', clientSecrets: ['shop+secret/1%'] };
const LOCKED: EmulatorClient = { clientId: 'shop-locked', clientSecrets: ['locked-secret'], status: 'blocked' };

/** RFC 7617: no form encoding. */
function basic(id: string, secret: string): string {
  return `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`;
}

function token(emu: Emulator, init: { headers?: Record<string, string>; body?: string; method?: string } = {}): Promise<Response> {
  const headers = init.headers ?? { authorization: basic(SHOP.clientId, SHOP.clientSecrets[0]!) };
  const req: RequestInit = { method: init.method ?? 'POST', headers };
  if (init.body !== undefined) req.body = init.body;
  return fetch(`${emu.url}/v1/token`, req);
}

async function expectError(res: Response, status: number, code: string): Promise<string> {
  const text = await res.text();
  assert.equal(res.status, status, text);
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
  const body = JSON.parse(text) as { success: boolean; error: { code: string; message: string } };
  assert.equal(body.success, false);
  assert.deepEqual(Object.keys(body.error).sort(), ['code', 'message']);
  assert.equal(body.error.code, code, text);
  assert.ok(!text.includes(SHOP.clientSecrets[0]!));
  return body.error.message;
}

describe('sepay emulator (strict)', () => {
  const clock = new FakeClock(WALL_START);
  const emu = createEmulator({ authority: 'sepay', clients: [SHOP, LOCKED], clock });
  before(() => emu.start());
  after(() => emu.stop());

  test('Basic credentials and an empty body answer {success, data} with a 24 h token', async () => {
    const res = await token(emu);
    assert.equal(res.status, 200);
    const body = (await res.json()) as { success: boolean; data: Record<string, unknown> };
    assert.equal(body.success, true);
    assert.deepEqual(Object.keys(body.data).sort(), ['access_token', 'expires_in', 'token_type']);
    assert.equal(body.data.token_type, 'Bearer');
    assert.equal(body.data.expires_in, 86400);
    const claims = JSON.parse(Buffer.from(String(body.data.access_token).split('.')[1]!, 'base64url').toString()) as {
      exp: number;
      iat: number;
      sub: string;
    };
    assert.equal(claims.exp - claims.iat, 86400);
    assert.equal(claims.iat, WALL_START / 1000);
    assert.equal(claims.sub, SHOP.clientId);
    assert.equal(emu.paths.token, '/v1/token');
  });

  test('strict: a body is refused with 400 BAD_REQUEST', async () => {
    const json = { authorization: basic(SHOP.clientId, SHOP.clientSecrets[0]!), 'content-type': 'application/json' };
    assert.equal(await expectError(await token(emu, { headers: json, body: '{}' }), 400, 'BAD_REQUEST'), DOC_MESSAGE);
    const form = { ...json, 'content-type': 'application/x-www-form-urlencoded' };
    await expectError(await token(emu, { headers: form, body: 'grant_type=client_credentials' }), 400, 'BAD_REQUEST');
    const emptyJson = await token(emu, { headers: json, body: '' });
    assert.equal(emptyJson.status, 200, 'an empty body with a content type is still an empty body');
    await emptyJson.arrayBuffer();
  });

  test('401 with code BAD_REQUEST: missing, malformed, unknown, wrong and locked credentials', async () => {
    assert.equal(await expectError(await token(emu, { headers: {} }), 401, 'BAD_REQUEST'), DOC_MESSAGE);
    const noColon = { authorization: `Basic ${Buffer.from('shop-1').toString('base64')}` };
    assert.equal(await expectError(await token(emu, { headers: noColon }), 401, 'BAD_REQUEST'), DOC_MESSAGE);
    await expectError(await token(emu, { headers: { authorization: 'Bearer x' } }), 401, 'BAD_REQUEST');
    const wrong = await expectError(await token(emu, { headers: { authorization: basic(SHOP.clientId, 'nope') } }), 401, 'BAD_REQUEST');
    assert.match(wrong, /[ạ-ỹ]/u, 'a Vietnamese message');
    await expectError(await token(emu, { headers: { authorization: basic('nobody', 'x') } }), 401, 'BAD_REQUEST');
    // Form-encoding the parts (RFC 6749 style) is not what SePay does: the encoded secret does not match.
    const encoded = { authorization: basic(SHOP.clientId, encodeURIComponent(SHOP.clientSecrets[0]!)) };
    await expectError(await token(emu, { headers: encoded }), 401, 'BAD_REQUEST');
    const locked = { authorization: basic(LOCKED.clientId, LOCKED.clientSecrets[0]!) };
    await expectError(await token(emu, { headers: locked }), 401, 'BAD_REQUEST');
  });

  test('other methods: 405 in the SePay shape', async () => {
    const res = await token(emu, { method: 'GET' });
    assert.equal(res.headers.get('allow'), 'POST');
    await expectError(res, 405, 'METHOD_NOT_ALLOWED');
  });

  test('clients take no scopes; devices are refused', () => {
    assert.throws(() => emu.addClient({ ...SHOP, scopes: ['x'] }), /scopes: not used by this authority/);
    assert.throws(() => emu.addCompany({ vat: 'EL1', apiKey: 'k' }), /registers clients/);
    emu.addClient({ clientId: 'shop-2', clientSecrets: ['s2'] });
  });
});

describe('sepay emulator (lenient)', () => {
  const demo = DEMO_PRINCIPALS.sepay;
  const emu = createEmulator({ authority: 'sepay', ...demo.register, strict: false });
  before(() => emu.start());
  after(() => emu.stop());

  test('tolerates a body; the demo principal logs in', async () => {
    const auth = basic(demo.credentials.clientId!, demo.credentials.clientSecret!);
    const res = await token(emu, { headers: { authorization: auth, 'content-type': 'application/json' }, body: '{}' });
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as { success: boolean }).success, true);
  });
});
