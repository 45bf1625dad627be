/**
 * The agent's state in SQLite: credentials, the current token per account, and a login journal.
 * Nothing outside this folder touches SQL. Secrets and tokens are sealed before they are written.
 */
import Database from 'better-sqlite3';
import { chmodSync, closeSync, mkdirSync, openSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { createKeyFile, createSealer, readKeyFile, SecretKeyError, type Sealer } from './crypto.js';
import { MIGRATIONS } from './migrations.js';
import type { Credentials } from '../authorities/types.js';

export { SecretKeyError } from './crypto.js';

export const DB_FILE = 'state.db';
export const KEY_FILE = 'secret.key';

export type { Credentials };

export interface StoredCredentials {
  authority: string;
  credentials: Credentials;
  version: number;
  updatedAt: number;
}

export interface StoredToken {
  accessToken: string;
  tokenType: string;
  scope?: string;
  /** Wall-clock ms when the answer was received. */
  obtainedAt: number;
  /** Wall-clock ms when the token expires (obtainedAt + lifetime). */
  expiresAt: number;
  lifetimeS: number;
  /** The credentials version the token was obtained with. */
  credentialsVersion: number;
  /** What the account's config looked like when it was obtained (authority, URL, identity). */
  configFingerprint: string;
}

export type LoginOutcome = 'ok' | 'credentials_rejected' | 'rate_limited' | 'upstream_unavailable';

export interface LoginRecord {
  account: string;
  authority: string;
  startedAt: number;
  durationMs: number;
  outcome: LoginOutcome;
  /** The authority's error code or a short reason; never a secret. */
  error?: string;
  httpStatus?: number;
  message?: string;
}

export interface Store {
  readonly path: string;
  putCredentials(account: string, authority: string, credentials: Credentials): number;
  getCredentials(account: string): StoredCredentials | undefined;
  /** Cheap check for a change made by another process (provision). */
  credentialsVersion(account: string): number | undefined;
  putToken(account: string, token: StoredToken): void;
  getToken(account: string): StoredToken | undefined;
  /** Deletes the account's token; with `onlyIf`, only while that is still the stored token. */
  deleteToken(account: string, onlyIf?: string): boolean;
  recordLogin(record: LoginRecord): void;
  recentLogins(account: string, limit: number): LoginRecord[];
  integrityCheck(): string;
  close(): void;
}

export class StoreError extends Error {
  readonly code = 'ERR_STORE';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreError';
  }
}

export interface OpenStoreOptions {
  dir: string;
  /** Create the secret key when there is none yet (provisioning). Default true. */
  createKey?: boolean;
  /** Keep at most this many login journal rows. */
  journalLimit?: number;
}

const KEY_CHECK_AAD = 'meta:key_check';
const KEY_CHECK_TEXT = 'pos-token-agent secret key check';

export function openStore(options: OpenStoreOptions): Store {
  const dir = options.dir;
  const journalLimit = options.journalLimit ?? 10_000;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, DB_FILE);
  ensureFileMode(path);

  let db: Database.Database;
  try {
    db = new Database(path, { timeout: 5_000 });
  } catch (err) {
    throw new StoreError(`cannot open the state database ${path}: ${(err as Error).message}`, { cause: err });
  }
  try {
    configure(db, path);
    migrate(db, path);
    const sealer = loadSealer(db, join(dir, KEY_FILE), options.createKey ?? true);
    return buildStore(db, path, sealer, journalLimit);
  } catch (err) {
    db.close();
    if (err instanceof StoreError || err instanceof SecretKeyError) throw err;
    throw new StoreError(`cannot use the state database ${path}: ${(err as Error).message}`, { cause: err });
  }
}

function ensureFileMode(path: string): void {
  const fd = openSync(path, 'a', 0o600);
  closeSync(fd);
  if ((statSync(path).mode & 0o077) !== 0) chmodSync(path, 0o600);
}

