/**
 * The token sections of one runtime: start to ready, memory (idle, after a login with the outbox open, beside a bare
 * node), serving GET /v1/token beside a bare http server, and the cold bursts.
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Emulator } from '../src/emulator/index.js';
import { runBurst, runCompare, type SampledFigures } from './cells.js';
import { sleepMs, smapsRollup, type GcCounts, type Smaps } from './lib.js';
import {
  agentLog,
  ask,
  call,
  JSON_HEADERS,
  now,
  outboxQueued,
  progress,
  provision,
  ROOT,
  startAgent,
  startBaseline,
  spawnTracked,
  TOKEN_PATH,
  until200,
  workspace,
  writeConfig,
  type Running,
  type Setup,
  type Workspace,
} from './proc.js';

export interface Settings {
  durationMs: number;
  warmupMs: number;
  starts: number;
  settleMs: number;
  client: 'raw' | 'http';
  sliceMs: number;
}

// ---- start to ready -----------------------------------------------------------------------------

export interface StartFigures {
  /** `node -e ''` on the runtime, spawn to exit. */
  nodeBareMs: number[];
  /** The same with the unit's node flags (when it has any). */
  nodeFlagsMs?: number[];
  /** Spawn to the first 200 from GET /v1/token with a stored token, no compile cache. */
  agentMs: number[];
  /** From the agent's own "listening" log line (wall clock, ms resolution), for where the time goes. */
  agentListeningMs: number[];
  /** With $CACHE_DIRECTORY set (systemd's CacheDirectory=), after one run that could fill it. */
  cacheDirectoryMs: number[];
  /** Files in $CACHE_DIRECTORY after that first run: 0 means the agent does not use it. */
  cacheDirectoryFiles: number;
  /** With NODE_COMPILE_CACHE (Node 22.1+'s module compile cache), after one run that filled it. */
  compileCacheMs: number[];
  compileCacheFiles: number;
}

function countFiles(dir: string): number {
  let n = 0;
  try {
    for (const name of readdirSync(dir)) n += statSync(join(dir, name)).isDirectory() ? countFiles(join(dir, name)) : 1;
  } catch {
    /* none */
  }
  return n;
}

/** Spawns the agent and waits for its first token; the time from spawn to that answer. */
async function timedStart(setup: Setup, ws: Workspace, env: Record<string, string>, cacheDirectory: string | false): Promise<number> {
  const agent = startAgent(setup, ws, { env, cacheDirectory });
  try {
    return (await until200(agent, ws.socket, TOKEN_PATH)) - agent.spawnedAt;
  } finally {
    await agent.stop();
  }
}

async function timedNode(setup: Setup, flags: string[]): Promise<number> {
  const bare = spawnTracked(setup.rt.node, [...flags, '-e', '']);
  await bare.exited;
  return now() - bare.spawnedAt;
}

export async function measureStarts(setup: Setup, ws: Workspace, settings: Settings): Promise<StartFigures> {
  const cacheDir = join(ws.dir, 'cache-directory');
  const compileCache = join(ws.dir, 'node-compile-cache');
  mkdirSync(cacheDir, { recursive: true });
  const variants = {
    plain: { env: {}, cacheDirectory: false as const },
    cacheDirectory: { env: {}, cacheDirectory: cacheDir },
    compileCache: { env: { NODE_COMPILE_CACHE: compileCache }, cacheDirectory: false as const },
  };
  // One run each that may fill the caches (written when the agent stops), not counted.
  await timedStart(setup, ws, variants.cacheDirectory.env, variants.cacheDirectory.cacheDirectory);
  await timedStart(setup, ws, variants.compileCache.env, variants.compileCache.cacheDirectory);
  const flags = setup.unit.nodeFlags;
  const f: StartFigures = {
    nodeBareMs: [],
    ...(flags.length > 0 ? { nodeFlagsMs: [] } : {}),
    agentMs: [],
    agentListeningMs: [],
    cacheDirectoryMs: [],
    cacheDirectoryFiles: countFiles(cacheDir),
    compileCacheMs: [],
    compileCacheFiles: countFiles(compileCache),
  };
  for (let i = 0; i < settings.starts; i++) {
    // Each kind in turn, so that caches and background load weigh on all alike.
    f.nodeBareMs.push(await timedNode(setup, []));
    if (f.nodeFlagsMs) f.nodeFlagsMs.push(await timedNode(setup, flags));
    writeFileSync(ws.logPath, '');
    const wallAtSpawn = Date.now();
    f.agentMs.push(await timedStart(setup, ws, variants.plain.env, variants.plain.cacheDirectory));
    const listening = readFileSync(ws.logPath, 'utf8')
      .split('\n')
      .map((l) => (l.includes('"msg":"listening"') ? (JSON.parse(l) as { time: string }).time : undefined))
      .find((t) => t !== undefined);
    if (listening) f.agentListeningMs.push(Date.parse(listening) - wallAtSpawn);
    f.cacheDirectoryMs.push(await timedStart(setup, ws, variants.cacheDirectory.env, variants.cacheDirectory.cacheDirectory));
    f.compileCacheMs.push(await timedStart(setup, ws, variants.compileCache.env, variants.compileCache.cacheDirectory));
  }
  return f;
}

