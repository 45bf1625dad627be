/** Shared pieces of the commands: argument parsing, usage errors, output, the socket client. */
import { request } from 'node:http';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { join } from 'node:path';
import { ConfigError, resolveConfigPath, type AgentConfig } from '../config/index.js';
import { loadConfig } from '../authorities/index.js';

export class UsageError extends Error {
  readonly code = 'ERR_USAGE';
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

export function parse<T extends Options>(argv: string[], options: T) {
  try {
    return parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

export const configOption = { config: { type: 'string', short: 'c' } } as const;

export function readConfig(flag: string | undefined, env: NodeJS.ProcessEnv): AgentConfig {
  return loadConfig(resolveConfigPath(flag, env), env);
}

/**
 * The socket to talk to: --socket, else the config's, else the default place. Till users may not
 * read the config (0640 root:pos-token-agent); they then get the default place.
 */
export function socketPath(values: { socket?: string | undefined; config?: string | undefined }, env: NodeJS.ProcessEnv): string {
  if (values.socket) return values.socket;
  try {
    return readConfig(values.config, env).socket;
  } catch (err) {
    const denied = err instanceof ConfigError && err.problems.some((p) => p.includes('permission denied'));
    if (!denied) throw err;
    return join(env.RUNTIME_DIRECTORY?.split(':')[0] ?? '/run/pos-token-agent', 'agent.sock');
  }
}

export interface SocketAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One request to the agent's socket, bounded in time. */
export function askAgent(
  socket: string,
  method: 'GET' | 'POST',
  path: string,
  body?: unknown,
  timeoutMs = 35_000,
): Promise<SocketAnswer> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = request(
      {
        socketPath: socket,
        method,
        path,
        headers: {
          'x-pos-agent': '1',
          ...(payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}),
        },
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }),
        );
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer from the agent within ${timeoutMs / 1000} s`)));
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') {
        reject(new CliError(`the agent is not running (no socket answering at ${socket}); start it with: systemctl start pos-token-agent`));
      } else if (err.code === 'EACCES') {
        reject(new CliError(`permission denied on ${socket}; run as a member of the agent's socket group`));
      } else reject(new CliError(`cannot talk to the agent at ${socket}: ${err.message}`));
    });
    req.end(payload);
  });
}

export function println(stream: NodeJS.WritableStream, text = ''): void {
  stream.write(`${text}\n`);
}
