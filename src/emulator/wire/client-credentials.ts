/**
 * The OAuth 2.0 client-credentials grant (RFC 6749 section 4.4) as a profile-driven token endpoint. Each
 * authority that speaks it (eta-einvoicing, myinvois, oauth2) is a small profile: where the credentials go in
 * strict mode, which body fields exist, how `unauthorized_client` is spelled, the `onbehalfof` header, the
 * `audience` parameter, the 401 challenge. The decision is pure apart from the limiter and the clock of ctx.
 */
import { headerValue, type Answer } from '../http.js';
import type { ClientAuthMethod, EmulatorAuthority, EmulatorClient, EmulatorPaths } from '../types.js';
import { validateClient, type ClientKey } from '../validate.js';
import {
  basicCredentials,
  checkContentType,
  FORM_TYPE,
  matchesAny,
  OAUTH_ERRORS,
  oauthError,
  oauthToken,
  openidDocuments,
  parseForm,
  quotable,
} from './oauth.js';
import { createRegistry } from './registry.js';
import type { Wire, WireContext, WireRequest, WireSpec } from './types.js';

/** IdentityServer's input length limits. */
const MAX = { grant_type: 100, client_id: 100, client_secret: 200, scope: 300, audience: 500, onbehalfof: 100 } as const;
const SCOPE_TOKEN = /^[\x21\x23-\x5b\x5d-\x7e]{1,100}$/;

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

type Field = 'grant_type' | 'client_id' | 'client_secret' | 'scope' | 'audience';

