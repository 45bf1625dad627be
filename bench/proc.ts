/**
 * The bench's process plumbing: agent workspaces, spawning the agent and the baselines on a runtime, requests to a
 * socket, and sampling a process's memory while it is under load.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { DEMO_DEVICE } from '../src/emulator/index.js';
import { peakOf, sleepMs, smapsRollup, type Smaps, type UnitRun } from './lib.js';
import type { Runtime } from './runtime.js';

export const ROOT = resolve(import.meta.dirname, '..');
export const TOKEN_PATH = '/v1/token?account=default&min_ttl=60';
export const JSON_HEADERS = { 'x-pos-agent': '1', 'content-type': 'application/json' };

export const progress = (msg: string): void => void process.stderr.write(`bench: ${msg}\n`);
export const now = (): number => Number(process.hrtime.bigint()) / 1e6;

const CREDENTIALS = {
  clientId: DEMO_DEVICE.clientId,
  clientSecret: DEMO_DEVICE.clientSecrets[0]!,
  presharedKey: DEMO_DEVICE.presharedKey!,
};

/** Children run plain: no loader, options or compile cache inherited from the bench's own process. */
const INHERITED_OUT = new Set(['NODE_OPTIONS', 'NODE_COMPILE_CACHE', 'CACHE_DIRECTORY', 'NODE_ENV']);
export const CHILD_ENV: Record<string, string> = Object.fromEntries(
  Object.entries(process.env).filter((e): e is [string, string] => e[1] !== undefined && !INHERITED_OUT.has(e[0])),
);

/** One runtime's way of running the agent: the node and CLI, and the unit's flags and NODE_* environment. */
export interface Setup {
  rt: Runtime;
  unit: UnitRun & { flagsFrom: string };
  /** $CACHE_DIRECTORY for every agent run when the unit has CacheDirectory= (as systemd would set it). */
  cacheDirectory?: string;
}

// ---- workspaces ---------------------------------------------------------------------------------

export interface Workspace {
  dir: string;
  socket: string;
  configPath: string;
  logPath: string;
}

/** A new agent workspace (config, state, socket, log) whose one account logs in at identityUrl. */
export function workspace(identityUrl: string, name: string, apiUrl?: string): Workspace {
  const dir = mkdtempSync(join(tmpdir(), `pta-bench-${name}-`));
  const ws = { dir, socket: join(dir, 'run', 'agent.sock'), configPath: join(dir, 'config.json'), logPath: join(dir, 'agent.log') };
  writeConfig(ws, identityUrl, apiUrl);
  return ws;
}

/** (Re)writes the workspace's config: the account's identity service and, for the proxy and the outbox, its API. */
export function writeConfig(ws: Workspace, identityUrl: string, apiUrl?: string): void {
  writeFileSync(
    ws.configPath,
    JSON.stringify({
      socket: ws.socket,
      stateDir: join(ws.dir, 'state'),
      logLevel: 'info',
      accounts: {
        default: {
          authority: 'eta-ereceipt',
          identityUrl,
          ...(apiUrl !== undefined ? { apiUrl } : {}),
          identity: { posserial: DEMO_DEVICE.posserial, pososversion: 'os', posmodelframework: '1' },
        },
      },
    }),
  );
}

export function provision(setup: Setup, ws: Workspace): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(
      setup.rt.node,
      [setup.rt.cli, 'provision', '--config', ws.configPath, '--account', 'default', '--stdin', '--no-verify'],
      { env: CHILD_ENV, stdio: ['pipe', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolvePromise() : reject(new Error(`provision exited ${code}: ${stderr}`))));
    child.stdin.end(JSON.stringify(CREDENTIALS));
  });
}

export function agentLog(ws: Workspace): string {
  try {
    return readFileSync(ws.logPath, 'utf8').split('\n').slice(-20).join('\n');
  } catch {
    return '';
  }
}

// ---- processes ----------------------------------------------------------------------------------

export interface Running {
  child: ChildProcess;
  pid: number;
  spawnedAt: number;
  exited: Promise<void>;
  /** The `--trace-gc` log (the process's stdout), when traced. */
  gcLog?: string;
  stop(): Promise<void>;
}

export interface SpawnOptions {
  /** stderr (and stdout unless `stdout` says otherwise) appended here; default: discarded. */
  logPath?: string;
  /** `pipe`, or a file that gets stdout alone (a `--trace-gc` log). */
  stdout?: 'pipe' | string;
  env?: Record<string, string>;
}

