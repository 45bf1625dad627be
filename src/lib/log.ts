/**
 * Structured logging: one JSON object a line, fields not formatted strings.
 * Values under secret-looking keys are replaced before anything is written,
 * as a second line of defence; callers never pass secrets in the first place.
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
}

const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

const SECRET_KEY =
  /^(client_?secret|preshared_?key|api_?key|access_?token|refresh_?token|id_?token|token|secret|password|authorization|key|credentials)$/i;

export function isLogLevel(value: unknown): value is LogLevel {
  return typeof value === 'string' && value in LEVELS;
}

/**
 * Copies a value, replacing anything under a secret-looking key, or under one of `secretKeys` (the
 * authorities' secret credential fields, from their registry), compared without case.
 */
export function redact(value: unknown, depth = 0, secretKeys: ReadonlySet<string> = NO_KEYS): unknown {
  if (depth > 6 || value === null || typeof value !== 'object') return value;
  if (value instanceof Error) return { name: value.name, message: value.message };
  if (Array.isArray(value)) return value.map((v) => redact(v, depth + 1, secretKeys));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    out[k] = SECRET_KEY.test(k) || secretKeys.has(k.toLowerCase()) ? '[redacted]' : redact(v, depth + 1, secretKeys);
  }
  return out;
}

const NO_KEYS: ReadonlySet<string> = new Set();

export interface LoggerOptions {
  level?: LogLevel;
  write?: (line: string) => void;
  now?: () => number;
  /** Field names whose values are always redacted, beyond the secret-looking ones (registry.secretFields). */
  secretKeys?: ReadonlyArray<string>;
}

export function createLogger(options: LoggerOptions = {}, bound: LogFields = {}): Logger {
  const min = LEVELS[options.level ?? 'info'];
  const write = options.write ?? ((line: string) => process.stderr.write(line));
  const now = options.now ?? Date.now;
  const secretKeys = new Set((options.secretKeys ?? []).map((k) => k.toLowerCase()));
  const emit = (level: LogLevel, msg: string, fields?: LogFields): void => {
    if (LEVELS[level] < min) return;
    const record = redact({ ...bound, ...fields }, 0, secretKeys) as LogFields;
    write(JSON.stringify({ time: new Date(now()).toISOString(), level, msg, ...record }) + '\n');
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    child: (fields) => createLogger(options, { ...bound, ...fields }),
  };
}

export const silentLogger: Logger = {
  debug: () => {},
  info: () => {},
  warn: () => {},
  error: () => {},
  child: () => silentLogger,
};
