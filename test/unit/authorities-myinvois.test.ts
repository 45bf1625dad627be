import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { buildTokenRequest, checkCredentials, createMyInvois, loginLimit, parseTokenResponse } from '../../src/authorities/myinvois/index.js';
import { createAuthority } from '../../src/authorities/index.js';
import { describeLoginContract, describeOAuthAnswers } from '../fixtures/authorities/oauth-suite.js';
import { accountFor, failed, fakeHttp, fixture, NOW, res, succeeded } from '../fixtures/authorities/support.js';

const SERVICE = 'MyInvois identity service';
const CREDS = { clientId: 'a1b2c3d4-0000-4000-8000-111122223333', clientSecret: '9f8e7d6c-5b4a-4321-8765-abcdefabcdef' };

describe('myinvois buildTokenRequest', () => {
  test('credentials, grant_type and scope in the form body; no Authorization', () => {
    const account = accountFor('myinvois', { identityUrl: 'https://preprod-api.myinvois.hasil.gov.my', scope: 'InvoicingAPI' });
    const req = buildTokenRequest(account, { clientId: 'id+1', clientSecret: 'se cret&x=y' });
    assert.equal(req.method, 'POST');
    assert.equal(req.url, 'https://preprod-api.myinvois.hasil.gov.my/connect/token');
    assert.deepEqual(req.headers, { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' });
    assert.equal(req.body, 'grant_type=client_credentials&client_id=id%2B1&client_secret=se+cret%26x%3Dy&scope=InvoicingAPI');
    const form = new URLSearchParams(req.body);
    assert.equal(form.get('client_secret'), 'se cret&x=y');
    assert.deepEqual(req.tls, { legacyServerConnect: false });
  });

  test('an intermediary sends onbehalfof as TIN or TIN:ROB; extra headers go along', () => {
    for (const onbehalfof of ['C1234567890', 'C1234567890:201901234567']) {
      const req = buildTokenRequest(accountFor('myinvois', { onbehalfof, headers: { 'X-Erp': 'acme' } }), CREDS);
      assert.equal(req.headers.onbehalfof, onbehalfof);
      assert.equal(req.headers['x-erp'], 'acme');
      assert.equal(req.body, `grant_type=client_credentials&client_id=${CREDS.clientId}&client_secret=${CREDS.clientSecret}`);
    }
  });
});

describeOAuthAnswers(SERVICE, parseTokenResponse);

describe('myinvois documented answers', () => {
  test('the documented 200', () => {
    const token = succeeded(parseTokenResponse(fixture('myinvois', 'success'), NOW));
    assert.equal(token.expiresInS, 3600);
    assert.equal(token.scope, 'InvoicingAPI');
  });

  test('unauthorised_client (the doc\'s spelling) is kept verbatim and explained like unauthorized_client', () => {
    const f = failed(parseTokenResponse(fixture('myinvois', 'unauthorised-client'), NOW));
    const us = failed(parseTokenResponse(res(400, { error: 'unauthorized_client', error_description: 'User blocked' }), NOW));
    assert.equal(f.reason, 'credentials_rejected');
    assert.equal(f.error, 'unauthorised_client');
    assert.equal(f.errorDescription, 'User blocked');
    const hint = 'this client may not use the client-credentials grant; check its registration on the portal';
    assert.equal(f.message, `${SERVICE} rejected the login: unauthorised_client (unauthorized_client: User blocked); ${hint}`);
    assert.equal(us.message, `${SERVICE} rejected the login: unauthorized_client (User blocked); ${hint}`);
  });

  test('429 past the login limit', () => {
    const f = failed(parseTokenResponse(fixture('myinvois', 'rate-limited'), NOW));
    assert.equal(f.reason, 'rate_limited');
    assert.equal(f.retryAfterMs, 30_000);
  });
});

describe('myinvois placeholder credentials are never sent', () => {
  const placeholders: Array<[string, Record<string, string>, RegExp]> = [
    ['empty secret', { clientId: CREDS.clientId, clientSecret: '' }, /clientSecret is required/],
    ['blank id', { clientId: '   ', clientSecret: CREDS.clientSecret }, /clientId contains spaces/],
    ['trailing newline', { clientId: CREDS.clientId, clientSecret: `${CREDS.clientSecret}\n` }, /clientSecret contains spaces/],
    ['too short', { clientId: 'abc', clientSecret: CREDS.clientSecret }, /clientId is too short/],
    ['xxxx', { clientId: CREDS.clientId, clientSecret: 'xxxxxxxxxxxx' }, /clientSecret repeats one character/],
    ['<template>', { clientId: '<CLIENT_ID>', clientSecret: CREDS.clientSecret }, /clientId looks like a template placeholder/],
    ['${VAR}', { clientId: CREDS.clientId, clientSecret: '${MYINVOIS_SECRET}' }, /template placeholder/],
    ['your-client-id', { clientId: 'your-client-id', clientSecret: CREDS.clientSecret }, /clientId looks like a placeholder/],
    ['changeme', { clientId: CREDS.clientId, clientSecret: 'changeme' }, /looks like a placeholder/],
    ['REPLACE_BASIC_AUTH', { clientId: CREDS.clientId, clientSecret: 'REPLACE_BASIC_AUTH' }, /looks like a placeholder/],
    ['client_secret', { clientId: CREDS.clientId, clientSecret: 'client_secret' }, /looks like a placeholder/],
    ['MY_CLIENT_SECRET_HERE', { clientId: CREDS.clientId, clientSecret: 'MY_CLIENT_SECRET_HERE' }, /looks like a placeholder/],
    ['xxxx-xxxx', { clientId: 'xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx', clientSecret: CREDS.clientSecret }, /clientId looks like a placeholder/],
  ];
  for (const [what, credentials, message] of placeholders) {
    test(what, async () => {
      const http = fakeHttp();
      const f = failed(await createMyInvois({ http, now: () => NOW }).login({ account: accountFor('myinvois'), credentials, identity: {} }));
      assert.equal(f.reason, 'credentials_rejected');
      assert.match(f.message, message);
      assert.ok(!f.message.includes(credentials.clientSecret!.trim() || '\u0000'), 'the value is not quoted');
      assert.equal(http.requests.length, 0);
    });
  }

  test('real-looking GUIDs and long random secrets pass', () => {
    assert.equal(checkCredentials(CREDS), undefined);
    assert.equal(checkCredentials({ clientId: 'f2b1c0de-1234-4bcd-9abc-0123456789ab', clientSecret: 'Zq8-Lm3_pW7.tR2~' }), undefined);
    assert.equal(checkCredentials({ clientId: 'My3kd9Qz0pLw8VbN', clientSecret: 'q9yOu7xXxZ2mQ1aB' }), undefined);
  });
});

describe('myinvois loginLimit', () => {
  test('12 per minute per client ID at one identity service, by default', () => {
    const account = accountFor('myinvois', { identityUrl: 'https://api.myinvois.hasil.gov.my/' });
    assert.deepEqual(loginLimit(account, CREDS), {
      key: `myinvois https://api.myinvois.hasil.gov.my ${CREDS.clientId}`,
      perMinute: 12,
    });
  });

  test('loginsPerMinute overrides; the authority declares it', () => {
    const account = accountFor('myinvois', { loginsPerMinute: 5 });
    const a = createAuthority('myinvois', { http: fakeHttp(), now: () => NOW });
    assert.deepEqual(a.loginLimit?.(account, CREDS), { key: `myinvois https://id.example.com ${CREDS.clientId}`, perMinute: 5 });
    assert.equal(createAuthority('eta-einvoicing', { http: fakeHttp(), now: () => NOW }).loginLimit, undefined);
  });
});

describeLoginContract({
  name: 'myinvois',
  service: SERVICE,
  create: createMyInvois,
  account: accountFor('myinvois', { scope: 'InvoicingAPI' }),
  credentials: CREDS,
  fields: [
    ['clientId', false],
    ['clientSecret', true],
  ],
  ok: fixture('myinvois', 'success'),
  rejected: res(400, { error: 'invalid_client', error_description: `client_secret=${CREDS.clientSecret} unknown` }),
});
