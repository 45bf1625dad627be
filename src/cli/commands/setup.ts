/**
 * `pos-token-agent setup` (what pos-token-agent-provision runs): a technician's guided set-up on the
 * authority registry. Asks for, or reads non-interactively, the account, authority, URL, device profile
 * and credentials; writes the config through the schema; checks and stores the credentials with
 * `provision --stdin` run as the agent's user (or in the service's context when the unit has its key as
 * a systemd credential); runs doctor, starts the units, and sums up.
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { authorities, type AuthorityModule, type AuthorityRegistry } from '../../authorities/index.js';
import { ConfigError, DEFAULT_CONFIG_PATH } from '../../config/index.js';
import { createAgentClient, isAccountName, type AccountStatusBody } from '../../api/index.js';
import { CliError, type Io, println, unknownOption, UsageError } from '../common.js';
import { ask } from '../prompt.js';

const NAME = 'pos-token-agent';

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
  1. the account (default "default"), the authority and its service URL;
  2. for authorities that send device headers, the device profile (detected with:
     pos-token-agent identity --detect), and for the "manual" profile the posserial /
     pososversion / posmodelframework values;
  3. the credentials, with hidden input (nothing is shown as you type). They never go on a
     command line: they are passed on standard input to "pos-token-agent provision --stdin",
     run as the agent's user, which checks them with one real login and stores them encrypted;
  4. runs "pos-token-agent doctor", enables and starts pos-token-agent.socket and .service,
     and prints a short summary (account, authority, profile, serial, token expiry, agent).
Running it again rotates the credentials (the new ones replace the old; the agent keeps
serving its current token meanwhile) or changes the account's settings; nothing else is
lost. The config is written only if it passes the agent's own validation; if the check
login fails, nothing is stored and the config is left as it was.

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
// Running the agent's CLI for a step

interface Runner {
  /** The CLI as the invoking user. */
  self: string[];
  /** The CLI where the agent's state is its own: in the credential's context, else as the agent's user. */
  agent: string[];
}

function commandExists(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0;
}

function cliCommand(io: Io): string[] {
  const bin = io.env.POS_TOKEN_AGENT_BIN;
  if (!bin) return [process.execPath, process.argv[1]!];
  if (bin.endsWith('.js')) {
    if (!existsSync(bin)) throw new CliError(`${bin} not found (set POS_TOKEN_AGENT_BIN)`);
    return [process.execPath, bin];
  }
  if (!bin.includes('/') ? !commandExists(bin) : !existsSync(bin)) throw new CliError(`${bin} not found (set POS_TOKEN_AGENT_BIN)`);
  return [bin];
}

const systemdRunning = (): boolean => existsSync('/run/systemd/system') && commandExists('systemctl');

/** The unit's LoadCredential(Encrypted)= entries for the key, as systemd has the unit (drop-ins included). */
function credentialProperties(): string[] {
  const r = spawnSync('systemctl', ['cat', `${NAME}.service`], { encoding: 'utf8', timeout: 10_000 });
  if (r.status !== 0) return [];
  const props: string[] = [];
  for (const line of r.stdout.split('\n')) {
    if (/^LoadCredential(Encrypted)?=pos-token-agent\.key(:.*)?$/.test(line.trim())) props.push('-p', line.trim());
  }
  return props;
}

interface StepResult {
  code: number;
  stdout: string;
}

