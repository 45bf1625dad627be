/**
 * Any OAuth 2.0 token endpoint, client credentials grant (RFC 6749 section 4.4): POST {tokenUrl}
 * with the client authenticated by HTTP Basic (client_secret_basic, the default) or in the form
 * body (client_secret_post), an optional scope, an optional `audience` form parameter (Auth0 style) and
 * optional RFC 8707 `resource` indicators. Basic's encoding of the ID and secret: see basicAuthEncoding.
 */
import type { AccountConfig } from '../../config/index.js';
import { CLIENT_CREDENTIAL_FIELDS } from '../oauth-common.js';
import { optionsOf, tokenUrl, scope, audience, resource, clientAuth, basicAuthEncoding } from '../options.js';
import type { HttpRequest, HttpResponse } from '../http.js';
import {
  buildClientCredentialsRequest,
  createClientCredentialsAuthority,
  oauthSilentRefusalCauses,
  parseOAuthTokenResponse,
  type BasicAuthPolicy,
} from '../oauth-common.js';
import type { Authority, AuthorityModule, AuthorityDeps, BasicAuthEncoding, Credentials, LoginResult } from '../types.js';

const SERVICE = 'OAuth 2.0 token endpoint';

const OPTIONS = { tokenUrl, scope, audience, resource, clientAuth, basicAuthEncoding };
const options = (account: AccountConfig) => optionsOf(account, OPTIONS);

/** `encoding`: client_secret_basic's encoding of the ID and secret (default RFC 6749's). */
export function buildTokenRequest(account: AccountConfig, credentials: Credentials, encoding?: BasicAuthEncoding): HttpRequest {
  const o = options(account);
  return buildClientCredentialsRequest(account, credentials, {
    // The endpoint exactly as configured (config keeps a query string; identityUrl is a trimmed copy).
    url: o.tokenUrl ?? account.identityUrl,
    clientAuth: o.clientAuth ?? 'client_secret_basic',
    scope: o.scope,
    audience: o.audience,
    resource: o.resource,
    basicAuthEncoding: encoding,
  });
}

/** client_secret_basic (the default) with the account's basicAuthEncoding; RFC 6749's encoding first. */
export function basicAuthPolicy(account: AccountConfig): BasicAuthPolicy | undefined {
  const o = options(account);
  if ((o.clientAuth ?? 'client_secret_basic') !== 'client_secret_basic') return undefined;
  return { mode: o.basicAuthEncoding ?? 'auto', preferred: 'rfc6749' };
}

/** `secrets`: values to redact should the answer echo them. */
export function parseTokenResponse(res: HttpResponse, now: number, secrets: ReadonlyArray<string | undefined> = []): LoginResult {
  return parseOAuthTokenResponse(res, now, SERVICE, secrets, 'tokenUrl');
}

export function createOAuth2(deps: AuthorityDeps): Authority {
  return createClientCredentialsAuthority(deps, {
    name: 'oauth2',
    service: SERVICE,
    buildTokenRequest,
    parseTokenResponse,
    basicAuth: basicAuthPolicy,
    silentRefusalCauses: oauthSilentRefusalCauses,
  });
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
  api: { paths: [] },
  credentials: CLIENT_CREDENTIAL_FIELDS,
  create: createOAuth2,
});
