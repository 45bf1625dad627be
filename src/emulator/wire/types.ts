/**
 * The common face of a wire format: what the shared server (faults, stats, limiter, signing, admin) needs
 * from one authority's module, and what it gives it.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { Clock } from '../../lib/clock.js';
import type { Answer } from '../http.js';
import type { SigningKey } from '../jwt.js';
import type { EmulatorAuthority, EmulatorPaths, PrincipalKind } from '../types.js';
import type { Validated } from '../validate.js';

/** A POST to a token endpoint whose body fitted under the cap. */
export interface WireRequest {
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export type LimitVerdict = { allowed: true } | { allowed: false; retryAfterS: number };

/** What the server lends a wire. */
export interface WireContext {
  readonly strict: boolean;
  readonly clock: Clock;
  /** Verifies tokens this emulator signed (impact-gr's bearer check). */
  readonly key: Pick<SigningKey, 'verify' | 'publicJwk'>;
  /**
   * Signs an access token: `iss`, `iat`, `nbf`, `exp` (the lifetime now: the lifetimeS fault overrides the
   * configured one) and `jti` are filled in around `claims`. Returns it with its lifetime.
   */
  accessToken(claims: Record<string, unknown>): { token: string; lifetimeS: number };
  readonly refreshLifetimeS: number;
  /** Records a login attempt for `key` in the emulator's sliding window (always allowed when disabled). */
  limit(key: string): LimitVerdict;
  /** Consumes one `refreshFail` fault; true when this refresh must fail. */
  takeRefreshFail(): boolean;
}

/** The authority's own shapes for what the server answers on its behalf. */
export interface WireErrors {
  methodNotAllowed(method: string): Answer;
  tooLarge(limit: number): Answer;
  /** A 429 with Retry-After: the rateLimit fault and the wire's own limiter. */
  rateLimited(retryAfter: string, description: string): Answer;
  /** The JSON half of the fail5xx fault. */
  serverError(status: number): Answer;
  /** The error fault. */
  injected(status: number, code: string, description: string): Answer;
  /** The valid-JSON half of the malformed fault: a 200 body that lacks the token. */
  tokenless(): string;
}

export interface TokenEndpoint {
  readonly path: string;
  handle(req: WireRequest): Answer;
}

/** The principals of one kind an emulator knows, keyed by their id. */
export interface PrincipalRegistry {
  readonly kind: PrincipalKind;
  /** Validates and adds (or replaces) one; returns its id. */
  add(input: unknown, path: string): Validated<string>;
  /** Summaries without secrets, for GET /_emulator/<kind>. */
  list(): Array<Record<string, unknown>>;
  /** Every secret held, so that no message ever quotes one. */
  secrets(): string[];
}

export interface Wire {
  readonly endpoints: readonly TokenEndpoint[];
  readonly errors: WireErrors;
  readonly principals: PrincipalRegistry;
  /** Documents served on GET (discovery, JWKS), by path. */
  documents(base: string): Record<string, unknown>;
  /** impact-gr: invalidates every refresh token; returns how many there were. */
  expireRefreshTokens?(): number;
}

/** One authority's wire format: static facts plus a factory. */
export interface WireSpec {
  readonly authority: EmulatorAuthority;
  readonly paths: EmulatorPaths;
  readonly principalKind: PrincipalKind;
  readonly defaultLifetimeS: number;
  readonly defaultRateLimitPerMinute: number;
  create(ctx: WireContext): Wire;
}
