/**
 * Config loading and validation. Parsed once at the edge (cli/) and passed inward typed.
 * Every problem is reported with the file, the key path and what was expected.
 */
import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { z } from 'zod';
import { suggestKey } from './suggest.js';

export { closestKey, editDistance, knownKeysAt, suggestKey } from './suggest.js';

export const DEFAULT_CONFIG_PATH = '/etc/pos-token-agent/config.json';
export const SUPPORTED_AUTHORITIES = ['eta-ereceipt', 'eta-einvoicing', 'myinvois', 'impact-gr', 'sepay', 'oauth2'] as const;
export type AuthorityName = (typeof SUPPORTED_AUTHORITIES)[number];

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]', '::1']);

export function isLoopbackHost(hostname: string): boolean {
  return LOOPBACK_HOSTS.has(hostname) || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname);
}

const ACCOUNT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

const httpsUrl = (what: 'base' | 'endpoint') => z.string().superRefine((value, ctx) => {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    ctx.addIssue({ code: 'custom', message: `expected an absolute URL, got ${JSON.stringify(value)}` });
    return;
  }
  if (url.username || url.password) {
    ctx.addIssue({ code: 'custom', message: 'expected a URL without user or password in it' });
  } else if (url.hash || (what === 'base' && url.search)) {
    ctx.addIssue({ code: 'custom', message: `expected ${what === 'base' ? 'a base URL without query or fragment' : 'a URL without a fragment'}` });
  } else if (url.protocol === 'http:' && !isLoopbackHost(url.hostname)) {
    ctx.addIssue({
      code: 'custom',
      message: `expected https:// (plain http:// is allowed only for loopback hosts), got ${JSON.stringify(value)}`,
    });
  } else if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    ctx.addIssue({ code: 'custom', message: `expected an https:// URL, got ${JSON.stringify(value)}` });
  }
});
const identityUrl = httpsUrl('base');
const tokenUrl = httpsUrl('endpoint');

const headerValue = (max: number) =>
  z
    .string()
    .max(max, `expected at most ${max} characters`)
    .regex(/^[\x20-\x7e]*$/, 'expected printable ASCII (it is sent as an HTTP header)');

const identitySchema = z.strictObject({
  posserial: headerValue(100).optional(),
  pososversion: headerValue(50).optional(),
  posmodelframework: headerValue(10).optional(),
});

const positiveInt = (max: number) => z.number().int().min(1).max(max);

const absolutePath = z.string().refine((p) => isAbsolute(p), 'expected an absolute path');

const PROFILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** Headers the agent sets itself, or that carry secrets; `headers` may not set them. */
const RESERVED_HEADERS = new Set([
  'authorization', 'content-type', 'content-length', 'host', 'transfer-encoding', 'connection',
  'presharedkey', 'posserial', 'pososversion', 'posmodelframework', 'onbehalfof', 'proxy-authorization', 'cookie',
]);

const nonEmpty = (max: number) =>
  z.string().min(1, 'expected a non-empty string').max(max, `expected at most ${max} characters`);

/** Which per-account options each authority uses; any other is refused so a typo cannot go unnoticed. */
const AUTHORITY_OPTIONS: Record<string, ReadonlyArray<string>> = {
  'eta-ereceipt': ['identityUrl'],
  'eta-einvoicing': ['identityUrl', 'scope', 'onbehalfof', 'clientAuth'],
  myinvois: ['identityUrl', 'scope', 'onbehalfof'],
  'impact-gr': ['identityUrl'],
  sepay: ['identityUrl'],
  oauth2: ['tokenUrl', 'scope', 'audience', 'clientAuth'],
};
const OPTION_KEYS = ['identityUrl', 'tokenUrl', 'scope', 'onbehalfof', 'audience', 'clientAuth'] as const;

