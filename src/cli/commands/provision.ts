import {
  authorities,
  basicEncodingsDiffer,
  createHttpClient,
  describeBasicEncoding,
  type AuthorityModule,
  type AuthorityRegistry,
  type BasicAuthEncoding,
  type Credentials,
  type HttpClient,
  type LoginInterop,
} from '../../authorities/index.js';
import { accountFingerprint, type AgentConfig } from '../../config/index.js';
import { createIdentityResolver } from '../../identity/index.js';
import { type BootTime, readBootTime } from '../../lib/clock.js';
import { stateAccess } from '../../state.js';
import { openStore } from '../../store/index.js';
import { CliError, configAccount, configOption, type Io, parse, println, readConfig, UsageError } from '../common.js';
import { ask, readAll } from '../prompt.js';

/** One line per authority: its credential fields, optional ones in brackets. */
export function credentialFieldsHelp(registry: AuthorityRegistry = authorities): string {
  const width = Math.max(...registry.names.map((n) => n.length));
  return registry.modules
    .map((m) => `  ${m.name.padEnd(width)}  ${m.credentials.map((f) => (f.required ? f.name : `[${f.name}]`)).join(', ')}`)
    .join('\n');
}

export const provisionHelp = (registry: AuthorityRegistry = authorities): string => `Usage: pos-token-agent provision --account NAME [--stdin] [--no-verify] [--config FILE]

Stores an account's credentials, encrypted, in the state database. Secrets are asked for
with hidden input (nothing is shown as you type), or read as one JSON object on standard
input with --stdin, e.g.
  {"clientId": "...", "clientSecret": "...", "presharedKey": "..."}
The fields depend on the account's authority ([optional]):
${credentialFieldsHelp(registry)}
Unless --no-verify, they are first checked with one real login; nothing is stored if it fails.
With client_secret_basic it says which encoding of the ID and secret the server accepted, and keeps
that with them. Re-running it replaces the account's credentials. A state database that cannot be used on this
machine (copied from another box, or its key lost) is renamed aside (*.unusable-<time>), not
deleted, and a fresh one is made.`;

export interface ProvisionResult {
  version: number;
  /** Where an unusable state database was moved. */
  setAside?: string;
  verified?: {
    expiresInS: number;
    /** client_secret_basic: the encoding the server accepted, when the two differ for these credentials. */
    basicAuthEncoding?: BasicAuthEncoding;
  };
}

/** Checks the credentials (unless told not to) and stores them; the verifying login's token is kept. */
export async function provisionAccount(
  config: AgentConfig,
  name: string,
  credentials: Credentials,
  options: { verify: boolean; http?: HttpClient; env?: NodeJS.ProcessEnv; authorities?: AuthorityRegistry },
): Promise<ProvisionResult> {
  const env = options.env ?? process.env;
  const registry = options.authorities ?? authorities;
  const account = configAccount(config, name);
  const http = options.http ?? createHttpClient({ proxy: config.proxy, env });
  const authority = registry.create(account.authority, { http, now: Date.now });
  let verified:
    | {
        accessToken: string;
        tokenType: string;
        scope?: string;
        expiresInS: number;
        refreshToken?: string;
        refreshExpiresInS?: number;
        at: number;
        boot: BootTime | undefined;
        interop: LoginInterop | undefined;
      }
    | undefined;
  if (options.verify) {
    const resolve = createIdentityResolver(
      { profileDirs: config.deviceProfileDirs, root: config.identityRoot, env },
      (a) => registry.get(a.authority)?.deviceHeaders,
    );
    const identity = await resolve(account);
    if (!identity.ok) throw new CliError(`cannot verify: ${identity.message}`);
    const result = await authority.login({ account, credentials, identity: identity.identity });
    if (!result.ok) {
      throw new CliError(
        `verification failed, nothing stored: ${result.failure.message}` +
          (result.failure.reason === 'upstream_unavailable' ? '\n(use --no-verify to store them anyway while offline)' : ''),
      );
    }
    // Received now: the wall clock and, as the agent records it, the boot and its uptime, so that the agent
    // (restarted in this boot) measures the token's age by uptime rather than by a clock that may step.
    verified = { ...result.token, at: Date.now(), boot: readBootTime(), interop: result.interop };
  }
  (http as { close?: () => void }).close?.();
  const access = await stateAccess(config, { env });
  // A database that cannot be used here (another machine's, a lost key) is set aside, not deleted.
  const store = openStore({ ...access.options, setAsideUnusable: true });
  try {
    // What the check login learned goes with the new credentials, so the agent does not try again what was refused.
    const version = store.putCredentials(name, account.authority, credentials, verified?.interop);
    if (verified) {
      store.putToken(name, {
        accessToken: verified.accessToken,
        tokenType: verified.tokenType,
        ...(verified.scope !== undefined ? { scope: verified.scope } : {}),
        obtainedAt: verified.at,
        ...(verified.boot ? { bootId: verified.boot.id, bootUptimeMs: verified.boot.uptimeMs } : {}),
        expiresAt: verified.at + verified.expiresInS * 1000,
        lifetimeS: verified.expiresInS,
        credentialsVersion: version,
        configFingerprint: accountFingerprint(account),
        ...(verified.refreshToken !== undefined
          ? { refreshToken: verified.refreshToken, refreshExpiresAt: verified.at + (verified.refreshExpiresInS ?? 0) * 1000 }
          : {}),
      });
      const encoding = verified.interop?.basicAuthEncoding;
      return {
        version,
        verified: {
          expiresInS: verified.expiresInS,
          ...(encoding !== undefined && basicEncodingsDiffer(credentials) ? { basicAuthEncoding: encoding } : {}),
        },
        ...(store.setAside ? { setAside: store.setAside } : {}),
      };
    }
    return { version, ...(store.setAside ? { setAside: store.setAside } : {}) };
  } finally {
    store.close();
  }
}

