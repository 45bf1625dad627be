/**
 * Config loading and validation. Parsed once at the edge (cli/) and passed inward typed.
 * Every problem is reported with the file, the key path and what was expected.
 */
import { readFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { z } from 'zod';

export const DEFAULT_CONFIG_PATH = '/etc/pos-token-agent/config.json';
export const SUPPORTED_AUTHORITIES = ['eta-ereceipt'] as const;
/** Authorities named by the public interface; the ones not yet in SUPPORTED_AUTHORITIES are refused clearly. */
export const KNOWN_AUTHORITIES = ['eta-ereceipt', 'eta-einvoicing', 'myinvois', 'impact-gr', 'sepay', 'oauth2'] as const;
export type AuthorityName = (typeof SUPPORTED_AUTHORITIES)[number];

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]', '::1']);

export function isLoopbackHost(hostname: string): boolean {
  return LOOPBACK_HOSTS.has(hostname) || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname);
}

const ACCOUNT_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

const identityUrl = z.string().superRefine((value, ctx) => {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    ctx.addIssue({ code: 'custom', message: `expected an absolute URL, got ${JSON.stringify(value)}` });
    return;
  }
  if (url.username || url.password) {
    ctx.addIssue({ code: 'custom', message: 'expected a URL without user or password in it' });
  } else if (url.search || url.hash) {
    ctx.addIssue({ code: 'custom', message: 'expected a base URL without query or fragment' });
  } else if (url.protocol === 'http:' && !isLoopbackHost(url.hostname)) {
    ctx.addIssue({
      code: 'custom',
      message: `expected https:// (plain http:// is allowed only for loopback hosts), got ${JSON.stringify(value)}`,
    });
  } else if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    ctx.addIssue({ code: 'custom', message: `expected an https:// URL, got ${JSON.stringify(value)}` });
  }
});

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

const accountSchema = z.strictObject({
  authority: z.string().superRefine((value, ctx) => {
    if ((SUPPORTED_AUTHORITIES as readonly string[]).includes(value)) return;
    const known = (KNOWN_AUTHORITIES as readonly string[]).includes(value);
    ctx.addIssue({
      code: 'custom',
      message: known
        ? `authority ${JSON.stringify(value)} is not supported by this version (supported: ${SUPPORTED_AUTHORITIES.join(', ')})`
        : `expected one of ${SUPPORTED_AUTHORITIES.join(', ')}, got ${JSON.stringify(value)}`,
    });
  }),
  identityUrl,
  identity: identitySchema.optional(),
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
});

const absolutePath = z.string().refine((p) => isAbsolute(p), 'expected an absolute path');

const configSchema = z.strictObject({
  socket: absolutePath.optional(),
  stateDir: absolutePath.optional(),
  logLevel: z.enum(['debug', 'info', 'warn', 'error']).optional(),
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
      if (names.length === 0) ctx.addIssue({ code: 'custom', message: 'expected at least one account' });
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
  identityUrl: string;
  identity: DeviceIdentity;
  timeouts: Timeouts;
  backoff: BackoffPolicy;
  forcedRefreshMinIntervalMs: number;
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
  accounts: Record<string, AccountConfig>;
}

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
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'file not found' : code === 'EACCES' ? 'permission denied' : String(code ?? err);
    throw new ConfigError(path, [`cannot read the file: ${why}`]);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(path, [`not valid JSON: ${(err as Error).message}`]);
  }
  return parseConfig(json, path, env);
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
    return `${path}: unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => JSON.stringify(k)).join(', ')}`;
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
  for (const [name, account] of Object.entries(raw.accounts)) accounts[name] = normaliseAccount(name, account);
  return {
    source,
    socket: raw.socket ?? join(runtimeDir, 'agent.sock'),
    stateDir,
    logLevel: raw.logLevel ?? 'info',
    server: { ...DEFAULTS.server, ...raw.server },
    accounts,
  };
}

function normaliseAccount(name: string, raw: RawAccount): AccountConfig {
  const backoff: BackoffPolicy = {
    initialMs: (raw.backoff?.initialS ?? DEFAULTS.backoff.initialMs / 1000) * 1000,
    maxMs: (raw.backoff?.maxS ?? DEFAULTS.backoff.maxMs / 1000) * 1000,
    rejectedRetryMs: (raw.backoff?.rejectedRetryS ?? DEFAULTS.backoff.rejectedRetryMs / 1000) * 1000,
  };
  if (backoff.maxMs < backoff.initialMs) backoff.maxMs = backoff.initialMs;
  return {
    name,
    authority: raw.authority as AuthorityName,
    identityUrl: raw.identityUrl.replace(/\/+$/, ''),
    identity: { ...raw.identity },
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
  return JSON.stringify([account.authority, account.identityUrl, account.identity]);
}