const accountSchema = z.strictObject({
  authority: z.string().superRefine((value, ctx) => {
    if ((SUPPORTED_AUTHORITIES as readonly string[]).includes(value)) return;
    ctx.addIssue({
      code: 'custom',
      message: `expected one of ${SUPPORTED_AUTHORITIES.join(', ')}, got ${JSON.stringify(value)}`,
    });
  }),
  identityUrl: identityUrl.optional(),
  tokenUrl: tokenUrl.optional(),
  deviceProfile: z.string().regex(PROFILE_NAME, 'expected a profile name (letters, digits, ".", "_", "-")').optional(),
  identity: identitySchema.optional(),
  scope: headerValue(500).min(1, 'expected a non-empty string').optional(),
  onbehalfof: nonEmpty(100).regex(/^[\x21-\x7e]+$/, 'expected printable ASCII without spaces').optional(),
  audience: nonEmpty(500).optional(),
  clientAuth: z.enum(['client_secret_basic', 'client_secret_post']).optional(),
  headers: z
    .record(
      z.string().regex(HEADER_NAME, 'expected an HTTP header name').refine(
        (name) => !RESERVED_HEADERS.has(name.toLowerCase()),
        'this header is set by the agent and cannot be overridden here',
      ),
      headerValue(500),
    )
    .optional(),
  tls: z
    .strictObject({
      legacyServerConnect: z.boolean().optional(),
      caFile: absolutePath.optional(),
    })
    .optional(),
  loginsPerMinute: z.number().int().min(1).max(600).optional(),
  timeouts: z
    .strictObject({
      connectMs: positiveInt(60_000).optional(),
      responseMs: positiveInt(120_000).optional(),
      totalMs: positiveInt(300_000).optional(),
    })
    .optional(),
  backoff: z
    .strictObject({
      initialS: z.number().min(0.1).max(600).optional(),
      maxS: z.number().min(1).max(3600).optional(),
      rejectedRetryS: z.number().min(30).max(86_400).optional(),
    })
    .optional(),
  forcedRefreshMinIntervalS: z.number().min(0).max(3600).optional(),
}).superRefine((account, ctx) => {
  const allowed = AUTHORITY_OPTIONS[account.authority];
  if (!allowed) return;
  for (const key of OPTION_KEYS) {
    if (account[key] !== undefined && !allowed.includes(key)) {
      ctx.addIssue({ code: 'custom', path: [key], message: `not used by authority ${account.authority}; remove it` });
    }
  }
  const needs = account.authority === 'oauth2' ? 'tokenUrl' : 'identityUrl';
  if (account[needs] === undefined) {
    ctx.addIssue({ code: 'custom', path: [needs], message: `expected a URL (required for authority ${account.authority})` });
  }
});

const configSchema = z.strictObject({
  socket: absolutePath.optional(),
  stateDir: absolutePath.optional(),
  logLevel: z.enum(['debug', 'info', 'warn', 'error']).optional(),
  deviceProfileDirs: z.array(absolutePath).optional(),
  identityRoot: absolutePath.optional(),
  proxy: z
    .strictObject({
      url: z
        .union([z.string(), z.null()])
        .superRefine((value, ctx) => {
          if (value === null) return;
          let url: URL;
          try {
            url = new URL(value);
          } catch {
            ctx.addIssue({ code: 'custom', message: `expected a proxy URL such as http://proxy:3128, got ${JSON.stringify(value)}` });
            return;
          }
          if (url.protocol !== 'http:' && url.protocol !== 'https:') {
            ctx.addIssue({ code: 'custom', message: 'expected an http:// or https:// proxy URL' });
          }
        })
        .optional(),
      noProxy: z.array(z.string().min(1)).optional(),
    })
    .optional(),
  tls: z.strictObject({ caFile: absolutePath.optional() }).optional(),
  server: z
    .strictObject({
      maxConnections: positiveInt(100_000).optional(),
      headersTimeoutMs: positiveInt(600_000).optional(),
      idleTimeoutMs: positiveInt(3_600_000).optional(),
    })
    .optional(),
  accounts: z
    .record(z.string(), accountSchema)
    .superRefine((accounts, ctx) => {
      const names = Object.keys(accounts);
      for (const name of names) {
        if (!ACCOUNT_NAME.test(name)) {
          ctx.addIssue({
            code: 'custom',
            path: [name],
            message: 'expected an account name of letters, digits, ".", "_" or "-" (at most 64)',
          });
        }
      }
    }),
});

