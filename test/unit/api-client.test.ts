/**
 * The socket API client: against the real server (with a small fake token source), so the client and the
 * server agree on the wire; and against raw servers on a Unix socket for what a real agent never does
 * (no answer, an answer that is not the agent's, too much of it).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, test } from 'node:test';
import {
  AgentClientError,
  connectionError,
  createAgentClient,
  isAccountName,
  parseMinTtl,
  type AccountStatusBody,
  type OutboxEntryBody,
} from '../../src/api/index.js';
import { FakeClock } from '../../src/lib/clock.js';
import { silentLogger } from '../../src/lib/log.js';
import { createMetrics } from '../../src/lib/metrics.js';
import { createAgentServer, type AgentServer, type TokenSource } from '../../src/server/index.js';
import type { AccountStatus, TokenAnswer } from '../../src/tokens/index.js';

const LIMITS = { maxConnections: 16, headersTimeoutMs: 2_000, idleTimeoutMs: 5_000 };

/** What /v1/status answers for ACCOUNT_VIEW, the manager's view the fake source gives. */
const ACCOUNT: AccountStatusBody = {
  authority: 'eta-ereceipt',
  state: 'none',
  expires_at: null,
  last_login_at: '2026-01-01T00:10:00.000Z',
  last_success_at: '2026-01-01T00:00:00.000Z',
  last_error: { reason: 'credentials_rejected', message: 'invalid_client', at: '2026-01-01T00:10:00.000Z' },
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
  next_attempt_in_s: 290,
};

const ACCOUNT_VIEW: AccountStatus = {
  authority: 'eta-ereceipt',
  state: 'none',
  expiresAtWall: null,
  lastLoginAtWall: Date.parse('2026-01-01T00:10:00.000Z'),
  lastSuccessAtWall: Date.parse('2026-01-01T00:00:00.000Z'),
  lastError: { reason: 'credentials_rejected', message: 'invalid_client', atWall: Date.parse('2026-01-01T00:10:00.000Z') },
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
  nextAttemptInS: 290,
};

class Source implements TokenSource {
  answer: TokenAnswer = {
    ok: true,
    token: { accessToken: 'eyJ.a.b', tokenType: 'Bearer', expiresIn: 3000, expiresAt: '2026-01-01T01:00:00.000Z', account: 'default', scope: null },
  };
  calls: unknown[] = [];
  failing: string[] = [];
  async getToken(account: string, minTtlS: number): Promise<TokenAnswer> {
    this.calls.push(['getToken', account, minTtlS]);
    return this.answer;
  }
  async refresh(account: string, rejected: string, minTtlS: number): Promise<TokenAnswer> {
    this.calls.push(['refresh', account, rejected, minTtlS]);
    return this.answer;
  }
  status(): Record<string, AccountStatus> {
    return { default: ACCOUNT_VIEW };
  }
  unhealthy(): string[] {
    return this.failing;
  }
}

/** A raw HTTP server on a Unix socket that answers as `handler` says. */
async function rawServer(path: string, handler: Parameters<typeof createServer>[1]): Promise<Server> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return server;
}

const close = (s: Server): Promise<void> =>
  new Promise((resolve) => {
    s.closeAllConnections();
    s.close(() => resolve());
  });

async function rejection(p: Promise<unknown>): Promise<AgentClientError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof AgentClientError, `not an AgentClientError: ${String(err)}`);
    return err;
  }
  assert.fail('expected the call to fail');
}

