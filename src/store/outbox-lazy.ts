/**
 * The outbox as the agent holds it: `outbox.db` is opened when it exists or when an account can use it (has an
 * apiUrl), not made on a box that never enqueues. A database that cannot be opened does not stop the agent (its
 * tokens are served as before): what needs it fails with the reason, and it is tried again on the next use.
 */
import { OUTBOX_FILE, OUTBOX_STATES, openOutbox, type OpenOutboxOptions, type OutboxStats, type OutboxStore } from './outbox.js';
const { existsSync } = process.getBuiltinModule('node:fs');
const { join } = process.getBuiltinModule('node:path');

export interface LazyOutboxStore extends OutboxStore {
  /** Opens now (at start, or when the config gains an apiUrl); the error when it cannot, else undefined. */
  open(): Error | undefined;
  readonly opened: boolean;
  /** Whether outbox.db is there (entries may wait in it). */
  exists(): boolean;
}

function emptyStats(): OutboxStats {
  return {
    byState: Object.fromEntries(OUTBOX_STATES.map((s) => [s, 0])) as OutboxStats['byState'],
    pendingEntries: 0,
    pendingBytes: 0,
    accounts: {},
  };
}

export function lazyOutbox(options: OpenOutboxOptions): LazyOutboxStore {
  const path = join(options.dir, OUTBOX_FILE);
  let inner: OutboxStore | undefined;
  const store = (): OutboxStore => (inner ??= openOutbox(options));
  const tryOpen = (): Error | undefined => {
    try {
      store();
      return undefined;
    } catch (err) {
      return err as Error;
    }
  };
  return {
    path,
    exists: () => existsSync(path),
    get opened() {
      return inner !== undefined;
    },
    open: tryOpen,
    enqueue: (input) => {
      try {
        return store().enqueue(input);
      } catch (err) {
        return Promise.reject(err);
      }
    },
    get: (id) => inner?.get(id),
    list: (filter) => inner?.list(filter) ?? { entries: [], next: null },
    head: (account) => inner?.head(account),
    pendingAccounts: () => inner?.pendingAccounts() ?? [],
    markSending: (id) => store().markSending(id),
    markDelivered: (id, response) => store().markDelivered(id, response),
    markRejected: (id, response, error) => store().markRejected(id, response, error),
    markRetry: (id, error) => store().markRetry(id, error),
    cancel: (id) => (inner ? inner.cancel(id) : { ok: false, reason: 'not_found' }),
    retry: (id) => (inner ? inner.retry(id) : { ok: false, reason: 'not_found' }),
    stats: () => inner?.stats() ?? emptyStats(),
    pruneBatch: (before, batch) => inner?.pruneBatch(before, batch) ?? 0,
    integrityCheck: () => inner?.integrityCheck() ?? 'ok',
    close: () => inner?.close(),
  };
}
