/**
 * The wall clock jumping back and forward by an hour and by a day.
 *
 * (a) In process: the token manager on a FakeClock (`jumpWall` moves the wall clock only, as an NTP step does)
 *     with the real SQLite store and an authority that signs its tokens' iat/exp on the true time line.
 * (b) The real agent under libfaketime (see FaketimeAgent: only CLOCK_REALTIME is faked, deliberately), against
 *     the emulator, whose clock is the true time: the wall clock steps while the agent runs, and the agent restarts
 *     with its clock an hour or a day ahead or behind.
 *
 * The invariant everywhere: a served token has not expired on the true time line, and the agent never claims
 * more life for it than it has (a few seconds of tolerated skew aside); a valid token is never refused for long
 * (at worst one login, within seconds).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import type { Authority, LoginRequest, LoginResult } from '../../src/authorities/index.js';
import { type AccountConfig } from '../../src/config/index.js';
import { parseConfig } from '../../src/authorities/index.js';
import { FakeClock, flushMicrotasks } from '../../src/lib/clock.js';
import { silentLogger } from '../../src/lib/log.js';
import { openStore, type Store } from '../../src/store/index.js';
import { createTokenManager, type TokenAnswer, type TokenManager } from '../../src/tokens/index.js';
import { fixture, forceRefresh, type Fixture } from '../support/harness.js';
import { FaketimeAgent, jwtClaims, offsetClock, signedBy, sleep, tokenWithin } from './support.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
/** restore() tolerates this much skew (tokens/restore.ts RESTORE_SKEW_MS). */
const SKEW_MS = 5_000;

// ---------------------------------------------------------------------------------------------
// (a) in process

const START = Date.UTC(2026, 0, 1);

/** Signs iat/exp on the true time line (START + monotonic), whatever the agent's wall clock says. */
class TrueTimeAuthority implements Authority {
  readonly name = 'eta-ereceipt';
  readonly credentialFields = [];
  calls = 0;
  down = false;
  lifetimeS = 3600;
  #n = 0;
  constructor(private readonly clock: FakeClock) {}

  trueNow(): number {
    return START + this.clock.monotonic();
  }

  async login(_req: LoginRequest): Promise<LoginResult> {
    this.calls++;
    if (this.down) return { ok: false, failure: { reason: 'upstream_unavailable', code: 'X', message: 'down' } };
    const iat = Math.floor(this.trueNow() / 1000);
    const b64 = (o: unknown): string => Buffer.from(JSON.stringify(o)).toString('base64url');
    const token = `${b64({ alg: 'none' })}.${b64({ iat, exp: iat + this.lifetimeS, n: ++this.#n })}.sig`;
    return { ok: true, token: { accessToken: token, tokenType: 'Bearer', expiresInS: this.lifetimeS } };
  }
}

function accounts(): Record<string, AccountConfig> {
  return parseConfig(
    { accounts: { default: { authority: 'eta-ereceipt', identityUrl: 'https://id.example', identity: { posserial: 'SN-1' } } } },
    'test',
  ).accounts;
}

const trueExpiry = (token: string): number => (jwtClaims(token).exp as number) * 1000;

