/**
 * What every authority's emulator shares, run against each one with its demo principal: the fault knobs
 * (answered in that authority's own error shape), the lifetime override, 405/413, stats, admin info,
 * same-port restart, and the option checks.
 */
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { after, afterEach, before, describe, test } from 'node:test';
import { FakeClock } from '../../src/lib/clock.js';
import {
  AUTHORITIES,
  createEmulator,
  DEMO_PRINCIPALS,
  TOKEN_PATHS,
  type Emulator,
  type EmulatorAuthority,
} from '../../src/emulator/index.js';

const FORM = 'application/x-www-form-urlencoded';
const DEFAULT_LIFETIME: Record<EmulatorAuthority, number> = {
  'eta-ereceipt': 3600,
  'eta-einvoicing': 3600,
  myinvois: 3600,
  'impact-gr': 900,
  sepay: 86400,
  oauth2: 3600,
};

type Shape = 'oauth' | 'sepay' | 'problem';
const SHAPE: Record<EmulatorAuthority, Shape> = {
  'eta-ereceipt': 'oauth',
  'eta-einvoicing': 'oauth',
  myinvois: 'oauth',
  oauth2: 'oauth',
  sepay: 'sepay',
  'impact-gr': 'problem',
};

/** The demo principal's login, as headers and body, built from DEMO_PRINCIPALS alone. */
function demoLogin(authority: EmulatorAuthority): { headers: Record<string, string>; body: string } {
  const { credentials: c, account } = DEMO_PRINCIPALS[authority];
  const basic = `Basic ${Buffer.from(`${c.clientId}:${c.clientSecret}`).toString('base64')}`;
  switch (authority) {
    case 'eta-ereceipt':
      return {
        headers: {
          'content-type': FORM,
          posserial: account.identity!.posserial,
          pososversion: account.identity!.pososversion!,
          posmodelframework: account.identity!.posmodelframework!,
          presharedkey: c.presharedKey!,
        },
        body: new URLSearchParams({ grant_type: 'client_credentials', client_id: c.clientId!, client_secret: c.clientSecret! }).toString(),
      };
    case 'myinvois':
      return {
        headers: { 'content-type': FORM },
        body: new URLSearchParams({ grant_type: 'client_credentials', client_id: c.clientId!, client_secret: c.clientSecret! }).toString(),
      };
    case 'eta-einvoicing':
    case 'oauth2':
      return { headers: { 'content-type': FORM, authorization: basic }, body: 'grant_type=client_credentials' };
    case 'sepay':
      return { headers: { authorization: basic }, body: '' };
    case 'impact-gr':
      return { headers: { 'content-type': 'application/json' }, body: JSON.stringify({ vat: c.vat, key: c.apiKey }) };
  }
}

function tokenOf(authority: EmulatorAuthority, body: unknown): string | undefined {
  const b = body as Record<string, unknown>;
  if (SHAPE[authority] === 'sepay') return (b.data as Record<string, unknown> | undefined)?.access_token as string | undefined;
  return (authority === 'impact-gr' ? b.accessToken : b.access_token) as string | undefined;
}

/** The error code in the authority's own shape. */
function codeOf(shape: Shape, body: unknown): string {
  const b = body as Record<string, unknown>;
  if (shape === 'sepay') {
    assert.equal(b.success, false);
    return (b.error as { code: string }).code;
  }
  if (shape === 'problem') {
    assert.equal(typeof b.status, 'number');
    return b.title as string;
  }
  assert.equal(typeof b.error_description, 'string');
  return b.error as string;
}

function lifetimeOf(token: string): number {
  const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as { exp: number; iat: number };
  return claims.exp - claims.iat;
}