/** Runs one step, bounded in time; its stderr goes to ours unless `quiet`; `stdin` is written and closed. */
function runStep(
  command: string[],
  args: string[],
  io: Io,
  options: { stdin?: string; quiet?: boolean; timeoutMs: number; stdoutTo?: NodeJS.WritableStream },
): Promise<StepResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command[0]!, [...command.slice(1), ...args], {
      stdio: ['pipe', 'pipe', options.quiet ? 'ignore' : 'pipe'],
      env: io.env,
    });
    let stdout = '';
    child.stdout!.on('data', (c: Buffer) => {
      if (options.stdoutTo) options.stdoutTo.write(c);
      else stdout += c.toString();
    });
    child.stderr?.on('data', (c: Buffer) => io.stderr.write(c));
    const timer = setTimeout(() => child.kill('SIGTERM'), options.timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new CliError(`cannot run ${command.join(' ')}: ${err.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolvePromise({ code: code ?? (signal ? 1 : 0), stdout });
    });
    child.stdin!.on('error', () => undefined);
    child.stdin!.end(options.stdin ?? '');
  });
}

// ---------------------------------------------------------------------------------------------------
// The config: read as it is, written through the schema, restored if the credentials are not stored

type RawAccount = Record<string, unknown>;
interface RawConfig {
  accounts?: Record<string, RawAccount>;
  [key: string]: unknown;
}

class ConfigFile {
  private backup: string | undefined;
  private created = false;
  private touched = false;
  /** The content changed: a running agent must reload. */
  dirty = false;
  /** The config as last read or written here (null: not read yet); set-up is the only writer while it runs. */
  private content: RawConfig | undefined | null = null;

  constructor(
    readonly path: string,
    private readonly registry: AuthorityRegistry,
    private readonly skeleton: RawConfig,
  ) {}

  read(): RawConfig | undefined {
    if (this.content === null) this.content = this.load();
    return this.content;
  }

  private load(): RawConfig | undefined {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new CliError(`cannot read ${this.path} (${(err as NodeJS.ErrnoException).code}: run as root)`);
    }
    try {
      const json = JSON.parse(text) as unknown;
      if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error('not an object');
      return json as RawConfig;
    } catch {
      throw new CliError(`cannot read ${this.path}: it is not a JSON object; fix it or move it away`);
    }
  }

  /** Changes the account with `change`; the whole config must pass validation before it is written. */
  update(account: string, change: (a: RawAccount) => void, groupFor?: string): void {
    const before = this.read();
    const cfg: RawConfig = before ? structuredClone(before) : structuredClone(this.skeleton);
    cfg.accounts ??= {};
    const a: RawAccount = { ...cfg.accounts[account] };
    change(a);
    cfg.accounts[account] = a;
    if (before && JSON.stringify(cfg) === JSON.stringify(before)) return;
    try {
      this.registry.parseConfig(cfg, this.path, {});
    } catch (err) {
      if (err instanceof ConfigError) {
        throw new CliError(`the config would not be valid, so it was not changed:\n  - ${err.problems.join('\n  - ')}`);
      }
      throw err;
    }
    if (!this.touched) {
      this.touched = true;
      if (before) {
        this.backup = `${this.path}.provision-backup`;
        copyFileSync(this.path, this.backup);
      } else {
        this.created = true;
        if (!existsSync(dirname(this.path))) mkdirSync(dirname(this.path), { recursive: true, mode: 0o750 });
      }
    }
    const st = before ? statSync(this.path) : undefined;
    const tmp = `${this.path}.tmp.${process.pid}`;
    writeFileSync(tmp, `${JSON.stringify(cfg, null, 2)}\n`, { mode: 0o600 });
    chmodSync(tmp, st ? st.mode & 0o777 : 0o640);
    if (st) {
      try {
        chownSync(tmp, st.uid, st.gid);
      } catch {
        // not root: the file stays the invoking user's, as it was
      }
    }
    renameSync(tmp, this.path);
    this.content = cfg;
    this.dirty = true;
    // A config made here (no install.sh) must still be readable by the agent's group.
    if (!before && groupFor) spawnSync('chgrp', [groupFor, this.path, dirname(this.path)], { stdio: 'ignore' });
  }

  /** The credentials were stored: the config stays as written. */
  keep(): void {
    if (this.backup) rmSync(this.backup, { force: true });
    this.backup = undefined;
    this.touched = false;
    this.created = false;
  }

  /** Puts the config back as it was before this run, if it was changed. */
  restore(io: Io): void {
    if (!this.touched) return;
    if (this.backup) {
      copyFileSync(this.backup, this.path);
      rmSync(this.backup, { force: true });
    } else if (this.created) rmSync(this.path, { force: true });
    this.touched = false;
    this.content = null;
    println(io.stderr, 'provision: the config was left as it was');
  }
}

/** The account keys to keep when its authority changes: the common ones and those the new one takes. */
function keepForAuthority(a: RawAccount, module: AuthorityModule, registry: AuthorityRegistry): void {
  const others = new Set(registry.modules.flatMap((m) => Object.keys(m.options)));
  const own = new Set(Object.keys(module.options));
  for (const key of Object.keys(a)) {
    const deviceKey = key === 'deviceProfile' || key === 'identity';
    if ((others.has(key) && !own.has(key)) || (deviceKey && !module.deviceHeaders) || (key === 'loginsPerMinute' && !module.limits?.loginsPerMinute)) {
      delete a[key];
    }
  }
}

// ---------------------------------------------------------------------------------------------------
// The set-up

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
  const opts = parsed;
  const say = (text: string): void => println(io.stderr, text);
  const isRoot = process.getuid?.() === 0;

  let root = '';
  if (opts.root !== undefined) {
    root = resolve(opts.root).replace(/\/+$/, '');
    if (!existsSync(root) || !statSync(root).isDirectory()) throw new CliError(`--root ${root} is not a directory`);
    opts.systemctl = false;
  }
  const configPath = opts.config ?? `${root}/etc/${NAME}/config.json`;

  const cli = cliCommand(io);
  let asAgent: string[] = [];
  if (isRoot && !root) {
    if (spawnSync('id', ['-u', opts.user], { stdio: 'ignore' }).status !== 0) throw new CliError(`there is no user ${opts.user}; run install.sh first`);
    if (opts.user !== 'root') {
      if (!commandExists('runuser')) throw new CliError('runuser not found (util-linux)');
      asAgent = ['runuser', '-u', opts.user, '--'];
    }
  }
  const credProps = !root && opts.systemctl && isRoot && systemdRunning() ? credentialProperties() : [];
  const runner: Runner = {
    self: cli,
    agent: credProps.length
      ? [
          'systemd-run', '--quiet', '--pipe', '--wait', '--collect', '--service-type=exec',
          '-p', `User=${opts.user}`, '-p', `Group=${opts.user}`, '-p', 'SupplementaryGroups=dialout', '-p', 'UMask=0077',
          '-p', `StateDirectory=${NAME}`, '-p', 'StateDirectoryMode=0700', ...credProps, '--', ...cli,
        ]
      : [...asAgent, ...cli],
  };

  // Values: the environment, then --from FILE, then flags.
  const values = new Map<string, string>();
  for (const k of variables(registry)) {
    const v = io.env[k];
    if (v) values.set(k, v);
  }
  if (opts.from !== undefined) for (const [k, v] of readFromFile(opts.from, registry)) values.set(k, v);
  for (const [k, v] of opts.values) values.set(k, v);
  const value = (k: string): string | undefined => values.get(k) || undefined;

  const interactive = !opts.nonInteractive;
  if (interactive && !io.stdin.isTTY) {
    throw new CliError('standard input is not a terminal: run it in a terminal, or use --non-interactive with --from FILE or POS_* variables');
  }
  const question = async (text: string, fallback = ''): Promise<string> => {
    const answer = (await ask(io, fallback ? `${text} [${fallback}]: ` : `${text}: `, false)).trim();
    return answer || fallback;
  };
  const missing = (what: string, how: string): never => {
    throw new CliError(`${what} is missing: pass ${how} (non-interactive mode asks nothing)`);
  };

  // ---- 1. account, authority, URL
  const file = new ConfigFile(configPath, registry, {
    socket: `${root}/run/${NAME}/agent.sock`,
    stateDir: `${root}/var/lib/${NAME}`,
    logLevel: 'info',
    accounts: {},
  });
  const current = (): { cfg: RawConfig | undefined; account: RawAccount | undefined } => {
    const cfg = file.read();
    return { cfg, account: cfg?.accounts?.[account] };
  };
  const initial = file.read();
  const names = Object.keys(initial?.accounts ?? {});
  let account = value('POS_ACCOUNT') ?? (names.length === 1 ? names[0]! : '');
  if (!account) account = interactive ? await question('Account name (tills ask for "default")', 'default') : 'default';
  if (!isAccountName(account)) throw new CliError(`account name ${account}: use letters, digits, '.', '_', '-' (at most 64)`);

  const existing = current().account;
  const configuredAuthority = typeof existing?.authority === 'string' ? existing.authority : undefined;
  let authorityName = value('POS_AUTHORITY') ?? configuredAuthority ?? '';
  if (!authorityName) {
    if (!interactive) missing('the authority', '--authority or POS_AUTHORITY');
    say(`Authorities: ${registry.modules.map((m) => `${m.name} (${m.title})`).join(', ')}`);
    authorityName = await question('Authority', registry.names[0]);
  }
  const module = registry.get(authorityName);
  if (!module) throw new CliError(`unknown authority ${authorityName} (known: ${registry.names.join(', ')})`);
  const urlKey = module.endpoint.option;
  const configuredUrl = configuredAuthority === module.name && typeof existing?.[urlKey] === 'string' ? (existing[urlKey] as string) : undefined;
  let url = value('POS_IDENTITY_URL') ?? configuredUrl ?? '';
  if (!url) {
    if (!interactive) missing('the identity service URL', '--identity-url or POS_IDENTITY_URL');
    if (module.endpoint.hint) say(module.endpoint.hint);
    url = await question(module.endpoint.label);
  }
  if (!url) throw new CliError('no identity service URL given');
  // The API, for the outbox and the proxy: only when given (set-up asks for it by option, not by prompt).
  const apiUrl = value('POS_API_URL');

  // ---- 2. device profile and identity values (authorities that send device headers)
  const headers = module.deviceHeaders;
  let profile = value('POS_PROFILE') ?? '';
  const given: Record<string, string | undefined> = {
    posserial: value('POS_SERIAL'),
    pososversion: value('POS_OS_VERSION'),
    posmodelframework: value('POS_MODEL_FRAMEWORK'),
  };
  const writeAccount = (change: (a: RawAccount) => void): void => {
    try {
      file.update(account, change, asAgent.length ? opts.user : undefined);
    } catch (err) {
      file.restore(io);
      throw err;
    }
  };
  const setIdentity = (a: RawAccount): void => {
    if (!headers) return;
    const identity: Record<string, string> = { ...(a.identity as Record<string, string> | undefined) };
    for (const f of headers.fields) if (given[f]) identity[f] = given[f]!;
    if (Object.keys(identity).length) a.identity = identity;
  };
  const anyGiven = headers?.fields.some((f) => given[f]) ?? false;
  if (configuredAuthority !== module.name || configuredUrl !== url || anyGiven || (apiUrl !== undefined && existing?.apiUrl !== apiUrl)) {
    writeAccount((a) => {
      if (a.authority !== module.name) keepForAuthority(a, module, registry);
      a.authority = module.name;
      if (urlKey !== 'identityUrl') delete a.identityUrl;
      a[urlKey] = url;
      if (apiUrl !== undefined) a.apiUrl = apiUrl;
      setIdentity(a);
    });
  }

  let identityShown: Record<string, string> = {};
  if (headers) {
    const now = current().account ?? {};
    const configured = (now.identity ?? {}) as Record<string, string>;
    if (!profile && typeof now.deviceProfile !== 'string' && !configured.posserial && !given.posserial) {
      const detected: string[] = [];
      const r = await runStep(runner.agent, ['identity', '--detect', '--json', '--config', configPath], io, { quiet: true, timeoutMs: 120_000 });
      try {
        for (const m of (JSON.parse(r.stdout) as { matches?: Array<{ profile: string; description?: string }> }).matches ?? []) {
          detected.push(m.profile);
          say(`  detected device profile: ${m.profile}  (${m.description ?? ''})`);
        }
      } catch {
        // nothing detected
      }
      if (interactive) {
        if (!detected.length) say('No device profile matches this hardware; "manual" takes the values from you.');
        profile = await question('Device profile', detected[0] ?? 'manual');
      } else {
        if (!detected.length) missing('the device profile (none detected)', '--profile or POS_PROFILE (manual with POS_SERIAL...)');
        profile = detected[0]!;
      }
    }
    const effectiveProfile = profile || (typeof now.deviceProfile === 'string' ? now.deviceProfile : '');
    if (effectiveProfile === 'manual' && !given.posserial && !configured.posserial && headers.required.includes('posserial')) {
      if (!interactive) missing('posserial (manual profile)', '--serial or POS_SERIAL');
      given.posserial = await question('POS serial number (posserial)');
      given.pososversion = await question('POS OS version (pososversion)', configured.pososversion ?? '');
      given.posmodelframework = await question('POS model/framework (posmodelframework)', configured.posmodelframework ?? '1');
    }
    if (profile || headers.fields.some((f) => given[f])) {
      writeAccount((a) => {
        if (profile) a.deviceProfile = profile;
        setIdentity(a);
      });
    }
    const r = await runStep(runner.agent, ['identity', '--account', account, '--json', '--config', configPath], io, { quiet: true, timeoutMs: 120_000 });
    try {
      const j = JSON.parse(r.stdout) as { values?: Record<string, { value?: string }>; errors?: Record<string, string> };
      for (const [f, v] of Object.entries(j.values ?? {})) if (v.value) identityShown[f] = v.value;
      if (identityShown.posserial) {
        say(
          `Identity of this box: posserial ${identityShown.posserial}, pososversion ${identityShown.pososversion ?? '-'}, posmodelframework ${identityShown.posmodelframework ?? '-'}`,
        );
      }
      const errors = Object.entries(j.errors ?? {});
      if (errors.length) say(`Identity problem: ${errors[0]![0]}: ${errors[0]![1]}`);
    } catch {
      identityShown = {};
    }
  }

  // ---- 3. credentials, to `provision --stdin` (never on a command line)
  const credentials: Record<string, string> = {};
  for (const f of module.credentials) {
    let v = value(f.env) ?? '';
    if (!v && interactive) v = (await ask(io, `${f.label}${f.required ? '' : ' (Enter to leave out)'}: `, f.secret)).trim();
    if (!v) {
      if (!f.required) continue;
      file.restore(io);
      missing(f.name, `${f.env} (or --from FILE)`);
    }
    if (/[\x00-\x1f\x7f]/.test(v)) {
      file.restore(io);
      throw new CliError(`${f.name} contains control characters`);
    }
    credentials[f.name] = v;
  }
  say(opts.verify ? `Checking the credentials with a login to ${url} ...` : 'Storing the credentials without a check login (--no-verify) ...');
  const stored = await runStep(
    runner.agent,
    ['provision', '--account', account, '--stdin', '--config', configPath, ...(opts.verify ? [] : ['--no-verify'])],
    io,
    { stdin: JSON.stringify(credentials), timeoutMs: 180_000 },
  );
  if (stored.code !== 0) {
    file.restore(io);
    throw new CliError('the credentials were not stored (see the message above); fix and run this again');
  }
  say(stored.stdout.trim());
  const stateDir = (current().cfg?.stateDir as string | undefined) ?? undefined;
  // Under --root as root the CLI ran as root: hand the state to the tree's service user, as runuser would have.
  if (root && isRoot && stateDir && existsSync(join(root, 'etc/passwd'))) {
    const entry = readFileSync(join(root, 'etc/passwd'), 'utf8').split('\n').find((l) => l.startsWith(`${opts.user}:`));
    const [, , uid, gid] = entry?.split(':') ?? [];
    if (uid && gid) spawnSync('chown', ['-R', `${uid}:${gid}`, stateDir], { stdio: 'ignore' });
  }
  file.keep();
  const lifetime = /valid for (\d+) s/.exec(stored.stdout);
  let tokenUntil = lifetime ? new Date(Date.now() + Number(lifetime[1]) * 1000).toISOString() : '';

  // ---- 4. doctor, the units, the summary
  let doctorResult = 'skipped';
  if (opts.doctor) {
    say('Running pos-token-agent doctor ...');
    const r = await runStep(runner.agent, ['doctor', '--config', configPath], io, { timeoutMs: 300_000, stdoutTo: io.stderr });
    if (r.code === 0) doctorResult = 'ok';
    else if (r.code === 2) doctorResult = 'not available in this version';
    else throw new CliError('doctor found problems (above); the credentials are stored: fix them and run this again');
  }

  let agentNote = '';
  if (opts.systemctl && systemdRunning()) {
    const wasActive = spawnSync('systemctl', ['is-active', '--quiet', `${NAME}.service`]).status === 0;
    spawnSync('systemctl', ['reset-failed', `${NAME}.socket`, `${NAME}.service`], { stdio: 'ignore' });
    const enabled = spawnSync('systemctl', ['enable', '--now', `${NAME}.socket`, `${NAME}.service`], { stdio: ['ignore', 'inherit', 'inherit'], timeout: 120_000 });
    if (enabled.status !== 0) throw new CliError(`systemctl enable --now ${NAME}.socket ${NAME}.service failed (above)`);
    // A running agent reads the new account settings on reload; new credentials it finds itself.
    if (wasActive && file.dirty) spawnSync('systemctl', ['reload', `${NAME}.service`], { stdio: 'inherit', timeout: 60_000 });
  } else {
    agentNote = 'not started here';
    say(`would run: systemctl enable --now ${NAME}.socket ${NAME}.service`);
  }

  const socket = (current().cfg?.socket as string | undefined) ?? `/run/${NAME}/agent.sock`;
  const client = createAgentClient({ socket, timeoutMs: 5_000 });
  const status = async (): Promise<AccountStatusBody | undefined> => {
    if (!existsSync(socket)) return undefined;
    try {
      return await client.accountStatus(account);
    } catch {
      return undefined;
    }
  };
  let st = await status();
  if (!agentNote) {
    for (let i = 0; i < 30 && st?.state !== 'fresh' && st?.state !== 'stale'; i++) {
      await new Promise((r) => setTimeout(r, 1_000));
      st = await status();
    }
  }
  let agent: string;
  if (st?.state) {
    agent = `running; account ${account} is ${st.state}${st.last_error ? ` (${st.last_error.reason}: ${st.last_error.message})` : ''}`;
    if (st.expires_at) tokenUntil = st.expires_at;
  } else agent = `not answering${agentNote ? ` (${agentNote})` : ''}`;
  let token = 'unknown';
  const shownUntil = tokenUntil ? until(tokenUntil) : undefined;
  if (shownUntil) token = `valid until ${shownUntil}`;
  if (!opts.verify && !st?.expires_at) token = 'none yet (stored without a check login)';

  const final = current().account ?? {};
  const profileShown = typeof final.deviceProfile === 'string' ? final.deviceProfile : headers ? 'none (config values)' : 'none (no device headers)';
  const serial =
    st?.identity?.posserial ?? identityShown.posserial ?? ((final.identity as Record<string, string> | undefined)?.posserial || (headers ? 'unknown' : '-'));
  println(
    io.stdout,
    [
      '',
      '==================== pos-token-agent ====================',
      `  Box:         ${hostname()}`,
      `  Account:     ${account}`,
      `  Authority:   ${module.name}  (${url})`,
      `  Profile:     ${profileShown}`,
      `  Serial:      ${serial}`,
      `  Token:       ${token}`,
      `  Agent:       ${agent}`,
      `  Doctor:      ${doctorResult}`,
      '=========================================================',
    ].join('\n'),
  );
  return 0;
}

/** Each authority's known API hosts (its module's `api.hint`), one line each, for --help. */
function apiHints(registry: AuthorityRegistry): string {
  return registry.modules
    .filter((m) => m.api?.hint)
    .map((m) => `${' '.repeat(24)}${m.name}: ${m.api!.hint!.replace(/^[^:]*: /, '')}`)
    .join('\n');
}
