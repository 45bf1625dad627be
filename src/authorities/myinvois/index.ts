/**
 * Malaysia LHDN MyInvois, "Login as Taxpayer System": POST {identity}/connect/token, form body
 * client_id, client_secret, grant_type=client_credentials and an optional scope; an intermediary
 * adds `onbehalfof: TIN` or `TIN:ROB`. Logins are limited to 12 a minute per client ID, and
 * calling with empty or placeholder credentials can get the client blocked: such credentials are
 * refused here without a request.
 */
import type { AccountConfig } from '../../config/index.js';
import { CLIENT_CREDENTIAL_FIELDS } from '../oauth-common.js';
import { optionsOf, identityUrl, scope, onbehalfof } from '../options.js';
import type { HttpRequest, HttpResponse } from '../http.js';
import {
  buildClientCredentialsRequest,
  createClientCredentialsAuthority,
  parseOAuthTokenResponse,
  placeholderProblem,
} from '../oauth-common.js';
import { failure, type Authority,
  type AuthorityModule, type AuthorityDeps, type Credentials, type LoginResult } from '../types.js';

const SERVICE = 'MyInvois identity service';

const OPTIONS = { identityUrl, scope, onbehalfof };
const options = (account: AccountConfig) => optionsOf(account, OPTIONS);
export const DEFAULT_LOGINS_PER_MINUTE = 12;

export function buildTokenRequest(account: AccountConfig, credentials: Credentials): HttpRequest {
  return buildClientCredentialsRequest(account, credentials, {
    url: `${account.identityUrl}/connect/token`,
    clientAuth: 'client_secret_post',
    scope: options(account).scope,
    headers: { onbehalfof: options(account).onbehalfof },
  });
}

/**
 * The standard OAuth answer; the documented `unauthorised_client` is treated as
 * `unauthorized_client` and kept verbatim in `error`. `secrets` are redacted should the answer echo them.
 */
export function parseTokenResponse(res: HttpResponse, now: number, secrets: ReadonlyArray<string | undefined> = []): LoginResult {
  return parseOAuthTokenResponse(res, now, SERVICE, secrets);
}

/** credentials_rejected when a credential looks empty or like a placeholder (never quoting it). */
export function checkCredentials(credentials: Credentials): LoginResult | undefined {
  for (const field of ['clientId', 'clientSecret'] as const) {
    const problem = placeholderProblem(credentials[field]);
    if (problem) {
      return failure(
        'credentials_rejected',
        `${field} ${problem}; not sent, as MyInvois can block a client that logs in with placeholder credentials (run provision)`,
      );
    }
  }
  return undefined;
}

/** 12 logins a minute (or the account's loginsPerMinute) per client ID at one identity service. */
export function loginLimit(account: AccountConfig, credentials: Credentials): { key: string; perMinute: number } {
  return {
    key: `myinvois ${account.identityUrl} ${credentials.clientId ?? ''}`,
    perMinute: typeof account.loginsPerMinute === 'number' ? account.loginsPerMinute : DEFAULT_LOGINS_PER_MINUTE,
  };
}

export function createMyInvois(deps: AuthorityDeps): Authority {
  return createClientCredentialsAuthority(deps, {
    name: 'myinvois',
    service: SERVICE,
    buildTokenRequest,
    parseTokenResponse,
    precheck: checkCredentials,
    silentRefusalCauses: (account) => [
      'a wrong client ID or secret (provision again)',
      ...(options(account).scope === undefined ? [] : ['the scope is not one this client may ask for (check scope)']),
    ],
    loginLimit,
  });
}

export const myinvois: AuthorityModule = Object.freeze<AuthorityModule>({
  name: 'myinvois',
  title: 'Malaysia LHDN MyInvois',
  options: OPTIONS,
  endpoint: {
    option: 'identityUrl',
    kind: 'base',
    label: 'Identity service URL',
    hint: 'MyInvois identity service: sandbox https://preprod-api.myinvois.hasil.gov.my, production https://api.myinvois.hasil.gov.my',
    paths: ['/connect/token'],
  },
  limits: { loginsPerMinute: { default: DEFAULT_LOGINS_PER_MINUTE } },
  api: { hint: 'MyInvois API: sandbox https://preprod-api.myinvois.hasil.gov.my, production https://api.myinvois.hasil.gov.my', paths: ['/api/v1.0/documentsubmissions'] },
  credentials: CLIENT_CREDENTIAL_FIELDS,
  create: createMyInvois,
});
