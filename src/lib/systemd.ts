/**
 * The two systemd protocols the agent speaks, without a native module:
 *
 * - socket activation (sd_listen_fds): systemd passes listening sockets as fds 3, 4, ...
 *   and says so in LISTEN_PID / LISTEN_FDS / LISTEN_FDNAMES;
 * - service notification (sd_notify): READY=1, STATUS=, WATCHDOG=1, RELOADING=1, STOPPING=1
 *   sent to the datagram socket named by NOTIFY_SOCKET.
 *
 * Node cannot open an AF_UNIX datagram socket, so notifications go through the
 * `systemd-notify` binary. It runs as a short-lived child, so the unit needs
 * NotifyAccess=all; since systemd 246 it waits on a BARRIER=1 round trip before it exits,
 * so the manager has attributed each message while the sender still lives.
 */
import { systemClock, type Clock, type Timer } from './clock.js';
import type { Logger } from './log.js';
const { spawn: nodeSpawn } = process.getBuiltinModule('node:child_process');

/** The first fd systemd passes (SD_LISTEN_FDS_START). */
export const LISTEN_FDS_START = 3;
/** More would be a misconfigured unit; sd_listen_fds has no lower limit, we keep one. */
const MAX_LISTEN_FDS = 64;

export interface ListenFd {
  fd: number;
  /** From LISTEN_FDNAMES (FileDescriptorName= of the socket unit), else "unknown" as sd_listen_fds_with_names says. */
  name: string;
}

export interface ListenFdsOptions {
  /** The pid LISTEN_PID must name; default process.pid. */
  pid?: number;
  /** Remove LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES from env afterwards (default true), as sd_listen_fds(1) does. */
  unsetEnv?: boolean;
}

/**
 * The sockets systemd passed to this process: [] when there are none, when they were meant
 * for another process (LISTEN_PID), or when the variables are malformed.
 */
export function listenFds(env: NodeJS.ProcessEnv = process.env, options: ListenFdsOptions = {}): ListenFd[] {
  const pid = options.pid ?? process.pid;
  const rawPid = env.LISTEN_PID;
  const rawCount = env.LISTEN_FDS;
  const rawNames = env.LISTEN_FDNAMES;
  if (options.unsetEnv !== false) {
    delete env.LISTEN_PID;
    delete env.LISTEN_FDS;
    delete env.LISTEN_FDNAMES;
  }
  if (rawPid === undefined || rawCount === undefined) return [];
  if (!/^[1-9]\d{0,9}$/.test(rawPid) || Number(rawPid) !== pid) return [];
  if (!/^\d{1,4}$/.test(rawCount)) return [];
  const count = Number(rawCount);
  if (count === 0 || count > MAX_LISTEN_FDS) return [];
  // sd_listen_fds_with_names refuses a name list of the wrong length; the fds are still
  // ours, so keep them and leave them unnamed.
  const names = rawNames === undefined ? [] : rawNames.split(':');
  const named = names.length === count;
  return Array.from({ length: count }, (_, i) => ({
    fd: LISTEN_FDS_START + i,
    name: named && names[i] ? names[i] : 'unknown',
  }));
}

/** What the notifier needs of child_process.spawn; tests pass a fake. */
export type SpawnFn = (
  command: string,
  args: string[],
  options: { stdio: ['ignore', 'ignore', 'pipe']; env: NodeJS.ProcessEnv },
) => NotifyChild;

export interface NotifyChild {
  stderr: NodeJS.ReadableStream | null;
  kill(signal?: NodeJS.Signals): boolean;
  once(event: 'error', listener: (err: NodeJS.ErrnoException) => void): unknown;
  once(event: 'close', listener: (code: number | null, signal: NodeJS.Signals | null) => void): unknown;
}

export interface NotifierDeps {
  /** Read for NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID; passed to the child. */
  env: NodeJS.ProcessEnv;
  log: Logger;
  clock?: Clock;
  spawn?: SpawnFn;
  /** Default "systemd-notify" (looked up on PATH). */
  command?: string;
  /** A notify child still running after this long is killed (default 5000 ms). */
  timeoutMs?: number;
  /** The pid WATCHDOG_PID must name, default process.pid. */
  pid?: number;
}

