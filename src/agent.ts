/**
 * The wiring file: builds the store, the authorities, the token manager and the socket server
 * from a validated config and connects them. Logic lives in the areas, not here.
 */
import { authorities, createHttpClient, type AuthorityRegistry, type HttpClient, type NodeHttpClient } from './authorities/index.js';
import type { ConfigStatusBody } from './api/index.js';
import { RESTART_SETTINGS, type AccountConfig, type AgentConfig } from './config/index.js';
import { systemClock, type Clock } from './lib/clock.js';
import type { Logger } from './lib/log.js';
import { createForwarder, type Forwarder } from './forward/index.js';
import { createMetrics, type MetricsRegistry } from './lib/metrics.js';
import { registerProcessMetrics, type ProcessMetrics } from './lib/process-metrics.js';
import { createOutbox, type Outbox } from './outbox/index.js';
import { createAgentServer, type ServerOptions } from './server/index.js';
import { createIdentityReader, requiredFields, sendsDeviceHeaders } from './identity/index.js';
import { stateAccess } from './state.js';
import { lazyOutbox, openStore, type Store } from './store/index.js';
import { openReopeningStore } from './store/reopening.js';
import { createTokenManager, type IdentityProvider, type TokenManager } from './tokens/index.js';
import { VERSION } from './version.js';

export interface AgentDeps {
  log: Logger;
  clock?: Clock;
  http?: HttpClient;
  /** Environment for the proxy and the systemd credential; process.env by default. */
  env?: NodeJS.ProcessEnv;
  /** A listening socket passed by systemd (LISTEN_FDS); without it the agent binds config.socket. */
  listenFd?: number;
  /** The authorities accounts are served by (the built-in ones by default). */
  authorities?: AuthorityRegistry;
}

export interface Agent {
  readonly manager: TokenManager;
  readonly store: Store;
  readonly outbox: Outbox;
  /** Applies a new config's accounts; socket and state paths need a restart. */
  reload(config: AgentConfig): void;
  /** A reload that was refused (the running config stays): shown in `/v1/status` `config.reload_error`. */
  reloadRefused(problems: string[]): void;
  /** Which config runs, as `/v1/status` reports it. */
  configStatus(): ConfigStatusBody;
  stop(): Promise<void>;
}

export async function startAgent(config: AgentConfig, deps: AgentDeps): Promise<Agent> {
  const parts = await buildParts(config, deps);
  const configs = createConfigTracker(config, parts.clock);
  const server = createAgentServer(parts.manager, serverOptions(config, deps, parts, configs));
  try {
    await server.listen();
  } catch (err) {
    parts.outboxStore.close();
    parts.store.close();
    parts.processMetrics.stop();
    throw err;
  }
  parts.manager.start();
  parts.outbox.start();
  if (Object.keys(config.accounts).length === 0) {
    deps.log.warn('no accounts in the config yet; run pos-token-agent-provision', { config: config.source });
  }
  return assemble(parts, configs, () => server.close(), deps.log);
}

interface Parts {
  clock: Clock;
  http: HttpClient;
  store: Store;
  manager: TokenManager;
  forwarder: Forwarder;
  outboxStore: ReturnType<typeof lazyOutbox>;
  outbox: Outbox;
  metrics: MetricsRegistry;
  processMetrics: ProcessMetrics;
}

/** The store, the identity reader, the token manager, the forwarder and the outbox, connected. */
async function buildParts(config: AgentConfig, deps: AgentDeps): Promise<Parts> {
  const clock = deps.clock ?? systemClock;
  const log = deps.log;
  const registry = deps.authorities ?? authorities;
  const http = deps.http ?? createHttpClient({ proxy: config.proxy, env: deps.env ?? process.env });
  const access = await stateAccess(config, { env: deps.env ?? process.env });
  if (access.machineIdProblem) {
    log.warn('secrets are not bound to this machine', { problem: access.machineIdProblem });
  }
  const store = openReopeningStore(() => openStore(access.options), { clock, log, path: access.options.dir });
  const metrics = createMetrics();
  const manager = createTokenManager(
    {
      store,
      authority: (account) => registry.create(account.authority, { http, now: () => clock.now() }),
      identity: identityProvider(config, registry, log, clock),
      log,
      clock,
      metrics,
    },
    config.accounts,
  );
  const forwarder = createForwarder({
    tokens: manager,
    agentFor: (url, tls, connectMs) => (http as Partial<NodeHttpClient>).agentFor?.({ url, tls, timeouts: { connectMs } }) ?? Promise.resolve(undefined),
  });
  const outboxStore = lazyOutbox({ dir: access.options.dir, maxEntries: config.outbox.maxEntries, maxBytes: config.outbox.maxBytes, now: () => clock.now() });
  const outbox = createOutbox({ store: outboxStore, forwarder, accounts: config.accounts, config: config.outbox, log, clock, metrics });
  const processMetrics = registerProcessMetrics(metrics);
  return { clock, http, store, manager, forwarder, outboxStore, outbox, metrics, processMetrics };
}

