import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { buildTokenRequest, createOAuth2, parseTokenResponse } from '../../src/authorities/oauth2/index.js';
import { describeLoginContract, describeOAuthAnswers } from '../fixtures/authorities/oauth-suite.js';
import { accountFor, basicPair, failed, fixture, NOW, res, succeeded } from '../fixtures/authorities/support.js';

const SERVICE = 'OAuth 2.0 token endpoint';
const CREDS = { clientId: 'pos-agent', clientSecret: 'Yq3-tB9.kP0_zR7*wX2' };

describe('oauth2 buildTokenRequest', () => {
  test('client_secret_basic (the default) at tokenUrl exactly as configured', () => {
    const account = accountFor('oauth2', { tokenUrl: 'https://auth.example.com/realms/pos/protocol/openid-connect/token?tenant=7' });
    const req = buildTokenRequest(account, CREDS);
    assert.equal(req.method, 'POST');
    assert.equal(req.url, 'https://auth.example.com/realms/pos/protocol/openid-connect/token?tenant=7');
    assert.deepEqual(req.headers, {
      'content-type': 'application/x-www-form-urlencoded',
      accept: 'application/json',
      authorization: `Basic ${Buffer.from(`${CREDS.clientId}:${CREDS.clientSecret}`).toString('base64')}`,
    });
    assert.equal(req.body, 'grant_type=client_credentials');
    assert.deepEqual(req.tls, { legacyServerConnect: false });
  });

  test('special characters are form-encoded before base64 (RFC 6749 section 2.3.1)', () => {
    const req = buildTokenRequest(accountFor('oauth2'), { clientId: 'urn:pos:1', clientSecret: 'a b+c/d=e%f"g' });
    assert.equal(basicPair(req), 'urn%3Apos%3A1:a+b%2Bc%2Fd%3De%25f%22g');
  });

  test('client_secret_post, scope and audience in the form body', () => {
    const account = accountFor('oauth2', {
      clientAuth: 'client_secret_post',
      scope: 'api:read api:write',
      audience: 'https://api.example.com/',
    });
    const req = buildTokenRequest(account, { clientId: 'urn:pos:1', clientSecret: 'a b+c' });
    assert.equal(req.headers.authorization, undefined);
    assert.equal(
      req.body,
      'grant_type=client_credentials&client_id=urn%3Apos%3A1&client_secret=a+b%2Bc&scope=api%3Aread+api%3Awrite&audience=https%3A%2F%2Fapi.example.com%2F',
    );
  });

  test('resource (RFC 8707): one URI, or several as repeated resource parameters, beside audience', () => {
    const one = buildTokenRequest(accountFor('oauth2', { resource: 'https://api.example.com/v1' }), CREDS);
    assert.equal(one.body, 'grant_type=client_credentials&resource=https%3A%2F%2Fapi.example.com%2Fv1');
    const many = buildTokenRequest(
      accountFor('oauth2', { scope: 's', audience: 'urn:aud', resource: ['https://a.example/', 'urn:example:b'] }),
      CREDS,
    );
    assert.equal(many.body, 'grant_type=client_credentials&scope=s&audience=urn%3Aaud&resource=https%3A%2F%2Fa.example%2F&resource=urn%3Aexample%3Ab');
    assert.deepEqual(new URLSearchParams(many.body).getAll('resource'), ['https://a.example/', 'urn:example:b']);
  });

  test('the plain (RFC 7617) encoding joins the ID and secret as they are', () => {
    const req = buildTokenRequest(accountFor('oauth2'), { clientId: 'urn:pos:1', clientSecret: 'a b+c/d=e%f"g' }, 'plain');
    assert.equal(basicPair(req), 'urn:pos:1:a b+c/d=e%f"g');
  });

  test('scope and audience with client_secret_basic; extra headers and TLS', () => {
    const account = accountFor('oauth2', {
      scope: 'api:read',
      audience: 'urn:api',
      headers: { 'X-Tenant': 't1' },
      tls: { caFile: '/etc/ssl/corp.pem' },
    });
    const req = buildTokenRequest(account, CREDS);
    assert.equal(req.body, 'grant_type=client_credentials&scope=api%3Aread&audience=urn%3Aapi');
    assert.equal(req.headers['x-tenant'], 't1');
    assert.deepEqual(req.tls, { legacyServerConnect: false, caFile: '/etc/ssl/corp.pem' });
  });
});

describeOAuthAnswers(SERVICE, parseTokenResponse, 'tokenUrl');

describe('oauth2 fixtures', () => {
  test('RFC 6749 section 4.4.3 style answer (expires_in as a string, lower-case bearer)', () => {
    assert.deepEqual(succeeded(parseTokenResponse(fixture('oauth2', 'success'), NOW)), {
      accessToken: '2YotnFZFEjr1zCsicMWpAA',
      tokenType: 'Bearer',
      expiresInS: 3600,
      scope: 'api:read',
    });
  });

  test('401 invalid_client with WWW-Authenticate', () => {
    const f = failed(parseTokenResponse(fixture('oauth2', 'invalid-client'), NOW));
    assert.equal(f.reason, 'credentials_rejected');
    assert.equal(f.httpStatus, 401);
    assert.equal(f.error, 'invalid_client');
    assert.equal(f.errorDescription, 'client authentication failed');
  });

  test('invalid_target (RFC 8707) points at the audience', () => {
    const f = failed(parseTokenResponse(res(400, { error: 'invalid_target' }), NOW));
    assert.equal(f.message, `${SERVICE} rejected the login: invalid_target; check the account's audience`);
  });
});

describeLoginContract({
  name: 'oauth2',
  service: SERVICE,
  create: createOAuth2,
  account: accountFor('oauth2', { scope: 'api:read' }),
  credentials: CREDS,
  fields: [
    ['clientId', false],
    ['clientSecret', true],
  ],
  ok: fixture('oauth2', 'success'),
  rejected: res(401, { error: 'invalid_client', error_description: `no client with secret ${CREDS.clientSecret}` }),
});
