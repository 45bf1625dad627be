/**
 * The socket API's HTTP plumbing shared by its routes: errors as answers, JSON in and out, the common parameters.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { DEFAULT_ACCOUNT, isAccountName, MIN_TTL_RULE, parseMinTtl, type ErrorBody } from '../api/index.js';

/** The most a JSON body of the token routes may hold. */
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

export function allow(req: IncomingMessage, method: 'GET' | 'POST' | 'DELETE'): void {
  if (req.method === method || (method === 'GET' && req.method === 'HEAD')) return;
  throw new HttpError(405, { error: 'method_not_allowed', message: `use ${method}` }, { allow: method });
}

export function accountParam(value: string | null): string {
  if (value === null || value === '') return DEFAULT_ACCOUNT;
  if (!isAccountName(value)) {
    throw new HttpError(400, { error: 'bad_request', message: 'account must be letters, digits, ".", "_" or "-"' });
  }
  return value;
}

export function minTtlParam(value: string): number {
  const minTtl = parseMinTtl(value);
  if (minTtl === undefined) throw new HttpError(400, { error: 'bad_request', message: MIN_TTL_RULE });
  return minTtl;
}

export function expectString(value: unknown, name: string): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > 16_000) {
    throw new HttpError(400, { error: 'bad_request', message: `${name} must be a non-empty string` });
  }
  return value;
}

export async function readJson(req: IncomingMessage, maxBytes: number = MAX_BODY_BYTES): Promise<Record<string, unknown>> {
  const type = req.headers['content-type'] ?? '';
  if (!/^application\/json\b/i.test(type)) {
    throw new HttpError(415, { error: 'unsupported_media_type', message: 'send the body as application/json' });
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) {
      throw new HttpError(413, { error: 'payload_too_large', message: `the body must be at most ${maxBytes} bytes` });
    }
    chunks.push(chunk);
  }
  let value: unknown;
  try {
    value = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new HttpError(400, { error: 'bad_request', message: 'the body is not valid JSON' });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new HttpError(400, { error: 'bad_request', message: 'the body must be a JSON object' });
  }
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

