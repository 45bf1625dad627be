/**
 * `npm run bench`: measures the compiled agent (dist/cli/main.js run) against the bundled emulator and prints
 * one table, also written as JSON to bench/results/latest.json. It measures; it does not gate: the exit code is 0
 * even when a target is missed (a failure to run the bench at all exits 1).
 *
 *   serving     token answers over the socket, agent vs a bare Node http server (bench/bare-server.mjs) answering
 *               the same bytes, measured by one generator process per cell (bench/loadgen.ts) with the same settings,
 *               the two servers taking turns in 500 ms slices
 *   start       spawn to the first 200 from GET /v1/token with a stored token, vs `node -e ''` spawn to exit
 *   memory      VmRSS idle (settled after start) and the peak during the 32-connection cell
 *   cold burst  N concurrent first requests on an agent with credentials and no token: logins at the emulator
 *   day         logins in 24 simulated hours with one-hour tokens (bench/day.ts)
 *   proxy       POST /v1/proxy/default/api/bench over the socket vs the same POST straight to the emulator's API on
 *               TCP with the agent's own token as Bearer, the two taking turns in slices from one generator process;
 *               the emulator runs in its own process (`dist/cli/main.js emulator --port 0`). Added latency (p50, p99)
 *               at 1 connection, throughput ratio at 8
 *   outbox      durable enqueues/s (POST /v1/outbox, each till waiting for its 202) at 1 and 16 tills with the API
 *               down (apiUrl on a closed port), vs a bare SQLite insert loop (WAL, synchronous=FULL, one transaction
 *               per insert, the outbox's table) run by the generator on the same disk, taking turns in slices; then
 *               delivery: BENCH_OUTBOX_N entries queued with the API down, the agent restarted with the API up, and
 *               the rate at which they reach the emulator, beside the emulator's direct rate at 1 connection
 *
 * Options (environment): BENCH_DURATION_MS (3000), BENCH_WARMUP_MS (1000), BENCH_STARTS (10), BENCH_CLIENT (raw | http),
 * BENCH_CLI (the compiled CLI to measure; default dist/cli/main.js), BENCH_RESULTS (default bench/results/latest.json),
 * BENCH_OUTBOX_N (2000), BENCH_ONLY=proxy (only the proxy cells, as JSON: for trying a change).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { createEmulator, DEMO_DEVICE, type Emulator } from '../src/emulator/index.js';
import { simulateDay, type DayResult } from './day.js';
import { cpuMs, fileSystemOf, fixed, machine, machineBusyMs, median, mib, rssBytes, sleepMs, table } from './lib.js';
import type { BurstResult, BurstSpec, CompareResult, CompareSpec, CompareTarget, TargetFigures } from './loadgen.js';

const ROOT = resolve(import.meta.dirname, '..');
/** The compiled CLI measured; BENCH_CLI points at another build (e.g. a candidate fix) to compare. */
const CLI = resolve(process.env.BENCH_CLI ?? join(ROOT, 'dist', 'cli', 'main.js'));
const LOADGEN = join(ROOT, 'bench', 'loadgen.ts');
const BARE = join(ROOT, 'bench', 'bare-server.mjs');
const BARE_PROXY = join(ROOT, 'bench', 'bare-proxy.mjs');
const RESULTS = resolve(process.env.BENCH_RESULTS ?? join(ROOT, 'bench', 'results', 'latest.json'));

const DURATION_MS = Number(process.env.BENCH_DURATION_MS ?? 3_000);
const WARMUP_MS = Number(process.env.BENCH_WARMUP_MS ?? 1_000);
const STARTS = Number(process.env.BENCH_STARTS ?? 10);
/** The generator's client: raw HTTP/1.1 on net sockets (default) or node:http with an http.Agent (see loadgen.ts). */
const CLIENT: 'raw' | 'http' = process.env.BENCH_CLIENT === 'http' ? 'http' : 'raw';
/** The two servers take turns in slices this long. */
const SLICE_MS = 500;
const TOKEN_PATH = '/v1/token?account=default&min_ttl=60';
const BURSTS = [10, 100, 1000];
/** The emulator holds each login this long in the cold bursts, so the burst lands while the first login is in flight. */
const COLD_LOGIN_LATENCY_MS = 500;
const DAY_SEEDS = [1, 2, 3, 4, 5];
const SETTLE_MS = 2_000;
/** The proxy's and the outbox's request: a path the emulator's generic API answers 202, and a small JSON body. */
const API_PATH = '/api/bench';
const API_BODY = JSON.stringify({
  header: { dateTimeIssued: '2025-01-01T10:00:00Z', receiptNumber: 'B-000001', currency: 'EGP' },
  items: [{ description: 'coffee', quantity: 1, unitPrice: 45.5, total: 45.5 }],
  total: 45.5,
});
const PROXY_CELLS = [
  { name: '1 keep-alive conn', connections: 1 },
  { name: '8 keep-alive conns', connections: 8 },
] as const;
const OUTBOX_TILLS = [1, 16];
/** Entries queued with the API down, then delivered once it is up. */
const OUTBOX_N = Number(process.env.BENCH_OUTBOX_N ?? 2_000);

const TARGETS = {
  throughputRatio8: 0.8,
  p99OneConnMs: 1,
  readyMs: 400,
  idleRssMiB: 70,
  coldLogins: 1,
  loginsPerDay: 40,
  proxyAddedP50Ms: 0.5,
  proxyThroughputRatio8: 0.8,
  outboxEnqueuesPerS16: 2_000,
};

const CREDENTIALS = {
  clientId: DEMO_DEVICE.clientId,
  clientSecret: DEMO_DEVICE.clientSecrets[0]!,
  presharedKey: DEMO_DEVICE.presharedKey!,
};

// Children run plain: no loader or options inherited from the bench's own process.
const CHILD_ENV = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'NODE_OPTIONS'));

const progress = (msg: string): void => void process.stderr.write(`bench: ${msg}\n`);
const now = (): number => Number(process.hrtime.bigint()) / 1e6;

// ---- the agent and its workspace ----------------------------------------------------------------

interface Workspace {
  dir: string;
  socket: string;
  configPath: string;
  logPath: string;
}

