/**
 * `pos-token-agent setup` (what pos-token-agent-provision runs): a technician's guided set-up on the
 * authority registry, as named steps. Asks for, or reads non-interactively, the account, authority, URLs,
 * device profile and credentials (setup-steps.ts, setup-device.ts); writes the config through the schema
 * (setup-config.ts); checks and stores the credentials with `provision --stdin` run as the agent's user (or in
 * the service's context when the unit has its key as a systemd credential; setup-runner.ts); runs doctor,
 * starts the units, makes the running agent run the new config (setup-agent.ts), and sums up.
 */
import { authorities, type AuthorityModule, type AuthorityRegistry } from '../../authorities/index.js';
import { DEFAULT_CONFIG_PATH } from '../../config/index.js';
import { CliError, type Io, println, unknownOption, UsageError } from '../common.js';
import { lookAtAgent, settleAgent, startTimeoutMs, startUnits, type AgentReport } from './setup-agent.js';
import { ConfigFile, type RawAccount } from './setup-config.js';
import { chooseDevice, givenIdentity, setIdentity, storeCredentials } from './setup-device.js';
import { makeRunner, NAME, runStep, systemdRunning } from './setup-runner.js';
import { accountChange, chooseAccount, chooseAuthority, chooseUrls, type SetupContext } from './setup-steps.js';
const { spawnSync } = process.getBuiltinModule('node:child_process');
const { existsSync, readFileSync, statSync } = process.getBuiltinModule('node:fs');
const { hostname } = process.getBuiltinModule('node:os');
const { join, resolve } = process.getBuiltinModule('node:path');

/** The values set-up takes besides credentials, by variable; flags win over --from FILE over the environment. */
const FLAG_VARS = {
  account: 'POS_ACCOUNT',
  authority: 'POS_AUTHORITY',
  'identity-url': 'POS_IDENTITY_URL',
  'api-url': 'POS_API_URL',
  profile: 'POS_PROFILE',
  serial: 'POS_SERIAL',
  'os-version': 'POS_OS_VERSION',
  'model-framework': 'POS_MODEL_FRAMEWORK',
} as const;
/** Keys of a --from JSON file, beside the variables' own names and the credential fields' names. */
const JSON_KEYS: Record<string, string> = {
  account: 'POS_ACCOUNT',
  authority: 'POS_AUTHORITY',
  identityUrl: 'POS_IDENTITY_URL',
  tokenUrl: 'POS_IDENTITY_URL',
  apiUrl: 'POS_API_URL',
  profile: 'POS_PROFILE',
  deviceProfile: 'POS_PROFILE',
  serial: 'POS_SERIAL',
  posserial: 'POS_SERIAL',
  osVersion: 'POS_OS_VERSION',
  pososversion: 'POS_OS_VERSION',
  modelFramework: 'POS_MODEL_FRAMEWORK',
  posmodelframework: 'POS_MODEL_FRAMEWORK',
};
const BOOLEAN_FLAGS = ['non-interactive', 'no-verify', 'no-systemctl', 'skip-doctor'] as const;
const PATH_FLAGS = ['from', 'config', 'root', 'user'] as const;

/** Every variable set-up reads: its own, then each authority's credential variables. */
function variables(registry: AuthorityRegistry): string[] {
  const vars: string[] = Object.values(FLAG_VARS);
  for (const m of registry.modules) for (const f of m.credentials) if (!vars.includes(f.env)) vars.push(f.env);
  return vars;
}

