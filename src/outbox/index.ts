/**
 * The outbox: a till's submissions, acknowledged once durably stored (store/outbox.ts), delivered in the
 * background per account in order of enqueue, one request in flight per account, through outages without end.
 * deliver.ts sends one entry and classifies the answer; this file keeps the lanes, the backoff, the pruning and
 * what status, health and metrics show.
 */
import type { AccountConfig, OutboxConfig } from '../config/index.js';
import { systemClock, type Clock, type Timer } from '../lib/clock.js';
import type { Logger } from '../lib/log.js';
import type { Counter, MetricsRegistry } from '../lib/metrics.js';
import type { Forwarder } from '../forward/index.js';
import type { EnqueueResult, OutboxEntry, OutboxInput, OutboxListFilter, OutboxPage, OutboxStore } from '../store/index.js';
import { deliverOnce, type DeliveryVerdict } from './deliver.js';

export { classify, retryAfterMs, KEPT_RESPONSE_BYTES, type DeliveryVerdict } from './deliver.js';

/** An account's outbox as status shows it. Times are wall-clock ms. */
export interface OutboxAccountStatus {
  queued: number;
  oldestQueuedAtWall: number | null;
  lastDeliveredAtWall: number | null;
  lastError: string | null;
}

export interface Outbox {
  start(): void;
  enqueue(input: OutboxInput): Promise<EnqueueResult>;
  get(id: string): OutboxEntry | undefined;
  /** What waits first, a page at a time (store/outbox.ts). */
  list(filter: OutboxListFilter): OutboxPage;
  /** Takes back a queued entry (one in flight, delivered or rejected cannot be). */
  cancel(id: string): ReturnType<OutboxStore['cancel']>;
  /** A rejected or cancelled entry queued again; a queued one sent now, its backoff lifted. */
  retry(id: string): { ok: true; entry: OutboxEntry } | { ok: false; reason: 'not_found' | 'not_retryable'; entry?: OutboxEntry };
  status(): Record<string, OutboxAccountStatus>;
  /** Accounts whose oldest queued entry is older than alertAfter. */
  stalled(): string[];
  /** The accounts changed (apiUrl added, for instance): every lane looks again. */
  reconfigure(accounts: Record<string, AccountConfig>): void;
  stop(): Promise<void>;
}

/** A store opened on demand (store/outbox-lazy.ts): the outbox opens it once it is used. */
export interface OpenableOutboxStore extends OutboxStore {
  open(): Error | undefined;
  exists(): boolean;
  readonly opened: boolean;
}

export interface OutboxDeps {
  store: OutboxStore | OpenableOutboxStore;
  forwarder: Forwarder;
  accounts: Record<string, AccountConfig>;
  config: OutboxConfig;
  log: Logger;
  clock?: Clock;
  random?: () => number;
  metrics?: MetricsRegistry;
}

/** Backoff for an entry that stays at the head: from 1 s doubling to 5 min, +-20%. */
export const RETRY_INITIAL_MS = 1_000;
export const RETRY_MAX_MS = 300_000;
/** Pruning: how often, and how many rows per short transaction. */
const PRUNE_EVERY_MS = 3_600_000;
export const PRUNE_BATCH = 500;
/** How long stop() lets a delivery in flight finish before aborting it (it is then sent again at the next start). */
const STOP_WAIT_MS = 3_000;

interface Lane {
  running: boolean;
  /** Failures in a row of the head entry. */
  failures: number;
  /** Monotonic ms before which nothing is sent. */
  notBefore: number;
  timer?: Timer;
  inflight?: Promise<void>;
}

/**
 * The longest wait after a write of the outbox's own database failed (a full disk, mostly): room freed on the disk
 * is used within this long, whatever the API's backoff had grown to.
 */
export const STORAGE_RETRY_MAX_MS = 5_000;

/** The jittered backoff after `failures` failures in a row (at most `maxMs`), never shorter than what the server asked for. */
export function backoffMs(failures: number, random: () => number, askedMs?: number, maxMs = RETRY_MAX_MS): number {
  const n = Math.max(1, Math.min(failures, 32));
  const base = Math.min(maxMs, RETRY_INITIAL_MS * 2 ** (n - 1));
  const jittered = Math.round(base * (0.8 + random() * 0.4));
  // The server (or the token manager) said when: that long, plus a little so a fleet does not return at once.
  return askedMs !== undefined ? Math.max(100, Math.round(askedMs * (1 + random() * 0.1))) : jittered;
}

export function createOutbox(deps: OutboxDeps): Outbox {
  return new OutboxService(deps);
}

class OutboxService implements Outbox {
  readonly #store: OutboxStore | OpenableOutboxStore;
  readonly #forwarder: Forwarder;
  readonly #config: OutboxConfig;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #lanes = new Map<string, Lane>();
  readonly #abort = new AbortController();
  #accounts: Record<string, AccountConfig>;
  #pruneTimer?: Timer;
  #stopping?: Promise<void>;
  readonly #deliveries?: Counter;
  readonly #resends?: Counter;
  readonly #enqueued?: Counter;

