import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { buildTokenRequest, createEtaEreceipt, parseTokenResponse } from '../../src/authorities/eta-ereceipt/index.js';
import {
  createHttpClient,
  DEFAULT_MAX_RESPONSE_BYTES,
  TransportError,
  type HttpRequest,
  type HttpResponse,
} from '../../src/authorities/http.js';
import { MAX_RETRY_AFTER_MS, parseRetryAfter, transportFailure } from '../../src/authorities/oauth-common.js';
import type { Credentials, LoginFailure, LoginResult } from '../../src/authorities/types.js';
import { type AccountConfig } from '../../src/config/index.js';
import { parseConfig } from '../../src/authorities/index.js';
import { createEmulator, DEMO_DEVICE, type Emulator } from '../../src/emulator/index.js';

const NOW = Date.UTC(2026, 0, 15, 12, 0, 0);
const SERVICE = 'eReceipt identity service';

function accountFor(identityUrl: string, extra: Record<string, unknown> = {}): AccountConfig {
  const cfg = parseConfig(
    {
      accounts: {
        shop: {
          authority: 'eta-ereceipt',
          identityUrl,
          identity: {
            posserial: DEMO_DEVICE.posserial,
            pososversion: DEMO_DEVICE.pososversion,
            posmodelframework: DEMO_DEVICE.posmodelframework,
          },
          ...extra,
        },
      },
    },
    'test',
  );
  return cfg.accounts.shop!;
}

const DEMO_CREDENTIALS: Credentials = {
  clientId: DEMO_DEVICE.clientId,
  clientSecret: DEMO_DEVICE.clientSecrets[0]!,
  presharedKey: DEMO_DEVICE.presharedKey!,
};

function res(status: number, body: unknown, headers: Record<string, string> = {}, contentType = 'application/json'): HttpResponse {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  return { status, headers: { 'content-type': contentType, ...headers }, body: Buffer.from(text, 'utf8') };
}

function jwt(claims: Record<string, unknown>): string {
  const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');
  return `${b64({ alg: 'RS256', typ: 'JWT' })}.${b64(claims)}.c2lnbmF0dXJl`;
}

function failed(r: LoginResult): LoginFailure {
  assert.equal(r.ok, false, `expected a failure, got ${JSON.stringify(r)}`);
  return (r as { ok: false; failure: LoginFailure }).failure;
}

