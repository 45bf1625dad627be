/**
 * Beyond the token, on one runtime: the proxy (beside direct requests and a bare Node reverse proxy), the outbox's
 * durable enqueue (beside a bare SQLite loop) and its delivery. The emulator runs in its own process on the machine's
 * node (never the packaged one, whose pages the agent would then share).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCompare, type SampledFigures } from './cells.js';
import { fileSystemOf, sleepMs, type GcCounts, type Smaps } from './lib.js';
import type { CompareTarget } from './loadgen.js';
import {
  agentLog,
  ask,
  call,
  closedPort,
  JSON_HEADERS,
  now,
  outboxQueued,
  progress,
  provision,
  ROOT,
  startAgent,
  startBaseline,
  startEmulatorProcess,
  TOKEN_PATH,
  until200,
  workspace,
  writeConfig,
  type EmulatorProcess,
  type Running,
  type Setup,
} from './proc.js';
import type { Settings } from './sections.js';

/** The proxy's and the outbox's request: a path the emulator's generic API answers 202, and a small JSON body. */
export const API_PATH = '/api/bench';
export const API_BODY = JSON.stringify({
  header: { dateTimeIssued: '2025-01-01T10:00:00Z', receiptNumber: 'B-000001', currency: 'EGP' },
  items: [{ description: 'coffee', quantity: 1, unitPrice: 45.5, total: 45.5 }],
  total: 45.5,
});
const ENQUEUE_BODY = JSON.stringify({ account: 'default', path: API_PATH, body: JSON.parse(API_BODY) as unknown });
const PROXY_CELLS = [
  { name: '1 keep-alive conn', connections: 1 },
  { name: '8 keep-alive conns', connections: 8 },
] as const;
const OUTBOX_TILLS = [1, 16];
const BARE_PROXY = join(ROOT, 'bench', 'bare-proxy.mjs');

export interface ProxyRow {
  cell: string;
  connections: number;
  /** cpu: [agent, emulator, bare proxy] as shares of one core during that target's slices. */
  proxy: SampledFigures;
  direct: SampledFigures;
  /** A bare Node reverse proxy (bench/bare-proxy.mjs) to the same API: what any Node proxy costs here. */
  bareProxy: SampledFigures;
  otherCpu: number;
  /** Peaks over the cell: [agent, emulator, bare proxy]. */
  peaks: Array<Smaps | undefined>;
  /** Collections of the agent and of the bare proxy (both run with --trace-gc) during the cell. */
  agentGc: GcCounts | undefined;
  bareProxyGc: GcCounts | undefined;
}

export interface OutboxEnqueueRow {
  tills: number;
  /** cpu: [agent] */
  agent: SampledFigures;
  /** The bare SQLite loop (in the generator: its CPU is generatorCpu). */
  sqlite: SampledFigures;
  otherCpu: number;
  agentPeak: Smaps | undefined;
}

export interface DeliveryFigures {
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

export interface BeyondFigures {
  emulatorUrl: string;
  proxy: ProxyRow[];
  outboxDir: string;
  /** The file system the outbox and the baseline wrote to (type and device, from /proc/self/mounts). */
  outboxFs: string;
  outbox: OutboxEnqueueRow[];
  delivery: DeliveryFigures;
}

/** Waits until a POST through the bare proxy is answered 202. */
async function bareProxyReady(socketPath: string, path: string): Promise<void> {
  const deadline = now() + 10_000;
  while ((await call({ socketPath }, 'POST', path, JSON_HEADERS, API_BODY).catch(() => ({ status: 0 }))).status !== 202) {
    if (now() > deadline) throw new Error('the bare proxy never answered 202');
    await sleepMs(50);
  }
}

export async function measureProxy(setup: Setup, api: EmulatorProcess, settings: Settings): Promise<ProxyRow[]> {
  const ws = workspace(api.url, 'proxy', api.url);
  let agent: Running | undefined;
  let bareProxy: Running | undefined;
  try {
    await provision(setup, ws);
    agent = startAgent(setup, ws, { gcLog: join(ws.dir, 'agent-gc.log') });
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
    bareProxy = startBaseline(setup, BARE_PROXY, [bareSocket, api.url, token], join(ws.dir, 'bare-proxy-gc.log'));
    await bareProxyReady(bareSocket, proxyPath);
    const request = { method: 'POST', path: proxyPath, headers: JSON_HEADERS, body: API_BODY };
    const targets: CompareTarget[] = [
      { name: 'proxy', socketPath: ws.socket, request, expectStatus: 202 },
      {
        name: 'direct',
        tcp: { host: '127.0.0.1', port: api.port },
        request: { method: 'POST', path: API_PATH, headers: direct, body: API_BODY, host: `127.0.0.1:${api.port}` },
        expectStatus: 202,
      },
      { name: 'bare proxy', socketPath: bareSocket, request, expectStatus: 202 },
    ];
    const rows: ProxyRow[] = [];
    for (const cell of PROXY_CELLS) {
      progress(`proxy: ${cell.name}`);
      const spec = { targets, path: proxyPath, connections: cell.connections, keepAlive: true, client: settings.client, warmupMs: settings.warmupMs, durationMs: settings.durationMs, sliceMs: settings.sliceMs };
      const r = await runCompare(spec, [agent, { pid: api.pid }, bareProxy]);
      rows.push({
        cell: cell.name,
        connections: cell.connections,
        proxy: r.targets[0]!,
        direct: r.targets[1]!,
        bareProxy: r.targets[2]!,
        otherCpu: r.otherCpu,
        peaks: r.peaks,
        agentGc: r.gc[0],
        bareProxyGc: r.gc[2],
      });
    }
    return rows;
  } finally {
    await bareProxy?.stop();
    await agent?.stop();
    rmSync(ws.dir, { recursive: true, force: true });
  }
}

/** Enqueues at 1 and 16 tills against an agent whose API is down, beside the bare SQLite loop on the same disk. */
async function measureEnqueue(setup: Setup, api: EmulatorProcess, settings: Settings): Promise<{ rows: OutboxEnqueueRow[]; dir: string }> {
  const ws = workspace(api.url, 'outbox', `http://127.0.0.1:${await closedPort()}`);
  let agent: Running | undefined;
  try {
    await provision(setup, ws);
    agent = startAgent(setup, ws);
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
      const spec = { targets, path: '/v1/outbox', connections: tills, keepAlive: true, client: settings.client, warmupMs: settings.warmupMs, durationMs: settings.durationMs, sliceMs: settings.sliceMs };
      const r = await runCompare(spec, [agent]);
      rows.push({ tills, agent: r.targets[0]!, sqlite: r.targets[1]!, otherCpu: r.otherCpu, agentPeak: r.peaks[0] });
    }
    return { rows, dir: join(ws.dir, 'state') };
  } finally {
    await agent?.stop();
    rmSync(ws.dir, { recursive: true, force: true });
  }
}

