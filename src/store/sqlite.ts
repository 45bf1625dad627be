/**
 * Opening a database the store's way, for state.db (index.ts) and outbox.db (outbox.ts) alike: the file owner-only,
 * WAL with synchronous=FULL (read back), the schema steps past user_version, and the database kept from the
 * garbage collector.
 */
import Database from 'better-sqlite3';
const { chmodSync, closeSync, openSync, statSync } = process.getBuiltinModule('node:fs');

/**
 * better-sqlite3 objects that must outlive the garbage collector.
 *
 * On Node 24 (reported from 24.19, reproduced here on 24.21), `node::ObjectWrap`'s destructor removes an environment cleanup hook and
 * aborts the whole process ("Assertion failed: (env) != nullptr" in `node::RemoveEnvironmentCleanupHook`) when V8
 * collects the object while no JavaScript context is entered, which ordinary garbage collection does.
 * better-sqlite3's `Database` and `Statement` are ObjectWraps, so on Node 24 a statement that merely became
 * garbage could kill the agent at a random moment. Node 20 and 22 build the addon without that hook.
 *
 * The way out that needs no patched addon: never let one of them become garbage. Every database opened through
 * `openDatabase` and every statement it prepares is kept here for the life of the process. The cost is bounded by
 * what the store prepares: about twenty statements per opened database, prepared once, and databases are opened
 * once per process plus once per re-provisioning.
 */
const kept = new Set<object>();

export type SqliteDatabase = Database.Database;
export type SqliteOptions = Database.Options;

/**
 * `new Database(path, options)`, except that the database and everything prepared on it (through `prepare` and
 * `pragma`; `transaction` keeps its own statements on the database) is never garbage collected.
 */
export function openDatabase(path: string, options?: SqliteOptions): SqliteDatabase {
  const db = new Database(path, options);
  kept.add(db);
  const prepare = db.prepare.bind(db);
  db.prepare = ((source: string) => {
    const statement = prepare(source);
    kept.add(statement);
    return statement;
  }) as typeof db.prepare;
  // better-sqlite3's own pragma() prepares a new statement on every call, out of reach of the override above.
  // Each PRAGMA text is prepared once here and reused; one that returns nothing (PRAGMA synchronous = FULL) is run.
  const pragmas = new Map<string, Database.Statement>();
  db.pragma = ((source: string, pragmaOptions?: Database.PragmaOptions) => {
    let statement = pragmas.get(source);
    if (!statement) {
      statement = db.prepare(`PRAGMA ${source}`);
      pragmas.set(source, statement);
    }
    if (!statement.reader) {
      statement.run();
      return [];
    }
    return pragmaOptions?.simple ? statement.pluck(true).get() : statement.pluck(false).all();
  }) as typeof db.pragma;
  return db;
}

/** How many better-sqlite3 objects this process keeps (for tests). */
export function keptObjects(): number {
  return kept.size;
}

export class StoreError extends Error {
  readonly code = 'ERR_STORE';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreError';
  }
}

/** Creates the file if need be and makes it owner-only (0600); SQLite's -wal and -shm files follow its mode. */
export function ensureFileMode(path: string): void {
  const fd = openSync(path, 'a', 0o600);
  closeSync(fd);
  if ((statSync(path).mode & 0o077) !== 0) chmodSync(path, 0o600);
}

/**
 * Pages (4 KiB each) the WAL may hold before the commit that passes them checkpoints it into the database: 512 KiB.
 * SQLite's default, 1000 pages (about 4 MB), is as big as a small state filesystem: a WAL that never reaches it is
 * never checkpointed, holds every version of every page written, and fills the disk. Checkpointed this early, the
 * database holds the data once and the WAL is written again from its start, in the room it already has.
 */
export const WAL_AUTOCHECKPOINT_PAGES = 128;
/** After a checkpoint the WAL file is cut back to this, so a burst (a large batch) does not keep its disk space. */
export const WAL_SIZE_LIMIT = 1024 * 1024;

/**
 * SQLite's page cache per connection, in KiB (a negative cache_size): 2 MiB. This build's default is 16,000 KiB,
 * which a growing outbox.db fills under load, 16 MiB of the agent's memory a connection for pages the kernel's own
 * cache holds anyway; the agent's queries read a few pages each (the account's head, an entry by id).
 */
export const CACHE_SIZE_KIB = 2048;

/** WAL and synchronous=FULL, both read back: a commit that returned is on disk. The WAL is checkpointed early. */
export function configure(db: Database.Database, path: string): void {
  const mode = db.pragma('journal_mode = WAL', { simple: true });
  if (String(mode).toLowerCase() !== 'wal') {
    throw new StoreError(`${path}: journal_mode is ${String(mode)}, expected wal`);
  }
  db.pragma('synchronous = FULL');
  const sync = db.pragma('synchronous', { simple: true });
  if (sync !== 2) throw new StoreError(`${path}: synchronous is ${String(sync)}, expected 2 (FULL)`);
  db.pragma('foreign_keys = ON');
  db.pragma(`wal_autocheckpoint = ${WAL_AUTOCHECKPOINT_PAGES}`);
  db.pragma(`journal_size_limit = ${WAL_SIZE_LIMIT}`);
  db.pragma(`cache_size = -${CACHE_SIZE_KIB}`);
}

/**
 * Checkpoints the whole WAL into the database and truncates the WAL file to nothing, giving its room back; true
 * when that was done. Never waits: when another connection reads an older snapshot, or the disk has no room for
 * the pages yet, it does what it can and answers false (the caller tries again later).
 */
export function truncateWal(db: Database.Database, busyTimeoutMs: number): boolean {
  db.pragma('busy_timeout = 0');
  try {
    const [result] = db.pragma('wal_checkpoint(TRUNCATE)') as Array<{ busy: number }>;
    return result?.busy === 0;
  } catch {
    return false; // SQLITE_FULL (or another I/O error) while copying pages: the WAL stays as it was
  } finally {
    db.pragma(`busy_timeout = ${busyTimeoutMs}`);
  }
}

/** Applies the steps past user_version, each in its own IMMEDIATE transaction (each database has its own list). */
export function migrate(db: Database.Database, path: string, migrations: ReadonlyArray<(db: Database.Database) => void>): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > migrations.length) {
    throw new StoreError(
      `${path} has schema version ${current}, newer than this agent knows (${migrations.length}); upgrade the agent`,
    );
  }
  for (let v = current; v < migrations.length; v++) {
    const step = migrations[v]!;
    db.transaction(() => {
      // Re-check inside the write lock: another process may have migrated meanwhile.
      const now = db.pragma('user_version', { simple: true }) as number;
      if (now > v) return;
      step(db);
      db.pragma(`user_version = ${v + 1}`);
    }).immediate();
  }
}
