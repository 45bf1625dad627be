/**
 * The token manager: per account, a cached token served from memory, renewed ahead of expiry,
 * one login in flight at a time shared by every waiter, and polite backoff when logins fail.
 *
 * Time: expiry is kept on the monotonic clock while running and stored as wall-clock time.
 * Nothing here reads Date.now() or sets a real timer: the Clock does.
 */
import type { Authority, Credentials, LoginFailure, LoginResult } from '../authorities/index.js';
import { decodeJwtClaims } from '../authorities/index.js';
import { accountFingerprint, type AccountConfig } from '../config/index.js';
import { systemClock, type Clock, type Timer } from '../lib/clock.js';
import type { Logger } from '../lib/log.js';
import type { MetricsRegistry } from '../lib/metrics.js';
import type { LoginRecord, StoredCredentials, StoredToken } from '../store/index.js';
import {
  configIdentityProvider,
  createIdentityTracker,
  type IdentityProvider,
  type IdentityStatus,
  type IdentityStore,
  type IdentityTracker,
} from './identity-tracker.js';
import { createLoginLimiter, type LoginLimiter } from './login-limiter.js';
import { refreshDelayMs, retryDelayMs, type RetryableReason } from './policy.js';

// The states and reasons are the socket API's own words (api/ is a leaf every area may use).
import type { TokenState, UnavailableReason } from '../api/index.js';
export type { TokenState, UnavailableReason };

export interface ServedToken {
  accessToken: string;
  tokenType: string;
  /** Whole seconds left. */
  expiresIn: number;
  /** ISO 8601 UTC. */
  expiresAt: string;
  account: string;
  scope: string | null;
}

export type TokenError =
  /** `known`: the accounts there are. */
  | { kind: 'unknown_account'; message: string; known?: string[] }
  | { kind: 'unavailable'; reason: UnavailableReason; message: string; retryAfterS: number }
  | { kind: 'min_ttl_unsatisfiable'; message: string; minTtlS?: number; lifetimeS?: number }
  | { kind: 'refresh_limited'; message: string; retryAfterS: number };

export type TokenAnswer = { ok: true; token: ServedToken } | { ok: false; error: TokenError };

export interface AccountStatus {
  authority: string;
  state: TokenState;
  expires_at: string | null;
  /** The last login that got an answer, whatever it was (or when a restored token was obtained). */
  last_login_at: string | null;
  /** The last login that got a token (or when a restored token was obtained). */
  last_success_at: string | null;
  last_error: { reason: UnavailableReason; message: string; at: string } | null;
  identity: IdentityStatus;
  next_attempt_in_s: number | null;
}

/** What the manager needs of the store; the SQLite store satisfies it, tests may use a fake. */
export interface TokenStore extends IdentityStore {
  getCredentials(account: string): StoredCredentials | undefined;
  credentialsVersion(account: string): number | undefined;
  getToken(account: string): StoredToken | undefined;
  putToken(account: string, token: StoredToken): void;
  deleteToken(account: string, onlyIf?: string): boolean;
  recordLogin(record: LoginRecord): void;
  // issue 14: what a login learned (the Basic encoding the server accepted), kept with those credentials.
  putInterop(account: string, credentialsVersion: number, interop: NonNullable<StoredCredentials['interop']>): boolean;
}


export interface TokenManagerDeps {
  store: TokenStore;
  authority: (account: AccountConfig) => Authority;
  log: Logger;
  clock?: Clock;
  random?: () => number;
  /** Device identity; default: the account's config `identity` only. */
  identity?: IdentityProvider;
  /** Login limits shared across accounts; default: one for this manager. */
  limiter?: LoginLimiter;
  metrics?: MetricsRegistry;
}

export interface TokenManager {
  /** Restores stored tokens and starts background renewal. */
  start(): void;
  getToken(account: string, minTtlS: number): Promise<TokenAnswer>;
  /**
   * getToken's answer when it needs no waiting: a fresh token with at least minTtlS left (counted like getToken).
   * Undefined otherwise (unknown account, no token, too little left, or due for renewal): then call getToken.
   */
  peek(account: string, minTtlS: number): TokenAnswer | undefined;
  refresh(account: string, rejectedToken: string, minTtlS: number): Promise<TokenAnswer>;
  status(): Record<string, AccountStatus>;
  /** Accounts without a usable token. */
  unhealthy(): string[];
  reconfigure(accounts: Record<string, AccountConfig>): void;
  /** Stops timers and waits (bounded) for logins in flight. Safe to call more than once. */
  stop(): Promise<void>;
}

