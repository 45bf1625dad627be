/**
 * Test harness for integration tests: the real CLI (compiled, in dist/) in a child process,
 * a temporary state directory, and the bundled emulator in the test process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createEmulator, DEMO_DEVICE, type Emulator, type EmulatorOptions } from '../../src/emulator/index.js';

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

  start(): void {
    const child = spawn(process.execPath, [CLI, 'run', '--config', this.configPath], {
      stdio: ['ignore', 'pipe', 'pipe'],
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

export async function fixture(options: EmulatorOptions = {}): Promise<Fixture> {
  const dir = mkdtempSync(join(tmpdir(), 'pta-it-'));
  const emulator = createEmulator({ devices: [DEMO_DEVICE], rateLimitPerMinute: 0, ...options });
  await emulator.start();
  const socket = join(dir, 'run', 'agent.sock');
  const stateDir = join(dir, 'state');
  const configPath = join(dir, 'config.json');
  const f: Fixture = {
    dir,
    stateDir,
    socket,
    configPath,
    emulator,
    agent: new AgentProcess(configPath, socket),
    writeConfig(account = {}, top = {}) {
      writeFileSync(
        configPath,
        JSON.stringify({
          socket,
          stateDir,
          logLevel: 'debug',
          ...top,
          accounts: {
            default: {
              authority: 'eta-ereceipt',
              identityUrl: emulator.url,
              identity: { posserial: DEMO_DEVICE.posserial, pososversion: 'os', posmodelframework: '1' },
              ...account,
            },
          },
        }),
      );
    },
    provision(credentials = DEMO_CREDENTIALS, args = ['--no-verify']) {
      return runCli(['provision', '--config', configPath, '--account', 'default', '--stdin', ...args], {
        stdin: JSON.stringify(credentials),
      });
    },
    async cleanup() {
      await f.agent.stop();
      await emulator.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  f.writeConfig();
  return f;
}
