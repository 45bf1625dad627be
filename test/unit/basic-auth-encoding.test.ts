/**
 * client_secret_basic's two encodings of the client ID and secret (RFC 6749 section 2.3.1 form-encodes them,
 * RFC 7617 takes them as they are) and the `auto` fallback between them, through a fake HttpClient that
 * counts requests and answers as a server that reads Basic one way or the other would.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { authorities } from '../../src/authorities/index.js';
import type { HttpRequest, HttpResponse } from '../../src/authorities/http.js';
import { basicEncodingsDiffer, formEncode } from '../../src/authorities/oauth-common.js';
import { createEtaEinvoicing } from '../../src/authorities/eta-einvoicing/index.js';
import { createOAuth2 } from '../../src/authorities/oauth2/index.js';
import { createSepay } from '../../src/authorities/sepay/index.js';
import type { Authority, AuthorityDeps, Credentials, LoginInterop, LoginResult } from '../../src/authorities/types.js';
import { accountFor, basicPair, failed, fakeHttp, NOW, refused, res, type FakeHttp } from '../fixtures/authorities/support.js';

/** Every character the issue names: `:` `%` `+` `~` `/` `=`, a space and a non-ASCII one. */
const ODD: Credentials = { clientId: 'pos-agent', clientSecret: 'a:b%c+d~e/f=g h-é' };
/** Nothing that form-encoding changes: both encodings are the same bytes. */
const PLAIN_SAFE: Credentials = { clientId: 'pos-agent', clientSecret: 'Yq3-tB9.kP0_zR7*wX2' };

const TOKEN = { access_token: 'at-1', token_type: 'Bearer', expires_in: 600 };
const ok = (): HttpResponse => res(200, TOKEN);
const emptyForbidden = (): HttpResponse => res(403, '', {}, '');

/** The pair each encoding puts in the Authorization header. */
const rfc6749Pair = (c: Credentials): string => `${formEncode(c.clientId!)}:${formEncode(c.clientSecret!)}`;
const plainPair = (c: Credentials): string => `${c.clientId}:${c.clientSecret}`;

/** A server that accepts only the given pair and answers anything else with `refusal` (glewlwyd: an empty 403). */
function server(pair: string, refusal: () => HttpResponse = emptyForbidden): (req: HttpRequest) => HttpResponse {
  return (req) => (req.headers.authorization !== undefined && basicPair(req) === pair ? ok() : refusal());
}

/** `n` answers from the same server. */
const times = (n: number, answer: (req: HttpRequest) => HttpResponse) => Array.from({ length: n }, () => answer);

function login(
  create: (deps: AuthorityDeps) => Authority,
  http: FakeHttp,
  options: { account?: Record<string, unknown>; authority?: string; credentials?: Credentials; interop?: LoginInterop } = {},
): Promise<LoginResult> {
  return create({ http, now: () => NOW }).login({
    account: accountFor(options.authority ?? 'oauth2', options.account ?? {}),
    credentials: options.credentials ?? ODD,
    identity: {},
    ...(options.interop ? { interop: options.interop } : {}),
  });
}

const pairs = (http: FakeHttp): string[] => http.requests.map((r) => basicPair(r));

