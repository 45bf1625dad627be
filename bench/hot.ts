/**
 * The hot paths, build against build and runtime against runtime: several agents (each a node binary and a
 * compiled CLI: a packaged runtime, another build's dist/) beside the bare baseline on the same runtime, loaded in
 * alternating slices by one generator process (bench/loadgen.ts `compare`), each agent run with
 * `--trace-gc-nvp` (--trace-gc's collections, with the bytes allocated between them) so that its collections and the bytes it allocated are counted while it is measured.
 *
 *   HOT_MODE=token  GET /v1/token?account=default&min_ttl=60 (the bare target: bench/bare-server.mjs, same bytes)
 *   HOT_MODE=proxy  POST /v1/proxy/default/api/bench (bare-proxy.mjs, and the emulator straight on TCP: `direct`)
 *
 * Usage: node --import tsx bench/hot.ts 'NAME=NODE[ FLAG...]:CLI' ['NAME=NODE[ FLAG...]:CLI' ...]
 *   e.g. 'before=/opt/n24/bin/node:/tmp/before/dist/cli/main.js' 'after=/opt/n24/bin/node:dist/cli/main.js'
 * The bare targets run on the first agent's node. Environment: HOT_MODE (token), HOT_CONNS (8), HOT_DURATION_MS
 * (4000 per target), HOT_WARMUP_MS (2000), HOT_NODE_FLAGS (more flags for the agents, e.g.
 * --max-semi-space-size=2), HOT_BARE_FLAGS (for the bare targets, e.g. --cpu-prof).
 * Prints one JSON object: per target its figures; per agent its collections and kB allocated per 10,000 requests.
 * Wrap it in `flock /tmp/bench.lock` when others share the machine.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { DEMO_DEVICE } from '../src/emulator/index.js';
import { cpuMs, sleepMs as sleep } from './lib.js';
import { call, CHILD_ENV, JSON_HEADERS, ROOT, TOKEN_PATH } from './proc.js';
import type { CompareResult, CompareSpec, CompareTarget, TargetFigures } from './loadgen.js';

const MODE = process.env.HOT_MODE === 'proxy' ? 'proxy' : 'token';
const CONNS = Number(process.env.HOT_CONNS ?? 8);
const DURATION_MS = Number(process.env.HOT_DURATION_MS ?? 4_000);
const WARMUP_MS = Number(process.env.HOT_WARMUP_MS ?? 2_000);
const EXTRA_FLAGS = (process.env.HOT_NODE_FLAGS ?? '').split(' ').filter(Boolean);
const BARE_FLAGS = (process.env.HOT_BARE_FLAGS ?? '').split(' ').filter(Boolean);
const API_PATH = '/api/bench';
const PROXY_PATH = `/v1/proxy/default${API_PATH}`;
const API_BODY = JSON.stringify({
  header: { dateTimeIssued: '2025-01-01T10:00:00Z', receiptNumber: 'B-000001', currency: 'EGP' },
  items: [{ description: 'coffee', quantity: 1, unitPrice: 45.5, total: 45.5 }],
  total: 45.5,
});

interface Variant {
  name: string;
  node: string;
  /** Node flags of this agent alone (before HOT_NODE_FLAGS). */
  flags: string[];
  cli: string;
}

/** What an agent's --trace-gc and --trace-gc-nvp lines have said so far. */
interface GcCount {
  scavenges: number;
  markCompacts: number;
  allocated: number;
  /** The collections' pauses, ms. */
  pauseMs: number;
  /** CPU time of the process (its /proc stat), ms: set at each snapshot. */
  cpuMs: number;
}

interface Agent {
  variant: Variant;
  socket: string;
  child: ChildProcess;
  gc: GcCount;
}

function parseVariants(args: string[]): Variant[] {
  if (args.length === 0) throw new Error("usage: bench/hot.ts 'NAME=NODE:CLI' ...");
  return args.map((a) => {
    const m = /^([^=]+)=([^:]+):(.+)$/.exec(a);
    if (!m) throw new Error(`not NAME=NODE:CLI: ${a}`);
    const [node, ...flags] = m[2]!.split(' ').filter(Boolean);
    return { name: m[1]!, node: node!, flags, cli: resolve(m[3]!) };
  });
}

