/**
 * The agent's state in SQLite: credentials, the current token per account, and a login journal.
 * Nothing outside this folder touches SQL. Secrets and tokens are sealed before they are written.
 */
import type Database from 'better-sqlite3';
import { bindKey, createKeyFile, createSealer, machineHash, readKeyFile, SecretKeyError, type Sealer } from './crypto.js';
import { MIGRATIONS } from './migrations.js';
import { configure, ensureFileMode, migrate, openDatabase, StoreError } from './sqlite.js';

export { SecretKeyError } from './crypto.js';
export { StoreError } from './sqlite.js';
export {
  inspectOutbox,
  isOutboxCursor,
  openOutbox,
  OutboxStorageError,
  OUTBOX_FILE,
  OUTBOX_MIGRATIONS,
  OUTBOX_STATES,
  type EnqueueResult,
  type OpenOutboxOptions,
  type OutboxAccountStats,
  type OutboxInspection,
  type OutboxEntry,
  type OutboxInput,
  type OutboxListFilter,
  type OutboxPage,
  type OutboxResponse,
  type OutboxState,
  type OutboxStats,
  type OutboxStore,
} from './outbox.js';
export { lazyOutbox, type LazyOutboxStore } from './outbox-lazy.js';
const { existsSync, mkdirSync, renameSync } = process.getBuiltinModule('node:fs');
const { join } = process.getBuiltinModule('node:path');

export const DB_FILE = 'state.db';
export const KEY_FILE = 'secret.key';
/** The name of the systemd credential that may carry the key (LoadCredentialEncrypted=pos-token-agent.key:...). */
export const KEY_CREDENTIAL_NAME = 'pos-token-agent.key';

/** An account's credentials as stored: field name -> value (which fields, the authority's module says). */
export type Credentials = { [field: string]: string | undefined };

/**
 * What an account's token service was found to accept, learned by a login with these credentials and tried
 * first by the next one. Not a secret.
 */
export interface StoredInterop {
  /** The HTTP Basic encoding of the client ID and secret the service accepted. */
  basicAuthEncoding?: 'rfc6749' | 'plain';
}

export interface StoredCredentials {
  authority: string;
  credentials: Credentials;
  version: number;
  updatedAt: number;
  /** Absent until a login has learned something (and after new credentials are stored). */
  interop?: StoredInterop;
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
  /** impact-gr: the refresh token (sealed with the access token) and when it expires (wall-clock ms). */
  refreshToken?: string;
  refreshExpiresAt?: number;
  /** The boot (Linux boot_id) the token was obtained in, and the uptime in ms at that moment. */
  bootId?: string;
  bootUptimeMs?: number;
}

export interface StoredIdentity {
  profile: string | null;
  fields: Record<string, { value: string; source: string }>;
  /** Wall-clock ms of the read. */
  readAt: number;
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
  /** Replaces the account's credentials (a new version); what was learned with the old ones goes, `interop` replaces it. */
  putCredentials(account: string, authority: string, credentials: Credentials, interop?: StoredInterop): number;
  getCredentials(account: string): StoredCredentials | undefined;
  /**
   * Keeps what a login learned, with the credentials it was made with: only while `credentialsVersion` is still
   * the stored version (false when they were replaced meanwhile, or the account has none).
   */
  putInterop(account: string, credentialsVersion: number, interop: StoredInterop): boolean;
  /** Cheap check for a change made by another process (provision). */
  credentialsVersion(account: string): number | undefined;
  putToken(account: string, token: StoredToken): void;
  getToken(account: string): StoredToken | undefined;
  /** Deletes the account's token; with `onlyIf`, only while that is still the stored token. */
  deleteToken(account: string, onlyIf?: string): boolean;
  recordLogin(record: LoginRecord): void;
  recentLogins(account: string, limit: number): LoginRecord[];
  putIdentity(account: string, identity: StoredIdentity): void;
  getIdentity(account: string): StoredIdentity | undefined;
  /** Where an unusable database was moved by `setAsideUnusable`, if it was. */
  readonly setAside: string | undefined;
  integrityCheck(): string;
  close(): void;
}

