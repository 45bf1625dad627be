/**
 * `npm run bench`: measures the compiled agent against the bundled emulator on each runtime (the packaged Node.js,
 * the machine's node), every figure beside its baseline on the same runtime, and prints one report, also written
 * as JSON to bench/results/latest.json. It measures; it does not gate: the exit code is 0 even when a target is
 * missed (a failure to run the bench at all exits 1).
 *
 * On each runtime (bench/runtime.ts), the agent runs with the node flags and NODE_* environment of the shipped unit
 * (systemd/pos-token-agent.service), the bare baselines on the same node:
 *   serving     token answers over the socket, agent vs a bare Node http server (bench/bare-server.mjs) answering
 *               the same bytes, one generator process per cell (bench/loadgen.ts), the two taking turns in slices;
 *               both run with --trace-gc: collections per 10,000 requests
 *   start       spawn to the first 200 from GET /v1/token with a stored token (no compile cache, $CACHE_DIRECTORY
 *               warm, NODE_COMPILE_CACHE warm), vs `node -e ''` spawn to exit
 *   memory      /proc/PID/smaps_rollup: (a) idle with a stored token, (b) after a login and one outbox entry, each
 *               beside a bare idle node; (c) the peaks during the load cells
 *   cold burst  N concurrent first requests on an agent with credentials and no token: logins at the emulator
 *   proxy       POST /v1/proxy/default/api/bench over the socket vs the same POST straight to the emulator's API and
 *               through a bare Node reverse proxy (bench/bare-proxy.mjs), in slices; the emulator in its own process
 *   outbox      durable enqueues/s at 1 and 16 tills with the API down vs a bare SQLite insert loop on the same disk;
 *               then delivery of BENCH_OUTBOX_N queued entries once the API is up
 * and once, runtime-free: logins in 24 simulated hours with one-hour tokens (bench/day.ts).
 *
 * Options (environment): BENCH_RUNTIMES (packaged,machine), BENCH_PACKAGE (a tarball to take as it is),
 * BENCH_NODE_FLAGS (node flags instead of the unit's), BENCH_DURATION_MS (3000), BENCH_WARMUP_MS (1000),
 * BENCH_STARTS (10), BENCH_SETTLE_MS (3000), BENCH_CLIENT (raw | http), BENCH_CLI (the compiled CLI for the machine
 * runtime; default dist/cli/main.js), BENCH_RESULTS (default bench/results/latest.json), BENCH_OUTBOX_N (2000),
 * BENCH_ONLY=proxy (only the proxy cells, as JSON: for trying a change).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { createEmulator, DEMO_DEVICE, type Emulator } from '../src/emulator/index.js';
import { measureBeyond, measureProxy, withEmulatorProcess } from './beyond.js';
import { simulateDay, type DayResult } from './day.js';
import { machine } from './lib.js';
import { agentLog, now, progress, provision, ROOT, startAgent, TOKEN_PATH, until200, workspace, type Setup } from './proc.js';
import { reportText, targetsOf, type BenchFigures, type RuntimeFigures } from './report.js';
import { chosenRuntimes, machineRuntime, packagedRuntime, unitRun, type Runtime } from './runtime.js';
import { BURSTS, measureColdBurst, measureMemory, measureServing, measureStarts, type BurstRow, type Settings } from './sections.js';

const MACHINE_CLI = join(ROOT, 'dist', 'cli', 'main.js');
const RESULTS = resolve(process.env.BENCH_RESULTS ?? join(ROOT, 'bench', 'results', 'latest.json'));
const SETTINGS: Settings & { outboxN: number } = {
  durationMs: Number(process.env.BENCH_DURATION_MS ?? 3_000),
  warmupMs: Number(process.env.BENCH_WARMUP_MS ?? 1_000),
  starts: Number(process.env.BENCH_STARTS ?? 10),
  settleMs: Number(process.env.BENCH_SETTLE_MS ?? 3_000),
  /** The generator's client: raw HTTP/1.1 on net sockets (default) or node:http with an http.Agent (see loadgen.ts). */
  client: process.env.BENCH_CLIENT === 'http' ? 'http' : 'raw',
  /** The servers take turns in slices this long. */
  sliceMs: 500,
  /** Entries queued with the API down, then delivered once it is up. */
  outboxN: Number(process.env.BENCH_OUTBOX_N ?? 2_000),
};
const DAY_SEEDS = [1, 2, 3, 4, 5];

/** The runtimes asked for, each ready to run (the package extracted, built first when needed). */
function runtimes(): Runtime[] {
  return chosenRuntimes(process.env.BENCH_RUNTIMES).map((name) =>
    name === 'packaged' ? packagedRuntime(ROOT, progress, process.env.BENCH_PACKAGE) : machineRuntime(resolve(process.env.BENCH_CLI ?? MACHINE_CLI)),
  );
}

