/**
 * The checks of one account: device identity, stored credentials, the network to its token service, whether its
 * credentials are accepted (what the running agent saw, else one real login), and its API's network.
 */
import { isUsableState } from '../api/index.js';
import {
  basicEncodingsDiffer,
  describeBasicEncoding,
  isSilentRefusal,
  type AuthorityModule,
  type AuthorityRegistry,
  type Credentials,
  type HttpClient,
  type LoginInterop,
  type LoginResult,
} from '../authorities/index.js';
import type { AccountConfig, AgentConfig } from '../config/index.js';
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
import type { Store } from '../store/index.js';
import type { BoxFacts } from './box.js';
import { provisionHint } from './hints.js';
import { checkNetwork, type NamedCheck } from './network.js';
import { agentAccount, type RunningAgent } from './running.js';
import { stateFailure, type NoStore } from './state-checks.js';
import type { AddCheck, DoctorCheck, DoctorOptions } from './types.js';

export interface AccountContext {
  config: AgentConfig;
  store: Store | undefined;
  noStore: NoStore;
  http: HttpClient;
  reader: ReturnType<typeof createIdentityReader>;
  now: () => number;
  env: NodeJS.ProcessEnv;
  options: DoctorOptions;
  add: AddCheck;
  registry: AuthorityRegistry;
  agent: RunningAgent | undefined;
  box: BoxFacts;
  /** systemd runs the agent of this config (the provisioning hint depends on it). */
  managed: boolean;
}

/** What the login check needs from the checks before it. */
interface Earlier {
  reading?: IdentityReading;
  identityOk: boolean;
  credentials?: Credentials;
  interop?: LoginInterop;
  networkOk: boolean;
}

export async function checkAccount(account: AccountConfig, ctx: AccountContext): Promise<void> {
  const module = ctx.registry.module(account.authority);
  const identity = await checkIdentity(account, module, ctx);
  const stored = checkCredentials(account, module, ctx);
  const networkOk = await checkTokenNetwork(account, module, ctx);
  await checkLogin(account, module, ctx, { ...identity, ...stored, networkOk });
}

/** The device identity, for authorities that send device headers. */
async function checkIdentity(account: AccountConfig, module: AuthorityModule, ctx: AccountContext): Promise<{ reading?: IdentityReading; identityOk: boolean }> {
  if (!sendsDeviceHeaders(module.deviceHeaders)) return { identityOk: true };
  const n = account.name;
  const name = `${n}.identity`;
  let reading: IdentityReading;
  try {
    reading = await ctx.reader.read(account);
  } catch (err) {
    ctx.add({ name, status: 'fail', ...identityError(err, n) });
    return { identityOk: false };
  }
  const problem = identityProblem(account, reading, requiredFields(module.deviceHeaders));
  if (problem) {
    const fix = `run: pos-token-agent identity --account ${n}; fix the profile's source or set accounts.${n}.identity in the config`;
    ctx.add({ name, status: 'fail', detail: problem, fix });
    return { reading, identityOk: false };
  }
  const shown = Object.entries(reading.values)
    .map(([f, v]) => `${f}=${v.value} (${v.source})`)
    .join(', ');
  ctx.add({ name, status: 'ok', detail: `profile ${reading.profile ?? '(none: config values)'}: ${shown}` });
  return { reading, identityOk: true };
}

function identityError(err: unknown, n: string): { detail: string; fix: string } {
  const detect = 'pos-token-agent identity --detect lists the ones that fit this box';
  if (err instanceof ProfileNotFoundError) {
    return {
      detail: err.message,
      fix: `set accounts.${n}.deviceProfile in the config to a profile that exists (${detect}), or add ${err.profile}.json to one of those directories`,
    };
  }
  if (err instanceof ProfileError) {
    return {
      detail: `invalid device profile ${err.file}: ${err.problems.join('; ')}`,
      fix: `fix ${err.file} as listed, or set accounts.${n}.deviceProfile to another profile (${detect})`,
    };
  }
  return {
    detail: `cannot read the identity: ${(err as Error).message}`,
    fix: `run: pos-token-agent identity --account ${n}; or set accounts.${n}.deviceProfile to another profile (${detect})`,
  };
}