export interface OpenStoreOptions {
  dir: string;
  /** Create the secret key when there is none yet (provisioning). Default true. */
  createKey?: boolean;
  /** Keep at most this many login journal rows. */
  journalLimit?: number;
  /** Default `dir/secret.key`; e.g. a systemd credential in $CREDENTIALS_DIRECTORY. */
  keyFile?: string;
  /**
   * What `keyFile` is, recorded when the database is first sealed. A database sealed with a systemd
   * credential is refused (never set aside, never given a key file) by a process that was not given it.
   */
  keySource?: KeySource;
  /** Binds the sealing key to this machine id. Without one the key file alone seals (and a warning is due). */
  machineId?: string;
  /**
   * Provisioning: a database that cannot be opened here (another machine's, a lost or wrong key) is
   * renamed aside with its key, not deleted, and a fresh one is made.
   */
  setAsideUnusable?: boolean;
  /** Wall clock for the set-aside name. */
  now?: () => number;
}

export type KeySource = 'key file' | 'systemd credential';

const KEY_CHECK_AAD = 'meta:key_check';
const KEY_CHECK_TEXT = 'pos-token-agent secret key check';

export function openStore(options: OpenStoreOptions): Store {
  try {
    return openStoreOnce(options, undefined);
  } catch (err) {
    // A database sealed with a systemd credential is not unusable: this process was only not given the key.
    if (!(options.setAsideUnusable && err instanceof SecretKeyError) || err.kind === 'credential_absent') throw err;
    const stamp = new Date((options.now ?? Date.now)()).toISOString().replace(/[:.]/g, '-');
    const dir = options.dir;
    const keyFile = options.keyFile ?? join(dir, KEY_FILE);
    const aside = join(dir, `${DB_FILE}.unusable-${stamp}`);
    for (const suffix of ['', '-wal', '-shm']) {
      if (existsSync(join(dir, DB_FILE + suffix))) renameSync(join(dir, DB_FILE + suffix), aside + suffix);
    }
    // A key of our own making goes aside with its database; a systemd credential is not ours to move.
    if (!options.keyFile && existsSync(keyFile)) renameSync(keyFile, `${keyFile}.unusable-${stamp}`);
    return openStoreOnce(options, aside);
  }
}

function openStoreOnce(options: OpenStoreOptions, setAside: string | undefined): Store {
  const dir = options.dir;
  const journalLimit = options.journalLimit ?? 10_000;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, DB_FILE);
  ensureFileMode(path);

  let db: Database.Database;
  try {
    db = openDatabase(path, { timeout: 5_000 });
  } catch (err) {
    throw new StoreError(`cannot open the state database ${path}: ${(err as Error).message}`, { cause: err });
  }
  try {
    configure(db, path);
    migrate(db, path, MIGRATIONS);
    const sealer = loadSealer(db, options.keyFile ?? join(dir, KEY_FILE), options.createKey ?? true, options.machineId, options.keySource ?? 'key file');
    return buildStore(db, path, sealer, journalLimit, setAside);
  } catch (err) {
    db.close();
    if (err instanceof StoreError || err instanceof SecretKeyError) throw err;
    throw new StoreError(`cannot use the state database ${path}: ${(err as Error).message}`, { cause: err });
  }
}

const META = 'SELECT value FROM meta WHERE key = ?';
const PUT_META = 'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value';

/**
 * The sealing key: the key file bound to the machine id. A database from before the binding
 * (or made without a machine id) is re-sealed under the bound key the first time a machine id
 * is given, in one transaction.
 */
