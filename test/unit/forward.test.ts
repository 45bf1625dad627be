/**
 * forward/: the target under apiUrl (every escape refused), the headers that cross, and the sender against a
 * real HTTP server: the token injected, one forced login and one resend on a 401, a deadline per phase.
 */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { DEFAULTS } from '../../src/config/index.js';
import {
  createForwarder,
  createTargetResolver,
  refusedHeader,
  isForwardableHeader,
  requestHeadersOut,
  resolveTarget,
  responseHeadersBack,
  type ForwardAccount,
  type ForwardTokenSource,
} from '../../src/forward/index.js';
import type { TokenAnswer } from '../../src/tokens/index.js';

describe('resolveTarget: only paths under apiUrl', () => {
  const api = 'https://api.example.eg/base';
  const ok: Array<[string, string]> = [
    ['/api/v1/receiptsubmissions', 'https://api.example.eg/base/api/v1/receiptsubmissions'],
    ['/a/b?x=1&y=%2F', 'https://api.example.eg/base/a/b?x=1&y=%2F'],
    ['?q=1', 'https://api.example.eg/base?q=1'],
    ['', 'https://api.example.eg/base'],
    ['/a%20b/c', 'https://api.example.eg/base/a%20b/c'],
    ['/documents/...', 'https://api.example.eg/base/documents/...'],
  ];
  for (const [rest, want] of ok) {
    test(`${JSON.stringify(rest)} -> ${want}`, () => {
      const r = resolveTarget(api, rest);
      assert.ok(r.ok, r.ok ? '' : r.message);
      assert.equal(r.url.href, want);
    });
  }
  const refused: Array<[string, RegExp]> = [
    ['/../secret', /"\." or "\.\." segment/],
    ['/a/../../x', /segment/],
    ['/a/./b', /segment/],
    ['/%2e%2e/x', /encoded/],
    ['/%2E%2e/x', /encoded/],
    ['/a%2fb', /encoded slash/],
    ['/a%5Cb', /encoded/],
    ['/a\\b', /backslash/],
    ['//evil.example/x', /must not start with "\/\/"/],
    ['http://evil.example/x', /absolute URL/],
    ['evil.example/x', /absolute URL/],
    ['/a\r\nHost: evil', /control character/],
    ['/a%0d%0aX: y', /encoded/],
    ['/a%00', /encoded/],
    ['/a%zz', /malformed percent/],
    ['/a\u0000', /control/],
  ];
  for (const [rest, why] of refused) {
    test(`refused: ${JSON.stringify(rest)}`, () => {
      const r = resolveTarget(api, rest);
      assert.equal(r.ok, false);
      assert.match((r as { message: string }).message, why);
    });
  }
  test('an apiUrl without a path takes any path on its origin, and only there', () => {
    const r = resolveTarget('http://127.0.0.1:9/', '/x?y');
    assert.ok(r.ok);
    assert.equal(r.url.href, 'http://127.0.0.1:9/x?y');
    assert.equal(resolveTarget('http://127.0.0.1:9', '@evil.example/x').ok, false);
  });
});

describe('createTargetResolver: resolveTarget with its answers kept', () => {
  test('answers as resolveTarget does, refusals included, per apiUrl', () => {
    const resolve = createTargetResolver();
    for (const [api, rest] of [
      ['https://api.example/base/', '/v1/x?y=1'],
      ['https://api.example/base/', '/../etc'],
      ['https://api.example/base/', '/%2e%2e/etc'],
      ['http://127.0.0.1:9/', '/x'],
      ['https://other.example/', '/v1/x?y=1'],
    ] as const) {
      for (let i = 0; i < 2; i++) assert.deepEqual(resolve(api, rest), resolveTarget(api, rest), `${api} ${rest}`);
    }
    const a = resolve('https://api.example/base/', '/v1/x?y=1');
    const b = resolve('https://other.example/', '/v1/x?y=1');
    assert.ok(a.ok && b.ok);
    assert.equal(a.url.origin, 'https://api.example');
    assert.equal(b.url.origin, 'https://other.example');
  });

  test('keeps a bounded number of paths: old ones are resolved again, still right', () => {
    const resolve = createTargetResolver();
    const first = resolve('http://127.0.0.1:9/', '/p0');
    assert.equal(resolve('http://127.0.0.1:9/', '/p0'), first, 'the kept answer is given again');
    for (let i = 1; i <= 200; i++) resolve('http://127.0.0.1:9/', `/p${i}`);
    const again = resolve('http://127.0.0.1:9/', '/p0');
    assert.notEqual(again, first, 'dropped after 64 newer paths');
    assert.deepEqual(again, first);
  });
});