describe('basicAuthEncoding auto (the default)', () => {
  test('the encodings of a secret full of : % + ~ / = space é differ; of a plain one they do not', () => {
    assert.equal(basicEncodingsDiffer(ODD), true);
    assert.equal(basicEncodingsDiffer(PLAIN_SAFE), false);
    assert.equal(basicEncodingsDiffer({ clientId: 'urn:pos:1', clientSecret: 'abc' }), true, 'the ID counts too');
    assert.equal(rfc6749Pair(ODD), 'pos-agent:a%3Ab%25c%2Bd%7Ee%2Ff%3Dg+h-%C3%A9');
  });

  test('a server that decodes (RFC 6749): one request, and the result says which encoding it took', async () => {
    const http = fakeHttp(server(rfc6749Pair(ODD)));
    const r = await login(createOAuth2, http);
    assert.equal(r.ok, true, JSON.stringify(r));
    assert.deepEqual(r.ok && r.interop, { basicAuthEncoding: 'rfc6749' });
    assert.deepEqual(pairs(http), [rfc6749Pair(ODD)]);
  });

  test('a server that reads Basic as it is (RFC 7617): RFC 6749 first, then plain once, and plain is reported', async () => {
    const http = fakeHttp(...times(2, server(plainPair(ODD))));
    const r = await login(createOAuth2, http);
    assert.equal(r.ok, true, JSON.stringify(r));
    assert.deepEqual(r.ok && r.interop, { basicAuthEncoding: 'plain' });
    assert.deepEqual(pairs(http), [rfc6749Pair(ODD), plainPair(ODD)]);
    const [first, second] = http.requests;
    assert.equal(second!.url, first!.url);
    assert.equal(second!.body, first!.body, 'the same form body');
    assert.deepEqual({ ...second!.headers, authorization: '' }, { ...first!.headers, authorization: '' }, 'only Authorization differs');
  });

  test('the learned encoding is tried first next time: one request', async () => {
    const http = fakeHttp(server(plainPair(ODD)));
    const r = await login(createOAuth2, http, { interop: { basicAuthEncoding: 'plain' } });
    assert.deepEqual(r.ok && r.interop, { basicAuthEncoding: 'plain' });
    assert.deepEqual(pairs(http), [plainPair(ODD)]);
  });

  test('a learned encoding the server no longer takes: the other once, and that one is reported', async () => {
    const http = fakeHttp(...times(2, server(rfc6749Pair(ODD))));
    const r = await login(createOAuth2, http, { interop: { basicAuthEncoding: 'plain' } });
    assert.deepEqual(r.ok && r.interop, { basicAuthEncoding: 'rfc6749' });
    assert.deepEqual(pairs(http), [plainPair(ODD), rfc6749Pair(ODD)]);
  });

  test('a server that refuses both gets exactly two requests per login, and the failure says both were tried', async () => {
    const http = fakeHttp(...times(6, () => emptyForbidden()));
    for (let i = 1; i <= 3; i++) {
      const f = failed(await login(createOAuth2, http));
      assert.equal(http.requests.length, 2 * i, `login ${i}: two requests, never more`);
      assert.equal(f.reason, 'credentials_rejected');
      assert.equal(f.httpStatus, 403);
      assert.match(
        f.message,
        /client_secret_basic was refused with both encodings of the client ID and secret: the RFC 6749 \(form-encoded\) encoding, then the plain \(RFC 7617\) encoding/,
      );
    }
  });

  test('never a second request when the two encodings are the same bytes', async () => {
    const http = fakeHttp(emptyForbidden());
    const f = failed(await login(createOAuth2, http, { credentials: PLAIN_SAFE }));
    assert.equal(http.requests.length, 1);
    assert.doesNotMatch(f.message, /both encodings/);
  });

  test('never a second request with client_secret_post', async () => {
    const http = fakeHttp(emptyForbidden());
    const f = failed(await login(createOAuth2, http, { account: { clientAuth: 'client_secret_post' } }));
    assert.equal(http.requests.length, 1);
    assert.equal(http.requests[0]!.headers.authorization, undefined);
    assert.doesNotMatch(f.message, /both encodings/);
    const ok2 = fakeHttp(ok());
    const r = await login(createOAuth2, ok2, { account: { clientAuth: 'client_secret_post', basicAuthEncoding: 'plain' } });
    assert.equal(r.ok, true);
    assert.equal(r.ok && r.interop, undefined, 'no Basic, nothing to report');
  });

  for (const [what, answer] of [
    ['400 invalid_client', () => res(400, { error: 'invalid_client' })],
    ['401 invalid_client', () => res(401, { error: 'invalid_client' }, { 'www-authenticate': 'Basic' })],
    ['401 with no body', () => res(401, '', {}, '')],
    ['403 with no body', emptyForbidden],
    ['403 with an HTML page', () => res(403, '<h1>Forbidden</h1>', {}, 'text/html')],
  ] as const) {
    test(`${what} is a Basic refusal: the other encoding is tried once`, async () => {
      const http = fakeHttp(answer, server(plainPair(ODD)));
      const r = await login(createOAuth2, http);
      assert.deepEqual(r.ok && r.interop, { basicAuthEncoding: 'plain' });
      assert.equal(http.requests.length, 2);
    });
  }

  for (const [what, answer, reason] of [
    ['400 invalid_scope', () => res(400, { error: 'invalid_scope' }), 'credentials_rejected'],
    ['400 scope_invalid (glewlwyd)', () => res(400, { error: 'scope_invalid' }), 'credentials_rejected'],
    ['400 unsupported_grant_type', () => res(400, { error: 'unsupported_grant_type' }), 'credentials_rejected'],
    ['400 with no body', () => res(400, '', {}, ''), 'credentials_rejected'],
    ['429', () => res(429, '', { 'retry-after': '30' }, ''), 'rate_limited'],
    ['503', () => res(503, '', {}, ''), 'upstream_unavailable'],
    ['a network error', () => { throw refused(); }, 'upstream_unavailable'],
  ] as const) {
    test(`${what} is not about Basic: no second request`, async () => {
      const http = fakeHttp(answer as (req: HttpRequest) => HttpResponse);
      const f = failed(await login(createOAuth2, http));
      assert.equal(f.reason, reason);
      assert.equal(http.requests.length, 1);
    });
  }

  test('a retry answered 429 or 503 is that failure (the normal backoff applies), not "refused with both"', async () => {
    for (const [answer, reason] of [
      [res(429, '', { 'retry-after': '30' }, ''), 'rate_limited'],
      [res(503, '', {}, ''), 'upstream_unavailable'],
    ] as const) {
      const http = fakeHttp(emptyForbidden(), answer);
      const f = failed(await login(createOAuth2, http));
      assert.equal(f.reason, reason);
      assert.equal(http.requests.length, 2);
      assert.doesNotMatch(f.message, /both encodings/);
    }
  });

  test('a retry refused with an OAuth error reports that error', async () => {
    const http = fakeHttp(emptyForbidden(), res(401, { error: 'invalid_client', error_description: 'unknown client' }));
    const f = failed(await login(createOAuth2, http));
    assert.equal(f.error, 'invalid_client');
    assert.equal(f.httpStatus, 401);
    assert.match(f.message, /invalid_client \(unknown client\); check clientId and clientSecret .*both encodings/);
  });
});

