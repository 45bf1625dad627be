/**
 * The one answer to a request naming an account the agent does not have: 404 `unknown_account` with the accounts
 * it has, on every route (the token routes, the proxy, the outbox's enqueue and list).
 */
import type { AccountConfig } from '../config/index.js';
import type { AccountDirectory } from './context.js';
import { HttpError } from './http.js';

/** The account `name` names, or the 404 naming the accounts there are and where one is added. */
export function knownAccount(accounts: AccountDirectory, name: string, configFile: () => string): AccountConfig {
  const account = accounts.account(name);
  if (account) return account;
  const known = accounts.accountNames();
  const have = known.length === 0 ? 'the agent has no accounts yet' : `the agent has ${known.join(', ')}`;
  throw unknownAccount(`no account named ${name}; ${have}: name one of them, or add accounts.${name} to ${configFile()}`, known);
}

/** The 404 itself; the token source's own refusal (it knows its accounts too) is answered through it as well. */
export function unknownAccount(message: string, known?: string[]): HttpError {
  return new HttpError(404, { error: 'unknown_account', message, ...(known ? { known_accounts: known } : {}) });
}
