/**
 * The one client of the agent's socket API: HTTP/1.1 over the Unix socket (node:http), one connection per
 * call, every call bounded in time from connecting to the last byte, answers read into the wire types.
 *
 * Expected answers are returned (a token, or the agent's error body); a call that gets no usable answer
 * (nothing listening, permission denied, too slow, not the agent's API) throws an AgentClientError whose
 * message says so in words a person can act on. Nothing secret is in a message: no token, no body.
 */
import type { IncomingHttpHeaders } from 'node:http';
import {
  AGENT_HEADER,
  AGENT_HEADER_VALUE,
  type AccountStatusBody,
  type EnqueuedBody,
  type EnqueueRequestBody,
  type ErrorBody,
  type HealthBody,
  type OutboxEntryBody,
  type OutboxEntryState,
  type RefreshRequestBody,
  type StatusBody,
  type TokenBody,
} from './wire.js';
const { request } = process.getBuiltinModule('node:http');

/** A token may wait for a login, which the agent bounds at 30 s. */
export const DEFAULT_TIMEOUT_MS = 35_000;
/** /metrics is the largest answer: a few lines per account. */
const MAX_ANSWER_BYTES = 4 * 1024 * 1024;

export type AgentClientErrorCode =
  /** Nothing listens on the socket (no file, or a stale one). */
  | 'not_running'
  | 'permission_denied'
  | 'timeout'
  /** Another failure to connect or a connection lost mid-answer. */
  | 'unreachable'
  /** An answer, but not one this call can use (an error status, or not the agent's JSON). */
  | 'bad_answer';

export class AgentClientError extends Error {
  override readonly name = 'AgentClientError';
  /** The HTTP status of a bad_answer. */
  readonly status?: number;
  /** The agent's error body of a bad_answer, when it sent one. */
  readonly body?: ErrorBody;

  constructor(
    readonly code: AgentClientErrorCode,
    message: string,
    readonly socket: string,
    options: { cause?: unknown; status?: number; body?: ErrorBody } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    if (options.status !== undefined) this.status = options.status;
    if (options.body !== undefined) this.body = options.body;
  }
}

export interface AgentClientOptions {
  socket: string;
  /** Bound on each call, from connecting to the last byte of the answer (default 35 s). */
  timeoutMs?: number;
  /** How to start the agent, added to the "not running" message (e.g. `systemctl start pos-token-agent`). */
  startCommand?: string;
}

export type TokenResult = { ok: true; token: TokenBody } | { ok: false; status: number; error: ErrorBody };

/** The agent's "no" to a call: its status and error body (one it did not send is made up, saying so). */
export type Refusal = { ok: false; status: number; error: ErrorBody };

/** `POST /v1/outbox`: 202 stored (`created`), or 200 with the entry a repeated key already made. */
export type EnqueueCallResult =
  | { ok: true; created: true; enqueued: EnqueuedBody }
  | { ok: true; created: false; entry: OutboxEntryBody }
  | Refusal;

export type OutboxEntryResult = { ok: true; entry: OutboxEntryBody } | Refusal;
/** A page of entries; `next` is the `after` of the page that follows, null when none does. */
export type OutboxListResult = { ok: true; entries: OutboxEntryBody[]; next: string | null } | Refusal;

export interface OutboxListQuery {
  account?: string;
  state?: OutboxEntryState;
  /** 1 to 1000; the agent's default is 100. */
  limit?: number;
  /** The `next` of the page before. */
  after?: string;
}

export interface TokenQuery {
  /** Default `default`. */
  account?: string;
  /** Seconds the token must have left; default 60. */
  minTtl?: number;
}

export interface RefreshQuery extends TokenQuery {
  /** The token an API refused. */
  rejectedToken: string;
}