for (const authority of AUTHORITIES) {
  describe(`${authority}: faults and shared behaviour`, () => {
    const clock = new FakeClock();
    const demo = DEMO_PRINCIPALS[authority];
    const shape = SHAPE[authority];
    const emu = createEmulator({ authority, ...demo.register, clock, rateLimitPerMinute: 0 });
    const go = (method = 'POST', extraBody = ''): Promise<Response> => {
      const { headers, body } = demoLogin(authority);
      const init: RequestInit = { method, headers };
      if (method === 'POST') init.body = body + extraBody;
      return fetch(`${emu.url}${emu.paths.token}`, init);
    };
    const error = async (res: Response, status: number): Promise<string> => {
      const text = await res.text();
      assert.equal(res.status, status, text);
      return codeOf(shape, JSON.parse(text));
    };
    before(() => emu.start());
    after(() => emu.stop());
    afterEach(() => {
      emu.clearFaults();
      emu.resetStats();
    });

    test('the demo principal logs in with the default lifetime', async () => {
      assert.deepEqual(emu.paths, TOKEN_PATHS[authority]);
      assert.equal(demo.account.tokenPath, emu.paths.token);
      const res = await go();
      const body = (await res.json()) as Record<string, unknown>;
      assert.equal(res.status, 200, JSON.stringify(body));
      assert.equal(lifetimeOf(tokenOf(authority, body)!), DEFAULT_LIFETIME[authority]);
    });

    test('rateLimit: 429 with the Retry-After given, in the authority\'s shape', async () => {
      emu.setFaults({ rateLimit: { count: 1, retryAfter: '7' } });
      const res = await go();
      assert.equal(res.headers.get('retry-after'), '7');
      const code = await error(res, 429);
      assert.equal(code, { oauth: 'rate_limited', sepay: 'TOO_MANY_REQUESTS', problem: 'Too Many Requests' }[shape]);
      assert.equal((await go()).status, 200);
    });

    test('fail5xx: the authority\'s JSON shape, then HTML, then recovery', async () => {
      emu.setFaults({ fail5xx: 2, status5xx: 502 });
      const code = await error(await go(), 502);
      assert.equal(code, { oauth: 'server_error', sepay: 'BAD_GATEWAY', problem: 'Bad Gateway' }[shape]);
      const html = await go();
      assert.equal(html.status, 502);
      assert.match(await html.text(), /<html>/);
      assert.equal((await go()).status, 200);
      assert.deepEqual(emu.stats().byStatus, { '502': 2, '200': 1 });
    });

    test('malformed: a body that is not JSON, then JSON without the token', async () => {
      emu.setFaults({ malformed: 2 });
      const a = await go();
      assert.equal(a.status, 200);
      const text = await a.text();
      assert.throws(() => JSON.parse(text));
      const b = await go();
      assert.equal(b.status, 200);
      assert.equal(tokenOf(authority, await b.json()), undefined);
      assert.equal(emu.stats().issued, 0);
    });

    test('error: any code and status, in the authority\'s shape', async () => {
      emu.setFaults({ error: { code: 'X_INJECTED', description: 'injected here', count: 1, status: 401 } });
      assert.equal(await error(await go(), 401), 'X_INJECTED');
      emu.setFaults({ error: { code: 'invalid_grant' } });
      assert.equal(await error(await go(), 400), 'invalid_grant');
      assert.equal(await error(await go(), 400), 'invalid_grant', 'without a count: until cleared');
    });

    test('drop: the connection is cut without an answer', async () => {
      emu.setFaults({ drop: 1 });
      const { headers, body } = demoLogin(authority);
      await assert.rejects(
        new Promise((resolve, reject) => {
          const req = httpRequest(`${emu.url}${emu.paths.token}`, { method: 'POST', headers, agent: false }, resolve);
          req.on('error', reject);
          req.end(body);
        }),
      );
      assert.equal(emu.stats().byStatus.dropped, 1);
      assert.equal((await go()).status, 200);
    });

    test('latency: the answer waits on the clock', async () => {
      emu.setFaults({ latencyMs: 10_000 });
      const waiting = clock.waitForTimer();
      let settled = false;
      const pending = go().then((r) => ((settled = true), r));
      await waiting;
      assert.equal(settled, false);
      await clock.advance(10_000);
      assert.equal((await pending).status, 200);
    });

    test('lifetimeS overrides the token lifetime while set', async () => {
      emu.setFaults({ lifetimeS: 5 });
      const body = (await (await go()).json()) as Record<string, unknown>;
      assert.equal(lifetimeOf(tokenOf(authority, body)!), 5);
      const expiresIn = shape === 'sepay' ? (body.data as { expires_in: number }).expires_in : body.expires_in;
      if (authority !== 'impact-gr') assert.equal(expiresIn, 5);
    });

    test('405 and 413 in the authority\'s shape; stats redact credentials', async () => {
      const get = await go('GET');
      assert.equal(get.headers.get('allow'), 'POST');
      await error(get, 405);
      await error(await go('POST', `&pad=${'x'.repeat(17 * 1024)}`), 413);
      await (await go()).arrayBuffer();
      const stats = emu.stats();
      assert.equal(stats.requests, 3);
      assert.equal(stats.rejected, 2);
      assert.equal(stats.refreshed, authority === 'impact-gr' ? 0 : undefined);
      const seen = JSON.stringify(stats.lastRequestHeaders);
      for (const secret of [demo.credentials.clientSecret, demo.credentials.presharedKey, demo.credentials.apiKey]) {
        if (secret) assert.ok(!seen.includes(secret));
      }
      if (stats.lastRequestHeaders?.authorization) assert.equal(stats.lastRequestHeaders.authorization, '[redacted]');
    });

    test('admin: info names the authority, paths and principal kind; refreshFail only where there are refresh tokens', async () => {
      const info = (await (await fetch(`${emu.url}/_emulator/info`)).json()) as Record<string, unknown>;
      assert.deepEqual(info, {
        authority,
        strict: true,
        paths: TOKEN_PATHS[authority],
        principals: Object.keys(demo.register)[0],
      });
      const res = await fetch(`${emu.url}/_emulator/faults`, { method: 'POST', body: JSON.stringify({ refreshFail: 1 }) });
      assert.equal(res.status, authority === 'impact-gr' ? 200 : 400);
      await res.arrayBuffer();
      if (authority !== 'impact-gr') {
        assert.throws(() => emu.setFaults({ refreshFail: 1 }), /only impact-gr/);
        assert.throws(() => emu.expireRefreshTokens(), TypeError);
      }
    });
  });
}

