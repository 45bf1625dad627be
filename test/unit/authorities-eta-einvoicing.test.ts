import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { buildTokenRequest, createEtaEinvoicing, parseTokenResponse } from '../../src/authorities/eta-einvoicing/index.js';
import { DEFAULT_MAX_RESPONSE_BYTES } from '../../src/authorities/http.js';
import { describeLoginContract, describeOAuthAnswers } from '../fixtures/authorities/oauth-suite.js';
import { accountFor, basicPair, failed, fakeHttp, fixture, NOW, res, succeeded } from '../fixtures/authorities/support.js';

const SERVICE = 'eInvoicing identity service';
const CREDS = { clientId: 'd0394a9f-0607-40de-a978-2d3eb8375b04', clientSecret: '7c1e2a9b-5f3d-4e8a-9b6c-0d1f2e3a4b5c' };

describe('eta-einvoicing buildTokenRequest', () => {
  test('Basic auth by default, grant_type alone in the body', () => {
    const account = accountFor('eta-einvoicing', { timeouts: { connectMs: 2_000 } });
    const req = buildTokenRequest(account, CREDS);
    assert.equal(req.method, 'POST');
    assert.equal(req.url, 'https://id.example.com/connect/token');
    assert.deepEqual(req.headers, {
      'content-type': 'application/x-www-form-urlencoded',
      accept: 'application/json',
      authorization: `Basic ${Buffer.from(`${CREDS.clientId}:${CREDS.clientSecret}`).toString('base64')}`,
    });
    assert.equal(req.body, 'grant_type=client_credentials');
    assert.deepEqual(req.timeouts, { connectMs: 2_000, responseMs: 15_000, totalMs: 30_000 });
    assert.equal(req.maxResponseBytes, DEFAULT_MAX_RESPONSE_BYTES);
    assert.deepEqual(req.tls, { legacyServerConnect: false });
  });

  test('id and secret are form-encoded before base64 (RFC 6749 section 2.3.1)', () => {
    const req = buildTokenRequest(accountFor('eta-einvoicing'), { clientId: 'shop 1:a', clientSecret: 'p@ss:w/rd+&=%é~*' });
    assert.equal(basicPair(req), 'shop+1%3Aa:p%40ss%3Aw%2Frd%2B%26%3D%25%C3%A9%7E*');
    const [id, secret] = basicPair(req).split(':').map((p) => decodeURIComponent(p.replace(/\+/g, ' ')));
    assert.deepEqual([id, secret], ['shop 1:a', 'p@ss:w/rd+&=%é~*']);
  });

  test('scope, onbehalfof, extra headers and TLS options from the account', () => {
    const account = accountFor('eta-einvoicing', {
      identityUrl: 'https://id.preprod.eta.gov.eg/',
      scope: 'InvoicingAPI',
      onbehalfof: '100015840',
      headers: { 'X-Erp': 'acme' },
      tls: { legacyServerConnect: true },
    });
    const req = buildTokenRequest(account, CREDS);
    assert.equal(req.url, 'https://id.preprod.eta.gov.eg/connect/token');
    assert.equal(req.body, 'grant_type=client_credentials&scope=InvoicingAPI');
    assert.equal(req.headers.onbehalfof, '100015840');
    assert.equal(req.headers['x-erp'], 'acme');
    assert.deepEqual(req.tls, { legacyServerConnect: true });
  });

  test('clientAuth client_secret_post puts the credentials in the body instead', () => {
    const req = buildTokenRequest(accountFor('eta-einvoicing', { clientAuth: 'client_secret_post', scope: 'InvoicingAPI' }), {
      clientId: 'id 1',
      clientSecret: 's&=+',
    });
    assert.equal(req.headers.authorization, undefined);
    assert.equal(req.body, 'grant_type=client_credentials&client_id=id+1&client_secret=s%26%3D%2B&scope=InvoicingAPI');
  });
});

describeOAuthAnswers(SERVICE, parseTokenResponse);

describe('eta-einvoicing documented answers', () => {
  test('the documented 200', () => {
    const token = succeeded(parseTokenResponse(fixture('eta-einvoicing', 'success'), NOW));
    assert.equal(token.expiresInS, 3600);
    assert.equal(token.scope, 'InvoicingAPI');
    assert.equal(token.accessToken.split('.').length, 3);
  });

  test('the documented 400 "User blocked"', () => {
    assert.deepEqual(failed(parseTokenResponse(fixture('eta-einvoicing', 'user-blocked'), NOW)), {
      reason: 'credentials_rejected',
      code: 'ERR_CREDENTIALS_REJECTED',
      message: `${SERVICE} rejected the login: invalid_request (User blocked)`,
      httpStatus: 400,
      error: 'invalid_request',
      errorDescription: 'User blocked',
    });
  });
});

describeLoginContract({
  name: 'eta-einvoicing',
  service: SERVICE,
  create: createEtaEinvoicing,
  account: accountFor('eta-einvoicing', { onbehalfof: '100015840' }),
  credentials: CREDS,
  fields: [
    ['clientId', false],
    ['clientSecret', true],
  ],
  ok: fixture('eta-einvoicing', 'success'),
  rejected: res(400, { error: 'invalid_client', error_description: `secret ${CREDS.clientSecret} is not valid` }),
});

test('eta-einvoicing login sends the intermediary header it was configured with', async () => {
  const http = fakeHttp(fixture('eta-einvoicing', 'success'));
  const account = accountFor('eta-einvoicing', { onbehalfof: '100015840', scope: 'InvoicingAPI' });
  await createEtaEinvoicing({ http, now: () => NOW }).login({ account, credentials: CREDS, identity: {} });
  assert.equal(http.requests[0]!.headers.onbehalfof, '100015840');
  assert.equal(http.requests[0]!.body, 'grant_type=client_credentials&scope=InvoicingAPI');
});