/** A new agent workspace (config, state, socket, log) whose one account logs in at identityUrl. */
function workspace(identityUrl: string, name: string, apiUrl?: string): Workspace {
  const dir = mkdtempSync(join(tmpdir(), `pta-bench-${name}-`));
  const ws = { dir, socket: join(dir, 'run', 'agent.sock'), configPath: join(dir, 'config.json'), logPath: join(dir, 'agent.log') };
  writeConfig(ws, identityUrl, apiUrl);
  return ws;
}

/** (Re)writes the workspace's config: the account's identity service and, for the proxy and the outbox, its API. */
function writeConfig(ws: Workspace, identityUrl: string, apiUrl?: string): void {
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

function provision(ws: Workspace): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(
      process.execPath,
      [CLI, 'provision', '--config', ws.configPath, '--account', 'default', '--stdin', '--no-verify'],
      { env: CHILD_ENV, stdio: ['pipe', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolvePromise() : reject(new Error(`provision exited ${code}: ${stderr}`))));
    child.stdin.end(JSON.stringify(CREDENTIALS));
  });
}

interface Running {
  child: ChildProcess;
  pid: number;
  spawnedAt: number;
  exited: Promise<void>;
  stop(): Promise<void>;
}

function spawnTracked(args: string[], logPath?: string, pipeStdout = false): Running {
  const log = logPath === undefined ? 'ignore' : openSync(logPath, 'a');
  const spawnedAt = now();
  const child = spawn(process.execPath, args, { env: CHILD_ENV, stdio: ['ignore', pipeStdout ? 'pipe' : log, log], cwd: ROOT });
  if (typeof log === 'number') closeSync(log);
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    child,
    pid: child.pid!,
    spawnedAt,
    exited,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

const startAgent = (ws: Workspace): Running => spawnTracked([CLI, 'run', '--config', ws.configPath], ws.logPath);

/** The emulator in its own process (the CLI's `emulator --port 0`), so that it shares no event loop with the bench. */
interface EmulatorProcess extends Running {
  url: string;
  port: number;
}

function startEmulatorProcess(logPath: string): Promise<EmulatorProcess> {
  const running = spawnTracked([CLI, 'emulator', '--port', '0'], logPath, true);
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
function closedPort(): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolvePromise(port));
    });
  });
}

/** One request (a new connection) to a socket or a TCP address; status and body text. */
function call(
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

/** One request on a new connection; status and body, or an error. */
function ask(socketPath: string, path: string): Promise<{ status: number; text: string }> {
  return new Promise((resolvePromise, reject) => {
    const req = request({ socketPath, path, headers: { 'x-pos-agent': '1' }, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (c: string) => (text += c));
      res.on('end', () => resolvePromise({ status: res.statusCode ?? 0, text }));
    });
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** Polls every 2 ms until GET path answers 200; returns the time (now()) of that answer. */
async function until200(running: Running, socket: string, path: string, timeoutMs = 15_000): Promise<number> {
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

function agentLog(ws: Workspace): string {
  try {
    return readFileSync(ws.logPath, 'utf8').split('\n').slice(-20).join('\n');
  } catch {
    return '';
  }
}

// ---- the load generator -------------------------------------------------------------------------

interface ServerFigures extends TargetFigures {
  /** Server CPU while it was under load, as a share of one core. */
  serverCpu: number;
  serverPeakRss: number;
}

interface CellRun {
  agent: ServerFigures;
  bare: ServerFigures;
  /** CPU used by every other process on the machine during the window, in cores (other engineers' tests...). */
  otherCpu: number;
}

/**
 * Runs one cell from a separate generator process against both servers in alternating slices, sampling both
 * servers (CPU, peak RSS) and the machine while it measures.
 */
function runCell(agent: Running, agentSocket: string, bare: Running, bareSocket: string, cell: (typeof CELLS)[number]): Promise<CellRun> {
  const spec: CompareSpec = {
    kind: 'compare',
    targets: [
      { name: 'agent', socketPath: agentSocket },
      { name: 'bare', socketPath: bareSocket },
    ],
    path: TOKEN_PATH,
    connections: cell.connections,
    keepAlive: cell.keepAlive,
    client: CLIENT,
    warmupMs: WARMUP_MS,
    durationMs: DURATION_MS,
    sliceMs: SLICE_MS,
  };
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', LOADGEN, JSON.stringify(spec)], {
      env: CHILD_ENV,
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const pids = [agent.pid, bare.pid, child.pid!];
    let cpu0: number[] = [];
    let busy0 = 0;
    let self0 = process.cpuUsage();
    let t0 = 0;
    const peak = [0, 0];
    let sampler: NodeJS.Timeout | undefined;
    let result: CellRun | undefined;
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const msg = JSON.parse(line) as { event: string };
      if (msg.event === 'measuring') {
        cpu0 = pids.map((p) => cpuMs(p) ?? 0);
        busy0 = machineBusyMs();
        self0 = process.cpuUsage();
        t0 = now();
        sampler = setInterval(() => [agent.pid, bare.pid].forEach((p, i) => (peak[i] = Math.max(peak[i]!, rssBytes(p) ?? 0))), 50);
      } else if (msg.event === 'result') {
        clearInterval(sampler);
        const elapsed = now() - t0;
        const used = pids.map((p, i) => (cpuMs(p) ?? 0) - cpu0[i]!);
        const self = process.cpuUsage(self0);
        const others = machineBusyMs() - busy0 - used.reduce((a, b) => a + b, 0) - (self.user + self.system) / 1e3;
        const [a, b] = (msg as CompareResult).targets;
        result = {
          agent: { ...a!, serverCpu: used[0]! / a!.activeMs, serverPeakRss: Math.max(peak[0]!, rssBytes(agent.pid) ?? 0) },
          bare: { ...b!, serverCpu: used[1]! / b!.activeMs, serverPeakRss: Math.max(peak[1]!, rssBytes(bare.pid) ?? 0) },
          otherCpu: Math.max(0, others / elapsed),
        };
      }
    });
    child.on('error', reject);
    child.on('exit', (code) => {
      clearInterval(sampler);
      if (result) resolvePromise(result);
      else reject(new Error(`the load generator exited ${code} without a result`));
    });
  });
}

