/**
 * Test harness for integration tests: the real CLI (compiled, in dist/) in a child process,
 * a temporary state directory, and the bundled emulator in the test process: one eta-ereceipt
 * emulator and account (`fixture()`), or one emulator per authority and several accounts
 * (`multiFixture()`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  createEmulator,
  DEMO_DEVICE,
  DEMO_PRINCIPALS,
  type Emulator,
  type EmulatorAuthority,
  type EmulatorOptions,
} from '../../src/emulator/index.js';

export const CLI = resolve(import.meta.dirname, '../../dist/cli/main.js');
export { DEMO_DEVICE };

export const DEMO_CREDENTIALS = {
  clientId: DEMO_DEVICE.clientId,
  clientSecret: DEMO_DEVICE.clientSecrets[0]!,
  presharedKey: DEMO_DEVICE.presharedKey!,
};

export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: Record<string, unknown>;
}

export function ask(
  socket: string,
  path: string,
  options: { method?: string; headers?: Record<string, string>; body?: string; agent?: boolean } = {},
): Promise<Answer> {
  return new Promise((resolvePromise, reject) => {
    const req = request(
      {
        socketPath: socket,
        path,
        method: options.method ?? 'GET',
        headers: { 'x-pos-agent': '1', ...options.headers },
        agent: false,
        timeout: 30_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: Record<string, unknown> = {};
          try {
            json = JSON.parse(text) as Record<string, unknown>;
          } catch {
            /* not JSON: tests look at text */
          }
          resolvePromise({ status: res.statusCode ?? 0, headers: res.headers, text, json });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(options.body);
  });
}

/**
 * POST /v1/token/refresh: the till reports `rejectedToken` as refused, which makes the agent log in again
 * (within its refresh limit). `account` and `min_ttl` are sent only when given.
 */
export function forceRefresh(socket: string, rejectedToken: string, body: { account?: string; min_ttl?: number } = {}): Promise<Answer> {
  return ask(socket, '/v1/token/refresh', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ ...body, rejected_token: rejectedToken }),
  });
}