// ---- memory -------------------------------------------------------------------------------------

export interface MemoryFigures {
  settleMs: number;
  /** `node -e 'setInterval(() => {}, 1e9)'` idle, without and with the unit's flags (the latter when it has any). */
  bare: Smaps | undefined;
  bareFlags?: Smaps | undefined;
  /** (a) The agent idle with a stored token (no login in this process), token-only config. */
  agentIdle: Smaps | undefined;
  /** The same without the unit's flags (when it has any): what they save. */
  agentIdleNoFlags?: Smaps | undefined;
  /** The agent idle with a stored token and the account's apiUrl set (no request yet). */
  agentIdleApi: Smaps | undefined;
  /** (b) That agent after a login (POST /v1/token/refresh) and one POST /v1/outbox delivered. */
  agentAfter: Smaps | undefined;
  /** What went wrong forcing (b), if anything. */
  afterProblem?: string;
}

const IDLE_SCRIPT = 'setInterval(() => {}, 1e9)';

async function settledBare(setup: Setup, flags: string[], settleMs: number): Promise<Smaps | undefined> {
  const bare = spawnTracked(setup.rt.node, [...flags, '-e', IDLE_SCRIPT]);
  try {
    await sleepMs(settleMs);
    return smapsRollup(bare.pid);
  } finally {
    await bare.stop();
  }
}

async function settledAgent(setup: Setup, ws: Workspace, settleMs: number, flags?: string[]): Promise<{ agent: Running; idle: Smaps | undefined }> {
  const agent = startAgent(setup, ws, flags ? { flags } : {});
  await until200(agent, ws.socket, TOKEN_PATH).catch((err: unknown) => {
    throw new Error(`the agent never served a token: ${String(err)}\n${agentLog(ws)}`);
  });
  await sleepMs(settleMs);
  return { agent, idle: smapsRollup(agent.pid) };
}

/** Forces a login (refresh of the current token) and one outbox entry delivered; undefined, or what went wrong. */
async function loginAndOutbox(ws: Workspace): Promise<string | undefined> {
  const token = (JSON.parse((await ask(ws.socket, TOKEN_PATH)).text) as { access_token: string }).access_token;
  const refresh = await call({ socketPath: ws.socket }, 'POST', '/v1/token/refresh', JSON_HEADERS, JSON.stringify({ account: 'default', rejected_token: token }));
  if (refresh.status !== 200) return `POST /v1/token/refresh answered ${refresh.status} ${refresh.text}`;
  const body = JSON.stringify({ account: 'default', path: '/api/bench', body: { total: 1 } });
  const enqueue = await call({ socketPath: ws.socket }, 'POST', '/v1/outbox', JSON_HEADERS, body);
  if (enqueue.status !== 202) return `POST /v1/outbox answered ${enqueue.status} ${enqueue.text}`;
  const deadline = now() + 10_000;
  while (now() < deadline) {
    if ((await outboxQueued(ws.socket)) === 0) return undefined;
    await sleepMs(20);
  }
  return 'the outbox entry was not delivered within 10 s';
}

/**
 * Each process alone (nothing else runs this runtime's node meanwhile on the packaged runtime, so PSS is not
 * shared): bare node idle, the agent idle, then with an apiUrl, a login and one outbox entry.
 */
export async function measureMemory(setup: Setup, ws: Workspace, emulatorUrl: string, settleMs: number): Promise<MemoryFigures> {
  const flags = setup.unit.nodeFlags;
  const bare = await settledBare(setup, [], settleMs);
  const bareFlags = flags.length > 0 ? await settledBare(setup, flags, settleMs) : undefined;
  let run = await settledAgent(setup, ws, settleMs);
  const agentIdle = run.idle;
  await run.agent.stop();
  let agentIdleNoFlags: Smaps | undefined;
  if (flags.length > 0) {
    run = await settledAgent(setup, ws, settleMs, []);
    agentIdleNoFlags = run.idle;
    await run.agent.stop();
  }
  writeConfig(ws, emulatorUrl, emulatorUrl);
  try {
    run = await settledAgent(setup, ws, settleMs);
    const agentIdleApi = run.idle;
    const afterProblem = await loginAndOutbox(ws);
    await sleepMs(settleMs);
    const agentAfter = smapsRollup(run.agent.pid);
    await run.agent.stop();
    return {
      settleMs,
      bare,
      ...(flags.length > 0 ? { bareFlags, agentIdleNoFlags } : {}),
      agentIdle,
      agentIdleApi,
      agentAfter,
      ...(afterProblem !== undefined ? { afterProblem } : {}),
    };
  } finally {
    await run.agent.stop();
    // Back to the token-only config, and no outbox.db (the agent would open one that exists at start).
    writeConfig(ws, emulatorUrl);
    for (const suffix of ['', '-wal', '-shm']) rmSync(join(ws.dir, 'state', `outbox.db${suffix}`), { force: true });
  }
}

