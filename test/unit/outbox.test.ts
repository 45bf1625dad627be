/**
 * outbox/: what an answer means (a table), the backoff, and the lanes against a real HTTP server and a real
 * outbox.db, on the fake clock: in order per account, one in flight, 5xx and network errors kept at the head,
 * 429 honoured, other 4xx rejected while the next ones go, a crash's in-flight entry sent again.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, beforeEach, describe, test } from 'node:test';
import { authorities } from '../../src/authorities/index.js';
import type { AccountConfig, OutboxConfig } from '../../src/config/index.js';
import { createForwarder, type ForwardTokenSource } from '../../src/forward/index.js';
import { FakeClock } from '../../src/lib/clock.js';
import { silentLogger } from '../../src/lib/log.js';
import { createMetrics } from '../../src/lib/metrics.js';
import { backoffMs, classify, createOutbox, retryAfterMs, RETRY_MAX_MS, STORAGE_RETRY_MAX_MS, type Outbox } from '../../src/outbox/index.js';
import { lazyOutbox, openOutbox, OutboxStorageError, type OutboxStore } from '../../src/store/index.js';
import type { TokenAnswer } from '../../src/tokens/index.js';

describe('classify: the contract\'s rules', () => {
  const now = Date.UTC(2026, 0, 1);
  const cases: Array<[number, Record<string, string>, string, number?]> = [
    [200, {}, 'delivered'],
    [202, {}, 'delivered'],
    [204, {}, 'delivered'],
    [400, {}, 'rejected'],
    [404, {}, 'rejected'],
    [409, {}, 'rejected'],
    [422, {}, 'rejected'],
    [401, {}, 'retry'],
    [408, {}, 'retry'],
    [429, { 'retry-after': '30' }, 'retry', 30_000],
    [429, {}, 'retry', undefined],
    [500, {}, 'retry'],
    [502, {}, 'retry'],
    [503, { 'retry-after': '5' }, 'retry', 5_000],
    [504, {}, 'retry'],
    [302, {}, 'retry'],
  ];
  for (const [status, headers, kind, afterMs] of cases) {
    test(`${status} ${JSON.stringify(headers)} -> ${kind}`, () => {
      const v = classify(status, headers, '{"x":1}', now);
      assert.equal(v.kind, kind);
      if (v.kind === 'retry') assert.equal(v.afterMs, afterMs);
      if (v.kind !== 'retry') assert.deepEqual(v.response, { status, body: '{"x":1}' });
    });
  }
  test('Retry-After as seconds or an HTTP date; nonsense is ignored', () => {
    assert.equal(retryAfterMs({ 'retry-after': '12' }, now), 12_000);
    assert.equal(retryAfterMs({ 'retry-after': new Date(now + 9_000).toUTCString() }, now), 9_000);
    assert.equal(retryAfterMs({ 'retry-after': '-5' }, now), undefined);
    assert.equal(retryAfterMs({ 'retry-after': '1.5' }, now), undefined);
    assert.equal(retryAfterMs({}, now), undefined);
  });
});

describe('backoffMs: jittered, bounded, never sooner than asked', () => {
  test('doubles from 1 s to 5 min within +-20%', () => {
    for (const r of [0, 0.5, 0.999]) {
      assert.ok(backoffMs(1, () => r) >= 800 && backoffMs(1, () => r) <= 1_200);
      assert.ok(backoffMs(4, () => r) >= 6_400 && backoffMs(4, () => r) <= 9_600);
      assert.ok(backoffMs(1_000, () => r) <= RETRY_MAX_MS * 1.2);
    }
  });
  test('a wait the server asked for is kept, plus at most 10%', () => {
    assert.equal(backoffMs(1, () => 0, 30_000), 30_000);
    assert.equal(backoffMs(9, () => 0.999, 30_000), Math.round(30_000 * 1.0999));
  });
});

/** Always the same token; counts forced logins. */
class Tokens implements ForwardTokenSource {
  refreshes = 0;
  token = 'tok-1';
  async getToken(account: string): Promise<TokenAnswer> {
    return { ok: true, token: { accessToken: this.token, tokenType: 'Bearer', expiresIn: 3600, expiresAt: '2030-01-01T00:00:00Z', account, scope: null } };
  }
  async refresh(account: string): Promise<TokenAnswer> {
    this.refreshes += 1;
    this.token = `tok-${this.refreshes + 1}`;
    return this.getToken(account);
  }
}

