/**
 * The submission API's bearer check: a token this emulator signed, with its issuer, not yet valid or expired on
 * the emulator's clock, and not revoked. The RSA signature check is the costly part, so a token's verified claims
 * are cached by the token string (a small bounded map) until its `exp`; expiry and revocation are still decided
 * on every request, which costs a map look-up.
 */
import type { Clock } from '../lib/clock.js';
import type { SigningKey } from './jwt.js';

export type BearerVerdict = { ok: true; jti: string } | { ok: false; description: string };

export interface ApiAuth {
  /** Notes a token just issued, so that revokeAll() reaches it. */
  issued(jti: string): void;
  /** Judges an `Authorization` header value. */
  check(authorization: string | undefined): BearerVerdict;
  /** This token stops working (revoke401). */
  revoke(jti: string): void;
  /** Every token issued so far stops working; returns how many were issued since the last call. */
  revokeAll(): number;
}

interface Verified {
  jti: string;
  nbf: number;
  exp: number;
}

const CACHE_MAX = 1024;
/** Issued and revoked token ids kept at most; a token forgotten from `issued` counts as issued before any revokeAll. */
const IDS_MAX = 200_000;
const BEARER = /^Bearer +(\S+) *$/i;

interface ApiAuthOptions {
  key: Pick<SigningKey, 'verify'>;
  clock: Clock;
  /** The emulator's base URL: the `iss` of its tokens. */
  issuer: () => string;
}

/** Signature and issuer checked once per token string; the verified claims kept in a bounded map. */
function createVerifier(options: ApiAuthOptions): { verify(token: string): Verified | undefined; forget(token: string): void } {
  const cache = new Map<string, Verified>();
  return {
    verify(token) {
      const hit = cache.get(token);
      if (hit) return hit;
      const claims = options.key.verify(token);
      if (!claims || claims.iss !== options.issuer()) return undefined;
      const { jti, exp, nbf } = claims;
      if (typeof jti !== 'string' || typeof exp !== 'number') return undefined;
      const verified: Verified = { jti, exp, nbf: typeof nbf === 'number' ? nbf : 0 };
      if (cache.size >= CACHE_MAX) {
        const nowS = options.clock.now() / 1000;
        for (const [t, v] of cache) if (v.exp <= nowS) cache.delete(t);
        // Still full: forget the oldest entry rather than grow.
        if (cache.size >= CACHE_MAX) cache.delete(cache.keys().next().value as string);
      }
      cache.set(token, verified);
      return verified;
    },
    forget: (token) => void cache.delete(token),
  };
}

export function createApiAuth(options: ApiAuthOptions): ApiAuth {
  const verifier = createVerifier(options);
  /** jti → its issue ordinal (1, 2, ...). */
  const issued = new Map<string, number>();
  const revoked = new Set<string>();
  let ordinal = 0;
  let revokedUpTo = 0;

  const isRevoked = (jti: string): boolean => {
    if (revoked.has(jti)) return true;
    const n = issued.get(jti);
    return n === undefined ? revokedUpTo > 0 : n <= revokedUpTo;
  };

  return {
    issued(jti) {
      ordinal += 1;
      if (issued.size >= IDS_MAX) issued.delete(issued.keys().next().value as string);
      issued.set(jti, ordinal);
    },
    check(authorization) {
      if (authorization === undefined) return { ok: false, description: 'missing Authorization: Bearer <access token>' };
      const token = BEARER.exec(authorization)?.[1];
      if (!token) return { ok: false, description: 'the Authorization header is not "Bearer <access token>"' };
      const verified = verifier.verify(token);
      if (!verified) return { ok: false, description: 'the access token was not issued by this service' };
      const nowS = options.clock.now() / 1000;
      if (nowS >= verified.exp) {
        verifier.forget(token);
        return { ok: false, description: 'the access token has expired' };
      }
      if (nowS < verified.nbf) return { ok: false, description: 'the access token is not valid yet' };
      if (isRevoked(verified.jti)) return { ok: false, description: 'the access token has been revoked' };
      return { ok: true, jti: verified.jti };
    },
    revoke(jti) {
      if (revoked.size >= IDS_MAX) revoked.delete(revoked.values().next().value as string);
      revoked.add(jti);
    },
    revokeAll() {
      const count = ordinal - revokedUpTo;
      revokedUpTo = ordinal;
      return count;
    },
  };
}
