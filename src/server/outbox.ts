/**
 * `/v1/outbox...`: enqueue (acknowledged once durably stored), read, list, cancel and retry entries. The
 * delivery itself runs in outbox/; this file checks what a till sent and maps entries to the wire.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  DEFAULT_ACCOUNT,
  isAccountName,
  OUTBOX_KEY,
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
import type { OutboxEntry, OutboxInput } from '../store/index.js';
import { knownAccount } from './accounts.js';
import type { AccountDirectory, OutboxSource, ServerContext } from './context.js';
import { badRequest, formatBytes, HttpError, payloadTooLarge, readJson, send, tooLarge } from './http.js';
import { iso } from './status.js';

/** Room for the envelope around the largest body an account takes. */
const ENVELOPE_BYTES = 64 * 1024;
const MAX_HEADERS = 32;
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$/;
const HEADER_VALUE = /^[\x20-\x7e]{0,1000}$/;
/** `/v1/outbox/ID` and `/v1/outbox/ID/retry`: the id's place in the path. */
const ID_START = '/v1/outbox/'.length;
const ID_LENGTH = 36;

/** The outbox the routes act on (the route table answers 404 for these paths when the agent has none). */
function outboxOf(ctx: ServerContext): OutboxSource {
  const source = ctx.options.outbox;
  if (!source) throw new HttpError(404, { error: 'not_found', message: 'this agent has no outbox' });
  return source;
}

const idOf = (url: URL): string => url.pathname.slice(ID_START, ID_START + ID_LENGTH);

/** GET /v1/outbox/ID */
export function getEntry(ctx: ServerContext, _req: IncomingMessage, res: ServerResponse, url: URL): void {
  const entry = outboxOf(ctx).outbox.get(idOf(url));
  if (!entry) throw noSuchEntry();
  send(res, 200, entryBody(entry, true));
}

/** DELETE /v1/outbox/ID: cancels a queued entry. */
export function cancelEntry(ctx: ServerContext, _req: IncomingMessage, res: ServerResponse, url: URL): void {
  const r = outboxOf(ctx).outbox.cancel(idOf(url));
  if (r.ok) return send(res, 200, entryBody(r.entry));
  if (r.reason === 'not_found') throw noSuchEntry();
  throw new HttpError(409, { error: 'not_cancellable', message: `only a queued entry can be cancelled; this one is ${r.entry!.state}`, state: r.entry!.state });
}

/** POST /v1/outbox/ID/retry: queues a rejected or cancelled entry again, or sends a queued one now. */
export function retryEntry(ctx: ServerContext, _req: IncomingMessage, res: ServerResponse, url: URL): void {
  const r = outboxOf(ctx).outbox.retry(idOf(url));
  if (r.ok) return send(res, 200, entryBody(r.entry));
  if (r.reason === 'not_found') throw noSuchEntry();
  throw new HttpError(409, { error: 'not_retryable', message: `a ${r.entry!.state} entry cannot be retried`, state: r.entry!.state });
}

export const noSuchEntry = (): HttpError => new HttpError(404, { error: 'not_found', message: 'no such outbox entry' });

/** POST /v1/outbox: 202 once the entry is durably stored; 200 with the existing entry for a key used before. */
export async function enqueueEntry(ctx: ServerContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const source = outboxOf(ctx);
  const envelope = envelopeLimit(source, ctx.configFile);
  const raw = await readJson(req, envelope.bytes, envelope.tooLarge);
  const input = checkEnqueue(raw, source, ctx.configFile);
  const result = await source.outbox.enqueue(input);
  if (!result.ok) throw new HttpError(507, { error: 'outbox_full', reason: result.reason, message: result.message });
  if (result.created) {
    const body: EnqueuedBody = { id: result.entry.id, state: 'queued', position: result.position };
    send(res, 202, body);
  } else {
    send(res, 200, { ...entryBody(result.entry), ...(isPending(result.entry.state) ? { position: result.position } : {}) });
  }
}

/**
 * How large an enqueue request may be before it is parsed (which account it is for is not known yet): the largest
 * body any account takes, plus room for the entry's other fields. Past it, the 413 names that account's setting.
 */
function envelopeLimit(source: AccountDirectory, configFile: () => string): { bytes: number; tooLarge: (size: number | undefined) => HttpError } {
  let largest: { name: string; bytes: number } | undefined;
  for (const name of source.accountNames()) {
    const bytes = apiLimitsOf(source.account(name));
    if (!largest || bytes > largest.bytes) largest = { name, bytes };
  }
  const bytes = (largest?.bytes ?? 0) + ENVELOPE_BYTES;
  const fields = `${formatBytes(ENVELOPE_BYTES)} for the entry's other fields`;
  return {
    bytes,
    tooLarge: (size) => {
      const is = size === undefined ? `more than ${formatBytes(bytes)} bytes` : `${formatBytes(size)} bytes`;
      if (!largest) return tooLarge(`the request body is ${is}; with no account configured, an entry takes at most ${fields}`, bytes, null);
      const setting = `accounts.${largest.name}.api.maxBodyBytes`;
      return tooLarge(
        `the request body is ${is}, past the most an outbox entry takes (${formatBytes(bytes)} bytes): ${setting} ` +
          `(${formatBytes(largest.bytes)} bytes, the largest of the accounts) plus ${fields}; raise it in ${configFile()} (then systemctl reload pos-token-agent)`,
        bytes,
        setting,
      );
    },
  };
}

