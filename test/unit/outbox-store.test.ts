import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, statfsSync, statSync, truncateSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { openDatabase } from '../../src/store/sqlite.js';
import {
  OUTBOX_FILE,
  OUTBOX_MIGRATIONS,
  OUTBOX_STATES,
  openOutbox,
  OutboxStorageError,
  type OpenOutboxOptions,
  type OutboxInput,
  type OutboxStats,
  type OutboxStore,
} from '../../src/store/index.js';

const FIXTURE = resolve(import.meta.dirname, '../fixtures/outbox/enqueue-loop.ts');

function input(extra: Partial<OutboxInput> = {}): OutboxInput {
  return { account: 'main', method: 'POST', path: '/api/v1/receipts', headers: { 'content-type': 'application/json' }, body: '{"n":1}', ...extra };
}

/** Small seeded PRNG (mulberry32): the property test's sequence is the same on every run. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** stats() as recounted from the file by another connection. */
function recount(path: string): OutboxStats {
  const db = new Database(path, { readonly: true });
  try {
    const byState = Object.fromEntries(OUTBOX_STATES.map((s) => [s, 0])) as OutboxStats['byState'];
    for (const r of db.prepare('SELECT state, count(*) AS n FROM entries GROUP BY state').all() as Array<{ state: 'queued'; n: number }>) {
      byState[r.state] = r.n;
    }
    const pending = "state IN ('queued', 'sending')";
    const totals = db.prepare(`SELECT count(*) AS n, coalesce(sum(bytes), 0) AS b FROM entries WHERE ${pending}`).get() as { n: number; b: number };
    const accounts: OutboxStats['accounts'] = {};
    const rows = db.prepare('SELECT account, last_delivered_at, last_error FROM accounts').all() as Array<{
      account: string;
      last_delivered_at: number | null;
      last_error: string | null;
    }>;
    for (const a of rows) {
      const name = a.account;
      accounts[name] = {
        queued: db.prepare(`SELECT count(*) FROM entries WHERE account = ? AND ${pending}`).pluck().get(name) as number,
        oldestQueuedAt:
          (db.prepare(`SELECT created_at FROM entries WHERE account = ? AND ${pending} ORDER BY seq LIMIT 1`).pluck().get(name) as number | undefined) ?? null,
        lastDeliveredAt: a.last_delivered_at,
        lastError: a.last_error,
      };
    }
    return { byState, pendingEntries: totals.n, pendingBytes: totals.b, accounts };
  } finally {
    db.close();
  }
}

