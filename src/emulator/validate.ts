/**
 * Validation of faults and devices, shared by the programmatic API (which throws TypeError)
 * and the admin endpoints (which answer 400). Problems name the key path and what was expected.
 */
import type { EmulatorDevice, EmulatorFaults } from './types.js';

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

const FAULT_KEYS = ['latencyMs', 'fail5xx', 'status5xx', 'rateLimit', 'drop', 'malformed', 'error', 'lifetimeS'] as const;

export function validateFaults(input: unknown, path = 'faults'): Validated<FaultsPatch> {
  const problems: string[] = [];
  if (!isRecord(input)) return { ok: false, problems: [`${path}: expected an object, got ${describe(input)}`] };
  unknownKeys(problems, path, input, FAULT_KEYS);
  const out: FaultsPatch = {};
  for (const key of FAULT_KEYS) {
    if (!(key in input)) continue;
    const v = input[key];
    const p = `${path}.${key}`;
    if (v === null || v === undefined) {
      out[key] = null;
      continue;
    }
    switch (key) {
      case 'latencyMs':
        if (intIn(problems, p, v, 0, MAX_LATENCY_MS)) out.latencyMs = v;
        break;
      case 'fail5xx':
      case 'drop':
      case 'malformed':
        if (intIn(problems, p, v, 0, MAX_COUNT)) out[key] = v;
        break;
      case 'status5xx':
        if (intIn(problems, p, v, 500, 599)) out.status5xx = v;
        break;
      case 'lifetimeS':
        if (intIn(problems, p, v, 0, MAX_LIFETIME_S)) out.lifetimeS = v;
        break;
      case 'rateLimit': {
        if (!isRecord(v)) {
          problems.push(`${p}: expected an object {count, retryAfter}, got ${describe(v)}`);
          break;
        }
        const before = problems.length;
        unknownKeys(problems, p, v, ['count', 'retryAfter']);
        intIn(problems, `${p}.count`, v.count, 0, MAX_COUNT);
        str(problems, `${p}.retryAfter`, v.retryAfter, 1, 100, HEADER_SAFE);
        if (problems.length === before) out.rateLimit = { count: v.count as number, retryAfter: v.retryAfter as string };
        break;
      }
      case 'error': {
        if (!isRecord(v)) {
          problems.push(`${p}: expected an object {code, description?, count?}, got ${describe(v)}`);
          break;
        }
        const before = problems.length;
        unknownKeys(problems, p, v, ['code', 'description', 'count']);
        str(problems, `${p}.code`, v.code, 1, 100, TOKEN_CHARS);
        if (v.description !== undefined) str(problems, `${p}.description`, v.description, 0, 500);
        if (v.count !== undefined) intIn(problems, `${p}.count`, v.count, 0, MAX_COUNT);
        if (problems.length === before) {
          const error: NonNullable<EmulatorFaults['error']> = { code: v.code as string };
          if (v.description !== undefined) error.description = v.description as string;
          if (v.count !== undefined) error.count = v.count as number;
          out.error = error;
        }
        break;
      }
    }
  }
  return problems.length > 0 ? { ok: false, problems } : { ok: true, value: out };
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
  if (!Array.isArray(secrets) || secrets.length < 1 || secrets.length > 10) {
    problems.push(`${path}.clientSecrets: expected an array of 1 to 10 strings`);
  } else {
    // Never echo a secret's value: str() reports only types and lengths.
    secrets.forEach((s, i) => str(problems, `${path}.clientSecrets[${i}]`, s, 1, 100));
  }
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
