/**
 * The outbox: requests a till handed over to be delivered later, in `outbox.db` beside the state database.
 * An entry is acknowledged only once committed with synchronous=FULL, so it survives kill -9 and power loss.
 * Not sealed: receipts are not secrets (the till's own Authorization/Cookie are refused before they reach it).
 * One process writes it (the agent); the counters behind `stats()` live in that process's memory.
 */
import type Database from 'better-sqlite3';
import { OUTBOX_MIGRATIONS } from './outbox-migrations.js';
import { configure, ensureFileMode, migrate, openDatabase, StoreError, truncateWal } from './sqlite.js';

export { OUTBOX_MIGRATIONS } from './outbox-migrations.js';
const { randomUUID } = process.getBuiltinModule('node:crypto');
const { existsSync, mkdirSync } = process.getBuiltinModule('node:fs');
const { join } = process.getBuiltinModule('node:path');

export const OUTBOX_FILE = 'outbox.db';

export type OutboxState = 'queued' | 'sending' | 'delivered' | 'rejected' | 'cancelled';
export interface OutboxInput {
  account: string;
  method: string;
  path: string;
  headers: Record<string, string>;
  body: string;
  key?: string;
}
export interface OutboxResponse {
  status: number;
  body: string;
}
export interface OutboxEntry {
  /** randomUUID() */
  id: string;
  /** Global enqueue order (INTEGER PRIMARY KEY). */
  seq: number;
  account: string;
  key: string | null;
  method: string;
  path: string;
  headers: Record<string, string>;
  body: string;
  bytes: number;
  state: OutboxState;
  attempts: number;
  /** Wall-clock ms. */
  createdAt: number;
  updatedAt: number;
  deliveredAt: number | null;
  /** The last failed attempt's error; null once delivered. */
  lastError: string | null;
  response: OutboxResponse | null;
}
export type EnqueueResult =
  /** position: 1 = next to go for its account; 0 for an existing entry no longer waiting. */
  | { ok: true; entry: OutboxEntry; created: boolean; position: number }
  | { ok: false; error: 'outbox_full'; reason: 'entries' | 'bytes' | 'disk'; message: string };

export class OutboxStorageError extends Error {
  readonly code = 'ERR_OUTBOX_STORAGE';
  /** SQLITE_FULL: the write did not fit; nothing changed. */
  readonly diskFull: boolean;
  constructor(message: string, options: { cause?: unknown; diskFull: boolean }) {
    super(message, { cause: options.cause });
    this.name = 'OutboxStorageError';
    this.diskFull = options.diskFull;
  }
}

export interface OutboxAccountStats {
  /** Entries waiting to be delivered: queued plus the one being sent (an entry in flight still waits). */
  queued: number;
  /** createdAt of the account's head (its lowest-seq waiting entry): the oldest in queue order. */
  oldestQueuedAt: number | null;
  lastDeliveredAt: number | null;
  /** The error of the last failed attempt (retry or rejection); cleared by the next delivery. */
  lastError: string | null;
}
export interface OutboxStats {
  byState: Record<OutboxState, number>;
  pendingEntries: number;
  pendingBytes: number;
  accounts: Record<string, OutboxAccountStats>;
}

