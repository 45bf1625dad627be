/**
 * The socket API's route table and the rules it applies once for every route: X-Pos-Agent-Error on every error
 * answer the agent makes (and never on the API's, through the proxy), 404 unknown_account wherever a request names
 * an account, 413 naming the one limit passed and its setting, 405 with Allow, and JSON bodies that are not objects.
 * The server runs on a real socket with fakes for the token source, the proxy's sender and the outbox.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, beforeEach, describe, test } from 'node:test';
import type { ConfigStatusBody } from '../../src/api/index.js';
import type { AccountConfig } from '../../src/config/index.js';
import type { ForwardRequest, ForwardResult } from '../../src/forward/index.js';
import { silentLogger } from '../../src/lib/log.js';
import type { Outbox } from '../../src/outbox/index.js';
import { createAgentServer, ROUTES, type AgentServer, type OutboxSource, type OutboxView, type ProxySource, type Route, type TokenSource } from '../../src/server/index.js';
import type { EnqueueResult, OutboxEntry, OutboxInput } from '../../src/store/index.js';
import type { TokenAnswer } from '../../src/tokens/index.js';
import { ask, type Answer } from '../support/harness.js';

const LIMITS = { maxConnections: 64, headersTimeoutMs: 2_000, idleTimeoutMs: 5_000 };
const CONFIG_FILE = '/etc/pos-token-agent/test-config.json';
const JSON_TYPE = { 'content-type': 'application/json' };
const TOKEN: TokenAnswer = {
  ok: true,
  token: { accessToken: 'eyJ.t', tokenType: 'Bearer', expiresIn: 3000, expiresAt: '2026-01-01T01:00:00.000Z', account: 'default', scope: null },
};

function account(name: string, extra: Partial<AccountConfig> = {}): AccountConfig {
  return { name, authority: 'eta-ereceipt', apiUrl: 'http://127.0.0.1:9/base', api: { maxBodyBytes: 1_000 }, tls: { legacyServerConnect: false }, ...extra } as AccountConfig;
}

const ACCOUNTS: Record<string, AccountConfig> = {
  default: account('default'),
  'till-2': account('till-2', { api: { maxBodyBytes: 2_000 } }),
  'no-api': account('no-api', { apiUrl: undefined }),
};

class Tokens implements TokenSource {
  answer: TokenAnswer = TOKEN;
  asked: string[] = [];
  async getToken(name: string): Promise<TokenAnswer> {
    this.asked.push(name);
    return this.answer;
  }
  async refresh(name: string): Promise<TokenAnswer> {
    this.asked.push(name);
    return this.answer;
  }
  status() {
    return {};
  }
  unhealthy() {
    return [];
  }
}

/** What the fake API sends back through the proxy next. */
type Upstream = { status: number; headers?: Record<string, string>; body: string } | Exclude<ForwardResult, { ok: true }>;

function entry(input: Partial<OutboxEntry> = {}): OutboxEntry {
  return {
    id: randomUUID(),
    seq: 1,
    account: 'default',
    key: null,
    method: 'POST',
    path: '/x',
    headers: {},
    body: '{}',
    bytes: 2,
    state: 'queued',
    attempts: 0,
    createdAt: 0,
    updatedAt: 0,
    deliveredAt: null,
    lastError: null,
    response: null,
    ...input,
  };
}

class FakeOutbox implements Pick<Outbox, 'enqueue' | 'get' | 'list' | 'cancel' | 'retry'> {
  entries = new Map<string, OutboxEntry>();
  full = false;
  enqueued: OutboxInput[] = [];
  async enqueue(input: OutboxInput): Promise<EnqueueResult> {
    if (this.full) return { ok: false, error: 'outbox_full', reason: 'entries', message: 'the outbox holds outbox.maxEntries entries' };
    this.enqueued.push(input);
    const e = entry({ ...input, key: input.key ?? null });
    this.entries.set(e.id, e);
    return { ok: true, entry: e, created: true, position: 1 };
  }
  get(id: string) {
    return this.entries.get(id);
  }
  list(filter: { account?: string }) {
    return [...this.entries.values()].filter((e) => filter.account === undefined || e.account === filter.account);
  }
  cancel(id: string) {
    const e = this.entries.get(id);
    if (!e) return { ok: false as const, reason: 'not_found' as const };
    if (e.state !== 'queued') return { ok: false as const, reason: 'not_queued' as const, entry: e };
    e.state = 'cancelled';
    return { ok: true as const, entry: e };
  }
  retry(id: string) {
    const e = this.entries.get(id);
    if (!e) return { ok: false as const, reason: 'not_found' as const };
    return { ok: false as const, reason: 'not_retryable' as const, entry: e };
  }
}

