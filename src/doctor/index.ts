/**
 * `doctor`: what is wrong on this box and how to fix it. Each check says what it looked at and,
 * when it fails, what to do; a fix fits the cause and names only commands and files this box has.
 * Checks that depend on a failed one are reported as not run.
 *
 * Order: config; state (directory, key, database, permissions); per account: device identity,
 * stored credentials, network (DNS, TCP, TLS, clock, proxy), credentials accepted, and with an apiUrl the
 * API's network (DNS, TCP, TLS); the outbox database; the socket; which config the running agent runs.
 */
import { authorities, createHttpClient, type NodeHttpClient } from '../authorities/index.js';
import type { AgentConfig } from '../config/index.js';
import { createIdentityReader } from '../identity/index.js';
import { managedBySystemd, shellQuote } from '../lib/service.js';
import { checkAccount, checkApi, type AccountContext } from './account.js';
import { boxFacts } from './box.js';
import { checkConfig } from './config.js';
import { agentHints } from './hints.js';
import { agentChecks, runningAgent } from './running.js';
import { checkState, outboxCheck, type StateChecked } from './state-checks.js';
import type { DoctorCheck, DoctorOptions, DoctorReport } from './types.js';

export type { AgentView, CheckStatus, DoctorCheck, DoctorOptions, DoctorReport } from './types.js';
export type { BoxFacts } from './box.js';

export async function runDoctor(options: DoctorOptions): Promise<DoctorReport> {
  const env = options.env ?? process.env;
  const box = boxFacts(env, options.box);
  const managed = options.managedBySystemd ?? managedBySystemd(options.configPath);
  const registry = options.authorities ?? authorities;
  const checks: DoctorCheck[] = [];

  const loaded = checkConfig({ path: options.configPath, env, registry, box, managed, configFlag: options.configFlag });
  checks.push(loaded.check);
  const config = loaded.config;
  if (!config) return finish(checks, options.configFlag);

  const state = await checkState(config, { deps: { ...options, env }, box, managed });
  checks.push(...state.checks);
  const agent = runningAgent(config.socket, options.agent);
  const ctx = { config, env, options, registry, agent, box, managed, add: (c: DoctorCheck) => void checks.push(c) };
  await checkAccounts(state, ctx);
  const outbox = outboxCheck(config, (options.now ?? Date.now)(), box);
  if (outbox) checks.push(outbox);

  checks.push(...(await agentChecks(config, { agent, hints: agentHints(options.configPath, managed, box), box, managed })));
  return finish(checks, options.configFlag);
}

type Shared = Omit<AccountContext, 'store' | 'noStore' | 'http' | 'reader' | 'now'> & { config: AgentConfig };

/** Every account's checks, with one HTTP client and one identity reader; closes the store and the client after. */
async function checkAccounts(state: StateChecked, shared: Shared): Promise<void> {
  const { config, env, options } = shared;
  let ownHttp: NodeHttpClient | undefined;
  try {
    const http = options.http ?? (ownHttp = createHttpClient({ proxy: config.proxy, env }));
    const reader = createIdentityReader({
      profileDirs: config.deviceProfileDirs,
      root: config.identityRoot,
      env,
      ...(options.machineId ? { machineId: options.machineId } : {}),
      ...(options.hostname ? { hostname: options.hostname } : {}),
    });
    const ctx: AccountContext = { ...shared, store: state.store, noStore: state.noStore, http, reader, now: options.now ?? Date.now };
    for (const account of Object.values(config.accounts)) {
      await checkAccount(account, ctx);
      await checkApi(account, ctx);
    }
  } finally {
    state.store?.close();
    ownHttp?.close();
  }
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
