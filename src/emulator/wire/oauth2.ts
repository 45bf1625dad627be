/**
 * Generic OAuth 2.0 client credentials (RFC 6749 section 4.4) at POST /oauth2/token: client_secret_basic or
 * client_secret_post as each client is registered (strict mode refuses the other), optional `scope` and
 * `audience` (RFC 8707's invalid_target when not allowed); unknown parameters are ignored as the RFC says.
 * invalid_client after a Basic attempt is 401 with `WWW-Authenticate: Basic`. Discovery per RFC 8414.
 */
import { clientCredentialsWire } from './client-credentials.js';

const TOKEN_PATH = '/oauth2/token';
const METADATA = '/.well-known/oauth-authorization-server';
const JWKS = '/oauth2/jwks';

export const oauth2 = clientCredentialsWire({
  authority: 'oauth2',
  label: 'the OAuth 2.0 token request',
  tokenPath: TOKEN_PATH,
  strictAuth: 'registered',
  audience: true,
  refuseUnknown: false,
  clientKeys: ['clientId', 'clientSecrets', 'scopes', 'authMethod', 'audiences', 'status'],
  defaultScopes: [],
  unauthorizedClient: 'unauthorized_client',
  basicChallenge: true,
  defaultRateLimitPerMinute: 0,
  documents: (base, jwk) => ({
    [METADATA]: {
      issuer: base,
      token_endpoint: `${base}${TOKEN_PATH}`,
      jwks_uri: `${base}${JWKS}`,
      grant_types_supported: ['client_credentials'],
      token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
      response_types_supported: ['token'],
    },
    [JWKS]: { keys: [jwk] },
  }),
});