export function setupHelp(registry: AuthorityRegistry = authorities): string {
  const creds = registry.modules
    .map((m) => `${m.credentials.map((f) => f.env).join(', ')} (${m.name})`)
    .filter((line, i, all) => all.indexOf(line) === i)
    .join(';\n                        ');
  return `Usage: pos-token-agent-provision [options]          (pos-token-agent setup; run as root)

Sets up the token agent on this box, asking for what the config does not have yet:
  1. the account (default "default"), the authority, its service URL, and the API URL
     where the outbox and the proxy send the till's documents (the authority's known hosts
     are shown; Enter leaves it out);
  2. for authorities that send device headers, the device profile (detected with:
     pos-token-agent identity --detect), and for the "manual" profile the posserial /
     pososversion / posmodelframework values;
  3. the credentials, with hidden input (nothing is shown as you type). They never go on a
     command line: they are passed on standard input to "pos-token-agent provision --stdin",
     run as the agent's user, which checks them with one real login and stores them encrypted;
  4. runs "pos-token-agent doctor", enables and starts pos-token-agent.socket and .service,
     makes a running agent take the new config (systemctl reload, checked in its
     /v1/status; a restart when the reload did not take), and prints a short summary
     (account, authority, API, profile, serial, token expiry, agent).
A wrong answer is asked again, with the reason. Running it again rotates the credentials
(the new ones replace the old; the agent keeps serving its current token meanwhile) or
changes the account's settings, offering the stored URL, API URL and profile as defaults
([current value]; Enter keeps it); nothing else is lost. The config is written only if it
passes the agent's own validation, durably (fsync); if the check login fails, nothing is
stored and the config is left as it was. Set-up waits for the agent as long as its start
may take (the unit's TimeoutStartSec, 90 s), and fails if the agent does not run the new
config.

Authorities:
${registry.modules.map((m) => `  ${m.name.padEnd(16)} ${m.title}`).join('\n')}

Options:
  --account NAME        account name (env POS_ACCOUNT; default "default", or the only
                        account of the config)
  --authority NAME      one of the authorities above (env POS_AUTHORITY)
  --identity-url URL    the authority's service URL (for oauth2: the token endpoint)
                        (env POS_IDENTITY_URL)
  --api-url URL         the authority's API, where the outbox and the proxy send the till's
                        documents (env POS_API_URL):
${apiHints(registry)}
  --profile NAME        device profile, e.g. generic-x86, raspberry-pi, manual (env POS_PROFILE)
  --serial VALUE        posserial, kept in the config (env POS_SERIAL); with --os-version
                        (POS_OS_VERSION) and --model-framework (POS_MODEL_FRAMEWORK) these
                        are the "manual" profile's values, and override any profile's
  --non-interactive     ask nothing: values come from the options, --from FILE and the
                        environment (flags win over the file, the file over the environment).
                        Credentials: ${creds}
  --from FILE           read the values above from FILE: a JSON object (keys account,
                        authority, identityUrl, profile, serial, osVersion, modelFramework,
                        the credential fields (clientId, clientSecret, presharedKey, vat,
                        apiKey, ...), or the POS_* names) or an env file of POS_*=VALUE lines.
                        FILE must be readable by its owner only (0600 or 0400), else it is refused
  --config FILE         the agent's config (default ${DEFAULT_CONFIG_PATH})
  --root DIR            work on a tree installed with install.sh --root DIR: config in
                        DIR/etc/pos-token-agent; commands run as the invoking user; no systemctl
  --user USER           the agent's user that provisioning runs as (default pos-token-agent)
  --no-verify           store the credentials without the check login (offline installs)
  --no-systemctl        do not enable or start the units (print what would run)
  --skip-doctor         do not run pos-token-agent doctor
  -h, --help            this text

Environment: POS_TOKEN_AGENT_BIN  the pos-token-agent command the steps run (a program, or a
             .js file run with this node); default: this release's own.
             POS_NODE  the node pos-token-agent-provision runs (default: the release's own
             runtime, then node on PATH).

When the service takes its sealing key from a systemd credential (a drop-in with
LoadCredentialEncrypted=pos-token-agent.key:PATH), the steps that open the state (the check
login and storing, doctor) run in the service's context through systemd-run, with the same
credential, user and state directory, so that what they store is what the agent can read.

Exit status: 0 done, 1 failed (the message says what to do), 2 usage error.`;
}

interface SetupOptions {
  values: Map<string, string>;
  nonInteractive: boolean;
  verify: boolean;
  systemctl: boolean;
  doctor: boolean;
  from?: string;
  config?: string;
  root?: string;
  user: string;
}

