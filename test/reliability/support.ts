/**
 * Support for the reliability suite (`npm run test:reliability`): a seeded random source whose seed is
 * printed, a misbehaving proxy in front of the emulator (the faults the emulator has no knob for), the
 * real agent under libfaketime, a read-only look into the state database after a kill, the agent's
 * memory and file descriptors, and a check that a served token is one the emulator signed and has
 * not expired.
 */
import { spawn } from 'node:child_process';
import { createPublicKey, createVerify, type JsonWebKey } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, request, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { join } from 'node:path';
import type { Clock } from '../../src/lib/clock.js';
import { systemClock } from '../../src/lib/clock.js';
import type { Logger, LogFields } from '../../src/lib/log.js';
import { openDatabase } from '../../src/store/sqlite.js';
import { AgentProcess, ask, CLI, type Answer } from '../support/harness.js';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// Seeded randomness

export interface Random {
  readonly seed: number;
  /** [0, 1) */
  next(): number;
  /** An integer in [min, max]. */
  int(min: number, max: number): number;
  pick<T>(items: readonly T[]): T;
  bytes(n: number): Buffer;
}

/**
 * mulberry32, seeded from RELIABILITY_SEED or at random. The seed is printed with the name of the
 * test so a failure can be replayed: RELIABILITY_SEED=<seed> npm run test:reliability.
 */
export function seededRandom(name: string): Random {
  const env = process.env.RELIABILITY_SEED;
  const seed = env !== undefined && /^\d+$/.test(env) ? Number(env) >>> 0 : Math.floor(Math.random() * 2 ** 32) >>> 0;
  console.log(`# ${name}: seed ${seed} (replay with RELIABILITY_SEED=${seed})`);
  let a = seed;
  const next = (): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (min: number, max: number): number => min + Math.floor(next() * (max - min + 1));
  return {
    seed,
    next,
    int,
    pick: (items) => items[int(0, items.length - 1)]!,
    bytes: (n) => Buffer.from(Array.from({ length: n }, () => int(0, 255))),
  };
}

// ---------------------------------------------------------------------------------------------
// Emulator observation

/** A Logger that hands every record to `on`; given to the emulator so tests see when it answers. */
export function tapLogger(on: (msg: string, fields: LogFields) => void, bound: LogFields = {}): Logger {
  const emit = (msg: string, fields?: LogFields): void => on(msg, { ...bound, ...fields });
  return { debug: emit, info: emit, warn: emit, error: emit, child: (f) => tapLogger(on, { ...bound, ...f }) };
}

/** A clock for the emulator whose wall time can be moved: the authority's (true) time in clock scenarios. */
export function offsetClock(): Clock & { offsetMs: number } {
  const c = {
    offsetMs: 0,
    now: () => Date.now() + c.offsetMs,
    monotonic: () => systemClock.monotonic(),
    setTimer: (fn: () => void, ms: number) => systemClock.setTimer(fn, ms),
  };
  return c;
}

// ---------------------------------------------------------------------------------------------
// Tokens

export function jwtClaims(token: string): Record<string, unknown> {
  const part = token.split('.')[1];
  if (!part) throw new Error('not a JWT');
  return JSON.parse(Buffer.from(part, 'base64url').toString('utf8')) as Record<string, unknown>;
}

/** Whether the emulator signed this token (RS256 with its key). */
export function signedBy(token: string, jwk: JsonWebKey): boolean {
  const [h, p, s] = token.split('.');
  if (!h || !p || !s) return false;
  const key = createPublicKey({ key: jwk, format: 'jwk' });
  return createVerify('RSA-SHA256').update(`${h}.${p}`).verify(key, Buffer.from(s, 'base64url'));
}

/**
 * Asks for a token until one comes (or the time is up); returns the answer and when it arrived.
 * Each ask gets its own connection; a 503 or a refused connection just means "not yet".
 */
export async function tokenWithin(
  socket: string,
  timeoutMs: number,
  minTtl = 0,
): Promise<{ answer: Answer; at: number; tries: number }> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  let tries = 0;
  while (Date.now() < deadline) {
    tries++;
    try {
      const answer = await ask(socket, `/v1/token?min_ttl=${minTtl}`);
      if (answer.status === 200) return { answer, at: Date.now(), tries };
      last = `${answer.status} ${answer.text}`;
    } catch (err) {
      last = String(err);
    }
    await sleep(25);
  }
  throw new Error(`no token within ${timeoutMs} ms; last: ${last}`);
}

// ---------------------------------------------------------------------------------------------
// The state database, read-only

export interface StateLook {
  integrity: string;
  credentialsVersion: number | undefined;
  /** The stored token's row (no secret), if any. */
  token: { obtainedAt: number; expiresAt: number } | undefined;
  logins: number;
  lastLoginStartedAt: number | undefined;
}