export interface OutboxStore {
  readonly path: string;
  /** Group commit: every enqueue made in the same event-loop turn goes into one IMMEDIATE transaction; each
   *  promise resolves only after that commit. Idempotent by (account, key): the existing entry, created=false.
   *  Limits (maxEntries/maxBytes, counting queued+sending) give ok:false reason entries|bytes; SQLITE_FULL gives
   *  reason disk. Never throws for those. */
  enqueue(input: OutboxInput): Promise<EnqueueResult>;
  get(id: string): OutboxEntry | undefined;
  /**
   * A page of entries, what waits first: the waiting ones (queued, sending) in seq order, which is each account's
   * delivery order, then the finished ones in seq order. Entries come without what they send (headers, body:
   * get() has them). limit 1..1000; `after` is a page's `next`. Entries added meanwhile come after every cursor
   * of their group; one that changes group while the pages are read may be shown twice or not at all.
   */
  list(filter: OutboxListFilter): OutboxPage;
  /** Lowest-seq entry in state queued or sending for the account. */
  head(account: string): OutboxEntry | undefined;
  /** Accounts that have queued or sending entries. */
  pendingAccounts(): string[];
  /** attempts+1, state sending; committed before the request goes out. From queued or sending (a crash's leftover). */
  markSending(id: string): OutboxEntry;
  /** From sending only, as are markRejected and markRetry. Clears lastError (attempts keeps the history). */
  markDelivered(id: string, response: OutboxResponse): OutboxEntry;
  markRejected(id: string, response: OutboxResponse, error: string): OutboxEntry;
  /** Back to queued (keeps seq), lastError set. */
  markRetry(id: string, error: string): OutboxEntry;
  cancel(id: string): { ok: true; entry: OutboxEntry } | { ok: false; reason: 'not_found' | 'not_queued'; entry?: OutboxEntry };
  /** Queues a rejected or cancelled entry again, keeping its seq (so it goes next). */
  retry(id: string): { ok: true; entry: OutboxEntry } | { ok: false; reason: 'not_found' | 'not_retryable'; entry?: OutboxEntry };
  /** From memory (kept up to date by the writes), never a table scan per call. */
  stats(): OutboxStats;
  /** Deletes at most `batch` delivered/rejected/cancelled rows last updated before `beforeWallMs`, in one short transaction. */
  pruneBatch(beforeWallMs: number, batch: number): number;
  integrityCheck(): string;
  close(): void;
}

export interface OutboxListFilter {
  account?: string;
  state?: OutboxState;
  limit: number;
  /** The `next` of the page before. */
  after?: string;
}
export interface OutboxPage {
  entries: OutboxEntry[];
  /** Where the next page starts (its `after`); null when nothing follows. */
  next: string | null;
}

export interface OpenOutboxOptions {
  dir: string;
  /** Waiting (queued + sending) entries at most. */
  maxEntries: number;
  /** Waiting entries' `bytes` at most. */
  maxBytes: number;
  /** Wall clock (ms). */
  now?: () => number;
  /** Tests: called after each committed enqueue transaction with the number of inputs it answered. */
  onCommit?: (inputs: number) => void;
}

/** Enqueues answered by one transaction at most; the rest go in the next one, so a burst never holds the lock long. */
export const MAX_BATCH = 512;
/** How long a write waits for the lock another connection (doctor) holds. */
const BUSY_TIMEOUT_MS = 5_000;

export const OUTBOX_STATES: ReadonlyArray<OutboxState> = ['queued', 'sending', 'delivered', 'rejected', 'cancelled'];
const PENDING = "state IN ('queued', 'sending')";
const FINISHED = "state IN ('delivered', 'rejected', 'cancelled')";
const STATE_COLUMNS =
  'seq, id, account, key, method, path, bytes, state, attempts, created_at, updated_at, delivered_at, last_error, ' +
  'response_status, response_body';
const COLUMNS = `${STATE_COLUMNS}, headers, body`;
/** An entry without what it sends (a change of state and a list need only that). */
const LIST_COLUMNS = `${STATE_COLUMNS}, '{}' AS headers, '' AS body`;

interface Row {
  seq: number;
  id: string;
  account: string;
  key: string | null;
  method: string;
  path: string;
  headers: string;
  body: string;
  bytes: number;
  state: OutboxState;
  attempts: number;
  created_at: number;
  updated_at: number;
  delivered_at: number | null;
  last_error: string | null;
  response_status: number | null;
  response_body: string | null;
}

interface Waiter {
  input: OutboxInput;
  headers: string;
  bytes: number;
  resolve: (result: EnqueueResult) => void;
  reject: (err: unknown) => void;
}

type Statements = ReturnType<typeof prepare>;
type AccountSeen = Pick<OutboxAccountStats, 'lastDeliveredAt' | 'lastError'>;
/** What a change tells about its account (the last delivery, the last error), given what memory holds. */
type AccountUpdate = (a: OutboxAccountStats, now: number) => AccountSeen;

