/**
 * Egypt ETA eReceipt, "Authenticate POS": POST {identity}/connect/token, form body with the
 * client credentials, and the device headers posserial, pososversion, posmodelframework and
 * presharedkey (each left out when it has no value).
 */
import type { AccountConfig } from '../config/index.js';
import type { HttpRequest, HttpResponse } from './http.js';
import {
  buildClientCredentialsRequest,
  missingCredentials,
  parseOAuthTokenResponse,
  sendTokenRequest,
} from './oauth-common.js';
import type { Authority, AuthorityDeps, Credentials, DeviceIdentity, LoginResult } from './types.js';

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

export function createEtaEreceipt(deps: AuthorityDeps): Authority {
  return {
    name: 'eta-ereceipt',
    credentialFields: [
      { name: 'clientId', label: 'Client ID', secret: false, required: true },
      { name: 'clientSecret', label: 'Client secret', secret: true, required: true },
      // Some field clients send no preshared key; the header is then left out.
      { name: 'presharedKey', label: 'POS preshared key', secret: true, required: false },
    ],
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