/** Arguments by hand: every option of the script it replaces, and a secret on the command line refused. */
export function parseSetupArgs(argv: string[]): SetupOptions | 'help' {
  const opts: SetupOptions = { values: new Map(), nonInteractive: false, verify: true, systemctl: true, doctor: true, user: NAME };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '-h' || arg === '--help') return 'help';
    if (/^--(client-secret|preshared-key|api-key|secret|password)/.test(arg)) {
      throw new UsageError('secrets are never taken on the command line; use the prompt, --from FILE or the environment');
    }
    const name = arg.startsWith('--') ? arg.slice(2) : undefined;
    if (name !== undefined && (BOOLEAN_FLAGS as readonly string[]).includes(name)) {
      if (name === 'non-interactive') opts.nonInteractive = true;
      else if (name === 'no-verify') opts.verify = false;
      else if (name === 'no-systemctl') opts.systemctl = false;
      else opts.doctor = false;
      continue;
    }
    if (name !== undefined && (name in FLAG_VARS || (PATH_FLAGS as readonly string[]).includes(name))) {
      const value = argv[++i];
      if (value === undefined || value === '') throw new UsageError(`--${name} needs a value`);
      if (name in FLAG_VARS) opts.values.set(FLAG_VARS[name as keyof typeof FLAG_VARS], value);
      else if (name === 'user') opts.user = value;
      else opts[name as 'from' | 'config' | 'root'] = value;
      continue;
    }
    throw unknownOption(arg, [...Object.keys(FLAG_VARS), ...PATH_FLAGS, ...BOOLEAN_FLAGS, 'help']);
  }
  return opts;
}

// ---------------------------------------------------------------------------------------------------
// Values: the environment, --from FILE, flags

