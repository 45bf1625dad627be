import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  accessLifetimeS,
  buildRefreshRequest,
  buildTokenRequest,
  createImpactGr,
  DEFAULT_ACCESS_LIFETIME_S,
  DEFAULT_REFRESH_LIFETIME_S,
  parseTokenResponse,
  refreshLifetimeS,
} from '../../src/authorities/impact-gr/index.js';
import { describeLoginContract } from '../fixtures/authorities/oauth-suite.js';
import {
  accountFor,
  assertNoSecrets,
  failed,
  fakeHttp,
  fixture,
  jwt,
  NOW,
  refused,
  res,
  SERVER_ERRORS,
  succeeded,
} from '../fixtures/authorities/support.js';

const SERVICE = 'Impact eInvoicing API';
const CREDS = { vat: 'EL123456789', apiKey: 'ak_5e1f0c9b8a7d6e5f4a3b2c1d0e9f8a7b' };
const NOW_S = NOW / 1000;
const RT = 'k9mXc1Zz8p0Qe3R7tYb2Wn5LsA4dFg6HjKl0PoIuY1T=';

describe('impact-gr requests', () => {
  const account = accountFor('impact-gr', { identityUrl: 'https://einvoiceapiuat.impact.gr/' });

  test('login: POST {base}/Authentication/login with JSON {vat, key}', () => {
    const req = buildTokenRequest(account, { vat: 'EL123456789', apiKey: 'k"ey\\with/"quotes' });
    assert.equal(req.method, 'POST');
    assert.equal(req.url, 'https://einvoiceapiuat.impact.gr/Authentication/login');
    assert.deepEqual(req.headers, { 'content-type': 'application/json', accept: 'application/json' });
    assert.equal(req.body, '{"vat":"EL123456789","key":"k\\"ey\\\\with/\\"quotes"}');
    assert.deepEqual(JSON.parse(req.body!), { vat: 'EL123456789', key: 'k"ey\\with/"quotes' });
    assert.deepEqual(req.tls, { legacyServerConnect: false });
  });

  test('refresh: POST {base}/Authentication/refresh, the refresh token as a bare JSON string, Bearer access token', () => {
    const req = buildRefreshRequest(account, 'r/t+"1"==', 'eyJ.access.token');
    assert.equal(req.method, 'POST');
    assert.equal(req.url, 'https://einvoiceapiuat.impact.gr/Authentication/refresh');
    assert.deepEqual(req.headers, {
      'content-type': 'application/json',
      accept: 'application/json',
      authorization: 'Bearer eyJ.access.token',
    });
    assert.equal(req.body, '"r/t+\\"1\\"=="');
    assert.equal(JSON.parse(req.body!), 'r/t+"1"==');
  });

  test('extra headers and TLS options go along on both', () => {
    const a = accountFor('impact-gr', { headers: { 'X-Branch': '3' }, tls: { legacyServerConnect: true } });
    for (const req of [buildTokenRequest(a, CREDS), buildRefreshRequest(a, RT, 'at')]) {
      assert.equal(req.headers['x-branch'], '3');
      assert.deepEqual(req.tls, { legacyServerConnect: true });
    }
  });
});

