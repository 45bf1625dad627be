/**
 * `doctor`: what is wrong on this box and how to fix it. Each check says what it looked at and,
 * when it fails, what to do. Checks that depend on a failed one are reported as not run.
 *
 * Order: config; state (directory, key, database, permissions); per account: device identity,
 * stored credentials, network (DNS, TCP, TLS, clock, proxy), credentials accepted, and with an apiUrl the
 * API's network (DNS, TCP, TLS); the outbox database; the socket.
 */
import { existsSync, lstatSync, statSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { isUsableState, type AccountStatusBody, type AgentClient } from '../api/index.js';
import {
  authorities,
  basicEncodingsDiffer,
  createHttpClient,
  describeBasicEncoding,
  isSilentRefusal,
  type AuthorityModule,
  type AuthorityRegistry,
  type Credentials,
  type HttpClient,
  type LoginInterop,
  type LoginResult,
} from '../authorities/index.js';
import { ConfigError, type AccountConfig, type AgentConfig } from '../config/index.js';
import {
  createIdentityReader,
  identityProblem,
  ProfileError,
  ProfileNotFoundError,
  requiredFields,
  sendsDeviceHeaders,
  toDeviceIdentity,
  type IdentityReading,
} from '../identity/index.js';
import { managedBySystemd, serviceHints, shellQuote } from '../lib/service.js';
import { stateAccess, type StateAccess, type StateDeps } from '../state.js';
import { DB_FILE, inspectOutbox, openStore, SecretKeyError, StoreError, type OutboxInspection, type Store } from '../store/index.js';
import { checkNetwork } from './network.js';

export type CheckStatus = 'ok' | 'warn' | 'fail' | 'skipped';

export interface DoctorCheck {
  /** e.g. "config", "state.key", "default.identity", "default.tls", "socket". */
  name: string;
  status: CheckStatus;
  /** What was found (ok, skipped) or what is wrong (warn, fail). */
  detail: string;
  /** What to do about it (warn, fail). */
  fix?: string;
}

export interface DoctorReport {
  ok: boolean;
  checks: DoctorCheck[];
}

export interface DoctorOptions extends StateDeps {
  configPath: string;
  env?: NodeJS.ProcessEnv;
  http?: HttpClient;
  now?: () => number;
  /** Skip the login that checks credentials (it counts against the authority's limits). */
  noLogin?: boolean;
  timeoutMs?: number;
  /** The running agent's client for a socket (the CLI passes the api's); without it the agent is not consulted. */
  agent?: (socket: string) => AgentView;
  /** Whether systemd runs the agent of this config, for the hints; default: looked up on this box. */
  managedBySystemd?: boolean;
  /** The authorities to check accounts against (the built-in ones by default). */
  authorities?: AuthorityRegistry;
  /** The --config the command was given, repeated in the commands the hints suggest. */
  configFlag?: string;
}

/** What doctor asks a running agent. */
export type AgentView = Pick<AgentClient, 'accountStatus' | 'health'>;

const PROVISION = (account: string): string => `pos-token-agent provision --account ${account}`;

export async function runDoctor(options: DoctorOptions): Promise<DoctorReport> {
  const env = options.env ?? process.env;
  const now = options.now ?? Date.now;
  const registry = options.authorities ?? authorities;
  const checks: DoctorCheck[] = [];
  const add = (c: DoctorCheck): void => void checks.push(c);

  // ---- config -------------------------------------------------------------------------------
  let config: AgentConfig;
  try {
    config = registry.loadConfig(options.configPath, env);
    const names = Object.keys(config.accounts);
    add(
      names.length
        ? { name: 'config', status: 'ok', detail: `${config.source} is valid: ${names.length} account(s): ${names.join(', ')}` }
        : {
            name: 'config',
            status: 'fail',
            detail: `${config.source} is valid but has no accounts yet`,
            fix: 'run pos-token-agent-provision (or add an account to the config and run pos-token-agent provision)',
          },
    );
  } catch (err) {
    const problems = err instanceof ConfigError ? err.problems.join('; ') : (err as Error).message;
    add({
      name: 'config',
      status: 'fail',
      detail: `${options.configPath}: ${problems}`,
      fix: `edit ${options.configPath} (every key: "Configuration" in docs/operations.md), then run doctor again`,
    });
    return finish(checks, options.configFlag);
  }

  // ---- state --------------------------------------------------------------------------------
  // Doctor only looks: it never creates the state directory, the database or the key (run as root,
  // it would leave files the agent's user cannot open).
  const first = Object.keys(config.accounts)[0] ?? 'default';
  const access = await stateAccess(config, { ...options, env });
  // Modes are read before the database is opened: opening it tightens the database file's mode.
  const permissions = statePermissions(config.stateDir, access.keyFile, access.keySource, first);
  const state = openState(config, access, first);
  if (state.keyLost) {
    const i = permissions.findIndex((c) => c.name === 'state.key' && c.status !== 'fail');
    if (i >= 0) permissions[i] = state.keyLost;
  }
  checks.push(...permissions);
  if (access.machineIdProblem) {
    add({
      name: 'state.machine-id',
      status: 'warn',
      detail: `secrets are sealed with the key alone, not bound to this machine: ${access.machineIdProblem}`,
      fix: 'make sure /etc/machine-id holds this box\'s id (systemd-machine-id-setup), then re-provision',
    });
  }
  add(state.check);
  const { store, noStore } = state;

  let ownHttp: ReturnType<typeof createHttpClient> | undefined;
  try {
    const http = options.http ?? (ownHttp = createHttpClient({ proxy: config.proxy, env }));
    const reader = createIdentityReader({
      profileDirs: config.deviceProfileDirs,
      root: config.identityRoot,
      env,
      ...(options.machineId ? { machineId: options.machineId } : {}),
      ...(options.hostname ? { hostname: options.hostname } : {}),
    });
    for (const account of Object.values(config.accounts)) {
      const ctx: AccountContext = { config, store, noStore, http, reader, now, env, options, add, registry };
      await checkAccount(account, ctx);
      await checkApi(account, ctx);
    }
  } finally {
    store?.close();
    ownHttp?.close();
  }
  const outbox = outboxCheck(config, now());
  if (outbox) add(outbox);

  // ---- socket -------------------------------------------------------------------------------
  checks.push(await socketCheck(config.socket, options));
  return finish(checks, options.configFlag);
}

interface StateOpened {
  store?: Store;
  /** Without a store: what the credentials checks say instead. */
  noStore: NoStore;
  check: DoctorCheck;
  /** Replaces the key check when the database was sealed with a key that is gone. */
  keyLost?: DoctorCheck;
}

interface NoStore {
  status: 'fail' | 'skipped';
  why: string;
}

/** Opens the state database without creating anything: no directory, database or key is made here. */
function openState(config: AgentConfig, access: StateAccess, first: string): StateOpened {
  const dbPath = join(config.stateDir, DB_FILE);
  if (!existsSync(config.stateDir)) {
    const why = 'the state directory does not exist';
    return { noStore: { status: 'skipped', why }, check: { name: 'state.database', status: 'skipped', detail: `not checked: ${why}` } };
  }
  if (!existsSync(dbPath)) {
    return {
      noStore: { status: 'fail', why: 'nothing has been provisioned on this box (no state database)' },
      check: {
        name: 'state.database',
        status: 'warn',
        detail: `no state database at ${dbPath} yet (made at the first provisioning)`,
        fix: `run: ${PROVISION(first)}`,
      },
    };
  }
  const noStore: NoStore = { status: 'skipped', why: 'the state database cannot be opened' };
  let store: Store;
  try {
    store = openStore({ ...access.options, createKey: false });
  } catch (err) {
    const check: DoctorCheck = { name: 'state.database', status: 'fail', ...stateFailure(err, dbPath, config) };
    if (!(err instanceof SecretKeyError && err.kind === 'missing' && access.keySource === 'key file')) return { noStore, check };
    return {
      noStore,
      check,
      keyLost: {
        name: 'state.key',
        status: 'fail',
        detail: `${access.keyFile} is missing, but ${dbPath} was sealed with it: the stored credentials cannot be read`,
        fix:
          `restore ${access.keyFile} from a backup (mode 0600, owned by the state directory's owner), ` +
          `or re-provision every account (${PROVISION(first)})`,
      },
    };
  }
  const integrity = store.integrityCheck();
  return {
    store,
    noStore,
    check:
      integrity === 'ok'
        ? { name: 'state.database', status: 'ok', detail: `${store.path} opens; integrity_check ok` }
        : {
            name: 'state.database',
            status: 'fail',
            detail: `${store.path}: integrity_check says ${integrity.slice(0, 200)}`,
            fix: 'stop the agent, move the database aside and re-provision every account',
          },
  };
}

/**
 * The report, its hints naming the config doctor was given: when doctor was given `--config PATH`, every
 * command it suggests (provision, identity, doctor) gets it too, so that it acts on the same config. (A config
 * from $POS_TOKEN_AGENT_CONFIG or the default place is what those commands find by themselves.)
 */
function finish(checks: DoctorCheck[], configFlag: string | undefined): DoctorReport {
  if (configFlag !== undefined) {
    const flag = ` --config ${shellQuote(configFlag)}`;
    for (const c of checks) {
      if (c.fix) c.fix = c.fix.replace(/\bpos-token-agent (provision|identity|doctor|outbox)\b(?! --config)/g, `pos-token-agent $1${flag}`);
    }
  }
  return { ok: !checks.some((c) => c.status === 'fail'), checks };
}

interface AccountContext {
  config: AgentConfig;
  store: Store | undefined;
  noStore: NoStore;
  http: HttpClient;
  reader: ReturnType<typeof createIdentityReader>;
  now: () => number;
  env: NodeJS.ProcessEnv;
  options: DoctorOptions;
  add: (c: DoctorCheck) => void;
  registry: AuthorityRegistry;
}

async function checkAccount(account: AccountConfig, ctx: AccountContext): Promise<void> {
  const { add, store, options } = ctx;
  const n = account.name;
  const module = ctx.registry.module(account.authority);

  // Identity
  let reading: IdentityReading | undefined;
  let identityOk = true;
  if (sendsDeviceHeaders(module.deviceHeaders)) {
    try {
      reading = await ctx.reader.read(account);
      const problem = identityProblem(account, reading, requiredFields(module.deviceHeaders));
      const shown = Object.entries(reading.values)
        .map(([f, v]) => `${f}=${v.value} (${v.source})`)
        .join(', ');
      if (problem) identityOk = false;
      add(
        problem
          ? {
              name: `${n}.identity`,
              status: 'fail',
              detail: problem,
              fix: `run: pos-token-agent identity --account ${n}; fix the profile's source or set accounts.${n}.identity in the config`,
            }
          : { name: `${n}.identity`, status: 'ok', detail: `profile ${reading.profile ?? '(none: config values)'}: ${shown}` },
      );
    } catch (err) {
      identityOk = false;
      const detect = 'pos-token-agent identity --detect lists the ones that fit this box';
      add(
        err instanceof ProfileNotFoundError
          ? {
              name: `${n}.identity`,
              status: 'fail',
              detail: err.message,
              fix: `set accounts.${n}.deviceProfile in the config to a profile that exists (${detect}), or add ${err.profile}.json to one of those directories`,
            }
          : err instanceof ProfileError
            ? {
                name: `${n}.identity`,
                status: 'fail',
                detail: `invalid device profile ${err.file}: ${err.problems.join('; ')}`,
                fix: `fix ${err.file} as listed, or set accounts.${n}.deviceProfile to another profile (${detect})`,
              }
            : {
                name: `${n}.identity`,
                status: 'fail',
                detail: `cannot read the identity: ${(err as Error).message}`,
                fix: `run: pos-token-agent identity --account ${n}; or set accounts.${n}.deviceProfile to another profile (${detect})`,
              },
      );
    }
  }

  // Stored credentials
  let credentials: Credentials | undefined;
  let interop: LoginInterop | undefined;
  if (!store) {
    add(
      ctx.noStore.status === 'fail'
        ? { name: `${n}.credentials`, status: 'fail', detail: `account ${n} has no credentials: ${ctx.noStore.why}`, fix: `run: ${PROVISION(n)}` }
        : { name: `${n}.credentials`, status: 'skipped', detail: `not checked: ${ctx.noStore.why}` },
    );
  } else {
    try {
      const stored = store.getCredentials(n);
      if (!stored) {
        add({ name: `${n}.credentials`, status: 'fail', detail: `account ${n} has no credentials`, fix: `run: ${PROVISION(n)}` });
      } else if (stored.authority !== account.authority) {
        add({
          name: `${n}.credentials`,
          status: 'fail',
          detail: `credentials were provisioned for ${stored.authority}, the config says ${account.authority}`,
          fix: `run: ${PROVISION(n)}`,
        });
      } else if (module.credentials.some((f) => f.required && !stored.credentials[f.name])) {
        const missing = module.credentials.filter((f) => f.required && !stored.credentials[f.name]).map((f) => f.name);
        add({
          name: `${n}.credentials`,
          status: 'fail',
          detail: `the stored credentials have no ${missing.join(' and ')} (required for ${account.authority})`,
          fix: `run: ${PROVISION(n)}`,
        });
      } else {
        credentials = stored.credentials;
        interop = stored.interop;
        add({
          name: `${n}.credentials`,
          status: 'ok',
          detail: `stored (encrypted), provisioned ${new Date(stored.updatedAt).toISOString()}`,
        });
      }
    } catch (err) {
      add({ name: `${n}.credentials`, status: 'fail', ...stateFailure(err, store.path, ctx.config) });
    }
  }

  // Network
  const option = account[module.endpoint.option];
  const url = typeof option === 'string' ? option : account.identityUrl;
  const network = await checkNetwork({
    url,
    account: n,
    tls: account.tls,
    proxy: ctx.config.proxy,
    env: ctx.env,
    http: ctx.http,
    now: ctx.now,
    ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
  });
  let networkOk = true;
  for (const step of network) {
    const r = step.result;
    // A clock far off is worth reporting, but the login can still tell whether the credentials work.
    if (!r.ok && step.name !== 'clock') networkOk = false;
    add(
      r.ok
        ? { name: `${n}.${step.name}`, status: r.skipped ? 'skipped' : 'ok', detail: `${step.target}: ${r.detail}` }
        : { name: `${n}.${step.name}`, status: 'fail', detail: `${step.target}: ${r.problem}`, fix: r.fix },
    );
  }

  // Credentials accepted: what the running agent saw, else one real login.
  const name = `${n}.login`;
  const fromAgent = await agentView(ctx.config.socket, n, options);
  if (fromAgent) {
    add({ name, ...fromAgent });
  } else if (options.noLogin) {
    add({ name, status: 'skipped', detail: 'not checked (--no-login)' });
  } else if (!credentials || !networkOk || !identityOk) {
    add({ name, status: 'skipped', detail: 'not checked: an earlier check of this account failed' });
  } else {
    const authority = ctx.registry.create(account.authority, { http: ctx.http, now: ctx.now });
    // As the agent would: what its logins learned (the Basic encoding) is tried first.
    const result = await authority.login({
      account,
      credentials,
      identity: reading ? toDeviceIdentity(reading) : { ...account.identity },
      ...(interop ? { interop } : {}),
    });
    add(
      result.ok
        ? { name, status: 'ok', detail: `one login succeeded: a token valid for ${result.token.expiresInS} s${basicNote(result, credentials)}` }
        : {
            name,
            status: result.failure.reason === 'credentials_rejected' ? 'fail' : 'warn',
            detail: `login failed (${result.failure.reason}): ${result.failure.message}`,
            fix:
              result.failure.reason === 'credentials_rejected'
                ? isSilentRefusal(result.failure)
                  ? silentRefusalFix(module, n)
                  : `check the values on the authority's portal and run: ${PROVISION(n)}`
                : 'the authority is busy or unreachable; try again later (the agent retries by itself)',
          },
    );
  }
}

/**
 * The account's API (apiUrl, where the proxy and the outbox send): DNS, TCP and TLS as for the token service,
 * named `<account>.api.<step>`. No clock check (the token service's compared it) and no request to the API.
 */
async function checkApi(account: AccountConfig, ctx: AccountContext): Promise<void> {
  if (!account.apiUrl) return;
  const n = account.name;
  const network = await checkNetwork({
    url: account.apiUrl,
    account: n,
    tls: account.tls,
    proxy: ctx.config.proxy,
    env: ctx.env,
    http: ctx.http,
    now: ctx.now,
    checkClock: false,
    ...(ctx.options.timeoutMs !== undefined ? { timeoutMs: ctx.options.timeoutMs } : {}),
  });
  const why = `accounts.${n}.apiUrl is where the proxy and the outbox send: until it answers, /v1/proxy answers 502 and outbox entries wait queued`;
  for (const step of network) {
    const r = step.result;
    ctx.add(
      r.ok
        ? { name: `${n}.api.${step.name}`, status: r.skipped ? 'skipped' : 'ok', detail: `${step.target}: ${r.detail}` }
        : { name: `${n}.api.${step.name}`, status: 'fail', detail: `${step.target}: ${r.problem}`, fix: `${r.fix} (${why})` },
    );
  }
}

/**
 * outbox.db, when there is one: readable and sound, what it holds, and whether an account's oldest waiting entry
 * is older than outbox.alertAfterS (then /v1/health says outbox_stalled). Read only: see inspectOutbox.
 */
function outboxCheck(config: AgentConfig, nowMs: number): DoctorCheck | undefined {
  const name = 'state.outbox';
  let found: OutboxInspection | undefined;
  try {
    found = inspectOutbox(config.stateDir);
  } catch (err) {
    return {
      name,
      status: 'fail',
      detail: (err as Error).message,
      fix: "run doctor as root or as the agent's user; if it still cannot be read, stop the agent and keep a copy of outbox.db for a support case (it may hold receipts not yet delivered)",
    };
  }
  if (!found) return undefined;
  if (found.integrity !== 'ok') {
    return {
      name,
      status: 'fail',
      detail: `${found.path}: integrity_check says ${found.integrity.slice(0, 200)}`,
      fix: 'stop the agent and keep a copy of outbox.db and its -wal file for a support case: it may hold receipts not yet delivered',
    };
  }
  const b = found.byState;
  const waiting = Object.entries(found.waiting);
  const total = b.queued + b.sending;
  const oldest = waiting.reduce<number | null>((m, [, w]) => (m === null || w.oldestAt < m ? w.oldestAt : m), null);
  const ageS = (at: number): number => Math.max(0, Math.floor((nowMs - at) / 1000));
  const held = `${total} waiting${oldest === null ? '' : ` (oldest ${formatAge(ageS(oldest))})`}, ${b.delivered} delivered, ${b.rejected} rejected, ${b.cancelled} cancelled`;
  const late = waiting.filter(([, w]) => nowMs - w.oldestAt > config.outbox.alertAfterMs).map(([account]) => account);
  if (late.length === 0) return { name, status: 'ok', detail: `${found.path}: integrity_check ok; ${held}` };
  return {
    name,
    status: 'warn',
    detail:
      `${found.path}: entries of ${late.join(', ')} have waited longer than outbox.alertAfterS (${formatAge(config.outbox.alertAfterMs / 1000)}): ${held}`,
    fix:
      'see what waits and its last error: pos-token-agent outbox list --state queued; check the api checks above ' +
      `(${late.map((a) => `${a}.api.*`).join(', ')}) and pos-token-agent status (each account's outbox line)`,
  };
}

/** An age for people: "45 s", "12 min", "3 h", "2 d". */
function formatAge(s: number): string {
  if (s < 120) return `${Math.floor(s)} s`;
  if (s < 7200) return `${Math.floor(s / 60)} min`;
  if (s < 172_800) return `${Math.floor(s / 3600)} h`;
  return `${Math.floor(s / 86_400)} d`;
}

/** Which Basic encoding of the client ID and secret the server accepted, for a login that used Basic. */
function basicNote(result: LoginResult, credentials: Credentials): string {
  const encoding = result.ok ? result.interop?.basicAuthEncoding : undefined;
  if (encoding === undefined) return '';
  if (!basicEncodingsDiffer(credentials)) {
    return '; client_secret_basic (the client ID and secret read the same in either Basic encoding)';
  }
  return `; the server accepted client_secret_basic with ${describeBasicEncoding(encoding)} of the client ID and secret`;
}

/** A refusal without a reason: the account options that commonly cause one, among those its authority takes. */
function silentRefusalFix(module: AuthorityModule, account: string): string {
  const options = ['clientAuth', 'scope', 'basicAuthEncoding'].filter((o) => o in module.options).map((o) => `accounts.${account}.${o}`);
  const listed = options.length > 1 ? `${options.slice(0, -1).join(', ')} and ${options.at(-1)}` : options[0];
  return (
    `the server gave no reason: check the client ID and secret (${PROVISION(account)})` +
    (listed ? `, and ${listed} against the client's registration on the server` : '')
  );
}

/** The running agent's view of an account, when an agent answers on the socket. */
async function agentView(
  socket: string,
  account: string,
  options: DoctorOptions,
): Promise<Omit<DoctorCheck, 'name'> | undefined> {
  if (!options.agent) return undefined;
  let a: AccountStatusBody | undefined;
  try {
    a = await options.agent(socket).accountStatus(account);
  } catch {
    return undefined;
  }
  if (!a) return undefined;
  const e = a.last_error;
  const success = a.last_success_at ? `last successful login ${a.last_success_at}` : 'no successful login yet';
  if (e?.reason === 'credentials_rejected' || e?.reason === 'not_provisioned') {
    return {
      status: 'fail',
      detail: `the running agent reports ${e.reason}: ${e.message} (${success})`,
      fix: `check the values on the authority's portal and run: ${PROVISION(account)}`,
    };
  }
  if (isUsableState(a.state)) {
    return { status: 'ok', detail: `the running agent holds a ${a.state} token for ${account}` };
  }
  return {
    status: 'warn',
    detail: `the running agent has no usable token (${a.state})${e ? `: ${e.reason}: ${e.message}` : ''} (${success})`,
    fix: 'see the checks above and `pos-token-agent status`; the agent retries by itself',
  };
}

function statePermissions(dir: string, keyFile: string, keySource: string, account: string): DoctorCheck[] {
  const out: DoctorCheck[] = [];
  const st = (p: string): Stats | undefined => {
    try {
      return statSync(p);
    } catch {
      return undefined;
    }
  };
  const dirStat = st(dir);
  if (!dirStat) {
    out.push({ name: 'state.directory', status: 'fail', detail: `${dir} does not exist`, fix: `run: ${PROVISION(account)} (or install.sh)` });
    return out;
  }
  const mode = (s: Stats): string => (s.mode & 0o777).toString(8).padStart(4, '0');
  out.push(
    (dirStat.mode & 0o077) === 0
      ? { name: 'state.directory', status: 'ok', detail: `${dir} mode ${mode(dirStat)}, owner uid ${dirStat.uid}` }
      : {
          name: 'state.directory',
          status: 'fail',
          detail: `${dir} has mode ${mode(dirStat)}: other users can look inside`,
          fix: `chmod 0700 ${dir}`,
        },
  );
  const keyStat = st(keyFile);
  if (!keyStat) {
    out.push({
      name: 'state.key',
      status: 'warn',
      detail: `no ${keySource} at ${keyFile} yet (made at the first provisioning)`,
      fix: `run: ${PROVISION(account)}`,
    });
  } else if (keySource === 'key file' && ((keyStat.mode & 0o077) !== 0 || keyStat.uid !== dirStat.uid)) {
    out.push({
      name: 'state.key',
      status: 'fail',
      detail: `${keyFile} has mode ${mode(keyStat)} and owner uid ${keyStat.uid}; it must be 0600 and owned by the state directory's owner (uid ${dirStat.uid})`,
      fix: `chmod 0600 ${keyFile} && chown ${dirStat.uid} ${keyFile}`,
    });
  } else {
    out.push({ name: 'state.key', status: 'ok', detail: `${keySource} ${keyFile}, mode ${mode(keyStat)}` });
  }
  const dbStat = st(join(dir, DB_FILE));
  if (dbStat && (dbStat.mode & 0o077) !== 0) {
    out.push({
      name: 'state.permissions',
      status: 'fail',
      detail: `${join(dir, DB_FILE)} has mode ${mode(dbStat)}`,
      fix: `chmod 0600 ${join(dir, DB_FILE)}*`,
    });
  }
  return out;
}

function stateFailure(err: unknown, path: string, config: AgentConfig): { detail: string; fix: string } {
  const first = Object.keys(config.accounts)[0] ?? 'default';
  if (err instanceof SecretKeyError && err.kind === 'credential_absent') {
    return {
      detail: err.message,
      fix: 'run doctor in the service\'s context, as pos-token-agent-provision does (it passes the unit\'s LoadCredentialEncrypted= to systemd-run); nothing needs re-provisioning',
    };
  }
  if (err instanceof SecretKeyError) {
    return {
      detail: err.message,
      fix:
        err.kind === 'missing' && /no secret key yet/.test(err.message)
          ? `run: ${PROVISION(first)}`
          : `re-provision every account (${PROVISION(first)}); the unusable database is moved aside, not deleted`,
    };
  }
  if (err instanceof StoreError) {
    return { detail: err.message, fix: `move ${path} aside and re-provision; keep the old file for a support case` };
  }
  return { detail: `${path}: ${(err as Error).message}`, fix: 'check the state directory and its permissions' };
}

async function socketCheck(socket: string, options: DoctorOptions): Promise<DoctorCheck> {
  const hints = serviceHints(options.configPath, options.managedBySystemd ?? managedBySystemd(options.configPath));
  let st: Stats;
  try {
    st = lstatSync(socket);
  } catch {
    return {
      name: 'socket',
      status: 'warn',
      detail: `nothing at ${socket}: the agent is not running`,
      fix: hints.enable,
    };
  }
  if (!st.isSocket()) {
    return { name: 'socket', status: 'fail', detail: `${socket} is not a socket`, fix: `remove ${socket} and restart the agent` };
  }
  const mode = st.mode & 0o777;
  const shown = mode.toString(8).padStart(4, '0');
  if ((mode & 0o007) !== 0) {
    return {
      name: 'socket',
      status: 'fail',
      detail: `${socket} has mode ${shown}: any user on the box can take tokens`,
      fix: 'set SocketMode=0660 in pos-token-agent.socket (or restart the agent, which sets it)',
    };
  }
  if (!options.agent) return { name: 'socket', status: 'ok', detail: `${socket} is a socket with mode ${shown}` };
  try {
    const health = await options.agent(socket).health();
    return health.status === 'ok'
      ? { name: 'socket', status: 'ok', detail: `${socket} (mode ${shown}) answers: every account has a usable token` }
      : {
          name: 'socket',
          status: 'warn',
          detail: `${socket} answers, but not every account has a usable token: ${health.failing.join(', ').slice(0, 200)}`,
          fix: 'see the account checks above and `pos-token-agent status`',
        };
  } catch (err) {
    return {
      name: 'socket',
      status: 'fail',
      detail: `${socket} exists but does not answer: ${(err as Error).message}`,
      fix: hints.restart,
    };
  }
}