export function spawnTracked(node: string, args: string[], options: SpawnOptions = {}): Running {
  const log = options.logPath === undefined ? 'ignore' : openSync(options.logPath, 'a');
  const out = options.stdout === undefined ? log : options.stdout === 'pipe' ? 'pipe' : openSync(options.stdout, 'a');
  const spawnedAt = now();
  const child = spawn(node, args, { env: { ...CHILD_ENV, ...options.env }, stdio: ['ignore', out, log], cwd: ROOT });
  for (const fd of new Set([log, out])) if (typeof fd === 'number') closeSync(fd);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    child,
    pid: child.pid!,
    spawnedAt,
    exited,
    ...(options.stdout !== undefined && options.stdout !== 'pipe' ? { gcLog: options.stdout } : {}),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

export interface AgentOptions {
  /** Run with --trace-gc, its lines (stdout) in this file. */
  gcLog?: string;
  /** Node flags instead of the unit's. */
  flags?: string[];
  /** More environment (NODE_COMPILE_CACHE). */
  env?: Record<string, string>;
  /** $CACHE_DIRECTORY: this directory, or none (false); default the setup's (set when the unit has CacheDirectory=). */
  cacheDirectory?: string | false;
}

/** The agent as the unit runs it: the runtime's node with the unit's flags and NODE_* environment. */
export function startAgent(setup: Setup, ws: Workspace, options: AgentOptions = {}): Running {
  const flags = [...(options.flags ?? setup.unit.nodeFlags), ...(options.gcLog !== undefined ? ['--trace-gc'] : [])];
  const cacheDirectory = options.cacheDirectory ?? setup.cacheDirectory;
  const env = {
    ...setup.unit.env,
    ...(cacheDirectory !== undefined && cacheDirectory !== false ? { CACHE_DIRECTORY: cacheDirectory } : {}),
    ...options.env,
  };
  return spawnTracked(setup.rt.node, [...flags, setup.rt.cli, 'run', '--config', ws.configPath], {
    logPath: ws.logPath,
    ...(options.gcLog !== undefined ? { stdout: options.gcLog } : {}),
    env,
  });
}

/** A baseline script (bench/bare-*.mjs) on the runtime's node with the unit's flags, traced into gcLog when given. */
export function startBaseline(setup: Setup, script: string, args: string[], gcLog?: string): Running {
  const flags = [...setup.unit.nodeFlags, ...(gcLog !== undefined ? ['--trace-gc'] : [])];
  return spawnTracked(setup.rt.node, [...flags, script, ...args], gcLog !== undefined ? { stdout: gcLog } : {});
}

/** The emulator in its own process (the CLI's `emulator --port 0`), so that it shares no event loop with the bench. */
export interface EmulatorProcess extends Running {
  url: string;
  port: number;
}

/** On the machine's node and the repository's CLI, so that it never shares the packaged node's pages with the agent. */
export function startEmulatorProcess(cli: string, logPath: string): Promise<EmulatorProcess> {
  const running = spawnTracked(process.execPath, [cli, 'emulator', '--port', '0'], { logPath, stdout: 'pipe' });
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => {
      void running.stop();
      reject(new Error('the emulator process did not listen within 15 s'));
    }, 15_000);
    // Read every line (the stdout pipe must not fill); the first names the URL.
    createInterface({ input: running.child.stdout! }).on('line', (line) => {
      const m = /listening on (http:\/\/[^\s]+)/.exec(line);
      if (!m) return;
      clearTimeout(timer);
      const url = m[1]!;
      resolvePromise({ ...running, url, port: Number(new URL(url).port) });
    });
    void running.exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`the emulator process exited (${running.child.exitCode})`));
    });
  });
}

/** A TCP port on 127.0.0.1 where nothing listens (bound, then closed): an API that is down. */
export function closedPort(): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolvePromise(port));
    });
  });
}

// ---- requests -----------------------------------------------------------------------------------

/** One request (a new connection) to a socket or a TCP address; status and body text. */
export function call(
  to: { socketPath: string } | { port: number },
  method: string,
  path: string,
  headers: Record<string, string> = {},
  body?: string,
): Promise<{ status: number; text: string }> {
  return new Promise((resolvePromise, reject) => {
    const where = 'socketPath' in to ? { socketPath: to.socketPath } : { host: '127.0.0.1', port: to.port };
    const all: Record<string, string | number> = { ...headers, ...(body !== undefined ? { 'content-length': Buffer.byteLength(body) } : {}) };
    const req = request({ ...where, method, path, headers: all, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (c: string) => (text += c));
      res.on('end', () => resolvePromise({ status: res.statusCode ?? 0, text }));
    });
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(body);
  });
}

/** GET on a new connection to the agent's socket (with X-Pos-Agent); status and body, or an error. */
export const ask = (socketPath: string, path: string): Promise<{ status: number; text: string }> =>
  call({ socketPath }, 'GET', path, { 'x-pos-agent': '1' });

/** Polls every 2 ms until GET path answers 200; returns the time (now()) of that answer. */
export async function until200(running: Running, socket: string, path: string, timeoutMs = 15_000): Promise<number> {
  const deadline = now() + timeoutMs;
  while (now() < deadline) {
    if (running.child.exitCode !== null) throw new Error(`the process exited (${running.child.exitCode}) before answering`);
    try {
      if ((await ask(socket, path)).status === 200) return now();
    } catch {
      /* not listening yet */
    }
    await sleepMs(2);
  }
  throw new Error(`no 200 from ${path} within ${timeoutMs} ms`);
}

/** The account's outbox entries still waiting, from /v1/status (undefined when it says nothing of an outbox). */
export async function outboxQueued(socket: string): Promise<number | undefined> {
  const status = JSON.parse((await ask(socket, '/v1/status')).text) as { accounts: Record<string, { outbox?: { queued: number } }> };
  return status.accounts.default?.outbox?.queued;
}

// ---- memory under load --------------------------------------------------------------------------

/** Reads smaps_rollup of some processes every `everyMs` and keeps each field's peak per process. */
export class PeakSampler {
  readonly #pids: number[];
  readonly #peaks: Array<Smaps | undefined>;
  #timer: NodeJS.Timeout | undefined;

  constructor(pids: number[], everyMs = 100) {
    this.#pids = pids;
    this.#peaks = pids.map(() => undefined);
    this.#sample();
    this.#timer = setInterval(() => this.#sample(), everyMs);
  }

  #sample(): void {
    this.#pids.forEach((pid, i) => (this.#peaks[i] = peakOf(this.#peaks[i], smapsRollup(pid))));
  }

  /** Stops (after a last reading); the peaks, in the order of the pids. */
  stop(): Array<Smaps | undefined> {
    if (this.#timer !== undefined) {
      clearInterval(this.#timer);
      this.#timer = undefined;
      this.#sample();
    }
    return this.#peaks;
  }
}