describe('impact-gr lifetimes', () => {
  test('access token: exp - iat when both are there, whatever this clock says', () => {
    assert.equal(accessLifetimeS(jwt({ iat: 1_000_000_000, exp: 1_000_000_900 }), NOW), 900);
    assert.equal(accessLifetimeS(jwt({ iat: NOW_S, exp: NOW_S + 3600 }), NOW), 3600);
  });

  test('access token: exp - now without iat', () => {
    assert.equal(accessLifetimeS(jwt({ exp: NOW_S + 600 }), NOW), 600);
    assert.equal(accessLifetimeS(jwt({ exp: NOW_S + 600, iat: 'yesterday' }), NOW), 600);
  });

  test('access token: 15 minutes without exp, for an opaque token, or when implausible', () => {
    for (const token of [
      jwt({ sub: 'x' }),
      'opaque-token',
      jwt({ exp: 'later' }),
      jwt({ exp: NOW_S - 3600 }), // this clock is far ahead
      jwt({ exp: NOW_S + 30 }), // too short to be believed
      jwt({ exp: NOW_S + 10 * 86_400 }), // this clock is far behind
      jwt({ iat: NOW_S, exp: NOW_S + 40 * 86_400 }),
    ]) {
      assert.equal(accessLifetimeS(token, NOW), DEFAULT_ACCESS_LIFETIME_S, token);
    }
    assert.equal(DEFAULT_ACCESS_LIFETIME_S, 900);
  });

  test('refresh token: 7 days unless a member of the refreshToken object plausibly says otherwise', () => {
    assert.equal(DEFAULT_REFRESH_LIFETIME_S, 7 * 86_400);
    const cases: Array<[Record<string, unknown>, number]> = [
      [{ token: RT }, 7 * 86_400],
      [{ token: RT, expires: '2026-01-18T12:00:00Z', created: '2026-01-15T12:00:00Z' }, 3 * 86_400],
      // created wins over this box's clock
      [{ token: RT, expires: '2030-01-03T00:00:00Z', created: '2030-01-01T00:00:00Z' }, 2 * 86_400],
      [{ token: RT, expiresAt: new Date(NOW + 86_400_000).toISOString() }, 86_400],
      [{ token: RT, Expires: '2026-01-16T12:00:00Z' }, 86_400],
      [{ token: RT, expiryDate: NOW_S + 3600 }, 3600],
      [{ token: RT, expires: NOW + 7200_000 }, 7200],
      [{ token: RT, expiresIn: 86_400 }, 86_400],
      [{ token: RT, expires_in: '1209600' }, 1_209_600],
      [{ token: RT, expires: '2026-01-15T11:00:00Z' }, 7 * 86_400], // in the past: not believed
      [{ token: RT, expires: '2027-06-01T00:00:00Z' }, 7 * 86_400], // beyond 90 days
      [{ token: RT, expires: 'next week' }, 7 * 86_400],
      [{ token: RT, expiresIn: 5 }, 7 * 86_400],
      [{ token: RT, expires: true }, 7 * 86_400],
    ];
    for (const [obj, expected] of cases) assert.equal(refreshLifetimeS(obj, NOW), expected, JSON.stringify(obj));
  });
});