function run(node: string, args: string[], stdio: 'pipe' | 'ignore' | number = 'ignore'): ChildProcess {
  return spawn(node, args, { env: CHILD_ENV, stdio: ['pipe', stdio, stdio === 'pipe' ? 'ignore' : stdio], cwd: ROOT });
}

function exited(child: ChildProcess): Promise<number | null> {
  return new Promise((r) => (child.exitCode !== null ? r(child.exitCode) : child.once('exit', (code) => r(code))));
}

async function stop(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const t = setTimeout(() => child.kill('SIGKILL'), 5_000);
  await exited(child);
  clearTimeout(t);
}

async function until(what: string, ask: () => Promise<{ status: number }>, status: number): Promise<void> {
  const deadline = Date.now() + 20_000;
  while ((await ask().catch(() => ({ status: 0 }))).status !== status) {
    if (Date.now() > deadline) throw new Error(`${what} never answered ${status}`);
    await sleep(20);
  }
}

/** The emulator in its own process on the machine's node; its URL. */
async function startEmulator(): Promise<{ child: ChildProcess; url: string; port: number }> {
  const child = run(process.execPath, [join(ROOT, 'dist', 'cli', 'main.js'), 'emulator', '--port', '0'], 'pipe');
  const url = await new Promise<string>((ok, fail) => {
    const t = setTimeout(() => fail(new Error('the emulator did not listen within 15 s')), 15_000);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const m = /listening on (http:\/\/[^\s]+)/.exec(line);
      if (m) ok(m[1]!);
      if (m) clearTimeout(t);
    });
  });
  return { child, url, port: Number(new URL(url).port) };
}

async function provision(v: Variant, configPath: string): Promise<void> {
  const child = run(v.node, [v.cli, 'provision', '--config', configPath, '--account', 'default', '--stdin', '--no-verify']);
  child.stdin!.end(JSON.stringify({ clientId: DEMO_DEVICE.clientId, clientSecret: DEMO_DEVICE.clientSecrets[0]!, presharedKey: DEMO_DEVICE.presharedKey! }));
  const code = await exited(child);
  if (code !== 0) throw new Error(`${v.name}: provision exited ${code}`);
}

/** Counts the agent's GC trace lines as they come. */
function countGc(child: ChildProcess): GcCount {
  const gc: GcCount = { scavenges: 0, markCompacts: 0, allocated: 0, pauseMs: 0, cpuMs: 0 };
  createInterface({ input: child.stdout! }).on('line', (line) => {
    // --trace-gc-nvp's line per collection (it replaces --trace-gc's): gc=s a scavenge, gc=mc a mark-compact.
    const kind = / gc=(\w+)/.exec(line)?.[1];
    if (kind === 's') gc.scavenges++;
    else if (kind !== undefined) gc.markCompacts++;
    const a = / allocated=(\d+)/.exec(line);
    if (a) gc.allocated += Number(a[1]);
    const p = / pause=([\d.]+)/.exec(line);
    if (p) gc.pauseMs += Number(p[1]);
  });
  return gc;
}

async function startAgent(v: Variant, dir: string, apiUrl: string): Promise<Agent> {
  const home = join(dir, v.name);
  const socket = join(home, 'agent.sock');
  const configPath = join(dir, `${v.name}.json`);
  const account = { authority: 'eta-ereceipt', identityUrl: apiUrl, apiUrl, identity: { posserial: DEMO_DEVICE.posserial, pososversion: 'os', posmodelframework: '1' } };
  writeFileSync(configPath, JSON.stringify({ socket, stateDir: join(home, 'state'), logLevel: 'info', accounts: { default: account } }));
  await provision(v, configPath);
  const child = run(v.node, ['--trace-gc-nvp', ...v.flags, ...EXTRA_FLAGS, v.cli, 'run', '--config', configPath], 'pipe');
  const gc = countGc(child);
  await until(v.name, () => call({ socketPath: socket }, 'GET', TOKEN_PATH, { 'x-pos-agent': '1' }), 200);
  return { variant: v, socket, child, gc };
}