describe('api client against the real server', () => {
  let dir: string;
  let socket: string;
  let server: AgentServer;
  const source = new Source();

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pta-api-'));
    socket = join(dir, 'agent.sock');
    server = createAgentServer(source, { socketPath: socket, limits: LIMITS, version: '1.2.3', log: silentLogger, clock: new FakeClock(), metrics: createMetrics() });
    await server.listen();
  });
  after(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    source.calls = [];
    source.failing = [];
  });

  test('token(): the token body, with account and min_ttl sent as given', async () => {
    const client = createAgentClient({ socket });
    const r = await client.token({ account: 'till-2', minTtl: 0 });
    assert.deepEqual(r, {
      ok: true,
      token: { access_token: 'eyJ.a.b', token_type: 'Bearer', expires_in: 3000, expires_at: '2026-01-01T01:00:00.000Z', account: 'default', scope: null },
    });
    await client.token();
    assert.deepEqual(source.calls, [
      ['getToken', 'till-2', 0],
      ['getToken', 'default', 60],
    ]);
  });

  test('token(): the error bodies of unknown_account and token_unavailable, returned, not thrown', async () => {
    const client = createAgentClient({ socket });
    source.answer = { ok: false, error: { kind: 'unknown_account', message: 'no account named x', known: ['default'] } };
    assert.deepEqual(await client.token({ account: 'x' }), {
      ok: false,
      status: 404,
      error: { error: 'unknown_account', message: 'no account named x', known_accounts: ['default'] },
    });
    source.answer = { ok: false, error: { kind: 'unavailable', reason: 'upstream_unavailable', message: 'down', retryAfterS: 7 } };
    assert.deepEqual(await client.token(), {
      ok: false,
      status: 503,
      error: { error: 'token_unavailable', reason: 'upstream_unavailable', message: 'down', retry_after: 7 },
    });
    const bad = await client.token({ account: 'a b' });
    assert.ok(!bad.ok && bad.status === 400 && bad.error.error === 'bad_request');
  });

  test('refresh(): posts the rejected token; the answer is read like token()', async () => {
    source.answer = { ok: false, error: { kind: 'refresh_limited', message: 'wait', retryAfterS: 9 } };
    const r = await createAgentClient({ socket }).refresh({ rejectedToken: 'eyJ.old', minTtl: 120 });
    assert.deepEqual(r, { ok: false, status: 429, error: { error: 'refresh_limited', message: 'wait', retry_after: 9 } });
    assert.deepEqual(source.calls, [['refresh', 'default', 'eyJ.old', 120]]);
  });

  test('status() and accountStatus(): the typed status, one account of it, undefined for another', async () => {
    const client = createAgentClient({ socket });
    const status = await client.status();
    assert.equal(status.version, '1.2.3');
    assert.deepEqual(status.accounts, { default: ACCOUNT });
    const one: AccountStatusBody | undefined = await client.accountStatus('default');
    assert.equal(one?.last_success_at, '2026-01-01T00:00:00.000Z');
    assert.equal(one?.last_error?.reason, 'credentials_rejected');
    assert.equal(await client.accountStatus('other'), undefined);
    assert.equal(await client.accountStatus('constructor'), undefined, 'not an inherited property');
  });

  test('health(): the 200 and the 503 answers; metrics(): the text', async () => {
    const client = createAgentClient({ socket });
    assert.deepEqual(await client.health(), { status: 'ok' });
    source.failing = ['default'];
    assert.deepEqual(await client.health(), { status: 'unhealthy', failing: ['default'] });
    assert.match(await client.metrics(), /pos_token_agent_http_requests_total\{route="\/v1\/health",status="503"\} 1/);
  });
});