describe('impact-gr parseTokenResponse', () => {
  test('a login answer with an expiry on the refresh token', () => {
    const t = succeeded(parseTokenResponse(fixture('impact-gr', 'login-success'), NOW));
    assert.equal(t.tokenType, 'Bearer');
    assert.equal(t.expiresInS, 900);
    assert.equal(t.refreshToken, RT);
    assert.equal(t.refreshExpiresInS, 7 * 86_400);
    assert.equal(t.accessToken.split('.').length, 3);
  });

  test('the documented minimum: refreshToken {token}, 7 days', () => {
    const t = succeeded(parseTokenResponse(fixture('impact-gr', 'login-success-minimal'), NOW));
    assert.equal(t.expiresInS, 900);
    assert.equal(t.refreshToken, RT);
    assert.equal(t.refreshExpiresInS, DEFAULT_REFRESH_LIFETIME_S);
  });

  test('a refresh answer', () => {
    const t = succeeded(parseTokenResponse(fixture('impact-gr', 'refresh-success'), NOW, { action: 'refresh' }));
    assert.equal(t.expiresInS, 900);
    assert.equal(t.refreshToken, 'N3wRefreshT0ken/with+chars==');
    assert.equal(t.refreshExpiresInS, 7 * 86_400);
  });

  test('an opaque access token lives 15 minutes; no refresh token means no refresh', () => {
    assert.deepEqual(succeeded(parseTokenResponse(res(200, { accessToken: 'opaque' }), NOW)), {
      accessToken: 'opaque',
      tokenType: 'Bearer',
      expiresInS: 900,
    });
    for (const refreshToken of [null, '', {}, { token: 42 }, { token: 'x'.repeat(20_000) }]) {
      assert.equal(succeeded(parseTokenResponse(res(200, { accessToken: 'opaque', refreshToken }), NOW)).refreshToken, undefined);
    }
  });

  test('a refreshToken given as a bare string, and members in PascalCase', () => {
    const t = succeeded(parseTokenResponse(res(200, { AccessToken: 'at', RefreshToken: { Token: RT } }), NOW));
    assert.equal(t.accessToken, 'at');
    assert.equal(t.refreshToken, RT);
    assert.equal(succeeded(parseTokenResponse(res(200, { accessToken: 'at', refreshToken: RT }), NOW)).refreshExpiresInS, 7 * 86_400);
  });

  test('200 without accessToken, with one unfit for a header, HTML or broken JSON is upstream_unavailable', () => {
    const cases: Array<[ReturnType<typeof res>, RegExp]> = [
      [res(200, { refreshToken: { token: RT } }), /an answer without accessToken$/],
      [res(200, { accessToken: 'a\r\nb' }), /accessToken that is too long or has characters not allowed/],
      [res(200, ['x']), /not a JSON object$/],
      [res(200, '<html>login</html>', {}, 'text/html'), /Content-Type "text\/html" instead of JSON$/],
      [res(200, '{"accessToken":'), /not valid JSON$/],
    ];
    for (const [answer, message] of cases) {
      const f = failed(parseTokenResponse(answer, NOW));
      assert.equal(f.reason, 'upstream_unavailable');
      assert.equal(f.httpStatus, 200);
      assert.match(f.message, message);
    }
    assert.match(failed(parseTokenResponse(res(200, {}), NOW, { action: 'refresh' })).message, /^Impact eInvoicing API answered 200 to a refresh with/);
  });

  test('401 ASP.NET problem details', () => {
    assert.deepEqual(failed(parseTokenResponse(fixture('impact-gr', 'problem-details-401'), NOW)), {
      reason: 'credentials_rejected',
      code: 'ERR_CREDENTIALS_REJECTED',
      message: `${SERVICE} rejected the login: HTTP 401: Unauthorized`,
      httpStatus: 401,
      errorDescription: 'Unauthorized',
    });
  });

  test('400 validation problem details', () => {
    const f = failed(parseTokenResponse(fixture('impact-gr', 'validation-400'), NOW));
    assert.equal(f.reason, 'credentials_rejected');
    assert.equal(f.errorDescription, 'One or more validation errors occurred.');
  });

  test('403 {message} that echoes the API key is redacted', () => {
    const f = failed(parseTokenResponse(fixture('impact-gr', 'message-403'), NOW));
    assert.equal(f.errorDescription, 'Invalid API key for VAT EL123456789');
    const echo = failed(parseTokenResponse(res(403, { message: `Invalid API key ${CREDS.apiKey}` }), NOW, { secrets: [CREDS.apiKey] }));
    assert.equal(echo.errorDescription, 'Invalid API key [redacted]');
  });

  test('other error shapes: {error}, {error:{code,message}}, {errors:[...]}, text/plain, HTML, empty', () => {
    const cases: Array<[ReturnType<typeof res>, { error?: string; errorDescription?: string }]> = [
      [res(400, { error: 'invalid_key', error_description: 'Key revoked' }), { error: 'invalid_key', errorDescription: 'Key revoked' }],
      [res(400, { error: { code: 'E_AUTH', message: 'Bad key' } }), { error: 'E_AUTH', errorDescription: 'Bad key' }],
      [res(400, { code: 1001, Message: 'Λάθος κλειδί' }), { error: '1001', errorDescription: 'Λάθος κλειδί' }],
      [res(400, { errors: ['Vat is invalid', { message: 'Key is empty' }] }), { errorDescription: 'Vat is invalid; Key is empty' }],
      [res(400, { errors: { Key: ['The Key field is required.'] } }), { errorDescription: 'Key: The Key field is required.' }],
      [res(401, 'Invalid credentials', {}, 'text/plain; charset=utf-8'), { errorDescription: 'Invalid credentials' }],
      [res(401, `${'y'.repeat(300)}`, {}, 'text/plain'), { errorDescription: `${'y'.repeat(200)}…` }],
      [res(401, '<html><body>401</body></html>', {}, 'text/html'), {}],
      [res(401, '', {}, 'application/json'), {}],
      [res(401, '"Unauthorized"'), { errorDescription: 'Unauthorized' }],
    ];
    for (const [answer, expected] of cases) {
      const f = failed(parseTokenResponse(answer, NOW));
      assert.equal(f.reason, 'credentials_rejected');
      assert.deepEqual({ error: f.error, errorDescription: f.errorDescription }, { error: undefined, errorDescription: undefined, ...expected });
    }
    assert.equal(
      failed(parseTokenResponse(res(401, '<html/>', {}, 'text/html'), NOW)).message,
      `${SERVICE} rejected the login: HTTP 401 with no reason given (no error message)`,
    );
  });

  test('429 with Retry-After seconds and date', () => {
    const s = failed(parseTokenResponse(res(429, '', { 'retry-after': '20' }, 'text/plain'), NOW));
    assert.deepEqual(s, {
      reason: 'rate_limited',
      code: 'ERR_RATE_LIMITED',
      message: `${SERVICE} is rate limiting logins (429)`,
      httpStatus: 429,
      retryAfterMs: 20_000,
    });
    const d = failed(parseTokenResponse(res(429, '', { 'retry-after': new Date(NOW + 61_000).toUTCString() }), NOW, { action: 'refresh' }));
    assert.equal(d.retryAfterMs, 61_000);
    assert.equal(d.message, `${SERVICE} is rate limiting refreshes (429)`);
  });

  for (const status of SERVER_ERRORS) {
    test(`${status} is upstream_unavailable`, () => {
      const f = failed(parseTokenResponse(res(status, '<html>IIS</html>', { 'retry-after': '9' }, 'text/html'), NOW));
      assert.equal(f.reason, 'upstream_unavailable');
      assert.equal(f.httpStatus, status);
      assert.equal(f.retryAfterMs, 9_000);
    });
  }

  test('404 says to check identityUrl', () => {
    assert.equal(failed(parseTokenResponse(res(404, '', {}, 'text/html'), NOW)).message, `${SERVICE} answered HTTP 404 (check identityUrl)`);
  });
});