/**
 * The credentials of one account of `module`: as one JSON object on standard input, or asked for one
 * field after another (secrets with nothing shown). Every required field must be given; values are
 * at most 200 printable characters.
 */
export async function gatherCredentials(io: Io, module: AuthorityModule, options: { stdin: boolean }): Promise<Credentials> {
  const fields = module.credentials;
  const credentials: Credentials = {};
  if (options.stdin) {
    let json: unknown;
    try {
      json = JSON.parse(await readAll(io.stdin, 64 * 1024));
    } catch (err) {
      if (err instanceof CliError) throw err;
      throw new CliError('standard input is not one JSON object');
    }
    if (typeof json !== 'object' || json === null || Array.isArray(json)) {
      throw new CliError('standard input must be one JSON object');
    }
    const allowed = new Set(fields.map((f) => f.name));
    for (const [key, value] of Object.entries(json)) {
      if (!allowed.has(key)) {
        throw new CliError(`unknown field ${JSON.stringify(key)} for ${module.name}; expected ${[...allowed].join(', ')}`);
      }
      if (typeof value !== 'string') throw new CliError(`field ${key} must be a string`);
      if (value !== '') credentials[key] = value;
    }
  } else {
    for (const f of fields) {
      const value = (await ask(io, `${f.label}${f.required ? '' : ' (Enter to leave out)'}: `, f.secret)).trim();
      if (value !== '') credentials[f.name] = value;
    }
  }
  for (const f of fields) {
    const v = credentials[f.name];
    if (f.required && !v) throw new CliError(`${f.name} is required for ${module.name}`);
    if (v && (v.length > 200 || /[\x00-\x1f\x7f]/.test(v))) {
      throw new CliError(`${f.name} must be at most 200 printable characters`);
    }
  }
  return credentials;
}

export async function provisionCommand(argv: string[], io: Io): Promise<number> {
  const { values } = parse(argv, {
    ...configOption,
    account: { type: 'string', short: 'a' },
    stdin: { type: 'boolean' },
    'no-verify': { type: 'boolean' },
  });
  if (values.help) return println(io.stdout, provisionHelp()), 0;
  if (!values.account) throw new UsageError('--account NAME is required');
  const config = readConfig(values.config, io.env);
  // A usage error (exit 2), like an unknown account for `token`: the name given is not one of the config's.
  const account = configAccount(config, values.account);
  const credentials = await gatherCredentials(io, authorities.module(account.authority), { stdin: Boolean(values.stdin) });
  const result = await provisionAccount(config, values.account, credentials, { verify: !values['no-verify'], env: io.env });
  if (result.setAside) {
    println(
      io.stderr,
      `note: the old state database could not be used on this machine (copied from another box, or its key was lost); it was kept as ${result.setAside}. Re-provision the other accounts too.`,
    );
  }
  println(
    io.stdout,
    `Stored credentials for account ${values.account} (${account.authority}).` +
      (result.verified
        ? ` Verified with a login: the identity service issued a token valid for ${result.verified.expiresInS} s.` +
          (result.verified.basicAuthEncoding
            ? ` The server accepted client_secret_basic with ${describeBasicEncoding(result.verified.basicAuthEncoding)} of the client ID and secret.`
            : '')
        : ' Not verified (--no-verify).'),
  );
  return 0;
}