describe('api client: failures', () => {
  let dir: string;
  const servers: Server[] = [];

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'pta-api-raw-'));
  });
  after(async () => {
    await Promise.all(servers.map(close));
    rmSync(dir, { recursive: true, force: true });
  });

  const serve = async (name: string, handler: Parameters<typeof createServer>[1]): Promise<string> => {
    const path = join(dir, name);
    servers.push(await rawServer(path, handler));
    return path;
  };

  test('nothing at the socket path: not_running, naming the socket and how to start the agent', async () => {
    const socket = join(dir, 'none.sock');
    const err = await rejection(createAgentClient({ socket, startCommand: 'pos-token-agent run --config /x.json' }).status());
    assert.equal(err.code, 'not_running');
    assert.equal(err.message, `the agent is not running (no socket answering at ${socket}); start it with: pos-token-agent run --config /x.json`);
    const plain = await rejection(createAgentClient({ socket }).token());
    assert.equal(plain.message, `the agent is not running (no socket answering at ${socket})`);
  });

  test('connect errors in words: refused is not running, EACCES is permission denied, others say what happened', () => {
    const e = (code: string, message = code): NodeJS.ErrnoException => Object.assign(new Error(message), { code });
    assert.equal(connectionError(e('ECONNREFUSED'), '/s').code, 'not_running');
    const denied = connectionError(e('EACCES'), '/s');
    assert.equal(denied.code, 'permission_denied');
    assert.equal(denied.message, "permission denied on /s; run as a member of the agent's socket group");
    const other = connectionError(e('ENOTSOCK', 'socket operation on non-socket'), '/s');
    assert.equal(other.code, 'unreachable');
    assert.equal(other.message, 'cannot talk to the agent at /s: socket operation on non-socket');
  });

  test('an agent that does not answer: timeout within the bound', async () => {
    const socket = await serve('silent.sock', () => {
      /* never answers */
    });
    const started = Date.now();
    const err = await rejection(createAgentClient({ socket, timeoutMs: 300 }).health());
    assert.equal(err.code, 'timeout');
    assert.equal(err.message, `no answer from the agent at ${socket} within 0.3 s`);
    assert.ok(Date.now() - started < 10_000, 'bounded');
  });

  test('an answer that trickles forever is cut at the bound too (the bound is on the whole call)', async () => {
    const socket = await serve('trickle.sock', (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      const t = setInterval(() => res.write(' '), 50);
      res.on('close', () => clearInterval(t));
    });
    const err = await rejection(createAgentClient({ socket, timeoutMs: 400 }).status());
    assert.equal(err.code, 'timeout');
  });

  test('not the agent: a status without accounts, a token answer without a token, a 500 without a body', async () => {
    const socket = await serve('foreign.sock', (req, res) => {
      if (req.url === '/v1/status') return void res.end('{"hello":"world"}');
      if (req.url?.startsWith('/v1/token')) return void res.end('<html>');
      res.writeHead(500).end('oops');
    });
    const client = createAgentClient({ socket });
    const status = await rejection(client.status());
    assert.equal(status.code, 'bad_answer');
    assert.equal(status.message, `the agent at ${socket} answered 200 a status answer without accounts`);
    assert.equal((await rejection(client.token())).code, 'bad_answer');
    const health = await rejection(client.health());
    assert.equal(health.code, 'bad_answer');
    assert.equal(health.status, 500);
  });

  test('an error status on status(): bad_answer carrying the error body', async () => {
    const socket = await serve('refusing.sock', (_req, res) => {
      res.writeHead(412, { 'content-type': 'application/json' }).end('{"error":"precondition_failed","message":"header"}');
    });
    const err = await rejection(createAgentClient({ socket }).status());
    assert.equal(err.code, 'bad_answer');
    assert.equal(err.status, 412);
    assert.deepEqual(err.body, { error: 'precondition_failed', message: 'header' });
    assert.equal(err.message, `the agent at ${socket} answered 412 precondition_failed: header`);
  });

  test('an answer over 4 MiB is refused', async () => {
    const socket = await serve('big.sock', (_req, res) => {
      res.writeHead(200);
      res.end(Buffer.alloc(5 * 1024 * 1024, 0x20));
    });
    const err = await rejection(createAgentClient({ socket }).metrics());
    assert.equal(err.code, 'bad_answer');
    assert.match(err.message, /over 4194304 bytes/);
  });

  test('every call sends X-Pos-Agent: 1, and refresh a JSON body', async () => {
    const seen: Array<{ url: string; header: string | undefined; type: string | undefined; body: string }> = [];
    const socket = await serve('echo.sock', (req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        seen.push({ url: req.url ?? '', header: req.headers['x-pos-agent'] as string | undefined, type: req.headers['content-type'], body });
        res.writeHead(503).end('{"status":"unhealthy","failing":["a"]}');
      });
    });
    const client = createAgentClient({ socket });
    await client.health();
    await client.refresh({ account: 'a', rejectedToken: 't' });
    assert.deepEqual(seen, [
      { url: '/v1/health', header: '1', type: undefined, body: '' },
      { url: '/v1/token/refresh', header: '1', type: 'application/json', body: '{"account":"a","rejected_token":"t"}' },
    ]);
  });
});

