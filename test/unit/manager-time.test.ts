/**
 * The token manager and time that the monotonic clock does not see, on the fake clock with the real store:
 * a suspend longer or shorter than a token's life, a reboot (another boot id, only the wall clock left), and
 * new credentials stored while the agent runs. Nothing here sleeps.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { Authority, LoginRequest, LoginResult } from '../../src/authorities/index.js';
import { parseConfig } from '../../src/authorities/index.js';
import { FakeClock, flushMicrotasks } from '../../src/lib/clock.js';
import { createLogger, type Logger } from '../../src/lib/log.js';
import { CHECK_INTERVAL_MS } from '../../src/lib/timeline.js';
import { openStore, type Store } from '../../src/store/index.js';
import { CREDENTIALS_POLL_MS, NOT_PROVISIONED_RECHECK_MS } from '../../src/tokens/scheduler.js';
import { createTokenManager, type TokenAnswer, type TokenManager } from '../../src/tokens/index.js';

const HOUR_MS = 3_600_000;
/** random() = 0.5 puts the refresh point at exactly 2/3 of the lifetime (no jitter). */
const REFRESH_AT_MS = (2 / 3) * HOUR_MS;

const ACCOUNTS = parseConfig(
  { accounts: { default: { authority: 'eta-ereceipt', identityUrl: 'https://id.preprod.eta.gov.eg', identity: { posserial: 'SN-1' } } } },
  'test',
).accounts;

