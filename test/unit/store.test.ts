import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { MIGRATIONS } from '../../src/store/migrations.js';
import { CACHE_SIZE_KIB, configure, keptObjects, openDatabase } from '../../src/store/sqlite.js';
import {
  DB_FILE,
  KEY_FILE,
  openStore,
  SecretKeyError,
  StoreError,
  type Store,
  type StoredToken,
} from '../../src/store/index.js';

const CANARY_ID = 'CLIENT-ID-CANARY-7f3a1c';
const CANARY_SECRET = 'SECRET-CANARY-client-secret-9b1e44';
const CANARY_PSK = 'SECRET-CANARY-presharedkey-2d8c10';
const CANARY_TOKEN = 'SECRET-CANARY-access-token-eyJ.5e6f77';

function token(extra: Partial<StoredToken> = {}): StoredToken {
  return {
    accessToken: CANARY_TOKEN,
    tokenType: 'Bearer',
    scope: 'InvoicingAPI',
    obtainedAt: 1_767_225_600_000,
    expiresAt: 1_767_229_200_000,
    lifetimeS: 3600,
    credentialsVersion: 1,
    configFingerprint: '["eta-ereceipt","https://id.example","{}"]',
    ...extra,
  };
}

describe('store', () => {
  let dir: string;
  const open: Store[] = [];

  const openIt = (
    options: { createKey?: boolean; journalLimit?: number; machineId?: string; setAsideUnusable?: boolean } = {},
  ): Store => {
    const s = openStore({ dir, ...options });
    open.push(s);
    return s;
  };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'pta-store-'));
  });

  afterEach(() => {
    for (const s of open.splice(0)) s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('creates state.db and secret.key with mode 0600 and reports its path', () => {
    const s = openIt();
    assert.equal(s.path, join(dir, DB_FILE));
    assert.equal(statSync(join(dir, DB_FILE)).mode & 0o777, 0o600);
    assert.equal(statSync(join(dir, KEY_FILE)).mode & 0o777, 0o600);
    assert.equal(statSync(join(dir, KEY_FILE)).size, 32);
    s.putCredentials('main', 'eta-ereceipt', { clientId: 'x' });
    for (const side of [`${DB_FILE}-wal`, `${DB_FILE}-shm`]) {
      assert.equal(statSync(join(dir, side)).mode & 0o777, 0o600, `${side} follows the database's mode`);
    }
  });

  test('a new state directory is created with mode 0700', () => {
    const sub = join(dir, 'nested', 'state');
    const s = openStore({ dir: sub });
    open.push(s);
    assert.equal(statSync(sub).mode & 0o777, 0o700);
  });

  test('journal_mode is wal, synchronous FULL (per connection), user_version = migrations', () => {
    const s = openIt();
    s.putCredentials('main', 'eta-ereceipt', { clientId: 'x', clientSecret: 'y' });
    s.close();
    const db = openDatabase(join(dir, DB_FILE), { readonly: true });
    try {
      assert.equal(db.pragma('journal_mode', { simple: true }), 'wal', 'WAL is persistent in the file');
      assert.equal(db.pragma('user_version', { simple: true }), MIGRATIONS.length);
      assert.equal(MIGRATIONS.length, 3);
      const tables = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").pluck().all() as string[]).filter(
        (n) => !n.startsWith('sqlite_'),
      );
      assert.deepEqual(tables, ['credentials', 'identities', 'logins', 'meta', 'tokens']);
    } finally {
      db.close();
    }
  });

  test('the store connection sets synchronous = FULL and WAL (checked on the connection itself)', () => {
    // Spies on what the store's own connection prepares and what those statements return.
    const calls: Array<[string, unknown]> = [];
    const original = Database.prototype.prepare;
    Database.prototype.prepare = function (this: Database.Database, source: string) {
      const statement = original.call(this, source);
      if (!source.startsWith('PRAGMA ')) return statement;
      const get = statement.get.bind(statement) as (...args: unknown[]) => unknown;
      const run = statement.run.bind(statement) as (...args: unknown[]) => unknown;
      statement.get = ((...args: unknown[]) => {
        const result = get(...args);
        calls.push([source, result]);
        return result;
      }) as typeof statement.get;
      statement.run = ((...args: unknown[]) => {
        const result = run(...args);
        calls.push([source, undefined]);
        return result;
      }) as typeof statement.run;
      return statement;
    } as typeof original;
    try {
      openIt();
    } finally {
      Database.prototype.prepare = original;
    }
    const results = new Map(calls);
    assert.equal(String(results.get('PRAGMA journal_mode = WAL')).toLowerCase(), 'wal');
    assert.ok(results.has('PRAGMA synchronous = FULL'), JSON.stringify(calls));
    assert.equal(results.get('PRAGMA synchronous'), 2, 'synchronous read back as 2 (FULL)');
  });

  test('every database and statement the store makes is kept from the garbage collector (Node 24 aborts on collecting one)', () => {
    const before = keptObjects();
    const s = openIt();
    assert.ok(keptObjects() > before + 10, `the database and its statements are kept (${before} -> ${keptObjects()})`);
    s.integrityCheck();
    const once = keptObjects();
    for (let i = 0; i < 50; i++) s.integrityCheck();
    assert.equal(keptObjects(), once, 'a repeated pragma reuses its statement instead of keeping a new one');
    s.close();
  });

  test('credentials round trip; version increases on each put', () => {
    const s = openIt();
    assert.equal(s.getCredentials('main'), undefined);
    assert.equal(s.credentialsVersion('main'), undefined);
    const before = Date.now();
    const v1 = s.putCredentials('main', 'eta-ereceipt', { clientId: CANARY_ID, clientSecret: CANARY_SECRET, presharedKey: CANARY_PSK });
    const got = s.getCredentials('main');
    assert.ok(got);
    assert.deepEqual(got.credentials, { clientId: CANARY_ID, clientSecret: CANARY_SECRET, presharedKey: CANARY_PSK });
    assert.equal(got.authority, 'eta-ereceipt');
    assert.equal(got.version, v1);
    assert.ok(got.updatedAt >= before && got.updatedAt <= Date.now());
    assert.equal(s.credentialsVersion('main'), v1);

    const v2 = s.putCredentials('main', 'eta-ereceipt', { clientId: CANARY_ID, clientSecret: 'second' });
    assert.ok(v2 > v1, `${v2} > ${v1}`);
    const v3 = s.putCredentials('other', 'eta-ereceipt', { clientId: 'o', clientSecret: 'p' });
    assert.ok(v3 > v2, 'the sequence is global, so re-provisioning never reuses a version');
    const v4 = s.putCredentials('main', 'eta-ereceipt', { clientId: CANARY_ID, clientSecret: 'third' });
    assert.ok(v4 > v3);
    assert.deepEqual(s.getCredentials('main')?.credentials, { clientId: CANARY_ID, clientSecret: 'third' });
    assert.equal(s.credentialsVersion('main'), v4);
    assert.deepEqual(s.getCredentials('other')?.credentials, { clientId: 'o', clientSecret: 'p' });
  });

  test('interop: kept with the credentials it was learned with; new credentials clear it', () => {
    const s = openIt();
    assert.equal(s.putInterop('main', 1, { basicAuthEncoding: 'plain' }), false, 'no credentials: nothing to keep it with');
    const v1 = s.putCredentials('main', 'oauth2', { clientId: 'c', clientSecret: 's' });
    assert.equal('interop' in s.getCredentials('main')!, false, 'nothing learned yet');
    assert.equal(s.putInterop('main', v1, { basicAuthEncoding: 'plain' }), true);
    assert.deepEqual(s.getCredentials('main')?.interop, { basicAuthEncoding: 'plain' });
    assert.equal(s.credentialsVersion('main'), v1, 'learning does not make a new version (it would lift a rejected backoff)');
    assert.equal(s.putInterop('main', v1 - 1, { basicAuthEncoding: 'rfc6749' }), false, 'a login with older credentials');
    assert.deepEqual(s.getCredentials('main')?.interop, { basicAuthEncoding: 'plain' });

    const v2 = s.putCredentials('main', 'oauth2', { clientId: 'c', clientSecret: 'new' });
    assert.equal(s.getCredentials('main')?.interop, undefined, 'new credentials: learned afresh');
    assert.equal(s.putInterop('main', v1, { basicAuthEncoding: 'plain' }), false, 'learned with the old ones: not kept');
    assert.equal(s.getCredentials('main')?.interop, undefined);
    s.putCredentials('main', 'oauth2', { clientId: 'c', clientSecret: 'newer' }, { basicAuthEncoding: 'plain' });
    assert.ok(s.credentialsVersion('main')! > v2);
    assert.deepEqual(s.getCredentials('main')?.interop, { basicAuthEncoding: 'plain' }, 'provision stores what its check login learned');
    s.close();
    assert.deepEqual(openIt().getCredentials('main')?.interop, { basicAuthEncoding: 'plain' }, 'across a restart');
  });

  test('interop: an unknown or damaged value reads as nothing learned', () => {
    const s = openIt();
    s.putCredentials('main', 'oauth2', { clientId: 'c', clientSecret: 's' });
    s.close();
    const db = openDatabase(join(dir, DB_FILE));
    for (const text of ['{"basicAuthEncoding":"utf16"}', 'not json', '[]', '{}']) {
      db.prepare('UPDATE credentials SET interop = ?').run(text);
      const again = openStore({ dir });
      try {
        assert.equal(again.getCredentials('main')?.interop, undefined, text);
        assert.deepEqual(again.getCredentials('main')?.credentials, { clientId: 'c', clientSecret: 's' });
      } finally {
        again.close();
      }
    }
    db.close();
  });

  test('token round trip, with and without scope; put replaces', () => {
    const s = openIt();
    assert.equal(s.getToken('main'), undefined);
    s.putToken('main', token());
    assert.deepEqual(s.getToken('main'), token());
    const noScope = token({ accessToken: 'second-token', scope: undefined, lifetimeS: 60, credentialsVersion: 7 });
    delete noScope.scope;
    s.putToken('main', noScope);
    const back = s.getToken('main');
    assert.deepEqual(back, noScope);
    assert.equal(back !== undefined && 'scope' in back, false);
    assert.equal(s.getToken('other'), undefined);
  });

  test('deleteToken without and with onlyIf', () => {
    const s = openIt();
    assert.equal(s.deleteToken('main'), false, 'nothing to delete');
    s.putToken('main', token());
    assert.equal(s.deleteToken('main', 'some-other-token'), false);
    assert.equal(s.getToken('main')?.accessToken, CANARY_TOKEN, 'kept when onlyIf does not match');
    assert.equal(s.deleteToken('main', CANARY_TOKEN), true);
    assert.equal(s.getToken('main'), undefined);
    assert.equal(s.deleteToken('main', CANARY_TOKEN), false);
    s.putToken('main', token());
    assert.equal(s.deleteToken('main'), true);
    assert.equal(s.getToken('main'), undefined);
  });

  test('recordLogin / recentLogins: newest first, per account, limited, optional fields omitted', () => {
    const s = openIt();
    s.recordLogin({ account: 'main', authority: 'eta-ereceipt', startedAt: 1000.4, durationMs: 12.6, outcome: 'ok' });
    s.recordLogin({
      account: 'main',
      authority: 'eta-ereceipt',
      startedAt: 2000,
      durationMs: 30,
      outcome: 'credentials_rejected',
      error: 'invalid_presharedkey',
      httpStatus: 400,
      message: 'rejected',
    });
    s.recordLogin({ account: 'other', authority: 'eta-ereceipt', startedAt: 3000, durationMs: 1, outcome: 'rate_limited', httpStatus: 429 });
    assert.deepEqual(s.recentLogins('main', 10), [
      {
        account: 'main',
        authority: 'eta-ereceipt',
        startedAt: 2000,
        durationMs: 30,
        outcome: 'credentials_rejected',
        error: 'invalid_presharedkey',
        httpStatus: 400,
        message: 'rejected',
      },
      { account: 'main', authority: 'eta-ereceipt', startedAt: 1000, durationMs: 13, outcome: 'ok' },
    ]);
    assert.equal(s.recentLogins('main', 1).length, 1);
    assert.equal(s.recentLogins('main', 1)[0]!.startedAt, 2000);
    assert.deepEqual(s.recentLogins('other', 10), [
      { account: 'other', authority: 'eta-ereceipt', startedAt: 3000, durationMs: 1, outcome: 'rate_limited', httpStatus: 429 },
    ]);
    assert.deepEqual(s.recentLogins('nobody', 10), []);
  });

  test('the login journal is pruned to journalLimit', () => {
    const s = openIt({ journalLimit: 10 });
    for (let i = 0; i < 100; i++) {
      s.recordLogin({ account: 'main', authority: 'eta-ereceipt', startedAt: i, durationMs: 1, outcome: 'ok' });
    }
    const rows = s.recentLogins('main', 1000);
    assert.equal(rows.length, 10);
    assert.equal(rows[0]!.startedAt, 99);
    assert.equal(rows[9]!.startedAt, 90);
  });

  test('the WAL is checkpointed early: it never grows near the size of a small state filesystem', () => {
    // SQLite's own point (1000 pages, about 4 MB) is as big as a 4 MiB state filesystem: a WAL that never reaches
    // it is never checkpointed and fills the disk. Each login is a commit of a page or two.
    const s = openIt();
    let largest = 0;
    for (let i = 0; i < 1_500; i++) {
      s.recordLogin({ account: 'main', authority: 'eta-ereceipt', startedAt: i, durationMs: 1, outcome: 'ok', message: 'x'.repeat(200) });
      largest = Math.max(largest, statSync(join(dir, `${DB_FILE}-wal`)).size);
    }
    assert.ok(largest <= 1024 * 1024, `the WAL reached ${largest} bytes`);
  });

  test('each connection\'s page cache is bounded (2 MiB), not this build\'s 16 MB default, which a growing database fills', () => {
    const db = openDatabase(join(dir, 'cache.db'));
    try {
      assert.equal(db.pragma('cache_size', { simple: true }), -16000, 'the default the bound replaces');
      configure(db, join(dir, 'cache.db'));
      assert.equal(db.pragma('cache_size', { simple: true }), -CACHE_SIZE_KIB);
      assert.equal(CACHE_SIZE_KIB, 2048);
    } finally {
      db.close();
    }
  });

  test('no secret or token appears in the raw bytes of state.db or its WAL', () => {
    const s = openIt();
    s.putCredentials('main', 'eta-ereceipt', { clientId: CANARY_ID, clientSecret: CANARY_SECRET, presharedKey: CANARY_PSK });
    s.putToken('main', token());
    // Check while still open (the WAL holds the recent writes) and after close (checkpointed).
    const scan = (when: string): void => {
      for (const file of [DB_FILE, `${DB_FILE}-wal`, `${DB_FILE}-shm`]) {
        const p = join(dir, file);
        if (!existsSync(p)) continue;
        const bytes = readFileSync(p);
        for (const canary of [CANARY_SECRET, CANARY_PSK, CANARY_TOKEN, CANARY_ID, 'SECRET-CANARY']) {
          assert.equal(bytes.includes(Buffer.from(canary, 'utf8')), false, `${file} (${when}) contains ${canary}`);
        }
      }
    };
    assert.ok(existsSync(join(dir, `${DB_FILE}-wal`)), 'WAL file exists while open');
    scan('open');
    s.close();
    scan('closed');
    // Sanity check that the scan would find plain text: the non-secret fingerprint is stored as is.
    assert.ok(readFileSync(join(dir, DB_FILE)).includes(Buffer.from('https://id.example')));
  });

  test('reopening keeps credentials, token and journal', () => {
    const s = openIt();
    const v = s.putCredentials('main', 'eta-ereceipt', { clientId: CANARY_ID, clientSecret: CANARY_SECRET });
    s.putToken('main', token());
    s.recordLogin({ account: 'main', authority: 'eta-ereceipt', startedAt: 5, durationMs: 6, outcome: 'ok' });
    s.close();
    const key = readFileSync(join(dir, KEY_FILE));
    const again = openIt();
    assert.deepEqual(again.getCredentials('main')?.credentials, { clientId: CANARY_ID, clientSecret: CANARY_SECRET });
    assert.equal(again.getCredentials('main')?.version, v);
    assert.deepEqual(again.getToken('main'), token());
    assert.equal(again.recentLogins('main', 5).length, 1);
    assert.deepEqual(readFileSync(join(dir, KEY_FILE)), key, 'the key is not regenerated');
    const v2 = again.putCredentials('main', 'eta-ereceipt', { clientId: 'a', clientSecret: 'b' });
    assert.ok(v2 > v, 'the version sequence survives a reopen');
  });

  test('close() twice is harmless', () => {
    const s = openIt();
    s.close();
    s.close();
  });

  test('integrityCheck() is ok', () => {
    const s = openIt();
    s.putCredentials('main', 'eta-ereceipt', { clientId: 'x', clientSecret: 'y' });
    assert.equal(s.integrityCheck(), 'ok');
  });

  test('a different key file is refused with SecretKeyError mismatch', () => {
    const s = openIt();
    s.putCredentials('main', 'eta-ereceipt', { clientId: 'x', clientSecret: 'y' });
    s.close();
    writeFileSync(join(dir, KEY_FILE), randomBytes(32), { mode: 0o600 });
    assert.throws(
      () => openIt(),
      (err: unknown) => {
        assert.ok(err instanceof SecretKeyError, String(err));
        assert.equal(err.kind, 'mismatch');
        assert.equal(err.code, 'ERR_SECRET_KEY');
        assert.ok(err.message.includes(join(dir, KEY_FILE)), err.message);
        return true;
      },
    );
  });

  test('a missing key file with existing data is refused with SecretKeyError missing, and no new key is made', () => {
    const s = openIt();
    s.putCredentials('main', 'eta-ereceipt', { clientId: 'x', clientSecret: 'y' });
    s.close();
    unlinkSync(join(dir, KEY_FILE));
    assert.throws(
      () => openIt(),
      (err: unknown) => err instanceof SecretKeyError && err.kind === 'missing' && err.message.includes(join(dir, KEY_FILE)),
    );
    assert.equal(existsSync(join(dir, KEY_FILE)), false);
  });

  test('a key file of the wrong length is refused with SecretKeyError corrupt', () => {
    openIt().close();
    writeFileSync(join(dir, KEY_FILE), randomBytes(31));
    assert.throws(() => openIt(), (err: unknown) => err instanceof SecretKeyError && err.kind === 'corrupt');
  });

  test('createKey: false on a fresh directory opens without a key; secrets then need provisioning', () => {
    const s = openIt({ createKey: false });
    assert.equal(existsSync(join(dir, KEY_FILE)), false);
    assert.equal(s.getCredentials('main'), undefined);
    assert.throws(
      () => s.putCredentials('main', 'eta-ereceipt', { clientId: 'x' }),
      (err: unknown) => err instanceof SecretKeyError && err.kind === 'missing',
    );
  });

  test('a database with a newer user_version is refused with StoreError', () => {
    openIt().close();
    const db = openDatabase(join(dir, DB_FILE));
    db.pragma(`user_version = ${MIGRATIONS.length + 1}`);
    db.close();
    assert.throws(
      () => openIt(),
      (err: unknown) => {
        assert.ok(err instanceof StoreError, String(err));
        assert.equal(err.code, 'ERR_STORE');
        assert.equal(
          err.message,
          `${join(dir, DB_FILE)} has schema version ${MIGRATIONS.length + 1}, newer than this agent knows (${MIGRATIONS.length}); upgrade the agent`,
        );
        return true;
      },
    );
  });

  test('a file that is not a database is refused', () => {
    writeFileSync(join(dir, DB_FILE), 'this is not a sqlite database, just some text that is long enough'.repeat(20));
    assert.throws(() => openIt(), /not a database/);
  });

  test(
    'a file that is not a database is refused with a StoreError naming the path',
    () => {
      writeFileSync(join(dir, DB_FILE), 'this is not a sqlite database, just some text that is long enough'.repeat(20));
      assert.throws(
        () => openIt(),
        (err: unknown) => err instanceof StoreError && err.message.includes(join(dir, DB_FILE)),
      );
    },
  );

  test(
    'a refused open (key mismatch) leaves no database file descriptors open',
    () => {
      const s = openIt();
      s.putCredentials('main', 'eta-ereceipt', { clientId: 'x', clientSecret: 'y' });
      s.close();
      writeFileSync(join(dir, KEY_FILE), randomBytes(32), { mode: 0o600 });
      const openFiles = (): string[] =>
        readdirSync('/proc/self/fd')
          .map((fd) => {
            try {
              return readlinkSync(`/proc/self/fd/${fd}`);
            } catch {
              return '';
            }
          })
          .filter((target) => target.startsWith(dir));
      assert.deepEqual(openFiles(), []);
      assert.throws(() => openIt(), (err: unknown) => err instanceof SecretKeyError && err.kind === 'mismatch');
      assert.deepEqual(openFiles(), []);
    },
  );

  test('a sealed value copied to another account does not open', () => {
    const s = openIt();
    s.putToken('a', token());
    s.close();
    const db = openDatabase(join(dir, DB_FILE));
    db.prepare("INSERT INTO tokens SELECT 'b', secret, token_type, scope, obtained_at, expires_at, lifetime_s, credentials_version, config_fingerprint, refresh_expires_at, boot_id, boot_uptime_ms FROM tokens WHERE account = 'a'").run();
    db.close();
    const again = openIt();
    assert.equal(again.getToken('a')?.accessToken, CANARY_TOKEN);
    assert.throws(() => again.getToken('b'), (err: unknown) => err instanceof SecretKeyError && err.kind === 'mismatch');
  });

  /** Every byte of the database files that exist (the WAL is checkpointed away on close). */
  const stateBytes = (): string =>
    ['', '-wal', '-shm']
      .filter((x) => existsSync(join(dir, DB_FILE + x)))
      .map((x) => readFileSync(join(dir, DB_FILE + x)).toString('latin1'))
      .join('');

  const MACHINE_A = '0123456789abcdef0123456789abcdef';
  const MACHINE_B = 'fedcba9876543210fedcba9876543210';

  test('a database bound to one machine id is refused on another, even with its key file', () => {
    const s = openIt({ machineId: MACHINE_A });
    s.putCredentials('main', 'eta-ereceipt', { clientId: CANARY_ID, clientSecret: CANARY_SECRET });
    s.close();
    assert.throws(
      () => openIt({ machineId: MACHINE_B }),
      (err: unknown) => err instanceof SecretKeyError && err.kind === 'foreign_machine' && /another machine/.test(err.message),
    );
    assert.throws(() => openIt(), (err: unknown) => err instanceof SecretKeyError && err.kind === 'foreign_machine');
    const back = openIt({ machineId: MACHINE_A });
    assert.equal(back.getCredentials('main')?.credentials.clientSecret, CANARY_SECRET);
  });

  test('the machine id is stored only as a hash', () => {
    openIt({ machineId: MACHINE_A }).close();
    assert.equal(stateBytes().includes(MACHINE_A), false);
  });

  test('a database sealed before the binding is re-sealed under the bound key, keeping every secret', () => {
    const legacy = openIt();
    legacy.putCredentials('main', 'eta-ereceipt', { clientId: CANARY_ID, clientSecret: CANARY_SECRET, presharedKey: CANARY_PSK });
    legacy.putToken('main', token({ refreshToken: 'REFRESH-CANARY' }));
    legacy.close();
    const bound = openIt({ machineId: MACHINE_A });
    assert.equal(bound.getCredentials('main')?.credentials.presharedKey, CANARY_PSK);
    assert.equal(bound.getToken('main')?.refreshToken, 'REFRESH-CANARY');
    bound.close();
    // Now bound: the file key alone no longer opens it, and another machine is refused.
    assert.throws(() => openIt({ machineId: MACHINE_B }), (err: unknown) => err instanceof SecretKeyError && err.kind === 'foreign_machine');
    const db = openDatabase(join(dir, DB_FILE), { readonly: true });
    assert.equal(db.prepare("SELECT value FROM meta WHERE key = 'key_binding'").pluck().get(), 'machine-id');
    db.close();
  });

  test('setAsideUnusable moves a foreign database and its key aside and starts afresh', () => {
    const s = openIt({ machineId: MACHINE_A });
    s.putCredentials('main', 'eta-ereceipt', { clientId: CANARY_ID, clientSecret: CANARY_SECRET });
    s.close();
    const fresh = openIt({ machineId: MACHINE_B, setAsideUnusable: true });
    assert.ok(fresh.setAside && fresh.setAside.startsWith(join(dir, `${DB_FILE}.unusable-`)), String(fresh.setAside));
    assert.equal(fresh.getCredentials('main'), undefined);
    assert.ok(existsSync(fresh.setAside!), 'the old database is kept');
    assert.ok(readdirSync(dir).some((f) => f.startsWith(`${KEY_FILE}.unusable-`)), 'the old key is kept beside it');
    fresh.putCredentials('main', 'eta-ereceipt', { clientId: 'new', clientSecret: 'new' });
    assert.equal(fresh.getCredentials('main')?.credentials.clientId, 'new');
  });

  test('setAsideUnusable also recovers from a lost key', () => {
    const s = openIt();
    s.putCredentials('main', 'eta-ereceipt', { clientId: CANARY_ID, clientSecret: CANARY_SECRET });
    s.close();
    unlinkSync(join(dir, KEY_FILE));
    const fresh = openIt({ setAsideUnusable: true });
    assert.ok(fresh.setAside);
    assert.equal(fresh.getCredentials('main'), undefined);
  });

  test('a refresh token is sealed with the access token; its expiry round-trips', () => {
    const s = openIt();
    s.putToken('imp', token({ refreshToken: 'REFRESH-CANARY-4411', refreshExpiresAt: 1_767_830_400_000 }));
    const back = s.getToken('imp');
    assert.equal(back?.refreshToken, 'REFRESH-CANARY-4411');
    assert.equal(back?.refreshExpiresAt, 1_767_830_400_000);
    s.close();
    assert.equal(stateBytes().includes('REFRESH-CANARY-4411'), false);
  });

  test('the last good identity round-trips, and a damaged row reads as none', () => {
    const s = openIt();
    assert.equal(s.getIdentity('main'), undefined);
    const identity = { profile: 'generic-x86', fields: { posserial: { value: 'SN-1', source: 'dmi product_serial' } }, readAt: 5 };
    s.putIdentity('main', identity);
    assert.deepEqual(s.getIdentity('main'), identity);
    s.close();
    const db = openDatabase(join(dir, DB_FILE));
    db.prepare("UPDATE identities SET fields = '{not json' WHERE account = 'main'").run();
    db.close();
    assert.equal(openIt().getIdentity('main'), undefined);
  });

  test('a version 1 database is migrated to version 2 keeping its token', () => {
    const db = openDatabase(join(dir, DB_FILE));
    db.pragma('journal_mode = WAL');
    db.transaction(() => {
      MIGRATIONS[0]!(db);
      db.pragma('user_version = 1');
    })();
    db.close();
    const s = openIt();
    s.putToken('main', token());
    s.close();
    const again = openIt();
    assert.equal(again.getToken('main')?.accessToken, CANARY_TOKEN);
    assert.equal(again.getToken('main')?.refreshToken, undefined);
  });

  test("a version 2 database (0.3's schema) is migrated to version 3 keeping its credentials, with nothing learned", () => {
    const db = openDatabase(join(dir, DB_FILE));
    db.pragma('journal_mode = WAL');
    db.close();
    const s0 = openIt();
    s0.putCredentials('main', 'oauth2', { clientId: 'c', clientSecret: 's' });
    s0.close();
    const old = openDatabase(join(dir, DB_FILE));
    old.exec('ALTER TABLE credentials DROP COLUMN interop');
    old.pragma('user_version = 2');
    old.close();
    const s = openIt();
    assert.deepEqual(s.getCredentials('main')?.credentials, { clientId: 'c', clientSecret: 's' });
    assert.equal(s.getCredentials('main')?.interop, undefined);
    assert.equal(s.putInterop('main', s.credentialsVersion('main')!, { basicAuthEncoding: 'plain' }), true);
  });
});