describe('api client: the outbox calls, against a fake agent', () => {
  let dir: string;
  let server: Server;
  let socket: string;
  const ID = '0b5c3a52-4f0e-4d8e-9a57-2a1f7c1d9e01';
  const ENTRY: OutboxEntryBody = {
    id: ID,
    account: 'default',
    key: 'r-1',
    method: 'POST',
    path: '/api/v1/receipts',
    state: 'queued',
    attempts: 0,
    created_at: '2026-01-01T00:00:00.000Z',
    delivered_at: null,
    last_error: null,
    response: null,
    position: 1,
  };
  /** What the fake answers next (status, body text), and what it was asked. */
  let next: { status: number; body: string } = { status: 200, body: '{}' };
  let seen: Array<{ method: string; url: string; body: string; type: string | undefined }> = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pta-api-outbox-'));
    socket = join(dir, 'agent.sock');
    server = await rawServer(socket, (req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        seen.push({ method: req.method ?? '', url: req.url ?? '', body, type: req.headers['content-type'] });
        res.writeHead(next.status, { 'content-type': 'application/json' }).end(next.body);
      });
    });
  });
  after(async () => {
    await close(server);
    rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    seen = [];
  });
  const answer = (status: number, body: unknown): void => {
    next = { status, body: typeof body === 'string' ? body : JSON.stringify(body) };
  };

  test('enqueue(): 202 is a new entry, 200 the one a repeated key made, 507 the refusal with its reason', async () => {
    const client = createAgentClient({ socket });
    const request = { account: 'default', path: '/api/v1/receipts', body: { total: 1 }, key: 'r-1' };
    answer(202, { id: ID, state: 'queued', position: 3 });
    assert.deepEqual(await client.enqueue(request), { ok: true, created: true, enqueued: { id: ID, state: 'queued', position: 3 } });
    assert.deepEqual(seen, [{ method: 'POST', url: '/v1/outbox', body: JSON.stringify(request), type: 'application/json' }]);
    answer(200, ENTRY);
    assert.deepEqual(await client.enqueue(request), { ok: true, created: false, entry: ENTRY });
    answer(507, { error: 'outbox_full', reason: 'bytes', message: 'full' });
    assert.deepEqual(await client.enqueue(request), { ok: false, status: 507, error: { error: 'outbox_full', reason: 'bytes', message: 'full' } });
  });

  test('outboxList(): the query as given, a page of entries and where the next starts; a 400 is returned', async () => {
    const client = createAgentClient({ socket });
    answer(200, { entries: [ENTRY], next: 'w17' });
    assert.deepEqual(await client.outboxList({ account: 'default', state: 'queued', limit: 5 }), { ok: true, entries: [ENTRY], next: 'w17' });
    answer(200, { entries: [ENTRY] });
    assert.deepEqual(await client.outboxList({ after: 'w17' }), { ok: true, entries: [ENTRY], next: null }, 'an older agent: no next');
    await client.outboxList();
    assert.deepEqual(
      seen.map((s) => `${s.method} ${s.url}`),
      ['GET /v1/outbox?account=default&state=queued&limit=5', 'GET /v1/outbox?after=w17', 'GET /v1/outbox'],
    );
    answer(400, { error: 'bad_request', message: 'limit must be 1 to 1000' });
    assert.deepEqual(await client.outboxList({ limit: 0 }), { ok: false, status: 400, error: { error: 'bad_request', message: 'limit must be 1 to 1000' } });
  });

  test('outboxEntry(), outboxCancel(), outboxRetry(): GET, DELETE and POST .../retry; 404 and 409 are returned, not thrown', async () => {
    const client = createAgentClient({ socket });
    answer(200, { ...ENTRY, body: { total: 1 } });
    assert.deepEqual(await client.outboxEntry(ID), { ok: true, entry: { ...ENTRY, body: { total: 1 } } });
    answer(200, { ...ENTRY, state: 'cancelled' });
    const cancelled = await client.outboxCancel(ID);
    assert.ok(cancelled.ok && cancelled.entry.state === 'cancelled');
    answer(409, { error: 'not_cancellable', message: 'only a queued entry can be cancelled; this one is cancelled', state: 'cancelled' });
    const again = await client.outboxCancel(ID);
    assert.deepEqual(again, {
      ok: false,
      status: 409,
      error: { error: 'not_cancellable', message: 'only a queued entry can be cancelled; this one is cancelled', state: 'cancelled' },
    });
    answer(404, { error: 'not_found', message: 'no such outbox entry' });
    assert.deepEqual(await client.outboxRetry(ID), { ok: false, status: 404, error: { error: 'not_found', message: 'no such outbox entry' } });
    assert.deepEqual(
      seen.map((s) => `${s.method} ${s.url}`),
      [`GET /v1/outbox/${ID}`, `DELETE /v1/outbox/${ID}`, `DELETE /v1/outbox/${ID}`, `POST /v1/outbox/${ID}/retry`],
    );
  });

  test('an id is encoded into the path, so that it cannot name another route', async () => {
    answer(404, { error: 'not_found', message: 'no such outbox entry' });
    await createAgentClient({ socket }).outboxEntry('../token?x=1');
    assert.equal(seen[0]?.url, '/v1/outbox/..%2Ftoken%3Fx%3D1');
  });

  test('no usable answer throws: a 2xx without an entry, a list without entries, nothing listening', async () => {
    const client = createAgentClient({ socket });
    answer(200, { hello: 'world' });
    const entry = await rejection(client.outboxEntry(ID));
    assert.equal(entry.code, 'bad_answer');
    assert.equal(entry.message, `the agent at ${socket} answered 200 an outbox answer without an entry`);
    answer(200, { entries: [{ id: 1 }] });
    assert.equal((await rejection(client.outboxList())).code, 'bad_answer');
    answer(202, '<html>');
    assert.equal((await rejection(client.enqueue({ path: '/x', body: null }))).code, 'bad_answer');
    const none = await rejection(createAgentClient({ socket: join(dir, 'none.sock') }).outboxCancel(ID));
    assert.equal(none.code, 'not_running');
  });

  test('an error status without the agent\'s body is still returned, with a body saying so', async () => {
    answer(502, 'bad gateway');
    assert.deepEqual(await createAgentClient({ socket }).outboxRetry(ID), {
      ok: false,
      status: 502,
      error: { error: 'internal_error', message: 'the answer (502) carries no error body' },
    });
  });
});

describe('api wire rules', () => {
  test('account names as the config allows them', () => {
    for (const ok of ['default', 'a', 'shop.1_a-B', 'x'.repeat(64)]) assert.ok(isAccountName(ok), ok);
    for (const bad of ['', 'bad name', '-lead', '.x', 'x'.repeat(65), 'ü', 'a/b']) assert.ok(!isAccountName(bad), bad);
  });

  test('min_ttl: whole seconds from 0 to 86400', () => {
    assert.equal(parseMinTtl('0'), 0);
    assert.equal(parseMinTtl('86400'), 86_400);
    for (const bad of ['-5', '-1', 'abc', '1.5', '', '1e3', '86401', '9999999', ' 5']) assert.equal(parseMinTtl(bad), undefined, bad);
  });
});
