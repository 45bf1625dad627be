/**
 * The serial source (the only expensive one): a query over a serial line to a fiscal module.
 *
 * One try opens the port, discards stale input, writes the request and waits for one answer
 * (bytes up to the delimiter) matching the response regex; the whole try is bounded by timeoutMs.
 * Failed tries are repeated at most `retries` times after a short jittered pause.
 * Reads of one port never overlap in this process: a per-port mutex (keyed by the real path)
 * queues them, and a caller asking for exactly the read already queued or running shares it.
 * Other processes are kept off by serialport's exclusive lock on the open port.
 */
import type { SerialPort } from 'serialport';
import { sleep, type Clock } from '../lib/clock.js';
import type { Logger } from '../lib/log.js';
import { SERIAL_DEFAULTS, type SerialSource } from './profile.js';
import { expandPath, type SourceOutcome } from './sources.js';
import { realpath } from '../lib/fs-async.js';

/** Bytes received without a delimiter after which an answer is given up as garbage. */
const MAX_ANSWER_BYTES = 4096;
/** How long closing a port may take before the next read goes ahead anyway. */
const CLOSE_GRACE_MS = 1000;

/**
 * Serialises work per port and shares identical reads. Hardware is process-wide, so the agent and
 * every reader in it should use one instance: `processPortLocks` (tests may make their own).
 */
export interface PortLocks {
  /** Runs fn once every earlier fn for the same port has settled. */
  run<T>(port: string, fn: () => Promise<T>): Promise<T>;
  /** Joins the read with the same key if one is queued or running; otherwise starts fn. */
  share<T>(key: string, fn: () => Promise<T>): Promise<T>;
}

export function createPortLocks(): PortLocks {
  const tails = new Map<string, Promise<unknown>>();
  const inflight = new Map<string, Promise<unknown>>();
  return {
    run(port, fn) {
      const previous = tails.get(port) ?? Promise.resolve();
      const result = previous.then(fn, fn);
      const tail = result.then(
        () => undefined,
        () => undefined,
      );
      tails.set(port, tail);
      void tail.then(() => {
        if (tails.get(port) === tail) tails.delete(port);
      });
      return result;
    },
    share<T>(key: string, fn: () => Promise<T>): Promise<T> {
      const running = inflight.get(key) as Promise<T> | undefined;
      if (running) return running;
      const started = fn().finally(() => inflight.delete(key));
      inflight.set(key, started);
      return started;
    },
  };
}

/** The locks every reader in this process shares unless given others. */
export const processPortLocks: PortLocks = createPortLocks();

export interface SerialDeps {
  clock: Clock;
  /** In [0, 1): jitter of the pause between tries. */
  random: () => number;
  log: Logger;
  locks: PortLocks;
}

/** The pause before the next try: the base, jittered by +-50%. */
export function retryPauseMs(baseMs: number, random: () => number): number {
  return Math.round(baseMs * (0.5 + random()));
}

/** The request's bytes: `request` one byte a character, or `requestHex`. */
export function requestBytes(source: Pick<SerialSource, 'request' | 'requestHex'>): Buffer {
  return source.requestHex !== undefined ? Buffer.from(source.requestHex, 'hex') : Buffer.from(source.request ?? '', 'latin1');
}

/** Upper bound of one serial read in milliseconds (tries, pauses, closing), for messages and tests. */
export function serialReadBoundMs(source: SerialSource): number {
  const s = withDefaults(source);
  return (s.retries + 1) * (s.timeoutMs + CLOSE_GRACE_MS) + s.retries * Math.ceil(s.retryPauseMs * 1.5);
}

