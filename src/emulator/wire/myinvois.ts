/**
 * Malaysia LHDN MyInvois, "Login as Taxpayer System": POST /connect/token, form body client_id,
 * client_secret, grant_type=client_credentials, optional scope (InvoicingAPI); an intermediary adds header
 * `onbehalfof: TIN` or `TIN:ROB` (mandatory for it). Errors 400 as the doc spells them (`unauthorised_client`);
 * 12 logins per minute per client ID, then 429 with Retry-After.
 */
import { clientCredentialsWire, identityServerProfile } from './client-credentials.js';

export const myinvois = clientCredentialsWire(
  identityServerProfile({
    authority: 'myinvois',
    label: 'the MyInvois token request',
    strictAuth: 'client_secret_post',
    unauthorizedClient: 'unauthorised_client',
    onbehalfof: {
      pattern: /^[A-Za-z0-9]{1,20}(:[A-Za-z0-9-]{1,30})?$/,
      format: 'TIN or TIN:ROB (letters and digits; ROB may hold "-")',
      // A registered TIN covers that TIN alone and with any ROB; a registered TIN:ROB only itself.
      matches: (value, allowed) => value === allowed || (!allowed.includes(':') && value.split(':')[0] === allowed),
    },
    defaultRateLimitPerMinute: 12,
  }),
);
