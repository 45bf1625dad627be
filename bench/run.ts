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
 *
 * Options (environment): BENCH_DURATION_MS (3000), BENCH_WARMUP_MS (1000), BENCH_STARTS (10), BENCH_CLIENT (raw | http),
 * BENCH_CLI (the compiled CLI to measure; default dist/cli/main.js), BENCH_RESULTS (default bench/results/latest.json).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { createEmulator, DEMO_DEVICE, type Emulator } from '../src/emulator/index.js';
import { simulateDay, type DayResult } from './day.js';
import { cpuMs, fixed, machine, machineBusyMs, median, mib, rssBytes, sleepMs, table } from './lib.js';
import type { BurstResult, BurstSpec, CompareResult, CompareSpec, TargetFigures } from './loadgen.js';

const ROOT = resolve(import.meta.dirname, '..');
/** The compiled CLI measured; BENCH_CLI points at another build (e.g. a candidate fix) to compare. */
const CLI = resolve(process.env.BENCH_CLI ?? join(ROOT, 'dist', 'cli', 'main.js'));
const LOADGEN = join(ROOT, 'bench', 'loadgen.ts');
const BARE = join(ROOT, 'bench', 'bare-server.mjs');
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

const TARGETS = {
  throughputRatio8: 0.8,
  p99OneConnMs: 1,
  readyMs: 400,
  idleRssMiB: 70,
  coldLogins: 1,
  loginsPerDay: 40,
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

function workspace(emulator: Emulator, name: string): Workspace {
  const dir = mkdtempSync(join(tmpdir(), `pta-bench-${name}-`));
  const ws = { dir, socket: join(dir, 'run', 'agent.sock'), configPath: join(dir, 'config.json'), logPath: join(dir, 'agent.log') };
  writeFileSync(
    ws.configPath,
    JSON.stringify({
      socket: ws.socket,
      stateDir: join(dir, 'state'),
      logLevel: 'info',
      accounts: {
        default: {
          authority: 'eta-ereceipt',
          identityUrl: emulator.url,
          identity: { posserial: DEMO_DEVICE.posserial, pososversion: 'os', posmodelframework: '1' },
        },
      },
    }),
  );
  return ws;
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

function spawnTracked(args: string[], logPath?: string): Running {
  const log = logPath === undefined ? 'ignore' : openSync(logPath, 'a');
  const spawnedAt = now();
  const child = spawn(process.execPath, args, { env: CHILD_ENV, stdio: ['ignore', log, log], cwd: ROOT });
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
  const ws = workspace(emulator, `cold${n}`);
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

// ---- report ------------------------------------------------------------------------------------

const verdict = (ok: boolean): string => (ok ? 'pass' : 'MISS');

async function main(): Promise<void> {
  const m = machine();
  const loadBefore = loadavg()[0]!;
  const started = now();
  const emulator = createEmulator({ devices: [DEMO_DEVICE], rateLimitPerMinute: 0 });
  await emulator.start();
  const ws = workspace(emulator, 'warm');
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

    report({ loadBefore, machine: m, starts, idleRss, bareIdleRss, serving, bursts, days, loginsWhileServing, seconds: (now() - started) / 1000 });
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
        settings: { durationMs: DURATION_MS, warmupMs: WARMUP_MS, starts: STARTS, tokenPath: TOKEN_PATH, coldLoginLatencyMs: COLD_LOGIN_LATENCY_MS },
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
