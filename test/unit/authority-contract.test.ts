/**
 * One contract, every adapter: each authority's adapter logs in through the real HTTP client to that
 * authority's emulator in strict mode (the request must match the documented wire exactly), and every
 * documented answer maps to the right typed result. The suite is generated from the table ROWS: one
 * `describe` per authority, the same tests for all, driven by what the row says the authority does.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, test } from 'node:test';
import {
  createAuthority,
  createHttpClient,
  decodeJwtClaims,
  type Authority,
  type Credentials,
  type FailureReason,
  type IssuedToken,
  type LoginFailure,
  type LoginResult,
} from '../../src/authorities/index.js';
import { type AccountConfig } from '../../src/config/index.js';
import { parseConfig } from '../../src/authorities/index.js';
import {
  createEmulator,
  DEMO_PRINCIPALS,
  type Emulator,
  type EmulatorAuthority,
  type EmulatorClient,
  type EmulatorCompany,
  type EmulatorDevice,
  type EmulatorOptions,
} from '../../src/emulator/index.js';
import { demoAccount } from '../support/harness.js';

/** Looks issued, is not any registered secret, and is no placeholder (MyInvois refuses those unsent). */
const WRONG_SECRET = 'f00dfeed-0bad-4bad-8bad-0000000000e1';
const WRONG_KEY = '03ac6742-16f3-4e1a-9c5d-0bad000000a1';

/** A login the row expects to be refused by the service with `error`, verbatim, and `status`. */
interface Rejection {
  what: string;
  error: string;
  status: number;
  credentials?: Partial<Credentials>;
  /** Account settings added to the demo account's (an `identity` replaces it whole). */
  account?: Record<string, unknown>;
  /** The demo principal registered again under a new id with these changes; the login uses that id. */
  principal?: Record<string, unknown>;
}

/** A login other than the demo one that the service must accept. */
interface Acceptance {
  what: string;
  credentials?: Partial<Credentials>;
  account?: Record<string, unknown>;
  principal?: Record<string, unknown>;
}

/** An error the adapter cannot provoke, answered through the emulator's `error` fault. */
interface Injected {
  error: string;
  status?: number;
  /** Default credentials_rejected. */
  reason?: FailureReason;
}

interface Row {
  authority: EmulatorAuthority;
  /** The default lifetime of the emulator's tokens, as the authority documents it. */
  lifetimeS: number;
  /** The scope the demo login's answer carries. */
  scope?: string;
  /** Every error code the authority documents for its token endpoint; the row must cover each one. */
  documented: string[];
  rejections: Rejection[];
  injected: Injected[];
  acceptances?: Acceptance[];
  /** Credentials the adapter refuses without sending anything. */
  refusedUnsent?: Array<{ what: string; credentials: Partial<Credentials> }>;
  /** The emulator's own login limit with its default settings (logins a minute per key). */
  ownLimit?: number;
}

const OAUTH_TRANSIENT: Injected[] = [
  { error: 'temporarily_unavailable', status: 400, reason: 'upstream_unavailable' },
  { error: 'server_error', status: 400, reason: 'upstream_unavailable' },
];

/**
 * What eta-einvoicing and myinvois (both IdentityServer) refuse alike; `unauthorizedClient` is how the
 * authority spells it, `represented` a taxpayer the intermediary acts for and `other` one it does not.
 */
function identityServerRejections(unauthorizedClient: string, taxpayers: { represented: string; other: string }): Rejection[] {
  return [
    { what: 'a wrong client secret', error: 'invalid_client', status: 400, credentials: { clientSecret: WRONG_SECRET } },
    { what: 'a scope not granted', error: 'invalid_scope', status: 400, account: { scope: 'OtherAPI' } },
    {
      what: 'onbehalfof a taxpayer the intermediary does not represent',
      error: unauthorizedClient,
      status: 400,
      principal: { onbehalfof: [taxpayers.represented] },
      account: { onbehalfof: taxpayers.other },
    },
    { what: 'an intermediary without onbehalfof', error: 'invalid_request', status: 400, principal: { intermediary: true } },
    { what: 'a blocked system user', error: unauthorizedClient, status: 400, principal: { status: 'blocked' } },
    { what: 'an expired system user', error: unauthorizedClient, status: 400, principal: { status: 'expired' } },
  ];
}

const identity = (patch: Record<string, string>): Record<string, unknown> => ({
  identity: { ...DEMO_PRINCIPALS['eta-ereceipt'].account.identity, ...patch },
});

