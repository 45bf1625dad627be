import type Database from 'better-sqlite3';

/**
 * Schema steps of outbox.db (its own user_version, apart from state.db's); OUTBOX_MIGRATIONS[n] takes
 * user_version n to n+1. Never edit a released step: add a new one.
 */
export const OUTBOX_MIGRATIONS: ReadonlyArray<(db: Database.Database) => void> = [
  (db) => {
    db.exec(`
      CREATE TABLE entries (
        seq             INTEGER PRIMARY KEY,   -- enqueue order; kept by a retry, so a retried entry goes next
        id              TEXT NOT NULL UNIQUE,  -- randomUUID(), what the till and the API name it by
        account         TEXT NOT NULL,
        key             TEXT,                  -- the till's idempotency key, unique per account when given
        method          TEXT NOT NULL,
        path            TEXT NOT NULL,
        bytes           INTEGER NOT NULL,      -- body + path + headers JSON, in bytes: what maxBytes counts
        state           TEXT NOT NULL CHECK (state IN ('queued', 'sending', 'delivered', 'rejected', 'cancelled')),
        attempts        INTEGER NOT NULL,
        created_at      INTEGER NOT NULL,      -- wall-clock ms
        updated_at      INTEGER NOT NULL,      -- wall-clock ms of the last change of state: what pruning reads
        delivered_at    INTEGER,
        last_error      TEXT,
        response_status INTEGER,
        response_body   TEXT
      ) STRICT;
      -- What is sent, apart from the entry's state: a change of state rewrites a small row, not a large body.
      CREATE TABLE bodies (
        seq     INTEGER PRIMARY KEY,           -- entries.seq
        headers TEXT NOT NULL,                 -- JSON object of the till's headers
        body    TEXT NOT NULL
      ) STRICT;
      CREATE TRIGGER entries_delete_body AFTER DELETE ON entries BEGIN DELETE FROM bodies WHERE seq = old.seq; END;
      CREATE VIEW entries_full AS SELECT entries.*, bodies.headers AS headers, bodies.body AS body FROM entries JOIN bodies USING (seq);
      CREATE UNIQUE INDEX entries_by_key ON entries (account, key) WHERE key IS NOT NULL;
      -- Each account's head: the lowest seq among its pending entries, found without passing delivered ones.
      CREATE INDEX entries_pending ON entries (account, seq) WHERE state IN ('queued', 'sending');
      CREATE INDEX entries_by_state ON entries (state, seq);
      CREATE INDEX entries_finished ON entries (state, updated_at);
      -- Per account what outlives pruning: the last delivery and the last delivery error.
      CREATE TABLE accounts (
        account           TEXT PRIMARY KEY,
        last_delivered_at INTEGER,
        last_error        TEXT
      ) STRICT;
    `);
  },
];