/**
 * Opens state.db read-only, as the agent left it (its WAL included), and runs PRAGMA integrity_check.
 * Nothing is written: a read-only connection neither recovers into the main file nor checkpoints.
 */
export function lookAtState(stateDir: string): StateLook {
  const db = openDatabase(join(stateDir, 'state.db'), { readonly: true, fileMustExist: true, timeout: 5_000 });
  try {
    const integrity = String(db.pragma('integrity_check', { simple: true }));
    const version = db.prepare("SELECT version FROM credentials WHERE account = 'default'").pluck().get() as number | undefined;
    const row = db.prepare("SELECT obtained_at, expires_at FROM tokens WHERE account = 'default'").get() as
      | { obtained_at: number; expires_at: number }
      | undefined;
    const logins = db.prepare('SELECT count(*) FROM logins').pluck().get() as number;
    const last = db.prepare('SELECT max(started_at) FROM logins').pluck().get() as number | null;
    return {
      integrity,
      credentialsVersion: version,
      token: row ? { obtainedAt: row.obtained_at, expiresAt: row.expires_at } : undefined,
      logins,
      lastLoginStartedAt: last ?? undefined,
    };
  } finally {
    db.close();
  }
}

// ---------------------------------------------------------------------------------------------
// The agent's resources

export function rssKb(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]);
}

export function openFds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** The lowest VmRSS seen over `ms` (sampled every 250 ms): what the process settles at, not a passing peak. */
export async function settledRssKb(pid: number, ms: number): Promise<number> {
  let min = rssKb(pid);
  for (let t = 0; t < ms; t += 250) {
    await sleep(250);
    min = Math.min(min, rssKb(pid));
  }
  return min;
}

// ---------------------------------------------------------------------------------------------
// The agent under libfaketime

const FAKETIME_LIBS = [
  '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1',
  '/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1',
  '/usr/lib/faketime/libfaketime.so.1',
  '/usr/local/lib/faketime/libfaketime.so.1',
];

export function libfaketime(): string {
  const found = FAKETIME_LIBS.find((p) => existsSync(p));
  if (!found) throw new Error(`libfaketime not found (looked in ${FAKETIME_LIBS.join(', ')}); install the faketime package`);
  return found;
}

/**
 * The real agent with its wall clock offset by libfaketime. The offset lives in a timestamp file read on every
 * clock call (FAKETIME_NO_CACHE=1), so `setOffset` moves the clock of a running agent too.
 *
 * FAKETIME_DONT_FAKE_MONOTONIC=1, deliberately: what happens on a POS box is an NTP step or a wrong RTC, and
 * those move CLOCK_REALTIME only; the kernel never steps CLOCK_MONOTONIC. With the monotonic clock faked as
 * well, changing the offset of a running Node process makes performance.now() and every libuv timer jump (a
 * step forward fires all timers at once, a step back stalls them): a world that cannot happen, and one in
 * which the agent's promise "expiry runs on the monotonic clock" could not even be tested. NO_FAKE_STAT=1
 * keeps file times real: only the clock is wrong, not the file system.
 */
export class FaketimeAgent extends AgentProcess {
  readonly rcFile: string;

  constructor(configPath: string, socket: string, dir: string) {
    super(configPath, socket);
    this.rcFile = join(dir, 'faketime.rc');
    this.setOffset('+0');
  }

  /** A libfaketime relative offset: "+0", "+3600", "-86400", "+1d", "-1h" ... */
  setOffset(spec: string): void {
    writeFileSync(this.rcFile, `${spec}\n`);
  }

  override start(): void {
    const child = spawn(process.execPath, [CLI, 'run', '--config', this.configPath], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        LD_PRELOAD: libfaketime(),
        FAKETIME_TIMESTAMP_FILE: this.rcFile,
        FAKETIME_NO_CACHE: '1',
        FAKETIME_DONT_FAKE_MONOTONIC: '1',
        NO_FAKE_STAT: '1',
      },
    });
    this.child = child;
    child.stdout!.on('data', (d: Buffer) => (this.output += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (this.output += d.toString()));
    this.exited = new Promise((r) => child.on('exit', (code) => r(code)));
  }
}

// ---------------------------------------------------------------------------------------------
// A misbehaving authority: a proxy in front of the emulator

/**
 * What the proxy does to the emulator's answers:
 * - `pass`: nothing.
 * - `trickle`: the answer's head at once, then its body one byte every `trickleMs`.
 * - `huge`: a 200 answer padded to `hugeBytes` (still valid JSON holding the real token).
 * - `contentType`: a 200 answer relabelled `text/html; charset=utf-8` (the body is untouched).
 * - `noExpiresIn`: `expires_in` removed from a 200 answer (the token itself, a JWT with iat/exp, is untouched).
 * - `cut`: the head and half the body, then the connection is destroyed (dropped mid-answer).
 * Every mode forwards the request, so the emulator counts each login attempt.
 */