function post(socket: string, path: string, body: unknown): Promise<Answer> {
  return ask(socket, path, { method: 'POST', headers: JSON_TYPE, body: typeof body === 'string' ? body : JSON.stringify(body) });
}

/** Writes `text` on a new connection and resolves with what came back before the agent closed it. */
function raw(socket: string, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(socket, () => s.write(text));
    let got = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      got += d;
      if (/\r\n\r\n[\s\S]*\}$/.test(got)) s.end();
    });
    s.on('close', () => resolve(got));
    s.on('error', reject);
    s.setTimeout(5_000, () => s.destroy(new Error('no answer')));
  });
}

function rawHeaders(answer: string): Record<string, string> {
  const head = answer.slice(0, answer.indexOf('\r\n\r\n')).split('\r\n').slice(1);
  return Object.fromEntries(head.map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]));
}

describe('socket API: the route table and its rules', () => {
  let dir: string;
  let socket: string;
  let server: AgentServer;
  const tokens = new Tokens();
  const outbox = new FakeOutbox();
  let upstream: Upstream = { status: 200, body: '{}' };
  const forwarded: ForwardRequest[] = [];

  const directory = { account: (n: string) => ACCOUNTS[n], accountNames: () => Object.keys(ACCOUNTS) };
  const proxy: ProxySource = {
    ...directory,
    async forward(request) {
      forwarded.push(request);
      if (!('status' in upstream)) return upstream;
      const body = Readable.from([Buffer.from(upstream.body)]) as unknown as IncomingMessage & { complete: boolean };
      body.complete = true;
      return { ok: true, status: upstream.status, headers: { 'content-type': 'application/json', ...upstream.headers }, body, attempts: 1 };
    },
  };
  const outboxSource: OutboxSource & { view: OutboxView } = {
    ...directory,
    outbox,
    view: { status: () => ({}), stalled: () => [] },
  };
  const config = (): ConfigStatusBody => ({ path: CONFIG_FILE, sha256: null, generation: 1, loaded_at: '2026-01-01T00:00:00.000Z', reload_error: null });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'pta-routes-'));
    socket = join(dir, 'agent.sock');
    server = createAgentServer(tokens, { socketPath: socket, limits: LIMITS, version: 't', log: silentLogger, accounts: directory, proxy, outbox: outboxSource, config });
    await server.listen();
  });
  after(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  beforeEach(() => {
    tokens.answer = TOKEN;
    tokens.asked = [];
    outbox.full = false;
    upstream = { status: 200, body: '{}' };
    forwarded.length = 0;
  });

  describe('X-Pos-Agent-Error', () => {
    const down = { kind: 'unavailable', reason: 'upstream_unavailable', message: 'the identity service is down', retryAfterS: 7 } as const;
    const unavailable: TokenAnswer = { ok: false, error: down };
    const limited: TokenAnswer = { ok: false, error: { kind: 'refresh_limited', message: 'refreshed a moment ago', retryAfterS: 3 } };
    const short: TokenAnswer = { ok: false, error: { kind: 'min_ttl_unsatisfiable', message: 'too long' } };
    const cases: Array<[string, number, string, (s: string) => Promise<Answer>, () => void]> = [
      ['a bad account name', 400, 'bad_request', (s) => ask(s, '/v1/token?account=-x'), () => {}],
      ['an unsatisfiable min_ttl', 400, 'min_ttl_unsatisfiable', (s) => ask(s, '/v1/token?min_ttl=5000'), () => (tokens.answer = short)],
      ['an Origin header', 403, 'forbidden', (s) => ask(s, '/v1/token', { headers: { origin: 'http://evil.example' } }), () => {}],
      ['an unknown path', 404, 'not_found', (s) => ask(s, '/v2/nothing'), () => {}],
      ['an unknown account', 404, 'unknown_account', (s) => ask(s, '/v1/token?account=nope'), () => {}],
      ['an unknown outbox entry', 404, 'not_found', (s) => ask(s, `/v1/outbox/${randomUUID()}`), () => {}],
      ['a wrong method', 405, 'method_not_allowed', (s) => ask(s, '/v1/status', { method: 'POST' }), () => {}],
      ['an account without apiUrl (proxy)', 409, 'api_not_configured', (s) => ask(s, '/v1/proxy/no-api/x'), () => {}],
      ['a missing X-Pos-Agent', 412, 'precondition_failed', (s) => ask(s, '/v1/token', { headers: { 'x-pos-agent': '0' } }), () => {}],
      ['a proxy body over the cap', 413, 'payload_too_large', (s) => post(s, '/v1/proxy/default/x', 'x'.repeat(1_001)), () => {}],
      ['a refresh body over 16 KiB', 413, 'payload_too_large', (s) => post(s, '/v1/token/refresh', { rejected_token: 'x'.repeat(17_000) }), () => {}],
      ['a body that is not JSON', 415, 'unsupported_media_type', (s) => ask(s, '/v1/token/refresh', { method: 'POST', body: '{}' }), () => {}],
      ['the refresh limit', 429, 'refresh_limited', (s) => post(s, '/v1/token/refresh', { rejected_token: 'old' }), () => (tokens.answer = limited)],
      ['a handler that fails', 500, 'internal_error', (s) => ask(s, '/v1/token'), () => (tokens.getToken = () => Promise.reject(new Error('boom')))],
      ['the API unreachable', 502, 'upstream_unavailable', (s) => ask(s, '/v1/proxy/default/x'), () => (upstream = { ok: false, kind: 'unreachable', message: 'connection refused', attempts: 1 })],
      ['no token (token route)', 503, 'token_unavailable', (s) => ask(s, '/v1/token'), () => (tokens.answer = unavailable)],
      ['no token (proxy)', 503, 'token_unavailable', (s) => ask(s, '/v1/proxy/default/x'), () => (upstream = { ok: false, kind: 'token', error: down, attempts: 0 })],
      ['the API too slow', 504, 'upstream_timeout', (s) => ask(s, '/v1/proxy/default/x'), () => (upstream = { ok: false, kind: 'timeout', message: 'no answer in 1 s', attempts: 1 })],
      ['a full outbox', 507, 'outbox_full', (s) => post(s, '/v1/outbox', { path: '/x', body: {} }), () => (outbox.full = true)],
    ];
    for (const [what, status, error, send, arrange] of cases) {
      test(`${status} ${error} (${what}) carries X-Pos-Agent-Error: ${error}`, async () => {
        const getToken = tokens.getToken;
        arrange();
        try {
          const a = await send(socket);
          assert.equal(a.status, status, a.text);
          assert.equal(a.json.error, error, a.text);
          assert.equal(a.headers['x-pos-agent-error'], error);
        } finally {
          tokens.getToken = getToken;
        }
      });
    }

    test('409 not_cancellable carries it too', async () => {
      const e = entry({ state: 'delivered' });
      outbox.entries.set(e.id, e);
      const a = await ask(socket, `/v1/outbox/${e.id}`, { method: 'DELETE' });
      assert.equal(a.status, 409, a.text);
      assert.equal(a.headers['x-pos-agent-error'], 'not_cancellable');
    });

    test('the answers to what Node could not parse (400, 431) carry it', async () => {
      const garbage = await raw(socket, 'GARBAGE\r\n\r\n');
      assert.match(garbage, /^HTTP\/1\.1 400 /);
      assert.equal(rawHeaders(garbage)['x-pos-agent-error'], 'bad_request');
      const huge = await raw(socket, `GET /v1/token HTTP/1.1\r\nX-Pos-Agent: 1\r\nX-Big: ${'a'.repeat(10_000)}\r\n\r\n`);
      assert.match(huge, /^HTTP\/1\.1 431 /);
      assert.equal(rawHeaders(huge)['x-pos-agent-error'], 'bad_request');
      assert.match(huge, /more than 8,192 bytes, the most the agent reads \(a fixed limit\)/);
    });

    test('never on a success, nor on the health report', async () => {
      for (const path of ['/v1/token', '/v1/status', '/v1/health', '/metrics', '/v1/outbox']) {
        const a = await ask(socket, path);
        assert.equal(a.status, 200, `${path}: ${a.text}`);
        assert.equal(a.headers['x-pos-agent-error'], undefined, path);
      }
    });

    test("never on the API's answer through the proxy, whatever its status: its 503 is told from the agent's by it", async () => {
      upstream = { status: 503, headers: { 'retry-after': '30' }, body: '{"error":"maintenance"}' };
      const api = await ask(socket, '/v1/proxy/default/x');
      assert.equal(api.status, 503);
      assert.equal(api.json.error, 'maintenance');
      assert.equal(api.headers['x-pos-agent-error'], undefined, "the API's 503");
      assert.equal(api.headers['x-pos-agent-attempts'], '1');
      upstream = { ok: false, kind: 'token', error: { kind: 'unavailable', reason: 'rate_limited', message: 'wait', retryAfterS: 5 }, attempts: 0 };
      const agent = await ask(socket, '/v1/proxy/default/x');
      assert.equal(agent.status, 503);
      assert.equal(agent.headers['x-pos-agent-error'], 'token_unavailable', "the agent's own 503");
      for (const status of [400, 404, 413, 500]) {
        upstream = { status, headers: { 'x-pos-agent-error': 'forged' }, body: '{}' };
        const a = await ask(socket, '/v1/proxy/default/x');
        assert.equal(a.status, status);
        assert.equal(a.headers['x-pos-agent-error'], undefined, `an API ${status} that sent the header itself`);
      }
    });
  });

  describe('404 unknown_account on every route that names an account', () => {
    const routes: Array<[string, (s: string) => Promise<Answer>]> = [
      ['GET /v1/token', (s) => ask(s, '/v1/token?account=nope')],
      ['POST /v1/token/refresh', (s) => post(s, '/v1/token/refresh', { account: 'nope', rejected_token: 'old' })],
      ['ANY /v1/proxy/nope/...', (s) => ask(s, '/v1/proxy/nope/api/x', { method: 'PUT', body: '{}', headers: JSON_TYPE })],
      ['POST /v1/outbox', (s) => post(s, '/v1/outbox', { account: 'nope', path: '/x', body: {} })],
      ['GET /v1/outbox?account=nope', (s) => ask(s, '/v1/outbox?account=nope')],
    ];
    for (const [route, send] of routes) {
      test(route, async () => {
        const a = await send(socket);
        assert.equal(a.status, 404, a.text);
        assert.deepEqual(a.json, {
          error: 'unknown_account',
          message: `no account named nope; the agent has default, till-2, no-api: name one of them, or add accounts.nope to ${CONFIG_FILE}`,
          known_accounts: ['default', 'till-2', 'no-api'],
        });
        assert.deepEqual(tokens.asked, [], 'the token source was not asked');
        assert.equal(forwarded.length, 0, 'nothing was forwarded');
      });
    }
  });

  describe('413 names the one limit passed, its value and the setting that raises it', () => {
    test('a proxy body declared over accounts.NAME.api.maxBodyBytes', async () => {
      const a = await post(socket, '/v1/proxy/till-2/x', 'x'.repeat(2_345));
      assert.equal(a.status, 413);
      assert.deepEqual(a.json, {
        error: 'payload_too_large',
        message: `the body is 2,345 bytes; accounts.till-2.api.maxBodyBytes allows 2,000 bytes: raise it in ${CONFIG_FILE} (then systemctl reload pos-token-agent)`,
        limit_bytes: 2_000,
        setting: 'accounts.till-2.api.maxBodyBytes',
      });
    });

    test('a chunked proxy body that passes it on the way', async () => {
      const text = await raw(
        socket,
        `POST /v1/proxy/default/x HTTP/1.1\r\nHost: agent\r\nX-Pos-Agent: 1\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n${'y'.repeat(0x800)}\r\n0\r\n\r\n`,
      );
      assert.match(text, /^HTTP\/1\.1 413 /);
      const body = JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4).replace(/^[0-9a-f]+\r\n|\r\n0\r\n\r\n$/g, '')) as Record<string, unknown>;
      assert.equal(body.message, `the body is more than 1,000 bytes; accounts.default.api.maxBodyBytes allows 1,000 bytes: raise it in ${CONFIG_FILE} (then systemctl reload pos-token-agent)`);
      assert.equal(rawHeaders(text)['x-pos-agent-error'], 'payload_too_large');
    });

    test("an outbox entry's body over its account's maxBodyBytes", async () => {
      const a = await post(socket, '/v1/outbox', { account: 'default', path: '/x', body: { text: 'z'.repeat(1_100) } });
      assert.equal(a.status, 413);
      assert.deepEqual(a.json, {
        error: 'payload_too_large',
        message: `the entry's body (as JSON) is 1,111 bytes; accounts.default.api.maxBodyBytes allows 1,000 bytes: raise it in ${CONFIG_FILE} (then systemctl reload pos-token-agent)`,
        limit_bytes: 1_000,
        setting: 'accounts.default.api.maxBodyBytes',
      });
    });

    test('an outbox request larger than any entry can be', async () => {
      const cap = 2_000 + 64 * 1024;
      const body = JSON.stringify({ path: '/x', body: 'q'.repeat(cap) });
      const a = await post(socket, '/v1/outbox', body);
      assert.equal(a.status, 413);
      assert.equal(a.json.limit_bytes, cap);
      assert.equal(a.json.setting, 'accounts.till-2.api.maxBodyBytes');
      assert.equal(
        a.json.message,
        `the request body is ${Buffer.byteLength(body).toLocaleString('en-US')} bytes, past the most an outbox entry takes (67,536 bytes): accounts.till-2.api.maxBodyBytes ` +
          `(2,000 bytes, the largest of the accounts) plus 65,536 for the entry's other fields; raise it in ${CONFIG_FILE} (then systemctl reload pos-token-agent)`,
      );
    });

    test('a refresh body over the fixed 16 KiB', async () => {
      const body = JSON.stringify({ rejected_token: 'x'.repeat(17_000) });
      assert.equal(body.length, 17_021);
      const a = await post(socket, '/v1/token/refresh', body);
      assert.equal(a.status, 413);
      assert.deepEqual(a.json, {
        error: 'payload_too_large',
        message: 'the body is 17,021 bytes; POST /v1/token/refresh takes at most 16,384 bytes (a fixed limit)',
        limit_bytes: 16_384,
        setting: null,
      });
    });
  });

  describe('bodies that are not a JSON object', () => {
    test('a whole body that is a JSON string holding JSON is refused like any non-object', async () => {
      for (const path of ['/v1/token/refresh', '/v1/outbox']) {
        const a = await post(socket, path, JSON.stringify(JSON.stringify({ account: 'default', rejected_token: 'x', path: '/x', body: {} })));
        assert.equal(a.status, 400, `${path}: ${a.text}`);
        assert.equal(a.json.message, 'the body must be a JSON object', path);
      }
      assert.deepEqual(tokens.asked, []);
    });

    test("an outbox entry's body that is a JSON string holding a JSON document (encoded twice) is refused", async () => {
      const before = outbox.enqueued.length;
      for (const body of ['{"receipts":[]}', ' [1, 2]']) {
        const a = await post(socket, '/v1/outbox', { path: '/x', body });
        assert.equal(a.status, 400, a.text);
        assert.equal(a.json.message, 'body is a JSON string holding a JSON document (encoded twice?): send the document itself as body');
      }
      assert.equal(outbox.enqueued.length, before, 'nothing was queued');
    });

    test('a string body that is not a JSON document is a body like any other', async () => {
      for (const body of ['hello', '{not json', '42', '"quoted"']) {
        const a = await post(socket, '/v1/outbox', { path: '/x', body });
        assert.equal(a.status, 202, `${body}: ${a.text}`);
        assert.equal(outbox.enqueued.at(-1)!.body, JSON.stringify(body));
      }
    });
  });

  describe('the table', () => {
    test('every route answers a method it does not take with 405 and Allow listing those it does', async () => {
      for (const route of ROUTES) {
        const methods = Object.keys(route.methods);
        const path = examplePath(route);
        const a = await ask(socket, path, { method: methods.includes('PUT') ? 'TRACE' : 'PUT' });
        assert.equal(a.status, 405, `${route.label} ${path}: ${a.text}`);
        assert.equal(a.headers.allow, methods.join(', '), path);
        assert.equal(a.headers['x-pos-agent-error'], 'method_not_allowed');
      }
    });

    test('HEAD is answered by a GET route, without a body', async () => {
      const a = await ask(socket, '/v1/status', { method: 'HEAD' });
      assert.equal(a.status, 200);
      assert.equal(a.text, '');
    });

    test('/v1/status keeps which config runs', async () => {
      const a = await ask(socket, '/v1/status');
      assert.deepEqual(a.json.config, config());
    });
  });
});

const ID = randomUUID();
/** Paths that reach the table's pattern routes; a pattern route added without one here fails the 405 test. */
const PATTERN_EXAMPLES = ['http://agent/v1/proxy/default/x', '/v1/outbox', `/v1/outbox/${ID}`, `/v1/outbox/${ID}/retry`, '/v1/outbox/not-an-id'];

/** A request target the route, and no route before it, answers. */
function examplePath(route: Route): string {
  if ('rawPrefix' in route) return `${route.rawPrefix}default/x`;
  if (typeof route.path === 'string') return route.path;
  const earlier = ROUTES.slice(0, ROUTES.indexOf(route));
  const matches = (r: Route, p: string) => 'path' in r && (typeof r.path === 'string' ? r.path === p : r.path.test(p));
  const found = PATTERN_EXAMPLES.find((target) => {
    const p = new URL(target, 'http://agent').pathname;
    return matches(route, p) && !earlier.some((r) => matches(r, p));
  });
  assert.ok(found, `no example path for the route ${String(route.path)}`);
  return found;
}