class Authority1 implements Authority {
  readonly name = 'eta-ereceipt';
  readonly credentialFields = [];
  calls: LoginRequest[] = [];
  /** Monotonic time of each login. */
  at: number[] = [];
  answers: Array<() => LoginResult> = [];
  hold = false;
  #pending: Array<() => void> = [];
  constructor(private readonly clock: FakeClock) {}
  async login(req: LoginRequest): Promise<LoginResult> {
    this.calls.push(req);
    this.at.push(this.clock.monotonic());
    if (this.hold) await new Promise<void>((r) => this.#pending.push(r));
    const next = this.answers.shift();
    if (next) return next();
    return { ok: true, token: { accessToken: `tok-${this.calls.length}`, tokenType: 'Bearer', expiresInS: HOUR_MS / 1000 } };
  }
  release(): void {
    for (const r of this.#pending.splice(0)) r();
  }
}

const refused = (reason: 'credentials_rejected' | 'upstream_unavailable'): LoginResult => ({
  ok: false,
  failure: { reason, code: 'X', message: `failed: ${reason}` },
});

describe('token manager: suspend, reboot and new credentials', () => {
  let dir: string;
  let store: Store;
  let clock: FakeClock;
  let authority: Authority1;
  let manager: TokenManager;
  let logged: Array<{ msg: string } & Record<string, unknown>>;
  let log: Logger;

  const make = (): TokenManager => createTokenManager({ store, authority: () => authority, log, clock, random: () => 0.5 }, ACCOUNTS);
  const token = (minTtl = 60): Promise<TokenAnswer> => manager.getToken('default', minTtl);
  const restart = async (): Promise<void> => {
    await manager.stop();
    authority = new Authority1(clock);
    manager = make();
    manager.start();
    await flushMicrotasks();
  };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'pta-time-'));
    store = openStore({ dir });
    store.putCredentials('default', 'eta-ereceipt', { clientId: 'c', clientSecret: 's', presharedKey: 'k' });
    clock = new FakeClock();
    logged = [];
    log = createLogger({ level: 'debug', write: (line) => logged.push(JSON.parse(line) as { msg: string }) });
    authority = new Authority1(clock);
    manager = make();
    manager.start();
  });

  afterEach(async () => {
    await manager.stop();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  describe('a suspend', () => {
    it('longer than the token life: the token is expired on waking, and the first request gets a new one', async () => {
      await flushMicrotasks();
      assert.equal(authority.calls.length, 1);
      clock.suspend(8 * HOUR_MS); // overnight
      assert.equal(manager.peek('default', 60), undefined, 'the fast path does not serve the old token');
      assert.deepEqual(manager.unhealthy(), ['default'], 'health knows it at once');
      const a = await token();
      assert.ok(a.ok && a.token.accessToken === 'tok-2', 'a new token, not the one from last night');
      assert.equal(a.ok && a.token.expiresIn, HOUR_MS / 1000);
    });

    it('longer than the token life, with no request: renewed within one periodic check of waking', async () => {
      await flushMicrotasks();
      clock.suspend(8 * HOUR_MS);
      await clock.advance(CHECK_INTERVAL_MS);
      assert.equal(authority.calls.length, 2, 'logged in again without any request');
      const a = manager.peek('default', 60);
      assert.ok(a?.ok && a.token.accessToken === 'tok-2');
      assert.ok(logged.some((l) => l.msg === 'the box was suspended; planning every account again' && l.suspended_s === 8 * 3600));
    });

    it('shorter than the token life: the token is served with the time really left, and renewed on time', async () => {
      await flushMicrotasks();
      await clock.advance(10 * 60_000);
      clock.suspend(20 * 60_000);
      const a = await token();
      assert.ok(a.ok && a.token.accessToken === 'tok-1', 'still valid: no login');
      assert.equal(a.ok && a.token.expiresIn, 30 * 60, '30 min left, not the 50 the monotonic clock would say');
      assert.equal(authority.calls.length, 1);
      // The refresh point (40 min after it was obtained) is 10 min after waking, not 30.
      const woke = clock.monotonic();
      for (let i = 0; i < 15 && authority.calls.length === 1; i++) await clock.advance(60_000);
      assert.equal(authority.calls.length, 2);
      assert.equal(authority.at[1]! - woke, REFRESH_AT_MS - 30 * 60_000);
    });

    it('past the refresh point but within the life: the token is served while the renewal runs', async () => {
      await flushMicrotasks();
      clock.suspend(50 * 60_000);
      authority.hold = true;
      const a = await token();
      assert.ok(a.ok && a.token.accessToken === 'tok-1' && a.token.expiresIn === 10 * 60);
      await flushMicrotasks();
      assert.equal(authority.calls.length, 2, 'the renewal started with the first request');
      authority.release();
      await flushMicrotasks();
      const b = await token();
      assert.ok(b.ok && b.token.accessToken === 'tok-2');
    });

    it('min_ttl counts the suspend: 59 min asked of a token with 30 min left waits for a login', async () => {
      await flushMicrotasks();
      clock.suspend(30 * 60_000);
      const a = await token(59 * 60);
      assert.ok(a.ok && a.token.accessToken === 'tok-2');
    });

    it('a backoff counts the suspend too: a retry due during the sleep runs on waking', async () => {
      await manager.stop();
      store.deleteToken('default');
      authority = new Authority1(clock);
      // The authority asks for 10 minutes (Retry-After); the box sleeps 20.
      authority.answers = [() => ({ ok: false, failure: { reason: 'upstream_unavailable', code: 'X', message: 'busy', retryAfterMs: 600_000 } })];
      manager = make();
      manager.start();
      await flushMicrotasks();
      assert.equal(authority.calls.length, 1);
      clock.suspend(20 * 60_000);
      await clock.advance(CHECK_INTERVAL_MS);
      assert.equal(authority.calls.length, 2, 'the retry due during the sleep ran within one check of waking');
      assert.ok((await token()).ok);
    });

    it('across a restart in the same boot: the stored token aged while the box slept', async () => {
      await flushMicrotasks();
      await manager.stop();
      clock.suspend(2 * HOUR_MS);
      await restart();
      assert.equal(authority.calls.length, 1, 'expired by uptime (suspend included): logged in');
      const a = await token();
      assert.ok(a.ok && a.token.accessToken === 'tok-1' && a.token.expiresIn === HOUR_MS / 1000);
    });
  });

  describe('the hot path (peek)', () => {
    it('answers the same frozen object while the token, its whole seconds left and its expiry are unchanged, and a new one once any changes', async () => {
      await flushMicrotasks();
      await clock.advance(100);
      const a = manager.peek('default', 60);
      assert.ok(a?.ok && a.token.accessToken === 'tok-1' && a.token.expiresIn === HOUR_MS / 1000 - 1);
      await clock.advance(400);
      assert.equal(manager.peek('default', 60), a, 'within the same second: the same answer, built once');
      assert.equal(await manager.getToken('default', 60), a, 'getToken answers it too');
      assert.ok(Object.isFrozen(a) && Object.isFrozen(a.token), 'shared between requests, so nobody may change it');
      await clock.advance(600);
      const b = manager.peek('default', 60);
      assert.ok(b?.ok && b !== a, 'a second less left: a new answer');
      assert.equal(b.token.expiresIn, a.token.expiresIn - 1);
      assert.equal(b.token.expiresAt, a.token.expiresAt);
      clock.jumpWall(60_000); // the wall clock set a minute forward: the token expires a minute later on it
      const c = manager.peek('default', 60);
      assert.ok(c?.ok && c !== b);
      assert.equal(c.token.expiresIn, b.token.expiresIn);
      assert.equal(Date.parse(c.token.expiresAt) - Date.parse(b.token.expiresAt), 60_000);
    });
  });

  describe('a reboot', () => {
    it('serves the restored token and logs in at once in the background', async () => {
      await flushMicrotasks();
      await clock.advance(10 * 60_000);
      await manager.stop();
      clock.reboot();
      authority = new Authority1(clock);
      authority.hold = true;
      manager = make();
      manager.start();
      await flushMicrotasks();
      assert.equal(authority.calls.length, 1, 'a login started at start, with a token still valid by the wall clock');
      const a = await token();
      assert.ok(a.ok && a.token.accessToken === 'tok-1', 'the restored token is served meanwhile');
      assert.equal(a.ok && a.token.expiresIn, 50 * 60);
      authority.release();
      await flushMicrotasks();
      const b = await token();
      assert.ok(b.ok && b.token.accessToken === 'tok-1' && b.token.expiresIn === HOUR_MS / 1000, 'the login replaced it');
      assert.ok(logged.some((l) => l.msg === 'login' && l.trigger === 'reboot'));
    });

    it('offline after a reboot: the restored token is served and logins back off as usual until one works', async () => {
      await flushMicrotasks();
      await manager.stop();
      clock.reboot();
      authority = new Authority1(clock);
      authority.answers = Array.from({ length: 4 }, () => () => refused('upstream_unavailable'));
      manager = make();
      manager.start();
      await flushMicrotasks();
      assert.equal(authority.calls.length, 1);
      const a = await token();
      assert.ok(a.ok && a.token.accessToken === 'tok-1', 'still served while offline');
      await clock.advance(16_000);
      // Retries at about 1, 2, 4 and 8 s after each failure (random 0.5: no jitter).
      assert.equal(authority.calls.length, 5, `backoff 1+2+4+8 s: ${authority.at.join(', ')}`);
      const b = await token();
      assert.ok(b.ok && b.token.accessToken === 'tok-5', 'the first login the network allowed');
      await clock.advance(30 * 60_000);
      assert.equal(authority.calls.length, 5, 'confirmed: no more logins until the refresh point');
    });

    it('a wall clock set wrong at boot cannot keep an expired token past the first login', async () => {
      // The box was off for two hours and boots with its RTC two hours slow: the token looks 0 min old.
      await flushMicrotasks();
      await manager.stop();
      clock.reboot();
      clock.jumpWall(-1); // the saved clock is a little behind when the token was obtained
      authority = new Authority1(clock);
      manager = make();
      manager.start();
      await flushMicrotasks();
      assert.equal(authority.calls.length, 1, 'a login at once');
      const a = await token();
      assert.ok(a.ok && a.token.accessToken === 'tok-1' && a.token.expiresIn === HOUR_MS / 1000, 'the new login, not the old token');
    });

    it('a restart within the same boot stays login-free', async () => {
      await flushMicrotasks();
      await clock.advance(5 * 60_000);
      await restart();
      assert.equal(authority.calls.length, 0);
      const a = await token();
      assert.ok(a.ok && a.token.accessToken === 'tok-1' && a.token.expiresIn === 55 * 60);
      await clock.advance(30 * 60_000);
      assert.equal(authority.calls.length, 0, 'not even later: the restored token is trusted until its refresh point');
    });
  });

  describe('new credentials while the agent runs', () => {
    it('refused credentials: new ones are noticed without any request and the refused backoff is lifted', async () => {
      await manager.stop();
      store.deleteToken('default');
      authority = new Authority1(clock);
      authority.answers = [() => refused('credentials_rejected')];
      manager = make();
      manager.start();
      await flushMicrotasks();
      assert.equal(authority.calls.length, 1);
      assert.deepEqual(manager.unhealthy(), ['default']);
      await clock.advance(30_000);
      assert.equal(authority.calls.length, 1, 'the refused backoff holds while the credentials stay the same');
      store.putCredentials('default', 'eta-ereceipt', { clientId: 'c', clientSecret: 'new', presharedKey: 'k' });
      await clock.advance(CREDENTIALS_POLL_MS);
      assert.equal(authority.calls.length, 2, 'logged in within one poll of the new credentials');
      assert.equal(authority.calls[1]!.credentials.clientSecret, 'new');
      assert.deepEqual(manager.unhealthy(), [], 'healthy without a till asking');
      assert.ok(logged.some((l) => l.msg === 'login' && l.trigger === 'credentials'));
    });

    it('not provisioned: credentials stored later are picked up within one poll', async () => {
      await manager.stop();
      const dir2 = mkdtempSync(join(tmpdir(), 'pta-time-'));
      const empty = openStore({ dir: dir2 });
      try {
        authority = new Authority1(clock);
        manager = createTokenManager({ store: empty, authority: () => authority, log, clock, random: () => 0.5 }, ACCOUNTS);
        manager.start();
        await flushMicrotasks();
        await clock.advance(5 * CREDENTIALS_POLL_MS);
        assert.equal(authority.calls.length, 0);
        empty.putCredentials('default', 'eta-ereceipt', { clientId: 'c', clientSecret: 's', presharedKey: 'k' });
        await clock.advance(CREDENTIALS_POLL_MS);
        assert.equal(authority.calls.length, 1);
        assert.deepEqual(manager.unhealthy(), []);
        await manager.stop();
      } finally {
        empty.close();
        rmSync(dir2, { recursive: true, force: true });
      }
    });

    it('the watch runs only while an account waits for credentials', async () => {
      await flushMicrotasks();
      const before = clock.pendingTimers;
      await clock.advance(10 * CREDENTIALS_POLL_MS);
      assert.equal(clock.pendingTimers, before, 'a healthy account sets no poll (its refresh timer and the suspend check only)');
      assert.equal(before, 2);
    });

    it('not_provisioned answers a retry_after of the agent\'s own recheck, and the recheck keeps that pace', async () => {
      await manager.stop();
      const dir2 = mkdtempSync(join(tmpdir(), 'pta-time-'));
      const empty = openStore({ dir: dir2 });
      try {
        authority = new Authority1(clock);
        manager = createTokenManager({ store: empty, authority: () => authority, log, clock, random: () => 0.5 }, ACCOUNTS);
        const a = await manager.getToken('default', 60);
        assert.ok(!a.ok && a.error.kind === 'unavailable' && a.error.reason === 'not_provisioned');
        assert.equal(!a.ok && a.error.kind === 'unavailable' && a.error.retryAfterS, NOT_PROVISIONED_RECHECK_MS / 1000);
        await clock.advance(10_000);
        const b = await manager.getToken('default', 60);
        assert.equal(!b.ok && b.error.kind === 'unavailable' && b.error.retryAfterS, NOT_PROVISIONED_RECHECK_MS / 1000 - 10);
        const attempts = logged.filter((l) => l.msg === 'login failed').length;
        assert.equal(attempts, 1, 'the request in between did not make the agent look again');
        await clock.advance(NOT_PROVISIONED_RECHECK_MS);
        assert.equal(logged.filter((l) => l.msg === 'login failed').length, 2, 'one recheck per interval');
        await manager.stop();
      } finally {
        empty.close();
        rmSync(dir2, { recursive: true, force: true });
      }
    });
  });
});
