/**
 * The real agent (the compiled CLI `run`) with several accounts at once, one emulator per authority,
 * every account provisioned through the real CLI: each account gets its own authority's token, a
 * hanging or absent authority delays no other account, impact-gr renews with its refresh token and falls
 * back to a login, and MyInvois accounts sharing one client ID stay under its 12 logins a minute.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { decodeJwtClaims } from '../../src/authorities/index.js';
import { AUTHORITIES, type EmulatorAuthority } from '../../src/emulator/index.js';
import { ask, forceRefresh, multiFixture, waitFor, type AccountSpec, type Answer, type MultiFixture } from '../support/harness.js';

type Status = Record<string, { authority: string; state: string; last_error: { reason: string } | null }>;

const token = (f: MultiFixture, account: string, minTtlS = 60): Promise<Answer> =>
  ask(f.socket, `/v1/token?account=${account}&min_ttl=${minTtlS}`);

const accountsOf = async (f: MultiFixture): Promise<Status> => (await ask(f.socket, '/v1/status')).json.accounts as Status;

const claimsOf = (a: Answer): Record<string, unknown> => decodeJwtClaims(String(a.json.access_token)) ?? {};

/** The answer and how long it took. */
async function timed(p: Promise<Answer>): Promise<{ answer: Answer; ms: number }> {
  const started = performance.now();
  const answer = await p;
  return { answer, ms: performance.now() - started };
}

/** Asserts a 200 carrying a token that `account`'s own emulator signed. */
function assertOwnToken(f: MultiFixture, account: string, a: Answer): void {
  assert.equal(a.status, 200, `${account}: ${a.text}`);
  assert.equal(a.json.account, account);
  assert.equal(claimsOf(a).iss, f.emulatorOf(account).url, `${account} got a token of its own authority`);
}

describe('six authorities in one agent', () => {
  /** One account per authority, named after it; forced refreshes not rate limited, so each test may force one. */
  const accounts: Record<string, AccountSpec> = Object.fromEntries(
    AUTHORITIES.map((authority) => [authority, { authority, options: { forcedRefreshMinIntervalS: 0 } }]),
  );
  const names = Object.keys(accounts);
  let f: MultiFixture;
  before(async () => {
    f = await multiFixture({ emulators: Object.fromEntries(AUTHORITIES.map((a) => [a, {}])), accounts });
    await f.provisionAll(); // each verified with one real login, whose token is kept
    f.agent.start();
    await f.agent.ready();
  });
  after(() => f?.cleanup());

  it('answers /v1/token for each account with its own authority\'s token; /v1/status lists all six fresh', async () => {
    for (const name of names) {
      const a = await token(f, name);
      assertOwnToken(f, name, a);
      assert.ok(Number(a.json.expires_in) > 60, `${name}: expires_in ${a.json.expires_in}`);
      assert.equal(f.emulatorOf(name).stats().issued, 1, `${name}: the token of the verifying login is served, no second login`);
    }
    const status = await accountsOf(f);
    assert.deepEqual(Object.keys(status).sort(), [...names].sort());
    for (const name of names) {
      assert.equal(status[name]!.authority, name);
      assert.equal(status[name]!.state, 'fresh', name);
    }
    assert.equal((await ask(f.socket, '/v1/health')).status, 200);
  });

  it('logs every account in anew at once; one hanging 5 s delays none of the others', async () => {
    const slow: EmulatorAuthority = 'sepay';
    const fast = names.filter((n) => n !== slow);
    const held = Object.fromEntries(await Promise.all(names.map(async (n) => [n, String((await token(f, n)).json.access_token)] as const)));
    const issuedBefore = Object.fromEntries(names.map((n) => [n, f.emulatorOf(n).stats().issued]));
    f.emulator(slow).setFaults({ latencyMs: 5_000 });

    let slowDone = false;
    const slowLogin = timed(forceRefresh(f.socket, held[slow]!, { account: slow })).finally(() => (slowDone = true));
    const renewed = await Promise.all(fast.map((n) => timed(forceRefresh(f.socket, held[n]!, { account: n }))));
    renewed.forEach(({ answer, ms }, i) => {
      const name = fast[i]!;
      assertOwnToken(f, name, answer);
      assert.notEqual(answer.json.access_token, held[name], `${name}: a new token`);
      assert.equal(f.emulatorOf(name).stats().issued - issuedBefore[name]!, 1, `${name}: one login`);
      assert.ok(ms < 1_000, `${name}: renewed in ${Math.round(ms)} ms while ${slow} hangs`);
    });
    for (const name of fast) {
      const { answer, ms } = await timed(token(f, name));
      assertOwnToken(f, name, answer);
      assert.ok(ms < 1_000, `${name}: served in ${Math.round(ms)} ms`);
    }
    assert.equal(slowDone, false, `${slow} is still logging in`);
    const health = await ask(f.socket, '/v1/health');
    assert.equal(health.status, 503);
    assert.deepEqual(health.json.failing, [slow]);

    const { answer, ms } = await slowLogin;
    assertOwnToken(f, slow, answer);
    assert.ok(ms >= 4_500, `${slow} answered after ${Math.round(ms)} ms, having waited for its slow authority`);
    f.emulator(slow).clearFaults();
    assert.equal((await ask(f.socket, '/v1/health')).status, 200);
    console.log(`# while ${slow} hung 5 s: ${fast.length} other accounts renewed in ≤ ${Math.round(Math.max(...renewed.map((r) => r.ms)))} ms`);
  });

  it('an authority that is down fails alone, promptly, and its account recovers when it is back', async () => {
    const down: EmulatorAuthority = 'oauth2';
    const held = String((await token(f, down)).json.access_token);
    await f.emulator(down).stop();
    const { answer, ms } = await timed(forceRefresh(f.socket, held, { account: down }));
    assert.equal(answer.status, 503, answer.text);
    assert.equal(answer.json.reason, 'upstream_unavailable');
    assert.ok(ms < 2_000, `the refusal took ${Math.round(ms)} ms`);
    for (const name of names.filter((n) => n !== down)) assertOwnToken(f, name, await token(f, name));
    const health = await ask(f.socket, '/v1/health');
    assert.equal(health.status, 503);
    assert.deepEqual(health.json.failing, [down]);

    await f.emulator(down).start();
    await waitFor('the account to recover', async () => ((await token(f, down)).status === 200 ? true : undefined));
    assert.equal((await ask(f.socket, '/v1/health')).status, 200);
  });
});