const ROWS: Row[] = [
  {
    authority: 'eta-ereceipt',
    lifetimeS: 3600,
    scope: 'InvoicingAPI',
    documented: [
      'invalid_request',
      'invalid_client',
      'invalid_grant',
      'unauthorized_client',
      'unsupported_grant_type',
      'invalid_scope',
      'invalid_posserial',
      'invalid_pososversion',
      'invalid_posmodelframework',
      'invalid_presharedkey',
      'invalid_clientsecret',
    ],
    rejections: [
      { what: 'an unknown client ID', error: 'invalid_client', status: 400, credentials: { clientId: 'f00dfeed-0000-4000-8000-00000000c1d' } },
      { what: 'a wrong client secret', error: 'invalid_clientsecret', status: 400, credentials: { clientSecret: WRONG_SECRET } },
      { what: 'a wrong preshared key', error: 'invalid_presharedkey', status: 400, credentials: { presharedKey: WRONG_KEY } },
      { what: 'no preshared key', error: 'invalid_presharedkey', status: 400, credentials: { presharedKey: undefined } },
      { what: 'another serial', error: 'invalid_posserial', status: 400, account: identity({ posserial: 'OTHER-POS-0002' }) },
      { what: 'another OS version', error: 'invalid_pososversion', status: 400, account: identity({ pososversion: 'Windows' }) },
      { what: 'another model framework', error: 'invalid_posmodelframework', status: 400, account: identity({ posmodelframework: '2' }) },
      { what: 'a blocked system user', error: 'unauthorized_client', status: 400, principal: { status: 'blocked' } },
      { what: 'a deactivated POS', error: 'unauthorized_client', status: 400, principal: { status: 'deactivated' } },
    ],
    injected: [{ error: 'invalid_request' }, { error: 'invalid_grant' }, { error: 'unsupported_grant_type' }, { error: 'invalid_scope' }, ...OAUTH_TRANSIENT],
    acceptances: [{ what: 'the second client secret', credentials: { clientSecret: DEMO_PRINCIPALS['eta-ereceipt'].register.devices![0]!.clientSecrets[1]! } }],
    ownLimit: 30,
  },
  {
    authority: 'eta-einvoicing',
    lifetimeS: 3600,
    scope: 'InvoicingAPI',
    documented: ['invalid_request', 'invalid_client', 'invalid_grant', 'unauthorized_client', 'unsupported_grant_type', 'invalid_scope'],
    rejections: [
      ...identityServerRejections('unauthorized_client', { represented: '100000001', other: '999999999' }),
      {
        what: 'credentials in the form body, which the strict emulator refuses',
        error: 'invalid_request',
        status: 400,
        account: { clientAuth: 'client_secret_post' },
      },
    ],
    injected: [{ error: 'invalid_grant' }, { error: 'unsupported_grant_type' }, ...OAUTH_TRANSIENT],
    acceptances: [
      { what: 'onbehalfof a represented taxpayer', principal: { onbehalfof: ['100000001'], intermediary: true }, account: { onbehalfof: '100000001' } },
      { what: 'the scope asked for', account: { scope: 'InvoicingAPI' } },
    ],
  },
  {
    authority: 'myinvois',
    lifetimeS: 3600,
    scope: 'InvoicingAPI',
    documented: ['invalid_request', 'invalid_client', 'invalid_grant', 'unauthorised_client', 'unsupported_grant_type', 'invalid_scope'],
    rejections: [
      // The documented spelling, kept verbatim.
      ...identityServerRejections('unauthorised_client', { represented: 'C1234567890', other: 'C9999999999' }),
      { what: 'onbehalfof that is neither TIN nor TIN:ROB', error: 'invalid_request', status: 400, account: { onbehalfof: 'C123:R1:R2' } },
    ],
    injected: [{ error: 'invalid_grant' }, { error: 'unsupported_grant_type' }, ...OAUTH_TRANSIENT],
    acceptances: [
      {
        what: 'onbehalfof TIN:ROB of a represented TIN',
        principal: { onbehalfof: ['C1234567890'], intermediary: true },
        account: { onbehalfof: 'C1234567890:ROB-0001' },
      },
    ],
    refusedUnsent: [
      { what: 'a placeholder secret', credentials: { clientSecret: 'changeme' } },
      { what: 'a placeholder client ID', credentials: { clientId: 'your-client-id' } },
    ],
    ownLimit: 12,
  },
  {
    authority: 'impact-gr',
    lifetimeS: 900,
    // Problem details: the title is the code (the 401 of a wrong key is titled "Unauthorized").
    documented: ['Unauthorized', 'Forbidden', 'BadRequest'],
    rejections: [
      { what: 'a wrong API key', error: 'Unauthorized', status: 401, credentials: { apiKey: WRONG_KEY } },
      { what: 'an unknown VAT', error: 'Unauthorized', status: 401, credentials: { vat: 'EL000000001' } },
    ],
    injected: [{ error: 'Forbidden', status: 403 }, { error: 'BadRequest', status: 400 }],
  },
  {
    authority: 'sepay',
    lifetimeS: 86400,
    documented: ['BAD_REQUEST', 'UNAUTHORIZED'],
    rejections: [
      // The documented 401 carries BAD_REQUEST whatever the cause.
      { what: 'a wrong client secret', error: 'BAD_REQUEST', status: 401, credentials: { clientSecret: WRONG_SECRET } },
      { what: 'an unknown client ID', error: 'BAD_REQUEST', status: 401, credentials: { clientId: 'f00dfeed-0000-4000-8000-00000000c1d' } },
      { what: 'a locked account', error: 'BAD_REQUEST', status: 401, principal: { status: 'blocked' } },
      { what: 'an expired account', error: 'BAD_REQUEST', status: 401, principal: { status: 'expired' } },
    ],
    injected: [{ error: 'BAD_REQUEST', status: 400 }, { error: 'UNAUTHORIZED', status: 401 }],
  },
  {
    authority: 'oauth2',
    lifetimeS: 3600,
    scope: 'api',
    documented: ['invalid_request', 'invalid_client', 'invalid_grant', 'unauthorized_client', 'unsupported_grant_type', 'invalid_scope', 'invalid_target'],
    rejections: [
      { what: 'a wrong client secret (Basic)', error: 'invalid_client', status: 401, credentials: { clientSecret: WRONG_SECRET } },
      {
        what: 'a wrong client secret (form body)',
        error: 'invalid_client',
        status: 400,
        credentials: { clientSecret: WRONG_SECRET },
        principal: { authMethod: 'client_secret_post' },
        account: { clientAuth: 'client_secret_post' },
      },
      {
        what: 'client_secret_post for a client registered for client_secret_basic',
        error: 'invalid_client',
        status: 400,
        account: { clientAuth: 'client_secret_post' },
      },
      {
        what: 'client_secret_basic for a client registered for client_secret_post',
        error: 'invalid_client',
        status: 401,
        principal: { authMethod: 'client_secret_post' },
      },
      { what: 'a scope not granted', error: 'invalid_scope', status: 400, account: { scope: 'admin' } },
      {
        what: 'an audience not allowed',
        error: 'invalid_target',
        status: 400,
        principal: { audiences: ['https://api.example.com'] },
        account: { audience: 'https://other.example.com' },
      },
      { what: 'a blocked client', error: 'unauthorized_client', status: 400, principal: { status: 'blocked' } },
    ],
    injected: [{ error: 'invalid_request' }, { error: 'invalid_grant' }, { error: 'unsupported_grant_type' }, ...OAUTH_TRANSIENT],
    acceptances: [
      { what: 'client_secret_basic', account: { clientAuth: 'client_secret_basic' } },
      { what: 'client_secret_post', principal: { authMethod: 'client_secret_post' }, account: { clientAuth: 'client_secret_post' } },
      { what: 'an allowed audience and scope', principal: { audiences: ['https://api.example.com'] }, account: { audience: 'https://api.example.com', scope: 'api' } },
    ],
  },
];

