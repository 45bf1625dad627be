/**
 * What the token manager needs of the store: the SQLite store (store/) satisfies it, and tests may pass a fake.
 */
import type { LoginRecord, StoredCredentials, StoredInterop, StoredToken } from '../store/index.js';
import type { IdentityStore } from './identity-tracker.js';

export interface TokenStore extends IdentityStore {
  getCredentials(account: string): StoredCredentials | undefined;
  credentialsVersion(account: string): number | undefined;
  getToken(account: string): StoredToken | undefined;
  putToken(account: string, token: StoredToken): void;
  deleteToken(account: string, onlyIf?: string): boolean;
  recordLogin(record: LoginRecord): void;
  /** What a login learned (the Basic encoding the server accepted), kept with that version of the credentials. */
  putInterop(account: string, credentialsVersion: number, interop: StoredInterop): boolean;
}
