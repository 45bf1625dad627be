/** Shared pieces of the commands: argument parsing, usage errors, output, the agent's socket client. */
import type { ParseArgsConfig } from 'node:util';
import { createAgentClient, isAccountName, type AgentClient, type ErrorBody } from '../api/index.js';
import { closestKey, ConfigError, resolveConfigPath, type AccountConfig, type AgentConfig } from '../config/index.js';
import { loadConfig } from '../authorities/index.js';
import { managedBySystemd, serviceHints } from '../lib/service.js';
const { join } = process.getBuiltinModule('node:path');
const { parseArgs } = process.getBuiltinModule('node:util');

export class UsageError extends Error {
  readonly code = 'ERR_USAGE';
}

/**
 * An account name the config or the running agent does not have, the same for every command that takes
 * --account: a usage error (exit 2) naming the accounts there are, the nearest as a suggestion. `where` is
 * who said so ("the agent", "the config FILE"); `known` undefined: an agent that did not say which it has.
 */
export class UnknownAccountError extends UsageError {
  constructor(
    readonly account: string,
    readonly known: readonly string[] | undefined,
    readonly where: string,
  ) {
    super(unknownAccountMessage(account, known, where));
  }
}

function unknownAccountMessage(account: string, known: readonly string[] | undefined, where: string): string {
  const name = isAccountName(account) ? account : JSON.stringify(account);
  const meant = known === undefined ? undefined : closestKey(account, known);
  const head = `unknown account ${name}${meant !== undefined ? ` (did you mean ${meant}?)` : ''}`;
  if (known === undefined) return `${head}; ${where} has no such account; see pos-token-agent status`;
  if (known.length === 0) return `${head}; ${where} has no accounts yet; add one with pos-token-agent setup`;
  return `${head}; ${where} has: ${known.join(', ')}; see pos-token-agent status`;
}

/** The account `name` of the config, or an UnknownAccountError naming the config's accounts. */
export function configAccount(config: AgentConfig, name: string): AccountConfig {
  if (Object.hasOwn(config.accounts, name)) return config.accounts[name]!;
  throw new UnknownAccountError(name, Object.keys(config.accounts), `the config ${config.source}`);
}

/** The agent's 404 unknown_account as an UnknownAccountError for `account`; undefined for any other answer. */
export function agentUnknownAccount(account: string, body: ErrorBody): UnknownAccountError | undefined {
  if (body.error !== 'unknown_account') return undefined;
  return new UnknownAccountError(account, body.known_accounts, 'the agent');
}

/** A failure the user can act on: printed as it is, exit code 1. */
export class CliError extends Error {
  readonly code = 'ERR_CLI';
}

export interface Io {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  stdin: NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (raw: boolean) => unknown };
  env: NodeJS.ProcessEnv;
}

export type Options = NonNullable<ParseArgsConfig['options']>;

const HELP_OPTION = { help: { type: 'boolean', short: 'h' } } as const;

/**
 * The options of a command (and --help). A mistake is a UsageError in our words ("unknown option --foo",
 * "--account needs a value"), never Node's parser message; no value given on the command line is repeated
 * in it. `--min-ttl -5` passes "-5" on to the command's own check, as `--min-ttl=-5` does.
 */
export function parse<T extends Options>(argv: string[], options: T) {
  const all = { ...options, ...HELP_OPTION } as T & typeof HELP_OPTION;
  const { tokens } = parseArgs({ args: argv, options: all, strict: false, allowPositionals: true, tokens: true });
  const normalized: string[] = [];
  let positionals = 0;
  for (const t of tokens) {
    if (t.kind === 'option-terminator') continue;
    if (t.kind === 'positional') {
      positionals += 1;
      continue;
    }
    const spec = Object.hasOwn(all, t.name) ? all[t.name] : undefined;
    if (!spec) throw unknownOption(t.rawName, Object.keys(all));
    const long = `--${t.name}`;
    if (spec.type === 'boolean') {
      if (t.value !== undefined) throw new UsageError(`${long} takes no value`);
      normalized.push(long);
    } else {
      if (t.value === undefined || (!t.inlineValue && looksLikeOption(t.value, all))) throw new UsageError(`${long} needs a value`);
      normalized.push(`${long}=${t.value}`);
    }
  }
  if (positionals) throw new UsageError(`this command takes options only (got ${positionals} other argument${positionals > 1 ? 's' : ''})`);
  return parseArgs({ args: normalized, options: all, strict: true, allowPositionals: false });
}

/**
 * "unknown option --acount (did you mean --account?)": the nearest of the `known` long option names (without
 * "--") as a suggestion. A value given with the option (`--acount=shop`) is not repeated; an option known by
 * name but given in a form the parser does not take is named as it was given.
 */
export function unknownOption(raw: string, known: readonly string[]): UsageError {
  const name = raw.startsWith('--') ? raw.slice(2).split('=', 1)[0]! : undefined;
  if (name === undefined || known.includes(name)) return new UsageError(`unknown option ${raw}`);
  const meant = closestKey(name, known);
  return new UsageError(`unknown option --${name}${meant !== undefined ? ` (did you mean --${meant}?)` : ''}`);
}

