/** What an authority's client-credentials token endpoint is like (client-credentials.ts builds them; the grant reads them). */
import type { ClientAuthMethod, EmulatorAuthority } from '../types.js';
import type { ClientKey } from '../validate.js';

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
