/**
 * The login pipeline: one attempt to get a token for one account, as a row of small steps (credentials,
 * device identity, the shared login limit, refresh or login, the journal, storing the token), each ending
 * the attempt with an outcome or handing on. It decides nothing about when to try again and holds no
 * account state: the manager applies the outcome (account.ts) and plans the next attempt (scheduler.ts).
 */
import type { Authority, Credentials, IssuedToken, LoginFailure, LoginInterop, LoginResult } from '../authorities/index.js';
import type { AccountConfig, DeviceIdentity } from '../config/index.js';
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/log.js';
import type { Counter, Histogram } from '../lib/metrics.js';
import type { Timeline } from '../lib/timeline.js';
import type { LoginRecord, StoredCredentials } from '../store/index.js';
import type { AccountState, HeldRefresh, HeldToken } from './account.js';
import type { IdentityTracker } from './identity-tracker.js';
import type { LoginLimiter } from './login-limiter.js';
import { refreshDelayMs, type RetryableReason } from './policy.js';
import type { TokenStore } from './token-store.js';

/** What an attempt came to; the manager turns it into the next account state. */
export type LoginOutcome =
  | { kind: 'token'; token: HeldToken; refresh?: HeldRefresh; atWall: number; via: 'login' | 'refresh'; durationMs: number; expiresInS: number }
  | {
      kind: 'failed';
      reason: RetryableReason;
      message: string;
      failure?: LoginFailure;
      /** The authority answered (the attempt counts as a login for status). */
      answered: boolean;
      atWall: number;
      /** The credentials version the attempt used. */
      version?: number;
      /** A refresh token was refused on the way (log in next time). */
      refreshRefused?: boolean;
      /** The shared limit key, when the authority has one (a 429 blocks it for everyone). */
      limitKey?: string;
    }
  | { kind: 'not_provisioned'; message: string; version?: number }
  | { kind: 'deferred'; message: string; until: number }
  /** The account was removed or the agent is stopping: nothing to apply. */
  | { kind: 'abandoned' };

/** The account as the pipeline sees it. */
export interface LoginSubject {
  readonly config: AccountConfig;
  readonly fingerprint: string;
  readonly authority: Authority;
  readonly tracker: IdentityTracker;
  readonly state: AccountState;
  /** Removed from the config: nothing of the attempt is kept. */
  readonly removed: boolean;
  /** Removed, or the agent is stopping: no request is started. */
  readonly cancelled: boolean;
}

export interface LoginPipelineDeps {
  store: TokenStore;
  clock: Clock;
  timeline: Timeline;
  limiter: LoginLimiter;
  log: Logger;
  random: () => number;
  signal: AbortSignal;
  metrics?: { logins?: Counter; seconds?: Histogram };
}

/** A refresh token this close to its expiry is not used; a login is cheaper than a failed refresh. */
const REFRESH_MARGIN_MS = 60_000;
/** Spread accounts that wait for a shared login limit over this much time past the free slot. */
const LIMIT_SPREAD_MS = 2_000;

export type LoginPipeline = (a: LoginSubject, trigger: string) => Promise<LoginOutcome>;

export function createLoginPipeline(deps: LoginPipelineDeps): LoginPipeline {
  return (a, trigger) => attempt(deps, a, trigger);
}

