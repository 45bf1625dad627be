/**
 * `/v1/outbox...`: enqueue (acknowledged once durably stored), read, list, cancel and retry entries. The
 * delivery itself runs in outbox/; this file checks what a till sent and maps entries to the wire.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  DEFAULT_ACCOUNT,
  isAccountName,
  OUTBOX_KEY,
  OUTBOX_LIST_DEFAULT,
  OUTBOX_LIST_MAX,
  OUTBOX_METHODS,
  OUTBOX_STATES,
  type EnqueuedBody,
  type OutboxEntryBody,
  type OutboxEntryState,
  type OutboxListBody,
} from '../api/index.js';
import { apiLimits, type AccountConfig } from '../config/index.js';
import { isForwardableHeader, resolveTarget } from '../forward/index.js';
import type { Outbox } from '../outbox/index.js';
import { isOutboxCursor, type OutboxEntry, type OutboxInput } from '../store/index.js';
import { allow, HttpError, readJson, send } from './http.js';
import { iso } from './status.js';

/** What the outbox routes need: the accounts as configured now, and the outbox. */
export interface OutboxSource {
  account(name: string): AccountConfig | undefined;
  accountNames(): string[];
  outbox: Pick<Outbox, 'enqueue' | 'get' | 'list' | 'cancel' | 'retry'>;
}

/** Room for the envelope around the largest body an account takes. */
const ENVELOPE_BYTES = 64 * 1024;
const MAX_HEADERS = 32;
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$/;
const HEADER_VALUE = /^[\x20-\x7e]{0,1000}$/;

export async function handleOutbox(req: IncomingMessage, res: ServerResponse, url: URL, source: OutboxSource): Promise<void> {
  const rest = url.pathname.slice('/v1/outbox'.length);
  if (rest === '' || rest === '/') {
    if (req.method === 'POST') return enqueue(req, res, source);
    allow(req, 'GET');
    return list(res, url, source);
  }
  const m = /^\/([0-9a-f-]{36})(\/retry)?$/.exec(rest);
  if (!m) throw new HttpError(404, { error: 'not_found', message: 'no such outbox entry' });
  const id = m[1]!;
  if (m[2]) {
    allow(req, 'POST');
    const r = source.outbox.retry(id);
    if (r.ok) return send(res, 200, entryBody(r.entry));
    if (r.reason === 'not_found') throw notFound();
    throw new HttpError(409, { error: 'not_retryable', message: `a ${r.entry!.state} entry cannot be retried`, state: r.entry!.state });
  }
  if (req.method === 'DELETE') {
    const r = source.outbox.cancel(id);
    if (r.ok) return send(res, 200, entryBody(r.entry));
    if (r.reason === 'not_found') throw notFound();
    throw new HttpError(409, { error: 'not_cancellable', message: `only a queued entry can be cancelled; this one is ${r.entry!.state}`, state: r.entry!.state });
  }
  allow(req, 'GET');
  const entry = source.outbox.get(id);
  if (!entry) throw notFound();
  send(res, 200, entryBody(entry, true));
}

const notFound = () => new HttpError(404, { error: 'not_found', message: 'no such outbox entry' });

async function enqueue(req: IncomingMessage, res: ServerResponse, source: OutboxSource): Promise<void> {
  const names = source.accountNames();
  const cap = Math.max(0, ...names.map((n) => apiLimitsOf(source.account(n)))) + ENVELOPE_BYTES;
  const raw = await readJson(req, cap);
  const input = checkEnqueue(raw, source);
  const result = await source.outbox.enqueue(input);
  if (!result.ok) {
    send(res, 507, { error: 'outbox_full', reason: result.reason, message: result.message });
    return;
  }
  if (result.created) {
    const body: EnqueuedBody = { id: result.entry.id, state: 'queued', position: result.position };
    send(res, 202, body);
  } else {
    send(res, 200, { ...entryBody(result.entry), ...(isPending(result.entry.state) ? { position: result.position } : {}) });
  }
}

