import assert from 'node:assert/strict';
import { createPublicKey, verify } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { after, afterEach, before, describe, test } from 'node:test';
import { FakeClock } from '../../src/lib/clock.js';
import { createEmulator, DEMO_DEVICE, type Emulator, type EmulatorDevice } from '../../src/emulator/index.js';

const WALL_START = Date.UTC(2026, 0, 1);
const FORM = 'application/x-www-form-urlencoded';

const POS: EmulatorDevice = {
  clientId: 'd0394a9f-0607-40de-a978-2d3eb8375b04',
  clientSecrets: ['6d62315e-d65a-4e41-9112-4195ea834edf', 'second-secret-0002'],
  posserial: '1234567899',
  pososversion: 'os',
  posmodelframework: '1',
  presharedKey: '03ac6742-16f3-4e1a-9c5d-00000000psk1',
  scope: 'InvoicingAPI B2C',
};
const LOOSE: EmulatorDevice = { clientId: 'loose-client', clientSecrets: ['loose-secret'], posserial: 'LOOSE-1' };
const BLOCKED: EmulatorDevice = { ...LOOSE, clientId: 'blocked-client', posserial: 'B-1', status: 'blocked' };
const DEACTIVATED: EmulatorDevice = { ...LOOSE, clientId: 'deact-client', posserial: 'D-1', status: 'deactivated' };

interface LoginInput {
  form?: Record<string, string>;
  /** Raw body instead of form. */
  body?: string;
  headers?: Record<string, string | undefined>;
  method?: string;
}

function goodForm(device: EmulatorDevice = POS, secret = 0): Record<string, string> {
  return { grant_type: 'client_credentials', client_id: device.clientId, client_secret: device.clientSecrets[secret]! };
}

function goodHeaders(device: EmulatorDevice = POS): Record<string, string | undefined> {
  return {
    'content-type': FORM,
    posserial: device.posserial,
    pososversion: device.pososversion,
    posmodelframework: device.posmodelframework,
    presharedkey: device.presharedKey,
  };
}

function defined(headers: Record<string, string | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) if (v !== undefined) out[k] = v;
  return out;
}

async function login(emu: Emulator, input: LoginInput = {}): Promise<Response> {
  const headers = defined(input.headers ?? goodHeaders());
  const method = input.method ?? 'POST';
  const init: RequestInit = { method, headers };
  if (method !== 'GET' && method !== 'HEAD') {
    init.body = input.body ?? new URLSearchParams(input.form ?? goodForm()).toString();
  }
  return fetch(`${emu.url}/connect/token`, init);
}

async function expectError(res: Response, status: number, error: string): Promise<string> {
  const text = await res.text();
  assert.equal(res.status, status, text);
  assert.equal(res.headers.get('content-type'), 'application/json');
  const body = JSON.parse(text) as { error: string; error_description: string };
  assert.equal(body.error, error, text);
  assert.equal(typeof body.error_description, 'string');
  assert.ok(body.error_description.length > 0);
  for (const secret of [...POS.clientSecrets, POS.presharedKey!]) assert.ok(!text.includes(secret), `leaks a secret: ${text}`);
  return body.error_description;
}

function decodePart(part: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as Record<string, unknown>;
}

async function admin(emu: Emulator, method: string, path: string, body?: unknown): Promise<Response> {
  const init: RequestInit = { method };
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
    init.headers = { 'content-type': 'application/json' };
  }
  return fetch(`${emu.url}/_emulator/${path}`, init);
}