// ---------------------------------------------------------------------------------------------
// Helpers

function accountOf(authority: EmulatorAuthority, url: string, extra: Record<string, unknown> = {}): AccountConfig {
  return parseConfig({ accounts: { shop: demoAccount(authority, url, extra) } }, 'authority-contract').accounts.shop!;
}

function failureOf(r: LoginResult): LoginFailure {
  assert.equal(r.ok, false, `expected a failure, got a token: ${JSON.stringify(r)}`);
  return (r as Extract<LoginResult, { ok: false }>).failure;
}

function tokenOf(r: LoginResult): IssuedToken {
  assert.equal(r.ok, true, `expected a token, got ${JSON.stringify(r)}`);
  return (r as Extract<LoginResult, { ok: true }>).token;
}

function assertNoSecret(f: LoginFailure, secrets: ReadonlyArray<string>): void {
  const text = JSON.stringify(f);
  for (const s of secrets) assert.ok(!text.includes(s), `the failure shows a secret: ${text}`);
}

/** Registers the demo principal again under id `id` with `changes`; returns the credentials naming it. */
function addVariant(emu: Emulator, authority: EmulatorAuthority, id: string, changes: Record<string, unknown>): Partial<Credentials> {
  const { devices, clients, companies } = DEMO_PRINCIPALS[authority].register;
  if (devices) {
    emu.addDevice({ ...devices[0]!, ...changes, clientId: id } as EmulatorDevice);
    return { clientId: id };
  }
  if (clients) {
    emu.addClient({ ...clients[0]!, ...changes, clientId: id } as EmulatorClient);
    return { clientId: id };
  }
  emu.addCompany({ ...companies![0]!, ...changes, vat: id } as EmulatorCompany);
  return { vat: id };
}

