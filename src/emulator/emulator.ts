/**
 * The emulator put together: settings (settings.ts), the authority's wire (wire/<name>.ts), the signing key,
 * faults and limiter lent to the wire, the token side (token-request.ts), the submission API (api.ts), the
 * admin endpoints (admin.ts), routing (router.ts) and the HTTP server (listener.ts); and the `Emulator` face
 * over them. What a token request means is the business of the wire module.
 */
import { createAdmin, type AdminDeps } from './admin.js';
import { type ApiServer, createApi } from './api.js';
import { type ApiAuth, createApiAuth } from './api-auth.js';
import { type ApiFaultState, createApiFaultState } from './api-faults.js';
import { type ApiRecords, createApiRecords } from './api-records.js';
import { createFaultState, type FaultState } from './faults.js';
import { createSigningKey, type SigningKey } from './jwt.js';
import { createListener, type Listener } from './listener.js';
import { createSlidingWindow } from './rate-limit.js';
import { createRouter } from './router.js';
import { type EmulatorSettings, readSettings } from './settings.js';
import { handleTokenRequest } from './token-request.js';
import { createTokenStats, type TokenStats } from './token-stats.js';
import type { Emulator, EmulatorAuthority, EmulatorOptions, EmulatorPaths, EmulatorStats, PrincipalKind } from './types.js';
import { validateApiFaults, validateFaults } from './validate.js';
import { WIRES } from './wire/index.js';
import type { Wire, WireContext } from './wire/types.js';
const { randomUUID } = process.getBuiltinModule('node:crypto');

const PRINCIPAL_KINDS: readonly PrincipalKind[] = ['devices', 'clients', 'companies'];

/** The token paths of every authority. */
export const TOKEN_PATHS: Readonly<Record<EmulatorAuthority, EmulatorPaths>> = Object.freeze(
  Object.fromEntries(Object.entries(WIRES).map(([name, spec]) => [name, Object.freeze({ ...spec.paths })])) as Record<
    EmulatorAuthority,
    EmulatorPaths
  >,
);

export const AUTHORITIES = Object.freeze(Object.keys(WIRES)) as readonly EmulatorAuthority[];

/** The parts of one emulator. */
interface Parts {
  settings: EmulatorSettings;
  key: SigningKey;
  faults: FaultState;
  wire: Wire;
  tokenStats: TokenStats;
  apiAuth: ApiAuth;
  apiFaults: ApiFaultState;
  apiRecords: ApiRecords;
  api: ApiServer;
  listener: Listener;
}

export function createEmulator(options: EmulatorOptions = {}): Emulator {
  const parts = assemble(readSettings(options));
  for (const kind of PRINCIPAL_KINDS) {
    const list: unknown = options[kind];
    if (list === undefined) continue;
    if (!Array.isArray(list)) throw new TypeError(`${kind}: expected an array`);
    list.forEach((p, i) => addPrincipal(parts, kind, p, `${kind}[${i}]`));
  }
  return face(parts);
}

function assemble(settings: EmulatorSettings): Parts {
  const { clock, log } = settings;
  const key = createSigningKey();
  const faults = createFaultState();
  const baseUrl = (): string => listener.url();
  const apiAuth = createApiAuth({ key, clock, issuer: baseUrl });
  const wire = settings.spec.create(wireContext(settings, { key, faults, apiAuth, baseUrl }));
  const apiFaults = createApiFaultState();
  const apiRecords = createApiRecords();
  const api = createApi({
    authority: settings.authority,
    clock,
    log,
    auth: apiAuth,
    faults: apiFaults,
    records: apiRecords,
    errors: wire.errors,
    maxBodyBytes: settings.apiMaxBodyBytes,
  });
  const tokenStats = createTokenStats(settings.hasRefresh);
  const tokenDeps = { wire, faults, stats: tokenStats, clock, log };
  const parts: Omit<Parts, 'listener'> = { settings, key, faults, wire, tokenStats, apiAuth, apiFaults, apiRecords, api };
  const handle = createRouter({
    api,
    admin: createAdmin(adminDeps(parts)),
    wire,
    tokenRequest: (endpoint, req, res, signal) => handleTokenRequest(tokenDeps, endpoint, req, res, signal),
    baseUrl,
  });
  const { host, port, strict } = settings;
  const listener = createListener({ host, port, log, fields: { strict }, prepare: () => key.prepare(), handle });
  return { ...parts, listener };
}