/** Fills the outbox with n entries over 16 connections; the number not answered 202. */
async function fill(socketPath: string, n: number): Promise<number> {
  let next = 0;
  let failures = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < n) {
        next++;
        const r = await call({ socketPath }, 'POST', '/v1/outbox', JSON_HEADERS, ENQUEUE_BODY);
        if (r.status !== 202) failures++;
      }
    }),
  );
  return failures;
}

/** Polls /v1/status until nothing is queued (or 120 s); when, and how many were left. */
async function drained(socket: string, n: number): Promise<{ at: number; left: number }> {
  let left = n;
  const deadline = now() + 120_000;
  while (now() < deadline) {
    try {
      left = (await outboxQueued(socket)) ?? left;
      if (left === 0) return { at: now(), left };
    } catch {
      /* not listening yet */
    }
    await sleepMs(20);
  }
  return { at: NaN, left };
}

/** N entries queued while the API is down; the agent restarted with the API up; how fast they reach the emulator. */
async function measureDelivery(setup: Setup, api: EmulatorProcess, n: number): Promise<DeliveryFigures> {
  const ws = workspace(api.url, 'delivery', `http://127.0.0.1:${await closedPort()}`);
  let agent: Running | undefined;
  try {
    await provision(setup, ws);
    agent = startAgent(setup, ws);
    await until200(agent, ws.socket, '/v1/status');
    progress(`outbox: queueing ${n} entries with the API down`);
    const fillFailures = await fill(ws.socket, n);
    await agent.stop();
    agent = undefined;

    progress(`outbox: delivering ${n} entries with the API up`);
    writeConfig(ws, api.url, api.url);
    const emulatorAt = { port: api.port };
    await call(emulatorAt, 'DELETE', '/_emulator/api/submissions');
    agent = startAgent(setup, ws);
    const done = await drained(ws.socket, n);
    const records = (JSON.parse((await call(emulatorAt, 'GET', `/_emulator/api/submissions?limit=${n * 2}`)).text) as {
      submissions: Array<{ at: string; status: number; duplicate: boolean }>;
    }).submissions;
    const statuses: Record<string, number> = {};
    for (const r of records) statuses[r.status] = (statuses[r.status] ?? 0) + 1;
    const times = records.map((r) => Date.parse(r.at));
    const spanMs = times.length > 1 ? Math.max(...times) - Math.min(...times) : NaN;
    return {
      queued: n,
      fillFailures,
      received: records.length,
      statuses,
      duplicates: records.filter((r) => r.duplicate).length,
      spanMs,
      perSecond: (records.length - 1) / (spanMs / 1000),
      spawnToDrainedMs: done.at - agent.spawnedAt,
      leftQueued: done.left,
    };
  } finally {
    await agent?.stop();
    rmSync(ws.dir, { recursive: true, force: true });
  }
}

/** The emulator in its own process (on the machine's node and `machineCli`), and what runs against it. */
export async function withEmulatorProcess<T>(machineCli: string, use: (api: EmulatorProcess) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'pta-bench-api-'));
  let api: EmulatorProcess | undefined;
  try {
    api = await startEmulatorProcess(machineCli, join(dir, 'emulator.log'));
    return await use(api);
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

export async function measureBeyond(setup: Setup, machineCli: string, settings: Settings, outboxN: number): Promise<BeyondFigures> {
  progress('proxy: starting the emulator in its own process');
  return withEmulatorProcess(machineCli, async (api) => {
    const proxy = await measureProxy(setup, api, settings);
    const enqueue = await measureEnqueue(setup, api, settings);
    const delivery = await measureDelivery(setup, api, outboxN);
    return { emulatorUrl: api.url, proxy, outboxDir: enqueue.dir, outboxFs: fileSystemOf(enqueue.dir), outbox: enqueue.rows, delivery };
  });
}
