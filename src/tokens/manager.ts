/**
 * The token manager: per account, a cached token served from memory, renewed ahead of expiry, one login in
 * flight at a time shared by every waiter, and polite backoff when logins fail. It composes the parts:
 * - account.ts: the account's state and its transitions (pure);
 * - login.ts: the login pipeline (one attempt, ending in an outcome);
 * - scheduler.ts: when the next attempt is due, the timers, the credentials watch;
 * - restore.ts: taking stored tokens back at start;
 * - policy.ts: refresh points and backoff delays.
 *
 * Time: deadlines are on the token time line (lib/timeline.ts), which counts suspend, and are stored as wall
 * clock with the boot's uptime. Nothing here reads Date.now() or sets a real timer: the Clock does.
 */
import type { Authority, LoginFailure } from '../authorities/index.js';
import { accountFingerprint, type AccountConfig } from '../config/index.js';
import { systemClock, type Clock, type Timer } from '../lib/clock.js';
import type { Logger } from '../lib/log.js';
import type { Counter, CounterSeries, MetricsRegistry } from '../lib/metrics.js';
import { createTimeline, type Timeline } from '../lib/timeline.js';
import type { TokenState, UnavailableReason } from '../api/index.js';
import * as transition from './account.js';
import type { AccountState, HeldToken } from './account.js';
import {
  configIdentityProvider,
  createIdentityTracker,
  type IdentityProvider,
  type IdentityStatus,
  type IdentityTracker,
} from './identity-tracker.js';
import { createLoginLimiter, type LoginLimiter } from './login-limiter.js';
import { createLoginPipeline, safe, type LoginOutcome, type LoginPipeline, type LoginSubject } from './login.js';
import { retryDelayMs } from './policy.js';
import { decideRestore } from './restore.js';
import { createScheduler, NOT_PROVISIONED_RECHECK_MS, wakeAt, type Scheduler } from './scheduler.js';
import type { TokenStore } from './token-store.js';

export type { TokenState, UnavailableReason, TokenStore };

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

/** An account as the manager sees it; server/ maps it to the socket API's shape. Times are wall-clock ms. */
export interface AccountStatus {
  authority: string;
  state: TokenState;
  expiresAtWall: number | null;
  /** The last login that got an answer, whatever it was (or when a restored token was obtained). */
  lastLoginAtWall: number | null;
  /** The last login that got a token (or when a restored token was obtained). */
  lastSuccessAtWall: number | null;
  lastError: { reason: UnavailableReason; message: string; atWall: number } | null;
  identity: IdentityStatus;
  nextAttemptInS: number | null;
}

export interface TokenManagerDeps {
  store: TokenStore;
  authority: (account: AccountConfig) => Authority;
  log: Logger;
  clock?: Clock;
  /** The time line deadlines are kept on; default: one that counts suspend, read from `clock`. */
  timeline?: Timeline;
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

/** An account at run time: its config, its parts, and its current state (replaced by each transition). */
interface Account {
  config: AccountConfig;
  fingerprint: string;
  authority: Authority;
  tracker: IdentityTracker;
  state: AccountState;
  inflight?: Promise<void>;
  removed: boolean;
  /**
   * The last answer served: the same token with the same whole seconds left and the same whole-second expiry on
   * the wall clock is answered with the same (frozen) object, so the hot path builds nothing per request.
   */
  served?: { held: HeldToken; wallS: number; answer: Served };
}

type Served = { readonly ok: true; readonly token: ServedToken };

const STOP_WAIT_MS = 5_000;
const LOGIN_SECONDS_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export function createTokenManager(deps: TokenManagerDeps, accounts: Record<string, AccountConfig>): TokenManager {
  return new Manager(deps, accounts);
}

/** The composition; each method is one step of the public face or one reaction to a part. */
class Manager implements TokenManager {
  readonly #deps: TokenManagerDeps;
  readonly #clock: Clock;
  readonly #timeline: Timeline;
  readonly #random: () => number;
  readonly #log: Logger;
  readonly #store: TokenStore;
  readonly #identity: IdentityProvider;
  readonly #limiter: LoginLimiter;
  readonly #pipeline: LoginPipeline;
  readonly #scheduler: Scheduler;
  readonly #abort = new AbortController();
  readonly #table = new Map<string, Account>();
  readonly #requests: Counter | undefined;
  /** `#requests` for result="ok", resolved once: peek counts it on every request. */
  readonly #servedOk: CounterSeries | undefined;
  #started = false;
  #stopping: Promise<void> | undefined;

