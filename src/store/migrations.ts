import type Database from 'better-sqlite3';

/**
 * Schema steps, applied in order inside a transaction; MIGRATIONS[n] takes user_version n to n+1.
 * Never edit a released step: add a new one.
 */
export const MIGRATIONS: ReadonlyArray<(db: Database.Database) => void> = [
  (db) => {
    db.exec(`
      CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value ANY NOT NULL
      ) STRICT;
      CREATE TABLE credentials (
        account    TEXT PRIMARY KEY,
        authority  TEXT NOT NULL,
        secret     BLOB NOT NULL,          -- sealed JSON of the account's credentials
        version    INTEGER NOT NULL,       -- changes on every provision
        updated_at INTEGER NOT NULL        -- wall-clock ms
      ) STRICT;
      CREATE TABLE tokens (
        account             TEXT PRIMARY KEY,
        secret              BLOB NOT NULL, -- sealed JSON holding the access token
        token_type          TEXT NOT NULL,
        scope               TEXT,
        obtained_at         INTEGER NOT NULL,
        expires_at          INTEGER NOT NULL,
        lifetime_s          INTEGER NOT NULL,
        credentials_version INTEGER NOT NULL,
        config_fingerprint  TEXT NOT NULL
      ) STRICT;
      CREATE TABLE logins (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        account     TEXT NOT NULL,
        authority   TEXT NOT NULL,
        started_at  INTEGER NOT NULL,
        duration_ms INTEGER NOT NULL,
        outcome     TEXT NOT NULL,
        error       TEXT,
        http_status INTEGER,
        message     TEXT
      ) STRICT;
      CREATE INDEX logins_by_account ON logins (account, id);
    `);
  },
  (db) => {
    db.exec(`
      -- impact-gr: when the refresh token (sealed in tokens.secret with the access token) expires.
      ALTER TABLE tokens ADD COLUMN refresh_expires_at INTEGER;
      -- The boot the token was obtained in and the uptime then: a restart within the same boot
      -- measures the token's age without trusting the wall clock.
      ALTER TABLE tokens ADD COLUMN boot_id TEXT;
      ALTER TABLE tokens ADD COLUMN boot_uptime_ms INTEGER;
      -- The last identity read in full, so a login can go ahead when a source fails.
      CREATE TABLE identities (
        account TEXT PRIMARY KEY,
        profile TEXT,
        fields  TEXT NOT NULL,             -- JSON {field: {value, source}}; identity values are not secrets
        read_at INTEGER NOT NULL           -- wall-clock ms
      ) STRICT;
    `);
  },
  (db) => {
    db.exec(`
      -- What the account's token service was found to accept (JSON, e.g. {"basicAuthEncoding":"plain"});
      -- not a secret. Kept with the credentials it was learned with: storing new ones clears it.
      ALTER TABLE credentials ADD COLUMN interop TEXT;
    `);
  },
];