function runBurst(spec: Omit<BurstSpec, 'kind'>): { started: Promise<void>; done: Promise<BurstResult> } {
  const full: BurstSpec = { kind: 'burst', ...spec };
  const child = spawn(process.execPath, ['--import', 'tsx', LOADGEN, JSON.stringify(full)], {
    env: CHILD_ENV,
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let onStarted: () => void = () => {};
  const started = new Promise<void>((r) => (onStarted = r));
  const done = new Promise<BurstResult>((resolvePromise, reject) => {
    let result: BurstResult | undefined;
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const msg = JSON.parse(line) as { event: string };
      if (msg.event === 'waiting') onStarted();
      if (msg.event === 'result') result = msg as BurstResult;
    });
    child.on('error', reject);
    child.on('exit', (code) => (result ? resolvePromise(result) : reject(new Error(`the burst exited ${code} without a result`))));
  });
  return { started, done };
}

/** A target's figures plus the CPU each sampled process used during its slices, as a share of one core. */
interface SampledFigures extends TargetFigures {
  cpu: number[];
}

/**
 * Runs a compare spec (targets taking turns in slices) from a generator process; `pids` are the servers, whose
 * CPU the generator reads around each slice. otherCpu: what every other process used meanwhile, in cores.
 */
function runCompare(spec: Omit<CompareSpec, 'samplePids'>, pids: number[]): Promise<{ targets: SampledFigures[]; otherCpu: number }> {
  const full: CompareSpec = { ...spec, samplePids: pids };
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', LOADGEN, JSON.stringify(full)], {
      env: CHILD_ENV,
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const all = [...pids, child.pid!];
    let cpu0: number[] = [];
    let busy0 = 0;
    let self0 = process.cpuUsage();
    let t0 = 0;
    let result: { targets: SampledFigures[]; otherCpu: number } | undefined;
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const msg = JSON.parse(line) as { event: string };
      if (msg.event === 'measuring') {
        cpu0 = all.map((p) => cpuMs(p) ?? 0);
        busy0 = machineBusyMs();
        self0 = process.cpuUsage();
        t0 = now();
      } else if (msg.event === 'result') {
        const elapsed = now() - t0;
        const used = all.map((p, i) => (cpuMs(p) ?? 0) - cpu0[i]!).reduce((a, b) => a + b, 0);
        const self = process.cpuUsage(self0);
        const others = machineBusyMs() - busy0 - used - (self.user + self.system) / 1e3;
        result = {
          targets: (msg as CompareResult).targets.map((t) => ({ ...t, cpu: (t.sampledCpuMs ?? []).map((ms) => ms / t.activeMs) })),
          otherCpu: Math.max(0, others / elapsed),
        };
      }
    });
    child.on('error', reject);
    child.on('exit', (code) => (result ? resolvePromise(result) : reject(new Error(`the load generator exited ${code} without a result`))));
  });
}

// ---- the sections -------------------------------------------------------------------------------

const CELLS = [
  { name: '1 keep-alive conn', connections: 1, keepAlive: true },
  { name: '8 keep-alive conns', connections: 8, keepAlive: true },
  { name: '32 keep-alive conns', connections: 32, keepAlive: true },
  { name: 'new conn per request', connections: 1, keepAlive: false },
] as const;

type CellName = (typeof CELLS)[number]['name'];

interface ServingRow extends CellRun {
  cell: CellName;
  connections: number;
  keepAlive: boolean;
}

interface StartFigures {
  agentReadyMs: number[];
  nodeBareMs: number[];
  /** From the agent's own "listening" log line (wall clock, ms resolution), for where the time goes. */
  agentListeningMs: number[];
}

interface BurstRow {
  n: number;
  logins: number;
  statuses: Record<string, number>;
  errors: number;
  firstError?: string;
  p50Ms: number;
  maxMs: number;
  /** VmRSS of the agent once its first login is done and it has settled (the login path's modules loaded). */
  rssAfterLogin?: number;
}

async function measureStarts(ws: Workspace): Promise<StartFigures> {
  const figures: StartFigures = { agentReadyMs: [], nodeBareMs: [], agentListeningMs: [] };
  for (let i = 0; i < STARTS; i++) {
    // node -e '' first, then the agent: alternating keeps caches and load alike for both.
    const bare = spawnTracked(['-e', '']);
    await bare.exited;
    figures.nodeBareMs.push(now() - bare.spawnedAt);

    writeFileSync(ws.logPath, '');
    const wallAtSpawn = Date.now();
    const agent = startAgent(ws);
    try {
      const readyAt = await until200(agent, ws.socket, TOKEN_PATH);
      figures.agentReadyMs.push(readyAt - agent.spawnedAt);
      const listening = readFileSync(ws.logPath, 'utf8')
        .split('\n')
        .map((l) => (l.includes('"msg":"listening"') ? (JSON.parse(l) as { time: string }).time : undefined))
        .find((t) => t !== undefined);
      if (listening) figures.agentListeningMs.push(Date.parse(listening) - wallAtSpawn);
    } finally {
      await agent.stop();
    }
  }
  return figures;
}

async function measureServing(agent: Running, agentSocket: string, bare: Running, bareSocket: string): Promise<ServingRow[]> {
  const rows: ServingRow[] = [];
  for (const cell of CELLS) {
    progress(`serving: ${cell.name}`);
    const run = await runCell(agent, agentSocket, bare, bareSocket, cell);
    rows.push({ cell: cell.name, connections: cell.connections, keepAlive: cell.keepAlive, ...run });
  }
  return rows;
}

async function measureColdBurst(emulator: Emulator, n: number): Promise<BurstRow> {
  const ws = workspace(emulator.url, `cold${n}`);
  try {
    await provision(ws);
    emulator.resetStats();
    emulator.setFaults({ latencyMs: COLD_LOGIN_LATENCY_MS });
    // The generator starts first and fires as soon as the socket answers /v1/status (which never logs in).
    const burst = runBurst({ socketPath: ws.socket, path: TOKEN_PATH, n, timeoutMs: 30_000, waitForSocket: true });
    await burst.started;
    const agent = startAgent(ws);
    try {
      const r = await burst.done;
      await sleepMs(n === BURSTS[0] ? SETTLE_MS : 200);
      const logins = emulator.stats().issued;
      const rssAfterLogin = n === BURSTS[0] ? rssBytes(agent.pid) : undefined;
      return {
        n,
        logins,
        statuses: r.statuses,
        errors: r.errors,
        ...(r.firstError ? { firstError: r.firstError } : {}),
        p50Ms: r.p50Ms,
        maxMs: r.maxMs,
        ...(rssAfterLogin !== undefined ? { rssAfterLogin } : {}),
      };
    } finally {
      await agent.stop();
    }
  } finally {
    emulator.clearFaults();
    rmSync(ws.dir, { recursive: true, force: true });
  }
}

