/**
 * Egypt ETA eInvoicing, "Login as Taxpayer System": POST /connect/token, client credentials by
 * `Authorization: Basic` (RFC 2617), form body `grant_type=client_credentials` and optional `scope`; an
 * intermediary adds header `onbehalfof: <registration number>`. Standard OAuth errors, 400.
 */
import { clientCredentialsWire, identityServerProfile } from './client-credentials.js';

export const etaEinvoicing = clientCredentialsWire(
  identityServerProfile({
    authority: 'eta-einvoicing',
    label: 'the eInvoicing token request',
    strictAuth: 'client_secret_basic',
    unauthorizedClient: 'unauthorized_client',
    onbehalfof: {
      pattern: /^[\x21-\x7e]+$/,
      format: 'a registration number (printable, no spaces)',
      matches: (value, allowed) => value === allowed,
    },
    defaultRateLimitPerMinute: 0,
  }),
);