/** The stored credentials: there, for this authority, with every required field. */
function checkCredentials(account: AccountConfig, module: AuthorityModule, ctx: AccountContext): { credentials?: Credentials; interop?: LoginInterop } {
  const n = account.name;
  const name = `${n}.credentials`;
  const fix = `run: ${provisionHint(n, ctx)}`;
  const { store } = ctx;
  if (!store) {
    const { status, why } = ctx.noStore;
    ctx.add(status === 'fail' ? { name, status, detail: `account ${n} has no credentials: ${why}`, fix } : { name, status, detail: `not checked: ${why}` });
    return {};
  }
  try {
    const stored = store.getCredentials(n);
    if (!stored) {
      ctx.add({ name, status: 'fail', detail: `account ${n} has no credentials`, fix });
      return {};
    }
    if (stored.authority !== account.authority) {
      ctx.add({ name, status: 'fail', detail: `credentials were provisioned for ${stored.authority}, the config says ${account.authority}`, fix });
      return {};
    }
    const missing = module.credentials.filter((f) => f.required && !stored.credentials[f.name]).map((f) => f.name);
    if (missing.length) {
      ctx.add({ name, status: 'fail', detail: `the stored credentials have no ${missing.join(' and ')} (required for ${account.authority})`, fix });
      return {};
    }
    ctx.add({ name, status: 'ok', detail: `stored (encrypted), provisioned ${new Date(stored.updatedAt).toISOString()}` });
    return { credentials: stored.credentials, ...(stored.interop ? { interop: stored.interop } : {}) };
  } catch (err) {
    const first = Object.keys(ctx.config.accounts)[0] ?? 'default';
    ctx.add({ name, status: 'fail', ...stateFailure(err, store.path, first, ctx) });
    return {};
  }
}

/** DNS, TCP (or the proxy), TLS and clock to the token service; whether the login can be tried. */
async function checkTokenNetwork(account: AccountConfig, module: AuthorityModule, ctx: AccountContext): Promise<boolean> {
  const option = account[module.endpoint.option];
  const url = typeof option === 'string' ? option : account.identityUrl;
  const network = await accountNetwork(account, url, ctx, true);
  let ok = true;
  for (const step of network) {
    // A clock far off is worth reporting, but the login can still tell whether the credentials work.
    if (!step.result.ok && step.name !== 'clock') ok = false;
    ctx.add(namedCheck(`${account.name}.${step.name}`, step));
  }
  return ok;
}

function accountNetwork(account: AccountConfig, url: string, ctx: AccountContext, checkClock: boolean): Promise<NamedCheck[]> {
  return checkNetwork({
    url,
    account: account.name,
    tls: account.tls,
    proxy: ctx.config.proxy,
    env: ctx.env,
    http: ctx.http,
    now: ctx.now,
    checkClock,
    box: ctx.box,
    ...(ctx.options.timeoutMs !== undefined ? { timeoutMs: ctx.options.timeoutMs } : {}),
  });
}

function namedCheck(name: string, step: NamedCheck, why = ''): DoctorCheck {
  const r = step.result;
  return r.ok
    ? { name, status: r.skipped ? 'skipped' : 'ok', detail: `${step.target}: ${r.detail}` }
    : { name, status: 'fail', detail: `${step.target}: ${r.problem}`, fix: why ? `${r.fix} (${why})` : r.fix };
}