// ---- beyond the token: the proxy and the outbox ----------------------------------------------------

interface ProxyRow {
  cell: string;
  connections: number;
  /** cpu: [agent, emulator, bare proxy] as shares of one core during that target's slices. */
  proxy: SampledFigures;
  direct: SampledFigures;
  /** A bare Node reverse proxy (bench/bare-proxy.mjs) to the same API: what any Node proxy costs here. */
  bareProxy: SampledFigures;
  otherCpu: number;
}

interface OutboxEnqueueRow {
  tills: number;
  /** cpu: [agent] */
  agent: SampledFigures;
  /** The bare SQLite loop (in the generator: its CPU is generatorCpu). */
  sqlite: SampledFigures;
  otherCpu: number;
}

interface DeliveryFigures {
  queued: number;
  /** Enqueue answers other than 202 while filling (expected 0). */
  fillFailures: number;
  /** Requests that reached the emulator, and the answers it gave. */
  received: number;
  statuses: Record<string, number>;
  duplicates: number;
  /** From the first to the last request at the emulator (its clock, ms resolution). */
  spanMs: number;
  perSecond: number;
  /** From spawning the agent with the API up to its status showing nothing queued. */
  spawnToDrainedMs: number;
  /** Entries still waiting when the wait ended (0 unless it timed out). */
  leftQueued: number;
}

interface BeyondFigures {
  emulatorUrl: string;
  proxy: ProxyRow[];
  outboxDir: string;
  /** The file system the outbox and the baseline wrote to (type and device, from /proc/self/mounts). */
  outboxFs: string;
  outbox: OutboxEnqueueRow[];
  delivery: DeliveryFigures;
}

const JSON_HEADERS = { 'x-pos-agent': '1', 'content-type': 'application/json' };
const ENQUEUE_BODY = JSON.stringify({ account: 'default', path: API_PATH, body: JSON.parse(API_BODY) as unknown });

async function measureProxy(api: EmulatorProcess): Promise<ProxyRow[]> {
  const ws = workspace(api.url, 'proxy', api.url);
  let agent: Running | undefined;
  let bareProxy: Running | undefined;
  try {
    await provision(ws);
    agent = startAgent(ws);
    await until200(agent, ws.socket, TOKEN_PATH).catch((err: unknown) => {
      throw new Error(`the proxy's agent never served a token: ${String(err)}\n${agentLog(ws)}`);
    });
    const token = (JSON.parse((await ask(ws.socket, TOKEN_PATH)).text) as { access_token: string }).access_token;
    const proxyPath = `/v1/proxy/default${API_PATH}`;
    const direct = { 'content-type': 'application/json', authorization: `Bearer ${token}` };
    // Both ways must answer as expected before anything is measured.
    const viaAgent = await call({ socketPath: ws.socket }, 'POST', proxyPath, JSON_HEADERS, API_BODY);
    const straight = await call({ port: api.port }, 'POST', API_PATH, direct, API_BODY);
    if (viaAgent.status !== 202 || straight.status !== 202) {
      throw new Error(`expected 202 both ways; proxy ${viaAgent.status} ${viaAgent.text}, direct ${straight.status} ${straight.text}\n${agentLog(ws)}`);
    }
    const bareSocket = join(ws.dir, 'bare-proxy.sock');
    bareProxy = spawnTracked([BARE_PROXY, bareSocket, api.url, token]);
    const deadline = now() + 10_000;
    while ((await call({ socketPath: bareSocket }, 'POST', proxyPath, JSON_HEADERS, API_BODY).catch(() => ({ status: 0 }))).status !== 202) {
      if (now() > deadline) throw new Error('the bare proxy never answered 202');
      await sleepMs(50);
    }
    const targets: CompareTarget[] = [
      {
        name: 'proxy',
        socketPath: ws.socket,
        request: { method: 'POST', path: proxyPath, headers: JSON_HEADERS, body: API_BODY },
        expectStatus: 202,
      },
      {
        name: 'direct',
        tcp: { host: '127.0.0.1', port: api.port },
        request: { method: 'POST', path: API_PATH, headers: direct, body: API_BODY, host: `127.0.0.1:${api.port}` },
        expectStatus: 202,
      },
      {
        name: 'bare proxy',
        socketPath: bareSocket,
        request: { method: 'POST', path: proxyPath, headers: JSON_HEADERS, body: API_BODY },
        expectStatus: 202,
      },
    ];
    const rows: ProxyRow[] = [];
    for (const cell of PROXY_CELLS) {
      progress(`proxy: ${cell.name}`);
      const spec = { kind: 'compare' as const, targets, path: proxyPath, connections: cell.connections, keepAlive: true, client: CLIENT, warmupMs: WARMUP_MS, durationMs: DURATION_MS, sliceMs: SLICE_MS };
      const r = await runCompare(spec, [agent.pid, api.pid, bareProxy.pid]);
      rows.push({ cell: cell.name, connections: cell.connections, proxy: r.targets[0]!, direct: r.targets[1]!, bareProxy: r.targets[2]!, otherCpu: r.otherCpu });
    }
    return rows;
  } finally {
    await bareProxy?.stop();
    await agent?.stop();
    rmSync(ws.dir, { recursive: true, force: true });
  }
}

