/**
 * Vietnam SePay eInvoice, "Create Authentication Token": POST {base}/v1/token with HTTP Basic
 * client_id:client_secret and an empty body. Answers are wrapped:
 * `{"success": true, "data": {access_token, token_type, expires_in}}` or
 * `{"success": false, "error": {"code", "message"}}`.
 */
import type { AccountConfig } from '../../config/index.js';
import { CLIENT_CREDENTIAL_FIELDS } from '../oauth-common.js';
import { basicAuthEncoding, identityUrl, optionsOf } from '../options.js';
import type { HttpRequest, HttpResponse } from '../http.js';
import {
  basicAuth,
  type BasicAuthPolicy,
  buildRequest,
  createClientCredentialsAuthority,
  failureForStatus,
  isRecord,
  parseJsonBody,
  readErrorDetails,
  readTokenObject,
} from '../oauth-common.js';
import { failure, type Authority,
  type AuthorityModule, type AuthorityDeps, type BasicAuthEncoding, type Credentials, type LoginResult } from '../types.js';

const SERVICE = 'SePay eInvoice API';

const OPTIONS = { identityUrl, basicAuthEncoding };

/**
 * `encoding`: SePay documents base64(client_id:client_secret) as is (RFC 7617, the default here), not
 * OAuth's form-encoding.
 */
export function buildTokenRequest(account: AccountConfig, credentials: Credentials, encoding: BasicAuthEncoding = 'plain'): HttpRequest {
  return buildRequest(account, `${account.identityUrl}/v1/token`, {
    headers: {
      accept: 'application/json',
      authorization: basicAuth(credentials.clientId ?? '', credentials.clientSecret ?? '', encoding),
    },
    body: '',
  });
}

/** Always Basic, with the account's basicAuthEncoding; the documented plain encoding first. */
export function basicAuthPolicy(account: AccountConfig): BasicAuthPolicy {
  return { mode: optionsOf(account, OPTIONS).basicAuthEncoding ?? 'auto', preferred: 'plain' };
}

/**
 * 200 with success:true and a token in `data`; 400 (bad parameters) and 401 (whatever its code
 * says) are credentials_rejected; 429 rate_limited; anything else upstream_unavailable. The error's
 * `code` is kept verbatim in `error`, its (Vietnamese) message in `errorDescription`.
 */
export function parseTokenResponse(res: HttpResponse, now: number, secrets: ReadonlyArray<string | undefined> = []): LoginResult {
  if (res.status !== 200) {
    return failureForStatus(res, now, SERVICE, readErrorDetails(res, secrets), { expected: 'an error object' });
  }
  const body = parseJsonBody(res);
  if (!body.ok) return failure('upstream_unavailable', `${SERVICE} answered 200 with ${body.why}`, { httpStatus: 200 });
  const value = body.value;
  if (!isRecord(value) || value.success !== true) {
    const details = readErrorDetails(res, secrets);
    const said = details.error ?? details.errorDescription;
    return failure('upstream_unavailable', `${SERVICE} answered 200 without success:true${said ? ` (${said})` : ''}`, {
      httpStatus: 200,
      ...details,
    });
  }
  if (!isRecord(value.data)) {
    return failure('upstream_unavailable', `${SERVICE} answered 200 with success:true but no data (malformed answer)`, { httpStatus: 200 });
  }
  const token = readTokenObject(value.data);
  if (!token.ok) {
    return failure('upstream_unavailable', `${SERVICE} answered 200 with ${token.why} in data (malformed answer)`, { httpStatus: 200 });
  }
  return token;
}

export function createSepay(deps: AuthorityDeps): Authority {
  return createClientCredentialsAuthority(deps, {
    name: 'sepay',
    service: SERVICE,
    buildTokenRequest,
    parseTokenResponse,
    basicAuth: basicAuthPolicy,
    silentRefusalCauses: () => ['a wrong client ID or secret (provision again)'],
  });
}

export const sepay: AuthorityModule = Object.freeze<AuthorityModule>({
  name: 'sepay',
  title: 'Vietnam SePay eInvoice',
  options: OPTIONS,
  endpoint: {
    option: 'identityUrl',
    kind: 'base',
    label: 'API base URL',
    hint: 'SePay eInvoice API: sandbox https://einvoice-api-sandbox.sepay.vn, production https://einvoice-api.sepay.vn',
    paths: ['/v1/token'],
  },
  api: { hint: 'SePay API: sandbox https://einvoice-api-sandbox.sepay.vn, production https://einvoice-api.sepay.vn', paths: [] },
  credentials: CLIENT_CREDENTIAL_FIELDS,
  create: createSepay,
});
