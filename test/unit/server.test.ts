import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { lstatSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { Agent, request, type IncomingHttpHeaders } from 'node:http';
import { connect, createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, beforeEach, describe, test } from 'node:test';
import { FakeClock } from '../../src/lib/clock.js';
import { silentLogger } from '../../src/lib/log.js';
import { createMetrics } from '../../src/lib/metrics.js';
import { createAgentServer, type AgentServer, type TokenSource } from '../../src/server/index.js';
import type { AccountStatusBody } from '../../src/api/index.js';
import type { AccountStatus, ServedToken, TokenAnswer } from '../../src/tokens/index.js';

const LIMITS = { maxConnections: 64, headersTimeoutMs: 2_000, idleTimeoutMs: 5_000 };
const AGENT_HEADER = { 'x-pos-agent': '1' };

const GOOD_TOKEN: ServedToken = {
  accessToken: 'eyJ.token.value',
  tokenType: 'Bearer',
  expiresIn: 3541,
  expiresAt: '2026-01-01T01:00:00.000Z',
  account: 'default',
  scope: 'InvoicingAPI',
};
const GOOD: TokenAnswer = { ok: true, token: GOOD_TOKEN };

/** What /v1/status answers for STATUS_VIEW, the manager's view the fake source gives. */
const STATUS: Record<string, AccountStatusBody> = {
  default: {
    authority: 'eta-ereceipt',
    state: 'fresh',
    expires_at: '2026-01-01T01:00:00.000Z',
    last_login_at: '2026-01-01T00:10:00.000Z',
    last_success_at: '2026-01-01T00:00:00.000Z',
    last_error: null,
    identity: {
      posserial: 'SER-1',
      pososversion: null,
      posmodelframework: null,
      profile: null,
      sources: { posserial: 'config' },
      degraded: false,
      problems: {},
      read_at: null,
    },
    next_attempt_in_s: null,
  },
};

const STATUS_VIEW: Record<string, AccountStatus> = {
  default: {
    authority: 'eta-ereceipt',
    state: 'fresh',
    expiresAtWall: Date.parse('2026-01-01T01:00:00.000Z'),
    lastLoginAtWall: Date.parse('2026-01-01T00:10:00.000Z'),
    lastSuccessAtWall: Date.parse('2026-01-01T00:00:00.000Z'),
    lastError: null,
    identity: {
      posserial: 'SER-1',
      pososversion: null,
      posmodelframework: null,
      profile: null,
      sources: { posserial: 'config' },
      degraded: false,
      problems: {},
      readAtWall: null,
    },
    nextAttemptInS: null,
  },
};

type Call = { method: 'getToken'; account: string; minTtlS: number } | { method: 'refresh'; account: string; rejected: string; minTtlS: number };

class FakeSource implements TokenSource {
  calls: Call[] = [];
  answer: TokenAnswer = GOOD;
  failing: string[] = [];
  statusCalls = 0;

  async getToken(account: string, minTtlS: number): Promise<TokenAnswer> {
    this.calls.push({ method: 'getToken', account, minTtlS });
    return this.answer;
  }
  async refresh(account: string, rejectedToken: string, minTtlS: number): Promise<TokenAnswer> {
    this.calls.push({ method: 'refresh', account, rejected: rejectedToken, minTtlS });
    return this.answer;
  }
  status(): Record<string, AccountStatus> {
    this.statusCalls++;
    return STATUS_VIEW;
  }
  unhealthy(): string[] {
    return this.failing;
  }
}

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
  json: Record<string, unknown>;
  reusedSocket: boolean;
}

function ask(
  socketPath: string,
  path: string,
  options: { method?: string; headers?: Record<string, string | number>; body?: string | Buffer; agent?: Agent } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        socketPath,
        path,
        method: options.method ?? 'GET',
        headers: options.headers ?? AGENT_HEADER,
        agent: options.agent ?? false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: Record<string, unknown> = {};
          if (/json/.test(res.headers['content-type'] ?? '') && text) json = JSON.parse(text) as Record<string, unknown>;
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json, reusedSocket: req.reusedSocket });
        });
      },
    );
    req.on('error', reject);
    req.end(options.body);
  });
}