describe('basicAuthEncoding fixed', () => {
  test('rfc6749: only the form-encoded pair, never a retry, whatever was learned', async () => {
    const refusing = fakeHttp(emptyForbidden());
    const f = failed(await login(createOAuth2, refusing, { account: { basicAuthEncoding: 'rfc6749' }, interop: { basicAuthEncoding: 'plain' } }));
    assert.deepEqual(pairs(refusing), [rfc6749Pair(ODD)]);
    assert.doesNotMatch(f.message, /both encodings/);
    assert.match(f.message, /basicAuthEncoding rfc6749 \(try basicAuthEncoding auto\)/);
    const accepting = fakeHttp(server(rfc6749Pair(ODD)));
    const r = await login(createOAuth2, accepting, { account: { basicAuthEncoding: 'rfc6749' } });
    assert.deepEqual(r.ok && r.interop, { basicAuthEncoding: 'rfc6749' });
  });

  test('plain: only the pair as it is, never a retry, whatever was learned', async () => {
    const refusing = fakeHttp(res(401, { error: 'invalid_client' }));
    failed(await login(createOAuth2, refusing, { account: { basicAuthEncoding: 'plain' }, interop: { basicAuthEncoding: 'rfc6749' } }));
    assert.deepEqual(pairs(refusing), [plainPair(ODD)]);
    const accepting = fakeHttp(server(plainPair(ODD)));
    const r = await login(createOAuth2, accepting, { account: { basicAuthEncoding: 'plain' } });
    assert.deepEqual(r.ok && r.interop, { basicAuthEncoding: 'plain' });
    assert.equal(accepting.requests.length, 1);
  });
});