  constructor(deps: TokenManagerDeps, accounts: Record<string, AccountConfig>) {
    this.#deps = deps;
    this.#clock = deps.clock ?? systemClock;
    this.#timeline = deps.timeline ?? createTimeline(this.#clock);
    this.#random = deps.random ?? Math.random;
    this.#log = deps.log;
    this.#store = deps.store;
    this.#identity = deps.identity ?? configIdentityProvider;
    this.#limiter = deps.limiter ?? createLoginLimiter();
    const m = deps.metrics;
    this.#requests = m?.counter('pos_token_agent_token_requests_total', 'Token requests by result.');
    this.#servedOk = this.#requests?.series({ result: 'ok' });
    m?.gauge('pos_token_agent_token_seconds_left', 'Seconds left on the current token of each account.', () => this.#secondsLeft());
    this.#pipeline = createLoginPipeline({
      store: this.#store,
      clock: this.#clock,
      timeline: this.#timeline,
      limiter: this.#limiter,
      log: this.#log,
      random: this.#random,
      signal: this.#abort.signal,
      metrics: {
        logins: m?.counter('pos_token_agent_logins_total', 'Logins by authority and outcome.'),
        seconds: m?.histogram('pos_token_agent_login_duration_seconds', 'Login latency.', LOGIN_SECONDS_BUCKETS),
      },
    });
    this.#scheduler = createScheduler({
      clock: this.#clock,
      timeline: this.#timeline,
      credentials: { needed: () => this.#waitingForCredentials(), poll: () => this.#pollCredentials() },
    });
    for (const config of Object.values(accounts)) this.#table.set(config.name, this.#makeAccount(config));
  }

  // ---- public face ----------------------------------------------------------------------------

  start(): void {
    if (this.#started) return;
    this.#started = true;
    this.#timeline.onJump((ms) => this.#replanAll(ms));
    this.#timeline.start();
    for (const a of this.#table.values()) {
      this.#restore(a);
      const t = a.state.token;
      if (!t || a.state.unconfirmed || this.#timeline.now() >= t.refreshAt) {
        void this.#background(a, a.state.unconfirmed ? 'reboot' : 'start');
      } else this.#plan(a);
    }
  }

  getToken(name: string, minTtlS: number): Promise<TokenAnswer> {
    return this.#count(this.#answer(name, minTtlS));
  }

  refresh(name: string, rejected: string, minTtlS: number): Promise<TokenAnswer> {
    return this.#count(this.#answer(name, minTtlS, rejected));
  }

  peek(name: string, minTtlS: number): TokenAnswer | undefined {
    const a = this.#table.get(name);
    if (!a) return undefined;
    const now = this.#timeline.now();
    const t = transition.usableToken(a.state, now, minTtlS * 1000);
    // A stale token goes through getToken, which also starts its renewal.
    if (!t || now >= t.refreshAt) return undefined;
    this.#servedOk?.inc();
    return this.#serve(a, t, now);
  }

  status(): Record<string, AccountStatus> {
    const out: Record<string, AccountStatus> = {};
    const now = this.#timeline.now();
    for (const [name, a] of this.#table) out[name] = this.#statusOf(a, now);
    return out;
  }

  unhealthy(): string[] {
    const now = this.#timeline.now();
    return [...this.#table.values()].filter((a) => !transition.usableToken(a.state, now, 0)).map((a) => a.config.name);
  }

  reconfigure(next: Record<string, AccountConfig>): void {
    for (const a of [...this.#table.values()]) if (!next[a.config.name]) this.#remove(a);
    for (const config of Object.values(next)) {
      const a = this.#table.get(config.name);
      if (a) this.#update(a, config);
      else this.#add(config);
    }
  }

  stop(): Promise<void> {
    this.#stopping ??= this.#drain();
    return this.#stopping;
  }

  // ---- serving --------------------------------------------------------------------------------

  async #answer(name: string, minTtlS: number, forced?: string): Promise<TokenAnswer> {
    const a = this.#table.get(name);
    if (!a) {
      return { ok: false, error: { kind: 'unknown_account', message: `no account named ${name}`, known: [...this.#table.keys()] } };
    }
    const limited = forced !== undefined ? this.#dropRejected(a, forced) : undefined;
    if (limited) return { ok: false, error: limited };
    const minTtlMs = minTtlS * 1000;
    for (let round = 0; round < 3; round++) {
      const now = this.#timeline.now();
      const t = transition.usableToken(a.state, now, minTtlMs);
      if (t) {
        if (now >= t.refreshAt && !a.inflight) void this.#ensureLogin(a, 'stale');
        return this.#serve(a, t, now);
      }
      const short = tooShort(a.state, minTtlS);
      if (short) return { ok: false, error: short };
      if (round === 2) break;
      const before = a.inflight;
      await this.#ensureLogin(a, 'demand');
      // Nothing started (backoff in force) and nothing was in flight: answer now.
      const after = this.#timeline.now();
      if (!before && !a.inflight && a.state.lastError && after < a.state.nextAttemptAt) {
        if (!transition.usableToken(a.state, after, minTtlMs)) break;
      }
    }
    return { ok: false, error: this.#unavailable(a) };
  }

  async #count(p: Promise<TokenAnswer>): Promise<TokenAnswer> {
    const r = await p;
    this.#requests?.inc({ result: r.ok ? 'ok' : r.error.kind === 'unavailable' ? r.error.reason : r.error.kind });
    return r;
  }

  /** The answer for `t` at `now`: the last one again while nothing in it has changed (see Account.served). */
  #serve(a: Account, t: HeldToken, now: number): Served {
    const wallS = Math.floor(this.#wallAt(t.expiresAt, now) / 1000);
    const expiresIn = Math.floor((t.expiresAt - now) / 1000);
    const last = a.served;
    if (last?.held === t && last.wallS === wallS && last.answer.token.expiresIn === expiresIn) return last.answer;
    const token: ServedToken = Object.freeze({
      accessToken: t.accessToken,
      tokenType: t.tokenType,
      expiresIn,
      expiresAt: last?.wallS === wallS ? last.answer.token.expiresAt : new Date(wallS * 1000).toISOString(),
      account: a.config.name,
      scope: t.scope ?? null,
    });
    const answer: Served = Object.freeze({ ok: true, token });
    a.served = { held: t, wallS, answer };
    return answer;
  }

  #unavailable(a: Account): TokenError {
    const e = a.state.lastError;
    const retryAfterS = transition.retryAfterS(a.state, this.#timeline.now());
    if (!e) return { kind: 'unavailable', reason: 'upstream_unavailable', message: 'no token yet; a login is due', retryAfterS };
    return { kind: 'unavailable', reason: e.reason, message: e.message, retryAfterS };
  }

  /** A till says the authority refused `rejected`: drop it (at most once per forcedRefreshMinIntervalMs). */
  #dropRejected(a: Account, rejected: string): TokenError | undefined {
    if (a.state.token?.accessToken !== rejected) return undefined;
    const now = this.#timeline.now();
    const interval = a.config.forcedRefreshMinIntervalMs;
    const wait = (a.state.lastForcedAt ?? -Infinity) + interval - now;
    if (wait > 0) {
      const message = `forced refreshes of ${a.config.name} are limited to one per ${interval / 1000} s`;
      return { kind: 'refresh_limited', message, retryAfterS: Math.max(1, Math.ceil(wait / 1000)) };
    }
    this.#log.info('dropping a token the authority refused', { account: a.config.name });
    a.state = transition.tokenDropped(a.state, now);
    safe(() => this.#store.deleteToken(a.config.name, rejected), false, (err) =>
      this.#log.error('cannot delete the dropped token', { account: a.config.name, error: String(err) }),
    );
    return undefined;
  }

  #statusOf(a: Account, now: number): AccountStatus {
    const s = a.state;
    const e = s.lastError;
    return {
      authority: a.config.authority,
      state: transition.tokenState(s, now),
      expiresAtWall: s.token ? this.#wallAt(s.token.expiresAt) : null,
      lastLoginAtWall: s.lastLoginAtWall ?? null,
      lastSuccessAtWall: s.lastSuccessAtWall ?? null,
      lastError: e ? { reason: e.reason, message: e.message, atWall: e.atWall } : null,
      identity: a.tracker.status(),
      nextAttemptInS: s.nextAttemptAt > now ? Math.ceil((s.nextAttemptAt - now) / 1000) : null,
    };
  }

  #secondsLeft(): Array<{ labels: { account: string }; value: number }> {
    const now = this.#timeline.now();
    return [...this.#table.values()].map((a) => ({
      labels: { account: a.config.name },
      value: a.state.token ? Math.max(0, Math.floor((a.state.token.expiresAt - now) / 1000)) : 0,
    }));
  }

  /** The wall-clock time of `at` on the time line; `now`: the time line's now, when the caller has just read it. */
  #wallAt(at: number, now = this.#timeline.now()): number {
    return this.#clock.now() + (at - now);
  }

  // ---- logins ---------------------------------------------------------------------------------

  /** Starts a login unless one is in flight or backoff forbids it; resolves when it is over. */
  #ensureLogin(a: Account, trigger: string): Promise<void> {
    if (a.inflight) return a.inflight;
    if (this.#stopping || a.removed) return Promise.resolve();
    if (this.#timeline.now() < a.state.nextAttemptAt && !this.#liftRejectedBackoff(a)) {
      // The retry is already planned (every failure plans one); requests in backoff leave it alone.
      if (!this.#scheduler.has(a.config.name)) this.#plan(a);
      return Promise.resolve();
    }
    a.inflight = this.#pipeline(this.#subject(a), trigger)
      .then((outcome) => this.#apply(a, outcome))
      .catch((err: unknown) => {
        this.#log.error('login crashed', { account: a.config.name, error: String(err) });
        const message = 'internal error during login; see the agent log';
        this.#apply(a, { kind: 'failed', reason: 'upstream_unavailable', message, answered: false, atWall: this.#clock.now() });
      })
      .finally(() => {
        a.inflight = undefined;
        this.#plan(a);
      });
    return a.inflight;
  }

  #background(a: Account, trigger: string): Promise<void> {
    return this.#ensureLogin(a, trigger).catch((err: unknown) =>
      this.#log.error('scheduled login failed unexpectedly', { account: a.config.name, error: String(err) }),
    );
  }

  /** The account as the pipeline reads it: live, so a change during the attempt is seen. */
  #subject(a: Account): LoginSubject {
    const manager = this;
    return {
      get config() {
        return a.config;
      },
      get fingerprint() {
        return a.fingerprint;
      },
      authority: a.authority,
      tracker: a.tracker,
      get state() {
        return a.state;
      },
      get removed() {
        return a.removed;
      },
      get cancelled() {
        return a.removed || manager.#stopping !== undefined;
      },
    };
  }

  /** An account that waits for credentials (refused, or none): a new version lifts the wait. */
  #liftRejectedBackoff(a: Account): boolean {
    if (!transition.waitsForCredentials(a.state)) return false;
    const version = safe(() => this.#store.credentialsVersion(a.config.name), undefined);
    if (version === undefined || version === a.state.rejectedVersion) return false;
    this.#log.info('credentials changed; logging in again', { account: a.config.name });
    a.state = transition.credentialsChanged(a.state);
    return true;
  }

  /** The next state after an attempt, and what to log about it. */
  #apply(a: Account, outcome: LoginOutcome): void {
    if (a.removed) return;
    const now = this.#timeline.now();
    const atWall = this.#clock.now();
    switch (outcome.kind) {
      case 'abandoned':
        return;
      case 'token':
        a.state = transition.loggedIn(a.state, outcome);
        this.#log.info(outcome.via === 'refresh' ? 'refresh succeeded' : 'login succeeded', {
          account: a.config.name,
          expires_in_s: outcome.expiresInS,
          refresh_in_s: Math.round((outcome.token.refreshAt - now) / 1000),
          duration_ms: Math.round(outcome.durationMs),
        });
        return;
      case 'deferred':
        if (a.state.lastError?.message !== outcome.message) this.#log.info('login deferred by the shared login limit', { account: a.config.name });
        a.state = transition.deferred(a.state, { message: outcome.message, atWall, until: outcome.until });
        return;
      case 'not_provisioned': {
        const last = a.state.lastError;
        const repeat = last?.reason === 'not_provisioned' && last.message === outcome.message;
        a.state = transition.notProvisioned(a.state, { ...outcome, atWall, recheckAt: now + NOT_PROVISIONED_RECHECK_MS });
        this.#logFailure(a, 'not_provisioned', outcome.message, undefined, repeat ? 'debug' : 'error', null);
        return;
      }
      case 'failed':
        return this.#applyFailure(a, outcome, now);
    }
  }

  #applyFailure(a: Account, outcome: Extract<LoginOutcome, { kind: 'failed' }>, now: number): void {
    const delay = retryDelayMs({
      // A refusal's wait grows with refusals in a row only; an outage's with failures in a row.
      attempt: outcome.reason === 'credentials_rejected' ? transition.rejectionsInARow(a.state) + 1 : a.state.failures + 1,
      reason: outcome.reason,
      ...(outcome.failure?.retryAfterMs !== undefined ? { retryAfterMs: outcome.failure.retryAfterMs } : {}),
      policy: a.config.backoff,
      random: this.#random,
    });
    if (outcome.refreshRefused) a.state = transition.refreshRefused(a.state);
    a.state = transition.failed(a.state, { ...outcome, retryAt: now + delay });
    if (outcome.limitKey && outcome.reason === 'rate_limited') this.#limiter.block(outcome.limitKey, a.state.nextAttemptAt);
    const level = outcome.reason === 'credentials_rejected' ? 'error' : 'warn';
    this.#logFailure(a, outcome.reason, outcome.message, outcome.failure, level, Math.round(delay / 1000));
  }

  #logFailure(
    a: Account,
    reason: UnavailableReason,
    message: string,
    f: LoginFailure | undefined,
    level: 'debug' | 'warn' | 'error',
    retryInS: number | null,
  ): void {
    const now = this.#timeline.now();
    this.#log[level]('login failed', {
      account: a.config.name,
      reason,
      message,
      ...(f?.httpStatus !== undefined ? { http_status: f.httpStatus } : {}),
      attempt: a.state.failures,
      retry_in_s: retryInS,
      holding_valid_token: Boolean(a.state.token && now < a.state.token.expiresAt),
    });
  }

  // ---- scheduling -----------------------------------------------------------------------------

  #plan(a: Account): void {
    if (a.removed || this.#stopping) return this.#scheduler.cancel(a.config.name);
    this.#scheduler.at(a.config.name, wakeAt(a.state, this.#timeline.now()), () => void this.#background(a, 'scheduled'));
    if (transition.waitsForCredentials(a.state)) this.#scheduler.watch();
  }

  /** The time line jumped (the box slept): every appointment is made again, and expiry is read anew. */
  #replanAll(suspendedMs: number): void {
    this.#log.info('the box was suspended; planning every account again', { suspended_s: Math.round(suspendedMs / 1000) });
    for (const a of this.#table.values()) if (!a.inflight) this.#plan(a);
  }

  #waitingForCredentials(): boolean {
    for (const a of this.#table.values()) if (transition.waitsForCredentials(a.state)) return true;
    return false;
  }

  /** The credentials watch's round: an account whose credentials changed logs in now. */
  #pollCredentials(): void {
    for (const a of this.#table.values()) {
      if (!a.inflight && this.#liftRejectedBackoff(a)) void this.#background(a, 'credentials');
    }
  }

  // ---- restore and configuration --------------------------------------------------------------

  #restore(a: Account): void {
    const name = a.config.name;
    const stored = safe(() => this.#store.getToken(name), undefined, (err) =>
      this.#log.error('stored token cannot be read; logging in anew', { account: name, error: String(err) }),
    );
    if (!stored) return;
    const now = this.#timeline.now();
    const ctx = { fingerprint: a.fingerprint, wall: this.#clock.now(), now, boot: this.#timeline.boot(), random: this.#random };
    const decision = decideRestore(stored, ctx);
    if (!decision.ok) {
      if (decision.refresh) {
        a.state = transition.restored(a.state, { refresh: decision.refresh, obtainedAtWall: stored.obtainedAt, acrossReboot: false });
      }
      this.#log.info('not restoring the stored token', { account: name, why: decision.why });
      return;
    }
    a.state = transition.restored(a.state, { ...decision, obtainedAtWall: stored.obtainedAt });
    this.#log.info('restored the stored token', {
      account: name,
      expires_in_s: Math.floor(decision.leftMs / 1000),
      measured_by: decision.acrossReboot ? 'wall clock (another boot); logging in to confirm it' : 'uptime (same boot)',
    });
  }

  #makeAccount(config: AccountConfig): Account {
    return {
      config,
      fingerprint: accountFingerprint(config),
      authority: this.#deps.authority(config),
      tracker: this.#tracker(config),
      state: transition.INITIAL_STATE,
      removed: false,
    };
  }

  #tracker(config: AccountConfig): IdentityTracker {
    return createIdentityTracker(config, { provider: this.#identity, store: this.#store, log: this.#log, clock: this.#clock });
  }

  #remove(a: Account): void {
    a.removed = true;
    this.#scheduler.cancel(a.config.name);
    this.#table.delete(a.config.name);
    this.#log.info('account removed', { account: a.config.name });
  }

  #update(a: Account, config: AccountConfig): void {
    const fingerprint = accountFingerprint(config);
    a.config = config;
    if (fingerprint === a.fingerprint) return;
    this.#log.info('account config changed; dropping its token and logging in again', { account: config.name });
    a.fingerprint = fingerprint;
    a.authority = this.#deps.authority(config);
    a.tracker = this.#tracker(config);
    a.state = transition.configChanged(a.state);
    if (this.#started) void this.#background(a, 'config');
  }

  #add(config: AccountConfig): void {
    const fresh = this.#makeAccount(config);
    this.#table.set(config.name, fresh);
    this.#log.info('account added', { account: config.name });
    if (!this.#started) return;
    this.#restore(fresh);
    void this.#background(fresh, 'config');
  }

  async #drain(): Promise<void> {
    this.#scheduler.stop();
    this.#timeline.stop();
    this.#abort.abort(new Error('agent stopping'));
    const inflight = [...this.#table.values()].map((a) => a.inflight).filter(Boolean);
    if (!inflight.length) return;
    let timer: Timer | undefined;
    const bound = new Promise<void>((r) => (timer = this.#clock.setTimer(r, STOP_WAIT_MS)));
    await Promise.race([Promise.allSettled(inflight), bound]);
    timer?.cancel();
  }
}

/** min_ttl longer than the account's tokens live: no login can satisfy it. */
function tooShort(s: AccountState, minTtlS: number): TokenError | undefined {
  const t = s.token;
  if (!t || t.lifetimeMs >= minTtlS * 1000) return undefined;
  return {
    kind: 'min_ttl_unsatisfiable',
    message: `min_ttl ${minTtlS} s is longer than the lifetime of this account's tokens (${t.lifetimeMs / 1000} s)`,
    minTtlS,
    lifetimeS: Math.floor(t.lifetimeMs / 1000),
  };
}