interface HeldToken {
  accessToken: string;
  tokenType: string;
  scope?: string;
  lifetimeMs: number;
  expiresAtMono: number;
  refreshAtMono: number;
  /** serve()'s expires_at, kept with the whole-second wall time it was made for. */
  expiresAtIso?: { wallS: number; iso: string };
}

interface LastError {
  reason: UnavailableReason;
  message: string;
  atWall: number;
  failure?: LoginFailure;
}

/** impact-gr: a refresh token, and the access token it goes with (sent as Bearer when renewing). */
interface HeldRefresh {
  refreshToken: string;
  accessToken: string;
  expiresAtWall: number;
}

interface Account {
  config: AccountConfig;
  fingerprint: string;
  authority: Authority;
  tracker: IdentityTracker;
  token?: HeldToken;
  refresh?: HeldRefresh;
  inflight?: Promise<void>;
  failures: number;
  nextAttemptMono: number;
  lastError?: LastError;
  /** Credentials version that was rejected; a different version lifts the rejected backoff. */
  rejectedVersion?: number;
  lastLoginAtWall?: number;
  lastSuccessAtWall?: number;
  lastForcedMono?: number;
  timer?: Timer;
  removed: boolean;
}

const NOT_PROVISIONED_POLL_MS = 30_000;
const STOP_WAIT_MS = 5_000;
/** Clock skew tolerated between when a token was obtained and the wall clock at restore. */
const RESTORE_SKEW_MS = 5_000;
/** A refresh token this close to its expiry is not used; a login is cheaper than a failed refresh. */
const REFRESH_MARGIN_MS = 60_000;
/** Spread accounts that wait for a shared login limit over this much time past the free slot. */
const LIMIT_SPREAD_MS = 2_000;

