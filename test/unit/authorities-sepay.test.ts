import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { buildTokenRequest, createSepay, parseTokenResponse } from '../../src/authorities/sepay/index.js';
import { describeLoginContract } from '../fixtures/authorities/oauth-suite.js';
import { accountFor, basicPair, failed, fixture, NOW, res, SERVER_ERRORS, succeeded } from '../fixtures/authorities/support.js';

const SERVICE = 'SePay eInvoice API';
const CREDS = { clientId: 'sp_live_4f3a2b1c', clientSecret: 'sk_9d8c7b6a5f4e3d2c1b0a' };
const VI_MESSAGE = 'Thiếu hoặc sai định dạng trường bắt buộc.';

describe('sepay buildTokenRequest', () => {
  test('POST {base}/v1/token with Basic auth and an empty body', () => {
    const account = accountFor('sepay', { identityUrl: 'https://einvoice-api-sandbox.sepay.vn' });
    const req = buildTokenRequest(account, CREDS);
    assert.equal(req.method, 'POST');
    assert.equal(req.url, 'https://einvoice-api-sandbox.sepay.vn/v1/token');
    assert.deepEqual(req.headers, {
      accept: 'application/json',
      authorization: `Basic ${Buffer.from(`${CREDS.clientId}:${CREDS.clientSecret}`).toString('base64')}`,
    });
    assert.equal(req.body, '');
    assert.deepEqual(req.tls, { legacyServerConnect: false });
  });

  test('Basic is base64(client_id:client_secret) as documented, without form-encoding', () => {
    const req = buildTokenRequest(accountFor('sepay'), { clientId: 'id é+1', clientSecret: 'p:a/s s%' });
    assert.equal(basicPair(req), 'id é+1:p:a/s s%');
  });

  test('extra headers and TLS options from the account', () => {
    const req = buildTokenRequest(accountFor('sepay', { headers: { 'X-Shop': '42' }, tls: { caFile: '/etc/ssl/sepay.pem' } }), CREDS);
    assert.equal(req.headers['x-shop'], '42');
    assert.deepEqual(req.tls, { legacyServerConnect: false, caFile: '/etc/ssl/sepay.pem' });
  });
});