export function openOutbox(options: OpenOutboxOptions): OutboxStore {
  mkdirSync(options.dir, { recursive: true, mode: 0o700 });
  const path = join(options.dir, OUTBOX_FILE);
  ensureFileMode(path);
  let db: Database.Database;
  try {
    db = openDatabase(path, { timeout: BUSY_TIMEOUT_MS });
  } catch (err) {
    throw new StoreError(`cannot open the outbox database ${path}: ${(err as Error).message}`, { cause: err });
  }
  try {
    configure(db, path);
    migrate(db, path, OUTBOX_MIGRATIONS);
    return new SqliteOutbox(db, path, prepare(db), options);
  } catch (err) {
    db.close();
    if (err instanceof StoreError) throw err;
    throw new StoreError(`cannot use the outbox database ${path}: ${(err as Error).message}`, { cause: err });
  }
}

/** What doctor reads of outbox.db: its integrity, entries by state, and what waits per account. */
export interface OutboxInspection {
  path: string;
  /** PRAGMA integrity_check's first line: "ok" when sound. */
  integrity: string;
  byState: Record<OutboxState, number>;
  /** Per account with waiting (queued or sending) entries: how many, and the oldest one's createdAt (wall ms). */
  waiting: Record<string, { entries: number; oldestAt: number }>;
}

/**
 * outbox.db looked at without changing it, for doctor (which may run while the agent runs, or as root): opened
 * read-only, never created, no migration; undefined when there is none. SQLite may add the -wal/-shm files a
 * WAL database is read with; as root it gives them the database's owner, as for state.db. Throws StoreError
 * when the file cannot be read as an outbox.
 */
export function inspectOutbox(dir: string): OutboxInspection | undefined {
  const path = join(dir, OUTBOX_FILE);
  if (!existsSync(path)) return undefined;
  let db: Database.Database | undefined;
  try {
    db = openDatabase(path, { readonly: true, fileMustExist: true, timeout: 5_000 });
    const integrity = String(db.prepare('PRAGMA integrity_check').pluck().get());
    const byState: Record<OutboxState, number> = { queued: 0, sending: 0, delivered: 0, rejected: 0, cancelled: 0 };
    for (const r of db.prepare('SELECT state, count(*) AS n FROM entries GROUP BY state').all() as Array<{ state: OutboxState; n: number }>) {
      byState[r.state] = r.n;
    }
    const waiting: OutboxInspection['waiting'] = {};
    const rows = db.prepare(`SELECT account, count(*) AS n, min(created_at) AS oldest FROM entries WHERE ${PENDING} GROUP BY account`).all();
    for (const r of rows as Array<{ account: string; n: number; oldest: number }>) waiting[r.account] = { entries: r.n, oldestAt: r.oldest };
    return { path, integrity, byState, waiting };
  } catch (err) {
    throw new StoreError(`cannot read the outbox database ${path}: ${(err as Error).message}`, { cause: err });
  } finally {
    db?.close();
  }
}

