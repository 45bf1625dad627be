/**
 * The oauth2 authority against a real OAuth 2.0 server: oidc-provider on 127.0.0.1, client credentials
 * enabled, one client per client-authentication method, through the real HTTP client.
 *
 * oidc-provider 9 and this agent's options:
 * - `scope`: a scope must be listed in `scopes` and in the client's `scope` to be granted; one listed in
 *   `scopes` but not allowed to the client is invalid_scope; one the server does not know is dropped silently.
 * - `audience`: oidc-provider speaks RFC 8707 `resource`, not `audience`. This server maps the agent's
 *   `audience` form parameter to a resource indicator through `resourceIndicators.defaultResource`, and
 *   `getResourceServerInfo` decides the token (JWT, audience, lifetime) or refuses with invalid_target.
 *   The agent's `resource` option is RFC 8707's own parameter, which oidc-provider reads as it is.
 * - Basic: oidc-provider form-decodes the client ID and secret (RFC 6749 section 2.3.1), the agent's default.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import Provider, { errors, type KoaContextWithOIDC } from 'oidc-provider';
import { createHttpClient, type HttpClient } from '../../src/authorities/http.js';
import { decodeJwtClaims } from '../../src/authorities/oauth-common.js';
import { createOAuth2 } from '../../src/authorities/oauth2/index.js';
import type { Credentials, LoginInterop, LoginResult } from '../../src/authorities/types.js';
import { type AccountConfig } from '../../src/config/index.js';
import { parseConfig } from '../../src/authorities/index.js';
import { failed, succeeded } from '../fixtures/authorities/support.js';

// Secrets with characters that RFC 6749 section 2.3.1 form-encoding must carry through Basic auth
// (printable ASCII only: RFC 6749 appendix A, which oidc-provider enforces). oidc-provider decodes them as
// RFC 6749 says, so the default (basicAuthEncoding auto) must get there with its first request.
const BASIC: Credentials = { clientId: 'pos:basic', clientSecret: 'b@sic s3cret+/=%:~"' };
const BASIC_NO_COLON: Credentials = { clientId: 'pos-basic', clientSecret: 'a:b%2F+c~d/e=f g&h"-9' };
const POST: Credentials = { clientId: 'pos-post', clientSecret: 'p0st s3cret&=+%' };
const AUDIENCE = 'https://api.example.test/einvoice';
const CLIENT_CREDENTIALS_TTL_S = 1234;
const RESOURCE_TOKEN_TTL_S = 300;

describe('oauth2 against oidc-provider', () => {
  let server: Server;
  let tokenUrl: string;

  before(async () => {
    server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const key = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
    const client = (c: Credentials, method: string) => ({
      client_id: c.clientId,
      client_secret: c.clientSecret,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: method,
      id_token_signed_response_alg: 'ES256',
      scope: 'api:read',
    });
    const provider = new Provider(issuer, {
      clients: [client(BASIC, 'client_secret_basic'), client(BASIC_NO_COLON, 'client_secret_basic'), client(POST, 'client_secret_post')],
      scopes: ['api:read', 'api:admin'],
      jwks: { keys: [{ ...key, kid: 'test', use: 'sig', alg: 'ES256' }] },
      ttl: {
        // A resource server's own lifetime wins (a plain number here would override it).
        ClientCredentials: (_ctx: unknown, token: { resourceServer?: { accessTokenTTL?: number } }) =>
          token.resourceServer?.accessTokenTTL ?? CLIENT_CREDENTIALS_TTL_S,
      },
      features: {
        devInteractions: { enabled: false },
        clientCredentials: { enabled: true },
        resourceIndicators: {
          enabled: true,
          defaultResource: (ctx: KoaContextWithOIDC) => {
            const audience = ctx.oidc.body?.audience;
            return typeof audience === 'string' ? audience : undefined;
          },
          getResourceServerInfo: (_ctx: unknown, indicator: string) => {
            if (indicator !== AUDIENCE) throw new errors.InvalidTarget();
            return {
              scope: 'api:read',
              audience: AUDIENCE,
              accessTokenTTL: RESOURCE_TOKEN_TTL_S,
              accessTokenFormat: 'jwt',
              jwt: { sign: { alg: 'ES256' } },
            };
          },
        },
      },
    });
    server.on('request', provider.callback());
    tokenUrl = `${issuer}/token`;
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  function account(extra: Record<string, unknown> = {}): AccountConfig {
    return parseConfig({ accounts: { a: { authority: 'oauth2', tokenUrl, ...extra } } }, 'test').accounts.a!;
  }

  const login = (credentials: Credentials, extra: Record<string, unknown> = {}): Promise<LoginResult> =>
    createOAuth2({ http: createHttpClient(), now: Date.now }).login({ account: account(extra), credentials, identity: {} });

  /** A login through an HttpClient that counts the requests. */
  async function counted(credentials: Credentials, extra: Record<string, unknown> = {}, interop?: LoginInterop) {
    const inner = createHttpClient();
    let requests = 0;
    const http: HttpClient = { request: (req) => (requests++, inner.request(req)) };
    try {
      const result = await createOAuth2({ http, now: Date.now }).login({ account: account(extra), credentials, identity: {}, ...(interop ? { interop } : {}) });
      return { result, requests };
    } finally {
      inner.close();
    }
  }

  test('the default Basic encoding (auto) is RFC 6749 first: one request for a secret full of : % + ~ / = and a space', async () => {
    for (const creds of [BASIC, BASIC_NO_COLON]) {
      const { result, requests } = await counted(creds, { scope: 'api:read' });
      assert.equal(succeeded(result).scope, 'api:read');
      assert.deepEqual(result.ok && result.interop, { basicAuthEncoding: 'rfc6749' });
      assert.equal(requests, 1, 'no second request with a server that decodes');
    }
  });

  test('a stale learned plain encoding: refused (invalid_client), RFC 6749 once, and that is reported', async () => {
    const { result, requests } = await counted(BASIC_NO_COLON, { scope: 'api:read' }, { basicAuthEncoding: 'plain' });
    assert.deepEqual(result.ok && result.interop, { basicAuthEncoding: 'rfc6749' });
    assert.equal(requests, 2);
  });

  test('basicAuthEncoding plain against a server that decodes: invalid_client, one request', async () => {
    const { result, requests } = await counted(BASIC_NO_COLON, { scope: 'api:read', basicAuthEncoding: 'plain' });
    const f = failed(result);
    assert.equal(f.error, 'invalid_client');
    assert.equal(f.httpStatus, 401);
    assert.equal(requests, 1);
    assert.ok(!JSON.stringify(f).includes(BASIC_NO_COLON.clientSecret!));
  });

  test('resource (RFC 8707) is what oidc-provider reads natively: the JWT is for that resource', async () => {
    const token = succeeded(await login(BASIC, { scope: 'api:read', resource: AUDIENCE }));
    assert.equal(token.expiresInS, RESOURCE_TOKEN_TTL_S);
    assert.equal(decodeJwtClaims(token.accessToken)?.aud, AUDIENCE);
    const f = failed(await login(BASIC, { resource: 'https://elsewhere.example.test/' }));
    assert.equal(f.error, 'invalid_target');
  });

  test('client_secret_basic with a scope: a token with its lifetime and scope', async () => {
    const token = succeeded(await login(BASIC, { scope: 'api:read' }));
    assert.equal(token.tokenType, 'Bearer');
    assert.equal(token.expiresInS, CLIENT_CREDENTIALS_TTL_S);
    assert.equal(token.scope, 'api:read');
    assert.ok(token.accessToken.length >= 32);
  });

  test('client_secret_post with a scope', async () => {
    const token = succeeded(await login(POST, { clientAuth: 'client_secret_post', scope: 'api:read' }));
    assert.equal(token.expiresInS, CLIENT_CREDENTIALS_TTL_S);
    assert.equal(token.scope, 'api:read');
  });

  test('without a scope', async () => {
    const token = succeeded(await login(BASIC));
    assert.equal(token.expiresInS, CLIENT_CREDENTIALS_TTL_S);
    assert.equal(token.scope, undefined);
  });

  test('a wrong secret is credentials_rejected with invalid_client (both methods)', async () => {
    for (const [creds, extra] of [
      [BASIC, {}],
      [POST, { clientAuth: 'client_secret_post' }],
    ] as const) {
      const f = failed(await login({ ...creds, clientSecret: 'wrong-secret' }, extra));
      assert.equal(f.reason, 'credentials_rejected');
      assert.equal(f.httpStatus, 401);
      assert.equal(f.error, 'invalid_client');
      assert.ok(!JSON.stringify(f).includes('wrong-secret'));
    }
  });

  test('a scope the client may not ask for is credentials_rejected with invalid_scope', async () => {
    const f = failed(await login(BASIC, { scope: 'api:read api:admin' }));
    assert.equal(f.reason, 'credentials_rejected');
    assert.equal(f.httpStatus, 400);
    assert.equal(f.error, 'invalid_scope');
    assert.match(f.message, /check the account's scope$/);
  });

  test('a scope the server does not know is dropped by oidc-provider, and the granted scope says so', async () => {
    const token = succeeded(await login(BASIC, { scope: 'api:read no-such-scope' }));
    assert.equal(token.scope, 'api:read');
  });

  test('audience becomes the JWT access token audience, with the resource server lifetime', async () => {
    const token = succeeded(await login(POST, { clientAuth: 'client_secret_post', scope: 'api:read', audience: AUDIENCE }));
    assert.equal(token.expiresInS, RESOURCE_TOKEN_TTL_S);
    assert.equal(token.scope, 'api:read');
    const claims = decodeJwtClaims(token.accessToken);
    assert.equal(claims?.aud, AUDIENCE);
    assert.equal(claims?.client_id, POST.clientId);
    assert.equal(claims?.scope, 'api:read');
  });

  test('an audience the server does not serve is credentials_rejected with invalid_target', async () => {
    const f = failed(await login(BASIC, { audience: 'https://elsewhere.example.test/' }));
    assert.equal(f.reason, 'credentials_rejected');
    assert.equal(f.error, 'invalid_target');
    assert.match(f.message, /check the account's audience$/);
  });

  test('a wrong tokenUrl is upstream_unavailable naming tokenUrl', async () => {
    const f = failed(
      await createOAuth2({ http: createHttpClient(), now: Date.now }).login({
        account: parseConfig({ accounts: { a: { authority: 'oauth2', tokenUrl: `${tokenUrl}/nope` } } }, 'test').accounts.a!,
        credentials: BASIC,
        identity: {},
      }),
    );
    assert.equal(f.reason, 'upstream_unavailable');
    assert.equal(f.httpStatus, 404);
    assert.match(f.message, /\(check tokenUrl\)/);
  });
});
