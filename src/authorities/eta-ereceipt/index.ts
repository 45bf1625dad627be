/**
 * Egypt ETA eReceipt, "Authenticate POS": POST {identity}/connect/token, form body with the
 * client credentials, and the device headers posserial, pososversion, posmodelframework and
 * presharedkey (each left out when it has no value).
 */
import type { AccountConfig } from '../../config/index.js';
import type { HttpRequest, HttpResponse } from '../http.js';
import {
  buildClientCredentialsRequest,
  missingCredentials,
  parseOAuthTokenResponse,
  sendTokenRequest,
} from '../oauth-common.js';
import { CLIENT_ID, CLIENT_SECRET, ETA_HINT, identityUrl } from '../options.js';
import type { Authority, AuthorityDeps, AuthorityModule, CredentialField, Credentials, DeviceIdentity, LoginResult } from '../types.js';

export {
  completeEtaReceipt,
  EtaReceiptError,
  etaReceiptUuid,
  receiptHeaderString,
  serializeEtaReceipt,
  withReceiptHeader,
  type CompletedReceipt,
  type ReceiptHeaderFields,
} from './serialize.js';
export { memberOf, parseVerbatim, stringifyVerbatim, VerbatimJsonError, type VerbatimValue } from './verbatim-json.js';

const SERVICE = 'eReceipt identity service';

export function buildTokenRequest(
  account: AccountConfig,
  credentials: Credentials,
  identity: DeviceIdentity,
): HttpRequest {
  return buildClientCredentialsRequest(account, credentials, {
    url: `${account.identityUrl}/connect/token`,
    clientAuth: 'client_secret_post',
    headers: {
      posserial: identity.posserial,
      pososversion: identity.pososversion,
      posmodelframework: identity.posmodelframework,
      presharedkey: credentials.presharedKey,
    },
  });
}

/** `secrets`: values to redact should the answer echo them. */
export function parseTokenResponse(res: HttpResponse, now: number, secrets: ReadonlyArray<string | undefined> = []): LoginResult {
  return parseOAuthTokenResponse(res, now, SERVICE, secrets);
}

const CREDENTIALS: ReadonlyArray<CredentialField> = Object.freeze([
  CLIENT_ID,
  CLIENT_SECRET,
  // Some field clients send no preshared key; the header is then left out.
  { name: 'presharedKey', label: 'POS preshared key', secret: true, required: false, env: 'POS_PRESHARED_KEY' },
]);

export function createEtaEreceipt(deps: AuthorityDeps): Authority {
  return {
    name: 'eta-ereceipt',
    credentialFields: CREDENTIALS,
    async login({ account, credentials, identity, signal }) {
      const missing = missingCredentials(credentials, ['clientId', 'clientSecret']);
      if (missing) return missing;
      const secrets = [credentials.clientSecret, credentials.presharedKey];
      return sendTokenRequest(deps, buildTokenRequest(account, credentials, identity), signal, SERVICE, (res, now) =>
        parseTokenResponse(res, now, secrets),
      );
    },
  };
}

export const etaEreceipt: AuthorityModule = Object.freeze<AuthorityModule>({
  name: 'eta-ereceipt',
  title: 'Egypt ETA eReceipt',
  options: { identityUrl },
  endpoint: { option: 'identityUrl', kind: 'base', label: 'Identity service URL', hint: ETA_HINT, paths: ['/connect/token'] },
  api: { hint: 'ETA API: pre-production https://api.preprod.invoicing.eta.gov.eg, production https://api.invoicing.eta.gov.eg', paths: ['/api/v1/receiptsubmissions'] },
  credentials: CREDENTIALS,
  deviceHeaders: { fields: ['posserial', 'pososversion', 'posmodelframework'], required: ['posserial'] },
  create: createEtaEreceipt,
});