describe('outbox store', () => {
  let dir: string;
  const open: OutboxStore[] = [];
  const openIt = (extra: Partial<OpenOutboxOptions> = {}): OutboxStore => {
    const o = openOutbox({ dir, maxEntries: 1000, maxBytes: 1_000_000, ...extra });
    open.push(o);
    return o;
  };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'pta-outbox-'));
  });

  afterEach(() => {
    for (const o of open.splice(0)) o.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('outbox.db: mode 0600 in a new 0700 directory, WAL and synchronous FULL read back, its own user_version', async () => {
    const sub = join(dir, 'state');
    // Spies on the PRAGMAs the outbox's own connection prepares and what they return.
    const calls: Array<[string, unknown]> = [];
    const original = Database.prototype.prepare;
    Database.prototype.prepare = function (this: Database.Database, source: string) {
      const statement = original.call(this, source);
      if (!source.startsWith('PRAGMA ')) return statement;
      const get = statement.get.bind(statement) as (...args: unknown[]) => unknown;
      statement.get = ((...args: unknown[]) => {
        const result = get(...args);
        calls.push([source, result]);
        return result;
      }) as typeof statement.get;
      return statement;
    } as typeof original;
    let o: OutboxStore;
    try {
      o = openOutbox({ dir: sub, maxEntries: 10, maxBytes: 10_000 });
      open.push(o);
    } finally {
      Database.prototype.prepare = original;
    }
    const results = new Map(calls);
    assert.equal(String(results.get('PRAGMA journal_mode = WAL')).toLowerCase(), 'wal');
    assert.equal(results.get('PRAGMA synchronous'), 2, 'synchronous read back as 2 (FULL) after open');
    assert.equal(o.path, join(sub, OUTBOX_FILE));
    assert.equal(statSync(sub).mode & 0o777, 0o700);
    assert.equal(statSync(o.path).mode & 0o777, 0o600);
    await o.enqueue(input());
    assert.equal(statSync(`${o.path}-wal`).mode & 0o777, 0o600, 'the WAL follows the database mode');
    const db = new Database(o.path, { readonly: true });
    try {
      assert.equal(db.pragma('journal_mode', { simple: true }), 'wal', 'WAL is persistent in the file');
      assert.equal(db.pragma('user_version', { simple: true }), OUTBOX_MIGRATIONS.length);
    } finally {
      db.close();
    }
    assert.equal(o.integrityCheck(), 'ok');
  });

  test('round trip and every transition', async () => {
    let clock = 1_000;
    const o = openIt({ now: () => clock });
    const r = await o.enqueue(input({ key: 'till-1', headers: { 'x-till': 'A' }, body: 'é' }));
    assert.ok(r.ok && r.created);
    assert.equal(r.position, 1);
    const e = r.entry;
    assert.match(e.id, /^[0-9a-f-]{36}$/);
    assert.deepEqual(o.get(e.id), e);
    assert.deepEqual(
      { ...e, id: '', seq: 0 },
      {
        ...{ id: '', seq: 0, account: 'main', key: 'till-1', method: 'POST', path: '/api/v1/receipts', headers: { 'x-till': 'A' } },
        ...{ body: 'é', bytes: 2 + '/api/v1/receipts'.length + '{"x-till":"A"}'.length, state: 'queued', attempts: 0 },
        ...{ createdAt: 1_000, updatedAt: 1_000, deliveredAt: null, lastError: null, response: null },
      },
    );
    clock = 2_000;
    assert.deepEqual({ ...o.markSending(e.id) }, { ...e, state: 'sending', attempts: 1, updatedAt: 2_000 });
    clock = 3_000;
    const retried = o.markRetry(e.id, 'upstream 503');
    assert.equal(retried.state, 'queued');
    assert.equal(retried.lastError, 'upstream 503');
    assert.equal(retried.seq, e.seq);
    assert.equal(o.stats().accounts.main?.lastError, 'upstream 503');
    o.markSending(e.id);
    clock = 4_000;
    const done = o.markDelivered(e.id, { status: 201, body: '{"uuid":"x"}' });
    assert.equal(done.state, 'delivered');
    assert.equal(done.attempts, 2);
    assert.equal(done.lastError, null, 'a delivered entry shows no stale error; attempts tells it took two');
    assert.equal(done.deliveredAt, 4_000);
    assert.deepEqual(done.response, { status: 201, body: '{"uuid":"x"}' });
    assert.deepEqual(o.get(e.id), done);
    assert.deepEqual(o.stats().accounts.main, { queued: 0, oldestQueuedAt: null, lastDeliveredAt: 4_000, lastError: null });
    assert.throws(() => o.markSending(e.id), /it is delivered/, 'a delivered entry is not sent again');
    assert.throws(() => o.markDelivered('nope', { status: 200, body: '' }), /no outbox entry/);

    const second = await o.enqueue(input());
    assert.ok(second.ok);
    o.markSending(second.entry.id);
    clock = 5_000;
    const rejected = o.markRejected(second.entry.id, { status: 422, body: '{"error":"bad"}' }, 'http 422');
    assert.equal(rejected.state, 'rejected');
    assert.deepEqual(rejected.response, { status: 422, body: '{"error":"bad"}' });
    assert.equal(rejected.lastError, 'http 422');
    const again = o.retry(second.entry.id);
    assert.ok(again.ok);
    assert.equal(again.entry.state, 'queued');
    assert.equal(again.entry.response, null, 'the old answer is no longer its outcome');
    const cancelled = o.cancel(second.entry.id);
    assert.ok(cancelled.ok);
    assert.equal(cancelled.entry.state, 'cancelled');
    assert.ok(o.retry(second.entry.id).ok, 'a cancelled entry can be queued again');
    assert.deepEqual(o.stats(), recount(o.path));
  });

  test('idempotent by (account, key): in one batch, across batches, across a reopen; another account is another entry', async () => {
    const commits: number[] = [];
    const o = openIt({ onCommit: (n) => commits.push(n) });
    const [a, b] = await Promise.all([o.enqueue(input({ key: 'k1', body: 'first' })), o.enqueue(input({ key: 'k1', body: 'second' }))]);
    assert.deepEqual(commits, [2], 'both in one transaction');
    assert.ok(a.ok && b.ok);
    assert.equal(a.created, true);
    assert.equal(b.created, false);
    assert.equal(b.entry.id, a.entry.id);
    assert.equal(b.entry.body, 'first');
    assert.equal(b.position, 1);
    const c = await o.enqueue(input({ key: 'k1', body: 'third' }));
    assert.ok(c.ok && !c.created && c.entry.id === a.entry.id);
    const other = await o.enqueue(input({ account: 'other', key: 'k1' }));
    assert.ok(other.ok && other.created && other.entry.id !== a.entry.id);
    o.close();
    const reopened = openIt();
    const d = await reopened.enqueue(input({ key: 'k1', body: 'fourth' }));
    assert.ok(d.ok && !d.created);
    assert.deepEqual(d.entry, a.entry);
    reopened.markSending(a.entry.id);
    reopened.markDelivered(a.entry.id, { status: 200, body: '' });
    const e = await reopened.enqueue(input({ key: 'k1' }));
    assert.ok(e.ok && !e.created && e.entry.state === 'delivered');
    assert.equal(e.position, 0, 'no longer waiting');
    assert.equal(reopened.stats().byState.queued, 1, 'only the other account\'s entry waits');
  });

  test('order by seq per account; positions; head skips delivered, rejected and cancelled', async () => {
    const o = openIt();
    const rs = await Promise.all(Array.from({ length: 6 }, (_, i) => o.enqueue(input({ account: i % 2 ? 'b' : 'a', body: `${i}` }))));
    assert.deepEqual(rs.map((r) => (r.ok ? r.position : -1)), [1, 1, 2, 2, 3, 3]);
    const ids = rs.map((r) => (r.ok ? r.entry.id : ''));
    assert.deepEqual(o.list({ account: 'a', limit: 10 }).entries.map((e) => e.id), [ids[0], ids[2], ids[4]], 'bodies 0, 2, 4');
    assert.deepEqual(o.pendingAccounts().sort(), ['a', 'b']);
    assert.equal(o.head('a')?.id, ids[0]);
    o.markSending(ids[0]!);
    assert.equal(o.head('a')?.id, ids[0], 'the entry in flight stays the head');
    o.markDelivered(ids[0]!, { status: 200, body: '' });
    assert.equal(o.head('a')?.id, ids[2]);
    o.markSending(ids[2]!);
    o.markRejected(ids[2]!, { status: 400, body: '' }, 'http 400');
    assert.equal(o.head('a')?.id, ids[4]);
    assert.ok(o.cancel(ids[4]!).ok);
    assert.equal(o.head('a'), undefined);
    assert.deepEqual(o.pendingAccounts(), ['b']);
    assert.equal(o.head('b')?.id, ids[1]);
    const late = await o.enqueue(input({ account: 'a' }));
    assert.ok(late.ok && late.position === 1);
    assert.deepEqual(o.list({ state: 'queued', limit: 10 }).entries.map((e) => e.seq), [...o.list({ state: 'queued', limit: 10 }).entries.map((e) => e.seq)].sort((x, y) => x - y));
    assert.deepEqual(o.list({ account: 'a', state: 'rejected', limit: 10 }).entries.map((e) => e.id), [ids[2]]);
    assert.equal(o.list({ limit: 2 }).entries.length, 2);
    assert.throws(() => o.list({ limit: 0 }), RangeError);
    assert.throws(() => o.list({ limit: 1001 }), RangeError);
  });

  test('list: what waits first, a page at a time; the cursor holds while entries are added', async () => {
    const o = openIt();
    const rs = await Promise.all(Array.from({ length: 8 }, (_, i) => o.enqueue(input({ account: i % 2 ? 'b' : 'a', body: `${i}` }))));
    const e = rs.map((r) => (r.ok ? r.entry.id : ''));
    o.markSending(e[0]!);
    o.markDelivered(e[0]!, { status: 200, body: '' });
    o.markSending(e[1]!);
    o.markRejected(e[1]!, { status: 400, body: '' }, 'http 400');
    assert.ok(o.cancel(e[7]!).ok);
    o.markSending(e[3]!);
    const ids = (page: { entries: Array<{ id: string }> }) => page.entries.map((x) => x.id);

    const first = o.list({ limit: 3 });
    assert.deepEqual(ids(first), [e[2], e[3], e[4]], 'the waiting ones (queued and sending) in the order they go');
    assert.ok(first.next);
    assert.equal(first.entries[0]!.body, '', 'a list leaves out what an entry sends');
    assert.equal(o.get(e[2]!)!.body, '2', 'get() has it');
    const added = await o.enqueue(input({ account: 'a', body: '8' }));
    assert.ok(added.ok);
    const second = o.list({ limit: 3, after: first.next });
    assert.deepEqual(ids(second), [e[5], e[6], added.entry.id], 'an entry added meanwhile comes after the cursor, nothing twice');
    const third = o.list({ limit: 3, after: second.next! });
    assert.deepEqual(ids(third), [e[0], e[1], e[7]], 'then the finished ones, oldest first');
    assert.equal(third.next, null, 'nothing follows');

    const a1 = o.list({ account: 'a', limit: 2 });
    assert.deepEqual(ids(a1), [e[2], e[4]]);
    const a2 = o.list({ account: 'a', limit: 2, after: a1.next! });
    assert.deepEqual(ids(a2), [e[6], added.entry.id]);
    assert.deepEqual(ids(o.list({ account: 'a', limit: 2, after: a2.next! })), [e[0]]);
    const rejected = o.list({ state: 'rejected', limit: 1 });
    assert.deepEqual([ids(rejected), rejected.next], [[e[1]], null]);
    const queued = o.list({ state: 'queued', account: 'b', limit: 1 });
    assert.deepEqual(ids(queued), [e[5]], 'b: 3 is sending, 7 cancelled');
    assert.equal(queued.next, null);
    const inFinished = o.list({ limit: 1, after: second.next! }).next!;
    assert.deepEqual(ids(o.list({ state: 'queued', limit: 10, after: inFinished })), [], 'past the waiting ones no queued entry follows');
    assert.throws(() => o.list({ limit: 10, after: 'x12' }), RangeError);
    assert.throws(() => o.list({ limit: 10, after: '' }), RangeError);
  });

  test('cancel only a queued entry; retry of a rejected entry keeps its seq, so it goes next', async () => {
    const o = openIt();
    const [first, second] = (await Promise.all([o.enqueue(input({ body: '1' })), o.enqueue(input({ body: '2' }))])).map((r) => (r.ok ? r.entry : undefined));
    assert.deepEqual(o.cancel('missing'), { ok: false, reason: 'not_found' });
    assert.deepEqual(o.retry('missing'), { ok: false, reason: 'not_found' });
    o.markSending(first!.id);
    const busy = o.cancel(first!.id);
    assert.ok(!busy.ok && busy.reason === 'not_queued' && busy.entry?.state === 'sending');
    const notRetryable = o.retry(first!.id);
    assert.ok(!notRetryable.ok && notRetryable.reason === 'not_retryable');
    o.markRejected(first!.id, { status: 409, body: 'dup' }, 'http 409');
    assert.equal(o.head('main')?.id, second!.id);
    const again = o.retry(first!.id);
    assert.ok(again.ok);
    assert.equal(again.entry.seq, first!.seq);
    assert.equal(o.head('main')?.id, first!.id, 'the retried entry goes before the later one');
    assert.equal(o.stats().accounts.main?.oldestQueuedAt, first!.createdAt);
    const cancelDone = o.cancel(second!.id);
    assert.ok(cancelDone.ok);
    assert.ok(!o.cancel(second!.id).ok, 'a cancelled entry cannot be cancelled twice');
    assert.deepEqual(o.stats(), recount(o.path));
  });

  test('an entry left in sending by a crash stays sending after a reopen and is the head', async () => {
    const o = openIt();
    const rs = await Promise.all([o.enqueue(input({ body: '1' })), o.enqueue(input({ body: '2' }))]);
    const id = rs[0]!.ok ? rs[0]!.entry.id : '';
    o.markSending(id);
    o.close();
    const again = openIt();
    assert.equal(again.head('main')?.id, id);
    assert.equal(again.head('main')?.state, 'sending');
    assert.deepEqual(again.stats(), recount(again.path));
    assert.equal(again.markSending(id).attempts, 2, 'sent again: at least once');
  });

  test('limits: entries and bytes answer ok:false and change nothing', async () => {
    const o = openIt({ maxEntries: 3, maxBytes: 200 });
    const small = input({ path: '/p', headers: {}, body: 'x'.repeat(48) }); // 48 + 2 + 2 = 52 bytes
    const rs = await Promise.all([o.enqueue(small), o.enqueue(small), o.enqueue(input({ path: '/p', headers: {}, body: 'y'.repeat(100) }))]);
    assert.deepEqual(rs.map((r) => r.ok || r.reason), [true, true, 'bytes'], '52 + 52 + 104 > 200');
    const before = o.stats();
    const count = o.list({ limit: 100 }).entries.length;
    const third = await o.enqueue(small);
    assert.ok(third.ok);
    const full = await o.enqueue(input({ path: '/p', headers: {}, body: '' }));
    assert.ok(!full.ok && full.reason === 'entries' && full.error === 'outbox_full', JSON.stringify(full));
    assert.equal(o.stats().pendingEntries, before.pendingEntries + 1);
    assert.equal(o.list({ limit: 100 }).entries.length, count + 1);
    const idem = await o.enqueue(input({ key: 'k', path: '/p', headers: {}, body: '' }));
    assert.ok(!idem.ok, 'a new key still counts against the limit');
    // A finished entry frees its place.
    const head = o.head('main')!;
    o.markSending(head.id);
    o.markDelivered(head.id, { status: 200, body: '' });
    assert.ok((await o.enqueue(small)).ok);
    assert.deepEqual(o.stats(), recount(o.path));
  });

  test('an invalid input is refused alone; a non-disk SQLite error rejects the batch and memory stays as the file', async () => {
    const o = openIt();
    await assert.rejects(o.enqueue({ ...input(), body: 42 as unknown as string }), TypeError);
    await assert.rejects(o.enqueue({ ...input(), headers: { a: 1 } as unknown as Record<string, string> }), TypeError);
    assert.ok((await o.enqueue(input())).ok);
    const other = openDatabase(o.path);
    other.exec('DROP TABLE accounts');
    other.close();
    const before = o.stats();
    const results = await Promise.allSettled([o.enqueue(input({ body: 'a' })), o.enqueue(input({ body: 'b' }))]);
    for (const r of results) {
      assert.equal(r.status, 'rejected');
      assert.ok((r as PromiseRejectedResult).reason instanceof OutboxStorageError);
      assert.equal(((r as PromiseRejectedResult).reason as OutboxStorageError).diskFull, false);
    }
    assert.deepEqual(o.stats(), before);
    assert.equal(o.list({ limit: 10 }).entries.length, 1, 'the batch was rolled back');
    const head = o.markSending(o.head('main')!.id);
    const sending = o.stats();
    assert.throws(() => o.markDelivered(head.id, { status: 200, body: '' }), (err: unknown) => err instanceof OutboxStorageError && !err.diskFull);
    assert.equal(o.get(head.id)?.state, 'sending', 'rolled back');
    assert.deepEqual(o.stats(), sending, 'memory as the file');
  });

  test('group commit: 100 enqueues in one turn are one transaction; 1,000 are split at 512', async () => {
    const commits: number[] = [];
    const o = openIt({ maxEntries: 10_000, onCommit: (n) => commits.push(n) });
    const reader = openDatabase(o.path, { readonly: true });
    const rows = () => reader.prepare('SELECT count(*) FROM entries').pluck().get() as number;
    const rs = await Promise.all(Array.from({ length: 100 }, (_, i) => o.enqueue(input({ body: `${i}` }))));
    assert.ok(rs.every((r) => r.ok));
    assert.deepEqual(commits, [100]);
    assert.equal(rows(), 100, 'on disk, seen by another connection');
    assert.deepEqual(rs.map((r) => (r.ok ? r.position : 0)), Array.from({ length: 100 }, (_, i) => i + 1));
    const more = await Promise.all(Array.from({ length: 1000 }, (_, i) => o.enqueue(input({ account: 'b', body: `${i}` }))));
    assert.ok(more.every((r) => r.ok));
    assert.deepEqual(commits, [100, 512, 488]);
    assert.equal(rows(), 1_100);
    reader.close();
  });

  test('stats match a recount from SQL after a seeded random sequence of operations (and after a reopen)', async () => {
    const random = prng(13);
    let clock = 1_700_000_000_000;
    const o = openIt({ maxEntries: 60, maxBytes: 6_000, now: () => (clock += Math.floor(random() * 1_000)) });
    const pick = <T>(xs: readonly T[]): T | undefined => xs[Math.floor(random() * xs.length)];
    for (let step = 0; step < 400; step++) {
      const account = pick(['a', 'b', 'c'])!;
      const roll = random();
      if (roll < 0.35) {
        const n = 1 + Math.floor(random() * 5);
        const one = () => {
          const key = random() < 0.3 ? { key: `k${Math.floor(random() * 20)}` } : {};
          return o.enqueue(input({ account, body: 'x'.repeat(Math.floor(random() * 300)), ...key }));
        };
        await Promise.all(Array.from({ length: n }, one));
      } else if (roll < 0.7) {
        const head = o.head(account);
        if (head) {
          o.markSending(head.id);
          const outcome = random();
          if (outcome < 0.5) o.markDelivered(head.id, { status: 200, body: 'ok' });
          else if (outcome < 0.7) o.markRejected(head.id, { status: 400, body: 'no' }, `http 400 at ${step}`);
          else if (outcome < 0.9) o.markRetry(head.id, `timeout at ${step}`);
        }
      } else if (roll < 0.8) {
        const e = pick(o.list({ account, limit: 1000 }).entries);
        if (e) o.cancel(e.id);
      } else if (roll < 0.9) {
        const e = pick([...o.list({ state: 'rejected', limit: 1000 }).entries, ...o.list({ state: 'cancelled', limit: 1000 }).entries]);
        if (e) o.retry(e.id);
      } else {
        o.pruneBatch(clock - Math.floor(random() * 50_000), 1 + Math.floor(random() * 10));
      }
      if (step % 25 === 0) assert.deepEqual(o.stats(), recount(o.path), `after step ${step}`);
    }
    const last = o.stats();
    assert.deepEqual(last, recount(o.path));
    assert.ok(last.byState.delivered > 0 && last.byState.rejected > 0 && last.byState.cancelled > 0, JSON.stringify(last.byState));
    o.close();
    assert.deepEqual(openIt().stats(), last, 'loaded at open exactly as kept');
  });

  test('pruneBatch deletes at most `batch` finished rows last updated before the cut-off, lowest seq first', async () => {
    let clock = 10_000;
    const o = openIt({ now: () => clock });
    const rs = await Promise.all(Array.from({ length: 8 }, (_, i) => o.enqueue(input({ body: `${i}` }))));
    const ids = rs.map((r) => (r.ok ? r.entry.id : ''));
    for (const id of ids.slice(0, 5)) {
      clock += 1_000;
      o.markSending(id);
      o.markDelivered(id, { status: 200, body: '' });
    }
    clock += 1_000;
    o.cancel(ids[7]!);
    assert.equal(o.pruneBatch(13_500, 2), 2);
    assert.equal(o.get(ids[0]!), undefined);
    assert.equal(o.get(ids[1]!), undefined);
    assert.ok(o.get(ids[2]!), 'within the limit of 2');
    assert.equal(o.pruneBatch(13_500, 100), 1, 'only what was updated before the cut-off');
    assert.equal(o.pruneBatch(1e15, 100), 3, 'never a waiting entry');
    assert.equal(o.list({ limit: 100 }).entries.length, 2);
    assert.equal(o.pruneBatch(1e15, 0), 0);
    assert.deepEqual(o.stats(), recount(o.path));
    assert.equal(o.stats().accounts.main?.lastDeliveredAt, 15_000, 'the last delivery outlives its row');
  });

  test('the WAL is checkpointed early: it never grows near the size of a small state filesystem', async () => {
    // SQLite's own point (1000 pages, about 4 MB) is as big as a 4 MiB state filesystem: a WAL that never reaches
    // it is never checkpointed, holds every version of every page, and fills the disk (issue 20).
    const o = openIt({ maxEntries: 100_000, maxBytes: 1e12 });
    let largest = 0;
    for (let i = 0; i < 150; i++) {
      const rs = await Promise.all(Array.from({ length: 10 }, (_, j) => o.enqueue(input({ body: `${i}.${j} ${'r'.repeat(2_000)}` }))));
      assert.ok(rs.every((r) => r.ok));
      const head = o.head('main')!;
      o.markSending(head.id);
      o.markRetry(head.id, 'the API is down');
      largest = Math.max(largest, statSync(`${o.path}-wal`).size);
    }
    assert.ok(largest <= 1024 * 1024, `the WAL reached ${largest} bytes`);
    assert.ok(statSync(o.path).size > 2_000 * 1_000, 'the entries are in the database file itself');
  });

  test('a write that did not fit: the WAL is truncated before the next write, so freed room goes to the database', async (t) => {
    const mnt = join(dir, 'mnt');
    spawnSync('mkdir', ['-p', mnt]);
    const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=2m,mode=0700', 'tmpfs', mnt], { encoding: 'utf8' });
    if (mounted.status !== 0) {
      if (/permission|EPERM|only root/i.test(mounted.stderr)) return t.skip(`cannot mount a tmpfs: ${mounted.stderr.trim()}`);
      assert.fail(`mount failed: ${mounted.stderr}`);
    }
    try {
      const o = openOutbox({ dir: mnt, maxEntries: 1_000_000, maxBytes: 1e12 });
      open.push(o);
      const filler = join(mnt, 'filler');
      const fs = statfsSync(mnt);
      writeFileSync(filler, Buffer.alloc(Math.max(0, fs.bavail * fs.bsize - 1_024 * 1024)));
      let refused = false;
      for (let i = 0; i < 2_000 && !refused; i++) {
        const rs = await Promise.all(Array.from({ length: 4 }, (_, j) => o.enqueue(input({ body: `${i}.${j} ${'r'.repeat(2_000)}` }))));
        refused = rs.some((r) => !r.ok);
      }
      assert.ok(refused, 'the disk filled up');
      fillToTheBrim(filler);
      const wal = `${o.path}-wal`;
      const full = statSync(wal).size;
      t.diagnostic(`on the full disk: outbox.db ${statSync(o.path).size} bytes, its WAL ${full}`);
      assert.ok(full >= 256 * 1024, `the WAL held ${full} bytes when the disk was full`);
      truncateSync(filler, Math.max(0, statSync(filler).size - 1_024 * 1024));
      const r = await o.enqueue(input({ body: 'room again' }));
      assert.ok(r.ok, JSON.stringify(r));
      const after = statSync(wal).size;
      assert.ok(after <= 64 * 1024, `the WAL still holds ${after} bytes after the first write once there was room`);
      assert.deepEqual(o.stats(), recount(o.path));
      assert.equal(o.integrityCheck(), 'ok');
    } finally {
      for (const o of open.splice(0)) o.close();
      spawnSync('umount', [mnt]);
    }
  });

  test('a real full disk: reason disk, nothing acknowledged is lost, and enqueue works again once there is room', async (t) => {
    const diagnostic = (line: string) => t.diagnostic(line);
    const mnt = join(dir, 'mnt');
    rmSync(mnt, { recursive: true, force: true });
    spawnSync('mkdir', ['-p', mnt]);
    const mounted = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=2m,mode=0700', 'tmpfs', mnt], { encoding: 'utf8' });
    if (mounted.status !== 0) {
      if (/permission|EPERM|only root/i.test(mounted.stderr)) return t.skip(`cannot mount a tmpfs: ${mounted.stderr.trim()}`);
      assert.fail(`mount failed: ${mounted.stderr}`);
    }
    try {
      await fillAndRecover(mnt, diagnostic);
    } finally {
      for (const o of open.splice(0)) o.close();
      spawnSync('umount', [mnt]);
    }
  });

  /** Opens the outbox on the tmpfs, fills the rest with a file, enqueues until `disk`, checks, frees room. */
  async function fillAndRecover(mnt: string, diagnostic: (line: string) => void): Promise<void> {
    const o = openOutbox({ dir: mnt, maxEntries: 1_000_000, maxBytes: 1e12 });
    open.push(o);
    assert.ok((await o.enqueue(input({ body: 'before filling' }))).ok);
    const filler = join(mnt, 'filler');
    const fs = statfsSync(mnt);
    writeFileSync(filler, Buffer.alloc(Math.max(0, fs.bavail * fs.bsize - 256 * 1024)));
    const acked: string[] = [];
    let refused: { reason: string } | undefined;
    for (let i = 0; i < 2_000 && !refused; i++) {
      const rs = await Promise.all(Array.from({ length: 4 }, (_, j) => o.enqueue(input({ body: `${i}.${j} ${'r'.repeat(2_000)}` }))));
      for (const r of rs) {
        if (r.ok) acked.push(r.entry.id);
        else refused = r;
      }
    }
    assert.equal(refused?.reason, 'disk', 'the disk filled up');
    assert.ok(acked.length > 0, 'some entries fitted first');
    diagnostic(`${acked.length} entries acknowledged before the disk was full`);
    const stats = o.stats();
    assert.equal(stats.pendingEntries, acked.length + 1, 'nothing refused was counted');
    // A refusal tries to give the WAL's space back (a checkpoint that truncates it, which itself needs room in the
    // database file): the connection is still usable, and the next entry either fits in what that freed or is
    // refused the same way, counted only if stored.
    const still = await o.enqueue(input({ body: 'still full?' }));
    assert.ok(still.ok || still.reason === 'disk', 'the connection is still usable and answers again');
    assert.deepEqual(o.stats().pendingEntries, stats.pendingEntries + (still.ok ? 1 : 0));
    if (still.ok) acked.push(still.entry.id);
    // To the brim: even a one-row change no longer fits, and says so without changing anything.
    fillToTheBrim(filler);
    // What the failed batch left allocated at the WAL's end is reused, so a small change may still fit: change
    // the head back and forth until one does not; it must say so and change nothing, in the file or in memory.
    const head = o.head('main')!;
    let failure: unknown;
    for (let i = 0; i < 1_000 && failure === undefined; i++) {
      const before = o.get(head.id)!;
      try {
        if (before.state === 'queued') o.markSending(head.id);
        else o.markRetry(head.id, `attempt ${i}`);
      } catch (err) {
        failure = err;
        assert.deepEqual(o.get(head.id), before, 'nothing changed in the file');
      }
    }
    assert.ok(failure instanceof OutboxStorageError && failure.diskFull && failure.code === 'ERR_OUTBOX_STORAGE', String(failure));
    diagnostic(`a change on the full disk: ${failure.message}`);
    assert.deepEqual(o.stats(), recount(o.path), 'nor in memory');
    o.close();
    const again = openOutbox({ dir: mnt, maxEntries: 1_000_000, maxBytes: 1e12 });
    open.push(again);
    assert.equal(again.integrityCheck(), 'ok');
    for (const id of acked) assert.ok(again.get(id), `acknowledged ${id} is still there`);
    unlinkSync(filler);
    const after = await again.enqueue(input({ body: 'room again' }));
    assert.ok(after.ok, JSON.stringify(after));
    assert.deepEqual(again.stats(), recount(again.path));
  }

  test('kill -9 while enqueuing: every acknowledged id is there after a reopen (3 cycles)', { timeout: 60_000 }, async (t) => {
    const random = prng(9);
    let total = 0;
    for (let cycle = 0; cycle < 3; cycle++) {
      const acked = await runAndKill(dir, 150 + Math.floor(random() * 500));
      assert.ok(acked.length > 0, `cycle ${cycle}: the child acknowledged something before it was killed`);
      const o = openOutbox({ dir, maxEntries: 1e7, maxBytes: 1e12 });
      try {
        assert.equal(o.integrityCheck(), 'ok');
        const missing = acked.filter((id) => !o.get(id));
        assert.deepEqual(missing, [], `cycle ${cycle}: ${missing.length} of ${acked.length} acknowledged entries lost`);
        assert.deepEqual(o.stats(), recount(o.path));
        total += acked.length;
        t.diagnostic(`cycle ${cycle}: ${acked.length} acknowledged before SIGKILL, all present; ${o.stats().pendingEntries} stored`);
      } finally {
        o.close();
      }
    }
    assert.ok(total > 0);
  });
});