describe('impact-gr: refresh tokens through the agent', () => {
  const account = 'greece';
  let f: MultiFixture;
  before(async () => {
    // 6 s access tokens: the agent renews them after about 4 s.
    f = await multiFixture({ emulators: { 'impact-gr': { lifetimeS: 6 } }, accounts: { [account]: { authority: 'impact-gr' } } });
    await f.provisionAll(['--no-verify']); // the agent's own login is the only one
    f.agent.start();
    await f.agent.ready();
  });
  after(() => f?.cleanup());

  it('renews via /Authentication/refresh, falls back to a login when refresh tokens expire, and keeps serving', async () => {
    const emu = f.emulator('impact-gr');
    const logins = (): number => emu.stats().issued - emu.stats().refreshed!;
    const served: Answer[] = [];
    const watch = async <T>(what: string, fn: () => T | undefined): Promise<T> =>
      waitFor(what, async () => {
        served.push(await token(f, account, 1));
        return fn();
      }, 20_000);

    await watch('the first token', () => (served.at(-1)?.status === 200 ? true : undefined));
    assert.ok(Number(served.at(-1)!.json.expires_in) <= 6, 'the token\'s own 6 s lifetime is believed');
    await watch('a renewal by refresh', () => (emu.stats().refreshed! >= 2 ? true : undefined));
    assert.equal(logins(), 1, 'no login while refresh works');

    assert.ok(emu.expireRefreshTokens() >= 1);
    await watch('a login after the refused refresh', () => (logins() === 2 ? true : undefined));
    assert.ok((emu.stats().byStatus['401'] ?? 0) >= 1, 'the refresh was refused');
    const refreshed = emu.stats().refreshed!;
    await watch('refresh to work again with the new refresh token', () => (emu.stats().refreshed! > refreshed ? true : undefined));
    assert.equal(logins(), 2);

    const failed = served.filter((a) => a.status !== 200);
    assert.deepEqual(failed.map((a) => a.text), [], 'served throughout');
    assert.ok(new Set(served.map((a) => a.json.access_token)).size >= 4, 'several tokens in turn');
    assert.match(f.agent.output, /refresh refused; logging in again/);
  });
});

describe('myinvois: 15 accounts sharing one client ID (12 logins a minute)', () => {
  const names = Array.from({ length: 15 }, (_, i) => `shop-${String(i + 1).padStart(2, '0')}`);
  /** An intermediary: one client ID, each account on behalf of its own taxpayer. */
  const tinOf = (name: string): string => `C10000000${name.slice(-2)}`;
  let f: MultiFixture;
  before(async () => {
    const accounts = Object.fromEntries(names.map((n) => [n, { authority: 'myinvois' as const, options: { onbehalfof: tinOf(n) } }]));
    f = await multiFixture({ emulators: { myinvois: {} }, accounts });
    await f.provisionAll(['--no-verify']); // verifying would spend the emulator's 12 logins
    f.agent.start();
    await f.agent.ready();
  });
  after(() => f?.cleanup());

  it('logs 12 in at once, defers the rest as rate_limited with a retry_after, and never meets a 429', async () => {
    const emu = f.emulator('myinvois');
    const settled = await waitFor('every account to have logged in or been deferred', async () => {
      const status = await accountsOf(f);
      const done = names.filter((n) => status[n]!.state === 'fresh' || status[n]!.last_error?.reason === 'rate_limited');
      return done.length === names.length ? status : undefined;
    });
    const fresh = names.filter((n) => settled[n]!.state === 'fresh');
    const deferred = names.filter((n) => settled[n]!.state !== 'fresh');
    assert.equal(fresh.length, 12);
    assert.equal(deferred.length, 3);

    for (const name of fresh) {
      const a = await token(f, name);
      assertOwnToken(f, name, a);
      assert.equal(claimsOf(a).onbehalfof, tinOf(name), `${name}: on behalf of its own taxpayer`);
    }
    for (const name of deferred) {
      for (let n = 0; n < 5; n++) {
        const a = await token(f, name);
        assert.equal(a.status, 503, a.text);
        assert.equal(a.json.reason, 'rate_limited');
        const retryAfter = Number(a.headers['retry-after']);
        assert.equal(a.json.retry_after, retryAfter);
        assert.ok(retryAfter >= 30 && retryAfter <= 63, `${name}: retry_after ${retryAfter} s, when the minute is over`);
      }
    }
    const stats = emu.stats();
    assert.equal(stats.requests, 12, 'the deferred accounts sent nothing, however often asked');
    assert.deepEqual(stats.byStatus, { '200': 12 }, 'no 429 from the authority');
    const health = await ask(f.socket, '/v1/health');
    assert.equal(health.status, 503);
    assert.deepEqual([...(health.json.failing as string[])].sort(), deferred);
  });
});