/** One adapter with its emulator, and a login through the real HTTP client. */
interface Bench {
  emu: Emulator;
  adapter: Authority;
  account(extra?: Record<string, unknown>): AccountConfig;
  login(o?: { credentials?: Partial<Credentials>; account?: Record<string, unknown> }): Promise<LoginResult>;
  /** Account settings and credentials for a case: a principal variant is registered first. */
  prepare(c: { credentials?: Partial<Credentials>; account?: Record<string, unknown>; principal?: Record<string, unknown> }): {
    credentials: Partial<Credentials>;
    account: Record<string, unknown>;
  };
  secrets: string[];
  close(): Promise<void>;
}

let variants = 0;

function bench(authority: EmulatorAuthority, options: Omit<EmulatorOptions, 'authority'> = {}): Bench {
  const demo = DEMO_PRINCIPALS[authority];
  const emu = createEmulator({ authority, strict: true, ...demo.register, ...options });
  const http = createHttpClient({ env: {} });
  const adapter = createAuthority(authority, { http, now: Date.now });
  const secretFields = adapter.credentialFields.filter((f) => f.secret).map((f) => f.name);
  return {
    emu,
    adapter,
    account: (extra = {}) => accountOf(authority, emu.url, extra),
    secrets: secretFields.map((f) => (demo.credentials as Record<string, string | undefined>)[f]).filter((s): s is string => typeof s === 'string'),
    login({ credentials = {}, account: extra = {} } = {}) {
      const account = accountOf(authority, emu.url, extra);
      return adapter.login({ account, credentials: { ...demo.credentials, ...credentials }, identity: account.identity });
    },
    prepare({ credentials = {}, account = {}, principal }) {
      const id = `variant-${++variants}`;
      return { credentials: { ...(principal ? addVariant(emu, authority, id, principal) : {}), ...credentials }, account };
    },
    async close() {
      http.close();
      await emu.stop();
    },
  };
}

/** The adapter of `authority`, for what it declares (its HTTP client is never used). */
const adapterOf = (authority: EmulatorAuthority): Authority => createAuthority(authority, { http: createHttpClient({ env: {} }), now: Date.now });

// ---------------------------------------------------------------------------------------------
// The suite