/** Every statement, prepared once (openDatabase keeps them from the garbage collector). */
function prepare(db: Database.Database) {
  const page = (where: string) => db.prepare(`SELECT ${LIST_COLUMNS} FROM entries WHERE ${where} AND seq > ? ORDER BY seq LIMIT ?`);
  return {
    /** One wrapper whose argument runs inside: its BEGIN/COMMIT statements are made once, not per call. */
    tx: db.transaction((fn: () => unknown) => fn()),
    byId: db.prepare(`SELECT ${COLUMNS} FROM entries_full WHERE id = ?`),
    /** For a change of state: the entry without its body. */
    stateById: db.prepare(`SELECT ${LIST_COLUMNS} FROM entries WHERE id = ?`),
    byKey: db.prepare(`SELECT ${COLUMNS} FROM entries_full WHERE account = ? AND key = ?`),
    head: db.prepare(`SELECT ${COLUMNS} FROM entries_full WHERE account = ? AND ${PENDING} ORDER BY seq LIMIT 1`),
    headCreated: db.prepare(`SELECT created_at FROM entries WHERE account = ? AND ${PENDING} ORDER BY seq LIMIT 1`).pluck(),
    position: db.prepare(`SELECT count(*) FROM entries WHERE account = ? AND ${PENDING} AND seq <= ?`).pluck(),
    insert: db.prepare(
      `INSERT INTO entries (id, account, key, method, path, bytes, state, attempts, created_at, updated_at)
       VALUES (?, ?, ?, ?, ?, ?, 'queued', 0, ?, ?)`,
    ),
    insertBody: db.prepare('INSERT INTO bodies (seq, headers, body) VALUES (?, ?, ?)'),
    bodyOf: db.prepare('SELECT headers, body FROM bodies WHERE seq = ?'),
    update: db.prepare(
      `UPDATE entries SET state = ?, attempts = ?, updated_at = ?, delivered_at = ?, last_error = ?, response_status = ?,
       response_body = ? WHERE seq = ?`,
    ),
    addAccount: db.prepare('INSERT INTO accounts (account) VALUES (?) ON CONFLICT(account) DO NOTHING'),
    putAccount: db.prepare(
      `INSERT INTO accounts (account, last_delivered_at, last_error) VALUES (?, ?, ?)
       ON CONFLICT(account) DO UPDATE SET last_delivered_at = excluded.last_delivered_at, last_error = excluded.last_error`,
    ),
    /** A page of one group of list() (or of one state), of all accounts or of one. */
    pages: {
      waiting: { all: page(PENDING), ofAccount: page(`account = ? AND ${PENDING}`) },
      finished: { all: page(FINISHED), ofAccount: page(`account = ? AND ${FINISHED}`) },
      state: { all: page('state = ?'), ofAccount: page('account = ? AND state = ?') },
    },
    prune: db.prepare(
      `DELETE FROM entries WHERE seq IN (SELECT seq FROM entries WHERE ${FINISHED} AND updated_at < ? ORDER BY seq LIMIT ?)
       RETURNING state`,
    ),
    countByState: db.prepare('SELECT state, count(*) AS n FROM entries GROUP BY state'),
    pendingByAccount: db.prepare(`SELECT account, count(*) AS n, sum(bytes) AS b FROM entries WHERE ${PENDING} GROUP BY account`),
    accounts: db.prepare('SELECT account, last_delivered_at, last_error FROM accounts'),
  };
}

function isPending(state: OutboxState): boolean {
  return state === 'queued' || state === 'sending';
}

/** list()'s order: what waits, then what is finished; seq order within each. */
type ListGroup = 'waiting' | 'finished';
const LIST_GROUPS: ReadonlyArray<ListGroup> = ['waiting', 'finished'];
/** A cursor: the group and seq of the last entry of a page, e.g. "w42" or "f1077". */
const CURSOR = /^([wf])([0-9]{1,15})$/;

function groupOf(state: OutboxState): ListGroup {
  return isPending(state) ? 'waiting' : 'finished';
}

function cursorOf(row: Pick<Row, 'state' | 'seq'>): string {
  return `${groupOf(row.state)[0]}${row.seq}`;
}

function parseCursor(text: string): { group: ListGroup; seq: number } | undefined {
  const m = CURSOR.exec(text);
  return m ? { group: m[1] === 'w' ? 'waiting' : 'finished', seq: Number(m[2]) } : undefined;
}

/** Whether `text` has the form of a cursor list() gives (the socket API checks a client's before asking). */
export function isOutboxCursor(text: string): boolean {
  return CURSOR.test(text);
}

function isDiskFull(err: unknown): boolean {
  return (err as { code?: unknown } | null)?.code === 'SQLITE_FULL';
}

function storageError(err: unknown, what: string): OutboxStorageError {
  const diskFull = isDiskFull(err);
  return new OutboxStorageError(`${what}: ${diskFull ? 'the disk is full' : (err as Error).message}`, { cause: err, diskFull });
}

function toEntry(row: Row): OutboxEntry {
  return {
    id: row.id,
    seq: row.seq,
    account: row.account,
    key: row.key,
    method: row.method,
    path: row.path,
    headers: JSON.parse(row.headers) as Record<string, string>,
    body: row.body,
    bytes: row.bytes,
    state: row.state,
    attempts: row.attempts,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    deliveredAt: row.delivered_at,
    lastError: row.last_error,
    response: row.response_status === null ? null : { status: row.response_status, body: row.response_body ?? '' },
  };
}

function answer(response: OutboxResponse): Pick<Row, 'response_status' | 'response_body'> {
  return { response_status: response.status, response_body: response.body };
}

