/**
 * HTTP plumbing shared by the server and the wire modules: the answer type, body reading with a cap,
 * writing an answer, header access.
 */
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';

export const BODY_CAP = 16 * 1024;
/** Past the cap a body is still drained (so the client can read the 413) up to this, then the socket is cut. */
const DRAIN_CAP = 1024 * 1024;

export interface Answer {
  status: number;
  /** A Buffer for large answers (the API's `_large`). */
  body: string | Buffer;
  contentType: string;
  headers?: Record<string, string>;
  /** The authority's error code, for logs. */
  error?: string;
  /** A real token was issued. */
  issued?: boolean;
  /** The token came from a refresh (impact-gr). */
  refreshed?: boolean;
  close?: boolean;
}

export type BodyResult = { kind: 'ok'; body: Buffer } | { kind: 'too_large'; drained: boolean } | { kind: 'aborted' };

export const JSON_TYPE = 'application/json; charset=utf-8';

export function jsonAnswer(status: number, value: unknown, headers?: Record<string, string>): Answer {
  const answer: Answer = { status, body: JSON.stringify(value), contentType: JSON_TYPE };
  if (headers) answer.headers = headers;
  return answer;
}

export function headerValue(headers: IncomingHttpHeaders, name: string): string | undefined {
  const v = headers[name];
  return Array.isArray(v) ? v.join(', ') : v;
}

/** Text from a request line that is safe to show: printable ASCII, at most 100 characters. */
export function cleanPath(path: string): string {
  return path.replace(/[^\x21-\x7e]/g, '?').slice(0, 100);
}

/** Body caps: past `cap` the body is refused (too_large), past `drain` the socket is cut. */
export interface BodyLimits {
  cap: number;
  drain: number;
}

export function readBody(req: IncomingMessage, limits: BodyLimits = { cap: BODY_CAP, drain: DRAIN_CAP }): Promise<BodyResult> {
  const { cap, drain } = limits;
  return new Promise((resolve) => {
    const declared = Number(headerValue(req.headers, 'content-length'));
    if (Number.isFinite(declared) && declared > drain) {
      resolve({ kind: 'too_large', drained: false });
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (result: BodyResult): void => {
      if (done) return;
      done = true;
      req.off('data', onData);
      resolve(result);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > drain) {
        req.socket.destroy();
        finish({ kind: 'aborted' });
      } else if (size <= cap) {
        chunks.push(chunk);
      }
    };
    req.on('data', onData);
    req.once('end', () =>
      finish(size > cap ? { kind: 'too_large', drained: true } : { kind: 'ok', body: Buffer.concat(chunks) }),
    );
    req.once('error', () => finish({ kind: 'aborted' }));
    req.once('close', () => finish({ kind: 'aborted' }));
  });
}

/** Writes the answer unless the response is already gone; returns whether it was written. */
export function send(res: ServerResponse, answer: Answer): boolean {
  if (res.destroyed || res.writableEnded || res.headersSent) return false;
  const headers: Record<string, string | number> = {
    'content-type': answer.contentType,
    'content-length': Buffer.byteLength(answer.body),
    'cache-control': 'no-store',
    pragma: 'no-cache',
    ...answer.headers,
  };
  if (answer.close) headers.connection = 'close';
  res.writeHead(answer.status, headers);
  res.end(answer.body);
  return true;
}