export interface AgentClient {
  readonly socket: string;
  /** `GET /v1/token`. */
  token(query?: TokenQuery): Promise<TokenResult>;
  /** `POST /v1/token/refresh`. */
  refresh(query: RefreshQuery): Promise<TokenResult>;
  /** `GET /v1/status`. */
  status(): Promise<StatusBody>;
  /** One account of `GET /v1/status`; undefined when the agent has no such account. */
  accountStatus(account: string): Promise<AccountStatusBody | undefined>;
  /** `GET /v1/health`: both the 200 and the 503 answer. */
  health(): Promise<HealthBody>;
  /** `GET /metrics`: the Prometheus text. */
  metrics(): Promise<string>;
  /** `POST /v1/outbox`. */
  enqueue(body: EnqueueRequestBody): Promise<EnqueueCallResult>;
  /** `GET /v1/outbox?account=&state=&limit=&after=`: a page, what waits first. */
  outboxList(query?: OutboxListQuery): Promise<OutboxListResult>;
  /** `GET /v1/outbox/ID`: the entry with the body as enqueued. */
  outboxEntry(id: string): Promise<OutboxEntryResult>;
  /** `DELETE /v1/outbox/ID`: 409 not_cancellable unless queued. */
  outboxCancel(id: string): Promise<OutboxEntryResult>;
  /** `POST /v1/outbox/ID/retry`: 409 not_retryable for a delivered entry. */
  outboxRetry(id: string): Promise<OutboxEntryResult>;
}

export function createAgentClient(options: AgentClientOptions): AgentClient {
  const { socket } = options;
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const call = (method: Method, path: string, body?: unknown): Promise<RawAnswer> =>
    exchange({ socket, timeoutMs, method, path, body, ...(options.startCommand ? { startCommand: options.startCommand } : {}) });

  const tokenResult = (a: RawAnswer): TokenResult => readToken(socket, a);
  const outboxResult = <T>(a: RawAnswer, read: (json: Json | undefined) => T | undefined, what: string) => readOutbox(socket, a, read, what);
  const entryCall = async (method: Method, path: string): Promise<OutboxEntryResult> => {
    const r = outboxResult(await call(method, path), (j) => (isOutboxEntryBody(j) ? j : undefined), 'an outbox answer without an entry');
    return r.ok ? { ok: true, entry: r.value } : r;
  };

  const status = async (): Promise<StatusBody> => {
    const a = await call('GET', '/v1/status');
    const json = jsonObject(a.text);
    if (a.status !== 200) throw badAnswer(socket, a);
    if (!isStatusBody(json)) throw badAnswer(socket, a, 'a status answer without accounts');
    return json;
  };

  return {
    socket,
    async token(query = {}) {
      return tokenResult(await call('GET', withQuery('/v1/token', { account: query.account, min_ttl: query.minTtl })));
    },
    async refresh(query) {
      const body: RefreshRequestBody = {
        ...(query.account !== undefined ? { account: query.account } : {}),
        rejected_token: query.rejectedToken,
        ...(query.minTtl !== undefined ? { min_ttl: query.minTtl } : {}),
      };
      return tokenResult(await call('POST', '/v1/token/refresh', body));
    },
    status,
    async accountStatus(account) {
      const { accounts } = await status();
      return Object.hasOwn(accounts, account) ? accounts[account] : undefined;
    },
    async health() {
      const a = await call('GET', '/v1/health');
      const json = jsonObject(a.text);
      if ((a.status === 200 || a.status === 503) && isHealthBody(json)) return json;
      throw badAnswer(socket, a);
    },
    async metrics() {
      const a = await call('GET', '/metrics');
      if (a.status !== 200) throw badAnswer(socket, a);
      return a.text;
    },
    async enqueue(body) {
      const a = await call('POST', '/v1/outbox', body);
      if (a.status === 202) {
        const r = outboxResult(a, (j) => (isEnqueuedBody(j) ? j : undefined), 'an enqueue answer without an id');
        return r.ok ? { ok: true, created: true, enqueued: r.value } : r;
      }
      const r = outboxResult(a, (j) => (isOutboxEntryBody(j) ? j : undefined), 'an enqueue answer without an entry');
      return r.ok ? { ok: true, created: false, entry: r.value } : r;
    },
    async outboxList(query = {}) {
      const a = await call('GET', withQuery('/v1/outbox', { account: query.account, state: query.state, limit: query.limit, after: query.after }));
      const r = outboxResult(a, (j) => (isOutboxListBody(j) ? j : undefined), 'a list answer without entries');
      return r.ok ? { ok: true, entries: r.value.entries, next: typeof r.value.next === 'string' ? r.value.next : null } : r;
    },
    outboxEntry: (id) => entryCall('GET', entryPath(id)),
    outboxCancel: (id) => entryCall('DELETE', entryPath(id)),
    outboxRetry: (id) => entryCall('POST', `${entryPath(id)}/retry`),
  };
}