describe('buildTokenRequest', () => {
  const account = accountFor('https://id.eta.gov.eg/', { timeouts: { responseMs: 1234 } });

  test('produces exactly the documented wire', () => {
    const req = buildTokenRequest(
      account,
      { clientId: 'cid-1', clientSecret: 's3cr3t&=+ /', presharedKey: 'psk-1' },
      { posserial: 'SER-1', pososversion: 'os', posmodelframework: '1' },
    );
    assert.equal(req.method, 'POST');
    assert.equal(req.url, 'https://id.eta.gov.eg/connect/token');
    assert.deepEqual(req.headers, {
      'content-type': 'application/x-www-form-urlencoded',
      accept: 'application/json',
      posserial: 'SER-1',
      pososversion: 'os',
      posmodelframework: '1',
      presharedkey: 'psk-1',
    });
    const form = new URLSearchParams(req.body);
    assert.deepEqual([...form.keys()], ['grant_type', 'client_id', 'client_secret']);
    assert.equal(form.get('grant_type'), 'client_credentials');
    assert.equal(form.get('client_id'), 'cid-1');
    assert.equal(form.get('client_secret'), 's3cr3t&=+ /');
    assert.equal(form.has('scope'), false);
    assert.equal(req.body, 'grant_type=client_credentials&client_id=cid-1&client_secret=s3cr3t%26%3D%2B+%2F');
    assert.deepEqual(req.timeouts, { connectMs: 5_000, responseMs: 1234, totalMs: 30_000 });
    assert.equal(req.maxResponseBytes, DEFAULT_MAX_RESPONSE_BYTES);
    assert.equal(req.signal, undefined);
    assert.deepEqual(req.tls, { legacyServerConnect: false });
  });

  test("the account's extra headers and TLS options go along; the agent's own headers win", () => {
    const withExtras = accountFor('https://id.eta.gov.eg', {
      headers: { 'X-Till-Vendor': 'acme', Accept: 'text/plain' },
      tls: { legacyServerConnect: true, caFile: '/etc/ssl/eta.pem' },
    });
    const req = buildTokenRequest(withExtras, { clientId: 'cid', clientSecret: 'sec' }, { posserial: 'S' });
    assert.deepEqual(req.headers, {
      'x-till-vendor': 'acme',
      'content-type': 'application/x-www-form-urlencoded',
      accept: 'application/json',
      posserial: 'S',
    });
    assert.deepEqual(req.tls, { legacyServerConnect: true, caFile: '/etc/ssl/eta.pem' });
  });

  test('headers whose value is undefined or empty are left out', () => {
    const req = buildTokenRequest(
      account,
      { clientId: 'cid', clientSecret: 'sec', presharedKey: '' },
      { posserial: 'SER-2', pososversion: '' },
    );
    assert.deepEqual(req.headers, {
      'content-type': 'application/x-www-form-urlencoded',
      accept: 'application/json',
      posserial: 'SER-2',
    });
    const bare = buildTokenRequest(account, { clientId: 'cid', clientSecret: 'sec' }, {});
    assert.deepEqual(Object.keys(bare.headers).sort(), ['accept', 'content-type']);
  });
});

