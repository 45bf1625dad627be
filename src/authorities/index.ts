/**
 * The token services the agent speaks, behind one registry. Adding one: a folder authorities/<name>/
 * whose index.ts exports an AuthorityModule, and one line in BUILT_IN below.
 */
import type { AccountConfig, AgentConfig, ConfigEnv, DeviceHeaders } from '../config/index.js';
import { etaEinvoicing } from './eta-einvoicing/index.js';
import { etaEreceipt } from './eta-ereceipt/index.js';
import { impactGr } from './impact-gr/index.js';
import { myinvois } from './myinvois/index.js';
import { oauth2 } from './oauth2/index.js';
import { createRegistry, type AuthorityRegistry } from './registry.js';
import { sepay } from './sepay/index.js';
import type { Authority, AuthorityDeps } from './types.js';

export { createHttpClient, TransportError, type HttpClient, type HttpRequest, type HttpResponse, type NodeHttpClient } from './http.js';
export { basicEncodingsDiffer, decodeJwtClaims, describeBasicEncoding, isSilentRefusal, parseRetryAfter } from './oauth-common.js';
export { createRegistry, type AuthorityRegistry } from './registry.js';
export * from './types.js';

/** The authorities built into this version, in the order lists show them. */
const BUILT_IN = [etaEreceipt, etaEinvoicing, myinvois, impactGr, sepay, oauth2];

export const authorities: AuthorityRegistry = createRegistry(BUILT_IN);

export function createAuthority(name: string, deps: AuthorityDeps): Authority {
  return authorities.create(name, deps);
}

/** The device headers the account's authority sends (undefined: none, and no device profile is read). */
export function deviceHeadersOf(account: Pick<AccountConfig, 'authority'>): DeviceHeaders | undefined {
  return authorities.get(account.authority)?.deviceHeaders;
}

/** The token service's URL exactly as the account configures it (an endpoint keeps its query string). */
export function endpointUrl(account: AccountConfig): string {
  const option = authorities.get(account.authority)?.endpoint.option;
  const value = option === undefined ? undefined : account[option];
  return typeof value === 'string' ? value : account.identityUrl;
}

/** The config at `path`, validated against the built-in authorities. */
export function loadConfig(path: string, env: ConfigEnv = process.env): AgentConfig {
  return authorities.loadConfig(path, env);
}

/** A parsed config validated against the built-in authorities. */
export function parseConfig(json: unknown, source: string, env: ConfigEnv = {}): AgentConfig {
  return authorities.parseConfig(json, source, env);
}