export async function waitFor<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastErr: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v as T;
    } catch (err) {
      lastErr = err;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}${lastErr ? `: ${String(lastErr)}` : ''}`);
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function runCli(args: string[], options: { stdin?: string; env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, ...options.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolvePromise({ code, stdout, stderr });
    });
    child.stdin.end(options.stdin ?? '');
  });
}

export class AgentProcess {
  child?: ChildProcess;
  output = '';
  exited?: Promise<number | null>;

  constructor(readonly configPath: string, readonly socket: string) {}

  /** Starts `run`; `env` adds to this process's environment (e.g. CREDENTIALS_DIRECTORY, as systemd sets it). */
  start(env: NodeJS.ProcessEnv = {}): void {
    const child = spawn(process.execPath, [CLI, 'run', '--config', this.configPath], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    });
    this.child = child;
    child.stdout!.on('data', (d: Buffer) => (this.output += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (this.output += d.toString()));
    this.exited = new Promise((r) => child.on('exit', (code) => r(code)));
  }

  async ready(): Promise<void> {
    await waitFor('the agent socket', async () => {
      if (this.child?.exitCode !== null) throw new Error(`agent exited: ${this.output}`);
      return (await ask(this.socket, '/v1/status')).status === 200;
    });
  }

  async restart(): Promise<void> {
    this.start();
    await this.ready();
  }

  kill9(): Promise<number | null> {
    this.child?.kill('SIGKILL');
    return this.exited!;
  }

  async stop(): Promise<number | null> {
    if (!this.child || this.child.exitCode !== null || this.child.signalCode !== null) return this.child?.exitCode ?? null;
    this.child.kill('SIGTERM');
    return this.exited!;
  }
}

/** A temporary directory holding the socket, the state and the config of one agent. */
interface Workspace {
  dir: string;
  stateDir: string;
  socket: string;
  configPath: string;
  agent: AgentProcess;
  /** Writes the config file: socket, stateDir and debug logs, then `top`, then the accounts. */
  writeConfig(accounts: Record<string, unknown>, top?: Record<string, unknown>): void;
  provision(account: string, credentials: Readonly<Record<string, string | undefined>>, args: string[]): Promise<CliResult>;
  /** Stops the agent, then the emulators, then removes the directory. */
  cleanup(emulators: Iterable<Emulator>): Promise<void>;
}

function workspace(): Workspace {
  const dir = mkdtempSync(join(tmpdir(), 'pta-it-'));
  const socket = join(dir, 'run', 'agent.sock');
  const stateDir = join(dir, 'state');
  const configPath = join(dir, 'config.json');
  const agent = new AgentProcess(configPath, socket);
  return {
    dir,
    stateDir,
    socket,
    configPath,
    agent,
    writeConfig(accounts, top = {}) {
      writeFileSync(configPath, JSON.stringify({ socket, stateDir, logLevel: 'debug', ...top, accounts }));
    },
    provision(account, credentials, args) {
      return runCli(['provision', '--config', configPath, '--account', account, '--stdin', ...args], {
        stdin: JSON.stringify(credentials),
      });
    },
    async cleanup(emulators) {
      await agent.stop();
      await Promise.all([...emulators].map((e) => e.stop()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface Fixture {
  dir: string;
  stateDir: string;
  socket: string;
  configPath: string;
  emulator: Emulator;
  agent: AgentProcess;
  writeConfig(account?: Record<string, unknown>, top?: Record<string, unknown>): void;
  provision(credentials?: Record<string, string>, args?: string[]): Promise<CliResult>;
  cleanup(): Promise<void>;
}

/** One eta-ereceipt emulator (no rate limit unless given) and one account `default` for it. */
export async function fixture(options: EmulatorOptions = {}): Promise<Fixture> {
  const w = workspace();
  const emulator = createEmulator({ devices: [DEMO_DEVICE], rateLimitPerMinute: 0, ...options });
  await emulator.start();
  const f: Fixture = {
    dir: w.dir,
    stateDir: w.stateDir,
    socket: w.socket,
    configPath: w.configPath,
    emulator,
    agent: w.agent,
    writeConfig(account = {}, top = {}) {
      w.writeConfig(
        {
          default: {
            authority: 'eta-ereceipt',
            identityUrl: emulator.url,
            identity: { posserial: DEMO_DEVICE.posserial, pososversion: 'os', posmodelframework: '1' },
            ...account,
          },
        },
        top,
      );
    },
    provision(credentials = DEMO_CREDENTIALS, args = ['--no-verify']) {
      return w.provision('default', credentials, args);
    },
    cleanup: () => w.cleanup([emulator]),
  };
  f.writeConfig();
  return f;
}

// ---------------------------------------------------------------------------------------------
// Several authorities and accounts

/**
 * The config of an account of `authority` served by the emulator at `emulatorUrl`, for its demo principal:
 * `identityUrl` (oauth2: `tokenUrl`, the URL plus the token path) and the settings DEMO_PRINCIPALS gives
 * (eta-ereceipt's identity values, oauth2's clientAuth), then `options`.
 */
export function demoAccount(
  authority: EmulatorAuthority,
  emulatorUrl: string,
  options: Record<string, unknown> = {},
): Record<string, unknown> {
  const { identity, clientAuth, tokenPath } = DEMO_PRINCIPALS[authority].account;
  return {
    authority,
    ...(authority === 'oauth2' ? { tokenUrl: `${emulatorUrl}${tokenPath}` } : { identityUrl: emulatorUrl }),
    ...(identity !== undefined ? { identity: { ...identity } } : {}),
    ...(clientAuth !== undefined ? { clientAuth } : {}),
    ...options,
  };
}

export interface AccountSpec {
  authority: EmulatorAuthority;
  /** More account settings (scope, onbehalfof, backoff, ...). */
  options?: Record<string, unknown>;
}

export interface MultiFixtureOptions {
  /** One emulator per authority, each with its demo principal registered; the options are added to that. */
  emulators: Partial<Record<EmulatorAuthority, Omit<EmulatorOptions, 'authority'>>>;
  accounts: Record<string, AccountSpec>;
}

export interface MultiFixture {
  dir: string;
  stateDir: string;
  socket: string;
  configPath: string;
  agent: AgentProcess;
  accounts: Readonly<Record<string, AccountSpec>>;
  /** The emulator of an authority; throws if the fixture has none. */
  emulator(authority: EmulatorAuthority): Emulator;
  /** The emulator an account logs in to. */
  emulatorOf(account: string): Emulator;
  writeConfig(top?: Record<string, unknown>): void;
  /** `provision --account NAME --stdin` with the demo credentials of its authority (verified unless args say). */
  provision(account: string, args?: string[]): Promise<CliResult>;
  /**
   * Provisions every account: the first alone (it creates the state database and key), the others a few
   * at a time. Throws, with the CLI's error output, if one fails.
   */
  provisionAll(args?: string[]): Promise<void>;
  cleanup(): Promise<void>;
}

const PROVISION_CONCURRENCY = 3;

export async function multiFixture(options: MultiFixtureOptions): Promise<MultiFixture> {
  const w = workspace();
  const emulators = new Map<EmulatorAuthority, Emulator>();
  try {
    for (const [authority, extra] of Object.entries(options.emulators) as Array<[EmulatorAuthority, EmulatorOptions]>) {
      const emulator = createEmulator({ ...extra, authority, ...DEMO_PRINCIPALS[authority].register });
      emulators.set(authority, emulator);
      await emulator.start();
    }
  } catch (err) {
    await w.cleanup(emulators.values());
    throw err;
  }
  const emulator = (authority: EmulatorAuthority): Emulator => {
    const e = emulators.get(authority);
    if (!e) throw new Error(`the fixture has no ${authority} emulator`);
    return e;
  };
  const spec = (name: string): AccountSpec => {
    const a = options.accounts[name];
    if (!a) throw new Error(`the fixture has no account ${name}`);
    return a;
  };
  const f: MultiFixture = {
    dir: w.dir,
    stateDir: w.stateDir,
    socket: w.socket,
    configPath: w.configPath,
    agent: w.agent,
    accounts: options.accounts,
    emulator,
    emulatorOf: (name) => emulator(spec(name).authority),
    writeConfig(top = {}) {
      const accounts = Object.fromEntries(
        Object.entries(options.accounts).map(([name, a]) => [name, demoAccount(a.authority, emulator(a.authority).url, a.options)]),
      );
      w.writeConfig(accounts, top);
    },
    provision(name, args = []) {
      return w.provision(name, DEMO_PRINCIPALS[spec(name).authority].credentials, args);
    },
    async provisionAll(args = []) {
      const names = Object.keys(options.accounts);
      const one = async (name: string): Promise<void> => {
        const r = await f.provision(name, args);
        if (r.code !== 0) throw new Error(`provision --account ${name} exited ${r.code}: ${r.stderr}`);
      };
      const [first, ...rest] = names;
      if (first !== undefined) await one(first);
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < rest.length) await one(rest[next++]!);
      };
      await Promise.all(Array.from({ length: Math.min(PROVISION_CONCURRENCY, rest.length) }, worker));
    },
    cleanup: () => w.cleanup(emulators.values()),
  };
  f.writeConfig();
  return f;
}

export interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs a command with a clean environment (no POS_* leaking in from outside) plus `env`, `stdin` written and
 * closed; killed after 60 s.
 */
export function runCommand(cmd: string, args: string[], env: Record<string, string> = {}, stdin = ''): Promise<CommandResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? '/root', LANG: 'C.UTF-8', ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolvePromise({ code, stdout, stderr });
    });
    child.stdin.on('error', () => {}); // a command that does not read its input
    child.stdin.end(stdin);
  });
}
