/**
 * The token manager with several accounts, a shared login limit (MyInvois), a refresh-token
 * flow (Impact) and device identity from a profile (degraded and changed identities).
 * Fake clock, scripted authorities, the real SQLite store; nothing sleeps.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import type { Authority, LoginRequest, LoginResult, RefreshRequest } from '../../src/authorities/index.js';
import { type AccountConfig } from '../../src/config/index.js';
import { parseConfig } from '../../src/authorities/index.js';
import { FakeClock, flushMicrotasks } from '../../src/lib/clock.js';
import { createLogger, silentLogger, type Logger } from '../../src/lib/log.js';
import { openStore, type Store } from '../../src/store/index.js';
import {
  createLoginLimiter,
  createTokenManager,
  type IdentityProvider,
  type IdentityReading,
  type TokenManager,
} from '../../src/tokens/index.js';
import { statusBodies } from '../../src/server/index.js';

function configOf(accounts: Record<string, Record<string, unknown>>): Record<string, AccountConfig> {
  return parseConfig({ accounts }, 'test').accounts;
}

const ok = (accessToken: string, expiresInS = 3600, extra: Record<string, unknown> = {}): LoginResult => ({
  ok: true,
  token: { accessToken, tokenType: 'Bearer', expiresInS, ...extra },
});
const failure = (reason: 'credentials_rejected' | 'rate_limited' | 'upstream_unavailable', extra = {}): LoginResult => ({
  ok: false,
  failure: { reason, code: 'X', message: `failed: ${reason}`, ...extra },
});

describe('login limit shared by accounts with one client ID', () => {
  let dir: string;
  let store: Store;
  let clock: FakeClock;
  let manager: TokenManager | undefined;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'pta-accts-'));
    store = openStore({ dir });
    clock = new FakeClock();
  });
  afterEach(async () => {
    await manager?.stop();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A MyInvois-like authority: declares 12/min per client ID and records when each login went out. */
  const limited = (sentAt: number[], answer: () => LoginResult = () => ok(`t${sentAt.length}`)): Authority => ({
    name: 'myinvois',
    credentialFields: [],
    loginLimit: (account, creds) => ({ key: `myinvois ${account.identityUrl} ${creds.clientId}`, perMinute: 12 }),
    async login() {
      sentAt.push(clock.monotonic());
      return answer();
    },
  });

  it('50 accounts sharing one client ID never exceed 12 logins in any 60 s, and all get tokens', async () => {
    const accounts: Record<string, Record<string, unknown>> = {};
    for (let i = 0; i < 50; i++) {
      accounts[`shop${i}`] = { authority: 'myinvois', identityUrl: 'https://preprod-api.myinvois.hasil.gov.my' };
      store.putCredentials(`shop${i}`, 'myinvois', { clientId: 'shared-id', clientSecret: 's' });
    }
    // A 51st account with its own client ID is not held back by the others.
    accounts.other = { authority: 'myinvois', identityUrl: 'https://preprod-api.myinvois.hasil.gov.my' };
    store.putCredentials('other', 'myinvois', { clientId: 'own-id', clientSecret: 's' });
    const sentAt: number[] = [];
    const otherAt: number[] = [];
    const shared = limited(sentAt);
    const own = limited(otherAt);
    manager = createTokenManager(
      { store, authority: (a) => (a.name === 'other' ? own : shared), log: silentLogger, clock, random: () => 0.5 },
      configOf(accounts),
    );
    manager.start();
    await flushMicrotasks();
    assert.equal(sentAt.length, 12, 'the first 12 go at once');
    assert.equal(otherAt.length, 1, 'another client ID is not delayed');
    const waiting = await manager.getToken('shop40', 60);
    assert.ok(!waiting.ok && waiting.error.kind === 'unavailable' && waiting.error.reason === 'rate_limited');
    if (!waiting.ok && waiting.error.kind === 'unavailable') assert.ok(waiting.error.retryAfterS >= 1);
    for (let step = 0; step < 80 && sentAt.length < 50; step++) await clock.advance(5_000);
    assert.equal(sentAt.length, 50, 'every account logged in in the end');
    for (let i = 0; i < sentAt.length; i++) {
      const inWindow = sentAt.filter((t) => t > sentAt[i]! - 60_000 && t <= sentAt[i]!).length;
      assert.ok(inWindow <= 12, `at most 12 logins in the 60 s ending at login ${i} (saw ${inWindow})`);
    }
    assert.ok(sentAt[49]! - sentAt[0]! < 5 * 60_000, 'no account waits longer than needed');
    for (let i = 0; i < 50; i++) assert.ok((await manager.getToken(`shop${i}`, 60)).ok, `shop${i} has a token`);
    assert.equal(sentAt.length, 50, 'no extra logins');
  });

  it("a 429 for one account holds back every account that shares the client ID until Retry-After", async () => {
    const accounts: Record<string, Record<string, unknown>> = {};
    for (const n of ['a', 'b']) {
      accounts[n] = { authority: 'myinvois', identityUrl: 'https://preprod-api.myinvois.hasil.gov.my' };
      store.putCredentials(n, 'myinvois', { clientId: 'shared-id', clientSecret: 's' });
    }
    const sentAt: number[] = [];
    let first = true;
    const authority = limited(sentAt, () => {
      if (first) {
        first = false;
        return failure('rate_limited', { retryAfterMs: 30_000 });
      }
      return ok(`t${sentAt.length}`);
    });
    manager = createTokenManager(
      { store, authority: () => authority, log: silentLogger, clock, random: () => 0.5, limiter: createLoginLimiter() },
      configOf(accounts),
    );
    assert.ok(!(await manager.getToken('a', 60)).ok, 'a is answered 429 by the authority');
    const b = await manager.getToken('b', 60);
    assert.ok(!b.ok && b.error.kind === 'unavailable' && b.error.reason === 'rate_limited', 'b does not even try');
    assert.equal(sentAt.length, 1);
    await clock.advance(29_000);
    assert.equal(sentAt.length, 1, 'nobody logs in before Retry-After');
    await clock.advance(5_000);
    assert.equal(sentAt.length, 3, 'both log in once it has passed');
  });

  it('one failing account never delays another', async () => {
    for (const n of ['good', 'bad']) store.putCredentials(n, 'eta-einvoicing', { clientId: n, clientSecret: 's' });
    let release: (() => void) | undefined;
    const slow: Authority = {
      name: 'eta-einvoicing',
      credentialFields: [],
      login: () => new Promise<LoginResult>((r) => (release = () => r(failure('upstream_unavailable')))),
    };
    const fast: Authority = { name: 'eta-einvoicing', credentialFields: [], login: async () => ok('good-token') };
    manager = createTokenManager(
      { store, authority: (a) => (a.name === 'bad' ? slow : fast), log: silentLogger, clock },
      configOf({
        good: { authority: 'eta-einvoicing', identityUrl: 'https://id.eta.gov.eg' },
        bad: { authority: 'eta-einvoicing', identityUrl: 'https://id.eta.gov.eg' },
      }),
    );
    const hanging = manager.getToken('bad', 60);
    const good = await manager.getToken('good', 60);
    assert.ok(good.ok && good.token.accessToken === 'good-token', 'served while the other login hangs');
    release!();
    assert.ok(!(await hanging).ok);
  });
});