/** One attempt: each step either ends it with an outcome or hands on to the next. */
async function attempt(deps: LoginPipelineDeps, a: LoginSubject, trigger: string): Promise<LoginOutcome> {
  const { clock, timeline } = deps;
  const creds = readCredentials(deps.store, a.config);
  if (!creds.ok) return creds.outcome;
  const id = await a.tracker.resolve();
  if (!id.ok) {
    const message = `device identity unavailable: ${id.message}`;
    return { kind: 'failed', reason: 'identity_unavailable', message, answered: false, atWall: clock.now() };
  }
  if (a.cancelled) return { kind: 'abandoned' };
  const limit = a.authority.loginLimit?.(a.config, creds.stored.credentials as Credentials);
  if (limit) {
    const decision = deps.limiter.take(limit.key, limit.perMinute, timeline.now());
    if (!decision.ok) {
      const message = `waiting for the authority's login limit (${limit.perMinute} per minute for this client ID)`;
      return { kind: 'deferred', message, until: decision.retryAt + deps.random() * LIMIT_SPREAD_MS };
    }
  }
  const startedAt = timeline.now();
  const startedWall = clock.now();
  const { result, via, refreshRefused } = await exchange(deps, a, creds.stored, id.identity, trigger);
  const receivedAt = timeline.now();
  const receivedWall = clock.now();
  const durationMs = receivedAt - startedAt;
  deps.metrics?.seconds?.observe(durationMs / 1000, { authority: a.config.authority });
  deps.metrics?.logins?.inc({ authority: a.config.authority, kind: via, outcome: result.ok ? 'ok' : result.failure.reason });
  journal(deps, a, startedWall, durationMs, result);
  // A token that arrives while the agent stops is still kept (the next start restores it).
  if (a.removed) return { kind: 'abandoned' };
  if (!result.ok) {
    const f = result.failure;
    return {
      kind: 'failed',
      reason: f.reason,
      message: f.message,
      failure: f,
      answered: true,
      atWall: receivedWall,
      version: creds.stored.version,
      ...(refreshRefused ? { refreshRefused } : {}),
      ...(limit ? { limitKey: limit.key } : {}),
    };
  }
  remember(deps, a, creds.stored, result.interop);
  const kept = keep(deps, a, creds.stored, result.token, receivedAt, receivedWall);
  return { kind: 'token', ...kept, atWall: receivedWall, via, durationMs, expiresInS: result.token.expiresInS };
}

/** Refresh when a refresh token is held and not about to expire; else, or when it is refused, log in. */
async function exchange(
  deps: LoginPipelineDeps,
  a: LoginSubject,
  creds: StoredCredentials,
  identity: DeviceIdentity,
  trigger: string,
): Promise<{ result: LoginResult; via: 'login' | 'refresh'; refreshRefused: boolean }> {
  const { log } = deps;
  const name = a.config.name;
  const request = {
    account: a.config,
    credentials: creds.credentials as Credentials,
    identity,
    signal: deps.signal,
    // What earlier logins learned (the Basic encoding the server takes) is tried first.
    ...(creds.interop ? { interop: creds.interop } : {}),
  };
  const held = a.state.refresh;
  let refreshRefused = false;
  if (a.authority.refresh && held && deps.clock.now() < held.expiresAtWall - REFRESH_MARGIN_MS) {
    log.info('refresh', { account: name, authority: a.config.authority, trigger });
    const result = await a.authority.refresh({ ...request, refreshToken: held.refreshToken, accessToken: held.accessToken });
    if (result.ok || result.failure.reason !== 'credentials_rejected') return { result, via: 'refresh', refreshRefused };
    log.info('refresh refused; logging in again', { account: name, message: result.failure.message });
    deps.metrics?.logins?.inc({ authority: a.config.authority, kind: 'refresh', outcome: result.failure.reason });
    refreshRefused = true;
  }
  log.info('login', { account: name, authority: a.config.authority, trigger });
  return { result: await a.authority.login(request), via: 'login', refreshRefused };
}

/** The login journal (store): what was tried and what came of it, never a secret. */
function journal(deps: LoginPipelineDeps, a: LoginSubject, startedWall: number, durationMs: number, result: LoginResult): void {
  const record: LoginRecord = {
    account: a.config.name,
    authority: a.config.authority,
    startedAt: startedWall,
    durationMs,
    outcome: result.ok ? 'ok' : result.failure.reason,
    ...(result.ok ? {} : failureJournal(result.failure)),
  };
  safe(() => deps.store.recordLogin(record), undefined, (err) =>
    deps.log.error('cannot write the login journal', { account: a.config.name, error: String(err) }),
  );
}

