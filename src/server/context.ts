/**
 * What the socket API's routes are given: the parts of the agent they ask (the token source, the proxy, the
 * outbox, the accounts) and the server's own state (when it started, the token route's caches).
 */
import type { ConfigStatusBody } from '../api/index.js';
import type { AccountConfig, ServerLimits } from '../config/index.js';
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/log.js';
import type { Counter, MetricsRegistry } from '../lib/metrics.js';
import type { Outbox, OutboxAccountStatus } from '../outbox/index.js';
import type { ForwardRequest, ForwardResult, TargetResult } from '../forward/index.js';
import type { AccountStatus, ServedToken, TokenAnswer } from '../tokens/index.js';

/** What the server needs of the token manager. */
export interface TokenSource {
  getToken(account: string, minTtlS: number): Promise<TokenAnswer>;
  /** The answer without waiting when there is one (a fresh token); the hot path skips getToken's promises. */
  peek?(account: string, minTtlS: number): TokenAnswer | undefined;
  refresh(account: string, rejectedToken: string, minTtlS: number): Promise<TokenAnswer>;
  status(): Record<string, AccountStatus>;
  unhealthy(): string[];
}

/** The accounts as configured now: which names the agent has. */
export interface AccountDirectory {
  account(name: string): AccountConfig | undefined;
  accountNames(): string[];
}

/** What the proxy route needs: the accounts as configured now, and a sender. */
export interface ProxySource extends AccountDirectory {
  forward(request: ForwardRequest): Promise<ForwardResult>;
}

/** What the outbox routes need: the accounts as configured now, and the outbox. */
export interface OutboxSource extends AccountDirectory {
  outbox: Pick<Outbox, 'enqueue' | 'get' | 'list' | 'cancel' | 'retry'>;
}

/** What status and health need of the outbox (outbox/). */
export interface OutboxView {
  status(): Record<string, OutboxAccountStatus>;
  stalled(): string[];
}

export interface ServerOptions {
  socketPath: string;
  /**
   * The accounts as configured now. With it, every route that names an account answers an unknown one 404 from
   * the same check; without it (tests of the token routes alone) the token source answers for its own.
   */
  accounts?: AccountDirectory;
  /** The API proxy (`/v1/proxy/NAME/...`); without it those paths are 404. */
  proxy?: ProxySource;
  /** The outbox (`/v1/outbox...`); without it those paths are 404. */
  outbox?: OutboxSource & { view: OutboxView };
  /** A listening socket inherited from systemd (LISTEN_FDS); when set, socketPath is only reported. */
  listenFd?: number;
  limits: ServerLimits;
  version: string;
  /** Which config the agent runs, for `/v1/status` `config`. */
  config?: () => ConfigStatusBody;
  log: Logger;
  clock?: Clock;
  metrics?: MetricsRegistry;
}

/** One server's state, shared by its routes. */
export interface ServerContext {
  readonly source: TokenSource;
  readonly options: ServerOptions;
  readonly clock: Clock;
  /** clock.monotonic() when the server was made, for `uptime_s`. */
  readonly startedMono: number;
  /** Socket API requests by route and status (`/metrics`). */
  readonly requests: Counter | undefined;
  /** Counts one request in `requests` (its series kept per route and status: nothing built per request). */
  readonly countRequest: (route: string, status: number) => void;
  /** The config file an answer names when it says which setting to change (asked only when one is answered). */
  readonly configFile: () => string;
  /** The JSON of the last token answered per account (token.ts). */
  readonly tokenBodies: (t: ServedToken) => TokenBodyText;
  /** A GET /v1/token target's account and min_ttl, kept per raw target; null: one the full path must answer. */
  readonly tokenTargets: (raw: string) => TokenTarget | null;
  /** forward/'s resolveTarget, its answers kept for the paths the proxy is asked again and again. */
  readonly proxyTargets: (apiUrl: string, rest: string) => TargetResult;
}

export interface TokenBodyText {
  token: ServedToken;
  text: string;
  length: number;
}

export interface TokenTarget {
  account: string;
  minTtl: number;
}