describe('options', () => {
  test('an unknown authority, another authority\'s principals, bad numbers: TypeError', () => {
    assert.throws(() => createEmulator({ authority: 'nope' as EmulatorAuthority }), /authority: expected one of/);
    assert.throws(
      () => createEmulator({ authority: 'myinvois', ...DEMO_PRINCIPALS['eta-ereceipt'].register }),
      /devices\[0\]: the myinvois emulator registers clients, not devices/,
    );
    assert.throws(() => createEmulator({ authority: 'sepay', clients: [{ clientId: 'x', clientSecrets: [] }] }), /clients\[0\]\.clientSecrets/);
    assert.throws(() => createEmulator({ authority: 'impact-gr', refreshLifetimeS: -1 }), /refreshLifetimeS/);
  });

  test('refreshLifetimeS and rateLimitPerMinute are honoured for impact-gr', async () => {
    const clock = new FakeClock();
    const demo = DEMO_PRINCIPALS['impact-gr'];
    const emu = createEmulator({ authority: 'impact-gr', ...demo.register, clock, refreshLifetimeS: 60, rateLimitPerMinute: 1 });
    await emu.start();
    try {
      const { headers, body } = demoLogin('impact-gr');
      const first = await fetch(`${emu.url}/Authentication/login`, { method: 'POST', headers, body });
      const t = (await first.json()) as { accessToken: string; refreshToken: { token: string; expiresAt: string } };
      assert.equal(Date.parse(t.refreshToken.expiresAt) - clock.now(), 60_000);
      const second = await fetch(`${emu.url}/Authentication/login`, { method: 'POST', headers, body });
      assert.equal(second.status, 429);
      assert.equal(second.headers.get('retry-after'), '60');
      await second.arrayBuffer();
    } finally {
      await emu.stop();
    }
  });

  test('stop() then start() keeps the port for every authority', async () => {
    const emu = createEmulator({ authority: 'sepay', ...DEMO_PRINCIPALS.sepay.register });
    await emu.start();
    const { port } = emu;
    await emu.stop();
    await emu.start();
    try {
      assert.equal(emu.port, port);
      const { headers } = demoLogin('sepay');
      assert.equal((await fetch(`${emu.url}/v1/token`, { method: 'POST', headers })).status, 200);
    } finally {
      await emu.stop();
    }
  });
});