describe('parseTokenResponse', () => {
  test('200 with a standard answer', () => {
    const r = parseTokenResponse(
      res(200, { access_token: 'tok.en-1', token_type: 'Bearer', expires_in: 3600, scope: 'InvoicingAPI' }, {}, 'application/json; charset=utf-8'),
      NOW,
    );
    assert.deepEqual(r, { ok: true, token: { accessToken: 'tok.en-1', tokenType: 'Bearer', expiresInS: 3600, scope: 'InvoicingAPI' } });
  });

  test('200 with expires_in as a numeric string and lower-case token_type', () => {
    const r = parseTokenResponse(res(200, { access_token: 'abc', token_type: 'bearer', expires_in: '1800' }), NOW);
    assert.deepEqual(r, { ok: true, token: { accessToken: 'abc', tokenType: 'Bearer', expiresInS: 1800 } });
  });

  test('200 without expires_in takes the lifetime from the JWT iat/exp', () => {
    const token = jwt({ iat: 1_700_000_000, exp: 1_700_000_000 + 900, sub: 'x' });
    const r = parseTokenResponse(res(200, { access_token: token, token_type: 'Bearer' }), NOW);
    assert.deepEqual(r, { ok: true, token: { accessToken: token, tokenType: 'Bearer', expiresInS: 900 } });
  });

  test('200 without expires_in and no JWT is upstream_unavailable', () => {
    const f = failed(parseTokenResponse(res(200, { access_token: 'opaque', token_type: 'Bearer' }), NOW));
    assert.equal(f.reason, 'upstream_unavailable');
    assert.equal(f.code, 'ERR_UPSTREAM_UNAVAILABLE');
    assert.equal(f.httpStatus, 200);
    assert.equal(f.message, `${SERVICE} answered 200 with an answer without a usable expires_in (and no exp/iat in the token)`);
  });

  test('200 with a JWT lacking iat is upstream_unavailable', () => {
    const f = failed(parseTokenResponse(res(200, { access_token: jwt({ exp: 2_000_000_000 }) }), NOW));
    assert.equal(f.reason, 'upstream_unavailable');
  });

  test('200 with a content type that is not JSON', () => {
    const f = failed(parseTokenResponse(res(200, { access_token: 'a', expires_in: 60 }, {}, 'text/html'), NOW));
    assert.equal(f.reason, 'upstream_unavailable');
    assert.equal(f.httpStatus, 200);
    assert.equal(f.message, `${SERVICE} answered 200 with Content-Type "text/html" instead of JSON`);
  });

  test('200 with broken JSON', () => {
    const f = failed(parseTokenResponse(res(200, '{"access_token": "eyJhbGciOi'), NOW));
    assert.equal(f.reason, 'upstream_unavailable');
    assert.equal(f.message, `${SERVICE} answered 200 with a body that is not valid JSON`);
  });

  test('200 with token_type other than Bearer', () => {
    const f = failed(parseTokenResponse(res(200, { access_token: 'a', token_type: 'MAC', expires_in: 60 }), NOW));
    assert.equal(f.reason, 'upstream_unavailable');
    assert.equal(f.message, `${SERVICE} answered 200 with token_type "MAC" instead of Bearer`);
  });

  test('200 with an access_token containing a newline', () => {
    const f = failed(parseTokenResponse(res(200, { access_token: 'abc\ndef', token_type: 'Bearer', expires_in: 60 }), NOW));
    assert.equal(f.reason, 'upstream_unavailable');
    assert.match(f.message, /characters not allowed in a header/);
    assert.ok(!f.message.includes('abc'), 'the token is not echoed');
  });

  test('200 without access_token, and with an out-of-range expires_in', () => {
    assert.match(failed(parseTokenResponse(res(200, { token_type: 'Bearer', expires_in: 60 }), NOW)).message, /without access_token$/);
    assert.match(failed(parseTokenResponse(res(200, { access_token: 'a', expires_in: 0 }), NOW)).message, /expires_in 0 out of range$/);
    assert.match(failed(parseTokenResponse(res(200, [1, 2]), NOW)).message, /not a JSON object$/);
  });

  test('400 {error, error_description} is credentials_rejected keeping both verbatim', () => {
    const f = failed(
      parseTokenResponse(
        res(400, { error: 'invalid_presharedkey', error_description: 'header presharedkey does not match the key registered for this POS' }),
        NOW,
      ),
    );
    assert.deepEqual(f, {
      reason: 'credentials_rejected',
      code: 'ERR_CREDENTIALS_REJECTED',
      message: `${SERVICE} rejected the login: invalid_presharedkey (header presharedkey does not match the key registered for this POS)`,
      httpStatus: 400,
      error: 'invalid_presharedkey',
      errorDescription: 'header presharedkey does not match the key registered for this POS',
    });
  });

  test('400 without a JSON body is credentials_rejected without error fields', () => {
    const f = failed(parseTokenResponse(res(400, '<html>Bad Request</html>', {}, 'text/html'), NOW));
    assert.deepEqual(f, {
      reason: 'credentials_rejected',
      code: 'ERR_CREDENTIALS_REJECTED',
      message: `${SERVICE} rejected the login: HTTP 400 with no reason given (no OAuth error object)`,
      httpStatus: 400,
    });
  });

  test('401 with invalid_client', () => {
    const f = failed(parseTokenResponse(res(401, { error: 'invalid_client' }), NOW));
    assert.equal(f.reason, 'credentials_rejected');
    assert.equal(f.httpStatus, 401);
    assert.equal(f.error, 'invalid_client');
    assert.equal(f.errorDescription, undefined);
    assert.equal(f.message, `${SERVICE} rejected the login: invalid_client; check clientId and clientSecret (provision again)`);
  });

  test('429 with Retry-After in seconds', () => {
    const f = failed(parseTokenResponse(res(429, { error: 'rate_limited' }, { 'retry-after': '42' }), NOW));
    assert.deepEqual(f, {
      reason: 'rate_limited',
      code: 'ERR_RATE_LIMITED',
      message: `${SERVICE} is rate limiting logins (429)`,
      httpStatus: 429,
      error: 'rate_limited',
      retryAfterMs: 42_000,
    });
  });

  test('429 with Retry-After as an HTTP date, relative to now', () => {
    const when = new Date(NOW + 90_000).toUTCString();
    const f = failed(parseTokenResponse(res(429, '', { 'retry-after': when }, 'text/plain'), NOW));
    assert.equal(f.reason, 'rate_limited');
    assert.equal(f.retryAfterMs, 90_000);
  });

  test('429 without Retry-After has no retryAfterMs', () => {
    const f = failed(parseTokenResponse(res(429, ''), NOW));
    assert.equal(f.reason, 'rate_limited');
    assert.equal('retryAfterMs' in f, false);
  });

  for (const status of [500, 502, 503]) {
    test(`${status} is upstream_unavailable`, () => {
      const f = failed(parseTokenResponse(res(status, '<h1>down</h1>', {}, 'text/html'), NOW));
      assert.deepEqual(f, {
        reason: 'upstream_unavailable',
        code: 'ERR_UPSTREAM_UNAVAILABLE',
        message: `${SERVICE} answered HTTP ${status}`,
        httpStatus: status,
      });
    });
  }

  test('503 with Retry-After keeps retryAfterMs', () => {
    const f = failed(parseTokenResponse(res(503, { error: 'server_error' }, { 'retry-after': '120' }), NOW));
    assert.equal(f.reason, 'upstream_unavailable');
    assert.equal(f.retryAfterMs, 120_000);
  });

  test('404 is upstream_unavailable mentioning identityUrl', () => {
    const f = failed(parseTokenResponse(res(404, 'Not Found', { 'retry-after': '5' }, 'text/plain'), NOW));
    assert.equal(f.reason, 'upstream_unavailable');
    assert.equal(f.httpStatus, 404);
    assert.equal(f.message, `${SERVICE} answered HTTP 404 (check identityUrl): Not Found`);
    assert.equal('retryAfterMs' in f, false, 'Retry-After is only honoured on 5xx and 429');
  });
});