/** A queued row as inserted (seq filled in by the insert). */
function newRow(input: OutboxInput, headers: string, bytes: number, now: number): Row {
  return {
    seq: 0,
    id: randomUUID(),
    account: input.account,
    key: input.key ?? null,
    method: input.method,
    path: input.path,
    headers,
    body: input.body,
    bytes,
    state: 'queued',
    attempts: 0,
    created_at: now,
    updated_at: now,
    delivered_at: null,
    last_error: null,
    response_status: null,
    response_body: null,
  };
}

/** Why the input cannot be stored, checked before it joins a batch (one bad input must not fail the others). */
function invalidInput(input: OutboxInput): string | undefined {
  for (const field of ['account', 'method', 'path', 'body'] as const) {
    if (typeof input?.[field] !== 'string') return `${field} must be a string`;
  }
  if (input.key !== undefined && typeof input.key !== 'string') return 'key must be a string';
  const h = input.headers as unknown;
  if (typeof h !== 'object' || h === null || Array.isArray(h)) return 'headers must be an object';
  if (Object.values(h).some((v) => typeof v !== 'string')) return 'header values must be strings';
  return undefined;
}

/** What stats() reads: loaded once at open, then changed by every committed write. */
class Counters {
  byState: Record<OutboxState, number> = { queued: 0, sending: 0, delivered: 0, rejected: 0, cancelled: 0 };
  pendingEntries = 0;
  pendingBytes = 0;
  readonly accounts = new Map<string, OutboxAccountStats>();

  static load(stmt: Statements): Counters {
    const c = new Counters();
    for (const r of stmt.countByState.all() as Array<{ state: OutboxState; n: number }>) c.byState[r.state] = r.n;
    for (const r of stmt.accounts.all() as Array<{ account: string; last_delivered_at: number | null; last_error: string | null }>) {
      c.accounts.set(r.account, { queued: 0, oldestQueuedAt: null, lastDeliveredAt: r.last_delivered_at, lastError: r.last_error });
    }
    for (const r of stmt.pendingByAccount.all() as Array<{ account: string; n: number; b: number }>) {
      const a = c.account(r.account);
      a.queued = r.n;
      a.oldestQueuedAt = stmt.headCreated.get(r.account) as number;
      c.pendingEntries += r.n;
      c.pendingBytes += r.b;
    }
    return c;
  }

  account(name: string): OutboxAccountStats {
    let a = this.accounts.get(name);
    if (!a) {
      a = { queued: 0, oldestQueuedAt: null, lastDeliveredAt: null, lastError: null };
      this.accounts.set(name, a);
    }
    return a;
  }

  /** One entry changed (before → after; undefined for an insert or a delete). `head`: the account's new head createdAt. */
  apply(before: Row | undefined, after: Row | undefined, head?: number | null): void {
    for (const [row, sign] of [[before, -1], [after, 1]] as const) {
      if (!row) continue;
      this.byState[row.state] += sign;
      if (!isPending(row.state)) continue;
      const a = this.account(row.account);
      if (sign > 0 && a.queued === 0) a.oldestQueuedAt = row.created_at;
      a.queued += sign;
      this.pendingEntries += sign;
      this.pendingBytes += sign * row.bytes;
      if (a.queued === 0) a.oldestQueuedAt = null;
    }
    const account = (after ?? before)?.account;
    if (head !== undefined && account !== undefined) this.account(account).oldestQueuedAt = head;
  }

  snapshot(): OutboxStats {
    return {
      byState: { ...this.byState },
      pendingEntries: this.pendingEntries,
      pendingBytes: this.pendingBytes,
      accounts: Object.fromEntries([...this.accounts].map(([name, a]) => [name, { ...a }])),
    };
  }
}

class SqliteOutbox implements OutboxStore {
  readonly path: string;
  readonly #db: Database.Database;
  readonly #stmt: Statements;
  readonly #now: () => number;
  readonly #options: OpenOutboxOptions;
  readonly #counters: Counters;
  #waiting: Waiter[] = [];
  #scheduled = false;
  /** A write did not fit and the WAL could not be checkpointed since: the next write tries first. */
  #checkpointDue = false;

  constructor(db: Database.Database, path: string, stmt: Statements, options: OpenOutboxOptions) {
    this.path = path;
    this.#db = db;
    this.#stmt = stmt;
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#counters = Counters.load(stmt);
  }