function post(socketPath: string, body: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  return ask(socketPath, '/v1/token/refresh', {
    method: 'POST',
    headers: { ...AGENT_HEADER, 'content-type': 'application/json', ...headers },
    body: text,
  });
}

function assertError(a: Answer, status: number, error: string): void {
  assert.equal(a.status, status, a.text);
  assert.equal(a.headers['content-type'], 'application/json');
  assert.equal(a.headers['cache-control'], 'no-store');
  assert.equal(a.json.error, error, a.text);
  assert.equal(typeof a.json.message, 'string');
}

describe('socket server', () => {
  let dir: string;
  let socketPath: string;
  let source: FakeSource;
  let server: AgentServer;
  const clock = new FakeClock();
  const metrics = createMetrics();

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pta-server-'));
    socketPath = join(dir, 'run', 'agent.sock');
    source = new FakeSource();
    server = createAgentServer(source, { socketPath, limits: LIMITS, version: '9.8.7', log: silentLogger, clock, metrics });
    await server.listen();
  });

  after(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  beforeEach(() => {
    source.calls = [];
    source.answer = GOOD;
    source.failing = [];
  });

  test('the socket is mode 0660 and the directory it created is 0750', () => {
    assert.ok(lstatSync(socketPath).isSocket());
    assert.equal(statSync(socketPath).mode & 0o777, 0o660);
    assert.equal(statSync(join(dir, 'run')).mode & 0o777, 0o750);
  });

  test('GET /v1/token answers 200 with exactly the documented body', async () => {
    const a = await ask(socketPath, '/v1/token');
    assert.equal(a.status, 200, a.text);
    assert.equal(a.headers['content-type'], 'application/json');
    assert.equal(a.headers['cache-control'], 'no-store');
    assert.deepEqual(Object.keys(a.json), ['access_token', 'token_type', 'expires_in', 'expires_at', 'account', 'scope']);
    assert.deepEqual(a.json, {
      access_token: 'eyJ.token.value',
      token_type: 'Bearer',
      expires_in: 3541,
      expires_at: '2026-01-01T01:00:00.000Z',
      account: 'default',
      scope: 'InvoicingAPI',
    });
    assert.deepEqual(source.calls, [{ method: 'getToken', account: 'default', minTtlS: 60 }]);
  });

  test('a null scope is sent as null', async () => {
    source.answer = { ok: true, token: { ...GOOD_TOKEN, scope: null, account: 'till-2' } };
    const a = await ask(socketPath, '/v1/token?account=till-2');
    assert.equal(a.status, 200);
    assert.equal(a.json.scope, null);
    assert.equal(a.json.account, 'till-2');
  });

  test('account and min_ttl are passed through; empty account means default', async () => {
    await ask(socketPath, '/v1/token?account=shop.1_a-B&min_ttl=0');
    await ask(socketPath, '/v1/token?account=&min_ttl=86400');
    assert.deepEqual(source.calls, [
      { method: 'getToken', account: 'shop.1_a-B', minTtlS: 0 },
      { method: 'getToken', account: 'default', minTtlS: 86_400 },
    ]);
  });

  test('HEAD /v1/token answers the headers without a body', async () => {
    const a = await ask(socketPath, '/v1/token', { method: 'HEAD' });
    assert.equal(a.status, 200);
    assert.equal(a.text, '');
    assert.equal(source.calls.length, 1);
  });

  test('412 without X-Pos-Agent: 1, and with a wrong value', async () => {
    assertError(await ask(socketPath, '/v1/token', { headers: {} }), 412, 'precondition_failed');
    assertError(await ask(socketPath, '/v1/token', { headers: { 'x-pos-agent': 'yes' } }), 412, 'precondition_failed');
    assert.equal(source.calls.length, 0);
  });

  for (const [name, value] of [
    ['origin', 'http://evil.example'],
    ['forwarded', 'for=10.0.0.1'],
    ['x-forwarded-for', '10.0.0.1'],
  ] as const) {
    test(`403 with ${name} even with X-Pos-Agent: 1`, async () => {
      assertError(await ask(socketPath, '/v1/token', { headers: { ...AGENT_HEADER, [name]: value } }), 403, 'forbidden');
      assertError(await ask(socketPath, '/v1/status', { headers: { [name]: value } }), 403, 'forbidden');
      assert.equal(source.calls.length, 0);
    });
  }

  test('404 unknown_account from the source', async () => {
    source.answer = { ok: false, error: { kind: 'unknown_account', message: 'no account "x" in the config' } };
    const a = await ask(socketPath, '/v1/token?account=x');
    assertError(a, 404, 'unknown_account');
    assert.deepEqual(a.json, { error: 'unknown_account', message: 'no account "x" in the config' });
  });

  test('400 min_ttl_unsatisfiable from the source', async () => {
    source.answer = { ok: false, error: { kind: 'min_ttl_unsatisfiable', message: 'tokens live 3600 s' } };
    assertError(await ask(socketPath, '/v1/token?min_ttl=5000'), 400, 'min_ttl_unsatisfiable');
  });

  test('404 unknown_account names the known accounts, 400 min_ttl_unsatisfiable what was asked and the lifetime', async () => {
    source.answer = { ok: false, error: { kind: 'unknown_account', message: 'no account named x', known: ['default', 'till-2'] } };
    const a = await ask(socketPath, '/v1/token?account=x');
    assertError(a, 404, 'unknown_account');
    assert.deepEqual(a.json, { error: 'unknown_account', message: 'no account named x', known_accounts: ['default', 'till-2'] });
    source.answer = { ok: false, error: { kind: 'min_ttl_unsatisfiable', message: 'too long', minTtlS: 5000, lifetimeS: 3600 } };
    const b = await ask(socketPath, '/v1/token?min_ttl=5000');
    assertError(b, 400, 'min_ttl_unsatisfiable');
    assert.deepEqual(b.json, { error: 'min_ttl_unsatisfiable', message: 'too long', min_ttl: 5000, lifetime_s: 3600 });
  });

  test('404 for an unknown path', async () => {
    const a = await ask(socketPath, '/v2/token');
    assertError(a, 404, 'not_found');
    assert.equal(a.json.message, 'no such endpoint: /v2/token');
  });

  test('405 for a wrong method, with Allow', async () => {
    const a = await ask(socketPath, '/v1/token', { method: 'POST' });
    assertError(a, 405, 'method_not_allowed');
    assert.equal(a.headers.allow, 'GET');
    const b = await ask(socketPath, '/v1/token/refresh', { method: 'GET' });
    assertError(b, 405, 'method_not_allowed');
    assert.equal(b.headers.allow, 'POST');
    const c = await ask(socketPath, '/v1/status', { method: 'DELETE' });
    assertError(c, 405, 'method_not_allowed');
    assert.equal(c.headers.allow, 'GET');
    assert.equal(source.calls.length, 0);
  });

  for (const q of ['min_ttl=-1', 'min_ttl=abc', 'min_ttl=999999', 'min_ttl=86401', 'min_ttl=1.5', 'min_ttl=', 'min_ttl=1e3']) {
    test(`400 for ${q}`, async () => {
      const a = await ask(socketPath, `/v1/token?${q}`);
      assertError(a, 400, 'bad_request');
      assert.equal(a.json.message, 'min_ttl must be whole seconds from 0 to 86400');
      assert.equal(source.calls.length, 0);
    });
  }

  for (const name of ['-lead', '.x', 'a%20b', 'a%2Fb', 'x'.repeat(65), '%C3%BC']) {
    test(`400 for account=${name.length > 20 ? `${name.slice(0, 5)}…` : name}`, async () => {
      assertError(await ask(socketPath, `/v1/token?account=${name}`), 400, 'bad_request');
      assert.equal(source.calls.length, 0);
    });
  }

  test('503 token_unavailable with reason, retry_after and Retry-After', async () => {
    source.answer = {
      ok: false,
      error: { kind: 'unavailable', reason: 'credentials_rejected', message: 'the authority rejected the login', retryAfterS: 297 },
    };
    const a = await ask(socketPath, '/v1/token');
    assertError(a, 503, 'token_unavailable');
    assert.deepEqual(a.json, {
      error: 'token_unavailable',
      reason: 'credentials_rejected',
      message: 'the authority rejected the login',
      retry_after: 297,
    });
    assert.equal(a.headers['retry-after'], '297');
  });

  test('429 refresh_limited with Retry-After', async () => {
    source.answer = { ok: false, error: { kind: 'refresh_limited', message: 'refreshed 2 s ago', retryAfterS: 8 } };
    const a = await post(socketPath, { rejected_token: 'old' });
    assertError(a, 429, 'refresh_limited');
    assert.deepEqual(a.json, { error: 'refresh_limited', message: 'refreshed 2 s ago', retry_after: 8 });
    assert.equal(a.headers['retry-after'], '8');
  });

  describe('POST /v1/token/refresh', () => {
    test('415 without a JSON content type', async () => {
      assertError(await post(socketPath, { rejected_token: 'x' }, { 'content-type': 'text/plain' }), 415, 'unsupported_media_type');
      const none = await ask(socketPath, '/v1/token/refresh', { method: 'POST', headers: AGENT_HEADER, body: '{"rejected_token":"x"}' });
      assertError(none, 415, 'unsupported_media_type');
      assert.equal(source.calls.length, 0);
    });

    test('400 for invalid JSON and for a non-object', async () => {
      const a = await post(socketPath, '{"rejected_token": ');
      assertError(a, 400, 'bad_request');
      assert.equal(a.json.message, 'the body is not valid JSON');
      const b = await post(socketPath, '["x"]');
      assertError(b, 400, 'bad_request');
      assert.equal(b.json.message, 'the body must be a JSON object');
      assert.equal(source.calls.length, 0);
    });

    test('400 without rejected_token, or with a non-string one', async () => {
      const a = await post(socketPath, { account: 'default' });
      assertError(a, 400, 'bad_request');
      assert.equal(a.json.message, 'rejected_token is required');
      const b = await post(socketPath, { rejected_token: 5 });
      assertError(b, 400, 'bad_request');
      assert.equal(b.json.message, 'rejected_token must be a non-empty string');
      assertError(await post(socketPath, { rejected_token: '' }), 400, 'bad_request');
      assertError(await post(socketPath, { rejected_token: 'x', min_ttl: -3 }), 400, 'bad_request');
      assertError(await post(socketPath, { rejected_token: 'x', account: 'a b' }), 400, 'bad_request');
      assert.equal(source.calls.length, 0);
    });

    test('413 for a body over 16 KiB', async () => {
      const a = await post(socketPath, JSON.stringify({ rejected_token: 'x'.repeat(17 * 1024) }));
      assertError(a, 413, 'payload_too_large');
      assert.equal(a.json.message, 'the body is 17,429 bytes; POST /v1/token/refresh takes at most 16,384 bytes (a fixed limit)');
      assert.equal(source.calls.length, 0);
    });

    test('a valid call reaches the source with the right arguments', async () => {
      const a = await post(socketPath, { rejected_token: 'eyJ.old.token' });
      assert.equal(a.status, 200, a.text);
      assert.equal(a.json.access_token, 'eyJ.token.value');
      const b = await post(socketPath, { account: 'till-2', rejected_token: 'other', min_ttl: 120 }, {
        'content-type': 'application/json; charset=utf-8',
      });
      assert.equal(b.status, 200, b.text);
      assert.deepEqual(source.calls, [
        { method: 'refresh', account: 'default', rejected: 'eyJ.old.token', minTtlS: 60 },
        { method: 'refresh', account: 'till-2', rejected: 'other', minTtlS: 120 },
      ]);
    });
  });

  test('GET /v1/status reports version, uptime and the accounts', async () => {
    await clock.advance(65_400);
    const a = await ask(socketPath, '/v1/status');
    assert.equal(a.status, 200, a.text);
    assert.deepEqual(a.json, { version: '9.8.7', uptime_s: 65, accounts: STATUS });
  });

  test('GET /v1/health: 200 when all is well, 503 naming failing accounts', async () => {
    const ok = await ask(socketPath, '/v1/health');
    assert.equal(ok.status, 200);
    assert.deepEqual(ok.json, { status: 'ok' });
    source.failing = ['default', 'till-2'];
    const bad = await ask(socketPath, '/v1/health');
    assert.equal(bad.status, 503);
    assert.deepEqual(bad.json, { status: 'unhealthy', failing: ['default', 'till-2'] });
  });

  test('GET /metrics answers text/plain with request counts', async () => {
    await ask(socketPath, '/v1/health');
    const a = await ask(socketPath, '/metrics');
    assert.equal(a.status, 200);
    assert.equal(a.headers['content-type'], 'text/plain; version=0.0.4');
    assert.match(a.text, /# TYPE pos_token_agent_http_requests_total counter/);
    assert.match(a.text, /pos_token_agent_http_requests_total\{route="\/v1\/health",status="200"\} \d+/);
    assert.match(a.text, /pos_token_agent_http_requests_total\{route="other",status="404"\} \d+/);
    assertError(await ask(socketPath, '/metrics', { headers: {} }), 412, 'precondition_failed');
  });

  test('/metrics counts 412 and 403 answers under their route, unknown paths and malformed requests under "other"', async () => {
    const counts = async (): Promise<Map<string, number>> => {
      const text = (await ask(socketPath, '/metrics')).text;
      const out = new Map<string, number>();
      for (const m of text.matchAll(/^pos_token_agent_http_requests_total\{route="([^"]*)",status="(\d+)"\} (\d+)$/gm)) {
        out.set(`${m[1]} ${m[2]}`, Number(m[3]));
      }
      return out;
    };
    const before = await counts();
    assertError(await ask(socketPath, '/v1/status', { headers: {} }), 412, 'precondition_failed');
    assertError(await ask(socketPath, '/v1/token?account=x', { headers: { 'x-pos-agent': '0' } }), 412, 'precondition_failed');
    assertError(await ask(socketPath, '/v1/token/refresh', { method: 'POST', headers: {} }), 412, 'precondition_failed');
    assertError(await ask(socketPath, '/v1/token', { headers: { ...AGENT_HEADER, origin: 'http://evil.example' } }), 403, 'forbidden');
    assertError(await ask(socketPath, '/v1/health', { headers: { forwarded: 'for=10.0.0.1' } }), 403, 'forbidden');
    assertError(await ask(socketPath, '/nope?x=1', { headers: {} }), 412, 'precondition_failed');
    const raw = await new Promise<string>((resolve, reject) => {
      const s = connect(socketPath);
      let data = '';
      s.setEncoding('utf8');
      s.on('data', (d: string) => (data += d));
      s.on('close', () => resolve(data));
      s.on('error', reject);
      s.write('GARBAGE\r\n\r\n');
    });
    assert.match(raw, /^HTTP\/1\.1 400 /);
    const after = await counts();
    const grew = (key: string): number => (after.get(key) ?? 0) - (before.get(key) ?? 0);
    assert.equal(grew('/v1/status 412'), 1);
    assert.equal(grew('/v1/token 412'), 1);
    assert.equal(grew('/v1/token/refresh 412'), 1);
    assert.equal(grew('/v1/token 403'), 1);
    assert.equal(grew('/v1/health 403'), 1);
    assert.equal(grew('other 412'), 1, 'an unknown path is "other", whatever the answer');
    assert.equal(grew('other 400'), 1, 'the malformed request');
  });

  test('a garbage request gets a 400 and a concurrent keep-alive client is still answered', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const first = await ask(socketPath, '/v1/health', { agent });
      assert.equal(first.status, 200);
      const raw = await new Promise<string>((resolve, reject) => {
        const s = connect(socketPath);
        let data = '';
        s.setEncoding('utf8');
        s.on('data', (d: string) => (data += d));
        s.on('end', () => resolve(data));
        s.on('close', () => resolve(data));
        s.on('error', reject);
        s.write('GARBAGE\r\n\r\n');
      });
      assert.match(raw, /^HTTP\/1\.1 400 Bad Request\r\n/);
      assert.match(raw, /\r\nConnection: close\r\n/);
      const body = JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4)) as { error: string };
      assert.equal(body.error, 'bad_request');
      const second = await ask(socketPath, '/v1/health', { agent });
      assert.equal(second.status, 200);
      assert.equal(second.reusedSocket, true, 'the keep-alive connection survived');
    } finally {
      agent.destroy();
    }
  });
});

