/**
 * The three device headers of a login, their limits, and the check every value passes
 * before it is used: trimmed, not empty, printable ASCII, within the header's limit.
 * A value that fails is an error naming the limit; it is never truncated.
 */
import type { DeviceField, DeviceHeaders } from '../config/index.js';

export type IdentityField = DeviceField;

export const IDENTITY_FIELDS: readonly IdentityField[] = Object.freeze(['posserial', 'pososversion', 'posmodelframework']);

/** Longest value each header takes (Egypt ETA eReceipt, "Authenticate POS"). */
export const FIELD_LIMITS: Readonly<Record<IdentityField, number>> = Object.freeze({
  posserial: 100,
  pososversion: 50,
  posmodelframework: 10,
});

/**
 * Identity fields an authority cannot log in without, from the device headers its module declares
 * (authorities/ gives them: deviceHeadersOf(account)); an authority that sends none needs none.
 */
export function requiredFields(headers: DeviceHeaders | undefined): IdentityField[] {
  return [...(headers?.required ?? [])];
}

/** Whether an authority sends device headers at all (only then is a device profile read for it). */
export function sendsDeviceHeaders(headers: DeviceHeaders | undefined): boolean {
  return headers !== undefined;
}

export type ValueCheck = { ok: true; value: string } | { ok: false; empty: boolean; message: string };

/** Trims a raw value and checks it against the header's rules. */
export function checkValue(field: IdentityField, raw: string): ValueCheck {
  const value = raw.trim();
  if (value === '') return { ok: false, empty: true, message: 'empty value' };
  const limit = FIELD_LIMITS[field];
  if (value.length > limit) {
    return {
      ok: false,
      empty: false,
      message: `value is ${value.length} characters; the ${field} header takes at most ${limit} (not truncated)`,
    };
  }
  const bad = /[^\x20-\x7e]/.exec(value);
  if (bad) {
    const code = bad[0].codePointAt(0)!.toString(16).padStart(2, '0');
    return {
      ok: false,
      empty: false,
      message: `value has a character outside printable ASCII (U+${code.toUpperCase().padStart(4, '0')} at position ${bad.index + 1}); the ${field} header takes printable ASCII only`,
    };
  }
  return { ok: true, value };
}

/** A short, printable preview of a value for messages. */
export function preview(value: string, max = 40): string {
  const shown = value.length > max ? `${value.slice(0, max)}...` : value;
  return JSON.stringify(shown);
}
