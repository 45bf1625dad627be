/**
 * Config loading and validation. Parsed once at the edge (cli/) and passed inward typed.
 * Every problem is reported with the file, the key path and what was expected.
 */
import { z } from 'zod';
// One rule for account names: the socket API's (a leaf that imports nothing).
import { isAccountName } from '../api/wire.js';
import { INSTALL_ROOT } from '../lib/install.js';
import { suggestKey } from './suggest.js';

export { closestKey, editDistance, knownKeysAt, suggestKey } from './suggest.js';
const { createHash } = process.getBuiltinModule('node:crypto');
const { existsSync, readFileSync } = process.getBuiltinModule('node:fs');
const { isAbsolute, join } = process.getBuiltinModule('node:path');

export const DEFAULT_CONFIG_PATH = '/etc/pos-token-agent/config.json';

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]', '::1']);

export function isLoopbackHost(hostname: string): boolean {
  return LOOPBACK_HOSTS.has(hostname) || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname);
}


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
/** A token service's base URL: https (http for loopback only), no user, query or fragment. */
export const baseUrlSchema = httpsUrl('base');
/** A token endpoint's URL: as baseUrlSchema, but a query string is kept. */
export const endpointUrlSchema = httpsUrl('endpoint');

/** A value sent as an HTTP header: printable ASCII, at most `max` characters. */
export const headerValue = (max: number) =>
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

export const nonEmpty = (max: number) =>
  z.string().min(1, 'expected a non-empty string').max(max, `expected at most ${max} characters`);

/** The options every account takes, whatever its authority. */
const commonAccountShape = {
  authority: z.string(),
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
  /** The authority's API (the proxy and the outbox send there): a base URL, like identityUrl. */
  apiUrl: baseUrlSchema.optional(),
  /** Limits on what the proxy and the outbox send to apiUrl. */
  api: z
    .strictObject({
      maxBodyBytes: positiveInt(64 * 1024 * 1024).optional(),
      connectMs: positiveInt(60_000).optional(),
      responseMs: positiveInt(300_000).optional(),
      totalMs: positiveInt(600_000).optional(),
    })
    .optional(),
};

/** Options of authorities that send device headers (the device profile and fixed values). */
const deviceAccountShape = {
  deviceProfile: z.string().regex(PROFILE_NAME, 'expected a profile name (letters, digits, ".", "_", "-")').optional(),
  identity: identitySchema.optional(),
};

/** The option of authorities whose logins are limited per client ID. */
const limitedAccountShape = {
  loginsPerMinute: z.number().int().min(1).max(600).optional(),
};

/** The device headers of a login: which identity fields an authority sends, and which it cannot do without. */
export interface DeviceHeaders {
  readonly fields: ReadonlyArray<DeviceField>;
  readonly required: ReadonlyArray<DeviceField>;
}

/**
 * What config validation needs to know of an authority: the options it takes beyond the common ones, the
 * one that holds its URL, whether it sends device headers, whether its logins are limited. The authority
 * registry (authorities/) gives one of these per authority; config knows no authority by name.
 */
export interface AuthorityConfigSpec {
  readonly name: string;
  /** Option name -> schema; each optional, but the endpoint's, which must be given. */
  readonly options: Readonly<Record<string, z.ZodType>>;
  /** The option holding the URL of the token service; `base` trims it to a base URL. */
  readonly endpoint: { readonly option: string; readonly kind: 'base' | 'endpoint' };
  readonly deviceHeaders?: DeviceHeaders;
  /** Logins are limited per client ID: the account takes `loginsPerMinute`. */
  readonly loginsPerMinute?: { readonly default: number };
}

/** The strict schema of one account of `spec` (common options, the authority's, device and limit options), built once per spec. */
function accountSchemaFor(spec: AuthorityConfigSpec) {
  let schema = ACCOUNT_SCHEMAS.get(spec);
  if (!schema) ACCOUNT_SCHEMAS.set(spec, (schema = buildAccountSchema(spec)));
  return schema;
}

const ACCOUNT_SCHEMAS = new WeakMap<AuthorityConfigSpec, ReturnType<typeof buildAccountSchema>>();