/**
 * A command's words apart from its options (`outbox show ID --json`: ["show", "ID"]), and the options left for
 * `parse`, which then checks them as for any command. A word that is an option's value stays with the option.
 */
export function splitPositionals(argv: string[], options: Options): { words: string[]; rest: string[] } {
  const all = { ...options, ...HELP_OPTION };
  const { tokens } = parseArgs({ args: argv, options: all, strict: false, allowPositionals: true, tokens: true });
  const taken = new Set<number>();
  const words: string[] = [];
  for (const t of tokens) {
    if (t.kind === 'positional') {
      words.push(t.value);
      taken.add(t.index);
    } else if (t.kind === 'option-terminator') {
      taken.add(t.index);
    }
  }
  return { words, rest: argv.filter((_, i) => !taken.has(i)) };
}

/** A length of time for people, rounded down to its unit: "45 s", "41 min", "3 h", "2 d". */
export function duration(s: number): string {
  if (s < 120) return `${s} s`;
  if (s < 120 * 60) return `${Math.floor(s / 60)} min`;
  if (s < 48 * 3600) return `${Math.floor(s / 3600)} h`;
  return `${Math.floor(s / 86_400)} d`;
}

/** `--account --json`: the next word is an option, not the value (as Node's strict parser sees it too). */
function looksLikeOption(value: string, options: Options): boolean {
  if (value.startsWith('--')) return true;
  return /^-[A-Za-z]/.test(value) && Object.values(options).some((o) => o.short === value[1]);
}

export const configOption = { config: { type: 'string', short: 'c' } } as const;

export function readConfig(flag: string | undefined, env: NodeJS.ProcessEnv): AgentConfig {
  return loadConfig(resolveConfigPath(flag, env), env);
}

/** The socket the agent listens on when the config does not say: $RUNTIME_DIRECTORY/agent.sock, else /run/... */
export function defaultSocket(env: NodeJS.ProcessEnv): string {
  return join(env.RUNTIME_DIRECTORY?.split(':')[0] || '/run/pos-token-agent', 'agent.sock');
}

/**
 * The socket to talk to: --socket, else the config's, else the default place. A config that cannot be used
 * does not stop a command that only needs the socket. Till users may not read it (0640 root:pos-token-agent):
 * they get the default place as documented, silently; a config that is missing or broken is said in one line on
 * stderr, with the socket used instead.
 */
export function socketPath(values: { socket?: string | undefined; config?: string | undefined }, io: Pick<Io, 'env' | 'stderr'>): string {
  if (values.socket) return values.socket;
  const path = resolveConfigPath(values.config, io.env);
  try {
    return loadConfig(path, io.env).socket;
  } catch (err) {
    const socket = defaultSocket(io.env);
    const trouble = configTrouble(err);
    if (trouble !== 'permission denied') {
      println(io.stderr, `pos-token-agent: note: cannot use the config ${path} (${trouble}); asking the agent at ${socket}`);
    }
    return socket;
  }
}

/** What is wrong with a config, in a few words and without its content (a value in it could be a secret). */
function configTrouble(err: unknown): string {
  const first = err instanceof ConfigError ? (err.problems[0] ?? '') : '';
  const unreadable = /^cannot read the file: (.*)$/.exec(first);
  if (unreadable) return unreadable[1]!;
  if (first.startsWith('not valid JSON')) return 'not valid JSON';
  if (err instanceof ConfigError) return `invalid: ${err.problems.length} problem${err.problems.length > 1 ? 's' : ''}, which doctor lists`;
  return 'cannot be read';
}

/** How to start the agent that uses this config: systemctl only when systemd runs it, else `run --config`. */
export function startCommand(configPath: string): string {
  return serviceHints(configPath, managedBySystemd(configPath)).start;
}

/** The client of the running agent for a command with --socket / --config; its "not running" says how to start it. */
export function agentClient(
  values: { socket?: string | undefined; config?: string | undefined },
  io: Pick<Io, 'env' | 'stderr'>,
  timeoutMs?: number,
): AgentClient {
  return createAgentClient({
    socket: socketPath(values, io),
    startCommand: startCommand(resolveConfigPath(values.config, io.env)),
    ...(timeoutMs !== undefined ? { timeoutMs } : {}),
  });
}

/**
 * Output into a pipe whose reader has gone (`pos-token-agent status | head -2`): the rest of this stream's output
 * is dropped, quietly, and the command goes on to end as it would have, with its own exit status; not Node's
 * EPIPE stack trace. Any other error of the stream is thrown as before. Installed once, by main, on stdout and stderr.
 */
export function quietOnClosedPipe(stream: NodeJS.WritableStream): void {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
  });
}

export function println(stream: NodeJS.WritableStream, text = ''): void {
  stream.write(`${text}\n`);
}