describe('reliability: wall clock jumps, in process (FakeClock)', () => {
  let dir: string;
  let store: Store;
  let clock: FakeClock;
  let authority: TrueTimeAuthority;
  let manager: TokenManager;

  const make = (): TokenManager =>
    createTokenManager({ store, authority: () => authority, log: silentLogger, clock, random: () => 0.5 }, accounts());
  const token = (minTtl = 0): Promise<TokenAnswer> => manager.getToken('default', minTtl);

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'pta-clock-'));
    store = openStore({ dir });
    store.putCredentials('default', 'eta-ereceipt', { clientId: 'c', clientSecret: 's', presharedKey: 'k' });
    clock = new FakeClock(START);
    authority = new TrueTimeAuthority(clock);
    manager = make();
  });
  afterEach(async () => {
    await manager.stop();
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a running agent keeps each token to its real expiry through steps of +1 h, -1 d, +1 d, -1 h: no early refusal, no late serving, no extra login, expires_at shown on the current wall clock', async () => {
    // Proves expiry runs on the monotonic clock while the agent runs. Fails if a step makes the agent refuse or
    // renew a valid token, or serve it past its true expiry.
    manager.start();
    await flushMicrotasks();
    const first = await token();
    assert.ok(first.ok, JSON.stringify(first));
    const t = first.token.accessToken;
    let elapsed = 0;
    for (const jump of [HOUR, -DAY, DAY, -HOUR]) {
      clock.jumpWall(jump);
      await clock.advance(5 * MIN);
      elapsed += 5 * MIN;
      const a = await token(60);
      assert.ok(a.ok, `after a step of ${jump / HOUR} h`);
      assert.equal(a.token.accessToken, t);
      assert.equal(a.token.expiresIn, 3600 - elapsed / 1000, 'seconds left follow the true time');
      assert.equal(a.token.expiresAt, new Date(clock.now() + a.token.expiresIn * 1000).toISOString());
      assert.ok(trueExpiry(a.token.accessToken) - authority.trueNow() >= a.token.expiresIn * 1000, 'no more life claimed than it has');
    }
    assert.equal(authority.calls, 1, 'no login caused by a step');
    // The authority goes down; a day's step back must not keep the token alive past its true expiry.
    authority.down = true;
    await clock.advance(3600_000 - elapsed - 1_000);
    const last = await token();
    assert.ok(last.ok && last.token.accessToken === t && last.token.expiresIn === 1, JSON.stringify(last));
    assert.ok(authority.calls >= 2, 'the refresh at 2/3 of the lifetime happened on time, steps notwithstanding');
    clock.jumpWall(-DAY);
    await clock.advance(1_001); // 1 ms past the true expiry (at the very instant: see the todo below)
    const gone = await token();
    assert.ok(!gone.ok && gone.error.kind === 'unavailable' && gone.error.reason === 'upstream_unavailable', JSON.stringify(gone));
  });

  it('a token is not served at the very instant it expires (min_ttl=0)', async () => {
    // Proves (once fixed): "expired" means the same to every path of the manager. Fails today.
    const first = await token();
    assert.ok(first.ok, JSON.stringify(first));
    authority.down = true;
    await clock.advance(3600_000);
    const a = await token();
    assert.ok(!a.ok, `served at its expiry instant: ${JSON.stringify(a)}`);
  });

  interface RestoreCase {
    name: string;
    lifetimeS: number;
    elapsedMs: number;
    jumpMs: number;
    /** Restored when the agent restarts in the same boot (its age measured by uptime). */
    sameBoot: boolean;
    /** Restored after a reboot (only the wall clock is left). */
    afterReboot: boolean;
  }
  const restoreCases: RestoreCase[] = [
    { name: 'no step', lifetimeS: 3600, elapsedMs: 10 * MIN, jumpMs: 0, sameBoot: true, afterReboot: true },
    { name: 'a step back of 3 s (within the tolerated skew)', lifetimeS: 3600, elapsedMs: 10 * MIN, jumpMs: -3_000, sameBoot: true, afterReboot: true },
    { name: 'a step back of 1 h (the clock reads before the token was obtained)', lifetimeS: 3600, elapsedMs: 10 * MIN, jumpMs: -HOUR, sameBoot: true, afterReboot: false },
    { name: 'a step back of 1 d', lifetimeS: 3600, elapsedMs: 10 * MIN, jumpMs: -DAY, sameBoot: true, afterReboot: false },
    { name: 'a step forward of 1 h on a 2 h token', lifetimeS: 7200, elapsedMs: 10 * MIN, jumpMs: HOUR, sameBoot: true, afterReboot: true },
    { name: 'a step forward of 1 h on a 1 h token (expired by the wall clock)', lifetimeS: 3600, elapsedMs: 10 * MIN, jumpMs: HOUR, sameBoot: true, afterReboot: false },
    { name: 'a step forward of 1 d', lifetimeS: 3600, elapsedMs: 10 * MIN, jumpMs: DAY, sameBoot: true, afterReboot: false },
    { name: 'no step, 70 min on a 1 h token', lifetimeS: 3600, elapsedMs: 70 * MIN, jumpMs: 0, sameBoot: false, afterReboot: false },
  ];

  const restoreAfter = async (
    c: Pick<RestoreCase, 'lifetimeS' | 'elapsedMs' | 'jumpMs'>,
    reboot = false,
    offline = false,
  ): Promise<{ before: string; after: TokenAnswer; logins: number }> => {
    authority.lifetimeS = c.lifetimeS;
    const first = await token();
    assert.ok(first.ok, JSON.stringify(first));
    // The agent is down meanwhile (no refresh): time passes, then the wall clock steps.
    await manager.stop();
    await clock.advance(c.elapsedMs);
    if (reboot) clock.reboot();
    clock.jumpWall(c.jumpMs);
    authority = new TrueTimeAuthority(clock);
    authority.lifetimeS = c.lifetimeS;
    authority.down = offline;
    manager = make();
    manager.start();
    await flushMicrotasks();
    return { before: first.token.accessToken, after: await token(), logins: authority.calls };
  };

  for (const c of restoreCases) {
    for (const reboot of [false, true]) {
      const restored = reboot ? c.afterReboot : c.sameBoot;
      it(`restore after ${c.name}, ${reboot ? 'after a reboot' : 'in the same boot'}: ${restored ? 'restored' : 'refused, login'}`, async () => {
        // Proves the restore rule for this step: in the same boot a stored token is trusted for exactly its
        // true remaining life (measured by uptime, whatever the wall clock says); after a reboot only while the
        // wall clock can be trusted. Fails on a wrong refusal/acceptance or an overstated life.
        // After a reboot a restored token is also confirmed by a login started at once; the authority is offline
        // for it here, so that what is served is the restore decision itself (and that one attempt was made).
        const { before, after, logins } = await restoreAfter(c, reboot, reboot && restored);
        assert.ok(after.ok, JSON.stringify(after));
        assert.equal(after.token.accessToken === before, restored, restored ? 'the stored token is served' : 'a new token is served');
        assert.equal(logins, restored && !reboot ? 0 : 1, reboot ? 'after a reboot: one login at once' : 'same boot: login-free');
        const trueLeft = trueExpiry(after.token.accessToken) - authority.trueNow();
        assert.ok(trueLeft > 0, 'not expired');
        assert.ok(after.token.expiresIn * 1000 <= trueLeft + SKEW_MS, `claims ${after.token.expiresIn} s, has ${trueLeft / 1000} s`);
      });
    }
  }

  it('restore after a step back of 1 h when 90 min passed since a 1 h token was obtained: must not serve it (it expired 30 min ago)', async () => {
    // Proves: within one boot a token that has truly expired is never restored, even when the wall clock was
    // stepped back while the agent was down (its age is measured by uptime, which a clock step does not move).
    const { before, after } = await restoreAfter({ lifetimeS: 3600, elapsedMs: 90 * MIN, jumpMs: -HOUR });
    assert.ok(after.ok, JSON.stringify(after));
    const trueLeft = trueExpiry(after.token.accessToken) - authority.trueNow();
    assert.ok(trueLeft > 0, `served ${after.token.accessToken === before ? 'the stored' : 'a'} token ${-trueLeft / 1000} s after its true expiry, claiming ${after.token.expiresIn} s left`);
  });
});

