/**
 * The token manager keeps what a login learned about the server (the Basic encoding it accepted) with the
 * account's credentials: the real oauth2 authority, the real SQLite store, a fake clock, and a fake HTTP
 * server that reads Basic credentials as they are (RFC 7617) and counts every request.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { authorities, parseConfig, type HttpClient, type HttpRequest, type HttpResponse } from '../../src/authorities/index.js';
import type { AccountConfig } from '../../src/config/index.js';
import { FakeClock, flushMicrotasks } from '../../src/lib/clock.js';
import { createLogger, silentLogger, type Logger } from '../../src/lib/log.js';
import { openStore, type Store } from '../../src/store/index.js';
import { createTokenManager, type TokenManager, type TokenStore } from '../../src/tokens/index.js';
import { basicPair, res } from '../fixtures/authorities/support.js';

const ID = 'pos-agent';
const SECRET = 'a:b%c+d~e/f=g h-é';
const PLAIN = `${ID}:${SECRET}`;
/** The rejected backoff of a first refusal: 300 s, jittered upward by 10 % at random() = 0.5. */
const REJECTED_WAIT_MS = 330_000;

const account = (): Record<string, AccountConfig> =>
  parseConfig({ accounts: { shop: { authority: 'oauth2', tokenUrl: 'https://auth.example.com/oauth2/token' } } }, 'test').accounts;

/** A server that accepts `accepts` (the decoded Basic pair) or nothing, answering an empty 403 otherwise. */
class PlainServer implements HttpClient {
  readonly pairs: string[] = [];
  accepts: string | undefined = PLAIN;
  hold: Promise<void> | undefined;
  #n = 0;
  async request(req: HttpRequest): Promise<HttpResponse> {
    this.pairs.push(basicPair(req));
    if (this.hold) await this.hold;
    return basicPair(req) === this.accepts
      ? res(200, { access_token: `tok-${++this.#n}`, token_type: 'Bearer', expires_in: 3600 })
      : res(403, '', {}, '');
  }
}

