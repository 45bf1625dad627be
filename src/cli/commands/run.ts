import { startAgent, type Agent } from '../../agent.js';
import { createAgentClient, type AccountStatusBody } from '../../api/index.js';
import { ConfigError, resolveConfigPath, type AgentConfig } from '../../config/index.js';
import { authorities, loadConfig } from '../../authorities/index.js';
import { missingDeviceProfiles } from '../../identity/index.js';
import { systemClock, type Clock, type Timer } from '../../lib/clock.js';
import { createLogger, type Logger } from '../../lib/log.js';
import { createNotifier, listenFds, type Notifier } from '../../lib/systemd.js';
import { statusBodies } from '../../server/index.js';
import { configOption, duration, type Io, parse, println } from '../common.js';

export const runHelp = `Usage: pos-token-agent run [--check] [--config FILE]

Runs the agent in the foreground (systemd's ExecStart): keeps a token for every account
and serves it on the Unix socket. Logs are JSON lines on standard error.
Signals: SIGTERM/SIGINT stop cleanly; SIGHUP reloads the config (a bad config is
reported and the running one kept).
Under systemd it serves on the socket of pos-token-agent.socket (LISTEN_FDS) and reports
readiness, status and watchdog pings (NOTIFY_SOCKET, WATCHDOG_USEC) via systemd-notify.

  --check   only check the config as the agent would at start (schema, each account's
            options against its authority, device profiles found), print the result and
            exit: 0 valid, 1 not (the package's upgrade runs it before restarting the agent).`;

/** How often the STATUS= line shown by `systemctl status` is recomputed; sent only when it changes. */
const STATUS_POLL_MS = 5_000;

export async function runCommand(argv: string[], io: Io): Promise<number> {
  const { values } = parse(argv, { ...configOption, check: { type: 'boolean' } });
  if (values.help) return println(io.stdout, runHelp), 0;
  const path = resolveConfigPath(values.config, io.env);
  const config = await loadRunConfig(path, io.env);
  if (values.check) {
    const names = Object.keys(config.accounts);
    println(io.stdout, `${path} is valid: ${names.length} account(s)${names.length ? `: ${names.join(', ')}` : ''}`);
    return 0;
  }
  const log = createLogger({ level: config.logLevel, write: (l) => io.stderr.write(l), secretKeys: authorities.secretFields });
  const clock: Clock = systemClock;
  // Read (and removed from the environment) before anything could pass them on to a child.
  const inherited = listenFds(io.env);
  if (inherited.length > 1) {
    log.warn('systemd passed more than one socket; serving on the first', { fds: inherited });
  }
  const notifier = createNotifier({ env: io.env, log, clock });
  notifier.startWatchdog();
  // Signals are handled from here on, also while starting: a stop then waits for the start.
  const stopSignal = new Promise<string>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  const hangups = new Hangups(log);
  process.umask(0o027);
  let agent: Agent;
  try {
    agent = await startAgent(config, { log, ...(inherited[0] ? { listenFd: inherited[0].fd } : {}) });
  } catch (err) {
    hangups.close();
    notifier.status(`failed to start: ${err instanceof Error ? err.message : String(err)}`);
    await notifier.close();
    throw err;
  }
  log.info('agent started', {
    config: path,
    accounts: Object.keys(config.accounts),
    pid: process.pid,
    generation: agent.configStatus().generation,
    ...(inherited[0] ? { socket_from: 'systemd' } : {}),
  });
  const running = new RunningAgent(agent, { path, env: io.env, profileDirs: config.deviceProfileDirs, log, clock, notifier });
  await running.ready(config.socket);
  hangups.handle(() => running.reload());
  const signal = await stopSignal;
  log.info('stopping', { signal });
  notifier.stopping(`stopping (${signal})`);
  hangups.close();
  return running.stop();
}

/** SIGHUP from the start on: ignored while starting, then handed to the running agent (which queues reloads). */
class Hangups {
  #onHangup: () => void;
  readonly #listener = (): void => this.#onHangup();

