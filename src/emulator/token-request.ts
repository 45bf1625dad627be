/**
 * The decision part of POST /connect/token: given the headers and the body of a request, which
 * device it authenticates, or which documented error it earns. Pure: no I/O, no time.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { EmulatorDevice } from './types.js';

export const FORM_TYPE = 'application/x-www-form-urlencoded';
const FIELDS = ['grant_type', 'client_id', 'client_secret'] as const;
type Field = (typeof FIELDS)[number];
const FIELD_MAX: Record<Field, number> = { grant_type: 20, client_id: 100, client_secret: 100 };

export const HEADER_MAX = { posserial: 100, pososversion: 50, posmodelframework: 10, presharedkey: 200 } as const;

export type TokenCheck =
  | { ok: true; device: EmulatorDevice }
  | { ok: false; error: string; description: string };

export interface TokenRequest {
  headers: IncomingHttpHeaders;
  body: Buffer;
  strict: boolean;
  devices: ReadonlyMap<string, EmulatorDevice>;
}

function reject(error: string, description: string): TokenCheck {
  return { ok: false, error, description };
}

export function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v.join(', ') : v;
}

function sameSecret(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

/**
 * Text from the client that is safe to quote in an error_description: short, printable,
 * identifier-like, and not (part of) any configured secret or preshared key.
 */
function quotable(text: string, devices: ReadonlyMap<string, EmulatorDevice>, pattern: RegExp): string | undefined {
  if (!pattern.test(text)) return undefined;
  for (const d of devices.values()) {
    for (const secret of [...d.clientSecrets, d.presharedKey ?? '']) {
      if (secret.length > 0 && (text.includes(secret) || (text.length >= 6 && secret.includes(text)))) return undefined;
    }
  }
  return text;
}