function buildAccountSchema(spec: AuthorityConfigSpec) {
  return z.strictObject({
    ...commonAccountShape,
    ...(spec.deviceHeaders ? deviceAccountShape : {}),
    ...(spec.loginsPerMinute ? limitedAccountShape : {}),
    ...spec.options,
  });
}

/** Every option some authority takes: refused by name ("not used by authority X") on the others. */
function knownOptions(specs: ReadonlyArray<AuthorityConfigSpec>): ReadonlySet<string> {
  let known = KNOWN_OPTIONS.get(specs);
  if (!known) {
    const keys = new Set([...Object.keys(deviceAccountShape), ...Object.keys(limitedAccountShape)]);
    for (const spec of specs) for (const key of Object.keys(spec.options)) keys.add(key);
    KNOWN_OPTIONS.set(specs, (known = keys));
  }
  return known;
}

const KNOWN_OPTIONS = new WeakMap<ReadonlyArray<AuthorityConfigSpec>, ReadonlySet<string>>();

/**
 * The problems of one account, its keys checked against its authority: an option only other authorities
 * take is refused by name, then the rest against the authority's strict schema.
 */
function accountIssues(
  raw: unknown,
  specs: ReadonlyArray<AuthorityConfigSpec>,
): { issues: z.core.$ZodIssue[]; value?: RawAccount; schema?: z.ZodType } {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    return { issues: [{ code: 'invalid_type', expected: 'object', input: raw, path: [], message: 'expected object' } as z.core.$ZodIssue] };
  }
  const input = raw as Record<string, unknown>;
  const authority = input.authority;
  const spec = specs.find((s) => s.name === authority);
  if (!spec) {
    const names = specs.map((s) => s.name).join(', ');
    const message =
      typeof authority === 'string' ? `expected one of ${names}, got ${JSON.stringify(authority)}` : `expected one of ${names}`;
    return { issues: [{ code: 'custom', path: ['authority'], message, input: authority } as z.core.$ZodIssue] };
  }
  const issues: z.core.$ZodIssue[] = [];
  const schema = accountSchemaFor(spec);
  const own = new Set(Object.keys(schema.shape));
  const known = knownOptions(specs);
  const kept: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(input)) {
    if (!own.has(key) && known.has(key)) {
      issues.push({ code: 'custom', path: [key], message: `not used by authority ${spec.name}; remove it`, input: value } as z.core.$ZodIssue);
    } else kept[key] = value;
  }
  const result = schema.safeParse(kept, { reportInput: true });
  if (!result.success) issues.push(...result.error.issues);
  if (kept[spec.endpoint.option] === undefined) {
    issues.push({
      code: 'custom',
      path: [spec.endpoint.option],
      message: `expected a URL (required for authority ${spec.name})`,
      input: undefined,
    } as z.core.$ZodIssue);
  }
  return issues.length ? { issues, schema } : { issues, schema, value: result.data as RawAccount };
}

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
  outbox: z
    .strictObject({
      maxEntries: positiveInt(10_000_000).optional(),
      maxBytes: positiveInt(64 * 1024 * 1024 * 1024).optional(),
      retainDays: z.number().min(0).max(3650).optional(),
      alertAfterS: positiveInt(30 * 86_400).optional(),
    })
    .optional(),
  server: z
    .strictObject({
      maxConnections: positiveInt(100_000).optional(),
      headersTimeoutMs: positiveInt(600_000).optional(),
      idleTimeoutMs: positiveInt(3_600_000).optional(),
    })
    .optional(),
  accounts: z
    .record(z.string(), z.unknown())
    .superRefine((accounts, ctx) => {
      const names = Object.keys(accounts);
      for (const name of names) {
        if (!isAccountName(name)) {
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
/** An account as its authority's schema parsed it: the common options typed, the authority's as they came. */
type RawAccount = z.infer<z.ZodObject<typeof commonAccountShape>> &
  Partial<z.infer<z.ZodObject<typeof deviceAccountShape>>> &
  Partial<z.infer<z.ZodObject<typeof limitedAccountShape>>> &
  Record<string, unknown>;

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

/** The identity fields a device profile reads: each sent as the header of the same name. */
export type DeviceField = keyof DeviceIdentity;

/**
 * One account, validated against its authority and with defaults filled in. The options of the account's
 * authority (scope, onbehalfof, tokenUrl, ...) sit beside the common ones, as in the file; each authority
 * module reads its own, which its schema has checked.
 */
export interface AccountConfig {
  readonly [option: string]: unknown;
  name: string;
  /** The authority's registry name. */
  authority: string;
  /**
   * Base URL of the token service (trailing slashes trimmed); for an endpoint URL (oauth2), the endpoint
   * trimmed. The URL as configured stays under its own option (tokenUrl keeps its query string).
   */
  identityUrl: string;
  /** Device profile name; without one, identity comes from `identity` alone. */
  deviceProfile?: string;
  /** Fixed identity values from config; they override the profile's. */
  identity: DeviceIdentity;
  /** Extra, non-secret headers sent with every token request. */
  headers: Record<string, string>;
  tls: AccountTls;
  timeouts: Timeouts;
  backoff: BackoffPolicy;
  forcedRefreshMinIntervalMs: number;
  /** The authority's API base URL (trailing slashes trimmed); without it the account has no proxy or outbox. */
  apiUrl?: string;
  /** The limits given in the config; `apiLimits(account)` fills in the defaults. */
  api?: Partial<ApiLimits>;
}

/** What the proxy and the outbox may send to the account's API, and how long they wait. */
export interface ApiLimits {
  maxBodyBytes: number;
  connectMs: number;
  responseMs: number;
  totalMs: number;
}

export interface OutboxConfig {
  /** Entries waiting (queued or sending) at most; past it an enqueue is answered 507. */
  maxEntries: number;
  /** Bytes waiting at most. */
  maxBytes: number;
  /** Delivered, rejected and cancelled entries are kept this long, then pruned. */
  retainMs: number;
  /** /v1/health is unhealthy while an account's oldest queued entry is older than this. */
  alertAfterMs: number;
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
  /**
   * SHA-256 (hex) of the file's bytes as read, when the config came from a file: which config a running agent runs,
   * comparable with the file on disk (`configFileSha256`).
   */
  sha256?: string;
  socket: string;
  stateDir: string;
  logLevel: 'debug' | 'info' | 'warn' | 'error';
  server: ServerLimits;
  /** Where device profiles are looked up, in order. */
  deviceProfileDirs: string[];
  /** Prefix for every file an identity source reads ("/" on a real box; a fixture tree in tests). */
  identityRoot: string;
  proxy: ProxyConfig;
  outbox: OutboxConfig;
  accounts: Record<string, AccountConfig>;
}

/**
 * Settings read once at start: a reload (SIGHUP) that changes one keeps the running value until a restart (the
 * agent logs it). doctor names them in its hint to reload.
 */
export const RESTART_SETTINGS = ['socket', 'stateDir', 'deviceProfileDirs', 'identityRoot', 'proxy', 'server', 'outbox'] as const satisfies ReadonlyArray<keyof AgentConfig>;

/** The profiles shipped with the install: `device-profiles/` next to `dist/`. */
export const BUNDLED_PROFILE_DIR = join(INSTALL_ROOT, 'device-profiles');
export const ETC_PROFILE_DIR = '/etc/pos-token-agent/device-profiles';

export const DEFAULTS = Object.freeze({
  timeouts: Object.freeze({ connectMs: 5_000, responseMs: 15_000, totalMs: 30_000 }),
  backoff: Object.freeze({ initialMs: 1_000, maxMs: 300_000, rejectedRetryMs: 300_000 }),
  forcedRefreshMinIntervalMs: 10_000,
  server: Object.freeze({ maxConnections: 1024, headersTimeoutMs: 5_000, idleTimeoutMs: 30_000 }),
  api: Object.freeze({ maxBodyBytes: 5 * 1024 * 1024, connectMs: 5_000, responseMs: 30_000, totalMs: 60_000 }),
  outbox: Object.freeze({ maxEntries: 100_000, maxBytes: 256 * 1024 * 1024, retainMs: 7 * 86_400_000, alertAfterMs: 3_600_000 }),
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

/**
 * Reads and validates a config file against `authorities` (the registry's specs: authorities/ binds them,
 * so callers use its loadConfig).
 */
export function loadConfig(authorities: ReadonlyArray<AuthorityConfigSpec>, path: string, env: ConfigEnv = process.env): AgentConfig {
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
  return { ...parseConfig(authorities, json, path, env), sha256: configFileSha256(text) };
}

/** The hash a running agent reports for its config (`/v1/status` `config.sha256`): SHA-256 of the file's bytes, hex. */
export function configFileSha256(text: string | Buffer): string {
  return createHash('sha256').update(text).digest('hex');
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

/** Validates a parsed config against `authorities`; every problem is reported at once. */
export function parseConfig(
  authorities: ReadonlyArray<AuthorityConfigSpec>,
  json: unknown,
  source: string,
  env: ConfigEnv = {},
): AgentConfig {
  const result = configSchema.safeParse(json, { reportInput: true });
  const problems: string[] = result.success ? [] : result.error.issues.map((issue) => describeIssue(issue, configSchema));
  const accounts: Record<string, RawAccount> = {};
  const rawAccounts = (json as { accounts?: unknown } | null)?.accounts;
  if (typeof rawAccounts === 'object' && rawAccounts !== null && !Array.isArray(rawAccounts)) {
    for (const [name, raw] of Object.entries(rawAccounts)) {
      // Each account against its authority's schema, which also knows the keys to suggest.
      const checked = accountIssues(raw, authorities);
      for (const issue of checked.issues) problems.push(describeIssue(issue, checked.schema, ['accounts', name]));
      if (checked.value) accounts[name] = checked.value;
    }
  }
  if (!result.success || problems.length) throw new ConfigError(source, problems);
  return normalise(result.data, accounts, authorities, source, env);
}

/** One problem as the technician reads it; `schema` (at `prefix`) is what the issue was checked against. */
function describeIssue(issue: z.core.$ZodIssue, schema: z.ZodType | undefined, prefix: PropertyKey[] = []): string {
  const full = [...prefix, ...issue.path];
  const path = full.length ? full.map(String).join('.') : '(top level)';
  if (issue.code === 'unrecognized_keys') {
    const input = (issue as { input?: unknown }).input;
    const keys = issue.keys.map((k) => {
      const meant = schema === undefined ? undefined : suggestKey(schema, issue.path, k, input);
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

function normalise(
  raw: RawConfig,
  rawAccounts: Record<string, RawAccount>,
  authorities: ReadonlyArray<AuthorityConfigSpec>,
  source: string,
  env: ConfigEnv,
): AgentConfig {
  const stateDir = raw.stateDir ?? env.STATE_DIRECTORY?.split(':')[0] ?? '/var/lib/pos-token-agent';
  const runtimeDir = env.RUNTIME_DIRECTORY?.split(':')[0] ?? '/run/pos-token-agent';
  const accounts: Record<string, AccountConfig> = {};
  for (const [name, account] of Object.entries(rawAccounts)) {
    const spec = authorities.find((s) => s.name === account.authority)!;
    accounts[name] = normaliseAccount(name, account, spec, raw.tls?.caFile);
  }
  return {
    source,
    socket: raw.socket ?? join(runtimeDir, 'agent.sock'),
    stateDir,
    logLevel: raw.logLevel ?? 'info',
    server: { ...DEFAULTS.server, ...raw.server },
    deviceProfileDirs: raw.deviceProfileDirs ?? [BUNDLED_PROFILE_DIR, ETC_PROFILE_DIR],
    identityRoot: raw.identityRoot ?? '/',
    proxy: { ...raw.proxy },
    outbox: {
      maxEntries: raw.outbox?.maxEntries ?? DEFAULTS.outbox.maxEntries,
      maxBytes: raw.outbox?.maxBytes ?? DEFAULTS.outbox.maxBytes,
      retainMs: raw.outbox?.retainDays !== undefined ? raw.outbox.retainDays * 86_400_000 : DEFAULTS.outbox.retainMs,
      alertAfterMs: raw.outbox?.alertAfterS !== undefined ? raw.outbox.alertAfterS * 1000 : DEFAULTS.outbox.alertAfterMs,
    },
    accounts,
  };
}

const COMMON_KEYS = new Set([...Object.keys(commonAccountShape), ...Object.keys(deviceAccountShape)]);

function normaliseAccount(name: string, raw: RawAccount, spec: AuthorityConfigSpec, globalCaFile: string | undefined): AccountConfig {
  const backoff: BackoffPolicy = {
    initialMs: (raw.backoff?.initialS ?? DEFAULTS.backoff.initialMs / 1000) * 1000,
    maxMs: (raw.backoff?.maxS ?? DEFAULTS.backoff.maxMs / 1000) * 1000,
    rejectedRetryMs: (raw.backoff?.rejectedRetryS ?? DEFAULTS.backoff.rejectedRetryMs / 1000) * 1000,
  };
  if (backoff.maxMs < backoff.initialMs) backoff.maxMs = backoff.initialMs;
  // The authority's own options, as its schema checked them, beside the common ones.
  const options: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(raw)) if (!COMMON_KEYS.has(key) && value !== undefined) options[key] = value;
  return {
    ...options,
    name,
    authority: spec.name,
    identityUrl: String(raw[spec.endpoint.option]).replace(/\/+$/, ''),
    ...(raw.deviceProfile !== undefined ? { deviceProfile: raw.deviceProfile } : {}),
    identity: { ...raw.identity },
    headers: { ...raw.headers },
    tls: {
      legacyServerConnect: raw.tls?.legacyServerConnect ?? false,
      ...((raw.tls?.caFile ?? globalCaFile) !== undefined ? { caFile: (raw.tls?.caFile ?? globalCaFile) as string } : {}),
    },
    timeouts: { ...DEFAULTS.timeouts, ...raw.timeouts },
    backoff,
    forcedRefreshMinIntervalMs:
      raw.forcedRefreshMinIntervalS === undefined
        ? DEFAULTS.forcedRefreshMinIntervalMs
        : raw.forcedRefreshMinIntervalS * 1000,
    ...(raw.apiUrl !== undefined ? { apiUrl: raw.apiUrl.replace(/\/+$/, '') } : {}),
    ...(raw.api !== undefined ? { api: { ...raw.api } } : {}),
  };
}

/** What the proxy and the outbox may send to the account's API, defaults filled in. */
export function apiLimits(account: Pick<AccountConfig, 'api'>): ApiLimits {
  return { ...DEFAULTS.api, ...account.api };
}

/** Options whose place in the fingerprint is fixed (the layout of 0.2, so that an upgrade keeps stored tokens). */
const FINGERPRINT_V1_OPTIONS = ['tokenUrl', 'scope', 'onbehalfof', 'audience', 'clientAuth'] as const;
/** Options that only tune how a login is made, not what it asks for. */
const NOT_FINGERPRINTED = new Set(['loginsPerMinute']);

/**
 * A fingerprint of what, if changed, should clear an account's rejected state and cached token: the
 * authority, its URL, the identity and every authority option that shapes the login request.
 */
export function accountFingerprint(account: AccountConfig): string {
  const [tokenUrl, scope, onbehalfof, audience, clientAuth] = FINGERPRINT_V1_OPTIONS.map((k) => account[k] ?? null);
  const reserved = new Set<string>([...FINGERPRINT_V1_OPTIONS, ...NOT_FINGERPRINTED, ...BASE_ACCOUNT_KEYS]);
  const others = Object.keys(account)
    .filter((k) => !reserved.has(k) && account[k] !== undefined)
    .sort()
    .map((k) => [k, account[k]]);
  return JSON.stringify([
    account.authority,
    account.identityUrl,
    tokenUrl,
    account.identity,
    account.deviceProfile ?? null,
    scope,
    onbehalfof,
    audience,
    clientAuth,
    account.headers,
    ...(others.length ? [others] : []),
  ]);
}

/** The keys of AccountConfig that are not authority options. */
const BASE_ACCOUNT_KEYS = [
  'name', 'authority', 'identityUrl', 'deviceProfile', 'identity', 'headers', 'tls',
  'timeouts', 'backoff', 'forcedRefreshMinIntervalMs',
  // Where the till's submissions go does not change what a login asks for: no new login for them.
  'apiUrl', 'api',
];