for (const row of ROWS) {
  describe(`${row.authority}: adapter against its strict emulator`, () => {
    // The emulator's own limiter is tested apart (below), with its defaults.
    const b = bench(row.authority, { rateLimitPerMinute: 0 });
    const { emu } = b;
    before(() => emu.start());
    after(() => b.close());
    afterEach(() => emu.clearFaults());

    /** A failure of the expected reason, from exactly `requests` requests, that shows no secret. */
    async function expectFailure(
      r: Promise<LoginResult>,
      reason: FailureReason,
      o: { requests?: number; secrets?: string[] } = {},
    ): Promise<LoginFailure> {
      const before = emu.stats().requests;
      const f = failureOf(await r);
      assert.equal(f.reason, reason, f.message);
      assert.equal(f.code, `ERR_${reason.toUpperCase()}`);
      assert.equal(emu.stats().requests - before, o.requests ?? 1, 'one request, no retry inside the adapter');
      assertNoSecret(f, [...b.secrets, ...(o.secrets ?? [])]);
      return f;
    }

    test('the table covers every documented error', () => {
      const covered = new Set([...row.rejections.map((r) => r.error), ...row.injected.map((i) => i.error)]);
      assert.deepEqual(row.documented.filter((e) => !covered.has(e)), []);
    });

    test('the demo credentials log in over the documented wire; token and lifetime are read', async () => {
      emu.resetStats();
      const t = tokenOf(await b.login());
      assert.equal(t.tokenType, 'Bearer');
      assert.equal(t.expiresInS, row.lifetimeS);
      assert.equal(t.scope, row.scope);
      const claims = decodeJwtClaims(t.accessToken);
      assert.equal(claims?.iss, emu.url, 'the token is this emulator\'s');
      assert.equal((claims?.exp as number) - (claims?.iat as number), t.expiresInS);
      assert.deepEqual(emu.stats().byStatus, { '200': 1 }, 'strict mode accepted the request as it is');
      if (row.authority === 'impact-gr') {
        assert.ok(t.refreshToken, 'a refresh token');
        assert.ok(Math.abs(t.refreshExpiresInS! - 7 * 86_400) <= 5, `refresh lifetime ${t.refreshExpiresInS}`);
      }
    });

    test('the lifetime is the one the answer states, long or short', async () => {
      for (const lifetimeS of [5400, 45]) {
        emu.setFaults({ lifetimeS });
        assert.equal(tokenOf(await b.login()).expiresInS, lifetimeS);
      }
    });

    for (const c of row.acceptances ?? []) {
      test(`accepted: ${c.what}`, async () => {
        const { credentials, account } = b.prepare(c);
        tokenOf(await b.login({ credentials, account }));
      });
    }

    for (const c of row.rejections) {
      test(`rejected: ${c.what} -> credentials_rejected, ${c.error} (${c.status})`, async () => {
        const { credentials, account } = b.prepare(c);
        const wrong = Object.values(c.credentials ?? {}).filter((v): v is string => typeof v === 'string');
        const f = await expectFailure(b.login({ credentials, account }), 'credentials_rejected', { secrets: wrong });
        assert.equal(f.error, c.error);
        assert.equal(f.httpStatus, c.status);
      });
    }

    for (const i of row.injected) {
      const reason = i.reason ?? 'credentials_rejected';
      test(`answered ${i.error} (${i.status ?? 400}) -> ${reason}, code verbatim, echoed secrets redacted`, async () => {
        emu.setFaults({ error: { code: i.error, status: i.status ?? 400, description: `refused; you sent ${b.secrets.join(' and ')}` } });
        const f = await expectFailure(b.login(), reason);
        assert.equal(f.error, i.error);
        assert.equal(f.httpStatus, i.status ?? 400);
        assert.match(f.errorDescription ?? '', /\[redacted\]/);
      });
    }

    for (const c of [{ what: 'no credentials', credentials: undefined }, ...(row.refusedUnsent ?? [])]) {
      test(`refused before sending: ${c.what}`, async () => {
        const demo = DEMO_PRINCIPALS[row.authority].credentials;
        const credentials = c.credentials ?? Object.fromEntries(Object.keys(demo).map((k) => [k, undefined]));
        await expectFailure(b.login({ credentials }), 'credentials_rejected', { requests: 0 });
      });
    }

    test('429 with Retry-After in seconds or as a date -> rate_limited with retryAfterMs', async () => {
      emu.setFaults({ rateLimit: { count: 1, retryAfter: '7' } });
      const s = await expectFailure(b.login(), 'rate_limited');
      assert.equal(s.retryAfterMs, 7_000);
      assert.equal(s.httpStatus, 429);
      emu.setFaults({ rateLimit: { count: 1, retryAfter: new Date(Date.now() + 90_000).toUTCString() } });
      const d = await expectFailure(b.login(), 'rate_limited');
      assert.ok(d.retryAfterMs! > 80_000 && d.retryAfterMs! <= 90_000, `retryAfterMs ${d.retryAfterMs}`);
    });

    test('5xx in the authority\'s shape and as HTML -> upstream_unavailable', async () => {
      for (const status of [503, 500]) {
        emu.setFaults({ fail5xx: 2, status5xx: status });
        for (let n = 0; n < 2; n++) {
          const f = await expectFailure(b.login(), 'upstream_unavailable');
          assert.equal(f.httpStatus, status);
        }
      }
    });

    test('a dropped connection and malformed answers -> upstream_unavailable', async () => {
      emu.setFaults({ drop: 1 });
      assert.equal((await expectFailure(b.login(), 'upstream_unavailable')).httpStatus, undefined);
      emu.setFaults({ malformed: 2 });
      for (const why of [/not valid JSON/, /without|no data|malformed/]) {
        const f = await expectFailure(b.login(), 'upstream_unavailable');
        assert.equal(f.httpStatus, 200);
        assert.match(f.message, why);
      }
      tokenOf(await b.login());
    });

    test('an answer slower than the account\'s timeouts -> upstream_unavailable, on time', async () => {
      emu.setFaults({ latencyMs: 3_000 });
      const started = Date.now();
      const f = await expectFailure(b.login({ account: { timeouts: { responseMs: 300, totalMs: 800 } } }), 'upstream_unavailable');
      assert.match(f.message, /timed out/);
      assert.ok(Date.now() - started < 2_500, `gave up after ${Date.now() - started} ms`);
    });

    if (row.ownLimit !== undefined) {
      const limit = row.ownLimit;
      test(`the emulator's own limit (${limit} a minute) -> rate_limited with its Retry-After`, async (t) => {
        const limited = bench(row.authority);
        await limited.emu.start();
        t.after(() => limited.close());
        for (let n = 0; n < limit; n++) tokenOf(await limited.login());
        const f = failureOf(await limited.login());
        assert.equal(f.reason, 'rate_limited');
        assert.equal(f.httpStatus, 429);
        assert.ok(f.retryAfterMs! > 0 && f.retryAfterMs! <= 60_000, `retryAfterMs ${f.retryAfterMs}`);
        const declared = limited.adapter.loginLimit?.(limited.account(), DEMO_PRINCIPALS[row.authority].credentials);
        if (declared) assert.equal(declared.perMinute, limit, 'the adapter declares the same limit to the token manager');
      });
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Refresh tokens: every adapter that has refresh() (impact-gr)

for (const row of ROWS.filter((r) => adapterOf(r.authority).refresh !== undefined)) {
  describe(`${row.authority}: refresh against its strict emulator`, () => {
    const b = bench(row.authority, { rateLimitPerMinute: 0 });
    const { emu } = b;
    const demo = DEMO_PRINCIPALS[row.authority];
    before(() => emu.start());
    after(() => b.close());
    afterEach(() => emu.clearFaults());

    const refresh = (from: IssuedToken): Promise<LoginResult> => {
      const account = b.account();
      return b.adapter.refresh!({
        account,
        credentials: demo.credentials,
        identity: account.identity,
        refreshToken: from.refreshToken!,
        accessToken: from.accessToken,
      });
    };
    const rejected = async (r: Promise<LoginResult>, secrets: string[]): Promise<void> => {
      const f = failureOf(await r);
      assert.equal(f.reason, 'credentials_rejected', f.message);
      assert.equal(f.httpStatus, 401);
      assertNoSecret(f, [...b.secrets, ...secrets]);
    };

    test('the refresh token from the login renews, and rotates', async () => {
      const first = tokenOf(await b.login());
      const before = emu.stats();
      const second = tokenOf(await refresh(first));
      assert.notEqual(second.accessToken, first.accessToken);
      assert.ok(second.refreshToken && second.refreshToken !== first.refreshToken, 'a new refresh token');
      assert.equal(second.expiresInS, row.lifetimeS);
      assert.equal(emu.stats().refreshed! - before.refreshed!, 1);
      await rejected(refresh(first), [first.refreshToken!, first.accessToken]);
      tokenOf(await refresh(second));
    });

    test('expired refresh tokens -> credentials_rejected (log in again), and the login still works', async () => {
      const held = tokenOf(await b.login());
      assert.ok(emu.expireRefreshTokens() >= 1);
      await rejected(refresh(held), [held.refreshToken!, held.accessToken]);
      tokenOf(await refresh(tokenOf(await b.login())));
    });

    test('the refreshFail knob -> credentials_rejected; the token itself is left valid', async () => {
      const held = tokenOf(await b.login());
      emu.setFaults({ refreshFail: 1 });
      await rejected(refresh(held), [held.refreshToken!]);
      tokenOf(await refresh(held));
    });

    test('a refresh meeting 429 or 5xx backs off (rate_limited, upstream_unavailable) rather than logging in', async () => {
      const held = tokenOf(await b.login());
      emu.setFaults({ rateLimit: { count: 1, retryAfter: '11' } });
      const limited = failureOf(await refresh(held));
      assert.equal(limited.reason, 'rate_limited');
      assert.equal(limited.retryAfterMs, 11_000);
      emu.setFaults({ fail5xx: 1 });
      assert.equal(failureOf(await refresh(held)).reason, 'upstream_unavailable');
      tokenOf(await refresh(held));
    });
  });
}