/** Enqueues at 1 and 16 tills against an agent whose API is down, beside the bare SQLite loop on the same disk. */
async function measureEnqueue(api: EmulatorProcess): Promise<{ rows: OutboxEnqueueRow[]; dir: string }> {
  const ws = workspace(api.url, 'outbox', `http://127.0.0.1:${await closedPort()}`);
  let agent: Running | undefined;
  try {
    await provision(ws);
    agent = startAgent(ws);
    await until200(agent, ws.socket, '/v1/status');
    const first = await call({ socketPath: ws.socket }, 'POST', '/v1/outbox', JSON_HEADERS, ENQUEUE_BODY);
    if (first.status !== 202) throw new Error(`POST /v1/outbox answered ${first.status} ${first.text}\n${agentLog(ws)}`);
    const targets: CompareTarget[] = [
      {
        name: 'agent',
        socketPath: ws.socket,
        request: { method: 'POST', path: '/v1/outbox', headers: JSON_HEADERS, body: ENQUEUE_BODY },
        expectStatus: 202,
      },
      // Beside the agent's outbox.db, so on the same file system.
      { name: 'bare sqlite', kind: 'sqlite', sqlite: { dbPath: join(ws.dir, 'state', 'bare-sqlite.db'), body: API_BODY } },
    ];
    const rows: OutboxEnqueueRow[] = [];
    for (const tills of OUTBOX_TILLS) {
      progress(`outbox: enqueue, ${tills} till${tills === 1 ? '' : 's'}`);
      const spec = { kind: 'compare' as const, targets, path: '/v1/outbox', connections: tills, keepAlive: true, client: CLIENT, warmupMs: WARMUP_MS, durationMs: DURATION_MS, sliceMs: SLICE_MS };
      const r = await runCompare(spec, [agent.pid]);
      rows.push({ tills, agent: r.targets[0]!, sqlite: r.targets[1]!, otherCpu: r.otherCpu });
    }
    return { rows, dir: join(ws.dir, 'state') };
  } finally {
    await agent?.stop();
    rmSync(ws.dir, { recursive: true, force: true });
  }
}

/** N entries queued while the API is down; the agent restarted with the API up; how fast they reach the emulator. */
async function measureDelivery(api: EmulatorProcess): Promise<DeliveryFigures> {
  const ws = workspace(api.url, 'delivery', `http://127.0.0.1:${await closedPort()}`);
  let agent: Running | undefined;
  try {
    await provision(ws);
    agent = startAgent(ws);
    await until200(agent, ws.socket, '/v1/status');
    progress(`outbox: queueing ${OUTBOX_N} entries with the API down`);
    let next = 0;
    let fillFailures = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < OUTBOX_N) {
          next++;
          const r = await call({ socketPath: ws.socket }, 'POST', '/v1/outbox', JSON_HEADERS, ENQUEUE_BODY);
          if (r.status !== 202) fillFailures++;
        }
      }),
    );
    await agent.stop();
    agent = undefined;

    progress(`outbox: delivering ${OUTBOX_N} entries with the API up`);
    writeConfig(ws, api.url, api.url);
    const emulatorAt = { port: api.port };
    await call(emulatorAt, 'DELETE', '/_emulator/api/submissions');
    agent = startAgent(ws);
    let drainedAt = NaN;
    let leftQueued = OUTBOX_N;
    const deadline = now() + 120_000;
    while (now() < deadline) {
      try {
        const status = JSON.parse((await ask(ws.socket, '/v1/status')).text) as { accounts: Record<string, { outbox?: { queued: number } }> };
        leftQueued = status.accounts.default?.outbox?.queued ?? leftQueued;
        if (leftQueued === 0) {
          drainedAt = now();
          break;
        }
      } catch {
        /* not listening yet */
      }
      await sleepMs(20);
    }
    const spawnToDrainedMs = drainedAt - agent.spawnedAt;
    const records = (JSON.parse((await call(emulatorAt, 'GET', `/_emulator/api/submissions?limit=${OUTBOX_N * 2}`)).text) as {
      submissions: Array<{ at: string; status: number; duplicate: boolean }>;
    }).submissions;
    const statuses: Record<string, number> = {};
    for (const r of records) statuses[r.status] = (statuses[r.status] ?? 0) + 1;
    const times = records.map((r) => Date.parse(r.at));
    const spanMs = times.length > 1 ? Math.max(...times) - Math.min(...times) : NaN;
    return {
      queued: OUTBOX_N,
      fillFailures,
      received: records.length,
      statuses,
      duplicates: records.filter((r) => r.duplicate).length,
      spanMs,
      perSecond: (records.length - 1) / (spanMs / 1000),
      spawnToDrainedMs,
      leftQueued,
    };
  } finally {
    await agent?.stop();
    rmSync(ws.dir, { recursive: true, force: true });
  }
}

