/**
 * Set-up's last steps with the agent itself: the units enabled and started, the config the running agent runs
 * made the file's (a reload, checked; a restart when the reload did not take), and the agent's answer for the
 * summary. Waits are as long as the service's own start may take (its TimeoutStartSec), never longer.
 */
import { createAgentClient, type AccountStatusBody, type AgentClient, type ConfigStatusBody, type StatusBody } from '../../api/index.js';
import { configFileSha256 } from '../../config/index.js';
import { CliError } from '../common.js';
import { reloadOutcome, type ReloadOutcome } from './reload.js';
import { NAME, systemdRunning } from './setup-runner.js';
const { spawnSync } = process.getBuiltinModule('node:child_process');
const { readFileSync } = process.getBuiltinModule('node:fs');

const SERVICE = `${NAME}.service`;
const SOCKET_UNIT = `${NAME}.socket`;
/** The unit's TimeoutStartSec, when systemd cannot be asked. */
const DEFAULT_START_TIMEOUT_MS = 90_000;
/** However the unit is configured ("infinity" included), set-up waits no longer than this. */
const MAX_WAIT_MS = 10 * 60_000;
/** A token, once the agent runs the config: it logs in at start when it has none. */
const TOKEN_WAIT_MS = 30_000;
const JOURNAL_HINT = `journalctl -u ${NAME} -n 50`;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * A systemd time span as `systemctl show` prints it ("1min 30s", "90s", "500ms", "2h", "infinity"), in
 * milliseconds; Infinity for "infinity"; undefined for what is not one.
 */
