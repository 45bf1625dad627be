/**
 * The emulator's token signer: one RSA key made when the emulator is created, RS256 JWTs.
 */
import { createHash, generateKeyPairSync, sign, type JsonWebKey, type KeyObject } from 'node:crypto';

export interface SigningKey {
  readonly kid: string;
  /** A fresh copy of the public key as a JWK (kty, n, e, alg, use, kid). */
  publicJwk(): JsonWebKey;
  /** Returns the compact JWS of the claims. */
  sign(claims: Record<string, unknown>): string;
}

function b64url(value: string | Buffer): string {
  return Buffer.from(value).toString('base64url');
}

/** RFC 7638 thumbprint of an RSA public JWK. */
function thumbprint(jwk: JsonWebKey): string {
  const canonical = JSON.stringify({ e: jwk.e, kty: jwk.kty, n: jwk.n });
  return createHash('sha256').update(canonical).digest('base64url');
}

export function createSigningKey(): SigningKey {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const exported = publicKey.export({ format: 'jwk' });
  const kid = thumbprint(exported);
  const jwk: JsonWebKey = { kty: exported.kty, n: exported.n, e: exported.e, alg: 'RS256', use: 'sig', kid };
  const key: KeyObject = privateKey;
  return {
    kid,
    publicJwk: () => ({ ...jwk }),
    sign(claims) {
      const header = b64url(JSON.stringify({ alg: 'RS256', typ: 'JWT', kid }));
      const payload = b64url(JSON.stringify(claims));
      const input = `${header}.${payload}`;
      const signature = sign('sha256', Buffer.from(input), key);
      return `${input}.${b64url(signature)}`;
    },
  };
}
