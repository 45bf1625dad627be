/** Shared pieces of the identity tests: fixture trees, accounts, temporary profile directories. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { type AccountConfig } from '../../../src/config/index.js';
import { parseConfig } from '../../../src/authorities/index.js';

export const FIXTURES = resolve(import.meta.dirname, '../../fixtures/identity');
export const SHIPPED_PROFILES = resolve(import.meta.dirname, '../../../device-profiles');

/** A fixture tree used as the identity root. */
export const tree = (name: string): string => join(FIXTURES, name);

export function account(extra: Record<string, unknown> = {}, authority = 'eta-ereceipt'): AccountConfig {
  const config = parseConfig(
    { accounts: { main: { authority, ...(authority === 'oauth2' ? { tokenUrl: 'https://auth.example.com/token' } : { identityUrl: 'https://id.eta.gov.eg' }), ...extra } } },
    'test-config.json',
  );
  return config.accounts.main!;
}

/** A temporary directory of profiles; each key is a file name without ".json". */
export function profileDir(profiles: Record<string, unknown>): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'pos-profiles-'));
  for (const [name, body] of Object.entries(profiles)) {
    writeFileSync(join(dir, `${name}.json`), typeof body === 'string' ? body : JSON.stringify(body, null, 2));
  }
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A profile named `name` whose values are `values` (a source or list per field). */
export function profile(name: string, values: Record<string, unknown>, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { name, description: `test profile ${name}`, values, ...extra };
}
