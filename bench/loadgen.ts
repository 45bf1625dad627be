/**
 * The load generator: its own process, so it never shares an event loop with a server it measures.
 * Started by bench/run.ts with one JSON argument; writes JSON lines on stdout:
 *   {"event":"waiting"}              (burst with waitForSocket) started, polling the socket
 *   {"event":"measuring"}            warm-up over, the measured window starts (the parent samples the servers)
 *   {"event":"result", ...}          the figures
 *
 * `compare`: a closed loop over `connections` connections; each sends its next request when the previous answer
 * has arrived. The targets (the agent and the bare server) take turns in slices of `sliceMs` until each has had
 * `durationMs`, so that whatever else the machine does at the time weighs on both alike. Keep-alive connections
 * are kept across a target's slices; otherwise every request opens a new connection (`Connection: close`).
 * Client `raw` (default) speaks HTTP/1.1 on a net.Socket; `http` uses node:http with one
 * http.Agent({keepAlive, maxSockets: connections}) per target (agent: false without keep-alive). Latency is taken
 * per request with process.hrtime.bigint() from before the request is made to the end of its answer.
 *
 * A target is an HTTP server on a Unix socket (the default) or on TCP (`tcp`, the proxy's direct baseline), sent
 * the spec's `GET path` or its own `request` (method, headers, body: the proxy and the outbox), a good answer being
 * `expectStatus` (200). A `sqlite` target is no server: the generator itself runs a bare better-sqlite3 insert
 * loop (WAL, synchronous=FULL, one IMMEDIATE transaction per insert, the outbox's own table) for its slices, the
 * baseline of the outbox's durable enqueue; `connections` does not apply to it (one loop).
 * With `samplePids`, the generator reads those processes' CPU time at the start and end of every measured slice,
 * so that a process serving both targets (the emulator behind the proxy and the direct baseline) is shared fairly.
 *
 * `burst`: `n` requests at once, each on its own new connection; reports every status and the latencies.
 * With `waitForSocket` it first waits for the socket to answer, so it can be started before the agent.
 */