/** The request body as an entry to store, or a 400/404/409/413 naming what is wrong. */
export function checkEnqueue(raw: Record<string, unknown>, source: Pick<OutboxSource, 'account' | 'accountNames'>): OutboxInput {
  const bad = (message: string) => new HttpError(400, { error: 'bad_request', message });
  for (const key of Object.keys(raw)) {
    if (!['account', 'method', 'path', 'headers', 'body', 'key'].includes(key)) throw bad(`unknown field ${JSON.stringify(key).slice(0, 80)}`);
  }
  const name = raw.account === undefined ? DEFAULT_ACCOUNT : raw.account;
  if (typeof name !== 'string' || !isAccountName(name)) throw bad('account must be an account name');
  const method = raw.method === undefined ? 'POST' : raw.method;
  if (typeof method !== 'string' || !(OUTBOX_METHODS as readonly string[]).includes(method)) throw bad(`method must be one of ${OUTBOX_METHODS.join(', ')}`);
  if (typeof raw.path !== 'string' || raw.path.length > 2048) throw bad('path must be a string (at most 2048 characters) starting with "/"');
  if (!('body' in raw)) throw bad('body is required (the JSON document to send)');
  if (raw.key !== undefined && (typeof raw.key !== 'string' || !OUTBOX_KEY.test(raw.key))) throw bad('key must be 1 to 200 printable ASCII characters without spaces');
  const headers = checkHeaders(raw.headers);
  const account = source.account(name);
  if (!account) throw new HttpError(404, { error: 'unknown_account', message: `no account named ${name}`, known_accounts: source.accountNames() });
  if (!account.apiUrl) throw new HttpError(409, { error: 'api_not_configured', message: `account ${name} has no apiUrl; set accounts.${name}.apiUrl in the config` });
  const target = resolveTarget(account.apiUrl, raw.path);
  if (!target.ok || !raw.path.startsWith('/')) throw bad(`path: ${target.ok ? 'must start with "/"' : target.message}`);
  const body = JSON.stringify(raw.body);
  const cap = apiLimits(account).maxBodyBytes;
  if (Buffer.byteLength(body) > cap) {
    throw new HttpError(413, { error: 'payload_too_large', message: `body must be at most ${cap} bytes for account ${name}` });
  }
  return { account: name, method, path: raw.path, headers, body, ...(raw.key !== undefined ? { key: raw.key as string } : {}) };
}

function apiLimitsOf(account: AccountConfig | undefined): number {
  return account ? apiLimits(account).maxBodyBytes : 0;
}

function checkHeaders(value: unknown): Record<string, string> {
  if (value === undefined) return {};
  const bad = (message: string) => new HttpError(400, { error: 'bad_request', message });
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw bad('headers must be an object of header names to strings');
  const entries = Object.entries(value);
  if (entries.length > MAX_HEADERS) throw bad(`headers: at most ${MAX_HEADERS}`);
  const out: Record<string, string> = {};
  for (const [name, v] of entries) {
    if (!HEADER_NAME.test(name)) throw bad(`headers: ${JSON.stringify(name).slice(0, 80)} is not a header name`);
    if (typeof v !== 'string' || !HEADER_VALUE.test(v)) throw bad(`headers.${name}: expected printable ASCII, at most 1000 characters`);
    if (!isForwardableHeader(name)) throw bad(`headers.${name}: set by the agent (or never forwarded); remove it`);
    out[name.toLowerCase()] = v;
  }
  return out;
}

/** `GET /v1/outbox?account=&state=&limit=&after=`: a page of entries, what waits first, and where the next starts. */
function list(res: ServerResponse, url: URL, source: OutboxSource): void {
  const q = url.searchParams;
  const bad = (message: string) => new HttpError(400, { error: 'bad_request', message });
  const account = q.get('account') ?? undefined;
  if (account !== undefined && !isAccountName(account)) throw bad('account must be an account name');
  if (account !== undefined && !source.account(account)) {
    throw new HttpError(404, { error: 'unknown_account', message: `no account named ${account}`, known_accounts: source.accountNames() });
  }
  const state = q.get('state') ?? undefined;
  if (state !== undefined && !(OUTBOX_STATES as readonly string[]).includes(state)) throw bad(`state must be one of ${OUTBOX_STATES.join(', ')}`);
  const rawLimit = q.get('limit');
  const limit = rawLimit === null ? OUTBOX_LIST_DEFAULT : /^\d{1,4}$/.test(rawLimit) ? Number(rawLimit) : NaN;
  if (!(limit >= 1 && limit <= OUTBOX_LIST_MAX)) throw bad(`limit must be 1 to ${OUTBOX_LIST_MAX}`);
  const after = q.get('after') ?? undefined;
  if (after !== undefined && !isOutboxCursor(after)) throw bad('after must be the "next" of a page this agent listed before');
  const page = source.outbox.list({
    ...(account ? { account } : {}),
    ...(state ? { state: state as OutboxEntryState } : {}),
    limit,
    ...(after !== undefined ? { after } : {}),
  });
  const body: OutboxListBody = { entries: page.entries.map((e) => entryBody(e)), next: page.next };
  send(res, 200, body);
}

function isPending(state: OutboxEntryState): boolean {
  return state === 'queued' || state === 'sending';
}

/** An entry on the wire; `withBody` adds what was enqueued (GET of one entry). */
export function entryBody(e: OutboxEntry, withBody = false): OutboxEntryBody {
  return {
    id: e.id,
    account: e.account,
    key: e.key,
    method: e.method,
    path: e.path,
    state: e.state,
    attempts: e.attempts,
    created_at: iso(e.createdAt),
    delivered_at: iso(e.deliveredAt),
    last_error: e.lastError,
    response: e.response ? { status: e.response.status, body: jsonOrText(e.response.body) } : null,
    ...(withBody ? { body: jsonOrText(e.body) } : {}),
  };
}

function jsonOrText(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