const FIELD_NAME = /^[A-Za-z_][A-Za-z0-9_.-]{0,39}$/;
const MEDIA_TYPE = /^[A-Za-z0-9!#$&^_.+-]{1,40}\/[A-Za-z0-9!#$&^_.+-]{1,60}$/;

/** Checks Content-Type; returns a deviation or undefined. */
function checkContentType(value: string | undefined, devices: ReadonlyMap<string, EmulatorDevice>): string | undefined {
  if (value === undefined || value.trim() === '') return `missing Content-Type (expected ${FORM_TYPE})`;
  const [type = '', ...params] = value.split(';');
  const media = type.trim().toLowerCase();
  if (media !== FORM_TYPE) {
    const shown = quotable(media, devices, MEDIA_TYPE);
    return `Content-Type ${shown === undefined ? 'given' : JSON.stringify(shown)} is not ${FORM_TYPE}`;
  }
  for (const param of params) {
    const name = (param.split('=')[0] ?? '').trim().toLowerCase();
    if (name === '' && param.trim() === '') continue;
    if (name !== 'charset') {
      const shown = quotable(name, devices, FIELD_NAME);
      return `unexpected Content-Type parameter ${shown === undefined ? '(name not shown)' : JSON.stringify(shown)}; only charset is allowed`;
    }
  }
  return undefined;
}

/** RFC 6749 section 2.3.1: both parts are form-urlencoded before base64. */
function basicCredentials(header: string | undefined): { id: string; secret: string } | undefined {
  if (header === undefined) return undefined;
  const m = /^Basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (!m?.[1]) return undefined;
  const decoded = Buffer.from(m[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  const unform = (s: string): string => {
    try {
      return decodeURIComponent(s.replace(/\+/g, ' '));
    } catch {
      return s;
    }
  };
  return { id: unform(decoded.slice(0, colon)), secret: unform(decoded.slice(colon + 1)) };
}

export function checkTokenRequest(req: TokenRequest): TokenCheck {
  const { headers, strict, devices } = req;

  // --- the wire ---
  if (strict) {
    const deviation = checkContentType(headerValue(headers, 'content-type'), devices);
    if (deviation) return reject('invalid_request', deviation);
    if (headerValue(headers, 'authorization') !== undefined) {
      return reject(
        'invalid_request',
        'Authorization header is not part of the eReceipt token request; send client_id and client_secret in the form body',
      );
    }
  }
  const form = new URLSearchParams(req.body.toString('utf8'));
  const values: Partial<Record<Field, string>> = {};
  for (const [name, value] of form) {
    if ((FIELDS as readonly string[]).includes(name)) {
      const field = name as Field;
      if (values[field] !== undefined) return reject('invalid_request', `form field ${field} is given more than once`);
      values[field] = value;
    } else if (strict) {
      const shown = quotable(name, devices, FIELD_NAME);
      return reject(
        'invalid_request',
        `unexpected form field ${shown === undefined ? '(name not shown)' : JSON.stringify(shown)}; ` +
          'the eReceipt token request takes only grant_type, client_id and client_secret',
      );
    }
  }
  if (!strict && (values.client_id === undefined || values.client_secret === undefined)) {
    // Tolerated outside strict mode: client_secret_basic.
    const basic = basicCredentials(headerValue(headers, 'authorization'));
    if (basic) {
      values.client_id ??= basic.id;
      values.client_secret ??= basic.secret;
    }
  }
  for (const field of FIELDS) {
    const value = values[field];
    if (value === undefined || value === '') return reject('invalid_request', `missing form field ${field}`);
    if (value.length > FIELD_MAX[field]) {
      return reject('invalid_request', `form field ${field} is longer than ${FIELD_MAX[field]} characters`);
    }
  }
  if (values.grant_type !== 'client_credentials') {
    return reject('unsupported_grant_type', 'grant_type must be client_credentials');
  }

  // --- the credentials ---
  const device = devices.get(values.client_id as string);
  if (!device) return reject('invalid_client', 'unknown client_id');
  const secret = values.client_secret as string;
  let matched = false;
  for (const s of device.clientSecrets) matched = sameSecret(secret, s) || matched;
  if (!matched) return reject('invalid_clientsecret', 'client_secret does not match any secret of this client');
  if (device.status === 'blocked') return reject('unauthorized_client', 'User blocked');
  if (device.status === 'deactivated') return reject('unauthorized_client', 'POS deactivated');

  // --- the device headers ---
  const posserial = headerValue(headers, 'posserial');
  if (posserial === undefined || posserial === '') return reject('invalid_posserial', 'missing header posserial');
  if (posserial.length > HEADER_MAX.posserial) {
    return reject('invalid_posserial', `header posserial is longer than ${HEADER_MAX.posserial} characters`);
  }
  if (posserial !== device.posserial) {
    return reject('invalid_posserial', 'header posserial is not the serial registered for this client');
  }
  for (const name of ['pososversion', 'posmodelframework'] as const) {
    const value = headerValue(headers, name);
    const expected = device[name];
    if (value !== undefined && value.length > HEADER_MAX[name]) {
      return reject(`invalid_${name}`, `header ${name} is longer than ${HEADER_MAX[name]} characters`);
    }
    if (expected !== undefined && value !== expected) {
      return reject(
        `invalid_${name}`,
        value === undefined ? `missing header ${name}` : `header ${name} is not the value registered for this POS`,
      );
    }
  }
  const psk = headerValue(headers, 'presharedkey');
  if (psk !== undefined && psk.length > HEADER_MAX.presharedkey) {
    return reject('invalid_presharedkey', `header presharedkey is longer than ${HEADER_MAX.presharedkey} characters`);
  }
  if (device.presharedKey !== undefined) {
    if (psk === undefined) return reject('invalid_presharedkey', 'missing header presharedkey');
    if (!sameSecret(psk, device.presharedKey)) {
      return reject('invalid_presharedkey', 'header presharedkey does not match the key registered for this POS');
    }
  }
  return { ok: true, device };
}