describe('the outbox lanes', () => {
  let server: Server;
  let base: string;
  let dir: string;
  let store: OutboxStore;
  let outbox: Outbox;
  let clock: FakeClock;
  let tokens: Tokens;
  const arrived: Array<{ account: string; n: number; auth: string }> = [];
  const inflight = new Map<string, number>();
  let maxInflight = 0;
  /** What the server answers next (then 202). */
  let script: Array<(res: ServerResponse) => void> = [];

  before(async () => {
    server = createServer((req: IncomingMessage, res) => {
      const account = req.url!.split('/')[1]!;
      inflight.set(account, (inflight.get(account) ?? 0) + 1);
      maxInflight = Math.max(maxInflight, inflight.get(account)!);
      let body = '';
      req.on('data', (c: Buffer) => (body += c));
      req.on('end', () => {
        setTimeout(() => {
          inflight.set(account, inflight.get(account)! - 1);
          const step = script.shift();
          if (step) return step(res);
          arrived.push({ account, n: (JSON.parse(body) as { n: number }).n, auth: req.headers.authorization ?? '' });
          res.writeHead(202, { 'content-type': 'application/json' }).end('{"accepted":true}');
        }, 2);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  const config: OutboxConfig = { maxEntries: 1000, maxBytes: 10_000_000, retainMs: 7 * 86_400_000, alertAfterMs: 3_600_000 };
  const accountsFor = (names: string[]): Record<string, AccountConfig> => {
    const json = { accounts: Object.fromEntries(names.map((n) => [n, { authority: 'oauth2', tokenUrl: `${base}/token`, apiUrl: base }])) };
    return authorities.parseConfig(json, 'test').accounts;
  };
  const start = (names: string[], extra: Partial<OutboxConfig> = {}) => {
    store ??= openOutbox({ dir, maxEntries: 1000, maxBytes: 10_000_000, now: () => clock.now() });
    const forwarder = createForwarder({ tokens });
    outbox = createOutbox({ store, forwarder, accounts: accountsFor(names), config: { ...config, ...extra }, log: silentLogger, clock, random: () => 0.5, metrics: createMetrics() });
    outbox.start();
    return outbox;
  };
  const enqueue = (account: string, n: number, key?: string) =>
    outbox.enqueue({ account, method: 'POST', path: `/${account}/submit`, headers: {}, body: JSON.stringify({ n }), ...(key ? { key } : {}) });
  /** Until cond() holds, letting real I/O run (bounded: 5 s, far above the few ms each exchange takes here). */
  const until = async (cond: () => boolean, what: string) => {
    const end = Date.now() + 5_000;
    while (!cond()) {
      if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'outbox-lanes-'));
    clock = new FakeClock();
    tokens = new Tokens();
    arrived.length = 0;
    script = [];
    maxInflight = 0;
    store = undefined as unknown as OutboxStore;
  });
  afterEach(async () => {
    await outbox?.stop();
    store?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('per account in order of enqueue, one request in flight per account', async () => {
    start(['a', 'b']);
    const acks = [];
    for (let i = 0; i < 20; i++) acks.push(enqueue(i % 2 ? 'b' : 'a', i));
    const results = await Promise.all(acks);
    assert.ok(results.every((r) => r.ok && r.created));
    await until(() => arrived.length === 20, '20 deliveries');
    assert.deepEqual(arrived.filter((x) => x.account === 'a').map((x) => x.n), [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]);
    assert.deepEqual(arrived.filter((x) => x.account === 'b').map((x) => x.n), [1, 3, 5, 7, 9, 11, 13, 15, 17, 19]);
    assert.equal(maxInflight, 1);
    await until(() => store.stats().byState.delivered === 20, 'all marked delivered');
    assert.equal(outbox.status().a!.queued, 0);
    assert.ok(outbox.status().a!.lastDeliveredAtWall !== null);
  });

  test('a 5xx keeps the entry at the head (the next waits); it goes after the backoff, then the rest in order', async () => {
    start(['a']);
    script = [(res) => res.writeHead(503).end('down')];
    await enqueue('a', 1);
    await enqueue('a', 2);
    await until(() => script.length === 0 && store.head('a')?.state === 'queued' && store.head('a')?.attempts === 1, 'the first attempt');
    assert.equal(arrived.length, 0);
    assert.match(store.head('a')!.lastError!, /503/);
    assert.ok(outbox.status().a!.lastError);
    await clock.advance(1_300); // backoff after one failure: 1 s +-20%
    await until(() => arrived.length === 2, 'both delivered after the backoff');
    assert.deepEqual(arrived.map((x) => x.n), [1, 2]);
  });

  test('a write of outbox.db that fails (a full disk) is tried again within 5 s, however often it failed before', async () => {
    start(['a']);
    const markSending = store.markSending.bind(store);
    let refusals = 12;
    store.markSending = (id: string) => {
      if (refusals > 0) {
        refusals -= 1;
        throw new OutboxStorageError('the disk is full', { diskFull: true });
      }
      return markSending(id);
    };
    await enqueue('a', 1);
    await until(() => refusals === 11, 'the first attempt, refused');
    while (refusals > 0) {
      const left = refusals;
      await clock.advance(STORAGE_RETRY_MAX_MS * 1.2 + 1); // the longest wait: 5 s + 20% jitter
      await until(() => refusals < left, `attempt ${13 - left} within 6 s of the refusal before`);
    }
    await clock.advance(STORAGE_RETRY_MAX_MS * 1.2 + 1);
    await until(() => arrived.length === 1, 'delivered within 6 s of the last refusal, once the disk took the write');
  });

  test('429 is honoured: nothing is sent before Retry-After', async () => {
    start(['a']);
    script = [(res) => res.writeHead(429, { 'retry-after': '30' }).end()];
    await enqueue('a', 1);
    await until(() => store.head('a')?.attempts === 1 && store.head('a')?.state === 'queued', 'the refused attempt');
    await clock.advance(29_000);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(arrived.length, 0);
    await clock.advance(4_000);
    await until(() => arrived.length === 1, 'delivery after Retry-After');
  });

  test('another 4xx rejects the entry, keeps the answer, and the next one goes on', async () => {
    start(['a']);
    script = [(res) => res.writeHead(422, { 'content-type': 'application/json' }).end('{"error":{"code":"BadStructure"}}')];
    const first = await enqueue('a', 1);
    await enqueue('a', 2);
    await until(() => arrived.length === 1, 'the second delivered');
    assert.deepEqual(arrived.map((x) => x.n), [2]);
    const rejected = store.get((first as { entry: { id: string } }).entry.id)!;
    assert.equal(rejected.state, 'rejected');
    assert.deepEqual(rejected.response, { status: 422, body: '{"error":{"code":"BadStructure"}}' });
  });

  test('a 401: one forced login, the entry sent again and delivered', async () => {
    start(['a']);
    script = [(res) => res.writeHead(401).end()];
    const r = await enqueue('a', 1);
    await until(() => arrived.length === 1, 'delivered after the forced login');
    assert.equal(tokens.refreshes, 1);
    assert.equal(arrived[0]!.auth, 'Bearer tok-2');
    await until(() => store.get((r as { entry: { id: string } }).entry.id)!.state === 'delivered', 'marked delivered');
  });

  test('an entry left sending by a crash is sent again at start (at least once), before the next', async () => {
    store = openOutbox({ dir, maxEntries: 1000, maxBytes: 10_000_000, now: () => clock.now() });
    const a = await store.enqueue({ account: 'a', method: 'POST', path: '/a/submit', headers: {}, body: '{"n":1}' });
    await store.enqueue({ account: 'a', method: 'POST', path: '/a/submit', headers: {}, body: '{"n":2}' });
    store.markSending((a as { entry: { id: string } }).entry.id); // the request went out; then kill -9
    start(['a']);
    await until(() => arrived.length === 2, 'both delivered');
    assert.deepEqual(arrived.map((x) => x.n), [1, 2]);
    assert.equal(store.get((a as { entry: { id: string } }).entry.id)!.attempts, 2);
  });

  test('an account without apiUrl keeps its entries until the config gives it one', async () => {
    start(['a']);
    outbox.reconfigure({ a: { ...accountsFor(['a']).a!, apiUrl: undefined } as AccountConfig });
    await enqueue('a', 1);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(arrived.length, 0);
    outbox.reconfigure(accountsFor(['a']));
    await until(() => arrived.length === 1, 'delivered once apiUrl is back');
  });

  test('stalled: the oldest queued entry older than alertAfter', async () => {
    start(['a'], { alertAfterMs: 60_000 });
    script = Array.from({ length: 50 }, () => (res: ServerResponse) => res.writeHead(503).end());
    await enqueue('a', 1);
    assert.deepEqual(outbox.stalled(), []);
    clock.jumpWall(61_000);
    assert.deepEqual(outbox.stalled(), ['a']);
    script = [];
  });

  test('retry of a queued entry lifts its backoff at once', async () => {
    start(['a']);
    script = [(res) => res.writeHead(500).end()];
    const r = await enqueue('a', 1);
    await until(() => store.head('a')?.attempts === 1 && store.head('a')?.state === 'queued', 'the failed attempt');
    const retried = outbox.retry((r as { entry: { id: string } }).entry.id);
    assert.ok(retried.ok);
    await until(() => arrived.length === 1, 'delivered without waiting for the backoff');
  });

  test('delivered entries are pruned after retention', async () => {
    start(['a'], { retainMs: 0 });
    await enqueue('a', 1);
    await until(() => store.stats().byState.delivered === 1, 'delivered');
    await clock.advance(3_600_000 + 1_000);
    await until(() => store.stats().byState.delivered === 0, 'pruned');
  });
});

describe('lazyOutbox: outbox.db only where it is used', () => {
  test('nothing is made until an enqueue or open(); reads answer empty meanwhile; an existing file is found', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'outbox-lazy-'));
    try {
      const lazy = lazyOutbox({ dir, maxEntries: 10, maxBytes: 1_000_000 });
      assert.equal(lazy.exists(), false);
      assert.equal(lazy.opened, false);
      assert.deepEqual(lazy.pendingAccounts(), []);
      assert.equal(lazy.head('a'), undefined);
      assert.deepEqual(lazy.cancel('0f0e0d0c-0000-4000-8000-000000000000'), { ok: false, reason: 'not_found' });
      assert.equal(lazy.stats().pendingEntries, 0);
      assert.equal(existsSync(join(dir, 'outbox.db')), false, 'reads made no file');
      const r = await lazy.enqueue({ account: 'a', method: 'POST', path: '/x', headers: {}, body: '{}' });
      assert.ok(r.ok);
      assert.equal(lazy.opened, true);
      assert.equal(lazy.exists(), true);
      lazy.close();
      const again = lazyOutbox({ dir, maxEntries: 10, maxBytes: 1_000_000 });
      assert.equal(again.exists(), true);
      assert.equal(again.open(), undefined);
      assert.equal(again.head('a')?.id, r.ok ? r.entry.id : '');
      again.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
  test('a database that cannot be opened is an error to report, not a crash', () => {
    const dir = mkdtempSync(join(tmpdir(), 'outbox-lazy-'));
    try {
      writeFileSync(join(dir, 'outbox.db'), 'not a database, but 100 bytes of something else entirely: '.repeat(3));
      const lazy = lazyOutbox({ dir, maxEntries: 10, maxBytes: 1_000_000 });
      const problem = lazy.open();
      assert.match(String(problem?.message), /outbox/);
      assert.equal(lazy.opened, false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
