/**
 * Any OAuth 2.0 token endpoint, client credentials grant (RFC 6749 section 4.4): POST {tokenUrl}
 * with the client authenticated by HTTP Basic (client_secret_basic, the default) or in the form
 * body (client_secret_post), an optional scope and an optional `audience` form parameter.
 */
import type { AccountConfig } from '../config/index.js';
import type { HttpRequest, HttpResponse } from './http.js';
import { buildClientCredentialsRequest, createClientCredentialsAuthority, parseOAuthTokenResponse } from './oauth-common.js';
import type { Authority, AuthorityDeps, Credentials, LoginResult } from './types.js';

const SERVICE = 'OAuth 2.0 token endpoint';

export function buildTokenRequest(account: AccountConfig, credentials: Credentials): HttpRequest {
  return buildClientCredentialsRequest(account, credentials, {
    // The endpoint exactly as configured (config keeps a query string; identityUrl is a trimmed copy).
    url: account.tokenUrl ?? account.identityUrl,
    clientAuth: account.clientAuth ?? 'client_secret_basic',
    scope: account.scope,
    audience: account.audience,
  });
}

/** `secrets`: values to redact should the answer echo them. */
export function parseTokenResponse(res: HttpResponse, now: number, secrets: ReadonlyArray<string | undefined> = []): LoginResult {
  return parseOAuthTokenResponse(res, now, SERVICE, secrets, 'tokenUrl');
}

export function createOAuth2(deps: AuthorityDeps): Authority {
  return createClientCredentialsAuthority(deps, { name: 'oauth2', service: SERVICE, buildTokenRequest, parseTokenResponse });
}
