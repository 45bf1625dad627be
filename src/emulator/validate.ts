/**
 * Validation of faults and principals (devices, clients, companies), shared by the programmatic API (which
 * throws TypeError) and the admin endpoints (which answer 400). Problems name the key path and what was
 * expected, and never echo a secret.
 */
import type { EmulatorApiFaults, EmulatorClient, EmulatorCompany, EmulatorDevice, EmulatorFaults } from './types.js';

export type Validated<T> = { ok: true; value: T } | { ok: false; problems: string[] };

/** A faults patch: a key mapped to null (admin JSON) or undefined (API) removes that fault. */
export type FaultsPatch = { [K in keyof EmulatorFaults]?: EmulatorFaults[K] | null };

const MAX_COUNT = 1_000_000;
const MAX_LATENCY_MS = 300_000;
const MAX_LIFETIME_S = 10 * 365 * 24 * 3600;
/** Visible ASCII and space: safe in a header and in a JSON error message. */
const HEADER_SAFE = /^[\x20-\x7e]*$/;
const TOKEN_CHARS = /^[\x21-\x7e]+$/;
const NO_CONTROL = /^[^\x00-\x1f\x7f]*$/;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : typeof value;
}

function intIn(problems: string[], path: string, value: unknown, min: number, max: number): value is number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    problems.push(`${path}: expected an integer from ${min} to ${max}, got ${describe(value)}${typeof value === 'number' ? ` ${value}` : ''}`);
    return false;
  }
  return true;
}

function str(
  problems: string[],
  path: string,
  value: unknown,
  min: number,
  max: number,
  pattern: RegExp = NO_CONTROL,
): value is string {
  if (typeof value !== 'string') {
    problems.push(`${path}: expected a string, got ${describe(value)}`);
    return false;
  }
  if (value.length < min || value.length > max) {
    problems.push(`${path}: expected ${min} to ${max} characters, got ${value.length}`);
    return false;
  }
  if (!pattern.test(value)) {
    problems.push(`${path}: contains characters that are not allowed`);
    return false;
  }
  return true;
}

function unknownKeys(problems: string[], path: string, obj: Record<string, unknown>, known: readonly string[]): void {
  for (const key of Object.keys(obj)) {
    if (!known.includes(key)) problems.push(`${path}.${key.slice(0, 60)}: unknown key`);
  }
}

const FAULT_KEYS = [
  'latencyMs',
  'fail5xx',
  'status5xx',
  'rateLimit',
  'drop',
  'malformed',
  'error',
  'lifetimeS',
  'refreshFail',
] as const;

/** Validates one fault key's value; pushes problems and returns undefined when it is not valid. */
function faultValue(problems: string[], p: string, key: string, v: unknown): unknown {
  switch (key) {
    case 'latencyMs':
      return intIn(problems, p, v, 0, MAX_LATENCY_MS) ? v : undefined;
    case 'fail5xx':
    case 'drop':
    case 'malformed':
    case 'refreshFail':
    case 'revoke401':
      return intIn(problems, p, v, 0, MAX_COUNT) ? v : undefined;
    case 'status5xx':
      return intIn(problems, p, v, 500, 599) ? v : undefined;
    case 'lifetimeS':
      return intIn(problems, p, v, 0, MAX_LIFETIME_S) ? v : undefined;
    case 'rateLimit': {
      if (!isRecord(v)) {
        problems.push(`${p}: expected an object {count, retryAfter}, got ${describe(v)}`);
        return undefined;
      }
      const before = problems.length;
      unknownKeys(problems, p, v, ['count', 'retryAfter']);
      intIn(problems, `${p}.count`, v.count, 0, MAX_COUNT);
      str(problems, `${p}.retryAfter`, v.retryAfter, 1, 100, HEADER_SAFE);
      return problems.length === before ? { count: v.count as number, retryAfter: v.retryAfter as string } : undefined;
    }
    case 'error':
      return errorFault(problems, p, v);
    default:
      return undefined;
  }
}

function errorFault(problems: string[], p: string, v: unknown): EmulatorFaults['error'] {
  if (!isRecord(v)) {
    problems.push(`${p}: expected an object {code, description?, count?, status?}, got ${describe(v)}`);
    return undefined;
  }
  const before = problems.length;
  unknownKeys(problems, p, v, ['code', 'description', 'count', 'status']);
  str(problems, `${p}.code`, v.code, 1, 100, TOKEN_CHARS);
  if (v.description !== undefined) str(problems, `${p}.description`, v.description, 0, 500);
  if (v.count !== undefined) intIn(problems, `${p}.count`, v.count, 0, MAX_COUNT);
  if (v.status !== undefined) intIn(problems, `${p}.status`, v.status, 400, 499);
  if (problems.length !== before) return undefined;
  const error: NonNullable<EmulatorFaults['error']> = { code: v.code as string };
  if (v.description !== undefined) error.description = v.description as string;
  if (v.count !== undefined) error.count = v.count as number;
  if (v.status !== undefined) error.status = v.status as number;
  return error;
}

