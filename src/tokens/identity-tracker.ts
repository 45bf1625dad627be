/**
 * The device identity an account logs in with: read from the device profile, merged with the
 * last good identity kept in the store. A source that fails does not stop logins while a stored
 * value exists (the identity is then "degraded"); a changed value is logged and used.
 */
import { deviceHeadersOf } from '../authorities/index.js';
import type { AccountConfig, DeviceIdentity } from '../config/index.js';
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/log.js';
import type { StoredIdentity } from '../store/index.js';
import {
  IDENTITY_FIELDS,
  requiredFields,
  type IdentityField,
  type IdentityReading as ReaderReading,
  type IdentityValue,
} from '../identity/index.js';

export { IDENTITY_FIELDS, type IdentityField, type IdentityValue };

/** A reading as identity/ makes it; `skipped` may be left out by providers that have no expensive sources. */
export type IdentityReading = Omit<ReaderReading, 'skipped'> & { skipped?: IdentityField[] };

/** What the manager needs of identity/: a reader and which fields an authority cannot do without. */
export interface IdentityProvider {
  read(account: AccountConfig, options: { cheapOnly: boolean }): Promise<IdentityReading>;
  required(account: AccountConfig): IdentityField[];
}

/** The identity as the tracker last merged it (server/ maps it to `/v1/status`); identity values are not secrets. */
export interface IdentityStatus {
  posserial: string | null;
  pososversion: string | null;
  posmodelframework: string | null;
  profile: string | null;
  sources: Partial<Record<IdentityField, string>>;
  /** True while a source fails and a stored value stands in for it. */
  degraded: boolean;
  problems: Partial<Record<IdentityField, string>>;
  /** When the sources were last read (wall-clock ms). */
  readAtWall: number | null;
}

export type IdentityOutcome = { ok: true; identity: DeviceIdentity } | { ok: false; message: string };

export interface IdentityStore {
  getIdentity(account: string): StoredIdentity | undefined;
  putIdentity(account: string, identity: StoredIdentity): void;
}

/** Values from the account's config only: the behaviour without a device profile. */
export const configIdentityProvider: IdentityProvider = {
  async read(account) {
    const values: IdentityReading['values'] = {};
    for (const f of IDENTITY_FIELDS) {
      const v = account.identity[f];
      if (v) values[f] = { value: v, source: 'config' };
    }
    return { profile: null, values, errors: {} };
  },
  required: (account) => requiredFields(deviceHeadersOf(account)),
};

export interface IdentityTracker {
  /** Reads (cheap sources only once a full read has succeeded) and merges with the last good identity. */
  resolve(): Promise<IdentityOutcome>;
  status(): IdentityStatus;
}

export interface IdentityTrackerDeps {
  provider: IdentityProvider;
  store: IdentityStore;
  log: Logger;
  clock: Clock;
}

type Fields = Partial<Record<IdentityField, IdentityValue>>;

