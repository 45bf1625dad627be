/**
 * Egypt ETA eReceipt, "Authenticate POS": POST {identity}/connect/token, form body with the
 * client credentials, and the device headers posserial, pososversion, posmodelframework and
 * presharedkey (each left out when it has no value).
 */
import type { AccountConfig } from '../config/index.js';
import { DEFAULT_MAX_RESPONSE_BYTES, type HttpRequest, type HttpResponse } from './http.js';
import { parseOAuthTokenResponse, transportFailure } from './oauth-common.js';
import type { Authority, AuthorityDeps, Credentials, DeviceIdentity, LoginResult } from './types.js';
import { failure } from './types.js';

const SERVICE = 'eReceipt identity service';

export function buildTokenRequest(
  account: AccountConfig,
  credentials: Credentials,
  identity: DeviceIdentity,
): HttpRequest {
  const body = new URLSearchParams({
    grant_type: 'client_credentials',
    client_id: credentials.clientId ?? '',
    client_secret: credentials.clientSecret ?? '',
  });
  const headers: Record<string, string> = {
    'content-type': 'application/x-www-form-urlencoded',
    accept: 'application/json',
  };
  const put = (name: string, value: string | undefined): void => {
    if (value !== undefined && value !== '') headers[name] = value;
  };
  put('posserial', identity.posserial);
  put('pososversion', identity.pososversion);
  put('posmodelframework', identity.posmodelframework);
  put('presharedkey', credentials.presharedKey);
  return {
    url: `${account.identityUrl}/connect/token`,
    method: 'POST',
    headers,
    body: body.toString(),
    timeouts: account.timeouts,
    maxResponseBytes: DEFAULT_MAX_RESPONSE_BYTES,
  };
}

export function parseTokenResponse(res: HttpResponse, now: number): LoginResult {
  return parseOAuthTokenResponse(res, now, SERVICE);
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
      if (!credentials.clientId || !credentials.clientSecret) {
        return failure('credentials_rejected', 'clientId and clientSecret are required; run provision');
      }
      const req = buildTokenRequest(account, credentials, identity);
      if (signal) req.signal = signal;
      let res: HttpResponse;
      try {
        res = await deps.http.request(req);
      } catch (err) {
        return transportFailure(err, SERVICE);
      }
      return parseTokenResponse(res, deps.now());
    },
  };
}