describe('socket server: listen and close', () => {
  let dir: string;
  const servers: AgentServer[] = [];

  const make = (socketPath: string): AgentServer => {
    const s = createAgentServer(new FakeSource(), { socketPath, limits: LIMITS, version: 't', log: silentLogger });
    servers.push(s);
    return s;
  };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'pta-listen-'));
  });

  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.close()));
    rmSync(dir, { recursive: true, force: true });
  });

  test('a stale socket left by a killed process is replaced', async () => {
    const path = join(dir, 'agent.sock');
    const child = spawn(
      process.execPath,
      ['-e', "require('net').createServer().listen(process.argv[1], () => process.stdout.write('ready'))", path],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    await new Promise<void>((resolve, reject) => {
      child.stdout!.once('data', () => resolve());
      child.once('error', reject);
      child.once('exit', (code) => reject(new Error(`child exited early (${code})`)));
    });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGKILL');
    await exited;
    assert.ok(lstatSync(path).isSocket(), 'the stale socket file is left behind');

    const s = make(path);
    await s.listen();
    const a = await ask(path, '/v1/health');
    assert.equal(a.status, 200);
    assert.equal(statSync(path).mode & 0o777, 0o660);
  });

  test('a live socket makes listen() reject naming the path, and is left alone', async () => {
    const path = join(dir, 'live.sock');
    const other = createNetServer((c) => c.end());
    await new Promise<void>((resolve) => other.listen(path, resolve));
    try {
      await assert.rejects(make(path).listen(), { message: `another process is already listening on ${path}` });
      assert.ok(lstatSync(path).isSocket());
      await new Promise<void>((resolve, reject) => {
        const c = connect(path);
        c.once('connect', () => {
          c.destroy();
          resolve();
        });
        c.once('error', reject);
      });
    } finally {
      await new Promise<void>((resolve) => other.close(() => resolve()));
    }
  });

  test('a regular file at the socket path is refused, not deleted', async () => {
    const path = join(dir, 'file.sock');
    writeFileSync(path, 'keep me');
    await assert.rejects(make(path).listen(), { message: `${path} exists and is not a socket; remove it or choose another socket path` });
    assert.ok(lstatSync(path).isFile());
  });

  test('close() resolves, even with an idle keep-alive client, and removes the socket', async () => {
    const path = join(dir, 'deep', 'er', 'agent.sock');
    const s = make(path);
    await s.listen();
    assert.equal(statSync(join(dir, 'deep', 'er')).mode & 0o777, 0o750);
    const agent = new Agent({ keepAlive: true });
    try {
      assert.equal((await ask(path, '/v1/health', { agent })).status, 200);
      const started = performance.now();
      await s.close();
      await s.close();
      assert.ok(performance.now() - started < 1_500, 'idle connections are closed at once');
    } finally {
      agent.destroy();
    }
    assert.throws(() => lstatSync(path), { code: 'ENOENT' });
  });
});

