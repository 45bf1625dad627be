import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';
import { FakeClock } from '../../src/lib/clock.js';
import {
  createEmulator,
  DEMO_PRINCIPALS,
  type Emulator,
  type EmulatorCompany,
  type ImpactTokenAnswer,
} from '../../src/emulator/index.js';

const WALL_START = Date.UTC(2026, 0, 1);
const DAY_MS = 24 * 3600 * 1000;
const ACME: EmulatorCompany = { vat: 'EL123456789', apiKey: 'acme-api-key-0001' };
const OTHER: EmulatorCompany = { vat: 'EL987654321', apiKey: 'other-api-key-0002' };

function post(emu: Emulator, path: string, body: string, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${emu.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
}

function login(emu: Emulator, value: unknown = { vat: ACME.vat, key: ACME.apiKey }, headers?: Record<string, string>) {
  return post(emu, '/Authentication/login', JSON.stringify(value), headers);
}

function refresh(emu: Emulator, refreshToken: string, accessToken?: string, headers: Record<string, string> = {}) {
  const auth: Record<string, string> = accessToken === undefined ? {} : { authorization: `Bearer ${accessToken}` };
  return post(emu, '/Authentication/refresh', JSON.stringify(refreshToken), { ...auth, ...headers });
}

async function tokens(res: Response | Promise<Response>): Promise<ImpactTokenAnswer> {
  const r = await res;
  const text = await r.text();
  assert.equal(r.status, 200, text);
  return JSON.parse(text) as ImpactTokenAnswer;
}

async function expectProblem(res: Response, status: number): Promise<{ title: string; detail?: string; errors?: Record<string, string[]> }> {
  const text = await res.text();
  assert.equal(res.status, status, text);
  assert.equal(res.headers.get('content-type'), 'application/problem+json; charset=utf-8');
  const body = JSON.parse(text) as { type: string; title: string; status: number; traceId: string };
  assert.equal(body.status, status);
  assert.match(body.type, /^https:\/\//);
  assert.match(body.traceId, /^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/);
  assert.ok(!text.includes(ACME.apiKey));
  return body;
}

function claimsOf(jwt: string): Record<string, number | string> {
  return JSON.parse(Buffer.from(jwt.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, number | string>;
}

describe('impact-gr emulator (strict, fake clock)', () => {
  const clock = new FakeClock(WALL_START);
  const emu = createEmulator({ authority: 'impact-gr', companies: [ACME, OTHER], clock });
  before(() => emu.start());
  after(() => emu.stop());
  afterEach(() => emu.clearFaults());

  test('login answers a 15-minute JWT and a 7-day refresh token object', async () => {
    const answer = await tokens(login(emu));
    assert.deepEqual(Object.keys(answer).sort(), ['accessToken', 'refreshToken']);
    assert.deepEqual(Object.keys(answer.refreshToken).sort(), ['expiresAt', 'token']);
    const claims = claimsOf(answer.accessToken);
    assert.equal(claims.sub, ACME.vat);
    assert.equal(claims.iat, WALL_START / 1000);
    assert.equal(claims.exp, WALL_START / 1000 + 900);
    assert.equal(answer.refreshToken.expiresAt, new Date(WALL_START + 7 * DAY_MS).toISOString());
    assert.ok(answer.refreshToken.token.length >= 64);
    assert.deepEqual(emu.paths, { token: '/Authentication/login', refresh: '/Authentication/refresh' });
  });

  test('wrong key or unknown VAT: 401 problem details', async () => {
    const wrong = await expectProblem(await login(emu, { vat: ACME.vat, key: 'nope' }), 401);
    assert.equal(wrong.title, 'Unauthorized');
    await expectProblem(await login(emu, { vat: 'EL000000000', key: ACME.apiKey }), 401);
    await expectProblem(await login(emu, { vat: OTHER.vat, key: ACME.apiKey }), 401);
  });

  test('strict login refusals: content type 415; not JSON, not an object, extra or mis-cased member, missing or non-string field 400', async () => {
    await expectProblem(await login(emu, undefined, { 'content-type': 'text/plain' }), 415);
    const notJson = await expectProblem(await post(emu, '/Authentication/login', '{vat:'), 400);
    assert.ok(notJson.errors?.$);
    await expectProblem(await login(emu, [ACME.vat, ACME.apiKey]), 400);
    const extra = await expectProblem(await login(emu, { vat: ACME.vat, key: ACME.apiKey, remember: true }), 400);
    assert.ok(extra.errors?.remember);
    await expectProblem(await login(emu, { VAT: ACME.vat, Key: ACME.apiKey }), 400);
    const missing = await expectProblem(await login(emu, { vat: ACME.vat }), 400);
    assert.deepEqual(missing.errors, { key: ['The key field is required.'] });
    assert.equal(missing.title, 'One or more validation errors occurred.');
    await expectProblem(await login(emu, { vat: 123456789, key: ACME.apiKey }), 400);
  });

  test('refresh rotates: new tokens, the old refresh token stops working, the new one works', async () => {
    emu.resetStats();
    const first = await tokens(login(emu));
    await clock.advance(60_000);
    const second = await tokens(refresh(emu, first.refreshToken.token, first.accessToken));
    assert.notEqual(second.refreshToken.token, first.refreshToken.token);
    assert.notEqual(second.accessToken, first.accessToken);
    assert.equal(claimsOf(second.accessToken).iat, (claimsOf(first.accessToken).iat as number) + 60);
    const reused = await expectProblem(await refresh(emu, first.refreshToken.token, second.accessToken), 401);
    assert.match(reused.detail ?? '', /not valid/);
    await tokens(refresh(emu, second.refreshToken.token, second.accessToken));
    const stats = emu.stats();
    assert.equal(stats.refreshed, 2);
    assert.equal(stats.issued, 3);
    assert.equal(stats.requests, 4);
    assert.equal(stats.lastRequestHeaders?.authorization, '[redacted]');
  });

  test('an expired access token still authorises a refresh (that is when clients refresh)', async () => {
    const first = await tokens(login(emu));
    await clock.advance(60 * 60 * 1000);
    await tokens(refresh(emu, first.refreshToken.token, first.accessToken));
  });

  test('refresh tokens expire after 7 days on the injected clock', async () => {
    const a = await tokens(login(emu));
    const b = await tokens(login(emu));
    await clock.advance(7 * DAY_MS - 1_000);
    await tokens(refresh(emu, a.refreshToken.token, a.accessToken));
    await clock.advance(1_000);
    const expired = await expectProblem(await refresh(emu, b.refreshToken.token, b.accessToken), 401);
    assert.match(expired.detail ?? '', /expired/);
    await tokens(login(emu));
  });

  test('strict refresh refusals: no bearer, bad bearer, another company\'s bearer, body not a JSON string, content type', async () => {
    const acme = await tokens(login(emu));
    const other = await tokens(login(emu, { vat: OTHER.vat, key: OTHER.apiKey }));
    const none = await refresh(emu, acme.refreshToken.token);
    assert.equal(none.headers.get('www-authenticate'), 'Bearer');
    await expectProblem(none, 401);
    const forged = `${acme.accessToken.slice(0, -4)}AAAA`;
    const bad = await refresh(emu, acme.refreshToken.token, forged);
    assert.match(bad.headers.get('www-authenticate') ?? '', /^Bearer error="invalid_token"/);
    await expectProblem(bad, 401);
    await expectProblem(await refresh(emu, acme.refreshToken.token, 'not-a-jwt'), 401);
    await expectProblem(await refresh(emu, acme.refreshToken.token, other.accessToken), 401);
    const auth = { authorization: `Bearer ${acme.accessToken}` };
    await expectProblem(await post(emu, '/Authentication/refresh', JSON.stringify({ token: acme.refreshToken.token }), auth), 400);
    await expectProblem(await post(emu, '/Authentication/refresh', acme.refreshToken.token, auth), 400);
    await expectProblem(await post(emu, '/Authentication/refresh', '""', auth), 400);
    await expectProblem(await refresh(emu, acme.refreshToken.token, acme.accessToken, { 'content-type': 'text/plain' }), 415);
    // None of those used the refresh token up.
    await tokens(refresh(emu, acme.refreshToken.token, acme.accessToken));
  });

  test('fallback knob: refreshFail answers 401 N times, leaving the token; then refresh works again', async () => {
    const t = await tokens(login(emu));
    emu.setFaults({ refreshFail: 2 });
    for (let i = 0; i < 2; i++) await expectProblem(await refresh(emu, t.refreshToken.token, t.accessToken), 401);
    const login2 = await login(emu);
    assert.equal(login2.status, 200, 'login is not affected');
    await login2.arrayBuffer();
    await tokens(refresh(emu, t.refreshToken.token, t.accessToken));
  });

  test('fallback knob: expireRefreshTokens (API and admin) kills every refresh token; login still works', async () => {
    const a = await tokens(login(emu));
    const b = await tokens(login(emu));
    assert.ok(emu.expireRefreshTokens() >= 2);
    await expectProblem(await refresh(emu, a.refreshToken.token, a.accessToken), 401);
    const c = await tokens(login(emu));
    const res = await fetch(`${emu.url}/_emulator/refresh-tokens/expire`, { method: 'POST' });
    assert.deepEqual(await res.json(), { expired: 1 });
    await expectProblem(await refresh(emu, c.refreshToken.token, c.accessToken), 401);
    await expectProblem(await refresh(emu, b.refreshToken.token, b.accessToken), 401);
    await tokens(login(emu));
    const viaAdmin = await fetch(`${emu.url}/_emulator/faults`, { method: 'POST', body: JSON.stringify({ refreshFail: 1 }) });
    assert.deepEqual(await viaAdmin.json(), { faults: { refreshFail: 1 } });
  });

  test('faults apply to the refresh endpoint too, in the problem-details shape', async () => {
    const t = await tokens(login(emu));
    emu.setFaults({ fail5xx: 1, rateLimit: { count: 1, retryAfter: '9' } });
    const limited = await refresh(emu, t.refreshToken.token, t.accessToken);
    assert.equal(limited.headers.get('retry-after'), '9');
    assert.equal((await expectProblem(limited, 429)).title, 'Too Many Requests');
    await expectProblem(await refresh(emu, t.refreshToken.token, t.accessToken), 503);
    await tokens(refresh(emu, t.refreshToken.token, t.accessToken));
  });

  test('companies: addCompany and admin; other principal kinds refused', async () => {
    emu.addCompany({ vat: 'EL111111111', apiKey: 'k1-api-key' });
    await tokens(login(emu, { vat: 'EL111111111', key: 'k1-api-key' }));
    const res = await fetch(`${emu.url}/_emulator/companies`, { method: 'POST', body: JSON.stringify({ vat: 'EL2', apiKey: 'k2' }) });
    assert.deepEqual(await res.json(), { vat: 'EL2' });
    const list = await (await fetch(`${emu.url}/_emulator/companies`)).text();
    assert.match(list, /EL2/);
    assert.ok(!list.includes('k2') && !list.includes(ACME.apiKey));
    assert.throws(() => emu.addClient({ clientId: 'c', clientSecrets: ['s'] }), /registers companies/);
    assert.throws(() => emu.addCompany({ vat: 'EL3', apiKey: 'k', key: 'x' } as EmulatorCompany), /company\.key: unknown key/);
  });
});

describe('impact-gr emulator (lenient)', () => {
  const demo = DEMO_PRINCIPALS['impact-gr'];
  const emu = createEmulator({ authority: 'impact-gr', ...demo.register, strict: false });
  const good = { vat: demo.credentials.vat!, key: demo.credentials.apiKey! };
  before(() => emu.start());
  after(() => emu.stop());

  test('accepts another content type, mis-cased and extra members', async () => {
    await tokens(login(emu, { VAT: good.vat, Key: good.key, extra: 1 }, { 'content-type': 'text/plain' }));
  });

  test('refresh without a bearer, with a {token} object, with "Bearer<token>"; a bad bearer is still refused', async () => {
    const a = await tokens(login(emu, good));
    const b = await tokens(refresh(emu, a.refreshToken.token));
    const c = await tokens(post(emu, '/Authentication/refresh', JSON.stringify({ token: b.refreshToken.token })));
    await tokens(refresh(emu, c.refreshToken.token, undefined, { authorization: `Bearer${c.accessToken}` }));
    const d = await tokens(login(emu, good));
    await expectProblem(await refresh(emu, d.refreshToken.token, 'garbage'), 401);
    assert.equal(emu.stats().refreshed, 3);
  });
});
