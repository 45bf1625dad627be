/**
 * Egypt ETA eInvoicing, "Login as Taxpayer System": POST {identity}/connect/token with the client
 * credentials as HTTP Basic (or in the form body with clientAuth client_secret_post), form body
 * grant_type=client_credentials and an optional scope; an intermediary adds `onbehalfof`. Basic's
 * encoding of the ID and secret: see basicAuthEncoding.
 */
import type { AccountConfig } from '../../config/index.js';
import { CLIENT_CREDENTIAL_FIELDS } from '../oauth-common.js';
import { optionsOf, identityUrl, scope, onbehalfof, clientAuth, basicAuthEncoding, ETA_HINT } from '../options.js';
import type { HttpRequest, HttpResponse } from '../http.js';
import {
  buildClientCredentialsRequest,
  createClientCredentialsAuthority,
  oauthSilentRefusalCauses,
  parseOAuthTokenResponse,
  type BasicAuthPolicy,
} from '../oauth-common.js';
import type { Authority, AuthorityModule, AuthorityDeps, BasicAuthEncoding, Credentials, LoginResult } from '../types.js';

const SERVICE = 'eInvoicing identity service';

const OPTIONS = { identityUrl, scope, onbehalfof, clientAuth, basicAuthEncoding };
const options = (account: AccountConfig) => optionsOf(account, OPTIONS);

/** `encoding`: client_secret_basic's encoding of the ID and secret (default RFC 6749's). */
export function buildTokenRequest(account: AccountConfig, credentials: Credentials, encoding?: BasicAuthEncoding): HttpRequest {
  return buildClientCredentialsRequest(account, credentials, {
    url: `${account.identityUrl}/connect/token`,
    clientAuth: options(account).clientAuth ?? 'client_secret_basic',
    scope: options(account).scope,
    basicAuthEncoding: encoding,
    headers: { onbehalfof: options(account).onbehalfof },
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
  return parseOAuthTokenResponse(res, now, SERVICE, secrets);
}

export function createEtaEinvoicing(deps: AuthorityDeps): Authority {
  return createClientCredentialsAuthority(deps, {
    name: 'eta-einvoicing',
    service: SERVICE,
    buildTokenRequest,
    parseTokenResponse,
    basicAuth: basicAuthPolicy,
    silentRefusalCauses: oauthSilentRefusalCauses,
  });
}

export const etaEinvoicing: AuthorityModule = Object.freeze<AuthorityModule>({
  name: 'eta-einvoicing',
  title: 'Egypt ETA eInvoicing',
  options: OPTIONS,
  endpoint: { option: 'identityUrl', kind: 'base', label: 'Identity service URL', hint: ETA_HINT, paths: ['/connect/token'] },
  api: { hint: 'ETA API: pre-production https://api.preprod.invoicing.eta.gov.eg, production https://api.invoicing.eta.gov.eg', paths: ['/api/v1.0/documentsubmissions'] },
  credentials: CLIENT_CREDENTIAL_FIELDS,
  create: createEtaEinvoicing,
});