/** What the server lends the wire: signing (with the lifetime fault), the limiter, the refreshFail fault. */
function wireContext(
  settings: EmulatorSettings,
  lent: { key: SigningKey; faults: FaultState; apiAuth: ApiAuth; baseUrl: () => string },
): WireContext {
  const { clock } = settings;
  const { key, faults, apiAuth } = lent;
  const limiter = settings.perMinute > 0 ? createSlidingWindow(settings.perMinute) : undefined;
  return {
    strict: settings.strict,
    clock,
    key,
    accessToken(claims) {
      const lifetime = faults.lifetimeS() ?? settings.lifetimeS;
      const iat = Math.floor(clock.now() / 1000);
      const jti = randomUUID();
      const token = key.sign({ iss: lent.baseUrl(), iat, nbf: iat, exp: iat + lifetime, jti, ...claims });
      apiAuth.issued(jti);
      return { token, lifetimeS: lifetime };
    },
    refreshLifetimeS: settings.refreshLifetimeS,
    limit: (k) => (limiter ? limiter.take(k, clock.monotonic()) : { allowed: true }),
    takeRefreshFail: () => faults.takeRefreshFail(),
  };
}

function adminDeps(p: Omit<Parts, 'listener'>): AdminDeps {
  const { authority, strict, spec, log } = p.settings;
  return {
    info: () => ({ authority, strict, paths: { ...spec.paths }, principals: spec.principalKind }),
    stats: () => stats(p),
    resetStats: () => resetStats(p),
    faults: p.faults,
    principals: p.wire.principals,
    ...(p.wire.expireRefreshTokens ? { expireRefreshTokens: p.wire.expireRefreshTokens } : {}),
    api: { faults: p.apiFaults, records: p.apiRecords, revoke: () => p.apiAuth.revokeAll() },
    log,
  };
}

function addPrincipal(p: Pick<Parts, 'settings' | 'wire'>, kind: PrincipalKind, input: unknown, path: string): void {
  const { authority, spec } = p.settings;
  if (kind !== spec.principalKind) {
    throw new TypeError(`${path}: the ${authority} emulator registers ${spec.principalKind}, not ${kind}`);
  }
  mustBeValid(p.wire.principals.add(input, path));
}

function mustBeValid<T>(result: { ok: true; value: T } | { ok: false; problems: string[] }): T {
  if (!result.ok) throw new TypeError(result.problems.join('; '));
  return result.value;
}

function stats(p: Pick<Parts, 'tokenStats' | 'api'>): EmulatorStats {
  const copy = p.tokenStats.get();
  const apiStats = p.api.stats();
  if (apiStats) copy.api = apiStats;
  return copy;
}

function resetStats(p: Pick<Parts, 'tokenStats' | 'api'>): void {
  p.tokenStats.reset();
  p.api.resetStats();
}

/** The public face of the parts. */
function face(p: Parts): Emulator {
  const { authority, spec, hasRefresh } = p.settings;
  const { wire, listener } = p;
  return {
    authority,
    paths: Object.freeze({ ...spec.paths }),
    get url() {
      return listener.url();
    },
    get port() {
      return listener.port();
    },
    start: () => listener.start(),
    stop: () => listener.stop(),
    setFaults: (patch) => p.faults.apply(mustBeValid(validateFaults(patch, 'faults', { refresh: hasRefresh }))),
    clearFaults: () => p.faults.clear(),
    addDevice: (device) => addPrincipal(p, 'devices', device, 'device'),
    addClient: (client) => addPrincipal(p, 'clients', client, 'client'),
    addCompany: (company) => addPrincipal(p, 'companies', company, 'company'),
    expireRefreshTokens() {
      if (!wire.expireRefreshTokens) throw new TypeError(`the ${authority} emulator has no refresh tokens`);
      return wire.expireRefreshTokens();
    },
    stats: () => stats(p),
    resetStats: () => resetStats(p),
    publicJwk: () => p.key.publicJwk(),
    apiSubmissions: () => p.apiRecords.list(),
    clearApiSubmissions: () => p.apiRecords.clear(),
    setApiFaults: (patch) => p.apiFaults.apply(mustBeValid(validateApiFaults(patch, 'apiFaults'))),
    clearApiFaults: () => p.apiFaults.clear(),
    revokeTokens: () => p.apiAuth.revokeAll(),
  };
}