/** Device identity for the accounts whose authority sends device headers; nothing to read for the others. */
function identityProvider(config: AgentConfig, registry: AuthorityRegistry, log: Logger, clock: Clock): IdentityProvider {
  const headersOf = (account: AccountConfig) => registry.get(account.authority)?.deviceHeaders;
  const reader = createIdentityReader({ profileDirs: config.deviceProfileDirs, root: config.identityRoot, log, clock });
  return {
    read: (account, options) =>
      sendsDeviceHeaders(headersOf(account))
        ? reader.read(account, options)
        : Promise.resolve({ profile: null, values: {}, errors: {}, skipped: [] }),
    required: (account) => requiredFields(headersOf(account)),
  };
}

function serverOptions(config: AgentConfig, deps: AgentDeps, parts: Parts, configs: ConfigTracker): ServerOptions {
  const accounts = {
    account: (name: string) => (Object.hasOwn(configs.current.accounts, name) ? configs.current.accounts[name] : undefined),
    accountNames: () => Object.keys(configs.current.accounts),
  };
  return {
    accounts,
    proxy: { ...accounts, forward: (request) => parts.forwarder.forward(request) },
    outbox: { ...accounts, outbox: parts.outbox, view: parts.outbox },
    socketPath: config.socket,
    ...(deps.listenFd !== undefined ? { listenFd: deps.listenFd } : {}),
    limits: config.server,
    version: VERSION,
    config: () => configs.status(),
    log: deps.log,
    clock: parts.clock,
    metrics: parts.metrics,
  };
}

/** The running config, its generation and the last refused reload. */
interface ConfigTracker {
  readonly current: AgentConfig;
  /** Takes `next` as running, keeping the settings that need a restart as they run. */
  apply(next: AgentConfig): void;
  refused(problems: string[]): void;
  status(): ConfigStatusBody;
}

function createConfigTracker(initial: AgentConfig, clock: Clock): ConfigTracker {
  let current = initial;
  let generation = 1;
  let loadedAt = clock.now();
  let reloadError: ConfigStatusBody['reload_error'] = null;
  // The settings read once at start, as they were then: a file that changes one runs only after a restart.
  const started = Object.fromEntries(RESTART_SETTINGS.map((key) => [key, JSON.stringify(initial[key])]));
  let pendingRestart: string[] = [];
  return {
    get current() {
      return current;
    },
    apply(next) {
      const kept = Object.fromEntries(RESTART_SETTINGS.map((key) => [key, current[key]]));
      pendingRestart = RESTART_SETTINGS.filter((key) => JSON.stringify(next[key]) !== started[key]);
      current = { ...next, ...kept };
      generation += 1;
      loadedAt = clock.now();
      reloadError = null;
    },
    refused(problems) {
      reloadError = { at: new Date(clock.now()).toISOString(), problems: [...problems] };
    },
    status: () => ({
      path: current.source,
      sha256: current.sha256 ?? null,
      generation,
      loaded_at: new Date(loadedAt).toISOString(),
      reload_error: reloadError,
      pending_restart: [...pendingRestart],
    }),
  };
}

function assemble(parts: Parts, configs: ConfigTracker, closeServer: () => Promise<void>, log: Logger): Agent {
  let stopping: Promise<void> | undefined;
  return {
    manager: parts.manager,
    store: parts.store,
    outbox: parts.outbox,
    reload(next) {
      for (const key of RESTART_SETTINGS) {
        if (JSON.stringify(next[key]) !== JSON.stringify(configs.current[key])) {
          log.warn('config change needs a restart to apply', { setting: key });
        }
      }
      parts.manager.reconfigure(next.accounts);
      // What needs a restart stays as it was running, so the warning repeats until the restart.
      configs.apply(next);
      parts.outbox.reconfigure(configs.current.accounts);
      log.info('config reloaded', { source: next.source, accounts: Object.keys(next.accounts), generation: configs.status().generation });
    },
    reloadRefused: (problems) => configs.refused(problems),
    configStatus: () => configs.status(),
    stop() {
      stopping ??= (async () => {
        await closeServer();
        await parts.outbox.stop();
        await parts.manager.stop();
        parts.forwarder.close();
        parts.outboxStore.close();
        parts.store.close();
        (parts.http as { close?: () => void }).close?.();
        parts.processMetrics.stop();
        log.info('stopped');
      })();
      return stopping;
    },
  };
}