import { Agent, request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { cpuMs } from './lib.js';

/** One request as sent; `host` is the Host header (default `localhost`, as Node's client sends over a socket). */
export interface RequestSpec {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string;
  host?: string;
}

export interface CompareTarget {
  name: string;
  /** `http` (default): a server; `sqlite`: the generator's own bare SQLite insert loop (see above). */
  kind?: 'http' | 'sqlite';
  /** http: the server's Unix socket, or */
  socketPath?: string;
  /** http: its TCP address. */
  tcp?: { host: string; port: number };
  /** http: what to send; default the spec's `GET path` with X-Pos-Agent. */
  request?: RequestSpec;
  /** http: the status of a good answer (default 200); any other counts in `non200`. */
  expectStatus?: number;
  /** sqlite: the database file to create, and the body stored in each row. */
  sqlite?: { dbPath: string; body: string };
}

export interface CompareSpec {
  kind: 'compare';
  targets: CompareTarget[];
  path: string;
  connections: number;
  keepAlive: boolean;
  /**
   * `raw`: each connection is a net.Socket writing the bytes Node's http client would send and reading the
   * answer by its Content-Length: about a quarter of http.Agent's CPU per request, so that on a small machine the
   * server, not the generator, is what saturates. `http`: node:http with an http.Agent.
   */
  client: 'raw' | 'http';
  /** Per target, taken in slices like the measurement. */
  warmupMs: number;
  /** Measured time per target. */
  durationMs: number;
  sliceMs: number;
  /** Processes whose CPU time is read around each measured slice (reported per target as `sampledCpuMs`). */
  samplePids?: number[];
}

export interface BurstSpec {
  kind: 'burst';
  socketPath: string;
  path: string;
  n: number;
  timeoutMs: number;
  /** Announce {"event":"waiting"}, then poll GET /v1/status (which never logs in) until it answers 200, then fire. */
  waitForSocket?: boolean;
}

export interface TargetFigures {
  name: string;
  requests: number;
  errors: number;
  /** Answers with another status than the target's expected one (200 unless set). */
  non200: number;
  /** Time this target was under load (the sum of its slices), in ms. */
  activeMs: number;
  throughput: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
  /** CPU the generator used while loading this target, as a share of one core (1 = a whole core). */
  generatorCpu: number;
  /** CPU time (ms) each of the spec's samplePids used during this target's measured slices. */
  sampledCpuMs?: number[];
  firstError?: string;
}

export interface CompareResult {
  event: 'result';
  targets: TargetFigures[];
}

export interface BurstResult {
  event: 'result';
  statuses: Record<string, number>;
  errors: number;
  firstError?: string;
  p50Ms: number;
  maxMs: number;
}

const HEADERS = { 'x-pos-agent': '1' };

class Latencies {
  #values = new Float64Array(1 << 16);
  #n = 0;
  add(ms: number): void {
    if (this.#n === this.#values.length) {
      const bigger = new Float64Array(this.#values.length * 2);
      bigger.set(this.#values);
      this.#values = bigger;
    }
    this.#values[this.#n++] = ms;
  }
  get count(): number {
    return this.#n;
  }
  sorted(): Float64Array {
    return this.#values.slice(0, this.#n).sort();
  }
}

function pct(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

const emit = (o: object): void => void process.stdout.write(JSON.stringify(o) + '\n');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Where a connection goes: a Unix socket or a TCP address. */
type Address = { path: string } | { host: string; port: number };

function addressOf(target: CompareTarget): Address {
  if (target.tcp) return { host: target.tcp.host, port: target.tcp.port };
  if (target.socketPath === undefined) throw new Error(`target ${target.name}: neither socketPath nor tcp`);
  return { path: target.socketPath };
}

/** One request; resolves with its status (or rejects) once the whole answer has been read. */
function once(socketPath: string, path: string, agent: Agent | false, timeoutMs?: number): Promise<number> {
  return onceTo({ path: socketPath }, { method: 'GET', path, headers: HEADERS }, agent, timeoutMs);
}

function onceTo(address: Address, spec: RequestSpec, agent: Agent | false, timeoutMs?: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const where = 'path' in address ? { socketPath: address.path } : { host: address.host, port: address.port };
    const headers: Record<string, string | number> = { ...spec.headers };
    if (spec.body !== undefined) headers['content-length'] = Buffer.byteLength(spec.body);
    const req = request({ ...where, method: spec.method, path: spec.path, headers, agent }, (res) => {
      res.on('data', () => {});
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', reject);
    });
    if (timeoutMs !== undefined) req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer in ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(spec.body);
  });
}

/**
 * One HTTP/1.1 connection without node:http: the same request bytes as Node's client sends
 * (`Host: localhost`, `Connection: keep-alive` or `close`), answers read by Content-Length. Enough for the
 * servers measured here (all answer with Content-Length); anything else is an error.
 */
class RawConnection {
  #socket: Socket | undefined;
  #buffer: Buffer | undefined;
  #waiting: { resolve: (status: number) => void; reject: (err: Error) => void } | undefined;
  #need = -1;
  #status = 0;

  constructor(
    readonly address: Address,
    readonly request: Buffer,
    readonly keepAlive: boolean,
  ) {}

  send(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.#waiting = { resolve, reject };
      this.#need = -1;
      this.#buffer = undefined;
      const socket = this.#socket ?? this.#open();
      socket.write(this.request);
    });
  }

  close(): void {
    this.#socket?.destroy();
    this.#socket = undefined;
  }

  #open(): Socket {
    const socket = connect(this.address);
    if (!('path' in this.address)) socket.setNoDelay(true); // as node:http does
    // A closed connection's late events must not touch the next one.
    socket.on('data', (chunk: Buffer) => this.#socket === socket && this.#data(chunk));
    socket.on('error', (err) => this.#socket === socket && this.#fail(err));
    socket.on('close', () => this.#socket === socket && this.#fail(new Error('connection closed before the answer was complete')));
    this.#socket = socket;
    return socket;
  }

  #fail(err: Error): void {
    const w = this.#waiting;
    this.#waiting = undefined;
    this.close();
    w?.reject(err);
  }

  #data(chunk: Buffer): void {
    const buf = this.#buffer ? Buffer.concat([this.#buffer, chunk]) : chunk;
    if (this.#need < 0) {
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) {
        this.#buffer = buf;
        return;
      }
      const head = buf.toString('latin1', 0, end);
      const length = /\r\ncontent-length: *(\d+)/i.exec(head);
      if (!length) return this.#fail(new Error('an answer without Content-Length'));
      this.#status = Number(head.slice(9, 12));
      this.#need = end + 4 + Number(length[1]);
    }
    if (buf.length < this.#need) {
      this.#buffer = buf;
      return;
    }
    if (buf.length > this.#need) return this.#fail(new Error('more bytes than one answer (nothing was pipelined)'));
    this.#buffer = undefined;
    const w = this.#waiting;
    this.#waiting = undefined;
    if (!this.keepAlive) this.close();
    w?.resolve(this.#status);
  }
}

/** The bytes Node's client writes for `spec`: its headers (and Content-Length), Host, Connection, the body. */
function rawRequest(spec: RequestSpec, keepAlive: boolean): Buffer {
  const body = spec.body === undefined ? undefined : Buffer.from(spec.body, 'utf8');
  const all: Record<string, string | number> = { ...spec.headers, ...(body ? { 'content-length': body.length } : {}) };
  const headers = Object.entries(all).map(([k, v]) => `${k}: ${v}\r\n`).join('');
  const head = Buffer.from(
    `${spec.method} ${spec.path} HTTP/1.1\r\n${headers}Host: ${spec.host ?? 'localhost'}\r\nConnection: ${keepAlive ? 'keep-alive' : 'close'}\r\n\r\n`,
    'latin1',
  );
  return body ? Buffer.concat([head, body]) : head;
}

/** The baseline of the outbox's enqueue: one row per IMMEDIATE transaction, WAL, synchronous=FULL. */
interface SqliteLoop {
  insert(): void;
  close(): void;
}

async function openSqliteLoop(dbPath: string, body: string): Promise<SqliteLoop> {
  const { default: Database } = await import('better-sqlite3');
  const { OUTBOX_MIGRATIONS } = await import('../src/store/outbox-migrations.js');
  const { randomUUID } = await import('node:crypto');
  const db = new Database(dbPath);
  if (String(db.pragma('journal_mode = WAL', { simple: true })).toLowerCase() !== 'wal') throw new Error('WAL refused');
  db.pragma('synchronous = FULL');
  if (db.pragma('synchronous', { simple: true }) !== 2) throw new Error('synchronous=FULL refused');
  // One database for every cell of a run: the baseline's table grows as the agent's does.
  if (!db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'entries'").get()) OUTBOX_MIGRATIONS[0]!(db);
  // The entry and its body, as the outbox stores one (two rows, one transaction).
  const insert = db.prepare(
    `INSERT INTO entries (id, account, key, method, path, bytes, state, attempts, created_at, updated_at)
     VALUES (?, ?, NULL, 'POST', ?, ?, 'queued', 0, ?, ?)`,
  );
  const insertBody = db.prepare("INSERT INTO bodies (seq, headers, body) VALUES (?, '{}', ?)");
  const path = '/api/bench';
  const bytes = Buffer.byteLength(body) + path.length + 2;
  const tx = db.transaction(() => {
    const now = Date.now();
    const seq = insert.run(randomUUID(), 'default', path, bytes, now, now).lastInsertRowid;
    insertBody.run(seq, body);
  }).immediate;
  return { insert: () => void tx(), close: () => db.close() };
}

interface TargetState {
  target: CompareTarget;
  address?: Address;
  request: RequestSpec;
  expect: number;
  agent: Agent | false;
  /** raw client: one connection per closed loop, kept across slices when keep-alive. */
  raw: RawConnection[];
  sqlite?: SqliteLoop;
  pidCpuMs: number[];
  lat: Latencies;
  errors: number;
  non200: number;
  activeNs: bigint;
  cpuUs: number;
  firstError?: string;
}

/** CPU ms of each pid now (0 for one that is gone). */
const pidCpu = (pids: number[]): number[] => pids.map((p) => cpuMs(p) ?? 0);

/** The sqlite target's slice: the insert loop, synchronous, for `ms`. */
function sqliteSlice(s: TargetState, ms: number, record: boolean): void {
  const end = process.hrtime.bigint() + BigInt(Math.round(ms * 1e6));
  for (let t0 = process.hrtime.bigint(); t0 < end; t0 = process.hrtime.bigint()) {
    try {
      s.sqlite!.insert();
      if (record) s.lat.add(Number(process.hrtime.bigint() - t0) / 1e6);
    } catch (err) {
      if (record) s.errors++;
      s.firstError ??= String(err);
    }
  }
}

/** Runs `connections` closed loops against one target for `ms`; returns once every answer in flight is in. */
async function slice(s: TargetState, spec: CompareSpec, ms: number, record: boolean): Promise<void> {
  const pids = record ? (spec.samplePids ?? []) : [];
  const pid0 = pidCpu(pids);
  if (s.sqlite) {
    const cpu0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    sqliteSlice(s, ms, record);
    if (record) {
      s.activeNs += process.hrtime.bigint() - t0;
      const cpu = process.cpuUsage(cpu0);
      s.cpuUs += cpu.user + cpu.system;
      pidCpu(pids).forEach((v, i) => (s.pidCpuMs[i]! += v - pid0[i]!));
    }
    return;
  }
  let stopped = false;
  const worker = async (i: number): Promise<void> => {
    while (!stopped) {
      const t0 = process.hrtime.bigint();
      try {
        const status = spec.client === 'raw' ? await s.raw[i]!.send() : await onceTo(s.address!, s.request, s.agent);
        if (!record) continue;
        s.lat.add(Number(process.hrtime.bigint() - t0) / 1e6);
        if (status !== s.expect) s.non200++;
      } catch (err) {
        if (record) s.errors++;
        s.firstError ??= String(err);
        await sleep(10); // do not spin on a dead socket
      }
    }
  };
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const workers = Array.from({ length: spec.connections }, (_, i) => worker(i));
  await sleep(ms);
  stopped = true;
  await Promise.all(workers);
  if (record) {
    s.activeNs += process.hrtime.bigint() - t0;
    const cpu = process.cpuUsage(cpu0);
    s.cpuUs += cpu.user + cpu.system;
    pidCpu(pids).forEach((v, i) => (s.pidCpuMs[i]! += v - pid0[i]!));
  }
}

async function compare(spec: CompareSpec): Promise<CompareResult> {
  const states: TargetState[] = [];
  for (const target of spec.targets) {
    const isSqlite = target.kind === 'sqlite';
    const address = isSqlite ? undefined : addressOf(target);
    const req = target.request ?? { method: 'GET', path: spec.path, headers: HEADERS };
    states.push({
      target,
      ...(address ? { address } : {}),
      request: req,
      expect: target.expectStatus ?? 200,
      agent:
        !isSqlite && spec.client === 'http' && spec.keepAlive
          ? new Agent({ keepAlive: true, maxSockets: spec.connections, maxFreeSockets: spec.connections })
          : false,
      raw:
        !isSqlite && spec.client === 'raw'
          ? Array.from({ length: spec.connections }, () => new RawConnection(address!, rawRequest(req, spec.keepAlive), spec.keepAlive))
          : [],
      ...(isSqlite ? { sqlite: await openSqliteLoop(target.sqlite!.dbPath, target.sqlite!.body) } : {}),
      pidCpuMs: (spec.samplePids ?? []).map(() => 0),
      lat: new Latencies(),
      errors: 0,
      non200: 0,
      activeNs: 0n,
      cpuUs: 0,
    });
  }
  const rounds = (total: number): number => Math.max(1, Math.round(total / spec.sliceMs));
  // Alternate which target goes first in each round (ABBA...), so neither always follows the other.
  const order = (round: number): TargetState[] => (round % 2 === 0 ? states : [...states].reverse());
  const warmRounds = rounds(spec.warmupMs);
  for (let r = 0; r < warmRounds; r++) for (const s of order(r)) await slice(s, spec, spec.warmupMs / warmRounds, false);
  emit({ event: 'measuring' });
  const measureRounds = rounds(spec.durationMs);
  for (let r = 0; r < measureRounds; r++) for (const s of order(r)) await slice(s, spec, spec.durationMs / measureRounds, true);
  for (const s of states) {
    if (s.agent) s.agent.destroy();
    for (const c of s.raw) c.close();
    s.sqlite?.close();
  }
  return {
    event: 'result',
    targets: states.map((s) => {
      const sorted = s.lat.sorted();
      const activeMs = Number(s.activeNs) / 1e6;
      return {
        name: s.target.name,
        requests: s.lat.count,
        errors: s.errors,
        non200: s.non200,
        activeMs,
        throughput: s.lat.count / (activeMs / 1000),
        p50Ms: pct(sorted, 50),
        p90Ms: pct(sorted, 90),
        p99Ms: pct(sorted, 99),
        p999Ms: pct(sorted, 99.9),
        maxMs: sorted.length ? sorted[sorted.length - 1]! : NaN,
        generatorCpu: s.cpuUs / 1e3 / activeMs,
        ...(spec.samplePids ? { sampledCpuMs: s.pidCpuMs } : {}),
        ...(s.firstError !== undefined ? { firstError: s.firstError } : {}),
      };
    }),
  };
}

async function burst(spec: BurstSpec): Promise<BurstResult> {
  const statuses: Record<string, number> = {};
  let errors = 0;
  let firstError: string | undefined;
  const lat: number[] = [];
  if (spec.waitForSocket) {
    emit({ event: 'waiting' });
    const deadline = Date.now() + spec.timeoutMs;
    for (;;) {
      const status = await once(spec.socketPath, '/v1/status', false, 1_000).catch(() => 0);
      if (status === 200) break;
      if (Date.now() > deadline) throw new Error('the socket never answered /v1/status');
      await sleep(1);
    }
  }
  // All N are made in one tick: N connections, N requests, before any answer can arrive.
  await Promise.all(
    Array.from({ length: spec.n }, async () => {
      const t0 = process.hrtime.bigint();
      try {
        const status = await once(spec.socketPath, spec.path, false, spec.timeoutMs);
        statuses[status] = (statuses[status] ?? 0) + 1;
      } catch (err) {
        errors++;
        firstError ??= String(err);
      }
      lat.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }),
  );
  const sorted = Float64Array.from(lat).sort();
  return {
    event: 'result',
    statuses,
    errors,
    ...(firstError !== undefined ? { firstError } : {}),
    p50Ms: pct(sorted, 50),
    maxMs: pct(sorted, 100),
  };
}

const spec = JSON.parse(process.argv[2] ?? '{}') as CompareSpec | BurstSpec;
const result = spec.kind === 'burst' ? await burst(spec) : await compare(spec);
emit(result);
