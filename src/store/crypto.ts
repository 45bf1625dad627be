const { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } = process.getBuiltinModule('node:crypto');
const { closeSync, fsyncSync, linkSync, openSync, readFileSync, unlinkSync, writeSync } = process.getBuiltinModule('node:fs');
/**
 * Secrets at rest: AES-256-GCM with a 32-byte key that lives outside the database.
 * Every sealed value is bound (as additional data) to where it is stored, so a value
 * copied to another row or table does not open.
 */

const VERSION = 1;
const IV_BYTES = 12;
const TAG_BYTES = 16;
export const KEY_BYTES = 32;

export class SecretKeyError extends Error {
  readonly code = 'ERR_SECRET_KEY';
  constructor(
    readonly kind: 'missing' | 'mismatch' | 'unreadable' | 'corrupt' | 'foreign_machine' | 'credential_absent',
    message: string,
  ) {
    super(message);
    this.name = 'SecretKeyError';
  }
}

export interface Sealer {
  seal(plaintext: Buffer | string, aad: string): Buffer;
  /** Throws SecretKeyError('mismatch') when the value does not open with this key. */
  open(blob: Buffer, aad: string): Buffer;
}

export function createSealer(key: Buffer): Sealer {
  if (key.length !== KEY_BYTES) throw new SecretKeyError('corrupt', `secret key must be ${KEY_BYTES} bytes`);
  return {
    seal(plaintext, aad) {
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv('aes-256-gcm', key, iv);
      cipher.setAAD(Buffer.from(aad, 'utf8'));
      const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
      return Buffer.concat([Buffer.from([VERSION]), iv, cipher.getAuthTag(), body]);
    },
    open(blob, aad) {
      if (blob.length < 1 + IV_BYTES + TAG_BYTES || blob[0] !== VERSION) {
        throw new SecretKeyError('corrupt', 'a stored secret is damaged or of an unknown format');
      }
      const iv = blob.subarray(1, 1 + IV_BYTES);
      const tag = blob.subarray(1 + IV_BYTES, 1 + IV_BYTES + TAG_BYTES);
      const decipher = createDecipheriv('aes-256-gcm', key, iv);
      decipher.setAAD(Buffer.from(aad, 'utf8'));
      decipher.setAuthTag(tag);
      try {
        return Buffer.concat([decipher.update(blob.subarray(1 + IV_BYTES + TAG_BYTES)), decipher.final()]);
      } catch {
        throw new SecretKeyError('mismatch', 'a stored secret does not open with this key');
      }
    },
  };
}

/**
 * The key that seals data: the key file's bytes bound to the machine id with HKDF-SHA256, so a
 * database and key file copied to another machine do not open there.
 */
export function bindKey(fileKey: Buffer, machineId: string): Buffer {
  return Buffer.from(hkdfSync('sha256', fileKey, 'pos-token-agent key binding', `machine-id:${machineId}`, KEY_BYTES));
}

/** What is stored to recognise the machine: a hash, never the id itself. */
export function machineHash(machineId: string): string {
  return createHash('sha256').update(`pos-token-agent machine ${machineId}`).digest('hex').slice(0, 32);
}

/** Reads the key file; undefined when it does not exist. */
export function readKeyFile(path: string): Buffer | undefined {
  let key: Buffer;
  try {
    key = readFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    throw new SecretKeyError('unreadable', `cannot read the secret key ${path}: ${code ?? 'error'}`);
  }
  if (key.length !== KEY_BYTES) {
    throw new SecretKeyError('corrupt', `the secret key ${path} is ${key.length} bytes, expected ${KEY_BYTES}`);
  }
  return key;
}

/**
 * Creates the key file (mode 0600) atomically unless one exists, and returns the key in force.
 * Written to a temporary file, synced, then hard-linked into place so a crash never leaves a
 * half-written key and two processes never end up with different keys.
 */
export function createKeyFile(path: string): Buffer {
  const existing = readKeyFile(path);
  if (existing) return existing;
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const key = randomBytes(KEY_BYTES);
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    writeSync(fd, key);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    linkSync(tmp, path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    unlinkSync(tmp);
  }
  return readKeyFile(path)!;
}