type RawConfig = z.infer<typeof configSchema>;
type RawAccount = z.infer<typeof accountSchema>;

export interface Timeouts {
  connectMs: number;
  responseMs: number;
  totalMs: number;
}

export interface BackoffPolicy {
  initialMs: number;
  maxMs: number;
  rejectedRetryMs: number;
}

export interface DeviceIdentity {
  posserial?: string;
  pososversion?: string;
  posmodelframework?: string;
}

export interface AccountConfig {
  name: string;
  authority: AuthorityName;
  /** Base URL of the token service; for oauth2 the token endpoint itself. */
  identityUrl: string;
  /** oauth2 only: the token endpoint. */
  tokenUrl?: string;
  /** Device profile name; without one, identity comes from `identity` alone. */
  deviceProfile?: string;
  /** Fixed identity values from config; they override the profile's. */
  identity: DeviceIdentity;
  scope?: string;
  onbehalfof?: string;
  audience?: string;
  clientAuth?: 'client_secret_basic' | 'client_secret_post';
  /** Extra, non-secret headers sent with every token request. */
  headers: Record<string, string>;
  tls: AccountTls;
  /** Logins allowed per minute per client ID (myinvois defaults to 12). */
  loginsPerMinute?: number;
  timeouts: Timeouts;
  backoff: BackoffPolicy;
  forcedRefreshMinIntervalMs: number;
}

export interface AccountTls {
  /** OpenSSL's SSL_OP_LEGACY_SERVER_CONNECT on this account's connections only. */
  legacyServerConnect: boolean;
  /** Extra CA certificates (PEM), added to Node's default trust store. Account's, else the config's `tls.caFile`. */
  caFile?: string;
}

export interface ProxyConfig {
  /** null: no proxy even when HTTPS_PROXY is set; undefined: from the environment. */
  url?: string | null;
  noProxy?: string[];
}

export interface ServerLimits {
  maxConnections: number;
  headersTimeoutMs: number;
  idleTimeoutMs: number;
}

export interface AgentConfig {
  /** Where the config came from, for messages. */
  source: string;
  socket: string;
  stateDir: string;
  logLevel: 'debug' | 'info' | 'warn' | 'error';
  server: ServerLimits;
  /** Where device profiles are looked up, in order. */
  deviceProfileDirs: string[];
  /** Prefix for every file an identity source reads ("/" on a real box; a fixture tree in tests). */
  identityRoot: string;
  proxy: ProxyConfig;
  accounts: Record<string, AccountConfig>;
}

/** The profiles shipped with the install: `device-profiles/` next to `dist/`. */
export const BUNDLED_PROFILE_DIR = join(import.meta.dirname, '..', '..', 'device-profiles');
export const ETC_PROFILE_DIR = '/etc/pos-token-agent/device-profiles';

export const DEFAULTS = Object.freeze({
  timeouts: Object.freeze({ connectMs: 5_000, responseMs: 15_000, totalMs: 30_000 }),
  backoff: Object.freeze({ initialMs: 1_000, maxMs: 300_000, rejectedRetryMs: 300_000 }),
  forcedRefreshMinIntervalMs: 10_000,
  server: Object.freeze({ maxConnections: 1024, headersTimeoutMs: 5_000, idleTimeoutMs: 30_000 }),
});