  enqueue(input: OutboxInput): Promise<EnqueueResult> {
    if (!this.#db.open) return Promise.reject(new Error('the outbox is closed'));
    const invalid = invalidInput(input);
    if (invalid) return Promise.reject(new TypeError(`outbox entry: ${invalid}`));
    const headers = JSON.stringify(input.headers);
    const bytes = Buffer.byteLength(input.body) + Buffer.byteLength(input.path) + Buffer.byteLength(headers);
    return new Promise((resolve, reject) => {
      this.#waiting.push({ input, headers, bytes, resolve, reject });
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(() => this.#flush());
      }
    });
  }

  /** Commits up to MAX_BATCH waiting enqueues; more wait for the next turn (others get the event loop between). */
  #flush(): void {
    const batch = this.#waiting.splice(0, MAX_BATCH);
    if (this.#waiting.length > 0) setImmediate(() => this.#flush());
    else this.#scheduled = false;
    if (batch.length > 0 && this.#db.open) this.#commit(batch);
  }

  /** One IMMEDIATE transaction for the batch; memory changes and promises resolve only once COMMIT returned. */
  #commit(batch: Waiter[]): void {
    let written: { results: EnqueueResult[]; created: Row[] };
    try {
      written = this.#write(() => this.#writeBatch(batch));
    } catch (err) {
      if (!isDiskFull(err)) {
        const failure = storageError(err, 'cannot store outbox entries');
        for (const w of batch) w.reject(failure);
        return;
      }
      const message = 'the disk holding the outbox is full';
      for (const w of batch) w.resolve({ ok: false, error: 'outbox_full', reason: 'disk', message });
      return;
    }
    for (const row of written.created) this.#counters.apply(undefined, row);
    this.#options.onCommit?.(batch.length);
    batch.forEach((w, i) => w.resolve(written.results[i]!));
  }

  /** Inside the transaction: each input checked on its own against the limits as the batch so far left them. */
  #writeBatch(batch: Waiter[]): { results: EnqueueResult[]; created: Row[] } {
    const stmt = this.#stmt;
    const now = this.#now();
    let entries = this.#counters.pendingEntries;
    let bytes = this.#counters.pendingBytes;
    const added = new Map<string, number>();
    const results: EnqueueResult[] = [];
    const created: Row[] = [];
    for (const { input, headers, bytes: size } of batch) {
      const existing = input.key === undefined ? undefined : (stmt.byKey.get(input.account, input.key) as Row | undefined);
      if (existing) {
        const position = isPending(existing.state) ? (stmt.position.get(existing.account, existing.seq) as number) : 0;
        results.push({ ok: true, entry: toEntry(existing), created: false, position });
      } else if (entries >= this.#options.maxEntries) {
        results.push(this.#full('entries', `the outbox holds ${entries} waiting entries, its limit`));
      } else if (bytes + size > this.#options.maxBytes) {
        results.push(this.#full('bytes', `the outbox's waiting entries would exceed ${this.#options.maxBytes} bytes`));
      } else {
        const row = newRow(input, headers, size, now);
        const args = [row.id, row.account, row.key, row.method, row.path, row.bytes, now, now];
        row.seq = Number(stmt.insert.run(...args).lastInsertRowid);
        stmt.insertBody.run(row.seq, row.headers, row.body);
        stmt.addAccount.run(row.account);
        entries += 1;
        bytes += size;
        added.set(row.account, (added.get(row.account) ?? 0) + 1);
        const position = (this.#counters.accounts.get(row.account)?.queued ?? 0) + added.get(row.account)!;
        results.push({ ok: true, entry: toEntry(row), created: true, position });
        created.push(row);
      }
    }
    return { results, created };
  }

  #full(reason: 'entries' | 'bytes', message: string): EnqueueResult {
    return { ok: false, error: 'outbox_full', reason, message };
  }

  get(id: string): OutboxEntry | undefined {
    const row = this.#stmt.byId.get(id) as Row | undefined;
    return row && toEntry(row);
  }

  list(filter: OutboxListFilter): OutboxPage {
    const { account, state, limit, after } = filter;
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw new RangeError(`limit ${limit} is not within 1..1000`);
    const from = after === undefined ? { group: 'waiting' as const, seq: 0 } : parseCursor(after);
    if (!from) throw new RangeError(`${JSON.stringify(after)} is not a cursor of the outbox's list`);
    const rows: Row[] = [];
    // One more than asked for tells whether anything follows.
    for (const group of LIST_GROUPS.slice(LIST_GROUPS.indexOf(from.group))) {
      if (rows.length > limit || (state !== undefined && groupOf(state) !== group)) continue;
      const { all, ofAccount } = state === undefined ? this.#stmt.pages[group] : this.#stmt.pages.state;
      const seq = group === from.group ? from.seq : 0;
      const args = [...(account !== undefined ? [account] : []), ...(state !== undefined ? [state] : []), seq, limit + 1 - rows.length];
      rows.push(...((account !== undefined ? ofAccount : all).all(...args) as Row[]));
    }
    const entries = rows.slice(0, limit);
    return { entries: entries.map(toEntry), next: rows.length > limit ? cursorOf(entries.at(-1)!) : null };
  }

  head(account: string): OutboxEntry | undefined {
    const row = this.#stmt.head.get(account) as Row | undefined;
    return row && toEntry(row);
  }

  pendingAccounts(): string[] {
    return [...this.#counters.accounts].filter(([, a]) => a.queued > 0).map(([name]) => name);
  }

  /**
   * One short IMMEDIATE transaction changing one entry: `next` gives its new row from the current one, or
   * undefined when the current state does not allow the change. Memory follows only once COMMIT returned.
   */
  #change(
    id: string,
    what: string,
    next: (row: Row, now: number) => Row | undefined,
    account?: AccountUpdate,
  ): { before?: Row; after?: Row } {
    const stmt = this.#stmt;
    let out: { before?: Row; after?: Row; head?: number | null; seen?: AccountSeen };
    try {
      out = this.#write(() => {
        const before = stmt.stateById.get(id) as Row | undefined;
        if (!before) return {};
        const now = this.#now();
        const after = next(before, now);
        if (!after) return { before };
        const { state, attempts, updated_at, delivered_at, last_error, response_status, response_body, seq } = after;
        stmt.update.run(state, attempts, updated_at, delivered_at, last_error, response_status, response_body, seq);
        // Entering or leaving the waiting set may move the head (a retried entry goes before later ones).
        const moved = isPending(before.state) !== isPending(after.state);
        const head = moved ? ((stmt.headCreated.get(after.account) as number | undefined) ?? null) : undefined;
        const seen = account?.(this.#counters.account(after.account), now);
        if (seen) stmt.putAccount.run(after.account, seen.lastDeliveredAt, seen.lastError);
        return { before, after, head, seen };
      });
    } catch (err) {
      throw storageError(err, `cannot ${what} outbox entry ${id}`);
    }
    if (out.before && out.after) {
      this.#counters.apply(out.before, out.after, out.head);
      if (out.seen) Object.assign(this.#counters.account(out.after.account), out.seen);
    }
    return out;
  }

  /** For mark*: the deliverer's own entry, so an unknown id or a wrong state is a bug, not an answer. */
  #mark(id: string, what: string, from: ReadonlyArray<OutboxState>, next: (row: Row, now: number) => Row, account?: AccountUpdate): OutboxEntry {
    const { before, after } = this.#change(id, what, (row, now) => (from.includes(row.state) ? next(row, now) : undefined), account);
    if (!before) throw new Error(`no outbox entry ${id}`);
    if (!after) throw new Error(`cannot ${what} outbox entry ${id}: it is ${before.state}`);
    return this.#whole(after);
  }

  markSending(id: string): OutboxEntry {
    return this.#mark(id, 'send', ['queued', 'sending'], (row, now) => ({ ...row, state: 'sending', attempts: row.attempts + 1, updated_at: now }));
  }

  markDelivered(id: string, response: OutboxResponse): OutboxEntry {
    return this.#mark(
      id,
      'mark delivered',
      ['sending'],
      // What failed before is no longer the entry's story: attempts keeps how many it took.
      (row, now) => ({ ...row, state: 'delivered', updated_at: now, delivered_at: now, last_error: null, ...answer(response) }),
      (_a, now) => ({ lastDeliveredAt: now, lastError: null }),
    );
  }