describe('socket server: slow and silent clients', () => {
  const FAST = { maxConnections: 64, headersTimeoutMs: 400, idleTimeoutMs: 5_000 };
  let dir: string;
  let server: AgentServer;
  let socketPath: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pta-slow-'));
    socketPath = join(dir, 'agent.sock');
    server = createAgentServer(new FakeSource(), { socketPath, limits: FAST, version: 't', log: silentLogger });
    await server.listen();
  });
  after(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Opens a connection, runs `behave` on it, and resolves with how long the server kept it open. */
  const heldFor = (behave: (write: (s: string) => void) => void): Promise<number> =>
    new Promise((resolve) => {
      const started = Date.now();
      const c = connect(socketPath);
      c.on('error', () => {});
      // Read what the server sends (Node's own header timeout may answer 408 before closing): an unread answer
      // holds back 'end', so 'close' would never come and the test would hang (a loop of runs did).
      c.resume();
      c.on('close', () => resolve(Date.now() - started));
      behave((s) => c.writable && c.write(s));
    });

  test('a connection that never sends a byte is closed after headersTimeoutMs', async () => {
    const held = await heldFor(() => {});
    assert.ok(held >= 350 && held < 2_500, `held for ${held} ms`);
  });

  test('a client trickling partial headers is cut within headersTimeoutMs plus the 1 s check interval', async () => {
    let timer: NodeJS.Timeout | undefined;
    const held = await heldFor((write) => {
      write('GET /v1/health HTTP/1.1\r\n');
      timer = setInterval(() => write('X-Slow: 1\r\n'), 50);
    });
    clearInterval(timer);
    assert.ok(held < 2_500, `held for ${held} ms`);
  });
});