export class ConfigError extends Error {
  readonly code = 'ERR_CONFIG';
  constructor(
    readonly source: string,
    readonly problems: string[],
  ) {
    super(`invalid config ${source}:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

export interface ConfigEnv {
  STATE_DIRECTORY?: string | undefined;
  RUNTIME_DIRECTORY?: string | undefined;
}

/** The config path by precedence: --config, then POS_TOKEN_AGENT_CONFIG, then the default. */
export function resolveConfigPath(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return flag ?? env.POS_TOKEN_AGENT_CONFIG ?? DEFAULT_CONFIG_PATH;
}

export function loadConfig(path: string, env: ConfigEnv = process.env): AgentConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(path, [`cannot read the file: ${readProblem(path, err)}`]);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(path, [describeJsonError(text, err)]);
  }
  return parseConfig(json, path, env);
}

function readProblem(path: string, err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'file not found';
  if (code === 'EACCES') return 'permission denied';
  if (code === 'EISDIR') {
    const inside = join(path, 'config.json');
    const example = existsSync(inside) ? inside : DEFAULT_CONFIG_PATH;
    return `${path} is a directory; give the config file itself, such as ${example}`;
  }
  return String(code ?? err);
}

/**
 * "not valid JSON at line 4, column 17: Expected property name or '}'", from the position the parser gives
 * ("in JSON at position N"; Node 22 and later add "(line L column C)", which is dropped so that every Node says
 * the same). Lines and columns count from 1; a column counts UTF-16 units, as V8 does. Without a position the
 * message says so rather than guess one. No text of the file is quoted.
 */
export function describeJsonError(text: string, err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  if (text.trim() === '') return 'not valid JSON: the file is empty';
  const at = /\s*in JSON at position (\d+)(?: \(line \d+ column \d+\))?/.exec(message);
  if (at) {
    const position = Math.min(Number(at[1]), text.length);
    const before = text.slice(0, position);
    const line = before.split('\n').length;
    const column = position - (before.lastIndexOf('\n') + 1) + 1;
    const what = (message.slice(0, at.index) + message.slice(at.index + at[0].length)).trim();
    return `not valid JSON at line ${line}, column ${column}: ${what}`;
  }
  if (text.charCodeAt(0) === 0xfeff) {
    return 'not valid JSON at line 1, column 1: the file starts with a byte order mark (save it as UTF-8 without one)';
  }
  if (/^Unexpected end of JSON input/.test(message)) return 'not valid JSON: the file ends before the JSON does (a bracket or quote is not closed)';
  // V8 then quotes the text around the problem: left out, since it could hold part of a proxy password.
  const token = /^(Unexpected token '.*?'), "[\s\S]*" is not valid JSON$/.exec(message);
  return `not valid JSON (the parser gives no position): ${token ? token[1] : message.replace(/\r?\n/g, '\\n')}`;
}

export function parseConfig(json: unknown, source: string, env: ConfigEnv = {}): AgentConfig {
  const result = configSchema.safeParse(json, { reportInput: true });
  if (!result.success) {
    throw new ConfigError(source, result.error.issues.map(describeIssue));
  }
  return normalise(result.data, source, env);
}

function describeIssue(issue: z.core.$ZodIssue): string {
  const path = issue.path.length ? issue.path.map(String).join('.') : '(top level)';
  if (issue.code === 'unrecognized_keys') {
    const input = (issue as { input?: unknown }).input;
    const keys = issue.keys.map((k) => {
      const meant = suggestKey(configSchema, issue.path, k, input);
      return meant === undefined ? JSON.stringify(k) : `${JSON.stringify(k)} (did you mean ${JSON.stringify(meant)}?)`;
    });
    return `${path}: unknown key${issue.keys.length > 1 ? 's' : ''} ${keys.join(', ')}`;
  }
  if (issue.code === 'invalid_type') {
    return `${path}: expected ${issue.expected}${issue.input === undefined ? ' (missing)' : `, got ${describeValue(issue.input)}`}`;
  }
  return `${path}: ${issue.message}`;
}

function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `${typeof value} ${JSON.stringify(value)}`;
}

function normalise(raw: RawConfig, source: string, env: ConfigEnv): AgentConfig {
  const stateDir = raw.stateDir ?? env.STATE_DIRECTORY?.split(':')[0] ?? '/var/lib/pos-token-agent';
  const runtimeDir = env.RUNTIME_DIRECTORY?.split(':')[0] ?? '/run/pos-token-agent';
  const accounts: Record<string, AccountConfig> = {};
  for (const [name, account] of Object.entries(raw.accounts)) accounts[name] = normaliseAccount(name, account, raw.tls?.caFile);
  return {
    source,
    socket: raw.socket ?? join(runtimeDir, 'agent.sock'),
    stateDir,
    logLevel: raw.logLevel ?? 'info',
    server: { ...DEFAULTS.server, ...raw.server },
    deviceProfileDirs: raw.deviceProfileDirs ?? [BUNDLED_PROFILE_DIR, ETC_PROFILE_DIR],
    identityRoot: raw.identityRoot ?? '/',
    proxy: { ...raw.proxy },
    accounts,
  };
}

function normaliseAccount(name: string, raw: RawAccount, globalCaFile: string | undefined): AccountConfig {
  const backoff: BackoffPolicy = {
    initialMs: (raw.backoff?.initialS ?? DEFAULTS.backoff.initialMs / 1000) * 1000,
    maxMs: (raw.backoff?.maxS ?? DEFAULTS.backoff.maxMs / 1000) * 1000,
    rejectedRetryMs: (raw.backoff?.rejectedRetryS ?? DEFAULTS.backoff.rejectedRetryMs / 1000) * 1000,
  };
  if (backoff.maxMs < backoff.initialMs) backoff.maxMs = backoff.initialMs;
  return {
    name,
    authority: raw.authority as AuthorityName,
    identityUrl: (raw.identityUrl ?? raw.tokenUrl ?? '').replace(/\/+$/, ''),
    ...(raw.tokenUrl !== undefined ? { tokenUrl: raw.tokenUrl } : {}),
    ...(raw.deviceProfile !== undefined ? { deviceProfile: raw.deviceProfile } : {}),
    identity: { ...raw.identity },
    ...(raw.scope !== undefined ? { scope: raw.scope } : {}),
    ...(raw.onbehalfof !== undefined ? { onbehalfof: raw.onbehalfof } : {}),
    ...(raw.audience !== undefined ? { audience: raw.audience } : {}),
    ...(raw.clientAuth !== undefined ? { clientAuth: raw.clientAuth } : {}),
    headers: { ...raw.headers },
    tls: {
      legacyServerConnect: raw.tls?.legacyServerConnect ?? false,
      ...((raw.tls?.caFile ?? globalCaFile) !== undefined ? { caFile: (raw.tls?.caFile ?? globalCaFile) as string } : {}),
    },
    ...(raw.loginsPerMinute !== undefined ? { loginsPerMinute: raw.loginsPerMinute } : {}),
    timeouts: { ...DEFAULTS.timeouts, ...raw.timeouts },
    backoff,
    forcedRefreshMinIntervalMs:
      raw.forcedRefreshMinIntervalS === undefined
        ? DEFAULTS.forcedRefreshMinIntervalMs
        : raw.forcedRefreshMinIntervalS * 1000,
  };
}

/** A fingerprint of what, if changed, should clear an account's rejected state and cached token. */
export function accountFingerprint(account: AccountConfig): string {
  return JSON.stringify([
    account.authority,
    account.identityUrl,
    account.tokenUrl ?? null,
    account.identity,
    account.deviceProfile ?? null,
    account.scope ?? null,
    account.onbehalfof ?? null,
    account.audience ?? null,
    account.clientAuth ?? null,
    account.headers,
  ]);
}