async function measureBeyond(): Promise<BeyondFigures> {
  const dir = mkdtempSync(join(tmpdir(), 'pta-bench-api-'));
  let api: EmulatorProcess | undefined;
  try {
    progress('proxy: starting the emulator in its own process');
    api = await startEmulatorProcess(join(dir, 'emulator.log'));
    const proxy = await measureProxy(api);
    const enqueue = await measureEnqueue(api);
    const delivery = await measureDelivery(api);
    return { emulatorUrl: api.url, proxy, outboxDir: enqueue.dir, outboxFs: fileSystemOf(enqueue.dir), outbox: enqueue.rows, delivery };
  } catch (err) {
    let log = '';
    try {
      log = readFileSync(join(dir, 'emulator.log'), 'utf8').split('\n').slice(-20).join('\n');
    } catch {
      /* none */
    }
    throw log ? new Error(`${String(err)}\nemulator log:\n${log}`) : err;
  } finally {
    await api?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---- report ------------------------------------------------------------------------------------

const verdict = (ok: boolean): string => (ok ? 'pass' : 'MISS');

/** BENCH_ONLY=proxy: only the proxy cells, printed as JSON (for trying a change quickly; not the report). */
async function proxyOnly(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'pta-bench-api-'));
  const api = await startEmulatorProcess(join(dir, 'emulator.log'));
  try {
    console.log(JSON.stringify(await measureProxy(api), null, 1));
  } finally {
    await api.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  if (process.env.BENCH_ONLY === 'proxy') return proxyOnly();
  const m = machine();
  const loadBefore = loadavg()[0]!;
  const started = now();
  const emulator = createEmulator({ devices: [DEMO_DEVICE], rateLimitPerMinute: 0 });
  await emulator.start();
  const ws = workspace(emulator.url, 'warm');
  const bareSocket = join(ws.dir, 'bare.sock');
  let agent: Running | undefined;
  let bare: Running | undefined;
  try {
    // Warm state: provisioned without a login, then one start that logs in and stores the token.
    progress('provisioning and a first login');
    await provision(ws);
    agent = startAgent(ws);
    await until200(agent, ws.socket, TOKEN_PATH).catch((err: unknown) => {
      throw new Error(`the agent never served a token: ${String(err)}\n${agentLog(ws)}`);
    });
    await agent.stop();
    agent = undefined;
    const issuedWarm = emulator.stats().issued;

    progress(`start to ready, ${STARTS} runs each`);
    const starts = await measureStarts(ws);

    progress('serving: starting the agent and the bare server');
    agent = startAgent(ws);
    await until200(agent, ws.socket, TOKEN_PATH);
    const body = (await ask(ws.socket, TOKEN_PATH)).text;
    bare = spawnTracked([BARE, bareSocket, body]);
    await until200(bare, bareSocket, TOKEN_PATH);
    await sleepMs(SETTLE_MS);
    const idleRss = rssBytes(agent.pid);
    const bareIdleRss = rssBytes(bare.pid);
    const serving = await measureServing(agent, ws.socket, bare, bareSocket);
    const loginsWhileServing = emulator.stats().issued - issuedWarm;
    await agent.stop();
    await bare.stop();
    agent = bare = undefined;

    const bursts: BurstRow[] = [];
    for (const n of BURSTS) {
      progress(`cold burst of ${n}`);
      bursts.push(await measureColdBurst(emulator, n));
    }

    progress('24 simulated hours');
    const days: Array<DayResult & { seed: number }> = [];
    for (const seed of DAY_SEEDS) days.push({ seed, ...(await simulateDay(seed)) });

    const beyond = await measureBeyond();

    report({ loadBefore, machine: m, starts, idleRss, bareIdleRss, serving, bursts, days, beyond, loginsWhileServing, seconds: (now() - started) / 1000 });
  } finally {
    await agent?.stop();
    await bare?.stop();
    await emulator.stop();
    rmSync(ws.dir, { recursive: true, force: true });
  }
}

interface Figures {
  machine: ReturnType<typeof machine>;
  starts: StartFigures;
  idleRss: number | undefined;
  bareIdleRss: number | undefined;
  serving: ServingRow[];
  bursts: BurstRow[];
  days: Array<DayResult & { seed: number }>;
  beyond: BeyondFigures;
  loginsWhileServing: number;
  seconds: number;
  loadBefore: number;
}

function report(f: Figures): void {
  const row = (name: CellName): ServingRow => f.serving.find((r) => r.cell === name)!;
  const one = row('1 keep-alive conn');
  const eight = row('8 keep-alive conns');
  const peak = row('32 keep-alive conns');
  const ratio8 = eight.agent.throughput / eight.bare.throughput;
  const readyMs = median(f.starts.agentReadyMs);
  const nodeMs = median(f.starts.nodeBareMs);
  const idleMiB = (f.idleRss ?? NaN) / 2 ** 20;
  const worstDay = Math.max(...f.days.map((d) => d.logins));
  const proxyOne = f.beyond.proxy.find((r) => r.connections === 1)!;
  const proxyEight = f.beyond.proxy.find((r) => r.connections === 8)!;
  const addedP50 = proxyOne.proxy.p50Ms - proxyOne.direct.p50Ms;
  const addedP99 = proxyOne.proxy.p99Ms - proxyOne.direct.p99Ms;
  const proxyRatio8 = proxyEight.proxy.throughput / proxyEight.direct.throughput;
  const enqueue16 = f.beyond.outbox.find((r) => r.tills === 16)!;
  const delivery = f.beyond.delivery;

  const targets = [
    { what: 'throughput at 8 conns vs bare', figure: `${fixed(ratio8)}x`, target: `>= ${TARGETS.throughputRatio8}x`, ok: ratio8 >= TARGETS.throughputRatio8 },
    { what: 'p99 at 1 conn', figure: `${fixed(one.agent.p99Ms, 3)} ms`, target: `< ${TARGETS.p99OneConnMs} ms`, ok: one.agent.p99Ms < TARGETS.p99OneConnMs },
    { what: 'start to ready (median)', figure: `${fixed(readyMs, 0)} ms`, target: `<= ${TARGETS.readyMs} ms`, ok: readyMs <= TARGETS.readyMs },
    { what: 'idle RSS', figure: `${fixed(idleMiB, 1)} MiB`, target: `< ${TARGETS.idleRssMiB} MiB`, ok: idleMiB < TARGETS.idleRssMiB },
    ...f.bursts.map((b) => ({
      what: `logins for ${b.n} concurrent cold requests`,
      figure: String(b.logins),
      target: `= ${TARGETS.coldLogins}`,
      ok: b.logins === TARGETS.coldLogins,
    })),
    { what: 'logins per 24 h, 1 h tokens (worst seed)', figure: String(worstDay), target: `<= ${TARGETS.loginsPerDay} (min 24)`, ok: worstDay <= TARGETS.loginsPerDay },
    { what: 'proxy: added p50 at 1 conn', figure: `${fixed(addedP50, 3)} ms`, target: `<= ${TARGETS.proxyAddedP50Ms} ms`, ok: addedP50 <= TARGETS.proxyAddedP50Ms },
    {
      what: 'proxy: throughput at 8 conns vs direct',
      figure: `${fixed(proxyRatio8)}x`,
      target: `>= ${TARGETS.proxyThroughputRatio8}x`,
      ok: proxyRatio8 >= TARGETS.proxyThroughputRatio8,
    },
    {
      what: 'outbox: durable enqueues/s at 16 tills',
      figure: `${fixed(enqueue16.agent.throughput, 0)}/s`,
      target: `>= ${TARGETS.outboxEnqueuesPerS16}/s`,
      ok: enqueue16.agent.throughput >= TARGETS.outboxEnqueuesPerS16,
    },
  ];

  const out: string[] = [];
  out.push(`pos-token-agent bench — ${new Date().toISOString()}`);
  out.push(`machine: ${f.machine.cpu}, ${f.machine.cores} cores, ${f.machine.memoryGiB} GiB, Node ${f.machine.node}, Linux ${f.machine.kernel}`);
  out.push(`measured: ${relative(ROOT, CLI) || CLI}`);
  out.push(`load average (1 min) before the run: ${fixed(f.loadBefore)}, after: ${fixed(loadavg()[0])}`);
  if (f.machine.cores <= 2) {
    out.push(
      `note: ${f.machine.cores} cores: the load generator and the server compete for them. Both servers are measured by the same`,
      `      generator process with the same settings, taking turns in ${SLICE_MS} ms slices; the CPU columns show who saturated.`,
    );
  }
  out.push('');
  out.push(
    `Serving GET ${TOKEN_PATH} over the Unix socket: closed loop, ${CLIENT === 'raw' ? 'raw HTTP/1.1 client' : 'node:http client'},`,
    `${WARMUP_MS / 1000} s warm-up and ${DURATION_MS / 1000} s measured per server and cell`,
  );
  const servingRows: Array<Array<string | number>> = [];
  for (const r of f.serving) {
    for (const who of ['agent', 'bare'] as const) {
      const c = r[who];
      servingRows.push([
        who === 'agent' ? r.cell : '',
        who === 'agent' ? 'agent' : 'bare node http',
        fixed(c.throughput, 0),
        fixed(c.p50Ms, 3),
        fixed(c.p99Ms, 3),
        fixed(c.maxMs, 2),
        `${fixed(c.serverCpu * 100, 0)}%`,
        `${fixed(c.generatorCpu * 100, 0)}%`,
        who === 'agent' ? `${fixed(r.otherCpu * 100, 0)}%` : '',
        c.errors + c.non200,
      ]);
    }
    servingRows.push([
      '',
      'agent / bare',
      `${fixed(r.agent.throughput / r.bare.throughput)}x`,
      `${fixed(r.agent.p50Ms / r.bare.p50Ms)}x`,
      `${fixed(r.agent.p99Ms / r.bare.p99Ms)}x`,
      '',
      '',
      '',
      '',
      '',
    ]);
  }
  out.push(table(['cell', 'server', 'req/s', 'p50 ms', 'p99 ms', 'max ms', 'server CPU', 'gen CPU', 'other CPU', 'errors'], servingRows));
  const busiest = Math.max(...f.serving.map((r) => r.otherCpu));
  out.push('server/gen CPU: share of one core while under load; other CPU: every other process on the machine (in cores)');
  if (busiest > 0.1) {
    out.push(`WARNING: other processes used up to ${fixed(busiest * 100, 0)}% of a core during the serving cells; figures are noisy`);
  }
  out.push(`logins at the emulator while serving: ${f.loginsWhileServing} (warm: expected 0)`);
  out.push('');
  out.push(`Start to ready (median of ${STARTS}; spawn → first 200 from GET /v1/token with a stored token)`);
  out.push(
    table(
      ['what', 'median ms', 'min ms', 'max ms'],
      [
        ['agent: spawn → token 200', fixed(readyMs, 0), fixed(Math.min(...f.starts.agentReadyMs), 0), fixed(Math.max(...f.starts.agentReadyMs), 0)],
        ['agent: spawn → "listening" log', fixed(median(f.starts.agentListeningMs), 0), fixed(Math.min(...f.starts.agentListeningMs), 0), fixed(Math.max(...f.starts.agentListeningMs), 0)],
        ["node -e '': spawn → exit", fixed(nodeMs, 0), fixed(Math.min(...f.starts.nodeBareMs), 0), fixed(Math.max(...f.starts.nodeBareMs), 0)],
      ],
    ),
  );
  out.push('');
  out.push('Resident memory (VmRSS). Idle: 2 s after start with a stored token (no login yet); after its first login: the');
  out.push(`cold agent of the N=${BURSTS[0]} burst, 2 s after its login`);
  out.push(
    table(
      ['process', 'idle MiB', 'peak under 32 conns MiB', 'after its first login MiB'],
      [
        ['agent', mib(f.idleRss), mib(peak.agent.serverPeakRss), mib(f.bursts[0]?.rssAfterLogin)],
        ['bare node http', mib(f.bareIdleRss), mib(peak.bare.serverPeakRss), '-'],
      ],
    ),
  );
  out.push('');
  out.push(`Cold agent, N concurrent first requests (no stored token; the emulator holds each login ${COLD_LOGIN_LATENCY_MS} ms)`);
  out.push(
    table(
      ['N', 'logins', 'answers', 'errors', 'p50 ms', 'max ms'],
      f.bursts.map((b) => [
        b.n,
        b.logins,
        Object.entries(b.statuses).map(([s, c]) => `${c}x${s}`).join(' ') || '-',
        b.errors ? `${b.errors} (${b.firstError ?? ''})` : 0,
        fixed(b.p50Ms, 0),
        fixed(b.maxMs, 0),
      ]),
    ),
  );
  out.push('');
  out.push('Logins in 24 simulated hours (FakeClock, 3600 s tokens, a request with min_ttl 60 every minute)');
  out.push(table(['seed', 'logins', 'requests', 'failed'], f.days.map((d) => [d.seed, d.logins, d.requests, d.failedRequests])));
  out.push('');
  out.push(
    `Proxy: POST /v1/proxy/default${API_PATH} over the socket vs POST ${f.beyond.emulatorUrl}${API_PATH} direct (Bearer: the`,
    `agent's token), ${Buffer.byteLength(API_BODY)}-byte JSON body, answered 202 by the emulator in its own process; closed loop, keep-alive,`,
    `the two taking turns in ${SLICE_MS} ms slices, ${WARMUP_MS / 1000} s warm-up and ${DURATION_MS / 1000} s measured each`,
  );
  const proxyRows: Array<Array<string | number>> = [];
  for (const r of f.beyond.proxy) {
    for (const who of ['proxy', 'bareProxy', 'direct'] as const) {
      const c = r[who];
      proxyRows.push([
        who === 'proxy' ? r.cell : '',
        who === 'proxy' ? 'via the agent' : who === 'bareProxy' ? 'via a bare Node proxy' : 'direct',
        fixed(c.throughput, 0),
        fixed(c.p50Ms, 3),
        fixed(c.p99Ms, 3),
        fixed(c.maxMs, 2),
        `${fixed((c.cpu[who === 'bareProxy' ? 2 : 0] ?? NaN) * 100, 0)}%`,
        `${fixed((c.cpu[1] ?? NaN) * 100, 0)}%`,
        `${fixed(c.generatorCpu * 100, 0)}%`,
        who === 'proxy' ? `${fixed(r.otherCpu * 100, 0)}%` : '',
        c.errors + c.non200,
      ]);
    }
    for (const [label, via] of [['agent adds', r.proxy], ['a bare Node proxy adds', r.bareProxy]] as const) {
      proxyRows.push([
        '',
        label,
        `${fixed(via.throughput / r.direct.throughput)}x`,
        `+${fixed(via.p50Ms - r.direct.p50Ms, 3)}`,
        `+${fixed(via.p99Ms - r.direct.p99Ms, 3)}`,
        ...Array<string>(6).fill(''),
      ]);
    }
  }
  out.push(table(['cell', 'path', 'req/s', 'p50 ms', 'p99 ms', 'max ms', 'agent CPU', 'emulator CPU', 'gen CPU', 'other CPU', 'errors'], proxyRows));
  out.push('(agent CPU is the agent for its rows and the bare proxy for its rows; each share is measured during that target\'s slices)');
  out.push(`added latency at 1 conn: p50 +${fixed(addedP50, 3)} ms, p99 +${fixed(addedP99, 3)} ms (difference of the percentiles)`);
  out.push('');
  out.push(
    `Outbox enqueue: POST /v1/outbox, each till one keep-alive connection waiting for its 202 (stored, synchronous=FULL)`,
    `before the next; the API down, so nothing is delivered meanwhile. Baseline: a bare better-sqlite3 loop, one row per`,
    `IMMEDIATE transaction (WAL, synchronous=FULL, the outbox's table), run by the generator in the agent's state dir`,
    `(${f.beyond.outboxFs}); the two take turns in ${SLICE_MS} ms slices`,
  );
  const outboxRows: Array<Array<string | number>> = [];
  for (const r of f.beyond.outbox) {
    outboxRows.push([
      r.tills,
      'agent POST /v1/outbox',
      fixed(r.agent.throughput, 0),
      fixed(r.agent.p50Ms, 3),
      fixed(r.agent.p99Ms, 3),
      fixed(r.agent.maxMs, 2),
      `${fixed((r.agent.cpu[0] ?? NaN) * 100, 0)}%`,
      `${fixed(r.agent.generatorCpu * 100, 0)}%`,
      `${fixed(r.otherCpu * 100, 0)}%`,
      r.agent.errors + r.agent.non200,
    ]);
    outboxRows.push([
      '',
      'bare SQLite, 1 tx per insert',
      fixed(r.sqlite.throughput, 0),
      fixed(r.sqlite.p50Ms, 3),
      fixed(r.sqlite.p99Ms, 3),
      fixed(r.sqlite.maxMs, 2),
      '-',
      `${fixed(r.sqlite.generatorCpu * 100, 0)}%`,
      '',
      r.sqlite.errors,
    ]);
    outboxRows.push(['', 'agent / bare', `${fixed(r.agent.throughput / r.sqlite.throughput)}x`, '', '', '', '', '', '', '']);
  }
  out.push(table(['tills', 'what', 'per s', 'p50 ms', 'p99 ms', 'max ms', 'agent CPU', 'gen CPU', 'other CPU', 'errors'], outboxRows));
  out.push('');
  out.push(
    `Outbox delivery: ${delivery.queued} entries queued with the API down, then the agent restarted with the API up; one`,
    `request in flight per account (by contract). Rate: from the first to the last request the emulator received`,
  );
  out.push(
    table(
      ['what', 'requests', 'seconds', 'per s'],
      [
        [
          'agent outbox delivery',
          `${delivery.received} (${Object.entries(delivery.statuses).map(([s, c]) => `${c}x${s}`).join(' ') || '-'}, ${delivery.duplicates} dup)`,
          fixed(delivery.spanMs / 1000, 2),
          fixed(delivery.perSecond, 0),
        ],
        ['direct at 1 conn (the proxy section\'s baseline)', '-', '-', fixed(proxyOne.direct.throughput, 0)],
        ['delivery / direct', '', '', `${fixed(delivery.perSecond / proxyOne.direct.throughput)}x`],
      ],
    ),
  );
  out.push(
    `agent spawn → nothing queued: ${fixed(delivery.spawnToDrainedMs, 0)} ms` +
      (delivery.leftQueued > 0 ? `; WARNING: ${delivery.leftQueued} still queued when the wait ended` : '') +
      (delivery.fillFailures > 0 ? `; WARNING: ${delivery.fillFailures} enqueues not answered 202` : ''),
  );
  out.push('');
  out.push('Targets');
  out.push(table(['target', 'figure', 'wanted', 'verdict'], targets.map((t) => [t.what, t.figure, t.target, verdict(t.ok)])));
  const missed = targets.filter((t) => !t.ok).length;
  out.push('');
  out.push(
    missed === 0
      ? `all ${targets.length} targets met (${fixed(f.seconds, 0)} s)`
      : `${missed} of ${targets.length} targets MISSED (${fixed(f.seconds, 0)} s); the bench does not gate: exit 0`,
  );
  const text = out.join('\n');
  process.stdout.write(text + '\n');

  mkdirSync(dirname(RESULTS), { recursive: true });
  writeFileSync(
    RESULTS,
    JSON.stringify(
      {
        at: new Date().toISOString(),
        settings: {
          durationMs: DURATION_MS,
          warmupMs: WARMUP_MS,
          starts: STARTS,
          tokenPath: TOKEN_PATH,
          coldLoginLatencyMs: COLD_LOGIN_LATENCY_MS,
          apiPath: API_PATH,
          apiBodyBytes: Buffer.byteLength(API_BODY),
          outboxN: OUTBOX_N,
        },
        ...f,
        targets,
        text,
      },
      null,
      2,
    ) + '\n',
  );
  progress(`written to ${RESULTS}`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