/** POS_* values from FILE: a JSON object or KEY=VALUE lines; refused unless only its owner can read it. */
export function readFromFile(file: string, registry: AuthorityRegistry, uid = process.getuid?.() ?? 0): Map<string, string> {
  let st;
  try {
    st = statSync(file);
  } catch {
    throw new CliError(`--from ${file}: no such file`);
  }
  if (!st.isFile()) throw new CliError(`--from ${file}: not a regular file`);
  const mode = (st.mode & 0o777).toString(8);
  if (st.mode & 0o077) throw new CliError(`--from ${file} is readable by others (mode ${mode}); it holds secrets: chmod 600 ${file}`);
  if (st.uid !== uid && st.uid !== 0) throw new CliError(`--from ${file} belongs to another user`);
  const text = readFileSync(file, 'utf8');
  const known = new Set(variables(registry));
  const byField = new Map<string, string>();
  for (const m of registry.modules) for (const f of m.credentials) byField.set(f.name, f.env);
  const out = new Map<string, string>();
  if (text.trimStart().startsWith('{')) {
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new CliError(`--from ${file} is not valid JSON`);
    }
    if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new CliError(`--from ${file} must hold one JSON object`);
    for (const [k, v] of Object.entries(json)) {
      const key = JSON_KEYS[k] ?? byField.get(k) ?? (known.has(k) ? k : undefined);
      if (!key) throw new CliError(`--from ${file}: unknown key ${JSON.stringify(k)}`);
      if (typeof v !== 'string' || /[\r\n]/.test(v)) throw new CliError(`--from ${file}: ${k} must be a one-line string`);
      out.set(key, v);
    }
    return out;
  }
  for (let line of text.split('\n')) {
    line = line.replace(/\r$/, '');
    if (line.trim() === '' || line.startsWith('#')) continue;
    line = line.replace(/^export /, '');
    const eq = line.indexOf('=');
    if (eq < 0) throw new CliError(`--from ${file}: not KEY=VALUE: a line starting ${line.slice(0, 12)}`);
    const key = line.slice(0, eq);
    let value = line.slice(eq + 1);
    if (value.length >= 2 && ((value.startsWith('"') && value.endsWith('"')) || (value.startsWith("'") && value.endsWith("'")))) {
      value = value.slice(1, -1);
    }
    if (!known.has(key)) throw new CliError(`--from ${file}: unknown key ${key}`);
    out.set(key, value);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// The set-up, as named steps

function until(iso: string, now = Date.now()): string | undefined {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return undefined;
  const when = `${new Date(t).toISOString().slice(0, 16).replace('T', ' ')} UTC`;
  const mins = Math.round((t - now) / 60_000);
  return t > now ? `${when} (in ${mins >= 120 ? `${Math.floor(mins / 60)} hours` : `${mins} minutes`})` : `${when} (expired)`;
}

export async function setupCommand(argv: string[], io: Io, registry: AuthorityRegistry = authorities): Promise<number> {
  const parsed = parseSetupArgs(argv);
  if (parsed === 'help') return println(io.stdout, setupHelp(registry)), 0;
  const ctx = resolveContext(parsed, io, registry);
  const { file } = ctx;
  let chosen: Chosen;
  try {
    chosen = await chooseSettings(ctx, parsed);
  } catch (err) {
    file.restore(io);
    throw err;
  }
  const doctor = await runDoctor(ctx, parsed.doctor);
  const agent = await applyToAgent(ctx, parsed, chosen.account);
  println(io.stdout, summary(ctx, parsed, chosen, doctor, agent));
  return 0;
}

interface Context extends SetupContext {
  root: string;
  user: string;
}

/** Where set-up works (--root, --config), how it runs the CLI, and the values it was given. */
function resolveContext(opts: SetupOptions, io: Io, registry: AuthorityRegistry): Context {
  let root = '';
  if (opts.root !== undefined) {
    root = resolve(opts.root).replace(/\/+$/, '');
    if (!existsSync(root) || !statSync(root).isDirectory()) throw new CliError(`--root ${root} is not a directory`);
    opts.systemctl = false;
  }
  const configPath = opts.config ?? `${root}/etc/${NAME}/config.json`;
  const runner = makeRunner(io, { user: opts.user, root, systemctl: opts.systemctl });
  // Values: the environment, then --from FILE, then flags.
  const values = new Map<string, string>();
  for (const k of variables(registry)) {
    const v = io.env[k];
    if (v) values.set(k, v);
  }
  if (opts.from !== undefined) for (const [k, v] of readFromFile(opts.from, registry)) values.set(k, v);
  for (const [k, v] of opts.values) values.set(k, v);
  const interactive = !opts.nonInteractive;
  if (interactive && !io.stdin.isTTY) {
    throw new CliError('standard input is not a terminal: run it in a terminal, or use --non-interactive with --from FILE or POS_* variables');
  }
  const file = new ConfigFile(configPath, registry, {
    socket: `${root}/run/${NAME}/agent.sock`,
    stateDir: `${root}/var/lib/${NAME}`,
    logLevel: 'info',
    accounts: {},
  });
  const say = (text: string): void => println(io.stderr, text);
  return { io, registry, interactive, value: (k) => values.get(k) || undefined, say, file, runner, configPath, root, user: opts.user };
}

interface Chosen {
  account: string;
  module: AuthorityModule;
  url: string;
  identityShown: Record<string, string>;
  /** Until when the token of the check login is valid, from provision's output ('' if unknown). */
  tokenUntil: string;
}

/** Steps 1 to 3: account, authority, URLs, device, credentials; the config is kept once they are stored. */
async function chooseSettings(ctx: Context, opts: SetupOptions): Promise<Chosen> {
  const account = await chooseAccount(ctx);
  const module = await chooseAuthority(ctx, account);
  const urls = await chooseUrls(ctx, account, module);
  const write = (change: (a: RawAccount) => void): void => ctx.file.update(account, change, ctx.runner.asAgent.length ? ctx.user : undefined);
  const given = givenIdentity(ctx);
  write((a) => {
    accountChange(module, ctx.registry, urls)(a);
    setIdentity(a, module, given);
  });
  const identityShown = await chooseDevice(ctx, account, module, write);
  const stored = await storeCredentials(ctx, account, module, urls.url, opts.verify);
  ctx.say(stored);
  handStateToTreeUser(ctx);
  ctx.file.keep();
  const lifetime = /valid for (\d+) s/.exec(stored);
  return { account, module, url: urls.url, identityShown, tokenUntil: lifetime ? new Date(Date.now() + Number(lifetime[1]) * 1000).toISOString() : '' };
}

/** Under --root as root the CLI ran as root: hand the state to the tree's service user, as runuser would have. */
function handStateToTreeUser(ctx: Context): void {
  const stateDir = ctx.file.read()?.stateDir as string | undefined;
  if (!ctx.root || process.getuid?.() !== 0 || !stateDir || !existsSync(join(ctx.root, 'etc/passwd'))) return;
  const entry = readFileSync(join(ctx.root, 'etc/passwd'), 'utf8').split('\n').find((l) => l.startsWith(`${ctx.user}:`));
  const [, , uid, gid] = entry?.split(':') ?? [];
  if (uid && gid) spawnSync('chown', ['-R', `${uid}:${gid}`, stateDir], { stdio: 'ignore' });
}

/** Step 4: pos-token-agent doctor, where the agent's state is its own; its problems stop set-up. */
async function runDoctor(ctx: Context, wanted: boolean): Promise<string> {
  if (!wanted) return 'skipped';
  ctx.say('Running pos-token-agent doctor ...');
  const r = await runStep(ctx.runner.agent, ['doctor', '--config', ctx.configPath], ctx.io, { timeoutMs: 300_000, stdoutTo: ctx.io.stderr });
  if (r.code === 0) return 'ok';
  if (r.code === 2) return 'not available in this version';
  throw new CliError('doctor found problems (above); the credentials are stored: fix them and run this again');
}

/**
 * Step 5: the units enabled and started, and the running agent made to run the file's config (checked in its
 * /v1/status); without systemd, one look at an agent that may run anyway.
 */
async function applyToAgent(ctx: Context, opts: SetupOptions, account: string): Promise<AgentReport> {
  const socket = (ctx.file.read()?.socket as string | undefined) ?? `/run/${NAME}/agent.sock`;
  const link = { socket, account, configPath: ctx.configPath, say: ctx.say };
  const waitMs = opts.systemctl && systemdRunning() ? startTimeoutMs() : 0;
  if (!startUnits(opts.systemctl, ctx.say, waitMs)) return lookAtAgent(link);
  return settleAgent(link, waitMs);
}

/** The closing summary: what was set up, and what the agent and doctor said. */
function summary(ctx: Context, opts: SetupOptions, chosen: Chosen, doctor: string, agent: AgentReport): string {
  const st = agent.status;
  const tokenUntil = st?.expires_at ?? chosen.tokenUntil;
  const shownUntil = tokenUntil ? until(tokenUntil) : undefined;
  let token = shownUntil ? `valid until ${shownUntil}` : 'unknown';
  if (!opts.verify && !st?.expires_at) token = 'none yet (stored without a check login)';
  const headers = chosen.module.deviceHeaders;
  const final = ctx.file.read()?.accounts?.[chosen.account] ?? {};
  const profileShown = typeof final.deviceProfile === 'string' ? final.deviceProfile : headers ? 'none (config values)' : 'none (no device headers)';
  const serial =
    st?.identity?.posserial ?? chosen.identityShown.posserial ?? ((final.identity as Record<string, string> | undefined)?.posserial || (headers ? 'unknown' : '-'));
  const api = typeof final.apiUrl === 'string' ? final.apiUrl : 'none (no outbox, no proxy)';
  return [
    '',
    '==================== pos-token-agent ====================',
    `  Box:         ${hostname()}`,
    `  Account:     ${chosen.account}`,
    `  Authority:   ${chosen.module.name}  (${chosen.url})`,
    `  API:         ${api}`,
    `  Profile:     ${profileShown}`,
    `  Serial:      ${serial}`,
    `  Token:       ${token}`,
    `  Agent:       ${agent.line}`,
    `  Doctor:      ${doctor}`,
    '=========================================================',
  ].join('\n');
}

/** Each authority's known API hosts (its module's `api.hint`), one line each, for --help. */
function apiHints(registry: AuthorityRegistry): string {
  return registry.modules
    .filter((m) => m.api?.hint)
    .map((m) => `${' '.repeat(24)}${m.name}: ${m.api!.hint!.replace(/^[^:]*: /, '')}`)
    .join('\n');
}
