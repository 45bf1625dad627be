/**
 * Device identity for a login. For now the values come from the account's config
 * (`identity`); device profiles extend this.
 */
import type { AccountConfig, DeviceIdentity } from '../config/index.js';

export type IdentityResult = { ok: true; identity: DeviceIdentity } | { ok: false; message: string };

/** Identity fields an authority cannot log in without. */
const REQUIRED: Partial<Record<AccountConfig['authority'], Array<keyof DeviceIdentity>>> = {
  'eta-ereceipt': ['posserial'],
};

export async function resolveIdentity(account: AccountConfig): Promise<IdentityResult> {
  const identity: DeviceIdentity = { ...account.identity };
  const missing = (REQUIRED[account.authority] ?? []).filter((k) => !identity[k]);
  if (missing.length) {
    return {
      ok: false,
      message: `no ${missing.join(', ')} for account ${account.name}; set accounts.${account.name}.identity.${missing[0]} in the config`,
    };
  }
  return { ok: true, identity };
}