export function parseTimespan(text: string): number | undefined {
  const t = text.trim();
  if (t === 'infinity') return Infinity;
  const units: Record<string, number> = { us: 0.001, ms: 1, s: 1000, min: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };
  const parts = [...t.matchAll(/(\d+(?:\.\d+)?)\s*(us|ms|s|min|h|d|w)(?=\s|$)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join(' ').replace(/\s+/g, '') !== t.replace(/\s+/g, '')) return undefined;
  return parts.reduce((sum, p) => sum + Number(p[1]) * units[p[2]!]!, 0);
}

/** How long the service's start may take (its TimeoutStartSec, as systemd has it), bounded by MAX_WAIT_MS. */
export function startTimeoutMs(): number {
  const r = spawnSync('systemctl', ['show', '-p', 'TimeoutStartUSec', '--value', SERVICE], { encoding: 'utf8', timeout: 10_000 });
  const ms = r.status === 0 ? parseTimespan(r.stdout) : undefined;
  if (ms === undefined || ms <= 0) return DEFAULT_START_TIMEOUT_MS;
  return Math.min(ms, MAX_WAIT_MS);
}

/** Enables and starts the units; false when it may not (options) or cannot (no systemd), having said so. */
export function startUnits(systemctl: boolean, say: (text: string) => void, timeoutMs: number): boolean {
  if (!systemctl || !systemdRunning()) {
    say(`would run: systemctl enable --now ${SOCKET_UNIT} ${SERVICE}`);
    return false;
  }
  spawnSync('systemctl', ['reset-failed', SOCKET_UNIT, SERVICE], { stdio: 'ignore' });
  const enabled = spawnSync('systemctl', ['enable', '--now', SOCKET_UNIT, SERVICE], { stdio: ['ignore', 'inherit', 'inherit'], timeout: timeoutMs + 30_000 });
  if (enabled.status !== 0) throw new CliError(`systemctl enable --now ${SOCKET_UNIT} ${SERVICE} failed (above); see: ${JOURNAL_HINT}`);
  return true;
}

export interface AgentLink {
  socket: string;
  account: string;
  configPath: string;
  say: (text: string) => void;
}

export interface AgentReport {
  /** The summary's "Agent:" line. */
  line: string;
  status?: AccountStatusBody;
}

/**
 * Once set-up has started the units: waits for the agent, makes the config it runs the file's (reload, checked,
 * then a restart if the reload did not take), then waits a bounded while for the account's token. Throws a
 * CliError, saying what the agent said, when the agent does not answer or does not take the file's config.
 */
export async function settleAgent(link: AgentLink, startMs: number): Promise<AgentReport> {
  const client = createAgentClient({ socket: link.socket, timeoutMs: 10_000 });
  let st = await waitForAgent(startMs, link);
  if (!st) throw new CliError(`the agent did not answer on ${link.socket} within ${Math.round(startMs / 1000)} s (the service's TimeoutStartSec); see: ${JOURNAL_HINT}`);
  const fileSha = fileHash(link.configPath);
  if (st.config && st.config.sha256 !== fileSha) st = await applyFileConfig(client, st.config, fileSha, link, startMs);
  const account = await waitForToken(client, link.account, st.accounts[link.account]);
  return { line: describeAgent(link.account, account), ...(account ? { status: account } : {}) };
}

/** Without systemd (or told not to use it): one look at an agent that may run anyway; never waits. */
export async function lookAtAgent(link: AgentLink): Promise<AgentReport> {
  const st = await createAgentClient({ socket: link.socket, timeoutMs: 5_000 })
    .status()
    .catch(() => undefined);
  if (!st) return { line: 'not answering (not started here)' };
  const account = st.accounts[link.account];
  if (st.config && st.config.sha256 !== fileHash(link.configPath)) {
    return { line: `running, but not the config in ${link.configPath} (generation ${st.config.generation} from an older file): reload it (SIGHUP)` };
  }
  return { line: describeAgent(link.account, account), ...(account ? { status: account } : {}) };
}

function describeAgent(account: string, st: AccountStatusBody | undefined): string {
  if (!st) return `running; account ${account} is not in the config it runs`;
  return `running; account ${account} is ${st.state}${st.last_error ? ` (${st.last_error.reason}: ${st.last_error.message})` : ''}`;
}

function fileHash(path: string): string {
  try {
    return configFileSha256(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new CliError(`cannot read ${path} to compare it with what the agent runs (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
}

/** `/v1/status` once the agent answers, within `ms`; says in one line what it waits for when it has to. */
async function waitForAgent(ms: number, link: AgentLink): Promise<StatusBody | undefined> {
  const deadline = Date.now() + ms;
  let said = false;
  for (;;) {
    const left = deadline - Date.now();
    const attempt = createAgentClient({ socket: link.socket, timeoutMs: Math.max(1_000, Math.min(10_000, left)) });
    const st = await attempt.status().catch(() => undefined);
    if (st) return st;
    if (Date.now() >= deadline) return undefined;
    if (!said) {
      link.say(`Waiting for the agent to answer on ${link.socket} (up to ${Math.round(ms / 1000)} s, as long as its start may take) ...`);
      said = true;
    }
    await sleep(Math.min(500, Math.max(0, deadline - Date.now())));
  }
}

/** The account's status once it holds a usable token, or as it is after TOKEN_WAIT_MS. */
async function waitForToken(client: AgentClient, account: string, first: AccountStatusBody | undefined): Promise<AccountStatusBody | undefined> {
  let st = first;
  const deadline = Date.now() + TOKEN_WAIT_MS;
  while (st && st.state !== 'fresh' && st.state !== 'stale' && Date.now() < deadline) {
    await sleep(1_000);
    st = (await client.accountStatus(account).catch(() => st)) ?? st;
  }
  return st;
}

/**
 * The agent runs another config than the file's: `systemctl reload`, then what the agent reports decides. Taken
 * with the file's hash: done. Otherwise (the reload did not run, as with procps's /bin/kill missing; it did not
 * finish; or the agent refused the file, say for a setting it reads only at start) `systemctl restart`: the
 * file, which set-up checked as a start would, is what the agent runs after any reboot, so it is better found
 * out now whether it starts with it. Then the file's config must run, else set-up fails saying why.
 */
async function applyFileConfig(client: AgentClient, before: ConfigStatusBody, fileSha: string, link: AgentLink, startMs: number): Promise<StatusBody> {
  link.say(`The agent runs an older ${link.configPath} (generation ${before.generation}); reloading it ...`);
  const reload = spawnSync('systemctl', ['reload', SERVICE], { stdio: ['ignore', 'inherit', 'inherit'], timeout: startMs + 15_000 });
  const outcome = await settle(client, before, reload.status === 0 ? 15_000 : 2_000);
  if (outcome.kind === 'taken' && outcome.config.sha256 === fileSha) {
    return (await client.status().catch(() => undefined)) ?? throwNoAnswer(link);
  }
  const refused = outcome.kind === 'refused' ? outcome.problems : [];
  const why =
    outcome.kind === 'refused'
      ? `the agent refused it:\n  - ${refused.join('\n  - ')}\n`
      : outcome.kind === 'taken'
        ? `the agent took ${outcome.config.path} (generation ${outcome.config.generation}), which is not ${link.configPath} as set-up left it`
        : `systemctl reload ${reload.status === 0 ? 'exited 0' : `failed: ${reload.error?.message ?? `exit ${reload.status}`}`}, the agent still runs generation ${before.generation}`;
  link.say(`The reload did not take (${why}); restarting the agent ...`);
  return restartForConfig(fileSha, link, startMs, refused);
}

async function restartForConfig(fileSha: string, link: AgentLink, startMs: number, refused: string[]): Promise<StatusBody> {
  const said = refused.length ? `; on reload it said:\n  - ${refused.join('\n  - ')}` : '';
  spawnSync('systemctl', ['reset-failed', SERVICE], { stdio: 'ignore' });
  const restart = spawnSync('systemctl', ['restart', SERVICE], { stdio: ['ignore', 'inherit', 'inherit'], timeout: startMs + 30_000 });
  if (restart.status !== 0) {
    throw new CliError(`systemctl restart ${SERVICE} failed: the agent does not start with ${link.configPath}${said}\nSee: ${JOURNAL_HINT}`);
  }
  const st = await waitForAgent(startMs, link);
  if (!st) return throwNoAnswer(link);
  if (st.config && st.config.sha256 !== fileSha) {
    throw new CliError(
      `after a restart the agent still does not run ${link.configPath}: it runs ${st.config.path} (sha256 ${st.config.sha256 ?? '-'}, ` +
        `generation ${st.config.generation})${said}; see: systemctl cat ${SERVICE}`,
    );
  }
  return st;
}

function throwNoAnswer(link: AgentLink): never {
  throw new CliError(`the agent stopped answering on ${link.socket}; see: ${JOURNAL_HINT}`);
}

/** Polls the status until the reload asked for after `before` is taken or refused, at most `ms`. */
async function settle(client: AgentClient, before: ConfigStatusBody, ms: number): Promise<ReloadOutcome> {
  const deadline = Date.now() + ms;
  for (;;) {
    const now = await client.status().catch(() => undefined);
    const outcome = now?.config ? reloadOutcome(before, now.config) : ({ kind: 'pending' } as const);
    if (outcome.kind !== 'pending' || Date.now() >= deadline) return outcome;
    await sleep(200);
  }
}