/** A raw node:http request; resolves with the status, or rejects when the connection fails. */
function rawRequest(emu: Emulator, path: string, body: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${emu.url}${path}`, { method: 'POST', headers, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('eReceipt identity emulator (strict, fake clock)', () => {
  const clock = new FakeClock(WALL_START);
  const emu = createEmulator({ devices: [POS, LOOSE, BLOCKED, DEACTIVATED], clock, rateLimitPerMinute: 0 });
  before(() => emu.start());
  after(() => emu.stop());

  test('a valid login answers a token whose RS256 signature and claims check out', async () => {
    const res = await login(emu);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/json; charset=utf-8');
    assert.equal(res.headers.get('cache-control'), 'no-store');
    const body = (await res.json()) as Record<string, unknown>;
    assert.deepEqual(Object.keys(body).sort(), ['access_token', 'expires_in', 'scope', 'token_type']);
    assert.equal(body.token_type, 'Bearer');
    assert.equal(body.expires_in, 3600);
    assert.equal(body.scope, 'InvoicingAPI B2C');

    const parts = String(body.access_token).split('.');
    assert.equal(parts.length, 3);
    const [h, p, s] = parts as [string, string, string];
    const jwk = emu.publicJwk();
    assert.equal(jwk.kty, 'RSA');
    const header = decodePart(h);
    assert.deepEqual(header, { alg: 'RS256', typ: 'JWT', kid: jwk.kid });
    const key = createPublicKey({ key: jwk, format: 'jwk' });
    assert.equal(verify('sha256', Buffer.from(`${h}.${p}`), key, Buffer.from(s, 'base64url')), true);
    // A tampered payload does not verify.
    const forged = Buffer.from(JSON.stringify({ ...decodePart(p), exp: 9_999_999_999 })).toString('base64url');
    assert.equal(verify('sha256', Buffer.from(`${h}.${forged}`), key, Buffer.from(s, 'base64url')), false);

    const claims = decodePart(p);
    const iat = WALL_START / 1000;
    assert.equal(claims.iss, emu.url);
    assert.equal(claims.sub, POS.clientId);
    assert.equal(claims.client_id, POS.clientId);
    assert.equal(claims.aud, 'InvoicingAPI');
    assert.equal(claims.iat, iat);
    assert.equal(claims.nbf, iat);
    assert.equal(claims.exp, iat + 3600);
    assert.equal(claims.posserial, POS.posserial);
    assert.equal(claims.scope, 'InvoicingAPI B2C');
    assert.match(String(claims.jti), /^[0-9a-f-]{36}$/);
  });

  test('every token is unique and exp follows the injected clock', async () => {
    const first = (await (await login(emu)).json()) as { access_token: string };
    await clock.advance(10_000);
    const second = (await (await login(emu)).json()) as { access_token: string };
    assert.notEqual(first.access_token, second.access_token);
    const c1 = decodePart(first.access_token.split('.')[1]!);
    const c2 = decodePart(second.access_token.split('.')[1]!);
    assert.notEqual(c1.jti, c2.jti);
    assert.equal((c2.exp as number) - (c1.exp as number), 10);
  });

  test('the second client secret works too', async () => {
    const res = await login(emu, { form: goodForm(POS, 1) });
    assert.equal(res.status, 200);
  });

  test('a device with no configured header values accepts their absence', async () => {
    const res = await login(emu, { form: goodForm(LOOSE), headers: { 'content-type': FORM, posserial: 'LOOSE-1' } });
    assert.equal(res.status, 200);
    const body = (await res.json()) as { scope: string };
    assert.equal(body.scope, 'InvoicingAPI');
  });

  test('charset parameter on the content type is allowed', async () => {
    const res = await login(emu, { headers: { ...goodHeaders(), 'content-type': `${FORM}; charset=UTF-8` } });
    assert.equal(res.status, 200);
  });

  test('invalid_request: missing field, extra field, wrong content type, over-length, duplicates', async () => {
    const { client_secret: _omitted, ...noSecret } = goodForm();
    assert.match(await expectError(await login(emu, { form: noSecret }), 400, 'invalid_request'), /client_secret/);

    const withScope = new URLSearchParams({ ...goodForm(), scope: 'InvoicingAPI' }).toString();
    assert.match(await expectError(await login(emu, { body: withScope }), 400, 'invalid_request'), /"scope"/);

    const json = { ...goodHeaders(), 'content-type': 'application/json' };
    assert.match(
      await expectError(await login(emu, { headers: json, body: JSON.stringify(goodForm()) }), 400, 'invalid_request'),
      /Content-Type "application\/json"/,
    );
    const noType = { ...goodHeaders(), 'content-type': undefined };
    const blob = new Blob([new URLSearchParams(goodForm()).toString()]); // fetch sends no content-type for this
    const resNoType = await fetch(`${emu.url}/connect/token`, {
      method: 'POST',
      headers: defined(noType),
      body: blob,
    });
    assert.match(await expectError(resNoType, 400, 'invalid_request'), /missing Content-Type/);

    const longId = { ...goodForm(), client_id: 'x'.repeat(101) };
    assert.match(await expectError(await login(emu, { form: longId }), 400, 'invalid_request'), /client_id.*100/);
    const longGrant = { ...goodForm(), grant_type: 'client_credentials_xx' };
    assert.match(await expectError(await login(emu, { form: longGrant }), 400, 'invalid_request'), /grant_type.*20/);

    const dup = `${new URLSearchParams(goodForm()).toString()}&client_id=other`;
    assert.match(await expectError(await login(emu, { body: dup }), 400, 'invalid_request'), /more than once/);

    const basic = { ...goodHeaders(), authorization: `Basic ${Buffer.from('a:b').toString('base64')}` };
    assert.match(await expectError(await login(emu, { headers: basic }), 400, 'invalid_request'), /Authorization/);
  });

  test('an unexpected field whose name is a secret is not echoed', async () => {
    const body = `${new URLSearchParams(goodForm()).toString()}&${POS.clientSecrets[0]}`;
    const description = await expectError(await login(emu, { body }), 400, 'invalid_request');
    assert.match(description, /name not shown/);
  });

  test('unsupported_grant_type', async () => {
    const res = await login(emu, { form: { ...goodForm(), grant_type: 'password' } });
    await expectError(res, 400, 'unsupported_grant_type');
  });

  test('invalid_client and invalid_clientsecret', async () => {
    await expectError(await login(emu, { form: { ...goodForm(), client_id: 'nobody' } }), 400, 'invalid_client');
    await expectError(await login(emu, { form: { ...goodForm(), client_secret: 'wrong' } }), 400, 'invalid_clientsecret');
    // Another device's secret is not this device's.
    await expectError(
      await login(emu, { form: { ...goodForm(), client_secret: 'loose-secret' } }),
      400,
      'invalid_clientsecret',
    );
  });

  test('unauthorized_client for a blocked user and a deactivated POS', async () => {
    const blocked = await login(emu, { form: goodForm(BLOCKED), headers: { 'content-type': FORM, posserial: 'B-1' } });
    assert.equal(await expectError(blocked, 400, 'unauthorized_client'), 'User blocked');
    const deact = await login(emu, { form: goodForm(DEACTIVATED), headers: { 'content-type': FORM, posserial: 'D-1' } });
    assert.equal(await expectError(deact, 400, 'unauthorized_client'), 'POS deactivated');
  });

  test('invalid_posserial: missing, different, over-length', async () => {
    await expectError(await login(emu, { headers: { ...goodHeaders(), posserial: undefined } }), 400, 'invalid_posserial');
    await expectError(await login(emu, { headers: { ...goodHeaders(), posserial: '999' } }), 400, 'invalid_posserial');
    await expectError(
      await login(emu, { headers: { ...goodHeaders(), posserial: '1'.repeat(101) } }),
      400,
      'invalid_posserial',
    );
  });

  test('invalid_pososversion and invalid_posmodelframework: configured mismatch, absence, over-length', async () => {
    await expectError(
      await login(emu, { headers: { ...goodHeaders(), pososversion: 'Windows' } }),
      400,
      'invalid_pososversion',
    );
    await expectError(
      await login(emu, { headers: { ...goodHeaders(), pososversion: undefined } }),
      400,
      'invalid_pososversion',
    );
    await expectError(
      await login(emu, { headers: { ...goodHeaders(), posmodelframework: '2' } }),
      400,
      'invalid_posmodelframework',
    );
    // Unconfigured on LOOSE: any value within the length limit is fine, past it is not.
    const loose = { 'content-type': FORM, posserial: 'LOOSE-1' };
    assert.equal((await login(emu, { form: goodForm(LOOSE), headers: { ...loose, pososversion: 'x'.repeat(50) } })).status, 200);
    await expectError(
      await login(emu, { form: goodForm(LOOSE), headers: { ...loose, pososversion: 'x'.repeat(51) } }),
      400,
      'invalid_pososversion',
    );
    await expectError(
      await login(emu, { form: goodForm(LOOSE), headers: { ...loose, posmodelframework: 'x'.repeat(11) } }),
      400,
      'invalid_posmodelframework',
    );
  });

  test('invalid_presharedkey: wrong, missing, over-length', async () => {
    await expectError(
      await login(emu, { headers: { ...goodHeaders(), presharedkey: 'not-the-key' } }),
      400,
      'invalid_presharedkey',
    );
    await expectError(
      await login(emu, { headers: { ...goodHeaders(), presharedkey: undefined } }),
      400,
      'invalid_presharedkey',
    );
    const loose = { 'content-type': FORM, posserial: 'LOOSE-1' };
    assert.equal((await login(emu, { form: goodForm(LOOSE), headers: { ...loose, presharedkey: 'any' } })).status, 200);
    await expectError(
      await login(emu, { form: goodForm(LOOSE), headers: { ...loose, presharedkey: 'k'.repeat(201) } }),
      400,
      'invalid_presharedkey',
    );
  });

  test('405 for other methods, 413 past 16 KiB, 404 JSON for unknown paths', async () => {
    const get = await login(emu, { method: 'GET' });
    assert.equal(get.status, 405);
    assert.equal(get.headers.get('allow'), 'POST');
    await get.arrayBuffer();

    const big = `${new URLSearchParams(goodForm()).toString()}&pad=${'x'.repeat(17 * 1024)}`;
    await expectError(await login(emu, { body: big }), 413, 'invalid_request');

    const missing = await fetch(`${emu.url}/nope`);
    assert.equal(missing.status, 404);
    assert.match(missing.headers.get('content-type') ?? '', /application\/json/);
    assert.equal(((await missing.json()) as { error: string }).error, 'not_found');
  });

  test('discovery document and JWKS', async () => {
    const conf = (await (await fetch(`${emu.url}/.well-known/openid-configuration`)).json()) as Record<string, string>;
    assert.equal(conf.issuer, emu.url);
    assert.equal(conf.token_endpoint, `${emu.url}/connect/token`);
    assert.equal(conf.jwks_uri, `${emu.url}/.well-known/openid-configuration/jwks`);
    const jwks = (await (await fetch(conf.jwks_uri!)).json()) as { keys: Array<Record<string, string>> };
    assert.equal(jwks.keys.length, 1);
    assert.deepEqual(jwks.keys[0], emu.publicJwk());
    assert.equal(jwks.keys[0]!.d, undefined, 'no private part');
  });

  test('bad requests do not crash it: binary body, aborted upload', async () => {
    const garbage = await login(emu, { body: '%%%\u0000\uffff&&==&' });
    await expectError(garbage, 400, 'invalid_request');
    await new Promise<void>((resolve) => {
      const req = httpRequest(`${emu.url}/connect/token`, {
        method: 'POST',
        headers: { 'content-type': FORM, 'content-length': '5000' },
        agent: false,
      });
      req.on('error', () => resolve());
      req.write('grant_type=client_');
      setTimeout(() => {
        req.destroy();
        resolve();
      }, 20);
    });
    assert.equal((await login(emu)).status, 200);
  });

  test('stats count token requests only, and redact the preshared key', async () => {
    emu.resetStats();
    await (await login(emu)).arrayBuffer();
    await (await login(emu, { form: { ...goodForm(), client_secret: 'bad' } })).arrayBuffer();
    await (await fetch(`${emu.url}/.well-known/openid-configuration`)).arrayBuffer();
    const s = emu.stats();
    assert.equal(s.requests, 2);
    assert.equal(s.issued, 1);
    assert.equal(s.rejected, 1);
    assert.deepEqual(s.byStatus, { '200': 1, '400': 1 });
    assert.equal(s.lastRequestHeaders?.presharedkey, '[redacted]');
    assert.equal(s.lastRequestHeaders?.posserial, POS.posserial);
    assert.ok(!JSON.stringify(s).includes(POS.presharedKey!));
    emu.resetStats();
    assert.deepEqual(emu.stats(), { requests: 0, issued: 0, rejected: 0, byStatus: {} });
  });
});

describe('non-strict mode', () => {
  const emu = createEmulator({ devices: [POS], strict: false, rateLimitPerMinute: 0 });
  before(() => emu.start());
  after(() => emu.stop());

  test('tolerates an extra field and a missing content type, still checks credentials and headers', async () => {
    const body = new Blob([new URLSearchParams({ ...goodForm(), scope: 'InvoicingAPI' }).toString()]);
    const headers = defined({ ...goodHeaders(), 'content-type': undefined });
    const ok = await fetch(`${emu.url}/connect/token`, { method: 'POST', headers, body });
    assert.equal(ok.status, 200, await ok.clone().text());
    await expectError(await login(emu, { form: { ...goodForm(), client_secret: 'bad' } }), 400, 'invalid_clientsecret');
    await expectError(await login(emu, { headers: { ...goodHeaders(), posserial: 'x' } }), 400, 'invalid_posserial');
  });
});

describe('faults', () => {
  const emu = createEmulator({ devices: [POS], rateLimitPerMinute: 0 });
  before(() => emu.start());
  after(() => emu.stop());
  afterEach(() => {
    emu.clearFaults();
    emu.resetStats();
  });

  test('latency delays the answer', async () => {
    emu.setFaults({ latencyMs: 150 });
    const t0 = performance.now();
    const res = await login(emu);
    const elapsed = performance.now() - t0;
    assert.equal(res.status, 200);
    assert.ok(elapsed >= 140, `took ${elapsed} ms`);
    emu.clearFaults();
    const t1 = performance.now();
    await (await login(emu)).arrayBuffer();
    assert.ok(performance.now() - t1 < 140);
  });

  test('fail5xx answers N times (JSON, then HTML) and then recovers', async () => {
    emu.setFaults({ fail5xx: 2, status5xx: 502 });
    const a = await login(emu);
    assert.equal(a.status, 502);
    assert.match(a.headers.get('content-type') ?? '', /json/);
    assert.equal(((await a.json()) as { error: string }).error, 'server_error');
    const b = await login(emu);
    assert.equal(b.status, 502);
    assert.match(b.headers.get('content-type') ?? '', /text\/html/);
    assert.match(await b.text(), /<html>/);
    assert.equal((await login(emu)).status, 200);
    assert.deepEqual(emu.stats().byStatus, { '502': 2, '200': 1 });
  });

  test('fail5xx defaults to 503 and applies before credential checks', async () => {
    emu.setFaults({ fail5xx: 1 });
    const res = await login(emu, { form: { ...goodForm(), client_secret: 'wrong' } });
    assert.equal(res.status, 503);
    await res.arrayBuffer();
  });

  test('rateLimit answers 429 with the given Retry-After, count times', async () => {
    const date = 'Wed, 21 Oct 2015 07:28:00 GMT';
    emu.setFaults({ rateLimit: { count: 2, retryAfter: '7' } });
    const a = await login(emu);
    assert.equal(a.status, 429);
    assert.equal(a.headers.get('retry-after'), '7');
    assert.equal(((await a.json()) as { error: string }).error, 'rate_limited');
    emu.setFaults({ rateLimit: { count: 1, retryAfter: date } });
    const b = await login(emu);
    assert.equal(b.status, 429);
    assert.equal(b.headers.get('retry-after'), date);
    await b.arrayBuffer();
    assert.equal((await login(emu)).status, 200);
  });

  test('drop destroys the connection without an answer, then recovers', async () => {
    emu.setFaults({ drop: 1 });
    const body = new URLSearchParams(goodForm()).toString();
    const headers = defined(goodHeaders());
    await assert.rejects(rawRequest(emu, '/connect/token', body, headers), (err: NodeJS.ErrnoException) => {
      assert.ok(err.code === 'ECONNRESET' || /socket hang up/.test(err.message), String(err));
      return true;
    });
    assert.equal(await rawRequest(emu, '/connect/token', body, headers), 200);
    assert.equal(emu.stats().byStatus.dropped, 1);
    assert.equal(emu.stats().requests, 2);
  });

  test('malformed answers 200 with a body that is not JSON, then one without access_token', async () => {
    emu.setFaults({ malformed: 2 });
    const a = await login(emu);
    assert.equal(a.status, 200);
    const text = await a.text();
    assert.throws(() => JSON.parse(text));
    const b = await login(emu);
    assert.equal(b.status, 200);
    const body = (await b.json()) as Record<string, unknown>;
    assert.equal(body.access_token, undefined);
    assert.equal((await login(emu)).status, 200);
    assert.equal(emu.stats().issued, 1);
  });

  test('error with a count, and without one until cleared', async () => {
    emu.setFaults({ error: { code: 'invalid_grant', description: 'expired', count: 2 } });
    for (let i = 0; i < 2; i++) {
      const res = await login(emu);
      assert.equal(res.status, 400);
      assert.deepEqual(await res.json(), { error: 'invalid_grant', error_description: 'expired' });
    }
    assert.equal((await login(emu)).status, 200);
    emu.setFaults({ error: { code: 'unauthorized_client' } });
    for (let i = 0; i < 3; i++) await expectError(await login(emu), 400, 'unauthorized_client');
    emu.clearFaults();
    assert.equal((await login(emu)).status, 200);
  });

  test('order: drop before error; rateLimit before fail5xx', async () => {
    emu.setFaults({ drop: 1, error: { code: 'x_error', count: 1 }, rateLimit: { count: 1, retryAfter: '1' }, fail5xx: 1 });
    await assert.rejects(login(emu));
    assert.equal((await login(emu)).status, 429);
    assert.equal((await login(emu)).status, 503);
    await expectError(await login(emu), 400, 'x_error');
    assert.equal((await login(emu)).status, 200);
  });

  test('lifetimeS overrides expires_in and exp while set', async () => {
    emu.setFaults({ lifetimeS: 5 });
    const body = (await (await login(emu)).json()) as { access_token: string; expires_in: number };
    assert.equal(body.expires_in, 5);
    const claims = decodePart(body.access_token.split('.')[1]!);
    assert.equal((claims.exp as number) - (claims.iat as number), 5);
    emu.setFaults({ lifetimeS: undefined });
    assert.equal(((await (await login(emu)).json()) as { expires_in: number }).expires_in, 3600);
  });

  test('setFaults and addDevice reject invalid input', () => {
    assert.throws(() => emu.setFaults({ fail5xx: -1 }), TypeError);
    assert.throws(() => emu.setFaults({ status5xx: 404 }), /status5xx/);
    assert.throws(() => emu.setFaults({ bogus: 1 } as never), /faults\.bogus: unknown key/);
    assert.throws(() => emu.addDevice({ clientId: '', clientSecrets: [], posserial: 'x' }), /clientId.*clientSecrets/s);
  });
});

describe('per-posserial rate limit', () => {
  const clock = new FakeClock(WALL_START);
  const other: EmulatorDevice = { ...LOOSE, clientId: 'other', posserial: 'OTHER-1' };
  const emu = createEmulator({ devices: [LOOSE, other], clock, rateLimitPerMinute: 3 });
  before(() => emu.start());
  after(() => emu.stop());

  const go = (device: EmulatorDevice): Promise<Response> =>
    login(emu, { form: goodForm(device), headers: { 'content-type': FORM, posserial: device.posserial } });

  test('past the limit: 429 with Retry-After until the sliding window frees', async () => {
    for (let i = 0; i < 3; i++) {
      assert.equal((await go(LOOSE)).status, 200);
      await clock.advance(10_000);
    }
    // Hits at t=0, 10, 20 s; now t=30 s.
    const limited = await go(LOOSE);
    assert.equal(limited.status, 429);
    assert.equal(limited.headers.get('retry-after'), '30');
    assert.equal(((await limited.json()) as { error: string }).error, 'rate_limited');
    assert.equal((await go(other)).status, 200, 'another POS is not limited');
    await clock.advance(29_000);
    const still = await go(LOOSE);
    assert.equal(still.status, 429);
    assert.equal(still.headers.get('retry-after'), '1');
    await clock.advance(1_000);
    assert.equal((await go(LOOSE)).status, 200);
    assert.equal((await go(LOOSE)).status, 429, 'the hits at 10 s and 20 s are still in the window');
    assert.equal(emu.stats().byStatus['429'], 3);
  });
});

describe('lifecycle', () => {
  test('stop() then start() listens on the same port; stop() cuts open connections', async () => {
    const emu = createEmulator({ devices: [POS] });
    assert.throws(() => emu.url);
    await emu.start();
    try {
      const { url, port } = emu;
      assert.ok(port > 0);
      assert.equal(url, `http://127.0.0.1:${port}`);
      assert.equal((await login(emu)).status, 200);

      emu.setFaults({ latencyMs: 5_000 });
      const pending = login(emu);
      await new Promise((r) => setTimeout(r, 50));
      const t0 = performance.now();
      await emu.stop();
      await assert.rejects(pending);
      assert.ok(performance.now() - t0 < 1_000, 'stop is prompt');
      await assert.rejects(login(emu));

      emu.clearFaults();
      await emu.start();
      assert.equal(emu.port, port);
      assert.equal(emu.url, url);
      assert.equal((await login(emu)).status, 200);
      await emu.start(); // idempotent
    } finally {
      await emu.stop();
    }
    await emu.stop(); // idempotent
    await assert.rejects(login(emu));
  });
});