  constructor(log: Logger) {
    this.#onHangup = () => log.warn('SIGHUP while starting: ignored');
    process.on('SIGHUP', this.#listener);
  }

  handle(reload: () => Promise<void>): void {
    this.#onHangup = () => void reload();
  }

  close(): void {
    process.off('SIGHUP', this.#listener);
  }
}

interface RunningDeps {
  path: string;
  env: NodeJS.ProcessEnv;
  /** Profiles are looked up where the running agent looks (deviceProfileDirs needs a restart to change). */
  profileDirs: readonly string[];
  log: Logger;
  clock: Clock;
  notifier: Notifier;
}

/** The started agent under systemd: readiness, the STATUS= line, reloads and the stop. */
class RunningAgent {
  #lastStatus = '';
  #pollTimer: Timer | undefined;
  #reloads: Promise<void> = Promise.resolve();

  constructor(
    private readonly agent: Agent,
    private readonly deps: RunningDeps,
  ) {}

  /** READY=1 once the socket answers (tokens were restored by startAgent), then the STATUS= poll. */
  async ready(socket: string): Promise<void> {
    try {
      await createAgentClient({ socket, timeoutMs: 2_000 }).health();
    } catch (err) {
      this.deps.log.debug('self-check on the configured socket path failed', { socket, error: String(err) });
    }
    this.#lastStatus = this.statusLine();
    this.deps.notifier.ready(this.#lastStatus);
    if (this.deps.notifier.enabled) this.#pollTimer = this.deps.clock.setTimer(() => this.poll(), STATUS_POLL_MS);
  }

  reload(): Promise<void> {
    this.#reloads = this.#reloads.then(() => this.reloadNow());
    return this.#reloads;
  }

  private async reloadNow(): Promise<void> {
    const { notifier, log, path } = this.deps;
    notifier.reloading('reloading the config');
    try {
      this.agent.reload(await loadRunConfig(path, this.deps.env, this.deps.profileDirs));
    } catch (err) {
      const problems = err instanceof ConfigError ? err.problems : [String(err)];
      this.agent.reloadRefused(problems);
      log.error('config reload refused; keeping the running config', { config: path, problems });
    }
    this.#lastStatus = this.statusLine();
    notifier.ready(this.#lastStatus);
  }

  private statusLine(): string {
    const now = this.deps.clock.now();
    return describeAgentStatus(statusBodies(this.agent.manager.status(), this.agent.outbox.status(), now), now);
  }

  private poll(): void {
    const line = this.statusLine();
    if (line !== this.#lastStatus) this.deps.notifier.status(line);
    this.#lastStatus = line;
    this.#pollTimer = this.deps.clock.setTimer(() => this.poll(), STATUS_POLL_MS);
  }

  /** Stops the agent after the reload under way; exits 1 if that takes more than 10 s. */
  async stop(): Promise<number> {
    this.#pollTimer?.cancel();
    this.#pollTimer = undefined;
    await this.#reloads;
    return new Promise<number>((resolve) => {
      const force = setTimeout(() => {
        this.deps.log.error('stop took too long; exiting');
        resolve(1);
      }, 10_000);
      force.unref();
      void this.agent
        .stop()
        .then(() => this.deps.notifier.close())
        .then(() => {
          clearTimeout(force);
          resolve(0);
        });
    });
  }
}

/**
 * The config as `run` takes it, at start and on SIGHUP: valid, and every account's device profile found in
 * `profileDirs` (default: the config's own), else a ConfigError listing the profiles there are. Without this
 * a misspelled profile would start the agent and fail only at its first login.
 */
async function loadRunConfig(path: string, env: NodeJS.ProcessEnv, profileDirs?: readonly string[]): Promise<AgentConfig> {
  const config = loadConfig(path, env);
  const problems = await missingDeviceProfiles(config.accounts, profileDirs ?? config.deviceProfileDirs);
  if (problems.length > 0) throw new ConfigError(path, problems);
  return config;
}

/**
 * The one-line STATUS= for `systemctl status`, e.g. "serving: default fresh, expires in 41 min", plus
 * ", outbox 3 queued (oldest 2 min)" for an account with entries waiting (a stuck outbox shows where the
 * technician looks first). Names, states, counts and times only: never a token, a secret or a receipt.
 */
export function describeAgentStatus(
  accounts: Record<string, Pick<AccountStatusBody, 'state' | 'expires_at' | 'last_error' | 'outbox'>>,
  nowMs: number,
): string {
  const parts = Object.entries(accounts).map(([name, a]) => {
    let text = `${name} ${a.state}`;
    if (a.expires_at) {
      const leftS = Math.round((Date.parse(a.expires_at) - nowMs) / 1000);
      text += leftS > 0 ? `, expires in ${duration(leftS)}` : `, expired ${duration(-leftS)} ago`;
    }
    if (a.last_error && a.state !== 'fresh') text += ` (${a.last_error.reason})`;
    const o = a.outbox;
    if (o && o.queued > 0) text += `, outbox ${o.queued} queued${o.oldest_queued_s === null ? '' : ` (oldest ${duration(o.oldest_queued_s)})`}`;
    return text;
  });
  return parts.length ? `serving: ${parts.join('; ')}` : 'serving: no accounts';
}
