/**
 * The socket API's HTTP plumbing shared by its routes: errors as answers, JSON in and out, the common parameters.
 * Every error answer the agent makes goes out through `sendError` (or, for a request Node could not parse, the raw
 * answer in listen.ts): that is where `X-Pos-Agent-Error` is set, once.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { AGENT_ERROR_HEADER, DEFAULT_ACCOUNT, isAccountName, MIN_TTL_RULE, parseMinTtl, type ErrorBody } from '../api/index.js';

/** The most a JSON body of the token routes may hold (an account name and a token: a fixed limit). */
export const MAX_BODY_BYTES = 16 * 1024;

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: ErrorBody,
    readonly headers: Record<string, string> = {},
  ) {
    super(String(body.error));
  }
}

/** An error answer of the agent's own: the body, its headers, and `X-Pos-Agent-Error` naming the body's `error`. */
export function sendError(res: ServerResponse, err: HttpError): void {
  send(res, err.status, err.body, { ...err.headers, [AGENT_ERROR_HEADER]: err.body.error });
}

export const badRequest = (message: string): HttpError => new HttpError(400, { error: 'bad_request', message });

export function accountParam(value: string | null): string {
  if (value === null || value === '') return DEFAULT_ACCOUNT;
  if (!isAccountName(value)) throw badRequest('account must be letters, digits, ".", "_" or "-"');
  return value;
}

export function minTtlParam(value: string): number {
  const minTtl = parseMinTtl(value);
  if (minTtl === undefined) throw badRequest(MIN_TTL_RULE);
  return minTtl;
}

export function expectString(value: unknown, name: string): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > 16_000) throw badRequest(`${name} must be a non-empty string`);
  return value;
}

/** A byte count as people read it: 5,242,880. */
export function formatBytes(n: number): string {
  return n.toLocaleString('en-US');
}

/**
 * The 413 for a body past one limit: the message names the limit, its value, and what raises it. `size` is the
 * body's length when it was declared (Content-Length); otherwise all that is known is that it passed the limit.
 */
export function payloadTooLarge(what: string, size: number | undefined, limit: number, raise: { setting: string; file: string } | { fixed: string }): HttpError {
  const is = size === undefined ? `more than ${formatBytes(limit)} bytes` : `${formatBytes(size)} bytes`;
  const message =
    'setting' in raise
      ? `${what} is ${is}; ${raise.setting} allows ${formatBytes(limit)} bytes: raise it in ${raise.file} (then systemctl reload pos-token-agent)`
      : `${what} is ${is}; ${raise.fixed} takes at most ${formatBytes(limit)} bytes (a fixed limit)`;
  return tooLarge(message, limit, 'setting' in raise ? raise.setting : null);
}

/** A 413 with its message as given: the limit (bytes) and the config key that raises it (null: none does). */
export function tooLarge(message: string, limit: number, setting: string | null): HttpError {
  return new HttpError(413, { error: 'payload_too_large', message, limit_bytes: limit, setting });
}

/** A request body: JSON, at most `limit` bytes (`tooLarge` makes the 413 past it), one JSON object. */
export async function readJson(
  req: IncomingMessage,
  limit: number,
  tooLarge: (size: number | undefined) => HttpError,
): Promise<Record<string, unknown>> {
  const type = req.headers['content-type'] ?? '';
  if (!/^application\/json\b/i.test(type)) {
    throw new HttpError(415, { error: 'unsupported_media_type', message: 'send the body as application/json' });
  }
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) throw tooLarge(declared);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw tooLarge(undefined);
    chunks.push(chunk);
  }
  let value: unknown;
  try {
    value = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw badRequest('the body is not valid JSON');
  }
  // A JSON string, even one holding a JSON object (a body encoded twice), is refused like any other non-object.
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw badRequest('the body must be a JSON object');
  return value as Record<string, unknown>;
}

export function send(res: ServerResponse, status: number, body: object, headers: Record<string, string> = {}): void {
  if (res.headersSent) return;
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(res.req.method === 'HEAD' ? undefined : text);
}