describe('token manager: the learned Basic encoding', () => {
  let dir: string;
  let store: Store;
  let clock: FakeClock;
  let http: PlainServer;
  let manager: TokenManager | undefined;

  const start = (deps: { store?: TokenStore; log?: Logger } = {}): TokenManager => {
    manager = createTokenManager(
      {
        store: deps.store ?? store,
        authority: (a) => authorities.create(a.authority, { http, now: () => clock.now() }),
        log: deps.log ?? silentLogger,
        clock,
        random: () => 0.5,
      },
      account(),
    );
    manager.start();
    return manager;
  };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'pta-interop-'));
    store = openStore({ dir });
    store.putCredentials('shop', 'oauth2', { clientId: ID, clientSecret: SECRET });
    clock = new FakeClock();
    http = new PlainServer();
  });

  afterEach(async () => {
    await manager?.stop();
    manager = undefined;
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the first login tries RFC 6749, then plain; plain is stored, and the renewal and the next start send plain only', async () => {
    const m = start();
    const first = await m.getToken('shop', 60);
    assert.ok(first.ok, JSON.stringify(first));
    assert.deepEqual(http.pairs, ['pos-agent:a%3Ab%25c%2Bd%7Ee%2Ff%3Dg+h-%C3%A9', PLAIN]);
    assert.deepEqual(store.getCredentials('shop')?.interop, { basicAuthEncoding: 'plain' });

    await clock.advance(3600_000); // past the renewal
    assert.deepEqual(http.pairs.slice(2), [PLAIN], 'the renewal: one request, plain');

    await m.stop();
    store.deleteToken('shop'); // nothing to restore: the next start logs in
    http.pairs.length = 0;
    const again = await start().getToken('shop', 60);
    assert.ok(again.ok);
    assert.deepEqual(http.pairs, [PLAIN], 'the next start does not try the refused encoding again');
  });

  it('new credentials (provision) forget it: RFC 6749 first again', async () => {
    const m = start();
    assert.ok((await m.getToken('shop', 60)).ok);
    assert.deepEqual(store.getCredentials('shop')?.interop, { basicAuthEncoding: 'plain' });
    await m.stop();
    store.putCredentials('shop', 'oauth2', { clientId: ID, clientSecret: SECRET });
    store.deleteToken('shop');
    http.pairs.length = 0;
    assert.ok((await start().getToken('shop', 60)).ok);
    assert.equal(http.pairs.length, 2, 'learned afresh');
    assert.deepEqual(store.getCredentials('shop')?.interop, { basicAuthEncoding: 'plain' });
  });

  it('a server that refuses both: two requests per login, then the rejected backoff; no hammering', async () => {
    http.accepts = undefined;
    const m = start();
    const a = await m.getToken('shop', 60);
    assert.ok(!a.ok && a.error.kind === 'unavailable' && a.error.reason === 'credentials_rejected');
    assert.match(a.error.message, /refused with both encodings/);
    assert.equal(http.pairs.length, 2);
    for (let i = 0; i < 20; i++) await m.getToken('shop', 60);
    await clock.advance(REJECTED_WAIT_MS - 1_000);
    assert.equal(http.pairs.length, 2, 'nothing more while the rejected backoff lasts');
    await clock.advance(2_000);
    assert.equal(http.pairs.length, 4, 'the retry after the backoff is again two requests');
    assert.equal(store.getCredentials('shop')?.interop, undefined, 'nothing was accepted, nothing learned');
  });

  it('a login that raced a provision does not attach what it learned to the new credentials', async () => {
    let release!: () => void;
    http.hold = new Promise<void>((r) => (release = r));
    const m = start();
    const answer = m.getToken('shop', 60);
    await flushMicrotasks();
    store.putCredentials('shop', 'oauth2', { clientId: ID, clientSecret: SECRET });
    release();
    assert.ok((await answer).ok);
    assert.equal(store.getCredentials('shop')?.interop, undefined);
  });

  it('a store that cannot keep it: the token is served all the same, and the error logged', async () => {
    const lines: string[] = [];
    const log = createLogger({ write: (l) => lines.push(l) });
    const failing: TokenStore = {
      ...store,
      putInterop: () => {
        throw new Error('disk I/O error');
      },
    };
    const answer = await start({ store: failing, log }).getToken('shop', 60);
    assert.ok(answer.ok, JSON.stringify(answer));
    const logged = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.ok(logged.some((l) => l.msg === 'remembering what the token service accepted' && l.basicAuthEncoding === 'plain'));
    assert.ok(logged.some((l) => l.level === 'error' && l.msg === 'cannot store what the token service accepted' && /disk I\/O/.test(String(l.error))));
    assert.ok(!lines.join('').includes(SECRET), 'no secret in the log');
  });

  it('an account whose encodings agree learns rfc6749 once and never writes it again', async () => {
    store.putCredentials('shop', 'oauth2', { clientId: ID, clientSecret: 'Yq3-tB9.kP0_zR7' });
    http.accepts = `${ID}:Yq3-tB9.kP0_zR7`;
    let writes = 0;
    const counting: TokenStore = { ...store, putInterop: (...a) => (writes++, store.putInterop(...a)) };
    const m = start({ store: counting });
    assert.ok((await m.getToken('shop', 60)).ok);
    await clock.advance(3600_000);
    await clock.advance(3600_000);
    assert.ok(http.pairs.length >= 3, `renewed: ${http.pairs.length} logins`);
    assert.ok(http.pairs.every((p) => p === `${ID}:Yq3-tB9.kP0_zR7`), 'one request per login');
    assert.equal(writes, 1);
    assert.deepEqual(store.getCredentials('shop')?.interop, { basicAuthEncoding: 'rfc6749' });
  });
});