describeLoginContract({
  name: 'impact-gr',
  service: SERVICE,
  create: createImpactGr,
  account: accountFor('impact-gr'),
  credentials: CREDS,
  fields: [
    ['vat', false],
    ['apiKey', true],
  ],
  ok: fixture('impact-gr', 'login-success'),
  rejected: res(401, { message: `The key ${CREDS.apiKey} is not valid for ${CREDS.vat}` }),
});

describe('impact-gr refresh through a fake HttpClient', () => {
  const account = accountFor('impact-gr');
  const ACCESS = jwt({ iat: NOW_S - 800, exp: NOW_S + 100 });
  const refresh = (http: ReturnType<typeof fakeHttp>, extra: { refreshToken?: string; accessToken?: string } = {}) =>
    createImpactGr({ http, now: () => NOW }).refresh!({
      account,
      credentials: CREDS,
      identity: {},
      refreshToken: RT,
      accessToken: ACCESS,
      ...extra,
    });

  test('a good refresh returns the new pair', async () => {
    const http = fakeHttp(fixture('impact-gr', 'refresh-success'));
    const t = succeeded(await refresh(http));
    assert.equal(t.refreshToken, 'N3wRefreshT0ken/with+chars==');
    assert.equal(http.requests.length, 1);
    const req = http.requests[0]!;
    assert.equal(req.url, 'https://id.example.com/Authentication/refresh');
    assert.equal(req.headers.authorization, `Bearer ${ACCESS}`);
    assert.equal(req.body, JSON.stringify(RT));
  });

  test('a refused refresh is credentials_rejected (log in again) and echoes neither token', async () => {
    for (const status of [400, 401, 403]) {
      const f = failed(await refresh(fakeHttp(res(status, { message: `refresh token ${RT} expired; bearer ${ACCESS}` }))));
      assert.equal(f.reason, 'credentials_rejected');
      assert.match(f.message, /^Impact eInvoicing API rejected the refresh: /);
      assertNoSecrets(f, [RT, ACCESS, CREDS.apiKey]);
    }
  });

  test('429, 5xx and transport faults are not "log in again"', async () => {
    assert.equal(failed(await refresh(fakeHttp(res(429, '', { 'retry-after': '3' })))).reason, 'rate_limited');
    assert.equal(failed(await refresh(fakeHttp(res(502, '', {}, 'text/html')))).reason, 'upstream_unavailable');
    assert.equal(failed(await refresh(fakeHttp(refused()))).reason, 'upstream_unavailable');
  });

  test('without a refresh token it asks for a login, sending nothing', async () => {
    const http = fakeHttp();
    const f = failed(await refresh(http, { refreshToken: '' }));
    assert.equal(f.reason, 'credentials_rejected');
    assert.equal(http.requests.length, 0);
  });

  test('login then refresh, as the token manager does it', async () => {
    const http = fakeHttp(fixture('impact-gr', 'login-success'), fixture('impact-gr', 'refresh-success'));
    const a = createImpactGr({ http, now: () => NOW });
    const first = succeeded(await a.login({ account, credentials: CREDS, identity: {} }));
    assert.equal(http.requests[0]!.url, 'https://id.example.com/Authentication/login');
    assert.equal(http.requests[0]!.body, JSON.stringify({ vat: CREDS.vat, key: CREDS.apiKey }));
    const second = succeeded(
      await a.refresh!({ account, credentials: CREDS, identity: {}, refreshToken: first.refreshToken!, accessToken: first.accessToken }),
    );
    assert.equal(http.requests[1]!.headers.authorization, `Bearer ${first.accessToken}`);
    assert.equal(http.requests[1]!.body, JSON.stringify(first.refreshToken));
    assert.notEqual(second.refreshToken, first.refreshToken);
  });
});