  constructor(deps: OutboxDeps) {
    this.#store = deps.store;
    this.#forwarder = deps.forwarder;
    this.#config = deps.config;
    this.#log = deps.log;
    this.#clock = deps.clock ?? systemClock;
    this.#random = deps.random ?? Math.random;
    this.#accounts = deps.accounts;
    const m = deps.metrics;
    this.#deliveries = m?.counter('pos_token_agent_outbox_deliveries_total', 'Outbox delivery attempts by account and outcome.');
    this.#resends = m?.counter('pos_token_agent_outbox_resends_total', 'Outbox entries sent again after an earlier attempt (at least once).');
    this.#enqueued = m?.counter('pos_token_agent_outbox_enqueued_total', 'Outbox enqueue requests by result.');
    m?.gauge('pos_token_agent_outbox_entries', 'Outbox entries by state.', () =>
      Object.entries(this.#store.stats().byState).map(([state, value]) => ({ labels: { state }, value })),
    );
    m?.gauge('pos_token_agent_outbox_oldest_queued_seconds', 'Age of the oldest queued outbox entry per account.', () =>
      Object.entries(this.status()).map(([account, s]) => ({
        labels: { account },
        value: s.oldestQueuedAtWall === null ? 0 : Math.max(0, Math.floor((this.#clock.now() - s.oldestQueuedAtWall) / 1000)),
      })),
    );
  }

  start(): void {
    this.#openIfUsed();
    for (const account of this.#store.pendingAccounts()) this.#pump(account);
    this.#prune();
  }

  async enqueue(input: OutboxInput): Promise<EnqueueResult> {
    const result = await this.#store.enqueue(input);
    this.#enqueued?.inc({ result: result.ok ? (result.created ? 'created' : 'existing') : `full_${result.reason}` });
    if (result.ok && result.created) this.#pump(input.account);
    return result;
  }

  get(id: string): OutboxEntry | undefined {
    return this.#store.get(id);
  }

  list(filter: OutboxListFilter): OutboxPage {
    return this.#store.list(filter);
  }

  cancel(id: string): ReturnType<OutboxStore['cancel']> {
    return this.#store.cancel(id);
  }

  retry(id: string): ReturnType<Outbox['retry']> {
    const entry = this.#store.get(id);
    if (!entry) return { ok: false, reason: 'not_found' };
    if (entry.state === 'queued') {
      const lane = this.#lane(entry.account);
      lane.notBefore = 0;
      lane.timer?.cancel();
      this.#pump(entry.account);
      return { ok: true, entry };
    }
    const result = this.#store.retry(id);
    if (result.ok) this.#pump(result.entry.account);
    return result;
  }

  status(): Record<string, OutboxAccountStatus> {
    const out: Record<string, OutboxAccountStatus> = {};
    for (const [account, config] of Object.entries(this.#accounts)) {
      if (config.apiUrl) out[account] = { queued: 0, oldestQueuedAtWall: null, lastDeliveredAtWall: null, lastError: null };
    }
    for (const [account, s] of Object.entries(this.#store.stats().accounts)) {
      out[account] = { queued: s.queued, oldestQueuedAtWall: s.oldestQueuedAt, lastDeliveredAtWall: s.lastDeliveredAt, lastError: s.lastError };
    }
    return out;
  }

  stalled(): string[] {
    const now = this.#clock.now();
    return Object.entries(this.#store.stats().accounts)
      .filter(([, s]) => s.oldestQueuedAt !== null && now - s.oldestQueuedAt > this.#config.alertAfterMs)
      .map(([account]) => account);
  }

  reconfigure(accounts: Record<string, AccountConfig>): void {
    this.#accounts = accounts;
    this.#openIfUsed();
    for (const account of this.#store.pendingAccounts()) this.#pump(account);
  }

  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      this.#pruneTimer?.cancel();
      const inflight = [...this.#lanes.values()].flatMap((l) => (l.timer?.cancel(), l.inflight ? [l.inflight] : []));
      this.#abortAfter(STOP_WAIT_MS);
      await Promise.allSettled(inflight);
    })();
    return this.#stopping;
  }

  #abortAfter(ms: number): void {
    const t = setTimeout(() => this.#abort.abort(new Error('the agent is stopping')), ms);
    t.unref();
    void Promise.allSettled([...this.#lanes.values()].map((l) => l.inflight)).then(() => clearTimeout(t));
  }

  /**
   * outbox.db is opened where it is, and made once an account can use it (has an apiUrl); one that cannot be
   * opened is logged and leaves the tokens served (an enqueue then fails with the reason).
   */
  #openIfUsed(): void {
    const store = this.#store;
    if (!('open' in store) || store.opened) return;
    if (!store.exists() && !Object.values(this.#accounts).some((a) => a.apiUrl)) return;
    const problem = store.open();
    if (problem) this.#log.error('the outbox database cannot be opened; enqueues fail until it can', { path: store.path, error: problem.message });
  }

  #lane(account: string): Lane {
    let lane = this.#lanes.get(account);
    if (!lane) this.#lanes.set(account, (lane = { running: false, failures: 0, notBefore: 0 }));
    return lane;
  }

  /** Starts the account's lane unless it runs or waits; the lane sends head entries one at a time. */
  #pump(account: string): void {
    const lane = this.#lane(account);
    if (lane.running || this.#stopping) return;
    const wait = lane.notBefore - this.#clock.monotonic();
    if (wait > 0) {
      lane.timer ??= this.#clock.setTimer(() => {
        lane.timer = undefined;
        this.#pump(account);
      }, wait);
      return;
    }
    lane.running = true;
    lane.inflight = this.#drain(account, lane).finally(() => {
      lane.running = false;
      lane.inflight = undefined;
    });
  }

  async #drain(account: string, lane: Lane): Promise<void> {
    while (!this.#stopping) {
      const config = this.#accounts[account];
      if (!config?.apiUrl) return; // entries wait for an account with an API (the config may gain it)
      const entry = this.#store.head(account);
      if (!entry) return;
      const again = await this.#attempt(config as AccountConfig & { apiUrl: string }, entry, lane);
      if (!again) return;
    }
  }

  /** One delivery of the head entry; false when the lane must wait (backoff) or stop. */
  async #attempt(config: AccountConfig & { apiUrl: string }, entry: OutboxEntry, lane: Lane): Promise<boolean> {
    let sending: OutboxEntry;
    try {
      sending = this.#store.markSending(entry.id);
    } catch (err) {
      this.#log.error('outbox: cannot record a delivery attempt', { account: config.name, id: entry.id, error: String(err) });
      return this.#backoff(config.name, lane, undefined, STORAGE_RETRY_MAX_MS);
    }
    if (sending.attempts > 1) this.#resends?.inc({ account: config.name });
    let verdict: DeliveryVerdict;
    try {
      verdict = await deliverOnce(this.#forwarder, config, entry, () => this.#clock.now(), this.#abort.signal);
    } catch (err) {
      verdict = { kind: 'retry', error: `delivery failed: ${String(err)}` };
    }
    if (this.#abort.signal.aborted) return false; // left as sending: sent again at the next start
    this.#deliveries?.inc({ account: config.name, outcome: verdict.kind });
    try {
      return this.#record(config.name, sending, verdict, lane);
    } catch (err) {
      this.#log.error('outbox: cannot record a delivery outcome; the entry will be sent again', {
        account: config.name,
        id: entry.id,
        error: String(err),
      });
      return this.#backoff(config.name, lane, undefined, STORAGE_RETRY_MAX_MS);
    }
  }

  #record(account: string, entry: OutboxEntry, verdict: DeliveryVerdict, lane: Lane): boolean {
    switch (verdict.kind) {
      case 'delivered':
        this.#store.markDelivered(entry.id, verdict.response);
        lane.failures = 0;
        return true;
      case 'rejected':
        this.#store.markRejected(entry.id, verdict.response, verdict.error);
        this.#log.warn('outbox: entry rejected by the API; the next one goes on', {
          account,
          id: entry.id,
          status: verdict.response.status,
        });
        lane.failures = 0;
        return true;
      case 'retry':
        this.#store.markRetry(entry.id, verdict.error);
        if (lane.failures === 0) this.#log.warn('outbox: delivery will be retried', { account, id: entry.id, error: verdict.error });
        return this.#backoff(account, lane, verdict.afterMs);
    }
  }

  #backoff(account: string, lane: Lane, askedMs?: number, maxMs?: number): false {
    lane.failures += 1;
    const ms = backoffMs(lane.failures, this.#random, askedMs, maxMs);
    lane.notBefore = this.#clock.monotonic() + ms;
    lane.timer?.cancel();
    lane.timer = this.#clock.setTimer(() => {
      lane.timer = undefined;
      this.#pump(account);
    }, ms);
    return false;
  }

  /** Deletes what is past retention, in small batches with a turn of the event loop between them. */
  #prune(): void {
    if (this.#stopping) return;
    const before = this.#clock.now() - this.#config.retainMs;
    void (async () => {
      let total = 0;
      try {
        for (let n = PRUNE_BATCH; n === PRUNE_BATCH && !this.#stopping; ) {
          n = this.#store.pruneBatch(before, PRUNE_BATCH);
          total += n;
          await new Promise((r) => setImmediate(r));
        }
        if (total) this.#log.info('outbox: pruned old entries', { entries: total });
      } catch (err) {
        this.#log.warn('outbox: pruning failed; tried again later', { error: String(err) });
      }
      this.#pruneTimer = this.#clock.setTimer(() => this.#prune(), PRUNE_EVERY_MS);
    })();
  }
}