/** The request body as an entry to store, or a 400/404/409/413 naming what is wrong. */
export function checkEnqueue(raw: Record<string, unknown>, source: AccountDirectory, configFile: () => string): OutboxInput {
  const bad = badRequest;
  for (const key of Object.keys(raw)) {
    if (!['account', 'method', 'path', 'headers', 'body', 'key'].includes(key)) throw bad(`unknown field ${JSON.stringify(key).slice(0, 80)}`);
  }
  const name = raw.account === undefined ? DEFAULT_ACCOUNT : raw.account;
  if (typeof name !== 'string' || !isAccountName(name)) throw bad('account must be an account name');
  const method = raw.method === undefined ? 'POST' : raw.method;
  if (typeof method !== 'string' || !(OUTBOX_METHODS as readonly string[]).includes(method)) throw bad(`method must be one of ${OUTBOX_METHODS.join(', ')}`);
  if (typeof raw.path !== 'string' || raw.path.length > 2048) throw bad('path must be a string (at most 2048 characters) starting with "/"');
  if (!('body' in raw)) throw bad('body is required (the JSON document to send)');
  if (isEncodedTwice(raw.body)) throw bad('body is a JSON string holding a JSON document (encoded twice?): send the document itself as body');
  if (raw.key !== undefined && (typeof raw.key !== 'string' || !OUTBOX_KEY.test(raw.key))) throw bad('key must be 1 to 200 printable ASCII characters without spaces');
  const headers = checkHeaders(raw.headers);
  const account = knownAccount(source, name, configFile);
  if (!account.apiUrl) throw new HttpError(409, { error: 'api_not_configured', message: `account ${name} has no apiUrl; set accounts.${name}.apiUrl in the config` });
  const target = resolveTarget(account.apiUrl, raw.path);
  if (!target.ok || !raw.path.startsWith('/')) throw bad(`path: ${target.ok ? 'must start with "/"' : target.message}`);
  const body = JSON.stringify(raw.body);
  const cap = apiLimits(account).maxBodyBytes;
  const size = Buffer.byteLength(body);
  if (size > cap) throw payloadTooLarge("the entry's body (as JSON)", size, cap, { setting: `accounts.${name}.api.maxBodyBytes`, file: configFile() });
  return { account: name, method, path: raw.path, headers, body, ...(raw.key !== undefined ? { key: raw.key as string } : {}) };
}

/**
 * Whether an entry's body is a JSON string whose text is itself a JSON object or array: a document encoded twice
 * (`JSON.stringify` of a string the till had already stringified). The API would get a string, not the document,
 * and answer 4xx; the entry would end `rejected` long after the till could fix it. A string that is not JSON, or
 * holds a bare JSON scalar, is a body like any other.
 */
function isEncodedTwice(body: unknown): boolean {
  if (typeof body !== 'string') return false;
  const t = body.trimStart();
  if (!t.startsWith('{') && !t.startsWith('[')) return false;
  try {
    const inner: unknown = JSON.parse(body);
    return typeof inner === 'object' && inner !== null;
  } catch {
    return false;
  }
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

/** GET /v1/outbox?account=&state=&limit= */
export function listEntries(ctx: ServerContext, _req: IncomingMessage, res: ServerResponse, url: URL): void {
  const source = outboxOf(ctx);
  const q = url.searchParams;
  const account = q.get('account') ?? undefined;
  if (account !== undefined && !isAccountName(account)) throw new HttpError(400, { error: 'bad_request', message: 'account must be an account name' });
  if (account !== undefined) knownAccount(source, account, ctx.configFile);
  const state = q.get('state') ?? undefined;
  if (state !== undefined && !(OUTBOX_STATES as readonly string[]).includes(state)) {
    throw new HttpError(400, { error: 'bad_request', message: `state must be one of ${OUTBOX_STATES.join(', ')}` });
  }
  const rawLimit = q.get('limit');
  const limit = rawLimit === null ? 100 : /^\d{1,4}$/.test(rawLimit) ? Number(rawLimit) : NaN;
  if (!(limit >= 1 && limit <= OUTBOX_LIST_MAX)) throw new HttpError(400, { error: 'bad_request', message: `limit must be 1 to ${OUTBOX_LIST_MAX}` });
  const entries = source.outbox.list({ ...(account ? { account } : {}), ...(state ? { state: state as OutboxEntryState } : {}), limit });
  const body: OutboxListBody = { entries: entries.map((e) => entryBody(e)) };
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