function agentTarget(name: string, socketPath: string): CompareTarget {
  return MODE === 'token'
    ? { name, socketPath }
    : { name, socketPath, request: { method: 'POST', path: PROXY_PATH, headers: JSON_HEADERS, body: API_BODY }, expectStatus: 202 };
}

/** A bare baseline process (bench/*.mjs), its GC counted like an agent's. */
async function startCounted(name: string, node: string, args: string[], ready: () => Promise<{ status: number }>, status: number): Promise<Agent> {
  const child = run(node, ['--trace-gc-nvp', ...BARE_FLAGS, ...args], 'pipe');
  const gc = countGc(child);
  await until(name, ready, status);
  return { variant: { name, node, flags: BARE_FLAGS, cli: args[0]! }, socket: args[1]!, child, gc };
}

/**
 * The bare targets on the first agent's node: the bare server (token), or the bare proxy and the API direct.
 * HOT_BARE2 (token): another script taking the bare server's arguments, measured beside it as `bare2`.
 */
async function startBare(node: string, dir: string, first: Agent, api: { url: string; port: number }): Promise<{ counted: Agent[]; targets: CompareTarget[] }> {
  const socketPath = join(dir, 'bare.sock');
  const token = await call({ socketPath: first.socket }, 'GET', TOKEN_PATH, { 'x-pos-agent': '1' });
  if (MODE === 'token') {
    const scripts = [['bare', join(ROOT, 'bench', 'bare-server.mjs')], ...(process.env.HOT_BARE2 ? [['bare2', resolve(process.env.HOT_BARE2)]] : [])];
    const counted: Agent[] = [];
    for (const [name, script] of scripts) {
      const socket = join(dir, `${name}.sock`);
      counted.push(await startCounted(name!, node, [script!, socket, token.text], () => call({ socketPath: socket }, 'GET', TOKEN_PATH, {}), 200));
    }
    return { counted, targets: counted.map((c) => ({ name: c.variant.name, socketPath: c.socket })) };
  }
  const bearer = (JSON.parse(token.text) as { access_token: string }).access_token;
  const ready = () => call({ socketPath }, 'POST', PROXY_PATH, JSON_HEADERS, API_BODY);
  const bare = await startCounted('bare', node, [join(ROOT, 'bench', 'bare-proxy.mjs'), socketPath, api.url, bearer], ready, 202);
  const headers = { 'content-type': 'application/json', authorization: `Bearer ${bearer}` };
  const direct: CompareTarget = {
    name: 'direct',
    tcp: { host: '127.0.0.1', port: api.port },
    request: { method: 'POST', path: API_PATH, headers, body: API_BODY, host: `127.0.0.1:${api.port}` },
    expectStatus: 202,
  };
  return { counted: [bare], targets: [agentTarget('bare', socketPath), direct] };
}

/**
 * HOT_ATTACH: a command run against each measured process while it is measured, stopped with SIGINT at the end;
 * `{pid}` and `{name}` are replaced, e.g. 'perf record -F 999 -g -p {pid} -o /tmp/{name}.data' (agents run with
 * --perf-basic-prof) or 'strace -c -f -p {pid} -o /tmp/{name}.strace'.
 */
const ATTACH = process.env.HOT_ATTACH;
function attach(a: Agent): ChildProcess {
  const [cmd, ...args] = ATTACH!.replaceAll('{pid}', String(a.child.pid)).replaceAll('{name}', a.variant.name).split(' ');
  return spawn(cmd!, args, { stdio: 'ignore' });
}

