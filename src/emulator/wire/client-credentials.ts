/**
 * The OAuth 2.0 client-credentials grant (RFC 6749 section 4.4) as a profile-driven token endpoint. Each
 * authority that speaks it (eta-einvoicing, myinvois, oauth2) is a small profile: where the credentials go in
 * strict mode, which body fields exist, how `unauthorized_client` is spelled, the `onbehalfof` header, the
 * `audience` parameter, the 401 challenge. The request itself is decided in client-credentials-grant.ts.
 */
import type { ClientAuthMethod, EmulatorAuthority, EmulatorClient, EmulatorPaths } from '../types.js';
import { validateClient, type ClientKey } from '../validate.js';
import { clientCredentialsHandler } from './client-credentials-grant.js';
import { OAUTH_ERRORS, openidDocuments } from './oauth.js';
import { createRegistry } from './registry.js';
import type { Wire, WireContext, WireSpec } from './types.js';

export interface OnBehalfOf {
  /** Shape a value must have in strict mode, described in `format`. */
  pattern: RegExp;
  format: string;
  /** Whether header value `value` is covered by the client's registered entry `allowed`. */
  matches(value: string, allowed: string): boolean;
}

export interface ClientCredentialsProfile {
  authority: EmulatorAuthority;
  /** For messages: "the eInvoicing token request". */
  label: string;
  tokenPath: string;
  /** Client authentication in strict mode; `registered` = the client's own authMethod (default basic). */
  strictAuth: ClientAuthMethod | 'registered';
  /** Takes an `audience` body parameter. */
  audience: boolean;
  /** Strict mode refuses unknown body fields (RFC 6749 says to ignore them: oauth2 does). */
  refuseUnknown: boolean;
  /** The client keys this authority uses. */
  clientKeys: readonly ClientKey[];
  defaultScopes: readonly string[];
  /** `aud` of tokens when no audience was asked for. */
  defaultAudience?: string;
  /** How this authority spells it (MyInvois: unauthorised_client). */
  unauthorizedClient: string;
  /** invalid_client after a Basic attempt (or none) is 401 + WWW-Authenticate: Basic (RFC 6749 section 5.2). */
  basicChallenge: boolean;
  onbehalfof?: OnBehalfOf;
  defaultRateLimitPerMinute: number;
  documents(base: string, jwk: unknown): Record<string, unknown>;
}

/**
 * What the IdentityServer deployments of ETA eInvoicing and MyInvois share: /connect/token, a fixed body
 * (unknown fields refused in strict mode), the InvoicingAPI scope and audience, 400 for every error, the
 * `onbehalfof` client keys, and the OpenID discovery documents naming the one client authentication method.
 */
export function identityServerProfile(
  p: Pick<ClientCredentialsProfile, 'authority' | 'label' | 'unauthorizedClient' | 'onbehalfof' | 'defaultRateLimitPerMinute'> & {
    strictAuth: ClientAuthMethod;
  },
): ClientCredentialsProfile {
  const tokenPath = '/connect/token';
  const scopes = ['InvoicingAPI'];
  return {
    ...p,
    tokenPath,
    audience: false,
    refuseUnknown: true,
    clientKeys: ['clientId', 'clientSecrets', 'scopes', 'onbehalfof', 'intermediary', 'status'],
    defaultScopes: scopes,
    defaultAudience: 'InvoicingAPI',
    basicChallenge: false,
    documents: (base, jwk) => openidDocuments(base, jwk, { tokenPath, authMethods: [p.strictAuth], scopes }),
  };
}

export function clientCredentialsWire(p: ClientCredentialsProfile): WireSpec {
  const paths: EmulatorPaths = { token: p.tokenPath };
  return {
    authority: p.authority,
    paths,
    principalKind: 'clients',
    defaultLifetimeS: 3600,
    defaultRateLimitPerMinute: p.defaultRateLimitPerMinute,
    create: (ctx) => createWire(p, ctx),
  };
}

function createWire(p: ClientCredentialsProfile, ctx: WireContext): Wire {
  const clients = createRegistry<EmulatorClient>({
    kind: 'clients',
    validate: (input, path) => validateClient(input, path, p.clientKeys),
    id: (c) => c.clientId,
    summary: (c) => clientSummary(p, c),
    secrets: (c) => c.clientSecrets,
  });
  return {
    principals: clients,
    errors: OAUTH_ERRORS,
    documents: (base) => p.documents(base, ctx.key.publicJwk()),
    endpoints: [{ path: p.tokenPath, handle: clientCredentialsHandler(p, ctx, clients) }],
  };
}

/** A client as GET /_emulator/clients shows it: no secrets, the profile's defaults filled in. */
function clientSummary(p: ClientCredentialsProfile, c: EmulatorClient): Record<string, unknown> {
  const out: Record<string, unknown> = { clientId: c.clientId, status: c.status ?? 'active' };
  if (p.clientKeys.includes('scopes')) out.scopes = c.scopes ?? [...p.defaultScopes];
  if (c.onbehalfof) out.onbehalfof = c.onbehalfof;
  if (c.intermediary !== undefined) out.intermediary = c.intermediary;
  if (p.clientKeys.includes('authMethod')) out.authMethod = c.authMethod ?? 'client_secret_basic';
  if (c.audiences) out.audiences = c.audiences;
  return out;
}