/** The loop both fault kinds share: unknown keys refused, null/undefined kept as "remove". */
function validateFaultKeys(input: unknown, path: string, keys: readonly string[], refuse: (key: string) => string | undefined): Validated<Record<string, unknown>> {
  const problems: string[] = [];
  if (!isRecord(input)) return { ok: false, problems: [`${path}: expected an object, got ${describe(input)}`] };
  unknownKeys(problems, path, input, keys);
  const out: Record<string, unknown> = {};
  for (const key of keys) {
    if (!(key in input)) continue;
    const refusal = refuse(key);
    if (refusal) {
      problems.push(`${path}.${key}: ${refusal}`);
      continue;
    }
    const v = input[key];
    if (v === null || v === undefined) {
      out[key] = null;
      continue;
    }
    const value = faultValue(problems, `${path}.${key}`, key, v);
    if (value !== undefined) out[key] = value;
  }
  return problems.length > 0 ? { ok: false, problems } : { ok: true, value: out };
}

/** `refresh`: whether the authority has refresh tokens (the `refreshFail` fault). */
export function validateFaults(input: unknown, path = 'faults', opts: { refresh?: boolean } = {}): Validated<FaultsPatch> {
  return validateFaultKeys(input, path, FAULT_KEYS, (key) =>
    key === 'refreshFail' && !opts.refresh ? 'only impact-gr has refresh tokens' : undefined,
  ) as Validated<FaultsPatch>;
}

const API_FAULT_KEYS = ['latencyMs', 'fail5xx', 'status5xx', 'rateLimit', 'drop', 'revoke401', 'error'] as const;

/** A patch of the submission API's faults: a key mapped to null or undefined removes that fault. */
export type ApiFaultsPatch = { [K in keyof EmulatorApiFaults]?: EmulatorApiFaults[K] | null };

/** Validates the submission API's faults (`/_emulator/api/faults`, `setApiFaults`). */
export function validateApiFaults(input: unknown, path = 'apiFaults'): Validated<ApiFaultsPatch> {
  return validateFaultKeys(input, path, API_FAULT_KEYS, () => undefined) as Validated<ApiFaultsPatch>;
}

const DEVICE_KEYS = [
  'clientId',
  'clientSecrets',
  'posserial',
  'pososversion',
  'posmodelframework',
  'presharedKey',
  'scope',
  'status',
] as const;

/** Validates a device; the result is a copy that shares nothing with the input. */
export function validateDevice(input: unknown, path = 'device'): Validated<EmulatorDevice> {
  const problems: string[] = [];
  if (!isRecord(input)) return { ok: false, problems: [`${path}: expected an object, got ${describe(input)}`] };
  unknownKeys(problems, path, input, DEVICE_KEYS);
  str(problems, `${path}.clientId`, input.clientId, 1, 100);
  const secrets = input.clientSecrets;
  secretList(problems, `${path}.clientSecrets`, secrets, 100);
  str(problems, `${path}.posserial`, input.posserial, 1, 100);
  const optional: Array<[keyof EmulatorDevice, number, number]> = [
    ['pososversion', 0, 50],
    ['posmodelframework', 0, 10],
    ['presharedKey', 0, 200],
    ['scope', 1, 200],
  ];
  for (const [key, min, max] of optional) {
    if (input[key] !== undefined) str(problems, `${path}.${key}`, input[key], min, max);
  }
  const status = input.status;
  if (status !== undefined && status !== 'active' && status !== 'blocked' && status !== 'deactivated') {
    problems.push(`${path}.status: expected "active", "blocked" or "deactivated"`);
  }
  if (problems.length > 0) return { ok: false, problems };
  const device: EmulatorDevice = {
    clientId: input.clientId as string,
    clientSecrets: [...(secrets as string[])],
    posserial: input.posserial as string,
  };
  for (const [key] of optional) {
    if (input[key] !== undefined) (device as unknown as Record<string, unknown>)[key] = input[key];
  }
  if (status !== undefined) device.status = status as EmulatorDevice['status'];
  return { ok: true, value: device };
}