function withDefaults(source: SerialSource) {
  return {
    ...source,
    dataBits: source.dataBits ?? SERIAL_DEFAULTS.dataBits,
    parity: source.parity ?? SERIAL_DEFAULTS.parity,
    stopBits: source.stopBits ?? SERIAL_DEFAULTS.stopBits,
    delimiter: source.delimiter ?? SERIAL_DEFAULTS.delimiter,
    timeoutMs: source.timeoutMs ?? SERIAL_DEFAULTS.timeoutMs,
    retries: source.retries ?? SERIAL_DEFAULTS.retries,
    retryPauseMs: source.retryPauseMs ?? SERIAL_DEFAULTS.retryPauseMs,
  };
}

type Settings = ReturnType<typeof withDefaults> & { path: string; bytes: Buffer };

/** Reads a serial source; never throws. */
export async function readSerialSource(source: SerialSource, env: NodeJS.ProcessEnv, deps: SerialDeps): Promise<SourceOutcome> {
  const expanded = expandPath(source.path, env);
  if (!expanded.ok) return expanded;
  const settings: Settings = { ...withDefaults(source), path: expanded.path, bytes: requestBytes(source) };
  const port = await realpath(settings.path).catch(() => settings.path);
  const key = JSON.stringify([
    port, settings.baudRate, settings.dataBits, settings.parity, settings.stopBits, settings.bytes.toString('hex'),
    settings.delimiter, settings.response, settings.timeoutMs, settings.retries,
  ]);
  return deps.locks.share(key, () => keepingAlive(deps.locks.run(port, () => tries(settings, deps))));
}

/**
 * Someone waits for a serial read, but between tries nothing but the clock's timers is pending, and
 * those never keep the process alive: a one-shot command would exit mid-read. Hold it open meanwhile.
 */
function keepingAlive<T>(work: Promise<T>): Promise<T> {
  const handle = setInterval(() => {}, 60_000);
  return work.finally(() => clearInterval(handle));
}

type SerialportModule = typeof import('serialport');
let serialportModule: Promise<SerialportModule> | undefined;
/** serialport (a native binding: ~13 MiB and ~100 ms to load) is loaded the first time a port is read, not at start. */
const loadSerialport = (): Promise<SerialportModule> => (serialportModule ??= import('serialport'));

async function tries(s: Settings, deps: SerialDeps): Promise<SourceOutcome> {
  const serialport = await loadSerialport();
  const total = s.retries + 1;
  const reasons: string[] = [];
  for (let attempt = 1; attempt <= total; attempt++) {
    const result = await oneTry(s, deps, serialport);
    if (result.ok) {
      if (attempt > 1) deps.log.info('serial identity read after retries', { port: s.path, attempt });
      return result;
    }
    deps.log.debug('serial identity try failed', { port: s.path, attempt, of: total, reason: result.reason });
    reasons.push(result.reason);
    if (attempt < total) await sleep(deps.clock, retryPauseMs(s.retryPauseMs, deps.random));
  }
  const distinct = [...new Set(reasons)];
  return {
    ok: false,
    reason: `${total === 1 ? 'the only try' : `all ${total} tries`} (${s.timeoutMs} ms each) failed: ${distinct.join('; ')}`,
  };
}