/** Credentials accepted: what the running agent saw, else one real login (unless --no-login or an earlier check failed). */
async function checkLogin(account: AccountConfig, module: AuthorityModule, ctx: AccountContext, earlier: Earlier): Promise<void> {
  const n = account.name;
  const name = `${n}.login`;
  const fromAgent = await agentView(n, ctx);
  if (fromAgent) return ctx.add({ name, ...fromAgent });
  if (ctx.options.noLogin) return ctx.add({ name, status: 'skipped', detail: 'not checked (--no-login)' });
  const { credentials, reading, interop } = earlier;
  if (!credentials || !earlier.networkOk || !earlier.identityOk) {
    return ctx.add({ name, status: 'skipped', detail: 'not checked: an earlier check of this account failed' });
  }
  const authority = ctx.registry.create(account.authority, { http: ctx.http, now: ctx.now });
  // As the agent would: what its logins learned (the Basic encoding) is tried first.
  const result = await authority.login({
    account,
    credentials,
    identity: reading ? toDeviceIdentity(reading) : { ...account.identity },
    ...(interop ? { interop } : {}),
  });
  if (result.ok) {
    return ctx.add({ name, status: 'ok', detail: `one login succeeded: a token valid for ${result.token.expiresInS} s${basicNote(result, credentials)}` });
  }
  const rejected = result.failure.reason === 'credentials_rejected';
  ctx.add({
    name,
    status: rejected ? 'fail' : 'warn',
    detail: `login failed (${result.failure.reason}): ${result.failure.message}`,
    fix: !rejected
      ? 'the authority is busy or unreachable; try again later (the agent retries by itself)'
      : isSilentRefusal(result.failure)
        ? silentRefusalFix(module, n, ctx)
        : `check the values on the authority's portal and run: ${provisionHint(n, ctx)}`,
  });
}

/**
 * The account's API (apiUrl, where the proxy and the outbox send): DNS, TCP and TLS as for the token service,
 * named `<account>.api.<step>`. No clock check (the token service's compared it) and no request to the API.
 */
export async function checkApi(account: AccountConfig, ctx: AccountContext): Promise<void> {
  if (!account.apiUrl) return;
  const n = account.name;
  const why = `accounts.${n}.apiUrl is where the proxy and the outbox send: until it answers, /v1/proxy answers 502 and outbox entries wait queued`;
  for (const step of await accountNetwork(account, account.apiUrl, ctx, false)) ctx.add(namedCheck(`${n}.api.${step.name}`, step, why));
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
function silentRefusalFix(module: AuthorityModule, account: string, ctx: AccountContext): string {
  const options = ['clientAuth', 'scope', 'basicAuthEncoding'].filter((o) => o in module.options).map((o) => `accounts.${account}.${o}`);
  const listed = options.length > 1 ? `${options.slice(0, -1).join(', ')} and ${options.at(-1)}` : options[0];
  return (
    `the server gave no reason: check the client ID and secret (${provisionHint(account, ctx)})` +
    (listed ? `, and ${listed} against the client's registration on the server` : '')
  );
}

/** The running agent's view of an account, when an agent answers on the socket. */
async function agentView(account: string, ctx: AccountContext): Promise<Omit<DoctorCheck, 'name'> | undefined> {
  const a = await agentAccount(ctx.agent, account);
  if (!a) return undefined;
  const e = a.last_error;
  const success = a.last_success_at ? `last successful login ${a.last_success_at}` : 'no successful login yet';
  if (e?.reason === 'credentials_rejected' || e?.reason === 'not_provisioned') {
    return {
      status: 'fail',
      detail: `the running agent reports ${e.reason}: ${e.message} (${success})`,
      fix: `check the values on the authority's portal and run: ${provisionHint(account, ctx)}`,
    };
  }
  if (isUsableState(a.state)) {
    return { status: 'ok', detail: `the running agent holds a ${a.state} token for ${account}` };
  }
  return {
    status: 'warn',
    detail: `the running agent has no usable token (${a.state})${e ? `: ${e.reason}: ${e.message}` : ''} (${success})`,
    fix: 'see the checks above and `pos-token-agent status`',
  };
}
