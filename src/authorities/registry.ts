/**
 * The one list of authorities. Each is a self-describing module (authorities/<name>/); everything that
 * depends on which authority an account uses reads it from here: config validation (the modules' option
 * schemas merged into the account schema), provisioning (credential fields, prompts, the URL asked for),
 * log redaction (the secret fields), device identity (the device headers, carried on each account),
 * doctor, and --help.
 */
import {
  loadConfig as loadConfigWith,
  parseConfig as parseConfigWith,
  type AgentConfig,
  type AuthorityConfigSpec,
  type ConfigEnv,
} from '../config/index.js';
import type { Authority, AuthorityDeps, AuthorityModule, CredentialField, Credentials, LoginResult } from './types.js';

export interface AuthorityRegistry {
  /** Names in the order they were registered (shown in lists and messages). */
  readonly names: ReadonlyArray<string>;
  readonly modules: ReadonlyArray<AuthorityModule>;
  get(name: string): AuthorityModule | undefined;
  /** The module of `name`; throws naming the registered ones when there is none. */
  module(name: string): AuthorityModule;
  /** An authority instance for `name`, whose failures never repeat a secret credential value. */
  create(name: string, deps: AuthorityDeps): Authority;
  /** Names of every secret credential field (clientSecret, presharedKey, apiKey, ...), for log redaction. */
  readonly secretFields: ReadonlyArray<string>;
  /** A config validated against these authorities. */
  parseConfig(json: unknown, source: string, env?: ConfigEnv): AgentConfig;
  loadConfig(path: string, env?: ConfigEnv): AgentConfig;
}

const NAME = /^[a-z0-9][a-z0-9-]{0,31}$/;

export function createRegistry(modules: ReadonlyArray<AuthorityModule>): AuthorityRegistry {
  const byName = new Map<string, AuthorityModule>();
  for (const m of modules) {
    if (!NAME.test(m.name)) throw new Error(`authority module name ${JSON.stringify(m.name)}: expected lower-case letters, digits and "-"`);
    if (byName.has(m.name)) throw new Error(`authority ${m.name} is registered twice`);
    if (!(m.endpoint.option in m.options)) throw new Error(`authority ${m.name}: its endpoint option ${m.endpoint.option} is not among its options`);
    byName.set(m.name, m);
  }
  const specs: ReadonlyArray<AuthorityConfigSpec> = modules.map((m) => ({
    name: m.name,
    options: m.options,
    endpoint: { option: m.endpoint.option, kind: m.endpoint.kind },
    ...(m.deviceHeaders ? { deviceHeaders: m.deviceHeaders } : {}),
    ...(m.limits?.loginsPerMinute ? { loginsPerMinute: m.limits.loginsPerMinute } : {}),
  }));
  const secretFields = [...new Set(modules.flatMap((m) => m.credentials.filter((f) => f.secret).map((f) => f.name)))];
  const module = (name: string): AuthorityModule => {
    const m = byName.get(name);
    if (!m) throw new Error(`authority ${name} is not built into this version (known: ${[...byName.keys()].join(', ')})`);
    return m;
  };
  return Object.freeze({
    names: Object.freeze(modules.map((m) => m.name)),
    modules: Object.freeze([...modules]),
    get: (name: string) => byName.get(name),
    module,
    create: (name: string, deps: AuthorityDeps) => scrubbing(module(name).create(deps), module(name).credentials),
    secretFields: Object.freeze(secretFields),
    parseConfig: (json: unknown, source: string, env: ConfigEnv = {}) => parseConfigWith(specs, json, source, env),
    loadConfig: (path: string, env: ConfigEnv = process.env) => loadConfigWith(specs, path, env),
  });
}

/**
 * A second line of defence around an authority: a failure's message, error and description never carry
 * a secret credential value (or the refresh token), whatever the service echoed.
 */
function scrubbing(authority: Authority, fields: ReadonlyArray<CredentialField>): Authority {
  const secretsOf = (credentials: Credentials, extra: ReadonlyArray<string | undefined> = []): string[] =>
    [...fields.filter((f) => f.secret).map((f) => credentials[f.name]), ...extra].filter(
      (v): v is string => typeof v === 'string' && v.length >= 4,
    );
  const scrub = (result: LoginResult, secrets: string[]): LoginResult => {
    if (result.ok || secrets.length === 0) return result;
    const clean = (text: string | undefined): string | undefined => {
      if (text === undefined) return text;
      let out = text;
      for (const s of secrets) out = out.split(s).join('[redacted]');
      return out;
    };
    const f = result.failure;
    return {
      ok: false,
      failure: {
        ...f,
        message: clean(f.message)!,
        ...(f.error !== undefined ? { error: clean(f.error)! } : {}),
        ...(f.errorDescription !== undefined ? { errorDescription: clean(f.errorDescription)! } : {}),
      },
    };
  };
  const refresh = authority.refresh;
  return {
    ...authority,
    login: async (request) => scrub(await authority.login(request), secretsOf(request.credentials)),
    ...(refresh
      ? {
          refresh: async (request) =>
            scrub(await refresh.call(authority, request), secretsOf(request.credentials, [request.refreshToken, request.accessToken])),
        }
      : {}),
    ...(authority.loginLimit ? { loginLimit: authority.loginLimit.bind(authority) } : {}),
  };
}