function loadSealer(
  db: Database.Database,
  keyPath: string,
  createKey: boolean,
  machineId: string | undefined,
  keySource: KeySource,
): Sealer | undefined {
  const meta = (key: string) => (db.prepare(META).get(key) as { value: Buffer | string } | undefined)?.value;
  const check = meta('key_check') as Buffer | undefined;
  const binding = meta('key_binding') as string | undefined;
  if (check && meta('key_source') === 'systemd credential' && keySource !== 'systemd credential') {
    throw new SecretKeyError(
      'credential_absent',
      `the state database ${keyPath.replace(/[^/]*$/, '')}${DB_FILE} is sealed with the systemd credential ${KEY_CREDENTIAL_NAME}, which this process was not given; run it in the service's context (pos-token-agent-provision does): systemd-run --pipe --wait -p User=pos-token-agent -p LoadCredentialEncrypted=${KEY_CREDENTIAL_NAME}:PATH ... /usr/bin/pos-token-agent COMMAND`,
    );
  }
  let fileKey = readKeyFile(keyPath);
  if (!fileKey) {
    if (check) {
      throw new SecretKeyError(
        'missing',
        `the secret key ${keyPath} is missing, so the stored credentials cannot be read; restore the key or re-provision`,
      );
    }
    if (!createKey) return undefined;
    fileKey = createKeyFile(keyPath);
  }
  if (check && binding === 'machine-id') {
    if (machineId === undefined || meta('machine_hash') !== machineHash(machineId)) {
      throw new SecretKeyError(
        'foreign_machine',
        `the state database ${keyPath.replace(/[^/]*$/, '')}${DB_FILE} was made on another machine (or the machine id changed); its credentials cannot be used here; re-provision`,
      );
    }
  }
  const sealedWith = createSealer(check && binding !== 'machine-id' ? fileKey : bound(fileKey, machineId));
  if (check) {
    try {
      sealedWith.open(check, KEY_CHECK_AAD);
    } catch {
      throw new SecretKeyError(
        'mismatch',
        `the secret key ${keyPath} does not match this database (copied from another machine, or the key was replaced); re-provision`,
      );
    }
    // A database from before key sources were recorded learns its own at the first open that reads it.
    if (meta('key_source') === undefined) db.prepare(PUT_META).run('key_source', keySource);
    if (binding === 'machine-id' || machineId === undefined) return sealedWith;
    const target = createSealer(bindKey(fileKey, machineId));
    rebind(db, sealedWith, target, machineId);
    return target;
  }
  db.transaction(() => {
    if (meta('key_check')) return; // another process made it meanwhile; the next open checks it
    db.prepare(PUT_META).run('key_check', sealedWith.seal(KEY_CHECK_TEXT, KEY_CHECK_AAD));
    db.prepare(PUT_META).run('key_binding', machineId === undefined ? 'none' : 'machine-id');
    db.prepare(PUT_META).run('key_source', keySource);
    if (machineId !== undefined) db.prepare(PUT_META).run('machine_hash', machineHash(machineId));
  }).immediate();
  return sealedWith;
}

function bound(fileKey: Buffer, machineId: string | undefined): Buffer {
  return machineId === undefined ? fileKey : bindKey(fileKey, machineId);
}

/** Re-seals every secret under the machine-bound key, atomically. */
function rebind(db: Database.Database, from: Sealer, to: Sealer, machineId: string): void {
  db.transaction(() => {
    for (const table of ['credentials', 'tokens'] as const) {
      const rows = db.prepare(`SELECT account, secret FROM ${table}`).all() as Array<{ account: string; secret: Buffer }>;
      const update = db.prepare(`UPDATE ${table} SET secret = ? WHERE account = ?`);
      for (const row of rows) {
        const aad = `${table}:${row.account}`;
        update.run(to.seal(from.open(row.secret, aad), aad), row.account);
      }
    }
    db.prepare(PUT_META).run('key_check', to.seal(KEY_CHECK_TEXT, KEY_CHECK_AAD));
    db.prepare(PUT_META).run('key_binding', 'machine-id');
    db.prepare(PUT_META).run('machine_hash', machineHash(machineId));
  }).immediate();
}

const BASIC_AUTH_ENCODINGS: ReadonlySet<string> = new Set(['rfc6749', 'plain']);

/** The column's text for `interop`: only the members this version knows, NULL when none. */
function interopText(interop: StoredInterop | undefined): string | null {
  const known = readInterop(interop === undefined ? null : JSON.stringify(interop));
  return known ? JSON.stringify(known) : null;
}