describe('refresh tokens (impact-gr)', () => {
  let dir: string;
  let store: Store;
  let clock: FakeClock;
  let manager: TokenManager | undefined;
  let logins: LoginRequest[];
  let refreshes: RefreshRequest[];
  let refreshAnswer: (() => LoginResult) | undefined;
  let n: number;

  const impact = (): Authority => ({
    name: 'impact-gr',
    credentialFields: [],
    async login(req) {
      logins.push(req);
      n++;
      return ok(`access-${n}`, 900, { refreshToken: `refresh-${n}`, refreshExpiresInS: 7 * 86_400 });
    },
    async refresh(req) {
      refreshes.push(req);
      if (refreshAnswer) return refreshAnswer();
      n++;
      return ok(`access-${n}`, 900, { refreshToken: `refresh-${n}`, refreshExpiresInS: 7 * 86_400 });
    },
  });

  const accounts = configOf({ gr: { authority: 'impact-gr', identityUrl: 'https://einvoiceapiuat.impact.gr' } });

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'pta-impact-'));
    store = openStore({ dir });
    store.putCredentials('gr', 'impact-gr', { vat: 'EL123456789', apiKey: 'k' });
    clock = new FakeClock();
    logins = [];
    refreshes = [];
    refreshAnswer = undefined;
    n = 0;
    manager = createTokenManager({ store, authority: impact, log: silentLogger, clock, random: () => 0.5 }, accounts);
  });
  afterEach(async () => {
    await manager?.stop();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('renews the 15-minute token with the refresh token, sending the current access token', async () => {
    manager!.start();
    await flushMicrotasks();
    assert.equal(logins.length, 1);
    await clock.advance(600_000 + 1_000); // 2/3 of 900 s
    assert.equal(refreshes.length, 1);
    assert.equal(refreshes[0]!.refreshToken, 'refresh-1');
    assert.equal(refreshes[0]!.accessToken, 'access-1');
    const t = await manager!.getToken('gr', 60);
    assert.ok(t.ok && t.token.accessToken === 'access-2');
    await clock.advance(600_000 + 1_000);
    assert.equal(refreshes[1]!.refreshToken, 'refresh-2', 'the rotated refresh token is used next');
    assert.equal(logins.length, 1, 'no new login while refresh works');
  });

  it('falls back to a login when the refresh is refused', async () => {
    await manager!.getToken('gr', 60);
    refreshAnswer = () => failure('credentials_rejected', { httpStatus: 401 });
    await clock.advance(601_000);
    assert.equal(refreshes.length, 1);
    assert.equal(logins.length, 2, 'logged in again at once');
    const t = await manager!.getToken('gr', 60);
    assert.ok(t.ok && t.token.accessToken === 'access-2');
  });

  it('backs off, without a login, when the refresh meets an outage', async () => {
    await manager!.getToken('gr', 60);
    refreshAnswer = () => failure('upstream_unavailable');
    await clock.advance(601_000);
    assert.ok(refreshes.length >= 1, 'the refresh was tried (and retried after a short backoff)');
    assert.equal(logins.length, 1, 'an outage is no reason to drop the refresh token');
    const t = await manager!.getToken('gr', 60);
    assert.ok(t.ok && t.token.accessToken === 'access-1', 'the current token is still served');
  });

  it('restores the refresh token after a restart, even when the access token has expired', async () => {
    await manager!.getToken('gr', 60);
    await manager!.stop();
    await clock.advance(3_600_000);
    manager = createTokenManager({ store, authority: impact, log: silentLogger, clock, random: () => 0.5 }, accounts);
    manager.start();
    const t = await manager.getToken('gr', 60);
    assert.ok(t.ok && t.token.accessToken === 'access-2');
    assert.equal(refreshes.length, 1, 'renewed with the stored refresh token');
    assert.equal(logins.length, 1);
  });

  it('logs in instead of refreshing once the refresh token has expired (7 days)', async () => {
    await manager!.getToken('gr', 60);
    await manager!.stop();
    await clock.advance(8 * 86_400_000);
    manager = createTokenManager({ store, authority: impact, log: silentLogger, clock, random: () => 0.5 }, accounts);
    manager.start();
    assert.ok((await manager.getToken('gr', 60)).ok);
    assert.equal(refreshes.length, 0);
    assert.equal(logins.length, 2);
  });
});

