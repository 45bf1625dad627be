/**
 * impact-gr's errors: ASP.NET Core problem details (RFC 9457, see ImpactProblem) with a W3C traceId, validation
 * errors keyed by member, and the shapes the shared server answers in on the wire's behalf.
 */
import type { Answer } from '../http.js';
import type { ImpactProblem } from '../types.js';
import type { WireErrors } from './types.js';
const { randomBytes } = process.getBuiltinModule('node:crypto');

const PROBLEM_TYPE = 'application/problem+json; charset=utf-8';

const STATUS: Record<number, { title: string; type: string }> = {
  400: { title: 'Bad Request', type: 'https://tools.ietf.org/html/rfc9110#section-15.5.1' },
  401: { title: 'Unauthorized', type: 'https://tools.ietf.org/html/rfc9110#section-15.5.2' },
  405: { title: 'Method Not Allowed', type: 'https://tools.ietf.org/html/rfc9110#section-15.5.6' },
  413: { title: 'Content Too Large', type: 'https://tools.ietf.org/html/rfc9110#section-15.5.14' },
  415: { title: 'Unsupported Media Type', type: 'https://tools.ietf.org/html/rfc9110#section-15.5.16' },
  429: { title: 'Too Many Requests', type: 'https://tools.ietf.org/html/rfc6585#section-4' },
  500: { title: 'Internal Server Error', type: 'https://tools.ietf.org/html/rfc9110#section-15.6.1' },
  502: { title: 'Bad Gateway', type: 'https://tools.ietf.org/html/rfc9110#section-15.6.3' },
  503: { title: 'Service Unavailable', type: 'https://tools.ietf.org/html/rfc9110#section-15.6.4' },
  504: { title: 'Gateway Timeout', type: 'https://tools.ietf.org/html/rfc9110#section-15.6.5' },
};

export function problem(
  status: number,
  fields: { title?: string; detail?: string; errors?: Record<string, string[]> },
  headers?: Record<string, string>,
): Answer {
  const known = STATUS[status];
  const body: ImpactProblem = {
    type: known?.type ?? 'about:blank',
    title: fields.title ?? known?.title ?? 'Error',
    status,
    traceId: `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-00`,
  };
  if (fields.detail !== undefined) body.detail = fields.detail;
  if (fields.errors !== undefined) body.errors = fields.errors;
  const answer: Answer = { status, body: JSON.stringify(body), contentType: PROBLEM_TYPE, error: body.title };
  if (headers) answer.headers = headers;
  return answer;
}

export const invalid = (field: string, message: string): Answer =>
  problem(400, { title: 'One or more validation errors occurred.', errors: { [field]: [message] } });
export const unauthorized = (detail: string, headers?: Record<string, string>): Answer => problem(401, { detail }, headers);

export const ERRORS: WireErrors = Object.freeze({
  methodNotAllowed: () => problem(405, { detail: 'use POST' }, { allow: 'POST' }),
  tooLarge: (limit: number) => problem(413, { detail: `the body is larger than ${limit} bytes` }),
  rateLimited: (retryAfter: string, description: string) =>
    problem(429, { detail: description || 'too many requests' }, { 'retry-after': retryAfter }),
  serverError: (status: number) => problem(status, { detail: 'injected fault' }),
  injected: (status: number, code: string, description: string) => problem(status, { title: code, detail: description }),
  tokenless: () => JSON.stringify({ refreshToken: null }),
});