/** Runs the generator; snapshots every agent's GC counts when it starts measuring and once it is done. */
async function measure(targets: CompareTarget[], agents: Agent[]): Promise<{ result: CompareResult; gc: GcCount[] }> {
  const spec: CompareSpec = { kind: 'compare', targets, path: TOKEN_PATH, connections: CONNS, keepAlive: true, client: 'raw', warmupMs: WARMUP_MS, durationMs: DURATION_MS, sliceMs: 500 };
  const child = spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'bench', 'loadgen.ts'), JSON.stringify(spec)], { env: CHILD_ENV, stdio: ['ignore', 'pipe', 'inherit'], cwd: ROOT });
  let at0: GcCount[] = [];
  let attached: ChildProcess[] = [];
  let result: CompareResult | undefined;
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const msg = JSON.parse(line) as { event: string };
    if (msg.event === 'measuring') at0 = agents.map((a) => ({ ...a.gc, cpuMs: cpuMs(a.child.pid!) ?? NaN }));
    if (msg.event === 'measuring' && ATTACH) attached = agents.map(attach);
    if (msg.event === 'result') result = msg as CompareResult;
  });
  await exited(child);
  for (const p of attached) p.kill('SIGINT');
  await Promise.all(attached.map(exited));
  await sleep(300); // the last trace lines through the pipes (the CPU read after it: idle processes, a tick's error)
  if (!result) throw new Error('the generator gave no result');
  const gc = agents.map((a, i) => ({
    scavenges: a.gc.scavenges - at0[i]!.scavenges,
    markCompacts: a.gc.markCompacts - at0[i]!.markCompacts,
    allocated: a.gc.allocated - at0[i]!.allocated,
    pauseMs: a.gc.pauseMs - at0[i]!.pauseMs,
    cpuMs: (cpuMs(a.child.pid!) ?? NaN) - at0[i]!.cpuMs,
  }));
  return { result, gc };
}

function report(result: CompareResult, gc: GcCount[], agents: Agent[]): object {
  const bare = result.targets.find((t) => t.name === 'bare')!;
  const direct = result.targets.find((t) => t.name === 'direct');
  const row = (t: TargetFigures) => {
    const i = agents.findIndex((a) => a.variant.name === t.name);
    const per10k = (n: number) => Math.round((n / t.requests) * 10_000 * 10) / 10;
    return {
      name: t.name,
      requests: t.requests,
      errors: t.errors + t.non200,
      rps: Math.round(t.throughput),
      vsBare: Math.round((t.throughput / bare.throughput) * 1000) / 1000,
      p50Ms: Math.round(t.p50Ms * 1000) / 1000,
      p99Ms: Math.round(t.p99Ms * 1000) / 1000,
      ...(direct ? { addedP50Ms: Math.round((t.p50Ms - direct.p50Ms) * 1000) / 1000, addedP99Ms: Math.round((t.p99Ms - direct.p99Ms) * 1000) / 1000 } : {}),
      ...(i >= 0
        ? { scavengesPer10k: per10k(gc[i]!.scavenges), markCompactsPer10k: per10k(gc[i]!.markCompacts), gcMsPer10k: per10k(gc[i]!.pauseMs), allocatedKBPerReq: Math.round(gc[i]!.allocated / t.requests / 102.4) / 10, cpuUsPerReq: Math.round((gc[i]!.cpuMs / t.requests) * 10_000) / 10 }
        : {}),
    };
  };
  return { mode: MODE, connections: CONNS, durationMs: DURATION_MS, targets: result.targets.map(row) };
}

async function main(): Promise<void> {
  const variants = parseVariants(process.argv.slice(2));
  const dir = mkdtempSync(join(tmpdir(), 'pta-hot-'));
  const emulator = await startEmulator();
  const agents: Agent[] = [];
  let bare: ChildProcess[] = [];
  try {
    for (const v of variants) agents.push(await startAgent(v, dir, emulator.url));
    const b = await startBare(variants[0]!.node, dir, agents[0]!, emulator);
    bare = b.counted.map((c) => c.child);
    const targets = [...agents.map((a) => agentTarget(a.variant.name, a.socket)), ...b.targets];
    const counted = [...agents, ...b.counted];
    const { result, gc } = await measure(targets, counted);
    console.log(JSON.stringify(report(result, gc, counted), null, 1));
  } finally {
    for (const c of [...bare, ...agents.map((a) => a.child), emulator.child]) await stop(c);
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