export interface Notifier {
  /** False without NOTIFY_SOCKET: every method then does nothing. */
  readonly enabled: boolean;
  /** Half of WATCHDOG_USEC when the watchdog is ours, else undefined. */
  readonly watchdogIntervalMs: number | undefined;
  ready(status?: string): void;
  reloading(status?: string): void;
  stopping(status?: string): void;
  status(text: string): void;
  watchdog(): void;
  /** Sends WATCHDOG=1 every watchdogIntervalMs on an unref'd timer (no-op without a watchdog). */
  startWatchdog(): void;
  /** Stops the watchdog timer and waits (bounded by the child timeout) for notifications in flight. */
  close(): Promise<void>;
}

type State = 'READY' | 'RELOADING' | 'STOPPING';

interface Message {
  state?: State;
  status?: string;
}

interface Channel {
  running: boolean;
  /** Messages waiting for the running child; short, see send(). */
  pending: Message[];
}

/** More distinct state changes than this while one child runs: the oldest waiting ones are dropped. */
const MAX_PENDING = 4;

const MAX_STATUS_CHARS = 200;

/** The systemd-notify arguments for one message (positional VAR=VALUE works on every systemd version). */
export function notifyArgs(message: Message & { watchdog?: boolean }): string[] {
  const args: string[] = [];
  if (message.state === 'READY') args.push('--ready');
  else if (message.state) args.push(`${message.state}=1`);
  if (message.status !== undefined) args.push(`--status=${cleanStatus(message.status)}`);
  if (message.watchdog) args.push('WATCHDOG=1');
  return args;
}

/** One line, printable, bounded: STATUS= is shown by `systemctl status`. */
function cleanStatus(text: string): string {
  const line = text.replace(/[\x00-\x1f\x7f]+/g, ' ').trim();
  return line.length > MAX_STATUS_CHARS ? `${line.slice(0, MAX_STATUS_CHARS - 1)}…` : line;
}

/** WATCHDOG_USEC halved, in ms, when the watchdog is meant for pid; else undefined. */
export function watchdogInterval(env: NodeJS.ProcessEnv, pid: number = process.pid): number | undefined {
  const usec = env.WATCHDOG_USEC;
  if (usec === undefined || !/^[1-9]\d{0,15}$/.test(usec)) return undefined;
  const wpid = env.WATCHDOG_PID;
  if (wpid !== undefined && wpid !== '' && wpid !== String(pid)) return undefined;
  return Math.max(1, Math.floor(Number(usec) / 2000));
}

/**
 * Sends service notifications through systemd-notify. At most one child at a time per
 * kind. State and status messages wait while one is in flight and are sent in order,
 * coalesced: a status joins the message before it, a repeated state merges with the last
 * one (READY, RELOADING, READY is kept as it is: systemd should see the reload). A watchdog
 * ping is dropped while another is in flight.
 */
export function createNotifier(deps: NotifierDeps): Notifier {
  const env = deps.env;
  const log = deps.log;
  const clock = deps.clock ?? systemClock;
  const pid = deps.pid ?? process.pid;
  const enabled = typeof env.NOTIFY_SOCKET === 'string' && env.NOTIFY_SOCKET !== '';
  const interval = enabled ? watchdogInterval(env, pid) : undefined;
  const channels = createChannels({
    env,
    log,
    clock,
    spawn: deps.spawn ?? ((command, args, options) => nodeSpawn(command, args, options)),
    command: deps.command ?? 'systemd-notify',
    timeoutMs: deps.timeoutMs ?? 5_000,
  });

  let closed = false;
  let watchdogTimer: Timer | undefined;
  const send = (message: Message): void => {
    if (enabled) channels.send(message);
  };
  const watchdog = (): void => {
    if (enabled) channels.watchdog();
  };
  const tick = (): void => {
    if (closed || interval === undefined) return;
    watchdog();
    watchdogTimer = clock.setTimer(tick, interval);
  };

  return {
    enabled,
    watchdogIntervalMs: interval,
    ready: (status) => send({ state: 'READY', ...(status !== undefined ? { status } : {}) }),
    reloading: (status) => send({ state: 'RELOADING', ...(status !== undefined ? { status } : {}) }),
    stopping: (status) => send({ state: 'STOPPING', ...(status !== undefined ? { status } : {}) }),
    status: (text) => send({ status: text }),
    watchdog,
    startWatchdog() {
      if (interval === undefined || watchdogTimer || closed) return;
      log.debug('systemd watchdog enabled', { interval_ms: interval });
      watchdogTimer = clock.setTimer(tick, interval);
    },
    close() {
      closed = true;
      watchdogTimer?.cancel();
      return channels.idle();
    },
  };
}