describe('refusedHeader', () => {
  test('names the first credential-bearing header a till sent, or none', () => {
    assert.equal(refusedHeader({ host: 'x' }), undefined);
    assert.equal(refusedHeader({ authorization: 'Bearer t' }), 'authorization');
    assert.equal(refusedHeader({ cookie: 'a=b' }), 'cookie');
    assert.equal(refusedHeader({ 'proxy-authorization': 'Basic x' }), 'proxy-authorization');
    assert.equal(refusedHeader({ authorization: '' }), 'authorization');
  });
});

describe('headers across the proxy', () => {
  test('hop-by-hop, Connection-listed and agent-owned headers are dropped on the way out', () => {
    const out = requestHeadersOut({
      host: 'localhost',
      connection: 'keep-alive, x-secret-hop',
      'keep-alive': 'timeout=5',
      'x-secret-hop': '1',
      'transfer-encoding': 'chunked',
      te: 'trailers',
      upgrade: 'websocket',
      'x-pos-agent': '1',
      'content-length': '5',
      'content-type': 'application/json',
      'x-request-id': 'abc',
      accept: 'application/json',
    });
    assert.deepEqual(out, { 'content-type': 'application/json', 'x-request-id': 'abc', accept: 'application/json' });
  });
  test('the answer keeps its own headers, less hop-by-hop ones', () => {
    const back = responseHeadersBack({
      'content-type': 'application/json',
      'content-length': '10',
      connection: 'close, x-hop',
      'x-hop': 'y',
      'transfer-encoding': 'chunked',
      correlationid: 'c-1',
    });
    assert.deepEqual(back, { 'content-type': 'application/json', 'content-length': '10', correlationid: 'c-1' });
  });
  test("the API's answer never carries the agent's own answer headers back (X-Pos-Agent-Error would pass it off as the agent's)", () => {
    const back = responseHeadersBack({ 'x-pos-agent-error': 'token_unavailable', 'x-pos-agent-attempts': '9', 'retry-after': '30' });
    assert.deepEqual(back, { 'retry-after': '30' });
  });
  test('an outbox entry may not set what the agent sets or what carries credentials', () => {
    for (const h of ['Authorization', 'cookie', 'Host', 'content-length', 'Connection', 'proxy-authorization', 'content-type', 'X-Pos-Agent']) {
      assert.equal(isForwardableHeader(h), false, h);
    }
    for (const h of ['x-request-id', 'Accept-Language', 'onbehalfof']) assert.equal(isForwardableHeader(h), true, h);
  });
});

/** A token source that hands out tok-1, tok-2, ... and counts forced logins. */
class Tokens implements ForwardTokenSource {
  current = 'tok-1';
  refreshes = 0;
  unavailable = false;
  async getToken(account: string): Promise<TokenAnswer> {
    if (this.unavailable) {
      return { ok: false, error: { kind: 'unavailable', reason: 'upstream_unavailable', message: 'offline', retryAfterS: 7 } };
    }
    return this.answer(account);
  }
  private login: Promise<void> | undefined;
  /** As the token manager does: the rejected token is dropped once, and every waiter shares that one login. */
  async refresh(account: string, rejected: string): Promise<TokenAnswer> {
    if (rejected === this.current) {
      this.login ??= (async () => {
        this.refreshes += 1;
        await new Promise((r) => setTimeout(r, 20));
        this.current = `tok-${Number(this.current.slice(4)) + 1}`;
        this.login = undefined;
      })();
      await this.login;
    }
    return this.answer(account);
  }
  private answer(account: string): TokenAnswer {
    return {
      ok: true,
      token: { accessToken: this.current, tokenType: 'Bearer', expiresIn: 3600, expiresAt: '2030-01-01T00:00:00.000Z', account, scope: null },
    };
  }
}

