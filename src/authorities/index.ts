import type { AuthorityName } from '../config/index.js';
import { createEtaEreceipt } from './eta-ereceipt.js';
import type { Authority, AuthorityDeps } from './types.js';

export { createHttpClient, TransportError, type HttpClient, type HttpRequest, type HttpResponse } from './http.js';
export { decodeJwtClaims, parseRetryAfter } from './oauth-common.js';
export * from './types.js';

const FACTORIES: Partial<Record<AuthorityName, (deps: AuthorityDeps) => Authority>> = {
  'eta-ereceipt': createEtaEreceipt,
};

export function createAuthority(name: AuthorityName, deps: AuthorityDeps): Authority {
  const factory = FACTORIES[name];
  if (!factory) throw new Error(`authority ${name} is not built into this version`);
  return factory(deps);
}