function stringList(
  problems: string[],
  path: string,
  value: unknown,
  max: { items: number; length: number },
  pattern: RegExp = NO_CONTROL,
): value is string[] {
  if (!Array.isArray(value) || value.length > max.items) {
    problems.push(`${path}: expected an array of at most ${max.items} strings`);
    return false;
  }
  const before = problems.length;
  value.forEach((s, i) => str(problems, `${path}[${i}]`, s, 1, max.length, pattern));
  return problems.length === before;
}

function secretList(problems: string[], path: string, value: unknown, maxLength = 200): void {
  if (!Array.isArray(value) || value.length < 1 || value.length > 10) {
    problems.push(`${path}: expected an array of 1 to 10 strings`);
    return;
  }
  // Never echo a secret's value: str() reports only types and lengths.
  value.forEach((s, i) => str(problems, `${path}[${i}]`, s, 1, maxLength));
}

export type ClientKey = keyof EmulatorClient;
export const CLIENT_KEYS: readonly ClientKey[] = [
  'clientId',
  'clientSecrets',
  'scopes',
  'onbehalfof',
  'intermediary',
  'authMethod',
  'audiences',
  'status',
];

/**
 * Validates a client; `keys` are the keys the authority uses (others are refused by name). The result is a
 * copy that shares nothing with the input.
 */
export function validateClient(
  input: unknown,
  path = 'client',
  keys: readonly ClientKey[] = CLIENT_KEYS,
): Validated<EmulatorClient> {
  const problems: string[] = [];
  if (!isRecord(input)) return { ok: false, problems: [`${path}: expected an object, got ${describe(input)}`] };
  for (const key of Object.keys(input)) {
    if (!keys.includes(key as ClientKey)) {
      const known = (CLIENT_KEYS as readonly string[]).includes(key);
      problems.push(`${path}.${key.slice(0, 60)}: ${known ? 'not used by this authority' : 'unknown key'}`);
    }
  }
  str(problems, `${path}.clientId`, input.clientId, 1, 100);
  secretList(problems, `${path}.clientSecrets`, input.clientSecrets);
  if (input.scopes !== undefined) stringList(problems, `${path}.scopes`, input.scopes, { items: 50, length: 100 }, TOKEN_CHARS);
  if (input.onbehalfof !== undefined) {
    stringList(problems, `${path}.onbehalfof`, input.onbehalfof, { items: 1000, length: 100 }, TOKEN_CHARS);
  }
  if (input.audiences !== undefined) stringList(problems, `${path}.audiences`, input.audiences, { items: 50, length: 500 });
  if (input.intermediary !== undefined && typeof input.intermediary !== 'boolean') {
    problems.push(`${path}.intermediary: expected a boolean, got ${describe(input.intermediary)}`);
  }
  const { authMethod, status } = input;
  if (authMethod !== undefined && authMethod !== 'client_secret_basic' && authMethod !== 'client_secret_post') {
    problems.push(`${path}.authMethod: expected "client_secret_basic" or "client_secret_post"`);
  }
  if (status !== undefined && status !== 'active' && status !== 'blocked' && status !== 'expired') {
    problems.push(`${path}.status: expected "active", "blocked" or "expired"`);
  }
  if (problems.length > 0) return { ok: false, problems };
  const client: EmulatorClient = {
    clientId: input.clientId as string,
    clientSecrets: [...(input.clientSecrets as string[])],
  };
  if (input.scopes !== undefined) client.scopes = [...(input.scopes as string[])];
  if (input.onbehalfof !== undefined) client.onbehalfof = [...(input.onbehalfof as string[])];
  if (input.audiences !== undefined) client.audiences = [...(input.audiences as string[])];
  if (input.intermediary !== undefined) client.intermediary = input.intermediary as boolean;
  if (authMethod !== undefined) client.authMethod = authMethod as EmulatorClient['authMethod'];
  if (status !== undefined) client.status = status as EmulatorClient['status'];
  return { ok: true, value: client };
}

/** Validates an impact-gr company; the result is a copy. */
export function validateCompany(input: unknown, path = 'company'): Validated<EmulatorCompany> {
  const problems: string[] = [];
  if (!isRecord(input)) return { ok: false, problems: [`${path}: expected an object, got ${describe(input)}`] };
  unknownKeys(problems, path, input, ['vat', 'apiKey']);
  str(problems, `${path}.vat`, input.vat, 1, 30, TOKEN_CHARS);
  str(problems, `${path}.apiKey`, input.apiKey, 1, 200);
  if (problems.length > 0) return { ok: false, problems };
  return { ok: true, value: { vat: input.vat as string, apiKey: input.apiKey as string } };
}
