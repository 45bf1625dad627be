/**
 * Any OAuth 2.0 token endpoint, client credentials grant (RFC 6749 section 4.4): POST {tokenUrl}
 * with the client authenticated by HTTP Basic (client_secret_basic, the default) or in the form
 * body (client_secret_post), an optional scope and an optional `audience` form parameter.
 */
import type { AccountConfig } from '../../config/index.js';
import { CLIENT_CREDENTIAL_FIELDS } from '../oauth-common.js';
import { optionsOf, tokenUrl, scope, audience, clientAuth } from '../options.js';
import type { HttpRequest, HttpResponse } from '../http.js';
import { buildClientCredentialsRequest, createClientCredentialsAuthority, parseOAuthTokenResponse } from '../oauth-common.js';
import type { Authority, AuthorityModule, AuthorityDeps, Credentials, LoginResult } from '../types.js';

const SERVICE = 'OAuth 2.0 token endpoint';

const OPTIONS = { tokenUrl, scope, audience, clientAuth };
const options = (account: AccountConfig) => optionsOf(account, OPTIONS);

export function buildTokenRequest(account: AccountConfig, credentials: Credentials): HttpRequest {
  return buildClientCredentialsRequest(account, credentials, {
    // The endpoint exactly as configured (config keeps a query string; identityUrl is a trimmed copy).
    url: options(account).tokenUrl ?? account.identityUrl,
    clientAuth: options(account).clientAuth ?? 'client_secret_basic',
    scope: options(account).scope,
    audience: options(account).audience,
  });
}

/** `secrets`: values to redact should the answer echo them. */
export function parseTokenResponse(res: HttpResponse, now: number, secrets: ReadonlyArray<string | undefined> = []): LoginResult {
  return parseOAuthTokenResponse(res, now, SERVICE, secrets, 'tokenUrl');
}

export function createOAuth2(deps: AuthorityDeps): Authority {
  return createClientCredentialsAuthority(deps, { name: 'oauth2', service: SERVICE, buildTokenRequest, parseTokenResponse });
}

export const oauth2: AuthorityModule = Object.freeze<AuthorityModule>({
  name: 'oauth2',
  title: 'Any OAuth 2.0 token endpoint (client credentials)',
  options: OPTIONS,
  endpoint: {
    option: 'tokenUrl',
    kind: 'endpoint',
    label: 'Token endpoint URL',
    hint: 'For oauth2 give the token endpoint itself, e.g. https://login.example.com/oauth2/token',
    paths: [],
  },
  credentials: CLIENT_CREDENTIAL_FIELDS,
  create: createOAuth2,
});