/** What running one systemd-notify child takes. */
interface ChildRunner {
  env: NodeJS.ProcessEnv;
  log: Logger;
  clock: Clock;
  spawn: SpawnFn;
  command: string;
  timeoutMs: number;
}

/** The two channels to systemd-notify (state and status messages; watchdog pings) of one notifier. */
interface Channels {
  /** Queues a state or status message (coalesced) and sends it when the state channel is free. */
  send(message: Message): void;
  /** Sends a watchdog ping unless one is in flight. */
  watchdog(): void;
  /** Resolves when no child runs and no message waits. */
  idle(): Promise<void>;
}

function createChannels(runner: ChildRunner): Channels {
  const { env, log, command } = runner;
  let missing = false;
  const idleWaiters: Array<() => void> = [];
  const stateChannel: Channel = { running: false, pending: [] };
  const watchdogChannel: Channel = { running: false, pending: [] };

  const isIdle = (): boolean => !stateChannel.running && stateChannel.pending.length === 0 && !watchdogChannel.running;
  const settle = (): void => {
    if (!isIdle()) return;
    for (const w of idleWaiters.splice(0)) w();
  };

  const run = (channel: Channel, args: string[], what: string): void => {
    channel.running = true;
    runNotifyChild(runner, args, what, (err) => finish(channel, err));
  };

  const finish = (channel: Channel, err?: NodeJS.ErrnoException): void => {
    channel.running = false;
    if (err) {
      if (err.code === 'ENOENT') {
        if (!missing) {
          log.error('systemd-notify not found: readiness, status and watchdog are not reported to systemd', {
            command,
            notify_socket: env.NOTIFY_SOCKET,
          });
        }
        missing = true;
        stateChannel.pending = [];
      } else {
        log.warn('cannot run systemd-notify', { command, error: err.message });
      }
    }
    if (channel === stateChannel) drainState();
    settle();
  };

  const drainState = (): void => {
    if (missing || stateChannel.running) return;
    const message = stateChannel.pending.shift();
    if (!message) return;
    run(stateChannel, notifyArgs(message), message.state ?? 'STATUS');
  };

  return {
    send(message) {
      if (missing) return;
      coalesce(stateChannel.pending, message);
      drainState();
    },
    watchdog() {
      if (missing || watchdogChannel.running) return;
      run(watchdogChannel, notifyArgs({ watchdog: true }), 'WATCHDOG');
    },
    idle() {
      if (isIdle()) return Promise.resolve();
      return new Promise<void>((resolve) => {
        idleWaiters.push(resolve);
      });
    },
  };
}

/**
 * Adds `message` to the waiting ones: a status joins the last message, a repeated state merges with the last
 * one; a new state is queued (the oldest dropped beyond MAX_PENDING).
 */
function coalesce(queue: Message[], message: Message): void {
  const last = queue[queue.length - 1];
  if (last && (!message.state || !last.state || last.state === message.state)) {
    if (message.state) last.state = message.state;
    if (message.status !== undefined) last.status = message.status;
  } else {
    queue.push({ ...message });
    if (queue.length > MAX_PENDING) queue.splice(0, queue.length - MAX_PENDING);
  }
}

/**
 * Runs one systemd-notify child, killed after timeoutMs; `done` is called once, with the error when it could not
 * run. A non-zero exit is logged here.
 */
function runNotifyChild(runner: ChildRunner, args: string[], what: string, done: (err?: NodeJS.ErrnoException) => void): void {
  const { log, timeoutMs } = runner;
  let child: NotifyChild;
  try {
    child = runner.spawn(runner.command, args, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...runner.env } });
  } catch (err) {
    done(err as NodeJS.ErrnoException);
    return;
  }
  let stderr = '';
  child.stderr?.on('data', (d: Buffer | string) => {
    if (stderr.length < 500) stderr += d.toString();
  });
  let ended = false;
  const timer = runner.clock.setTimer(() => {
    if (ended) return;
    log.warn('systemd-notify did not finish in time; killed it', { what, timeout_ms: timeoutMs });
    child.kill('SIGKILL');
  }, timeoutMs);
  const end = (err?: NodeJS.ErrnoException, code?: number | null, signal?: NodeJS.Signals | null): void => {
    if (ended) return;
    ended = true;
    timer.cancel();
    if (!err && code !== 0 && signal === null) {
      log.warn('systemd-notify failed', { what, code, stderr: stderr.trim().slice(0, 300) });
    }
    done(err);
  };
  child.once('error', (err) => end(err));
  child.once('close', (code, signal) => end(undefined, code, signal));
}