/** `path` with the parameters given (undefined ones left out), in the order given. */
function withQuery(path: string, params: Record<string, string | number | undefined>): string {
  const q = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) if (value !== undefined) q.set(key, String(value));
  return `${path}${q.size ? `?${q}` : ''}`;
}

/** A token answer: the token, or the agent's refusal; a 200 without a token is not the agent's answer. */
function readToken(socket: string, a: RawAnswer): TokenResult {
  const json = jsonObject(a.text);
  if (a.status === 200) {
    if (!isTokenBody(json)) throw badAnswer(socket, a, 'a token answer without a token');
    return { ok: true, token: json };
  }
  return { ok: false, status: a.status, error: errorBody(json, a.status) };
}

/** A 2xx whose body `read` accepts, or the agent's refusal; any other 2xx is not the agent's answer. */
function readOutbox<T>(socket: string, a: RawAnswer, read: (json: Json | undefined) => T | undefined, what: string): { ok: true; value: T } | Refusal {
  const json = jsonObject(a.text);
  if (a.status < 200 || a.status > 299) return refusal(a.status, json);
  const value = read(json);
  if (value === undefined) throw badAnswer(socket, a, what);
  return { ok: true, value };
}

/** An entry's path; the id is encoded, so that no id can name another route. */
function entryPath(id: string): string {
  return `/v1/outbox/${encodeURIComponent(id)}`;
}

// ---- transport ------------------------------------------------------------------------------

type Method = 'GET' | 'POST' | 'DELETE';

interface RawAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
}

interface Exchange {
  socket: string;
  timeoutMs: number;
  method: Method;
  path: string;
  body?: unknown;
  startCommand?: string;
}

function exchange(x: Exchange): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const payload = x.body === undefined ? undefined : JSON.stringify(x.body);
    let settled = false;
    const settle = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      fn();
    };
    const req = request(
      {
        socketPath: x.socket,
        method: x.method,
        path: x.path,
        agent: false,
        headers: {
          [AGENT_HEADER]: AGENT_HEADER_VALUE,
          ...(payload !== undefined ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > MAX_ANSWER_BYTES) {
            settle(() => reject(new AgentClientError('bad_answer', `the answer of ${x.socket} is over ${MAX_ANSWER_BYTES} bytes`, x.socket)));
            req.destroy();
            return;
          }
          chunks.push(c);
        });
        res.on('end', () =>
          settle(() => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') })),
        );
        res.on('error', (err) => settle(() => reject(lost(x.socket, err))));
        res.on('close', () => {
          if (!res.complete) settle(() => reject(lost(x.socket, new Error('the connection closed before the answer was complete'))));
        });
      },
    );
    const timer = setTimeout(() => {
      settle(() =>
        reject(new AgentClientError('timeout', `no answer from the agent at ${x.socket} within ${formatSeconds(x.timeoutMs)} s`, x.socket)),
      );
      req.destroy();
    }, x.timeoutMs);
    req.on('error', (err: NodeJS.ErrnoException) => settle(() => reject(connectionError(err, x.socket, x.startCommand))));
    req.end(payload);
  });
}