describe('device identity through the manager', () => {
  let dir: string;
  let store: Store;
  let clock: FakeClock;
  let manager: TokenManager | undefined;
  let calls: LoginRequest[];
  let reads: Array<{ cheapOnly: boolean }>;
  let next: () => IdentityReading;
  let logged: Array<{ msg: string; fields: Record<string, unknown> }>;
  let log: Logger;

  const provider: IdentityProvider = {
    async read(_account, options) {
      reads.push(options);
      return next();
    },
    required: () => ['posserial'],
  };
  const authority: Authority = {
    name: 'eta-ereceipt',
    credentialFields: [],
    async login(req) {
      calls.push(req);
      return ok(`tok-${calls.length}`, 3600);
    },
  };
  const serial = (value: string): IdentityReading => ({
    profile: 'serial-fiscal-module',
    values: {
      posserial: { value, source: 'serialport /dev/ttyUSB0' },
      pososversion: { value: 'Debian 12', source: 'os-release' },
    },
    errors: {},
  });
  const accounts = configOf({
    default: { authority: 'eta-ereceipt', identityUrl: 'https://id.eta.gov.eg', deviceProfile: 'serial-fiscal-module' },
  });

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'pta-ident-'));
    store = openStore({ dir });
    store.putCredentials('default', 'eta-ereceipt', { clientId: 'c', clientSecret: 's' });
    clock = new FakeClock();
    calls = [];
    reads = [];
    logged = [];
    log = createLogger({
      level: 'debug',
      write: (line) => {
        const o = JSON.parse(line) as { msg: string } & Record<string, unknown>;
        logged.push({ msg: o.msg, fields: o });
      },
    });
    manager = createTokenManager({ store, authority: () => authority, log, clock, identity: provider, random: () => 0.5 }, accounts);
  });
  afterEach(async () => {
    await manager?.stop();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('reads every source first, then only the cheap ones before later logins', async () => {
    next = () => serial('FM-0001');
    await manager!.getToken('default', 60);
    next = () => ({ ...serial('ignored'), values: { pososversion: { value: 'Debian 12', source: 'os-release' } }, skipped: ['posserial'] });
    await clock.advance(2_401_000);
    assert.deepEqual(reads, [{ cheapOnly: false }, { cheapOnly: true }]);
    assert.equal(calls[1]!.identity.posserial, 'FM-0001', 'the expensive value read at start is reused');
    const s = statusBodies(manager!.status()).default!.identity;
    assert.equal(s.posserial, 'FM-0001');
    assert.equal(s.sources.posserial, 'serialport /dev/ttyUSB0');
    assert.equal(s.degraded, false);
  });

  it('logs in with the stored identity when a source fails, and status says degraded', async () => {
    next = () => serial('FM-0001');
    await manager!.getToken('default', 60);
    await manager!.stop();
    // Restart: the module does not answer this time.
    next = () => ({ profile: 'serial-fiscal-module', values: {}, errors: { posserial: 'no answer from /dev/ttyUSB0 within 3 x 1000 ms' } });
    store.deleteToken('default');
    manager = createTokenManager({ store, authority: () => authority, log, clock, identity: provider }, accounts);
    const t = await manager.getToken('default', 60);
    assert.ok(t.ok, 'still served');
    assert.equal(calls.at(-1)!.identity.posserial, 'FM-0001');
    const s = statusBodies(manager.status()).default!.identity;
    assert.equal(s.degraded, true);
    assert.match(s.problems.posserial ?? '', /no answer/);
    assert.match(s.sources.posserial ?? '', /^stored/);
    assert.ok(logged.some((l) => l.msg === 'identity source failed; using the stored value'));
  });

  it('logs a changed identity and logs in with the new value', async () => {
    next = () => serial('FM-0001');
    await manager!.getToken('default', 60);
    await manager!.stop();
    next = () => serial('FM-0002');
    store.deleteToken('default');
    manager = createTokenManager({ store, authority: () => authority, log, clock, identity: provider }, accounts);
    assert.ok((await manager.getToken('default', 60)).ok);
    assert.equal(calls.at(-1)!.identity.posserial, 'FM-0002');
    const change = logged.find((l) => l.msg === 'device identity changed; logging in with the new value');
    assert.ok(change, 'the change is logged');
    assert.equal(change.fields.from, 'FM-0001');
    assert.equal(change.fields.to, 'FM-0002');
    assert.equal(store.getIdentity('default')?.fields.posserial?.value, 'FM-0002', 'the new value is stored');
  });

  it('answers identity_unavailable with no identity at all, and retries the full read later', async () => {
    next = () => ({ profile: 'serial-fiscal-module', values: {}, errors: { posserial: 'no answer' } });
    const t = await manager!.getToken('default', 60);
    assert.ok(!t.ok && t.error.kind === 'unavailable' && t.error.reason === 'identity_unavailable');
    if (!t.ok) assert.match(t.error.message, /posserial: no answer/);
    assert.equal(calls.length, 0);
    next = () => serial('FM-0003');
    for (let i = 0; i < 10 && calls.length === 0; i++) await clock.advance(5_000);
    assert.equal(calls.length, 1, 'logged in once the module answered');
    assert.ok(reads.every((r) => !r.cheapOnly), 'the full read is retried until it works');
  });

  it('two concurrent logins share one identity read', async () => {
    let resolveRead: (() => void) | undefined;
    let count = 0;
    const slow: IdentityProvider = {
      required: () => ['posserial'],
      read: () => {
        count++;
        return new Promise((r) => (resolveRead = () => r(serial('FM-9'))));
      },
    };
    await manager!.stop();
    manager = createTokenManager({ store, authority: () => authority, log, clock, identity: slow }, accounts);
    const a = manager.getToken('default', 60);
    const b = manager.refresh('default', 'x', 60);
    await flushMicrotasks();
    resolveRead!();
    await Promise.all([a, b]);
    assert.equal(count, 1);
  });
});