/** The interop column read back: unknown or damaged members are dropped (as if never learned). */
function readInterop(text: string | null): StoredInterop | undefined {
  if (text === null) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  const encoding = typeof value === 'object' && value !== null ? (value as Record<string, unknown>).basicAuthEncoding : undefined;
  return typeof encoding === 'string' && BASIC_AUTH_ENCODINGS.has(encoding)
    ? { basicAuthEncoding: encoding as NonNullable<StoredInterop['basicAuthEncoding']> }
    : undefined;
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
  refresh_expires_at: number | null;
  boot_id: string | null;
  boot_uptime_ms: number | null;
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

type Statements = ReturnType<typeof prepareStatements>;
type NeedSealer = () => Sealer;

function buildStore(
  db: Database.Database,
  path: string,
  sealer: Sealer | undefined,
  journalLimit: number,
  setAside: string | undefined,
): Store {
  const need: NeedSealer = () => {
    if (!sealer) throw new SecretKeyError('missing', 'no secret key yet; run provision first');
    return sealer;
  };
  const stmt = prepareStatements(db);
  return {
    path,
    setAside,
    ...credentialMethods(db, stmt, need),
    ...tokenMethods(db, stmt, need),
    ...identityMethods(db, stmt),
    ...journalMethods(db, stmt, journalLimit),
    integrityCheck() {
      return String(db.pragma('integrity_check', { simple: true }));
    },
    close() {
      if (db.open) db.close();
    },
  };
}

/** Every statement of state.db, prepared once (openDatabase keeps them from the garbage collector). */
function prepareStatements(db: Database.Database) {
  return {
    getCreds: db.prepare('SELECT authority, secret, version, updated_at, interop FROM credentials WHERE account = ?'),
    putInterop: db.prepare('UPDATE credentials SET interop = ? WHERE account = ? AND version = ?'),
    credsVersion: db.prepare('SELECT version FROM credentials WHERE account = ?').pluck(),
    nextSeq: db.prepare(
      "INSERT INTO meta (key, value) VALUES ('credentials_seq', 1) ON CONFLICT(key) DO UPDATE SET value = value + 1 RETURNING value",
    ).pluck(),
    putCreds: db.prepare(
      `INSERT INTO credentials (account, authority, secret, version, updated_at, interop) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT(account) DO UPDATE SET authority = excluded.authority, secret = excluded.secret,
         version = excluded.version, updated_at = excluded.updated_at, interop = excluded.interop`,
    ),
    getToken: db.prepare(
      'SELECT secret, token_type, scope, obtained_at, expires_at, lifetime_s, credentials_version, config_fingerprint, refresh_expires_at, boot_id, boot_uptime_ms FROM tokens WHERE account = ?',
    ),
    putToken: db.prepare(
      `INSERT INTO tokens (account, secret, token_type, scope, obtained_at, expires_at, lifetime_s, credentials_version, config_fingerprint, refresh_expires_at, boot_id, boot_uptime_ms)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT(account) DO UPDATE SET secret = excluded.secret, token_type = excluded.token_type,
         scope = excluded.scope, obtained_at = excluded.obtained_at, expires_at = excluded.expires_at,
         lifetime_s = excluded.lifetime_s, credentials_version = excluded.credentials_version,
         config_fingerprint = excluded.config_fingerprint, refresh_expires_at = excluded.refresh_expires_at,
         boot_id = excluded.boot_id, boot_uptime_ms = excluded.boot_uptime_ms`,
    ),
    putIdentity: db.prepare(
      `INSERT INTO identities (account, profile, fields, read_at) VALUES (?, ?, ?, ?)
       ON CONFLICT(account) DO UPDATE SET profile = excluded.profile, fields = excluded.fields, read_at = excluded.read_at`,
    ),
    getIdentity: db.prepare('SELECT profile, fields, read_at FROM identities WHERE account = ?'),
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
}

function credentialMethods(
  db: Database.Database,
  stmt: Statements,
  need: NeedSealer,
): Pick<Store, 'putCredentials' | 'getCredentials' | 'putInterop' | 'credentialsVersion'> {
  return {
    putCredentials(account, authority, credentials, interop) {
      const s = need();
      return db.transaction(() => {
        const version = stmt.nextSeq.get() as number;
        const blob = s.seal(JSON.stringify(credentials), `credentials:${account}`);
        stmt.putCreds.run(account, authority, blob, version, Date.now(), interopText(interop));
        return version;
      }).immediate();
    },
    getCredentials(account) {
      const row = stmt.getCreds.get(account) as
        | { authority: string; secret: Buffer; version: number; updated_at: number; interop: string | null }
        | undefined;
      if (!row) return undefined;
      const credentials = JSON.parse(need().open(row.secret, `credentials:${account}`).toString('utf8')) as Credentials;
      const interop = readInterop(row.interop);
      return { authority: row.authority, credentials, version: row.version, updatedAt: row.updated_at, ...(interop ? { interop } : {}) };
    },
    putInterop(account, credentialsVersion, interop) {
      return db.transaction(() => stmt.putInterop.run(interopText(interop), account, credentialsVersion).changes > 0).immediate();
    },
    credentialsVersion(account) {
      return stmt.credsVersion.get(account) as number | undefined;
    },
  };
}

function tokenMethods(db: Database.Database, stmt: Statements, need: NeedSealer): Pick<Store, 'putToken' | 'getToken' | 'deleteToken'> {
  const readToken = (account: string): StoredToken | undefined => {
    const row = stmt.getToken.get(account) as TokenRow | undefined;
    if (!row) return undefined;
    const secret = JSON.parse(need().open(row.secret, `tokens:${account}`).toString('utf8')) as {
      accessToken: string;
      refreshToken?: string;
    };
    return tokenOf(row, secret);
  };
  return {
    putToken(account, token) {
      const secret = {
        accessToken: token.accessToken,
        ...(token.refreshToken !== undefined ? { refreshToken: token.refreshToken } : {}),
      };
      const blob = need().seal(JSON.stringify(secret), `tokens:${account}`);
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
          token.refreshExpiresAt !== undefined ? Math.round(token.refreshExpiresAt) : null,
          token.bootId ?? null,
          token.bootUptimeMs !== undefined ? Math.round(token.bootUptimeMs) : null,
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
  };
}

/** A token as stored: its row and its opened secret. */
function tokenOf(row: TokenRow, secret: { accessToken: string; refreshToken?: string }): StoredToken {
  return {
    accessToken: secret.accessToken,
    tokenType: row.token_type,
    ...(row.scope !== null ? { scope: row.scope } : {}),
    obtainedAt: row.obtained_at,
    expiresAt: row.expires_at,
    lifetimeS: row.lifetime_s,
    credentialsVersion: row.credentials_version,
    configFingerprint: row.config_fingerprint,
    ...(secret.refreshToken !== undefined ? { refreshToken: secret.refreshToken } : {}),
    ...(row.refresh_expires_at !== null ? { refreshExpiresAt: row.refresh_expires_at } : {}),
    ...(row.boot_id !== null && row.boot_uptime_ms !== null ? { bootId: row.boot_id, bootUptimeMs: row.boot_uptime_ms } : {}),
  };
}

function identityMethods(db: Database.Database, stmt: Statements): Pick<Store, 'putIdentity' | 'getIdentity'> {
  return {
    putIdentity(account, identity) {
      db.transaction(() => {
        stmt.putIdentity.run(account, identity.profile, JSON.stringify(identity.fields), Math.round(identity.readAt));
      }).immediate();
    },
    getIdentity(account) {
      const row = stmt.getIdentity.get(account) as { profile: string | null; fields: string; read_at: number } | undefined;
      if (!row) return undefined;
      let fields: StoredIdentity['fields'];
      try {
        fields = JSON.parse(row.fields) as StoredIdentity['fields'];
      } catch {
        return undefined; // damaged: as if never read; the next full read replaces it
      }
      return { profile: row.profile, fields, readAt: row.read_at };
    },
  };
}

/** The login journal: at most `journalLimit` rows, pruned every 100 inserts. */
function journalMethods(db: Database.Database, stmt: Statements, journalLimit: number): Pick<Store, 'recordLogin' | 'recentLogins'> {
  let insertsSincePrune = 0;
  return {
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
  };
}