export type ProxyMode = 'pass' | 'trickle' | 'huge' | 'contentType' | 'noExpiresIn' | 'cut';

export interface FaultProxy {
  readonly url: string;
  mode: ProxyMode;
  trickleMs: number;
  hugeBytes: number;
  /** Arrival times (Date.now()) of the token requests since the last reset. */
  arrivals: number[];
  reset(): void;
  close(): Promise<void>;
}

export async function createFaultProxy(target: () => string): Promise<FaultProxy> {
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const state = { mode: 'pass' as ProxyMode, trickleMs: 100, hugeBytes: 4 * 1024 * 1024, arrivals: [] as number[] };

  const server: Server = createServer((req, res) => {
    if (req.url?.endsWith('/connect/token')) state.arrivals.push(Date.now());
    const mode = state.mode;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const up = request(
        `${target()}${req.url ?? '/'}`,
        { method: req.method, headers: { ...req.headers, host: new URL(target()).host }, agent: false },
        (upRes) => {
          const body: Buffer[] = [];
          upRes.on('data', (c: Buffer) => body.push(c));
          upRes.on('error', () => res.destroy());
          upRes.on('end', () => answer(mode, upRes.statusCode ?? 502, upRes.headers, Buffer.concat(body), res));
        },
      );
      up.on('error', () => res.destroy()); // the emulator dropped the connection: so does the "authority"
      up.end(Buffer.concat(chunks));
    });
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });

  const answer = (
    mode: ProxyMode,
    status: number,
    upHeaders: IncomingHttpHeaders,
    body: Buffer,
    res: ServerResponse,
  ): void => {
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(upHeaders)) {
      if (v === undefined || k === 'content-length' || k === 'connection' || k === 'keep-alive' || k === 'transfer-encoding') continue;
      headers[k] = Array.isArray(v) ? v.join(', ') : v;
    }
    let out = body;
    if (status === 200 && mode === 'huge') {
      const value = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
      value.padding = '';
      const base = Buffer.byteLength(JSON.stringify(value));
      value.padding = 'x'.repeat(Math.max(0, state.hugeBytes - base));
      out = Buffer.from(JSON.stringify(value));
    } else if (status === 200 && mode === 'noExpiresIn') {
      const value = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
      delete value.expires_in;
      out = Buffer.from(JSON.stringify(value));
    } else if (status === 200 && mode === 'contentType') {
      headers['content-type'] = 'text/html; charset=utf-8';
    }
    res.writeHead(status, { ...headers, 'content-length': String(out.length) });
    if (mode === 'cut') {
      res.write(out.subarray(0, Math.floor(out.length / 2)), () => res.destroy());
      return;
    }
    if (mode !== 'trickle') {
      res.end(out);
      return;
    }
    res.flushHeaders();
    let i = 0;
    const tick = (): void => {
      if (res.destroyed) return;
      if (i >= out.length) {
        res.end();
        return;
      }
      res.write(out.subarray(i, ++i));
      const t = setTimeout(() => {
        timers.delete(t);
        tick();
      }, state.trickleMs);
      timers.add(t);
    };
    tick();
  };

  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  // The knobs are the fields of `state` itself: the handler above reads them on each request.
  return Object.assign(state, {
    url: `http://127.0.0.1:${port}`,
    reset() {
      state.arrivals = [];
    },
    close: () =>
      new Promise<void>((r) => {
        for (const t of timers) clearTimeout(t);
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  });
}

// ---------------------------------------------------------------------------------------------
// Backoff bounds

export interface Backoff {
  initialMs: number;
  maxMs: number;
}

/**
 * The least the agent may wait after its n-th failure in a row (policy.ts: jitter +-20%, capped at maxMs,
 * never below initialMs / 2), minus `slackMs` for timer and measurement noise.
 */
export function minRetryDelayMs(n: number, b: Backoff, slackMs = 60): number {
  const expo = Math.min(b.maxMs, b.initialMs * 2 ** (n - 1));
  return Math.max(b.initialMs / 2, Math.min(b.maxMs, expo * 0.8)) - slackMs;
}

/** The most login attempts the backoff allows in `windowMs`, counting the one that opens the window. */
export function maxAttempts(windowMs: number, b: Backoff): number {
  let n = 1;
  let t = 0;
  for (;;) {
    t += minRetryDelayMs(n, b);
    if (t > windowMs) return n;
    n++;
  }
}