describe('sepay parseTokenResponse', () => {
  test('the documented 200', () => {
    assert.deepEqual(succeeded(parseTokenResponse(fixture('sepay', 'success'), NOW)), {
      accessToken: 'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJjbGllbnQifQ.c2lnbmF0dXJl',
      tokenType: 'Bearer',
      expiresInS: 86400,
    });
  });

  test('the documented 401 is credentials_rejected although its code says BAD_REQUEST', () => {
    assert.deepEqual(failed(parseTokenResponse(fixture('sepay', 'unauthorized'), NOW)), {
      reason: 'credentials_rejected',
      code: 'ERR_CREDENTIALS_REJECTED',
      message: `${SERVICE} rejected the login: BAD_REQUEST (${VI_MESSAGE})`,
      httpStatus: 401,
      error: 'BAD_REQUEST',
      errorDescription: VI_MESSAGE,
    });
  });

  test('401 with any code, or none, is credentials_rejected', () => {
    for (const body of [{ success: false, error: { code: 'INTERNAL_ERROR', message: 'x' } }, { success: false }, '']) {
      const f = failed(parseTokenResponse(res(401, body), NOW));
      assert.equal(f.reason, 'credentials_rejected');
      assert.equal(f.httpStatus, 401);
    }
    assert.equal(failed(parseTokenResponse(res(401, { success: false }), NOW)).message, `${SERVICE} rejected the login: HTTP 401 with no reason given (no error object)`);
  });

  test('400 bad parameters is credentials_rejected (a configuration problem)', () => {
    const f = failed(parseTokenResponse(fixture('sepay', 'bad-request'), NOW));
    assert.equal(f.reason, 'credentials_rejected');
    assert.equal(f.httpStatus, 400);
    assert.equal(f.error, 'BAD_REQUEST');
  });

  test('429 with Retry-After in seconds and as a date', () => {
    const f = failed(parseTokenResponse(fixture('sepay', 'rate-limited'), NOW));
    assert.equal(f.reason, 'rate_limited');
    assert.equal(f.retryAfterMs, 60_000);
    assert.equal(f.error, 'TOO_MANY_REQUESTS');
    const d = failed(parseTokenResponse(res(429, '', { 'retry-after': new Date(NOW + 5_000).toUTCString() }, 'text/html'), NOW));
    assert.equal(d.retryAfterMs, 5_000);
  });

  for (const status of SERVER_ERRORS) {
    test(`${status} (HTML or JSON) is upstream_unavailable`, () => {
      assert.equal(failed(parseTokenResponse(res(status, '<h1>502 Bad Gateway</h1>', {}, 'text/html'), NOW)).reason, 'upstream_unavailable');
      const j = failed(parseTokenResponse(res(status, { success: false, error: { code: 'SERVER_ERROR', message: 'Lỗi' } }), NOW));
      assert.equal(j.reason, 'upstream_unavailable');
      assert.equal(j.message, `${SERVICE} answered HTTP ${status}: SERVER_ERROR (Lỗi)`);
    });
  }

  test('success:true without data or without access_token is malformed', () => {
    assert.deepEqual(failed(parseTokenResponse(fixture('sepay', 'success-without-data'), NOW)), {
      reason: 'upstream_unavailable',
      code: 'ERR_UPSTREAM_UNAVAILABLE',
      message: `${SERVICE} answered 200 with success:true but no data (malformed answer)`,
      httpStatus: 200,
    });
    const f = failed(parseTokenResponse(res(200, { success: true, data: { token_type: 'Bearer', expires_in: 86400 } }), NOW));
    assert.equal(f.message, `${SERVICE} answered 200 with an answer without access_token in data (malformed answer)`);
  });

  test('missing or invalid expires_in', () => {
    for (const expires_in of [undefined, 0, 'tomorrow', -1]) {
      const f = failed(parseTokenResponse(res(200, { success: true, data: { access_token: 'opaque', token_type: 'Bearer', expires_in } }), NOW));
      assert.equal(f.reason, 'upstream_unavailable');
      assert.match(f.message, /expires_in/);
    }
  });

  test('200 with success:false, an unwrapped token, HTML or broken JSON', () => {
    const no = failed(parseTokenResponse(res(200, { success: false, error: { code: 'QUOTA', message: 'hết hạn' } }), NOW));
    assert.equal(no.reason, 'upstream_unavailable');
    assert.equal(no.error, 'QUOTA');
    assert.equal(no.message, `${SERVICE} answered 200 without success:true (QUOTA)`);
    assert.equal(failed(parseTokenResponse(res(200, { access_token: 'a', expires_in: 60 }), NOW)).reason, 'upstream_unavailable');
    assert.match(failed(parseTokenResponse(res(200, '<html></html>', {}, 'text/html'), NOW)).message, /instead of JSON/);
    assert.match(failed(parseTokenResponse(res(200, '{"success":tr'), NOW)).message, /not valid JSON/);
  });

  test('an echoed secret is redacted', () => {
    const f = failed(parseTokenResponse(res(401, { success: false, error: { code: 'UNAUTHORIZED', message: `bad ${CREDS.clientSecret}` } }), NOW, [CREDS.clientSecret]));
    assert.equal(f.errorDescription, 'bad [redacted]');
  });
});

describeLoginContract({
  name: 'sepay',
  service: SERVICE,
  create: createSepay,
  account: accountFor('sepay'),
  credentials: CREDS,
  fields: [
    ['clientId', false],
    ['clientSecret', true],
  ],
  ok: fixture('sepay', 'success'),
  rejected: res(401, { success: false, error: { code: 'BAD_REQUEST', message: `client_secret ${CREDS.clientSecret} sai` } }),
});
