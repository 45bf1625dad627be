/**
 * The agent's view of a store that may not open: a database from another machine, or one whose
 * key is lost. The agent keeps running and answers `not_provisioned` with the reason; once a
 * technician re-provisions (which sets the unusable database aside), the next access opens the
 * new one. Nothing is deleted here.
 */
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/log.js';
import { SecretKeyError } from './crypto.js';
import type { Store } from './index.js';

const RETRY_MS = 10_000;

export interface ReopeningStore extends Store {
  /** Why the database cannot be used, while it cannot. */
  readonly problem: SecretKeyError | undefined;
}

/**
 * Opens at once; a SecretKeyError does not throw but is kept and reported on every read of
 * secrets, and opening is tried again at most every 10 s. Other errors (a damaged file, a
 * newer schema) throw as before: they need a person, not a retry.
 */
export function openReopeningStore(open: () => Store, deps: { clock: Clock; log: Logger; path: string }): ReopeningStore {
  const { clock, log } = deps;
  let inner: Store | undefined;
  let problem: SecretKeyError | undefined;
  let lastTry = -Infinity;

  const attempt = (): Store | undefined => {
    if (inner) return inner;
    if (clock.monotonic() - lastTry < RETRY_MS) return undefined;
    lastTry = clock.monotonic();
    try {
      inner = open();
      if (problem) log.info('the state database can be used again', { path: deps.path });
      problem = undefined;
    } catch (err) {
      if (!(err instanceof SecretKeyError)) throw err;
      if (problem?.message !== err.message) {
        log.error('the state database cannot be used; serving not_provisioned until it is re-provisioned', {
          path: deps.path,
          reason: err.kind,
          message: err.message,
        });
      }
      problem = err;
    }
    return inner;
  };
  attempt();

  const secrets = (): Store => {
    const s = attempt();
    if (!s) throw problem!;
    return s;
  };

  return {
    path: deps.path,
    get problem() {
      return inner ? undefined : problem;
    },
    get setAside() {
      return inner?.setAside;
    },
    putCredentials: (...a) => secrets().putCredentials(...a),
    getCredentials: (...a) => secrets().getCredentials(...a),
    putInterop: (...a) => attempt()?.putInterop(...a) ?? false,
    credentialsVersion: (...a) => attempt()?.credentialsVersion(...a),
    putToken: (...a) => secrets().putToken(...a),
    getToken: (...a) => attempt()?.getToken(...a),
    deleteToken: (...a) => attempt()?.deleteToken(...a) ?? false,
    recordLogin: (...a) => attempt()?.recordLogin(...a),
    recentLogins: (...a) => attempt()?.recentLogins(...a) ?? [],
    putIdentity: (...a) => attempt()?.putIdentity(...a),
    getIdentity: (...a) => attempt()?.getIdentity(...a),
    integrityCheck: () => secrets().integrityCheck(),
    close: () => inner?.close(),
  };
}