/** Keeps what the server was found to accept (the Basic encoding) with these credentials, when it is news. */
function remember(deps: LoginPipelineDeps, a: LoginSubject, creds: StoredCredentials, learned: LoginInterop | undefined): void {
  const interop = { ...creds.interop, ...learned };
  if (JSON.stringify(interop) === JSON.stringify(creds.interop ?? {})) return;
  const name = a.config.name;
  deps.log.info('remembering what the token service accepted', { account: name, ...interop });
  safe(() => deps.store.putInterop(name, creds.version, interop), false, (err) =>
    deps.log.error('cannot store what the token service accepted', { account: name, error: String(err) }),
  );
}

/** The issued token on the time line, stored (sealed) with the wall clock and this boot's uptime. */
function keep(
  deps: LoginPipelineDeps,
  a: LoginSubject,
  creds: StoredCredentials,
  issued: IssuedToken,
  receivedAt: number,
  receivedWall: number,
): { token: HeldToken; refresh?: HeldRefresh } {
  const lifetimeMs = issued.expiresInS * 1000;
  const token: HeldToken = {
    accessToken: issued.accessToken,
    tokenType: issued.tokenType,
    ...(issued.scope !== undefined ? { scope: issued.scope } : {}),
    lifetimeMs,
    expiresAt: receivedAt + lifetimeMs,
    refreshAt: receivedAt + refreshDelayMs(lifetimeMs, deps.random),
  };
  const refresh: HeldRefresh | undefined =
    issued.refreshToken !== undefined
      ? { refreshToken: issued.refreshToken, accessToken: token.accessToken, expiresAtWall: receivedWall + (issued.refreshExpiresInS ?? 0) * 1000 }
      : undefined;
  const boot = deps.timeline.boot();
  safe(
    () =>
      deps.store.putToken(a.config.name, {
        accessToken: token.accessToken,
        tokenType: token.tokenType,
        ...(token.scope !== undefined ? { scope: token.scope } : {}),
        ...(refresh ? { refreshToken: refresh.refreshToken, refreshExpiresAt: refresh.expiresAtWall } : {}),
        obtainedAt: receivedWall,
        ...(boot ? { bootId: boot.id, bootUptimeMs: boot.uptimeMs } : {}),
        expiresAt: receivedWall + lifetimeMs,
        lifetimeS: issued.expiresInS,
        credentialsVersion: creds.version,
        configFingerprint: a.fingerprint,
      }),
    undefined,
    (err) => deps.log.error('cannot store the token; serving it from memory', { account: a.config.name, error: String(err) }),
  );
  return { token, ...(refresh ? { refresh } : {}) };
}

type CredentialsRead = { ok: true; stored: StoredCredentials } | { ok: false; outcome: LoginOutcome };

/** The account's stored credentials, if they are there, readable and for the configured authority. */
function readCredentials(store: TokenStore, config: AccountConfig): CredentialsRead {
  const name = config.name;
  let stored: StoredCredentials | undefined;
  try {
    stored = store.getCredentials(name);
  } catch (err) {
    return { ok: false, outcome: { kind: 'not_provisioned', message: `stored credentials cannot be read: ${(err as Error).message}` } };
  }
  if (!stored) {
    const message = `account ${name} has no credentials; run: pos-token-agent provision --account ${name}`;
    return { ok: false, outcome: { kind: 'not_provisioned', message } };
  }
  if (stored.authority !== config.authority) {
    const message = `credentials of ${name} were provisioned for ${stored.authority}, but the config says ${config.authority}; provision again`;
    return { ok: false, outcome: { kind: 'not_provisioned', message, version: stored.version } };
  }
  return { ok: true, stored };
}

function failureJournal(f: LoginFailure): Pick<LoginRecord, 'error' | 'httpStatus' | 'message'> {
  return {
    ...(f.error !== undefined ? { error: f.error } : {}),
    ...(f.httpStatus !== undefined ? { httpStatus: f.httpStatus } : {}),
    message: f.message,
  };
}

export function safe<T>(fn: () => T, fallback: T, onError?: (err: unknown) => void): T {
  try {
    return fn();
  } catch (err) {
    onError?.(err);
    return fallback;
  }
}