/** A failure to connect to the socket, in words a person can act on. */
export function connectionError(err: NodeJS.ErrnoException, socket: string, startCommand?: string): AgentClientError {
  switch (err.code) {
    case 'ENOENT':
    case 'ECONNREFUSED':
      return new AgentClientError(
        'not_running',
        `the agent is not running (no socket answering at ${socket})${startCommand ? `; start it with: ${startCommand}` : ''}`,
        socket,
        { cause: err },
      );
    case 'EACCES':
    case 'EPERM':
      return new AgentClientError('permission_denied', `permission denied on ${socket}; run as a member of the agent's socket group`, socket, {
        cause: err,
      });
    default:
      return lost(socket, err);
  }
}

function lost(socket: string, err: Error): AgentClientError {
  return new AgentClientError('unreachable', `cannot talk to the agent at ${socket}: ${err.message}`, socket, { cause: err });
}

function badAnswer(socket: string, a: RawAnswer, what?: string): AgentClientError {
  const json = jsonObject(a.text);
  const body = typeof json?.error === 'string' ? errorBody(json, a.status) : undefined;
  const said = body ? ` ${body.error}${body.message ? `: ${body.message}` : ''}` : what ? ` ${what}` : '';
  return new AgentClientError('bad_answer', `the agent at ${socket} answered ${a.status}${said}`, socket, {
    status: a.status,
    ...(body ? { body } : {}),
  });
}

function formatSeconds(ms: number): string {
  return String(Math.round(ms / 100) / 10);
}

// ---- reading answers ------------------------------------------------------------------------

type Json = Record<string, unknown>;

function jsonObject(text: string): Json | undefined {
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Json) : undefined;
  } catch {
    return undefined;
  }
}

function isTokenBody(v: Json | undefined): v is Json & TokenBody {
  return (
    v !== undefined &&
    typeof v.access_token === 'string' &&
    typeof v.token_type === 'string' &&
    typeof v.expires_in === 'number' &&
    typeof v.expires_at === 'string' &&
    typeof v.account === 'string'
  );
}

function isStatusBody(v: Json | undefined): v is Json & StatusBody {
  if (v === undefined || typeof v.accounts !== 'object' || v.accounts === null || Array.isArray(v.accounts)) return false;
  return Object.values(v.accounts).every((a) => typeof a === 'object' && a !== null && typeof (a as Json).state === 'string');
}

function isHealthBody(v: Json | undefined): v is Json & HealthBody {
  return v !== undefined && (v.status === 'ok' || (v.status === 'unhealthy' && Array.isArray(v.failing)));
}

function isOutboxEntryBody(v: Json | undefined): v is Json & OutboxEntryBody {
  return (
    v !== undefined &&
    typeof v.id === 'string' &&
    typeof v.account === 'string' &&
    typeof v.state === 'string' &&
    typeof v.attempts === 'number' &&
    typeof v.created_at === 'string'
  );
}

function isEnqueuedBody(v: Json | undefined): v is Json & EnqueuedBody {
  return v !== undefined && typeof v.id === 'string' && v.state === 'queued' && typeof v.position === 'number';
}

function isOutboxListBody(v: Json | undefined): v is Json & { entries: OutboxEntryBody[]; next?: unknown } {
  return v !== undefined && Array.isArray(v.entries) && v.entries.every((e: unknown) => typeof e === 'object' && e !== null && isOutboxEntryBody(e as Json));
}

function refusal(status: number, json: Json | undefined): Refusal {
  return { ok: false, status, error: errorBody(json, status) };
}

/** The agent's error body; an answer without one (not the agent, or a proxy) gets one saying so. */
function errorBody(v: Json | undefined, status: number): ErrorBody {
  if (v !== undefined && typeof v.error === 'string') {
    return { ...v, message: typeof v.message === 'string' ? v.message : '' } as ErrorBody;
  }
  return { error: status >= 500 ? 'internal_error' : 'bad_request', message: `the answer (${status}) carries no error body` };
}