describe('admin endpoints', () => {
  const emu = createEmulator({ devices: [DEMO_DEVICE], rateLimitPerMinute: 0 });
  before(() => emu.start());
  after(() => emu.stop());

  const demoLogin = (device: EmulatorDevice = DEMO_DEVICE): Promise<Response> =>
    login(emu, { form: goodForm(device), headers: goodHeaders(device) });

  test('the demo device logs in', async () => {
    assert.equal(DEMO_DEVICE.posserial, 'DEMO-POS-0001');
    assert.equal((await demoLogin()).status, 200);
    assert.equal((await login(emu, { form: goodForm(DEMO_DEVICE, 1), headers: goodHeaders(DEMO_DEVICE) })).status, 200);
  });

  test('faults: set (merging), read, validate, clear', async () => {
    let res = await admin(emu, 'POST', 'faults', { fail5xx: 1 });
    assert.equal(res.status, 200);
    res = await admin(emu, 'POST', 'faults', { error: { code: 'invalid_client', count: 1 } });
    assert.deepEqual(await res.json(), { faults: { fail5xx: 1, error: { code: 'invalid_client', count: 1 } } });
    assert.equal((await demoLogin()).status, 503);
    await expectError(await demoLogin(), 400, 'invalid_client');
    assert.equal((await demoLogin()).status, 200);

    res = await admin(emu, 'POST', 'faults', { bogus: 1, latencyMs: 'slow', rateLimit: { count: 1 } });
    assert.equal(res.status, 400);
    const err = (await res.json()) as { error: string; error_description: string };
    assert.equal(err.error, 'invalid_request');
    assert.match(err.error_description, /faults\.bogus: unknown key/);
    assert.match(err.error_description, /faults\.latencyMs: expected an integer/);
    assert.match(err.error_description, /faults\.rateLimit\.retryAfter: expected a string/);

    res = await admin(emu, 'POST', 'faults', '{not json');
    assert.equal(res.status, 400);
    await res.arrayBuffer();

    await (await admin(emu, 'POST', 'faults', { drop: 3 })).arrayBuffer();
    res = await admin(emu, 'DELETE', 'faults');
    assert.deepEqual(await res.json(), { faults: {} });
    assert.equal((await demoLogin()).status, 200);
  });

  test('devices: add, replace, validate, never echo secrets', async () => {
    const device: EmulatorDevice = { clientId: 'till-dev', clientSecrets: ['till-secret'], posserial: 'TILL-1' };
    let res = await admin(emu, 'POST', 'devices', device);
    assert.equal(res.status, 201);
    assert.deepEqual(await res.json(), { clientId: 'till-dev' });
    assert.equal((await demoLogin(device)).status, 200);

    res = await admin(emu, 'POST', 'devices', { ...device, status: 'blocked' });
    assert.equal(res.status, 201);
    await res.arrayBuffer();
    await expectError(await demoLogin(device), 400, 'unauthorized_client');

    res = await admin(emu, 'POST', 'devices', { clientId: 'x', clientSecrets: 'nope', posserial: 5, colour: 'red' });
    assert.equal(res.status, 400);
    const text = await res.text();
    assert.match(text, /device\.clientSecrets/);
    assert.match(text, /device\.posserial: expected a string/);
    assert.match(text, /device\.colour: unknown key/);

    res = await admin(emu, 'GET', 'devices');
    const list = await res.text();
    assert.match(list, /till-dev/);
    assert.ok(!list.includes('till-secret') && !list.includes(DEMO_DEVICE.clientSecrets[0]!));
  });

  test('stats and reset over HTTP; unknown admin path 404; wrong method 405', async () => {
    await (await admin(emu, 'POST', 'stats/reset')).arrayBuffer();
    await (await demoLogin()).arrayBuffer();
    const stats = (await (await admin(emu, 'GET', 'stats')).json()) as {
      requests: number;
      issued: number;
      lastRequestHeaders: Record<string, string>;
    };
    assert.equal(stats.requests, 1);
    assert.equal(stats.issued, 1);
    assert.equal(stats.lastRequestHeaders.presharedkey, '[redacted]');
    const reset = await admin(emu, 'POST', 'stats/reset');
    assert.equal(reset.status, 200);
    await reset.arrayBuffer();
    assert.equal(emu.stats().requests, 0);

    const missing = await admin(emu, 'GET', 'nothing');
    assert.equal(missing.status, 404);
    assert.equal(((await missing.json()) as { error: string }).error, 'not_found');
    const wrong = await admin(emu, 'PUT', 'stats');
    assert.equal(wrong.status, 405);
    await wrong.arrayBuffer();
  });

  test('admin paths named like members of Object.prototype are unknown paths (404), not a 500', async () => {
    for (const name of ['constructor', '__proto__', 'toString', 'hasOwnProperty']) {
      const res = await admin(emu, 'GET', name);
      assert.equal(res.status, 404, name);
      assert.equal(((await res.json()) as { error: string }).error, 'not_found', name);
    }
  });
});
