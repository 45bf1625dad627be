/**
 * The emulator's token signer: one RSA key per emulator (made at start, or on first use), RS256 JWTs.
 */
import type { JsonWebKey, KeyObject } from 'node:crypto';
const { createHash, generateKeyPair, generateKeyPairSync, sign, verify } = process.getBuiltinModule('node:crypto');

export interface SigningKey {
  readonly kid: string;
  /** Makes the key pair off the main thread, if not made yet; every other member makes it on first use. */
  prepare(): Promise<void>;
  /** A fresh copy of the public key as a JWK (kty, n, e, alg, use, kid). */
  publicJwk(): JsonWebKey;
  /** Returns the compact JWS of the claims. */
  sign(claims: Record<string, unknown>): string;
  /** The claims of a token this key signed (expired or not), or undefined. */
  verify(token: string): Record<string, unknown> | undefined;
}

function b64url(value: string | Buffer): string {
  return Buffer.from(value).toString('base64url');
}

/** RFC 7638 thumbprint of an RSA public JWK. */
function thumbprint(jwk: JsonWebKey): string {
  const canonical = JSON.stringify({ e: jwk.e, kty: jwk.kty, n: jwk.n });
  return createHash('sha256').update(canonical).digest('base64url');
}

interface Material {
  kid: string;
  jwk: JsonWebKey;
  header: string;
  publicKey: KeyObject;
  privateKey: KeyObject;
}

const RSA = { modulusLength: 2048 } as const;

function material(publicKey: KeyObject, privateKey: KeyObject): Material {
  const exported = publicKey.export({ format: 'jwk' });
  const kid = thumbprint(exported);
  const jwk: JsonWebKey = { kty: exported.kty, n: exported.n, e: exported.e, alg: 'RS256', use: 'sig', kid };
  return { kid, jwk, header: b64url(JSON.stringify({ alg: 'RS256', typ: 'JWT', kid })), publicKey, privateKey };
}

/** One RSA key per emulator, made lazily so that creating an emulator (or failing to) costs nothing. */
export function createSigningKey(): SigningKey {
  let made: Material | undefined;
  let making: Promise<void> | undefined;
  const get = (): Material => {
    if (!made) {
      const { publicKey, privateKey } = generateKeyPairSync('rsa', RSA);
      made = material(publicKey, privateKey);
    }
    return made;
  };
  return {
    get kid() {
      return get().kid;
    },
    prepare() {
      if (made) return Promise.resolve();
      making ??= new Promise<void>((resolve, reject) => {
        generateKeyPair('rsa', RSA, (err, publicKey, privateKey) => {
          if (err) return reject(err);
          made ??= material(publicKey, privateKey);
          resolve();
        });
      });
      return making;
    },
    publicJwk: () => ({ ...get().jwk }),
    sign(claims) {
      const { header, privateKey } = get();
      const input = `${header}.${b64url(JSON.stringify(claims))}`;
      return `${input}.${b64url(sign('sha256', Buffer.from(input), privateKey))}`;
    },
    verify(token) {
      const { header: expected, publicKey } = get();
      const parts = token.split('.');
      if (parts.length !== 3) return undefined;
      const [header = '', payload = '', signature = ''] = parts;
      if (header !== expected) return undefined;
      if (!verify('sha256', Buffer.from(`${header}.${payload}`), publicKey, Buffer.from(signature, 'base64url'))) {
        return undefined;
      }
      try {
        const claims: unknown = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
        return typeof claims === 'object' && claims !== null && !Array.isArray(claims)
          ? (claims as Record<string, unknown>)
          : undefined;
      } catch {
        return undefined;
      }
    },
  };
}
