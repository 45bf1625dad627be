import type { AuthorityName } from '../config/index.js';
import { createEtaEinvoicing } from './eta-einvoicing.js';
import { createEtaEreceipt } from './eta-ereceipt.js';
import { createImpactGr } from './impact-gr.js';
import { createMyInvois } from './myinvois.js';
import { createOAuth2 } from './oauth2.js';
import { createSepay } from './sepay.js';
import type { Authority, AuthorityDeps } from './types.js';

export { createHttpClient, TransportError, type HttpClient, type HttpRequest, type HttpResponse } from './http.js';
export { decodeJwtClaims, parseRetryAfter } from './oauth-common.js';
export * from './types.js';

const FACTORIES: Record<AuthorityName, (deps: AuthorityDeps) => Authority> = {
  'eta-ereceipt': createEtaEreceipt,
  'eta-einvoicing': createEtaEinvoicing,
  myinvois: createMyInvois,
  'impact-gr': createImpactGr,
  sepay: createSepay,
  oauth2: createOAuth2,
};

export function createAuthority(name: AuthorityName, deps: AuthorityDeps): Authority {
  const factory = FACTORIES[name];
  if (!factory) throw new Error(`authority ${name} is not built into this version`);
  return factory(deps);
}
