/**
 * The wiring file: builds the store, the authorities, the token manager and the socket server
 * from a validated config and connects them. Logic lives in the areas, not here.
 */
import { authorities, createHttpClient, type AuthorityRegistry, type HttpClient, type NodeHttpClient } from './authorities/index.js';
import type { AccountConfig, AgentConfig } from './config/index.js';
import { systemClock, type Clock } from './lib/clock.js';
import type { Logger } from './lib/log.js';
import { createForwarder } from './forward/index.js';
import { createMetrics } from './lib/metrics.js';
import { createOutbox, type Outbox } from './outbox/index.js';
import { createAgentServer } from './server/index.js';
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
  stop(): Promise<void>;
}

export async function startAgent(config: AgentConfig, deps: AgentDeps): Promise<Agent> {
  const clock = deps.clock ?? systemClock;
  const log = deps.log;
  const registry = deps.authorities ?? authorities;
  const headersOf = (account: AccountConfig) => registry.get(account.authority)?.deviceHeaders;
  const http = deps.http ?? createHttpClient({ proxy: config.proxy, env: deps.env ?? process.env });
  const access = await stateAccess(config, { env: deps.env ?? process.env });
  if (access.machineIdProblem) {
    log.warn('secrets are not bound to this machine', { problem: access.machineIdProblem });
  }
  const store = openReopeningStore(() => openStore(access.options), { clock, log, path: access.options.dir });
  const reader = createIdentityReader({ profileDirs: config.deviceProfileDirs, root: config.identityRoot, log, clock });
  const identity: IdentityProvider = {
    read: (account, options) =>
      sendsDeviceHeaders(headersOf(account))
        ? reader.read(account, options)
        : Promise.resolve({ profile: null, values: {}, errors: {}, skipped: [] }),
    required: (account) => requiredFields(headersOf(account)),
  };
  const metrics = createMetrics();
  const manager = createTokenManager(
    {
      store,
      authority: (account) => registry.create(account.authority, { http, now: () => clock.now() }),
      identity,
      log,
      clock,
      metrics,
    },
    config.accounts,
  );
  let current = config;
  const forwarder = createForwarder({
    tokens: manager,
    agentFor: (url, tls, connectMs) => (http as Partial<NodeHttpClient>).agentFor?.({ url, tls, timeouts: { connectMs } }) ?? Promise.resolve(undefined),
  });
  const outboxStore = lazyOutbox({ dir: access.options.dir, maxEntries: config.outbox.maxEntries, maxBytes: config.outbox.maxBytes, now: () => clock.now() });
  const outbox = createOutbox({ store: outboxStore, forwarder, accounts: config.accounts, config: config.outbox, log, clock, metrics });
  const accounts = {
    account: (name: string) => current.accounts[name],
    accountNames: () => Object.keys(current.accounts),
  };
  const server = createAgentServer(manager, {
    proxy: { ...accounts, forward: (request) => forwarder.forward(request) },
    outbox: { ...accounts, outbox, view: outbox },
    socketPath: config.socket,
    ...(deps.listenFd !== undefined ? { listenFd: deps.listenFd } : {}),
    limits: config.server,
    version: VERSION,
    log,
    clock,
    metrics,
  });
  try {
    await server.listen();
  } catch (err) {
    outboxStore.close();
    store.close();
    throw err;
  }
  manager.start();
  outbox.start();
  if (Object.keys(config.accounts).length === 0) {
    log.warn('no accounts in the config yet; run pos-token-agent-provision', { config: config.source });
  }
  let stopping: Promise<void> | undefined;
  return {
    manager,
    store,
    outbox,
    reload(next) {
      for (const key of ['socket', 'stateDir', 'deviceProfileDirs', 'identityRoot', 'proxy', 'server', 'outbox'] as const) {
        if (JSON.stringify(next[key]) !== JSON.stringify(current[key])) {
          log.warn('config change needs a restart to apply', { setting: key });
        }
      }
      manager.reconfigure(next.accounts);
      // What needs a restart stays as it was running, so the warning repeats until the restart.
      current = {
        ...next,
        socket: current.socket,
        stateDir: current.stateDir,
        deviceProfileDirs: current.deviceProfileDirs,
        identityRoot: current.identityRoot,
        proxy: current.proxy,
        server: current.server,
        outbox: current.outbox,
      };
      outbox.reconfigure(current.accounts);
      log.info('config reloaded', { source: next.source, accounts: Object.keys(next.accounts) });
    },
    stop() {
      stopping ??= (async () => {
        await server.close();
        await outbox.stop();
        await manager.stop();
        forwarder.close();
        outboxStore.close();
        store.close();
        (http as { close?: () => void }).close?.();
        log.info('stopped');
      })();
      return stopping;
    },
  };
}