describe('parseRetryAfter', () => {
  const cases: Array<[string | undefined, number | undefined]> = [
    [undefined, undefined],
    ['0', 0],
    ['1', 1_000],
    ['  30 ', 30_000],
    ['3600', 3_600_000],
    ['3601', MAX_RETRY_AFTER_MS],
    ['99999999999999999999', MAX_RETRY_AFTER_MS],
    [new Date(NOW + 10_000).toUTCString(), 10_000],
    [new Date(NOW - 10_000).toUTCString(), 0],
    [new Date(NOW + 5 * 3_600_000).toUTCString(), MAX_RETRY_AFTER_MS],
    ['', undefined],
    ['soon', undefined],
    ['12abc', undefined],
    ['0x10', undefined],
  ];
  for (const [input, expected] of cases) {
    test(`${JSON.stringify(input)} -> ${String(expected)}`, () => {
      assert.equal(parseRetryAfter(input, NOW), expected);
    });
  }

  test(
    'garbage that Date.parse happens to accept is unreadable, not "retry now"',
    () => {
      for (const garbage of ['-5', '1.5', 'abc 1']) {
        assert.equal(parseRetryAfter(garbage, NOW), undefined, JSON.stringify(garbage));
      }
    },
  );
});

describe('transportFailure', () => {
  test('a TransportError becomes upstream_unavailable with its message', () => {
    const f = failed(transportFailure(new TransportError('timeout', 'timed out talking to x'), SERVICE));
    assert.deepEqual(f, {
      reason: 'upstream_unavailable',
      code: 'ERR_UPSTREAM_UNAVAILABLE',
      message: `${SERVICE} unreachable: timed out talking to x`,
    });
    assert.equal(failed(transportFailure(new Error('secret stuff'), SERVICE)).message, `${SERVICE} unreachable: unexpected error`);
  });
});