describe('the sender against a real server', () => {
  let server: Server;
  let base: string;
  /** Which token the server accepts; requests seen. */
  let valid = 'tok-1';
  const seen: Array<{ method: string; url: string; auth: string | undefined; body: string }> = [];
  let handler: ((req: IncomingMessage, res: ServerResponse, body: string) => void) | undefined;

  before(async () => {
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString();
        seen.push({ method: req.method!, url: req.url!, auth: req.headers.authorization, body });
        if (handler) return handler(req, res, body);
        if (req.headers.authorization !== `Bearer ${valid}`) {
          res.writeHead(401, { 'www-authenticate': 'Bearer error="invalid_token"' }).end('{"error":"expired"}');
          return;
        }
        res.writeHead(202, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: true, body }));
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  const account = (over: Partial<ForwardAccount['api']> = {}): ForwardAccount => ({
    name: 'default',
    apiUrl: base,
    api: { ...DEFAULTS.api, ...over },
    tls: { legacyServerConnect: false },
  });
  const read = async (body: NodeJS.ReadableStream) => {
    let text = '';
    for await (const c of body) text += c.toString();
    return text;
  };

  test('the token is injected and the answer comes back with attempts 1', async () => {
    seen.length = 0;
    handler = undefined;
    valid = 'tok-1';
    const tokens = new Tokens();
    const f = createForwarder({ tokens });
    const r = await f.forward({ account: account(), method: 'POST', url: new URL(`${base}/api/x`), headers: { 'content-type': 'application/json' }, body: Buffer.from('{"a":1}') });
    assert.ok(r.ok);
    assert.equal(r.status, 202);
    assert.equal(r.attempts, 1);
    assert.deepEqual(JSON.parse(await read(r.body)), { ok: true, body: '{"a":1}' });
    assert.deepEqual(seen, [{ method: 'POST', url: '/api/x', auth: 'Bearer tok-1', body: '{"a":1}' }]);
    f.close();
  });

  test('a 401 drops the token, one forced login is shared by every waiter, each request is sent again once', async () => {
    seen.length = 0;
    handler = undefined;
    valid = 'tok-2'; // the API revoked tok-1
    const tokens = new Tokens();
    const f = createForwarder({ tokens });
    const results = await Promise.all(
      Array.from({ length: 5 }, (_, i) =>
        f.forward({ account: account(), method: 'POST', url: new URL(`${base}/api/${i}`), headers: {}, body: Buffer.from(String(i)) }),
      ),
    );
    assert.equal(tokens.refreshes, 1);
    for (const r of results) {
      assert.ok(r.ok);
      assert.equal(r.status, 202);
      assert.equal(r.attempts, 2);
      await read(r.body);
    }
    assert.equal(seen.filter((s) => s.auth === 'Bearer tok-1').length, 5);
    assert.equal(seen.filter((s) => s.auth === 'Bearer tok-2').length, 5);
    f.close();
  });

  test('a 401 after the forced login is passed back as it is: no third send', async () => {
    seen.length = 0;
    handler = (_req, res) => res.writeHead(401).end('no');
    const tokens = new Tokens();
    const f = createForwarder({ tokens });
    const r = await f.forward({ account: account(), method: 'GET', url: new URL(`${base}/a`), headers: {} });
    assert.ok(r.ok);
    assert.equal(r.status, 401);
    assert.equal(r.attempts, 2);
    await read(r.body);
    assert.equal(seen.length, 2);
    f.close();
  });

  test('no usable token: the token manager\'s answer, nothing sent', async () => {
    seen.length = 0;
    handler = undefined;
    const tokens = new Tokens();
    tokens.unavailable = true;
    const f = createForwarder({ tokens });
    const r = await f.forward({ account: account(), method: 'GET', url: new URL(`${base}/a`), headers: {} });
    assert.equal(r.ok, false);
    assert.equal((r as { kind: string }).kind, 'token');
    assert.equal(seen.length, 0);
    f.close();
  });

  test('an API that answers too slowly is a timeout; one that is not there is unreachable', async () => {
    handler = (_req, res) => setTimeout(() => res.writeHead(200).end('late'), 1_000);
    const f = createForwarder({ tokens: new Tokens() });
    const slow = await f.forward({ account: account({ responseMs: 100 }), method: 'GET', url: new URL(`${base}/slow`), headers: {} });
    assert.equal(slow.ok, false);
    assert.equal((slow as { kind: string }).kind, 'timeout');
    assert.match((slow as { message: string }).message, /within 100 ms/);
    const closed = await f.forward({ account: account(), method: 'GET', url: new URL('http://127.0.0.1:9/x'), headers: {} });
    assert.equal(closed.ok, false);
    assert.equal((closed as { kind: string }).kind, 'unreachable');
    assert.match((closed as { message: string }).message, /ECONNREFUSED/);
    f.close();
  });

  test('a body that trickles past the total deadline is cut', async () => {
    handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('start');
      setTimeout(() => res.end('end'), 1_000);
    };
    const f = createForwarder({ tokens: new Tokens() });
    const r = await f.forward({ account: account({ totalMs: 150 }), method: 'GET', url: new URL(`${base}/trickle`), headers: {} });
    assert.ok(r.ok);
    await assert.rejects(read(r.body));
    f.close();
  });
});