/** Appends to `file` a page at a time until the filesystem has no room left. */
function fillToTheBrim(file: string): void {
  const fd = openSync(file, 'a');
  try {
    for (;;) writeSync(fd, Buffer.alloc(4096));
  } catch (err) {
    assert.equal((err as NodeJS.ErrnoException).code, 'ENOSPC');
  } finally {
    closeSync(fd);
  }
}

/** Starts the fixture, SIGKILLs it `afterMs` after it is ready, and returns the ids it printed in full. */
async function runAndKill(dir: string, afterMs: number): Promise<string[]> {
  const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE, dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<void>((done) => child.on('exit', () => done()));
  await new Promise<void>((ready, fail) => {
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.startsWith('ready\n')) ready();
    });
    child.on('exit', (code) => fail(new Error(`the fixture exited (${code}) before it was ready: ${err}`)));
  });
  await new Promise((r) => setTimeout(r, afterMs));
  child.kill('SIGKILL');
  await exited;
  const lines = out.split('\n');
  lines.pop(); // the last one may be cut short
  return lines.filter((l) => l !== 'ready');
}

describe('outbox store: a micro-figure (printed, not asserted)', () => {
  test('enqueue rate for 2,000 enqueues at concurrency 1 and 16 on a file in /tmp', async (t) => {
    for (const concurrency of [1, 16]) {
      const dir = mkdtempSync('/tmp/pta-outbox-rate-');
      const commits: number[] = [];
      const o = openOutbox({ dir, maxEntries: 100_000, maxBytes: 1e12, onCommit: (n) => commits.push(n) });
      try {
        let next = 0;
        const started = process.hrtime.bigint();
        await Promise.all(
          Array.from({ length: concurrency }, async () => {
            while (next < 2_000) {
              next++;
              const r = await o.enqueue(input({ body: JSON.stringify({ receipt: next, lines: 'x'.repeat(400) }) }));
              assert.ok(r.ok);
            }
          }),
        );
        const ms = Number(process.hrtime.bigint() - started) / 1e6;
        const line = `concurrency ${concurrency}: 2000 enqueues in ${ms.toFixed(0)} ms = ${Math.round(2_000 / (ms / 1_000))}/s, ${commits.length} commits`;
        t.diagnostic(line);
        assert.equal(o.stats().pendingEntries, 2_000);
      } finally {
        o.close();
        rmSync(dir, { recursive: true, force: true });
      }
    }
  });
});