describe('every authority that uses Basic', () => {
  test('eta-einvoicing: the same fallback, RFC 6749 first', async () => {
    const http = fakeHttp(...times(2, server(plainPair(ODD))));
    const r = await login(createEtaEinvoicing, http, { authority: 'eta-einvoicing' });
    assert.deepEqual(r.ok && r.interop, { basicAuthEncoding: 'plain' });
    assert.deepEqual(pairs(http), [rfc6749Pair(ODD), plainPair(ODD)]);
    const post = fakeHttp(emptyForbidden());
    failed(await login(createEtaEinvoicing, post, { authority: 'eta-einvoicing', account: { clientAuth: 'client_secret_post' } }));
    assert.equal(post.requests.length, 1);
  });

  test('sepay: its documented plain encoding first, RFC 6749 once when refused', async () => {
    const sepayServer = (pair: string) => (req: HttpRequest): HttpResponse =>
      basicPair(req) === pair
        ? res(200, { success: true, data: TOKEN })
        : res(401, { success: false, error: { code: 'BAD_REQUEST', message: 'sai' } });
    const plain = fakeHttp(sepayServer(plainPair(ODD)));
    const r = await login(createSepay, plain, { authority: 'sepay' });
    assert.deepEqual(r.ok && r.interop, { basicAuthEncoding: 'plain' });
    assert.deepEqual(pairs(plain), [plainPair(ODD)]);

    const sepayOk = sepayServer(rfc6749Pair(ODD));
    const decoding = fakeHttp(sepayOk, sepayOk);
    const d = await login(createSepay, decoding, { authority: 'sepay' });
    assert.deepEqual(d.ok && d.interop, { basicAuthEncoding: 'rfc6749' });
    assert.deepEqual(pairs(decoding), [plainPair(ODD), rfc6749Pair(ODD)]);

    const fixed = fakeHttp(sepayOk);
    failed(await login(createSepay, fixed, { authority: 'sepay', account: { basicAuthEncoding: 'plain' } }));
    assert.equal(fixed.requests.length, 1);
  });
});

describe('hints and secrets', () => {
  test('a refusal with no reason says so and lists the common causes, naming the options', async () => {
    const f = failed(await login(createOAuth2, fakeHttp(emptyForbidden()), { credentials: PLAIN_SAFE }));
    assert.equal(f.reason, 'credentials_rejected');
    assert.equal(f.error, undefined);
    assert.equal(
      f.message,
      'OAuth 2.0 token endpoint rejected the login: HTTP 403 with no reason given (no OAuth error object); common causes: ' +
        'a wrong client ID or secret (provision again); the client may not authenticate with client_secret_basic (try clientAuth client_secret_post); ' +
        'the server requires a scope and none is set (set scope)',
    );
    const post = failed(
      await login(createOAuth2, fakeHttp(emptyForbidden()), { credentials: PLAIN_SAFE, account: { clientAuth: 'client_secret_post', scope: 'a' } }),
    );
    assert.match(post.message, /may not authenticate with client_secret_post \(try clientAuth client_secret_basic\); the scope is not one this client may ask for \(check scope\)$/);
  });

  test('a refusal that gives its reason gets no list of guesses', async () => {
    const f = failed(await login(createOAuth2, fakeHttp(res(400, { error: 'invalid_scope' })), { credentials: PLAIN_SAFE }));
    assert.doesNotMatch(f.message, /common causes/);
  });

  test('a secret the server echoes, as sent or form-encoded, is redacted', async () => {
    const echo = (req: HttpRequest): HttpResponse =>
      res(401, { error: 'invalid_client', error_description: `bad pair ${basicPair(req)}` });
    const f = failed(await login(createOAuth2, fakeHttp(echo, echo)));
    const text = JSON.stringify(f);
    assert.ok(!text.includes(ODD.clientSecret!), text);
    assert.ok(!text.includes(formEncode(ODD.clientSecret!)), text);
  });

  test('through the registry (the scrubbing wrapper) the interop comes back', async () => {
    const authority = authorities.create('oauth2', { http: fakeHttp(...times(2, server(plainPair(ODD)))), now: () => NOW });
    const r = await authority.login({ account: accountFor('oauth2'), credentials: ODD, identity: {} });
    assert.deepEqual(r.ok && r.interop, { basicAuthEncoding: 'plain' });
  });
});