function oneTry(s: Settings, deps: SerialDeps, { SerialPort, DelimiterParser }: SerialportModule): Promise<SourceOutcome> {
  return new Promise<SourceOutcome>((resolve) => {
    const port = new SerialPort({
      path: s.path,
      baudRate: s.baudRate,
      dataBits: s.dataBits,
      parity: s.parity,
      stopBits: s.stopBits,
      autoOpen: false,
    });
    const parser = new DelimiterParser({ delimiter: Buffer.from(s.delimiter, 'latin1'), includeDelimiter: false });
    let received = 0;
    let pending = Buffer.alloc(0);
    let settled = false;
    const finish = (outcome: SourceOutcome): void => {
      if (settled) return;
      settled = true;
      timer.cancel();
      port.unpipe(parser);
      parser.removeAllListeners('data');
      closePort(port, deps.clock).then(() => resolve(outcome), () => resolve(outcome));
    };
    const timer = deps.clock.setTimer(() => {
      if (received === 0) return finish({ ok: false, reason: `no answer within ${s.timeoutMs} ms` });
      finish({
        ok: false,
        reason:
          `no complete answer within ${s.timeoutMs} ms: ${received} bytes without the delimiter ` +
          `${JSON.stringify(s.delimiter)} (${showBytes(pending)}; wrong baud rate or delimiter?)`,
      });
    }, s.timeoutMs);

    port.on('error', (err: Error) => finish({ ok: false, reason: `${s.path}: ${portMessage(err)}` }));
    port.on('data', (chunk: Buffer) => {
      received += chunk.length;
      pending = Buffer.concat([pending, chunk]).subarray(-MAX_ANSWER_BYTES);
      const lastDelimiter = pending.lastIndexOf(Buffer.from(s.delimiter, 'latin1'));
      if (lastDelimiter >= 0) pending = pending.subarray(lastDelimiter + s.delimiter.length);
      if (pending.length >= MAX_ANSWER_BYTES) {
        finish({ ok: false, reason: `more than ${MAX_ANSWER_BYTES} bytes without the delimiter ${JSON.stringify(s.delimiter)}` });
      }
    });
    parser.on('data', (frame: Buffer) => {
      if (frame.length === 0) return; // a bare delimiter, e.g. a module's blank line
      const text = frame.toString('latin1');
      const m = new RegExp(s.response, 'm').exec(text);
      if (m?.[1] !== undefined) finish({ ok: true, value: m[1] });
      else finish({ ok: false, reason: `the answer ${showBytes(frame)} does not match /${s.response}/` });
    });
    port.pipe(parser);

    port.open((err) => {
      if (settled) {
        if (!err) void closePort(port, deps.clock);
        return;
      }
      if (err) return finish({ ok: false, reason: `cannot open ${s.path}: ${portMessage(err)}` });
      // Discard what arrived before this try (a late answer to an earlier one), then ask.
      port.flush((flushErr) => {
        if (settled) return;
        if (flushErr) return finish({ ok: false, reason: `${s.path}: ${portMessage(flushErr)}` });
        port.write(s.bytes, (writeErr) => {
          if (writeErr && !settled) finish({ ok: false, reason: `cannot write to ${s.path}: ${portMessage(writeErr)}` });
        });
      });
    });
  });
}

function closePort(port: SerialPort, clock: Clock): Promise<void> {
  if (!port.isOpen) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const timer = clock.setTimer(resolve, CLOSE_GRACE_MS);
    port.close(() => {
      timer.cancel();
      resolve();
    });
  });
}

/** A serialport error's message without its "Error: " prefix and with the usual causes spelled out. */
function portMessage(err: Error): string {
  const text = err.message.replace(/^Error:\s*/, '').replace(/,\s*cannot (open|lock) \S+$/, '');
  if (/cannot lock port/i.test(text) || /Resource temporarily unavailable/i.test(text)) {
    return `${text} (another process holds the port)`;
  }
  if (/No such file or directory/i.test(text)) return `${text} (is the module connected? is the path right?)`;
  if (/Permission denied/i.test(text)) return `${text} (the agent's user needs the port's group, e.g. dialout)`;
  return text;
}

/** Received bytes for a message: printable ASCII as text, the rest as \xNN, at most 48 bytes. */
export function showBytes(bytes: Buffer): string {
  const shown = bytes.subarray(0, 48);
  let out = '';
  for (const b of shown) {
    if (b === 0x5c) out += '\\\\';
    else if (b === 0x22) out += '\\"';
    else if (b >= 0x20 && b <= 0x7e) out += String.fromCharCode(b);
    else if (b === 0x0d) out += '\\r';
    else if (b === 0x0a) out += '\\n';
    else out += `\\x${b.toString(16).padStart(2, '0')}`;
  }
  return `"${out}"${bytes.length > shown.length ? `... (${bytes.length} bytes)` : ''}`;
}