  markRejected(id: string, response: OutboxResponse, error: string): OutboxEntry {
    return this.#mark(
      id,
      'mark rejected',
      ['sending'],
      (row, now) => ({ ...row, state: 'rejected', updated_at: now, last_error: error, ...answer(response) }),
      (a) => ({ lastDeliveredAt: a.lastDeliveredAt, lastError: error }),
    );
  }

  markRetry(id: string, error: string): OutboxEntry {
    return this.#mark(
      id,
      'queue again',
      ['sending'],
      (row, now) => ({ ...row, state: 'queued', updated_at: now, last_error: error }),
      (a) => ({ lastDeliveredAt: a.lastDeliveredAt, lastError: error }),
    );
  }

  cancel(id: string): { ok: true; entry: OutboxEntry } | { ok: false; reason: 'not_found' | 'not_queued'; entry?: OutboxEntry } {
    const { before, after } = this.#change(id, 'cancel', (row, now) =>
      row.state === 'queued' ? { ...row, state: 'cancelled', updated_at: now } : undefined,
    );
    if (!before) return { ok: false, reason: 'not_found' };
    return after ? { ok: true, entry: this.#whole(after) } : { ok: false, reason: 'not_queued', entry: this.#whole(before) };
  }

  /** The old answer goes (it is no longer the entry's outcome); attempts and last_error stay as history. */
  retry(id: string): { ok: true; entry: OutboxEntry } | { ok: false; reason: 'not_found' | 'not_retryable'; entry?: OutboxEntry } {
    const { before, after } = this.#change(id, 'retry', (row, now) =>
      row.state === 'rejected' || row.state === 'cancelled'
        ? { ...row, state: 'queued', updated_at: now, delivered_at: null, response_status: null, response_body: null }
        : undefined,
    );
    if (!before) return { ok: false, reason: 'not_found' };
    return after ? { ok: true, entry: this.#whole(after) } : { ok: false, reason: 'not_retryable', entry: this.#whole(before) };
  }

  /** A row read without its body (a change of state), as the whole entry: the body read, never rewritten. */
  #whole(row: Row): OutboxEntry {
    const b = this.#stmt.bodyOf.get(row.seq) as Pick<Row, 'headers' | 'body'> | undefined;
    return toEntry(b ? { ...row, ...b } : row);
  }

  /**
   * `fn` in one IMMEDIATE transaction. A write that did not fit (SQLITE_FULL) leaves a WAL that the automatic
   * checkpoint could not empty (it needed room in the database file): it is checkpointed and truncated at once,
   * and, when that fails too, before every write until it succeeds, so that room freed on the disk is usable by
   * the next write instead of being taken by a WAL that grows again.
   */
  #write<T>(fn: () => T): T {
    if (this.#checkpointDue) this.#checkpointDue = !truncateWal(this.#db, BUSY_TIMEOUT_MS);
    try {
      return this.#stmt.tx.immediate(fn) as T;
    } catch (err) {
      if (isDiskFull(err)) this.#checkpointDue = !truncateWal(this.#db, BUSY_TIMEOUT_MS);
      throw err;
    }
  }

  stats(): OutboxStats {
    return this.#counters.snapshot();
  }

  pruneBatch(beforeWallMs: number, batch: number): number {
    if (!(batch >= 1)) return 0;
    let deleted: Array<{ state: OutboxState }>;
    try {
      deleted = this.#write(() => this.#stmt.prune.all(Math.floor(beforeWallMs), Math.floor(batch)) as typeof deleted);
    } catch (err) {
      throw storageError(err, 'cannot prune the outbox');
    }
    for (const { state } of deleted) this.#counters.byState[state] -= 1;
    return deleted.length;
  }

  integrityCheck(): string {
    return String(this.#db.pragma('integrity_check', { simple: true }));
  }

  /** Enqueues still waiting for their turn are committed first: a caller may already count on them. */
  close(): void {
    if (!this.#db.open) return;
    while (this.#waiting.length > 0) this.#commit(this.#waiting.splice(0, MAX_BATCH));
    this.#db.close();
  }
}
