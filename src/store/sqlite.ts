import Database from 'better-sqlite3';

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