// ---- serving ------------------------------------------------------------------------------------

export const CELLS = [
  { name: '1 keep-alive conn', connections: 1, keepAlive: true },
  { name: '8 keep-alive conns', connections: 8, keepAlive: true },
  { name: '32 keep-alive conns', connections: 32, keepAlive: true },
  { name: 'new conn per request', connections: 1, keepAlive: false },
] as const;

export type CellName = (typeof CELLS)[number]['name'];

export interface ServerFigures extends SampledFigures {
  /** Server CPU while it was under load (its own slices), as a share of one core. */
  serverCpu: number;
  /** Each smaps field's peak over the cell's measured window. */
  peak: Smaps | undefined;
  /** Collections during the measured window (both servers run with --trace-gc). */
  gc: GcCounts | undefined;
}

export interface ServingRow {
  cell: CellName;
  connections: number;
  keepAlive: boolean;
  agent: ServerFigures;
  bare: ServerFigures;
  otherCpu: number;
}

const BARE_SERVER = join(ROOT, 'bench', 'bare-server.mjs');

/** The agent and the bare server, both traced, in alternating slices per cell. */
export async function measureServing(setup: Setup, ws: Workspace, settings: Settings): Promise<ServingRow[]> {
  const bareSocket = join(ws.dir, 'bare.sock');
  let agent: Running | undefined;
  let bare: Running | undefined;
  try {
    agent = startAgent(setup, ws, { gcLog: join(ws.dir, 'agent-gc.log') });
    await until200(agent, ws.socket, TOKEN_PATH);
    const body = (await ask(ws.socket, TOKEN_PATH)).text;
    bare = startBaseline(setup, BARE_SERVER, [bareSocket, body], join(ws.dir, 'bare-gc.log'));
    await until200(bare, bareSocket, TOKEN_PATH);
    const rows: ServingRow[] = [];
    for (const cell of CELLS) {
      progress(`serving: ${cell.name}`);
      const r = await runCompare(
        {
          targets: [
            { name: 'agent', socketPath: ws.socket },
            { name: 'bare', socketPath: bareSocket },
          ],
          path: TOKEN_PATH,
          connections: cell.connections,
          keepAlive: cell.keepAlive,
          client: settings.client,
          warmupMs: settings.warmupMs,
          durationMs: settings.durationMs,
          sliceMs: settings.sliceMs,
        },
        [agent, bare],
      );
      const [a, b] = r.targets;
      rows.push({
        cell: cell.name,
        connections: cell.connections,
        keepAlive: cell.keepAlive,
        agent: { ...a!, serverCpu: a!.cpu[0]!, peak: r.peaks[0], gc: r.gc[0] },
        bare: { ...b!, serverCpu: b!.cpu[1]!, peak: r.peaks[1], gc: r.gc[1] },
        otherCpu: r.otherCpu,
      });
    }
    return rows;
  } finally {
    await agent?.stop();
    await bare?.stop();
  }
}

// ---- cold bursts --------------------------------------------------------------------------------

export const BURSTS = [10, 100, 1000];
/** The emulator holds each login this long in the cold bursts, so the burst lands while the first login is in flight. */
export const COLD_LOGIN_LATENCY_MS = 500;

export interface BurstRow {
  n: number;
  logins: number;
  statuses: Record<string, number>;
  errors: number;
  firstError?: string;
  p50Ms: number;
  maxMs: number;
}

export async function measureColdBurst(setup: Setup, emulator: Emulator, n: number): Promise<BurstRow> {
  const ws = workspace(emulator.url, `cold${n}`);
  try {
    await provision(setup, ws);
    emulator.resetStats();
    emulator.setFaults({ latencyMs: COLD_LOGIN_LATENCY_MS });
    // The generator starts first and fires as soon as the socket answers /v1/status (which never logs in).
    const burst = runBurst({ socketPath: ws.socket, path: TOKEN_PATH, n, timeoutMs: 30_000, waitForSocket: true });
    await burst.started;
    const agent = startAgent(setup, ws);
    try {
      const r = await burst.done;
      await sleepMs(200);
      return {
        n,
        logins: emulator.stats().issued,
        statuses: r.statuses,
        errors: r.errors,
        ...(r.firstError ? { firstError: r.firstError } : {}),
        p50Ms: r.p50Ms,
        maxMs: r.maxMs,
      };
    } finally {
      await agent.stop();
    }
  } finally {
    emulator.clearFaults();
    rmSync(ws.dir, { recursive: true, force: true });
  }
}