function configure(db: Database.Database, path: string): void {
  const mode = db.pragma('journal_mode = WAL', { simple: true });
  if (String(mode).toLowerCase() !== 'wal') {
    throw new StoreError(`${path}: journal_mode is ${String(mode)}, expected wal`);
  }
  db.pragma('synchronous = FULL');
  const sync = db.pragma('synchronous', { simple: true });
  if (sync !== 2) throw new StoreError(`${path}: synchronous is ${String(sync)}, expected 2 (FULL)`);
  db.pragma('foreign_keys = ON');
}

function migrate(db: Database.Database, path: string): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > MIGRATIONS.length) {
    throw new StoreError(
      `${path} has schema version ${current}, newer than this agent knows (${MIGRATIONS.length}); upgrade the agent`,
    );
  }
  for (let v = current; v < MIGRATIONS.length; v++) {
    const step = MIGRATIONS[v]!;
    db.transaction(() => {
      // Re-check inside the write lock: another process may have migrated meanwhile.
      const now = db.pragma('user_version', { simple: true }) as number;
      if (now > v) return;
      step(db);
      db.pragma(`user_version = ${v + 1}`);
    }).immediate();
  }
}

function loadSealer(db: Database.Database, keyPath: string, createKey: boolean): Sealer | undefined {
  const check = db.prepare('SELECT value FROM meta WHERE key = ?').get('key_check') as { value: Buffer } | undefined;
  let key = readKeyFile(keyPath);
  if (!key) {
    if (check) {
      throw new SecretKeyError(
        'missing',
        `the secret key ${keyPath} is missing, so the stored credentials cannot be read; restore the key or re-provision`,
      );
    }
    if (!createKey) return undefined;
    key = createKeyFile(keyPath);
  }
  const sealer = createSealer(key);
  if (check) {
    try {
      sealer.open(check.value, KEY_CHECK_AAD);
    } catch {
      throw new SecretKeyError(
        'mismatch',
        `the secret key ${keyPath} does not match this database (copied from another machine, or the key was replaced); re-provision`,
      );
    }
  } else {
    db.prepare('INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)').run(
      'key_check',
      sealer.seal(KEY_CHECK_TEXT, KEY_CHECK_AAD),
    );
  }
  return sealer;
}

interface TokenRow {
  secret: Buffer;
  token_type: string;
  scope: string | null;
  obtained_at: number;
  expires_at: number;
  lifetime_s: number;
  credentials_version: number;
  config_fingerprint: string;
}

interface LoginRow {
  account: string;
  authority: string;
  started_at: number;
  duration_ms: number;
  outcome: LoginOutcome;
  error: string | null;
  http_status: number | null;
  message: string | null;
}