export function createTokenManager(deps: TokenManagerDeps, accounts: Record<string, AccountConfig>): TokenManager {
  const clock = deps.clock ?? systemClock;
  const random = deps.random ?? Math.random;
  const log = deps.log;
  const store = deps.store;
  const identityProvider = deps.identity ?? configIdentityProvider;
  const limiter = deps.limiter ?? createLoginLimiter();
  const abort = new AbortController();
  const table = new Map<string, Account>();
  let started = false;
  let stopping: Promise<void> | undefined;

  const m = deps.metrics;
  const loginsTotal = m?.counter('pos_token_agent_logins_total', 'Logins by authority and outcome.');
  const requestsTotal = m?.counter('pos_token_agent_token_requests_total', 'Token requests by result.');
  const loginSeconds = m?.histogram(
    'pos_token_agent_login_duration_seconds',
    'Login latency.',
    [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  );
  m?.gauge('pos_token_agent_token_seconds_left', 'Seconds left on the current token of each account.', () =>
    [...table.values()].map((a) => ({
      labels: { account: a.config.name },
      value: a.token ? Math.max(0, Math.floor((a.token.expiresAtMono - clock.monotonic()) / 1000)) : 0,
    })),
  );

  const makeAccount = (config: AccountConfig): Account => ({
    config,
    fingerprint: accountFingerprint(config),
    authority: deps.authority(config),
    tracker: createIdentityTracker(config, { provider: identityProvider, store, log, clock }),
    failures: 0,
    nextAttemptMono: 0,
    removed: false,
  });
  for (const config of Object.values(accounts)) table.set(config.name, makeAccount(config));

  const stateOf = (a: Account, now: number): TokenState => {
    if (!a.token) return 'none';
    if (now >= a.token.expiresAtMono) return 'expired';
    return now >= a.token.refreshAtMono ? 'stale' : 'fresh';
  };

  const wallAt = (mono: number): number => clock.now() + (mono - clock.monotonic());

  const serve = (a: Account, t: HeldToken, now: number): ServedToken => {
    const leftMs = t.expiresAtMono - now;
    const wallS = Math.floor(wallAt(t.expiresAtMono) / 1000);
    if (t.expiresAtIso?.wallS !== wallS) t.expiresAtIso = { wallS, iso: new Date(wallS * 1000).toISOString() };
    return {
      accessToken: t.accessToken,
      tokenType: t.tokenType,
      expiresIn: Math.floor(leftMs / 1000),
      expiresAt: t.expiresAtIso.iso,
      account: a.config.name,
      scope: t.scope ?? null,
    };
  };

  const unavailable = (a: Account, now: number): TokenError => {
    const e = a.lastError;
    const retryAfterS = Math.max(1, Math.ceil((a.nextAttemptMono - now) / 1000));
    if (!e) {
      return { kind: 'unavailable', reason: 'upstream_unavailable', message: 'no token yet; a login is due', retryAfterS };
    }
    return { kind: 'unavailable', reason: e.reason, message: e.message, retryAfterS };
  };

  // ---- scheduling -------------------------------------------------------------------------

  const schedule = (a: Account): void => {
    a.timer?.cancel();
    a.timer = undefined;
    if (a.removed || stopping) return;
    const now = clock.monotonic();
    let at: number;
    if (a.lastError?.reason === 'not_provisioned') at = now + NOT_PROVISIONED_POLL_MS;
    else if (a.token && now < a.token.refreshAtMono) at = Math.max(a.token.refreshAtMono, a.nextAttemptMono);
    else at = Math.max(now, a.nextAttemptMono);
    a.timer = clock.setTimer(() => {
      a.timer = undefined;
      void ensureLogin(a, 'scheduled').catch((err: unknown) =>
        log.error('scheduled login failed unexpectedly', { account: a.config.name, error: String(err) }),
      );
    }, at - now);
  };

  // ---- logins -----------------------------------------------------------------------------

  /** Starts a login unless one is in flight or backoff forbids it; resolves when it is over. */
  const ensureLogin = (a: Account, trigger: string): Promise<void> => {
    if (a.inflight) return a.inflight;
    if (stopping || a.removed) return Promise.resolve();
    const now = clock.monotonic();
    if (now < a.nextAttemptMono && !liftRejectedBackoff(a)) {
      // The retry is already scheduled (every failure schedules one); requests in backoff leave it alone.
      if (!a.timer) schedule(a);
      return Promise.resolve();
    }
    a.inflight = login(a, trigger)
      .catch((err: unknown) => {
        log.error('login crashed', { account: a.config.name, error: String(err) });
        fail(a, 'upstream_unavailable', 'internal error during login; see the agent log');
      })
      .finally(() => {
      a.inflight = undefined;
      schedule(a);
    });
    return a.inflight;
  };

  /** A rejected login waits for new credentials; new ones (from provision) lift the wait. */
  const liftRejectedBackoff = (a: Account): boolean => {
    if (a.lastError?.reason !== 'credentials_rejected' && a.lastError?.reason !== 'not_provisioned') return false;
    const version = safe(() => store.credentialsVersion(a.config.name), undefined);
    if (version === undefined || version === a.rejectedVersion) return false;
    log.info('credentials changed; logging in again', { account: a.config.name });
    a.nextAttemptMono = 0;
    a.failures = 0;
    return true;
  };

  const login = async (a: Account, trigger: string): Promise<void> => {
    const name = a.config.name;
    let creds: StoredCredentials | undefined;
    try {
      creds = store.getCredentials(name);
    } catch (err) {
      fail(a, 'not_provisioned', `stored credentials cannot be read: ${(err as Error).message}`);
      return;
    }
    if (!creds) {
      fail(a, 'not_provisioned', `account ${name} has no credentials; run: pos-token-agent provision --account ${name}`);
      a.rejectedVersion = undefined;
      return;
    }
    if (creds.authority !== a.config.authority) {
      fail(
        a,
        'not_provisioned',
        `credentials of ${name} were provisioned for ${creds.authority}, but the config says ${a.config.authority}; provision again`,
      );
      a.rejectedVersion = creds.version;
      return;
    }
    const id = await a.tracker.resolve();
    if (!id.ok) {
      fail(a, 'identity_unavailable', `device identity unavailable: ${id.message}`);
      return;
    }
    if (a.removed || stopping) return;

    const limit = a.authority.loginLimit?.(a.config, creds.credentials as Credentials);
    if (limit) {
      const now = clock.monotonic();
      const decision = limiter.take(limit.key, limit.perMinute, now);
      if (!decision.ok) {
        // Not a failure of this account: it waits its turn without growing its backoff.
        const message = `waiting for the authority's login limit (${limit.perMinute} per minute for this client ID)`;
        if (a.lastError?.message !== message) log.info('login deferred by the shared login limit', { account: name });
        a.lastError = { reason: 'rate_limited', message, atWall: clock.now() };
        a.nextAttemptMono = decision.retryAtMono + random() * LIMIT_SPREAD_MS;
        return;
      }
    }

    const startedMono = clock.monotonic();
    const startedWall = clock.now();
    const request = {
      account: a.config,
      credentials: creds.credentials as Credentials,
      identity: id.identity,
      signal: abort.signal,
      ...(creds.interop ? { interop: creds.interop } : {}), // issue 14: what earlier logins learned is tried first
    };
    let kind: 'login' | 'refresh' = 'login';
    let result: LoginResult | undefined;
    const held = a.refresh;
    if (a.authority.refresh && held && clock.now() < held.expiresAtWall - REFRESH_MARGIN_MS) {
      kind = 'refresh';
      log.info('refresh', { account: name, authority: a.config.authority, trigger });
      result = await a.authority.refresh({ ...request, refreshToken: held.refreshToken, accessToken: held.accessToken });
      if (!result.ok && result.failure.reason === 'credentials_rejected') {
        log.info('refresh refused; logging in again', { account: name, message: result.failure.message });
        loginsTotal?.inc({ authority: a.config.authority, kind, outcome: result.failure.reason });
        a.refresh = undefined;
        result = undefined;
        kind = 'login';
      }
    }
    if (!result) {
      log.info('login', { account: name, authority: a.config.authority, trigger });
      result = await a.authority.login(request);
    }
    const receivedMono = clock.monotonic();
    const receivedWall = clock.now();
    const receivedBoot = clock.boot?.();
    const durationMs = receivedMono - startedMono;
    loginSeconds?.observe(durationMs / 1000, { authority: a.config.authority });
    loginsTotal?.inc({ authority: a.config.authority, kind, outcome: result.ok ? 'ok' : result.failure.reason });
    a.lastLoginAtWall = receivedWall;
    const record: LoginRecord = {
      account: name,
      authority: a.config.authority,
      startedAt: startedWall,
      durationMs,
      outcome: result.ok ? 'ok' : result.failure.reason,
      ...(result.ok ? {} : failureJournal(result.failure)),
    };
    safe(() => store.recordLogin(record), undefined, (err) =>
      log.error('cannot write the login journal', { account: name, error: String(err) }),
    );
    if (a.removed) return;

    if (!result.ok) {
      const f = result.failure;
      fail(a, f.reason, f.message, f);
      if (f.reason === 'credentials_rejected') a.rejectedVersion = creds.version;
      if (limit && f.reason === 'rate_limited') limiter.block(limit.key, a.nextAttemptMono);
      return;
    }

    const lifetimeMs = result.token.expiresInS * 1000;
    const fresh: HeldToken = {
      accessToken: result.token.accessToken,
      tokenType: result.token.tokenType,
      ...(result.token.scope !== undefined ? { scope: result.token.scope } : {}),
      lifetimeMs,
      expiresAtMono: receivedMono + lifetimeMs,
      refreshAtMono: receivedMono + refreshDelayMs(lifetimeMs, random),
    };
    a.token = fresh;
    const refreshToken = result.token.refreshToken;
    a.refresh =
      refreshToken !== undefined
        ? {
            refreshToken,
            accessToken: fresh.accessToken,
            expiresAtWall: receivedWall + (result.token.refreshExpiresInS ?? 0) * 1000,
          }
        : undefined;
    // issue 14: keep what the server was found to accept (the Basic encoding) with these credentials.
    const interop = { ...creds.interop, ...result.interop };
    if (JSON.stringify(interop) !== JSON.stringify(creds.interop ?? {})) {
      log.info('remembering what the token service accepted', { account: name, ...interop });
      safe(() => store.putInterop(name, creds.version, interop), false, (err) =>
        log.error('cannot store what the token service accepted', { account: name, error: String(err) }),
      );
    }
    a.failures = 0;
    a.nextAttemptMono = 0;
    a.lastError = undefined;
    a.rejectedVersion = undefined;
    a.lastSuccessAtWall = receivedWall;
    log.info(kind === 'refresh' ? 'refresh succeeded' : 'login succeeded', {
      account: name,
      expires_in_s: result.token.expiresInS,
      refresh_in_s: Math.round((fresh.refreshAtMono - receivedMono) / 1000),
      duration_ms: Math.round(durationMs),
    });
    safe(
      () =>
        store.putToken(name, {
          accessToken: fresh.accessToken,
          tokenType: fresh.tokenType,
          ...(fresh.scope !== undefined ? { scope: fresh.scope } : {}),
          ...(a.refresh ? { refreshToken: a.refresh.refreshToken, refreshExpiresAt: a.refresh.expiresAtWall } : {}),
          obtainedAt: receivedWall,
          ...(receivedBoot ? { bootId: receivedBoot.id, bootUptimeMs: receivedBoot.uptimeMs } : {}),
          expiresAt: receivedWall + lifetimeMs,
          lifetimeS: result.token.expiresInS,
          credentialsVersion: creds.version,
          configFingerprint: a.fingerprint,
        }),
      undefined,
      (err) => log.error('cannot store the token; serving it from memory', { account: name, error: String(err) }),
    );
  };

  const fail = (a: Account, reason: UnavailableReason, message: string, f?: LoginFailure): void => {
    const now = clock.monotonic();
    // Polling an unprovisioned account says so once, not every poll.
    const repeat = reason === 'not_provisioned' && a.lastError?.reason === reason && a.lastError.message === message;
    a.failures += 1;
    a.lastError = { reason, message, atWall: clock.now(), ...(f ? { failure: f } : {}) };
    if (reason === 'not_provisioned') {
      a.nextAttemptMono = now;
    } else {
      const delay = retryDelayMs({
        attempt: a.failures,
        reason: reason as RetryableReason,
        ...(f?.retryAfterMs !== undefined ? { retryAfterMs: f.retryAfterMs } : {}),
        policy: a.config.backoff,
        random,
      });
      a.nextAttemptMono = now + delay;
    }
    const level = repeat ? 'debug' : reason === 'credentials_rejected' || reason === 'not_provisioned' ? 'error' : 'warn';
    log[level]('login failed', {
      account: a.config.name,
      reason,
      message,
      ...(f?.httpStatus !== undefined ? { http_status: f.httpStatus } : {}),
      attempt: a.failures,
      retry_in_s: reason === 'not_provisioned' ? null : Math.round((a.nextAttemptMono - now) / 1000),
      holding_valid_token: Boolean(a.token && now < a.token.expiresAtMono),
    });
  };

  // ---- restore ----------------------------------------------------------------------------

  const restore = (a: Account): void => {
    const name = a.config.name;
    let stored: StoredToken | undefined;
    try {
      stored = store.getToken(name);
    } catch (err) {
      log.error('stored token cannot be read; logging in anew', { account: name, error: String(err) });
      return;
    }
    if (!stored) return;
    const wall = clock.now();
    if (
      stored.refreshToken !== undefined &&
      stored.refreshExpiresAt !== undefined &&
      stored.configFingerprint === a.fingerprint &&
      wall < stored.refreshExpiresAt &&
      wall >= stored.obtainedAt - RESTORE_SKEW_MS
    ) {
      a.refresh = { refreshToken: stored.refreshToken, accessToken: stored.accessToken, expiresAtWall: stored.refreshExpiresAt };
    }
    // Within the same boot the token's age is measured on the boot's own time line, which a wall
    // clock step does not move; only across a reboot is the wall clock all there is.
    const now = clock.boot?.();
    const ageByBoot =
      now && stored.bootId === now.id && stored.bootUptimeMs !== undefined && now.uptimeMs >= stored.bootUptimeMs
        ? now.uptimeMs - stored.bootUptimeMs
        : undefined;
    const why = rejectStored(stored, a, wall, ageByBoot);
    if (why) {
      log.info('not restoring the stored token', { account: name, why });
      return;
    }
    const lifetimeMs = stored.lifetimeS * 1000;
    let leftMs: number;
    let ageMs: number;
    if (ageByBoot !== undefined) {
      ageMs = ageByBoot;
      leftMs = statedLifetimeMs(stored) - ageByBoot;
    } else {
      let expiresAtWall = stored.expiresAt;
      const exp = decodeJwtClaims(stored.accessToken)?.exp;
      if (typeof exp === 'number') expiresAtWall = Math.min(expiresAtWall, exp * 1000);
      ageMs = wall - stored.obtainedAt;
      leftMs = expiresAtWall - wall;
    }
    const mono = clock.monotonic();
    a.token = {
      accessToken: stored.accessToken,
      tokenType: stored.tokenType,
      ...(stored.scope !== undefined ? { scope: stored.scope } : {}),
      lifetimeMs,
      expiresAtMono: mono + leftMs,
      refreshAtMono: mono + refreshDelayMs(lifetimeMs, random) - ageMs,
    };
    a.lastLoginAtWall = stored.obtainedAt;
    a.lastSuccessAtWall = stored.obtainedAt;
    log.info('restored the stored token', {
      account: name,
      expires_in_s: Math.floor(leftMs / 1000),
      measured_by: ageByBoot !== undefined ? 'uptime (same boot)' : 'wall clock',
    });
  };

  const rejectStored = (t: StoredToken, a: Account, wall: number, ageByBoot: number | undefined): string | undefined => {
    if (t.configFingerprint !== a.fingerprint) return 'the account config changed since it was obtained';
    if (ageByBoot !== undefined) {
      return ageByBoot >= statedLifetimeMs(t) ? 'expired: its lifetime has passed since it was obtained in this boot' : undefined;
    }
    if (wall < t.obtainedAt - RESTORE_SKEW_MS) {
      return 'the wall clock reads earlier than when the token was obtained; the clock cannot be trusted';
    }
    if (wall >= t.expiresAt) return 'expired by the wall clock';
    const exp = decodeJwtClaims(t.accessToken)?.exp;
    if (typeof exp === 'number' && wall >= exp * 1000) return "expired by the token's own exp";
    return undefined;
  };

  // ---- public face --------------------------------------------------------------------------

  const answer = async (name: string, minTtlS: number, forced?: string): Promise<TokenAnswer> => {
    const a = table.get(name);
    if (!a) return { ok: false, error: { kind: 'unknown_account', message: `no account named ${name}`, known: [...table.keys()] } };
    const minTtlMs = minTtlS * 1000;

    if (forced !== undefined && a.token?.accessToken === forced) {
      const now = clock.monotonic();
      const wait = (a.lastForcedMono ?? -Infinity) + a.config.forcedRefreshMinIntervalMs - now;
      if (wait > 0) {
        return {
          ok: false,
          error: {
            kind: 'refresh_limited',
            message: `forced refreshes of ${name} are limited to one per ${a.config.forcedRefreshMinIntervalMs / 1000} s`,
            retryAfterS: Math.max(1, Math.ceil(wait / 1000)),
          },
        };
      }
      a.lastForcedMono = now;
      log.info('dropping a token the authority refused', { account: name });
      a.token = undefined;
      safe(() => store.deleteToken(name, forced), false, (err) =>
        log.error('cannot delete the dropped token', { account: name, error: String(err) }),
      );
      a.nextAttemptMono = Math.min(a.nextAttemptMono, now);
    }

    for (let round = 0; round < 3; round++) {
      const now = clock.monotonic();
      const t = a.token;
      if (t && now < t.expiresAtMono && t.expiresAtMono - now >= minTtlMs) {
        if (now >= t.refreshAtMono && !a.inflight) void ensureLogin(a, 'stale');
        return { ok: true, token: serve(a, t, now) };
      }
      if (t && t.lifetimeMs < minTtlMs) {
        return {
          ok: false,
          error: {
            kind: 'min_ttl_unsatisfiable',
            message: `min_ttl ${minTtlS} s is longer than the lifetime of this account's tokens (${t.lifetimeMs / 1000} s)`,
            minTtlS,
            lifetimeS: Math.floor(t.lifetimeMs / 1000),
          },
        };
      }
      if (round === 2) break;
      const before = a.inflight;
      await ensureLogin(a, 'demand');
      // Nothing started (backoff in force) and nothing was in flight: answer now.
      if (!before && !a.inflight && a.lastError && clock.monotonic() < a.nextAttemptMono) {
        if (!a.token || a.token.expiresAtMono - clock.monotonic() < minTtlMs) break;
      }
    }
    return { ok: false, error: unavailable(a, clock.monotonic()) };
  };

  const count = async (p: Promise<TokenAnswer>): Promise<TokenAnswer> => {
    const r = await p;
    requestsTotal?.inc({
      result: r.ok ? 'ok' : r.error.kind === 'unavailable' ? r.error.reason : r.error.kind,
    });
    return r;
  };

  return {
    start() {
      if (started) return;
      started = true;
      for (const a of table.values()) {
        restore(a);
        if (!a.token || clock.monotonic() >= a.token.refreshAtMono) void ensureLogin(a, 'start');
        else schedule(a);
      }
    },
    getToken: (name, minTtlS) => count(answer(name, minTtlS)),
    peek(name, minTtlS) {
      const a = table.get(name);
      const t = a?.token;
      if (!a || !t) return undefined;
      const now = clock.monotonic();
      // A stale token goes through getToken, which also starts its renewal.
      if (t.expiresAtMono - now < minTtlS * 1000 || now >= t.refreshAtMono) return undefined;
      requestsTotal?.inc({ result: 'ok' });
      return { ok: true, token: serve(a, t, now) };
    },
    refresh: (name, rejected, minTtlS) => count(answer(name, minTtlS, rejected)),
    status() {
      const now = clock.monotonic();
      const out: Record<string, AccountStatus> = {};
      for (const [name, a] of table) {
        const e = a.lastError;
        out[name] = {
          authority: a.config.authority,
          state: stateOf(a, now),
          expires_at: a.token ? new Date(wallAt(a.token.expiresAtMono)).toISOString() : null,
          last_login_at: a.lastLoginAtWall !== undefined ? new Date(a.lastLoginAtWall).toISOString() : null,
          last_success_at: a.lastSuccessAtWall !== undefined ? new Date(a.lastSuccessAtWall).toISOString() : null,
          last_error: e ? { reason: e.reason, message: e.message, at: new Date(e.atWall).toISOString() } : null,
          identity: a.tracker.status(),
          next_attempt_in_s: a.nextAttemptMono > now ? Math.ceil((a.nextAttemptMono - now) / 1000) : null,
        };
      }
      return out;
    },
    unhealthy() {
      const now = clock.monotonic();
      return [...table.values()]
        .filter((a) => !a.token || now >= a.token.expiresAtMono)
        .map((a) => a.config.name);
    },
    reconfigure(next) {
      for (const [name, a] of table) {
        if (!next[name]) {
          a.removed = true;
          a.timer?.cancel();
          table.delete(name);
          log.info('account removed', { account: name });
        }
      }
      for (const config of Object.values(next)) {
        const a = table.get(config.name);
        if (!a) {
          const fresh = makeAccount(config);
          table.set(config.name, fresh);
          log.info('account added', { account: config.name });
          if (started) {
            restore(fresh);
            void ensureLogin(fresh, 'config');
          }
          continue;
        }
        const fingerprint = accountFingerprint(config);
        a.config = config;
        if (fingerprint !== a.fingerprint) {
          log.info('account config changed; dropping its token and logging in again', { account: config.name });
          a.fingerprint = fingerprint;
          a.authority = deps.authority(config);
          a.tracker = createIdentityTracker(config, { provider: identityProvider, store, log, clock });
          a.token = undefined;
          a.refresh = undefined;
          a.failures = 0;
          a.nextAttemptMono = 0;
          a.lastError = undefined;
          if (started) void ensureLogin(a, 'config');
        }
      }
    },
    stop() {
      stopping ??= (async () => {
        for (const a of table.values()) a.timer?.cancel();
        abort.abort(new Error('agent stopping'));
        const inflight = [...table.values()].map((a) => a.inflight).filter(Boolean);
        if (inflight.length) {
          let timer: Timer | undefined;
          await Promise.race([
            Promise.allSettled(inflight),
            new Promise<void>((r) => (timer = clock.setTimer(r, STOP_WAIT_MS))),
          ]);
          timer?.cancel();
        }
      })();
      return stopping;
    },
  };
}

/** The shorter of the lifetime the authority stated and, for a JWT, exp - iat (both clock-free). */
function statedLifetimeMs(t: StoredToken): number {
  const claims = decodeJwtClaims(t.accessToken);
  const lifetime = t.lifetimeS * 1000;
  if (typeof claims?.exp !== 'number' || typeof claims.iat !== 'number') return lifetime;
  return Math.min(lifetime, (claims.exp - claims.iat) * 1000);
}

function failureJournal(f: LoginFailure): Pick<LoginRecord, 'error' | 'httpStatus' | 'message'> {
  return {
    ...(f.error !== undefined ? { error: f.error } : {}),
    ...(f.httpStatus !== undefined ? { httpStatus: f.httpStatus } : {}),
    message: f.message,
  };
}

function safe<T>(fn: () => T, fallback: T, onError?: (err: unknown) => void): T {
  try {
    return fn();
  } catch (err) {
    onError?.(err);
    return fallback;
  }
}