export function clientCredentialsWire(p: ClientCredentialsProfile): WireSpec {
  const paths: EmulatorPaths = { token: p.tokenPath };
  const fields: readonly Field[] = p.audience
    ? ['grant_type', 'client_id', 'client_secret', 'scope', 'audience']
    : ['grant_type', 'client_id', 'client_secret', 'scope'];
  const takes = `${p.label} takes only ${fields.join(', ')}`;

  function create(ctx: WireContext): Wire {
    const clients = createRegistry<EmulatorClient>({
      kind: 'clients',
      validate: (input, path) => validateClient(input, path, p.clientKeys),
      id: (c) => c.clientId,
      summary: (c) => {
        const out: Record<string, unknown> = { clientId: c.clientId, status: c.status ?? 'active' };
        if (p.clientKeys.includes('scopes')) out.scopes = c.scopes ?? [...p.defaultScopes];
        if (c.onbehalfof) out.onbehalfof = c.onbehalfof;
        if (c.intermediary !== undefined) out.intermediary = c.intermediary;
        if (p.clientKeys.includes('authMethod')) out.authMethod = c.authMethod ?? 'client_secret_basic';
        if (c.audiences) out.audiences = c.audiences;
        return out;
      },
      secrets: (c) => c.clientSecrets,
    });

    function handle({ headers, body }: WireRequest): Answer {
      const { strict } = ctx;
      const secrets = clients.secrets();
      const invalid = (description: string): Answer => oauthError(400, 'invalid_request', description);

      // --- the wire ---
      if (strict) {
        const deviation = checkContentType(headerValue(headers, 'content-type'), FORM_TYPE, secrets);
        if (deviation) return invalid(deviation);
      }
      const form = parseForm<Field>(body, { fields, refuseUnknown: strict && p.refuseUnknown, takes, secrets });
      if (!form.ok) return invalid(form.description);
      const v = form.values;
      const authorization = headerValue(headers, 'authorization');
      if (strict && p.strictAuth === 'client_secret_basic' && (v.client_id !== undefined || v.client_secret !== undefined)) {
        return invalid(`${p.label} takes the client credentials in an Authorization: Basic header, not in the form body`);
      }
      if (strict && p.strictAuth === 'client_secret_post' && authorization !== undefined) {
        return invalid(
          `Authorization header is not part of ${p.label}; send client_id and client_secret in the form body`,
        );
      }

      // --- who claims to be calling ---
      const basic = basicCredentials(authorization);
      const invalidClient = (description: string, viaBasic: boolean): Answer =>
        p.basicChallenge && viaBasic
          ? oauthError(401, 'invalid_client', description, { 'www-authenticate': 'Basic realm="token", charset="UTF-8"' })
          : oauthError(400, 'invalid_client', description);
      if (basic && !basic.ok) return invalidClient('Authorization header is not valid Basic client credentials', true);
      let method: ClientAuthMethod;
      let id: string | undefined;
      let secret: string | undefined;
      if (basic) {
        if (strict && v.client_secret !== undefined) {
          return invalid('the client authenticates with more than one method (Authorization header and client_secret)');
        }
        if (strict && v.client_id !== undefined && v.client_id !== basic.id) {
          return invalid('client_id in the form body is not the one in the Authorization header');
        }
        [method, id, secret] = ['client_secret_basic', basic.id, basic.secret];
      } else {
        [method, id, secret] = ['client_secret_post', v.client_id, v.client_secret];
      }
      if (id === undefined || id === '') {
        return invalidClient('no client authentication: missing client credentials', p.strictAuth !== 'client_secret_post');
      }
      if (id.length > MAX.client_id) return invalid(`client_id is longer than ${MAX.client_id} characters`);
      const verdict = ctx.limit(id);
      if (!verdict.allowed) {
        return OAUTH_ERRORS.rateLimited(
          String(verdict.retryAfterS),
          `too many token requests for this client ID; retry after ${verdict.retryAfterS} s`,
        );
      }

      // --- the request ---
      for (const field of ['grant_type', 'scope', 'audience'] as const) {
        const value = v[field];
        if (value !== undefined && value.length > MAX[field]) {
          return invalid(`form field ${field} is longer than ${MAX[field]} characters`);
        }
      }
      if (v.grant_type === undefined || v.grant_type === '') return invalid('missing form field grant_type');
      if (v.grant_type !== 'client_credentials') {
        return oauthError(400, 'unsupported_grant_type', 'grant_type must be client_credentials');
      }

      // --- the credentials ---
      const viaBasic = method === 'client_secret_basic';
      if (secret === undefined || secret === '') return invalidClient('missing client_secret', viaBasic);
      if (secret.length > MAX.client_secret) return invalid(`client_secret is longer than ${MAX.client_secret} characters`);
      const client = clients.get(id);
      if (!client) return invalidClient('unknown client_id', viaBasic);
      if (!matchesAny(secret, client.clientSecrets)) {
        return invalidClient('client_secret does not match any secret of this client', viaBasic);
      }
      const registered = client.authMethod ?? 'client_secret_basic';
      if (strict && p.strictAuth === 'registered' && method !== registered) {
        return invalidClient(`this client is registered for ${registered}, not ${method}`, viaBasic);
      }
      if (client.status === 'blocked') return oauthError(400, p.unauthorizedClient, 'User blocked');
      if (client.status === 'expired') return oauthError(400, p.unauthorizedClient, 'User expired');

      // --- what it asks for ---
      const allowed = client.scopes ?? p.defaultScopes;
      let scope: string | undefined = allowed.length > 0 ? allowed.join(' ') : undefined;
      if (v.scope !== undefined && v.scope.trim() !== '') {
        const requested = [...new Set(v.scope.trim().split(/\s+/))];
        for (const s of requested) {
          if (!SCOPE_TOKEN.test(s)) return invalid('scope holds characters RFC 6749 does not allow');
          if (!allowed.includes(s)) {
            const shown = quotable(s, secrets, SCOPE_TOKEN);
            return oauthError(400, 'invalid_scope', `scope ${shown === undefined ? '(not shown)' : JSON.stringify(shown)} is not allowed for this client`);
          }
        }
        scope = requested.join(' ');
      }
      let audience = p.defaultAudience;
      if (p.audience) {
        audience = client.audiences?.[0];
        if (v.audience !== undefined && v.audience !== '') {
          if (client.audiences && !client.audiences.includes(v.audience)) {
            return oauthError(400, 'invalid_target', 'the requested audience is not allowed for this client');
          }
          audience = v.audience;
        }
      }
      let onbehalfof: string | undefined;
      if (p.onbehalfof) {
        const value = headerValue(headers, 'onbehalfof');
        if (value === undefined || value === '') {
          if (client.intermediary) return invalid('an intermediary must send header onbehalfof');
        } else {
          if (value.length > MAX.onbehalfof) return invalid(`header onbehalfof is longer than ${MAX.onbehalfof} characters`);
          if (strict && !p.onbehalfof.pattern.test(value)) {
            return invalid(`header onbehalfof must be ${p.onbehalfof.format}`);
          }
          const rule = p.onbehalfof;
          if (client.onbehalfof && !client.onbehalfof.some((entry) => rule.matches(value, entry))) {
            return oauthError(400, p.unauthorizedClient, 'this client may not act on behalf of that taxpayer');
          }
          onbehalfof = value;
        }
      }

      // --- the token ---
      const claims: Record<string, unknown> = { sub: client.clientId, client_id: client.clientId };
      if (audience !== undefined) claims.aud = audience;
      if (scope !== undefined) claims.scope = scope;
      if (onbehalfof !== undefined) claims.onbehalfof = onbehalfof;
      const { token, lifetimeS } = ctx.accessToken(claims);
      return oauthToken(token, lifetimeS, scope);
    }

    return {
      principals: clients,
      errors: OAUTH_ERRORS,
      documents: (base) => p.documents(base, ctx.key.publicJwk()),
      endpoints: [{ path: p.tokenPath, handle }],
    };
  }

  return {
    authority: p.authority,
    paths,
    principalKind: 'clients',
    defaultLifetimeS: 3600,
    defaultRateLimitPerMinute: p.defaultRateLimitPerMinute,
    create,
  };
}