export function createIdentityTracker(account: AccountConfig, deps: IdentityTrackerDeps): IdentityTracker {
  const name = account.name;
  const { provider, store, log, clock } = deps;
  let merged: Fields = {};
  let problems: Partial<Record<IdentityField, string>> = {};
  let profile: string | null = account.deviceProfile ?? null;
  let readAt: number | null = null;
  /** Whether the expensive sources have been read successfully since start. */
  let fullReadDone = false;
  let reading: Promise<IdentityOutcome> | undefined;

  const stored = (): StoredIdentity | undefined => {
    try {
      return store.getIdentity(name);
    } catch (err) {
      log.error('cannot read the stored identity', { account: name, error: String(err) });
      return undefined;
    }
  };

  const resolveOnce = async (): Promise<IdentityOutcome> => {
    const required = provider.required(account);
    const cheapOnly = fullReadDone;
    const live = await readLive(provider, account, cheapOnly, profile, required);
    profile = live.profile;
    const last = stored();
    const lastFields = (last?.fields ?? {}) as Fields;
    const { next, nextProblems } = mergeReading(live, merged, lastFields);
    if (!cheapOnly && Object.keys(live.errors).length === 0) fullReadDone = true;
    logChanges(log, name, live, merged, lastFields, next);
    merged = next;
    problems = nextProblems;
    readAt = clock.now();
    for (const [f, why] of Object.entries(nextProblems)) {
      const message = next[f as IdentityField] ? 'identity source failed; using the stored value' : 'identity source failed';
      log.warn(message, { account: name, field: f, problem: why });
    }
    // Keep what was read live as the last good identity (fields that failed keep their stored value).
    const toStore: StoredIdentity['fields'] = { ...lastFields };
    for (const f of IDENTITY_FIELDS) if (live.values[f]) toStore[f] = live.values[f];
    if (JSON.stringify(toStore) !== JSON.stringify(last?.fields ?? {}) || (last?.profile ?? null) !== profile) {
      try {
        store.putIdentity(name, { profile, fields: toStore, readAt: clock.now() });
      } catch (err) {
        log.error('cannot store the identity', { account: name, error: String(err) });
      }
    }
    return outcomeOf(account, required, next, nextProblems);
  };

  return {
    resolve() {
      // Concurrent callers share one read (a serial source must never be read twice at once).
      reading ??= resolveOnce().finally(() => {
        reading = undefined;
      });
      return reading;
    },
    status() {
      const sources: IdentityStatus['sources'] = {};
      for (const f of IDENTITY_FIELDS) if (merged[f]) sources[f] = merged[f]!.source;
      return {
        posserial: merged.posserial?.value ?? account.identity.posserial ?? null,
        pososversion: merged.pososversion?.value ?? account.identity.pososversion ?? null,
        posmodelframework: merged.posmodelframework?.value ?? account.identity.posmodelframework ?? null,
        profile,
        sources,
        degraded: Object.keys(problems).length > 0,
        problems,
        readAtWall: readAt,
      };
    },
  };
}

/** One reading of the sources; a provider that throws counts as every required field failing. */
async function readLive(
  provider: IdentityProvider,
  account: AccountConfig,
  cheapOnly: boolean,
  profile: string | null,
  required: IdentityField[],
): Promise<IdentityReading> {
  try {
    return await provider.read(account, { cheapOnly });
  } catch (err) {
    const live: IdentityReading = { profile, values: {}, errors: {} };
    for (const f of required) live.errors[f] = (err as Error).message ?? String(err);
    return live;
  }
}

/** Live values win; a skipped (expensive) field keeps what was read before; a failed one its stored value. */
function mergeReading(live: IdentityReading, merged: Fields, lastFields: Fields) {
  const next: Fields = {};
  const nextProblems: Partial<Record<IdentityField, string>> = {};
  for (const f of IDENTITY_FIELDS) {
    const v = live.values[f];
    if (v) {
      next[f] = v;
    } else if (live.skipped?.includes(f)) {
      const previous = merged[f] ?? lastFields[f];
      if (previous) next[f] = previous;
    } else if (live.errors[f] !== undefined) {
      nextProblems[f] = live.errors[f]!;
      const previous = lastFields[f] ?? merged[f];
      if (previous) next[f] = { value: previous.value, source: `stored (${previous.source} failed)` };
    }
  }
  return { next, nextProblems };
}

function logChanges(log: Logger, name: string, live: IdentityReading, merged: Fields, lastFields: Fields, next: Fields): void {
  for (const f of IDENTITY_FIELDS) {
    const before = merged[f]?.value ?? lastFields[f]?.value;
    const after = next[f]?.value;
    if (live.values[f] && before !== undefined && before !== after) {
      log.warn('device identity changed; logging in with the new value', { account: name, field: f, from: before, to: after });
    }
  }
}

function outcomeOf(
  account: AccountConfig,
  required: IdentityField[],
  next: Fields,
  nextProblems: Partial<Record<IdentityField, string>>,
): IdentityOutcome {
  const missing = required.filter((f) => !next[f]);
  if (missing.length) {
    const why = missing.map((f) => `${f}: ${nextProblems[f] ?? 'no value (no source gives one)'}`).join('; ');
    const hint = account.deviceProfile
      ? `check the device profile ${account.deviceProfile} with: pos-token-agent identity --account ${account.name}`
      : `set accounts.${account.name}.identity.${missing[0]} or a deviceProfile in the config`;
    return { ok: false, message: `${why}; ${hint}` };
  }
  const identity: DeviceIdentity = {};
  for (const f of IDENTITY_FIELDS) if (next[f]) identity[f] = next[f]!.value;
  return { ok: true, identity };
}