function setupFor(rt: Runtime): Setup {
  const unit = unitRun(ROOT, process.env.BENCH_NODE_FLAGS);
  const cacheDirectory = unit.cacheDirectory !== undefined ? mkdtempSync(join(tmpdir(), `pta-bench-cache-${rt.name}-`)) : undefined;
  return { rt, unit, ...(cacheDirectory !== undefined ? { cacheDirectory } : {}) };
}

/** Every section on one runtime. */
async function measureRuntime(setup: Setup, emulator: Emulator): Promise<RuntimeFigures> {
  const started = now();
  const name = setup.rt.name;
  const ws = workspace(emulator.url, `warm-${name}`);
  try {
    // Warm state: provisioned without a login, then one start that logs in and stores the token.
    progress(`${name}: provisioning and a first login`);
    await provision(setup, ws);
    const first = startAgent(setup, ws);
    await until200(first, ws.socket, TOKEN_PATH).catch((err: unknown) => {
      throw new Error(`the agent never served a token: ${String(err)}\n${agentLog(ws)}`);
    });
    await first.stop();

    progress(`${name}: start to ready, ${SETTINGS.starts} runs of each kind`);
    const starts = await measureStarts(setup, ws, SETTINGS);
    progress(`${name}: memory, each process alone (${SETTINGS.settleMs / 1000} s to settle)`);
    const memory = await measureMemory(setup, ws, emulator.url, SETTINGS.settleMs);
    const issuedBefore = emulator.stats().issued;
    const serving = await measureServing(setup, ws, SETTINGS);
    const loginsWhileServing = emulator.stats().issued - issuedBefore;
    const bursts: BurstRow[] = [];
    for (const n of BURSTS) {
      progress(`${name}: cold burst of ${n}`);
      bursts.push(await measureColdBurst(setup, emulator, n));
    }
    const beyond = await measureBeyond(setup, MACHINE_CLI, SETTINGS, SETTINGS.outboxN);
    return {
      runtime: { name, node: setup.rt.node, version: setup.rt.version, cli: setup.rt.cli, source: setup.rt.source },
      nodeFlags: setup.unit.nodeFlags,
      flagsFrom: setup.unit.flagsFrom,
      env: setup.unit.env,
      ...(setup.cacheDirectory !== undefined ? { cacheDirectory: setup.cacheDirectory } : {}),
      starts,
      memory,
      serving,
      loginsWhileServing,
      bursts,
      beyond,
      seconds: (now() - started) / 1000,
    };
  } finally {
    rmSync(ws.dir, { recursive: true, force: true });
  }
}

/** BENCH_ONLY=proxy: only the proxy cells on each runtime, printed as JSON (for trying a change quickly). */
async function proxyOnly(setups: Setup[]): Promise<void> {
  const out: Record<string, unknown> = {};
  for (const setup of setups) out[setup.rt.name] = await withEmulatorProcess(MACHINE_CLI, (api) => measureProxy(setup, api, SETTINGS));
  console.log(JSON.stringify(out, null, 1));
}

function write(figures: BenchFigures, text: string): void {
  mkdirSync(dirname(RESULTS), { recursive: true });
  const targets = Object.fromEntries(figures.runtimes.map((r) => [r.runtime.name, targetsOf(r, figures.days)]));
  const settings = { ...figures.settings, tokenPath: TOKEN_PATH };
  writeFileSync(RESULTS, JSON.stringify({ at: new Date().toISOString(), ...figures, settings, targets, text }, null, 2) + '\n');
  progress(`written to ${RESULTS}`);
}

async function main(): Promise<void> {
  const started = now();
  const loadBefore = loadavg()[0]!;
  const setups = runtimes().map(setupFor);
  let emulator: Emulator | undefined;
  try {
    for (const s of setups) progress(`${s.rt.name} runtime: Node ${s.rt.version}, ${s.rt.node}; node flags: ${s.unit.nodeFlags.join(' ') || 'none'}`);
    if (process.env.BENCH_ONLY === 'proxy') return await proxyOnly(setups);
    emulator = createEmulator({ devices: [DEMO_DEVICE], rateLimitPerMinute: 0 });
    await emulator.start();
    const measured: RuntimeFigures[] = [];
    for (const setup of setups) measured.push(await measureRuntime(setup, emulator));
    progress('24 simulated hours');
    const days: Array<DayResult & { seed: number }> = [];
    for (const seed of DAY_SEEDS) days.push({ seed, ...(await simulateDay(seed)) });
    const figures: BenchFigures = {
      machine: machine(),
      settings: SETTINGS,
      loadBefore,
      loadAfter: loadavg()[0]!,
      runtimes: measured,
      days,
      seconds: (now() - started) / 1000,
    };
    const text = reportText(figures);
    process.stdout.write(text + '\n');
    write(figures, text);
  } finally {
    await emulator?.stop();
    for (const s of setups) {
      if (s.rt.tempDir !== undefined) rmSync(s.rt.tempDir, { recursive: true, force: true });
      if (s.cacheDirectory !== undefined) rmSync(s.cacheDirectory, { recursive: true, force: true });
    }
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