describe('createHttpClient against local servers', () => {
  let server: Server;
  let base: string;
  const sockets = new Set<import('node:net').Socket>();

  before(async () => {
    server = createServer((req, res) => {
      req.resume();
      switch (req.url) {
        case '/ok':
          res.writeHead(201, { 'content-type': 'application/json', 'x-test': 'yes' });
          res.end(JSON.stringify({ method: req.method, ct: req.headers['content-type'], ua: req.headers['user-agent'] }));
          return;
        case '/huge': {
          res.writeHead(200, { 'content-type': 'application/json' });
          const chunk = Buffer.alloc(16 * 1024, 0x61);
          let sent = 0;
          const pump = (): void => {
            while (sent < 1024 * 1024 && !res.destroyed) {
              sent += chunk.length;
              if (!res.write(chunk)) {
                res.once('drain', pump);
                return;
              }
            }
            res.end();
          };
          pump();
          return;
        }
        case '/never':
          return; // no answer at all
        case '/cut':
          res.writeHead(200, { 'content-type': 'application/json', 'content-length': '1000' });
          res.write('{"access_token":"abc');
          setTimeout(() => res.socket?.destroy(), 20);
          return;
        case '/redirect':
          res.writeHead(302, { location: '/ok' });
          res.end();
          return;
        default:
          res.writeHead(404);
          res.end();
      }
    });
    server.on('connection', (s) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  const request = (path: string, extra: Partial<HttpRequest> = {}): HttpRequest => ({
    url: `${base}${path}`,
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: 'a=1',
    timeouts: { connectMs: 1_000, responseMs: 300, totalMs: 5_000 },
    maxResponseBytes: DEFAULT_MAX_RESPONSE_BYTES,
    ...extra,
  });

  async function transportError(p: Promise<unknown>): Promise<TransportError> {
    try {
      await p;
    } catch (err) {
      assert.ok(err instanceof TransportError, `expected TransportError, got ${String(err)}`);
      assert.equal(err.code, 'ERR_TRANSPORT');
      return err;
    }
    assert.fail('expected the request to fail');
  }

  test('resolves with any status, the headers and the raw body', async () => {
    const r = await createHttpClient().request(request('/ok'));
    assert.equal(r.status, 201);
    assert.equal(r.headers['x-test'], 'yes');
    assert.deepEqual(JSON.parse(r.body.toString('utf8')), {
      method: 'POST',
      ct: 'application/x-www-form-urlencoded',
      ua: 'pos-token-agent',
    });
    const nf = await createHttpClient().request(request('/nope'));
    assert.equal(nf.status, 404);
  });

  test('redirects are not followed', async () => {
    const r = await createHttpClient().request(request('/redirect'));
    assert.equal(r.status, 302);
    assert.equal(r.headers.location, '/ok');
  });

  test('an answer larger than maxResponseBytes is too_large', async () => {
    const err = await transportError(createHttpClient().request(request('/huge', { maxResponseBytes: 32 * 1024 })));
    assert.equal(err.kind, 'too_large');
    assert.equal(err.message, 'answer larger than 32768 bytes');
  });

  test('a server that never answers is a timeout within responseMs', async () => {
    const started = performance.now();
    const err = await transportError(createHttpClient().request(request('/never')));
    const took = performance.now() - started;
    assert.equal(err.kind, 'timeout');
    assert.match(err.message, /^timed out/);
    assert.ok(err.message.includes(`${base}/never`), err.message);
    assert.ok(took >= 250 && took < 2_000, `took ${took} ms`);
  });

  test('a refused connection is network', async () => {
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const err = await transportError(createHttpClient().request(request('/x', { url: `http://127.0.0.1:${port}/connect/token` })));
    assert.equal(err.kind, 'network');
    assert.equal(err.message, `ECONNREFUSED talking to http://127.0.0.1:${port}/connect/token`);
  });

  test('a socket destroyed mid-answer is network', async () => {
    const err = await transportError(createHttpClient().request(request('/cut')));
    assert.equal(err.kind, 'network');
  });

  test('an aborted signal is aborted', async () => {
    const ac = new AbortController();
    const p = createHttpClient().request(request('/never', { signal: ac.signal }));
    setTimeout(() => ac.abort(), 20);
    const err = await transportError(p);
    assert.equal(err.kind, 'aborted');
  });
});

describe('createEtaEreceipt against the emulator', () => {
  let em: Emulator;
  let account: AccountConfig;

  before(async () => {
    em = createEmulator({ devices: [DEMO_DEVICE] });
    await em.start();
    account = accountFor(em.url);
  });

  after(async () => {
    await em.stop();
  });

  const authority = () => createEtaEreceipt({ http: createHttpClient(), now: () => Date.now() });
  const login = (credentials: Credentials = DEMO_CREDENTIALS) =>
    authority().login({ account, credentials, identity: account.identity });

  test('declares its credential fields', () => {
    const a = authority();
    assert.equal(a.name, 'eta-ereceipt');
    assert.deepEqual(
      a.credentialFields.map((f) => [f.name, f.secret, f.required]),
      [
        ['clientId', false, true],
        ['clientSecret', true, true],
        ['presharedKey', true, false],
      ],
    );
  });

  test('a good login gets a Bearer JWT with the emulator lifetime', async () => {
    em.resetStats();
    const r = await login();
    assert.equal(r.ok, true, JSON.stringify(r));
    if (!r.ok) return;
    assert.equal(r.token.tokenType, 'Bearer');
    assert.equal(r.token.expiresInS, 3600);
    assert.equal(r.token.scope, 'InvoicingAPI');
    assert.equal(r.token.accessToken.split('.').length, 3);
    const stats = em.stats();
    assert.equal(stats.issued, 1);
    assert.equal(stats.lastRequestHeaders?.posserial, DEMO_DEVICE.posserial);
    assert.equal(stats.lastRequestHeaders?.pososversion, 'os');
    assert.equal(stats.lastRequestHeaders?.posmodelframework, '1');
    assert.equal(stats.lastRequestHeaders?.presharedkey, '[redacted]');
  });

  test('missing clientSecret fails without a request', async () => {
    em.resetStats();
    const f = failed(await login({ clientId: DEMO_DEVICE.clientId }));
    assert.equal(f.reason, 'credentials_rejected');
    assert.equal(em.stats().requests, 0);
  });

  test('a wrong preshared key is credentials_rejected with invalid_presharedkey', async () => {
    const f = failed(await login({ ...DEMO_CREDENTIALS, presharedKey: 'wrong-psk' }));
    assert.equal(f.reason, 'credentials_rejected');
    assert.equal(f.httpStatus, 400);
    assert.equal(f.error, 'invalid_presharedkey');
    assert.equal(f.errorDescription, 'header presharedkey does not match the key registered for this POS');
    assert.ok(!f.message.includes('wrong-psk'));
  });

  test('fault fail5xx is upstream_unavailable (JSON and HTML bodies)', async () => {
    em.setFaults({ fail5xx: 2 });
    for (let i = 0; i < 2; i++) {
      const f = failed(await login());
      assert.equal(f.reason, 'upstream_unavailable');
      assert.equal(f.httpStatus, 503);
    }
    assert.equal((await login()).ok, true);
  });

  test('fault rateLimit is rate_limited with retryAfterMs', async () => {
    em.setFaults({ rateLimit: { count: 1, retryAfter: '17' } });
    const f = failed(await login());
    assert.equal(f.reason, 'rate_limited');
    assert.equal(f.httpStatus, 429);
    assert.equal(f.retryAfterMs, 17_000);
  });

  test('fault drop is upstream_unavailable', async () => {
    em.setFaults({ drop: 1 });
    const f = failed(await login());
    assert.equal(f.reason, 'upstream_unavailable');
    assert.equal(f.httpStatus, undefined);
    assert.match(f.message, new RegExp(`^${SERVICE} unreachable: `));
    assert.equal((await login()).ok, true);
  });
});