// ---------------------------------------------------------------------------------------------
// (b) the real agent under libfaketime

describe('reliability: wall clock jumps, the real agent under libfaketime', () => {
  let f: Fixture;
  let agent: FaketimeAgent;
  const truth = offsetClock();
  before(async () => {
    f = await fixture({ lifetimeS: 600, clock: truth });
    f.writeConfig({}, { logLevel: 'info' });
    assert.equal((await f.provision()).code, 0);
    agent = new FaketimeAgent(f.configPath, f.socket, f.dir);
  });
  after(async () => {
    await agent.stop();
    await f.cleanup();
  });

  /** Offset of the agent's clock from the host's, in seconds, as libfaketime takes it. */
  const offset = (ms: number): string => `${ms >= 0 ? '+' : '-'}${Math.abs(ms / 1000)}`;

  /** A token within 5 s of (re)start; checks it is the emulator's, unexpired on the true clock, and not overstated. */
  let startedAt = 0;
  const served = async (what: string): Promise<{ token: string; expiresIn: number; expiresAt: string }> => {
    const { answer, at } = await tokenWithin(f.socket, 10_000, 1);
    assert.ok(at - startedAt < 5_000, `${what}: a token ${at - startedAt} ms after the (re)start`);
    const token = answer.json.access_token as string;
    assert.ok(signedBy(token, f.emulator.publicJwk()), `${what}: the emulator's token`);
    const trueLeft = trueExpiry(token) - truth.now();
    const expiresIn = answer.json.expires_in as number;
    assert.ok(trueLeft > 0, `${what}: served a token that expired ${-trueLeft / 1000} s ago`);
    assert.ok(expiresIn * 1000 <= trueLeft + SKEW_MS, `${what}: claims ${expiresIn} s left, has ${trueLeft / 1000} s`);
    return { token, expiresIn, expiresAt: answer.json.expires_at as string };
  };

  const restartAt = async (ms: number): Promise<void> => {
    await agent.kill9();
    agent.setOffset(offset(ms));
    startedAt = Date.now();
    agent.start();
    await agent.ready();
  };

  it('steps of +1 h, +1 d, -1 d, -1 h while it runs: same token, seconds left follow the true time, expires_at follows the wall clock, no login', async () => {
    // Proves, on the real process, that the served expiry is monotonic: a step of the wall clock neither
    // expires a valid token nor extends it. Fails on a new login, another token, or a jump in expires_in.
    agent.setOffset('+0');
    startedAt = Date.now();
    agent.start();
    await agent.ready();
    const first = await served('at start');
    const requests = f.emulator.stats().requests;
    for (const [stepMs, wallMs] of [
      [HOUR, HOUR],
      [DAY, HOUR + DAY],
      [-DAY, HOUR],
      [-HOUR, 0],
    ] as const) {
      const t0 = Date.now();
      agent.setOffset(offset(wallMs));
      await sleep(200);
      startedAt = Date.now();
      const s = await served(`after a step of ${stepMs / HOUR} h`);
      assert.equal(s.token, first.token);
      const realElapsedS = (Date.now() - t0) / 1000;
      assert.ok(s.expiresIn <= first.expiresIn && s.expiresIn >= first.expiresIn - 60, `expires_in ${s.expiresIn} after ${realElapsedS} s`);
      const shownWallMs = new Date(s.expiresAt).getTime() - s.expiresIn * 1000;
      assert.ok(Math.abs(shownWallMs - (Date.now() + wallMs)) < 3_000, `expires_at ${s.expiresAt} is on the agent's wall clock`);
    }
    assert.equal(f.emulator.stats().requests, requests, 'no login');
  });

  for (const [label, ms] of [
    ['an hour ahead', HOUR],
    ['a day ahead', DAY],
    ['an hour behind', -HOUR],
    ['a day behind', -DAY],
  ] as const) {
    it(`restart with the clock ${label}, again with it still off, then with it corrected: the stored token is kept (same boot), valid and never overstated`, async () => {
      // Proves the restore rules on the real process with a really wrong clock: within one boot the agent
      // measures the stored token's age by uptime (boot_id + /proc/uptime, which libfaketime does not touch),
      // so a wrong wall clock neither throws a valid token away nor revives an expired one. Fails on a served
      // token that has expired (true clock), a claimed life longer than the true one, no token within 5 s, or
      // a login although the stored token is valid.
      await restartAt(0);
      const base = await served('at +0');
      const requests = f.emulator.stats().requests;
      for (const [what, at] of [
        [`restarted ${label}`, ms],
        [`restarted ${label} again`, ms],
        [`corrected after ${label}`, 0],
      ] as const) {
        await restartAt(at);
        const s = await served(what);
        assert.equal(s.token, base.token, `${what}: the stored token is kept`);
        assert.ok(s.expiresIn <= base.expiresIn, `${what}: claims ${s.expiresIn} s, had ${base.expiresIn} s`);
      }
      assert.equal(f.emulator.stats().requests, requests, 'no login');
      assert.match(agent.output, /uptime \(same boot\)/);
    });
  }

  it('restart an hour behind after 90 min down, holding a 1 h token: must not serve it (it expired 30 min ago)', {
    todo:
      'LIMITATION across a reboot: the agent measures a stored token\'s age by uptime within one boot (boot_id + /proc/uptime; ' +
      'see the in-process test above and test/unit/manager.test.ts), but 90 min off means a reboot, after which only the wall ' +
      'clock is left, and a clock stepped back by less than the downtime cannot be told from a right one without another time ' +
      'source. libfaketime cannot move /proc/uptime, so this test stages exactly that across-reboot case.',
  }, async () => {
    // Proves (if ever fixed): a token that has truly expired is never served after a restart with a clock that
    // is behind, even across a reboot.
    f.emulator.setFaults({ lifetimeS: 3600 });
    await restartAt(0);
    const current = await served('at +0');
    const forced = await forceRefresh(f.socket, current.token, { min_ttl: 1 });
    assert.equal(forced.status, 200, forced.text);
    await agent.kill9();
    truth.offsetMs += 90 * MIN; // the box is off for 90 minutes
    agent.setOffset(offset(truth.offsetMs - HOUR)); // and comes back with its clock an hour behind
    startedAt = Date.now();
    agent.start();
    await agent.ready();
    try {
      await served('an hour behind, 90 min later');
    } finally {
      truth.offsetMs = 0;
      f.emulator.clearFaults();
    }
  });
});