function buildStore(db: Database.Database, path: string, sealer: Sealer | undefined, journalLimit: number): Store {
  const need = (): Sealer => {
    if (!sealer) throw new SecretKeyError('missing', 'no secret key yet; run provision first');
    return sealer;
  };
  const stmt = {
    getCreds: db.prepare('SELECT authority, secret, version, updated_at FROM credentials WHERE account = ?'),
    credsVersion: db.prepare('SELECT version FROM credentials WHERE account = ?').pluck(),
    nextSeq: db.prepare(
      "INSERT INTO meta (key, value) VALUES ('credentials_seq', 1) ON CONFLICT(key) DO UPDATE SET value = value + 1 RETURNING value",
    ).pluck(),
    putCreds: db.prepare(
      `INSERT INTO credentials (account, authority, secret, version, updated_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT(account) DO UPDATE SET authority = excluded.authority, secret = excluded.secret,
         version = excluded.version, updated_at = excluded.updated_at`,
    ),
    getToken: db.prepare(
      'SELECT secret, token_type, scope, obtained_at, expires_at, lifetime_s, credentials_version, config_fingerprint FROM tokens WHERE account = ?',
    ),
    putToken: db.prepare(
      `INSERT INTO tokens (account, secret, token_type, scope, obtained_at, expires_at, lifetime_s, credentials_version, config_fingerprint)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT(account) DO UPDATE SET secret = excluded.secret, token_type = excluded.token_type,
         scope = excluded.scope, obtained_at = excluded.obtained_at, expires_at = excluded.expires_at,
         lifetime_s = excluded.lifetime_s, credentials_version = excluded.credentials_version,
         config_fingerprint = excluded.config_fingerprint`,
    ),
    deleteToken: db.prepare('DELETE FROM tokens WHERE account = ?'),
    recordLogin: db.prepare(
      `INSERT INTO logins (account, authority, started_at, duration_ms, outcome, error, http_status, message)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    pruneLogins: db.prepare('DELETE FROM logins WHERE id <= (SELECT max(id) FROM logins) - ?'),
    recentLogins: db.prepare(
      'SELECT account, authority, started_at, duration_ms, outcome, error, http_status, message FROM logins WHERE account = ? ORDER BY id DESC LIMIT ?',
    ),
  };
  let insertsSincePrune = 0;

  const readToken = (account: string): StoredToken | undefined => {
    const row = stmt.getToken.get(account) as TokenRow | undefined;
    if (!row) return undefined;
    const secret = JSON.parse(need().open(row.secret, `tokens:${account}`).toString('utf8')) as { accessToken: string };
    return {
      accessToken: secret.accessToken,
      tokenType: row.token_type,
      ...(row.scope !== null ? { scope: row.scope } : {}),
      obtainedAt: row.obtained_at,
      expiresAt: row.expires_at,
      lifetimeS: row.lifetime_s,
      credentialsVersion: row.credentials_version,
      configFingerprint: row.config_fingerprint,
    };
  };

  return {
    path,
    putCredentials(account, authority, credentials) {
      const s = need();
      return db.transaction(() => {
        const version = stmt.nextSeq.get() as number;
        const blob = s.seal(JSON.stringify(credentials), `credentials:${account}`);
        stmt.putCreds.run(account, authority, blob, version, Date.now());
        return version;
      }).immediate();
    },
    getCredentials(account) {
      const row = stmt.getCreds.get(account) as
        | { authority: string; secret: Buffer; version: number; updated_at: number }
        | undefined;
      if (!row) return undefined;
      const credentials = JSON.parse(need().open(row.secret, `credentials:${account}`).toString('utf8')) as Credentials;
      return { authority: row.authority, credentials, version: row.version, updatedAt: row.updated_at };
    },
    credentialsVersion(account) {
      return stmt.credsVersion.get(account) as number | undefined;
    },
    putToken(account, token) {
      const blob = need().seal(JSON.stringify({ accessToken: token.accessToken }), `tokens:${account}`);
      db.transaction(() => {
        stmt.putToken.run(
          account,
          blob,
          token.tokenType,
          token.scope ?? null,
          Math.round(token.obtainedAt),
          Math.round(token.expiresAt),
          token.lifetimeS,
          token.credentialsVersion,
          token.configFingerprint,
        );
      }).immediate();
    },
    getToken: readToken,
    deleteToken(account, onlyIf) {
      return db.transaction(() => {
        if (onlyIf !== undefined) {
          const current = readToken(account);
          if (!current || current.accessToken !== onlyIf) return false;
        }
        return stmt.deleteToken.run(account).changes > 0;
      }).immediate();
    },
    recordLogin(r) {
      db.transaction(() => {
        stmt.recordLogin.run(
          r.account,
          r.authority,
          Math.round(r.startedAt),
          Math.round(r.durationMs),
          r.outcome,
          r.error ?? null,
          r.httpStatus ?? null,
          r.message ?? null,
        );
        if (++insertsSincePrune >= 100) {
          insertsSincePrune = 0;
          stmt.pruneLogins.run(journalLimit);
        }
      }).immediate();
    },
    recentLogins(account, limit) {
      return (stmt.recentLogins.all(account, limit) as LoginRow[]).map((row) => ({
        account: row.account,
        authority: row.authority,
        startedAt: row.started_at,
        durationMs: row.duration_ms,
        outcome: row.outcome,
        ...(row.error !== null ? { error: row.error } : {}),
        ...(row.http_status !== null ? { httpStatus: row.http_status } : {}),
        ...(row.message !== null ? { message: row.message } : {}),
      }));
    },
    integrityCheck() {
      return String(db.pragma('integrity_check', { simple: true }));
    },
    close() {
      if (db.open) db.close();
    },
  };
}
