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
 * `burst`: `n` requests at once, each on its own new connection; reports every status and the latencies.
 * With `waitForSocket` it first waits for the socket to answer, so it can be started before the agent.
 */
import { Agent, request } from 'node:http';
import { connect, type Socket } from 'node:net';

export interface CompareTarget {
  name: string;
  socketPath: string;
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

/** One request; resolves with its status (or rejects) once the whole answer has been read. */
function once(socketPath: string, path: string, agent: Agent | false, timeoutMs?: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, headers: HEADERS, agent }, (res) => {
      res.on('data', () => {});
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', reject);
    });
    if (timeoutMs !== undefined) req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer in ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/**
 * One HTTP/1.1 connection without node:http: the same request bytes as Node's client sends
 * (`Host: localhost`, `Connection: keep-alive` or `close`), answers read by Content-Length. Enough for the two
 * servers measured here (both answer with Content-Length); anything else is an error.
 */
class RawConnection {
  #socket: Socket | undefined;
  #buffer: Buffer | undefined;
  #waiting: { resolve: (status: number) => void; reject: (err: Error) => void } | undefined;
  #need = -1;
  #status = 0;

  constructor(
    readonly socketPath: string,
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
    const socket = connect(this.socketPath);
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

function rawRequest(path: string, keepAlive: boolean): Buffer {
  const headers = Object.entries(HEADERS).map(([k, v]) => `${k}: ${v}\r\n`).join('');
  return Buffer.from(`GET ${path} HTTP/1.1\r\n${headers}Host: localhost\r\nConnection: ${keepAlive ? 'keep-alive' : 'close'}\r\n\r\n`, 'latin1');
}

interface TargetState {
  target: CompareTarget;
  agent: Agent | false;
  /** raw client: one connection per closed loop, kept across slices when keep-alive. */
  raw: RawConnection[];
  lat: Latencies;
  errors: number;
  non200: number;
  activeNs: bigint;
  cpuUs: number;
  firstError?: string;
}

/** Runs `connections` closed loops against one target for `ms`; returns once every answer in flight is in. */
async function slice(s: TargetState, spec: CompareSpec, ms: number, record: boolean): Promise<void> {
  let stopped = false;
  const worker = async (i: number): Promise<void> => {
    while (!stopped) {
      const t0 = process.hrtime.bigint();
      try {
        const status = spec.client === 'raw' ? await s.raw[i]!.send() : await once(s.target.socketPath, spec.path, s.agent);
        if (!record) continue;
        s.lat.add(Number(process.hrtime.bigint() - t0) / 1e6);
        if (status !== 200) s.non200++;
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
  }
}

async function compare(spec: CompareSpec): Promise<CompareResult> {
  const states: TargetState[] = spec.targets.map((target) => ({
    target,
    agent:
      spec.client === 'http' && spec.keepAlive
        ? new Agent({ keepAlive: true, maxSockets: spec.connections, maxFreeSockets: spec.connections })
        : false,
    raw:
      spec.client === 'raw'
        ? Array.from({ length: spec.connections }, () => new RawConnection(target.socketPath, rawRequest(spec.path, spec.keepAlive), spec.keepAlive))
        : [],
    lat: new Latencies(),
    errors: 0,
    non200: 0,
    activeNs: 0n,
    cpuUs: 0,
  }));
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
