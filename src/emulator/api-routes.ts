/**
 * What the submission API's paths mean once a request has passed the bearer check and the faults: ETA eReceipt
 * receipt submissions, ETA eInvoicing / MyInvois document submissions, the generic JSON endpoint every
 * authority has, and the test helpers `_large` and `_echo`. Pure apart from the duplicate memory: no I/O.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { ApiRecords } from './api-records.js';
import { type Answer, JSON_TYPE } from './http.js';
const { createHash, randomUUID } = process.getBuiltinModule('node:crypto');

/** One API call as the routes see it. */
export interface ApiCall {
  method: string;
  /** The path as requested, without the query. */
  path: string;
  /** The raw query, without `?`. */
  query: string;
  headers: IncomingHttpHeaders;
  raw: Buffer;
  parsed: ParsedBody;
}

export type ParsedBody = { kind: 'empty' } | { kind: 'json'; value: unknown } | { kind: 'invalid' };

export interface Outcome {
  answer: Answer;
  uuids: string[];
  duplicate: boolean;
}

/** The error renderer of the authority: ETA's `{error: {code, message, target, details}}` or the wire's own shape. */
export type ApiErrorKind = 'unauthorized' | 'badStructure' | 'tooLarge' | 'methodNotAllowed' | 'rateLimited' | 'serverError';
export type ApiErrorRenderer = (
  status: number,
  code: string | ApiErrorKind,
  message: string,
  extra?: { target?: string; headers?: Record<string, string> },
) => Answer;

export interface RouteDeps {
  records: ApiRecords;
  error: ApiErrorRenderer;
  /** Headers put on every successful answer (ETA: a correlationId). */
  okHeaders(): Record<string, string> | undefined;
}

export const RECEIPTS_PATH = '/api/v1/receiptsubmissions';
export const DOCUMENTS_PATH = '/api/v1.0/documentsubmissions';
export const LARGE_PATH = '/api/_large';
export const ECHO_PATH = '/api/_echo';
export const MAX_RECEIPTS = 500;
export const MAX_DOCUMENTS = 100;
export const LARGE_MAX = 32 * 1024 * 1024;
const GENERIC_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'];

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function nonEmptyString(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

function accepted(value: unknown, headers?: Record<string, string>, status = 202): Answer {
  const answer: Answer = { status, body: JSON.stringify(value), contentType: JSON_TYPE };
  if (headers) answer.headers = headers;
  return answer;
}

/** A 26-character id in the style of ETA's submission ids. */
function submissionId(): string {
  return randomUUID().replace(/-/g, '').slice(0, 26).toUpperCase();
}

/** The uuids a body carries: eReceipt `receipts[].header.uuid`, else the body's own `uuid` or `id`. */
export function bodyUuids(path: string, parsed: ParsedBody): string[] {
  if (parsed.kind !== 'json' || !isRecord(parsed.value)) return [];
  const value = parsed.value;
  if (path.toLowerCase() === RECEIPTS_PATH && Array.isArray(value.receipts)) {
    return value.receipts.flatMap((r: unknown) => {
      const uuid = isRecord(r) && isRecord(r.header) ? nonEmptyString(r.header.uuid) : undefined;
      return uuid === undefined ? [] : [uuid];
    });
  }
  const id = typeof value.uuid === 'string' ? value.uuid : typeof value.id === 'string' ? value.id : undefined;
  return id === undefined ? [] : [id];
}

/** The checks a submission's outer shape shares: a JSON object whose `member` is an array of 1..max. */
function submissionList(call: ApiCall, deps: RouteDeps, member: string, max: number): unknown[] | Answer {
  const bad = (message: string, target = ''): Answer => deps.error(400, 'badStructure', message, { target });
  if (call.method !== 'POST') {
    return deps.error(405, 'methodNotAllowed', `method ${call.method} is not allowed; use POST`, {
      headers: { allow: 'POST' },
    });
  }
  if (call.parsed.kind !== 'json') return bad('the body is not valid JSON');
  const value = call.parsed.value;
  if (!isRecord(value)) return bad(`expected a JSON object {"${member}": [...]}`);
  const list = value[member];
  if (!Array.isArray(list)) return bad(`${member} is required and must be an array`, member);
  if (list.length === 0) return bad(`${member} must not be empty`, member);
  if (list.length > max) return bad(`at most ${max} ${member} per submission, got ${list.length}`, member);
  return list;
}

interface EtaError {
  code: string;
  message: string;
  target: string;
  details: Array<{ code: string; message: string; target: string; propertyPath?: string }>;
}

function missingField(index: number, member: string, field: string): EtaError {
  const target = `${member}[${index}]`;
  return {
    code: 'BadStructure',
    message: `${field} is required and must be a non-empty string`,
    target,
    details: [{ code: 'BadStructure', message: `${field} is required`, target: field, propertyPath: `${target}.${field}` }],
  };
}

const duplicateError = (uuid: string): EtaError => ({
  code: 'DuplicateSubmission',
  message: 'a document with this uuid was accepted before',
  target: uuid,
  details: [],
});

/** ETA eReceipt: POST /api/v1/receiptsubmissions `{"receipts": [...]}`. */
export function receiptSubmission(call: ApiCall, deps: RouteDeps): Outcome {
  const list = submissionList(call, deps, 'receipts', MAX_RECEIPTS);
  if (!Array.isArray(list)) return { answer: list, uuids: bodyUuids(call.path, call.parsed), duplicate: false };
  const id = submissionId();
  const acceptedDocuments: Array<{ uuid: string; longId: string; receiptNumber: string }> = [];
  const rejectedDocuments: Array<{ uuid: string; receiptNumber: string; error: EtaError }> = [];
  const uuids: string[] = [];
  let duplicate = false;
  list.forEach((receipt: unknown, i) => {
    const header = isRecord(receipt) && isRecord(receipt.header) ? receipt.header : {};
    const uuid = nonEmptyString(header.uuid);
    const receiptNumber = nonEmptyString(header.receiptNumber);
    if (uuid !== undefined) uuids.push(uuid);
    if (uuid === undefined || receiptNumber === undefined) {
      const field = uuid === undefined ? 'header.uuid' : 'header.receiptNumber';
      rejectedDocuments.push({ uuid: uuid ?? '', receiptNumber: receiptNumber ?? '', error: missingField(i, 'receipts', field) });
      return;
    }
    const key = `receipt\n${uuid}`;
    if (deps.records.seen(key)) {
      duplicate = true;
      rejectedDocuments.push({ uuid, receiptNumber, error: duplicateError(uuid) });
      return;
    }
    deps.records.accept(key);
    const longId = createHash('sha256').update(`${id}\n${uuid}`).digest('hex').slice(0, 40).toUpperCase();
    acceptedDocuments.push({ uuid, longId, receiptNumber });
  });
  const answer = accepted({ submissionId: id, acceptedDocuments, rejectedDocuments }, deps.okHeaders());
  return { answer, uuids, duplicate };
}

/**
 * ETA eInvoicing and MyInvois: POST /api/v1.0/documentsubmissions `{"documents": [...]}`. The service gives each
 * document its uuid (here: from a hash of the document, so a resend gets the same one and is a duplicate); the
 * document's own number is `codeNumber` (MyInvois) or `internalID` (ETA).
 */
export function documentSubmission(call: ApiCall, deps: RouteDeps, numberField: 'codeNumber' | 'internalID'): Outcome {
  const list = submissionList(call, deps, 'documents', MAX_DOCUMENTS);
  if (!Array.isArray(list)) return { answer: list, uuids: [], duplicate: false };
  const outName = numberField === 'codeNumber' ? 'invoiceCodeNumber' : 'internalId';
  const acceptedDocuments: Array<Record<string, string>> = [];
  const rejectedDocuments: Array<Record<string, unknown>> = [];
  const uuids: string[] = [];
  let duplicate = false;
  list.forEach((doc: unknown, i) => {
    const number = isRecord(doc) ? nonEmptyString(doc[numberField]) : undefined;
    if (number === undefined) {
      rejectedDocuments.push({ [outName]: '', error: missingField(i, 'documents', numberField) });
      return;
    }
    const uuid = createHash('sha256').update(JSON.stringify(doc)).digest('hex').slice(0, 26).toUpperCase();
    uuids.push(uuid);
    const key = `document\n${uuid}`;
    if (deps.records.seen(key)) {
      duplicate = true;
      rejectedDocuments.push({ [outName]: number, error: duplicateError(uuid) });
      return;
    }
    deps.records.accept(key);
    acceptedDocuments.push({ uuid, [outName]: number });
  });
  const answer = accepted({ submissionUid: submissionId(), acceptedDocuments, rejectedDocuments }, deps.okHeaders());
  return { answer, uuids, duplicate };
}

/** Any other path under /api/: takes any JSON (or no body) and says it was received. */
export function genericEndpoint(call: ApiCall, deps: RouteDeps): Outcome {
  if (!GENERIC_METHODS.includes(call.method)) {
    return {
      answer: deps.error(405, 'methodNotAllowed', `method ${call.method} is not allowed`, {
        headers: { allow: GENERIC_METHODS.join(', ') },
      }),
      uuids: [],
      duplicate: false,
    };
  }
  if (call.parsed.kind === 'invalid') {
    return { answer: deps.error(400, 'badStructure', 'the body is not valid JSON'), uuids: [], duplicate: false };
  }
  const uuids = bodyUuids(call.path, call.parsed);
  const key = uuids[0] === undefined ? undefined : `${call.path}\n${uuids[0]}`;
  const duplicate = key !== undefined && deps.records.seen(key);
  if (key !== undefined && !duplicate) deps.records.accept(key);
  const seq = deps.records.nextSeq();
  const answer = accepted({ received: true, seq, method: call.method, path: call.path }, deps.okHeaders());
  return { answer, uuids, duplicate };
}

let lastLarge: { bytes: number; body: Buffer; sha256: string } | undefined;

/** A deterministic JSON body of exactly `bytes` bytes (or the smallest such document when fewer are asked). */
function largeBody(bytes: number): { body: Buffer; sha256: string } {
  if (lastLarge?.bytes === bytes) return lastLarge;
  const head = `{"bytes":${bytes},"data":"`;
  const tail = '"}';
  const fill = Math.max(0, bytes - head.length - tail.length);
  const body = Buffer.allocUnsafe(head.length + fill + tail.length);
  body.write(head, 0, 'latin1');
  if (fill > 0) body.fill('0123456789abcdefghijklmnopqrstuvwxyz', head.length, head.length + fill, 'latin1');
  body.write(tail, head.length + fill, 'latin1');
  lastLarge = { bytes, body, sha256: createHash('sha256').update(body).digest('hex') };
  return lastLarge;
}

/** GET /api/_large?bytes=N: a large answer with its SHA-256 in `x-emulator-sha256`. */
export function largeAnswer(call: ApiCall, deps: RouteDeps): Outcome {
  const none = { uuids: [], duplicate: false };
  if (call.method !== 'GET' && call.method !== 'HEAD') {
    return { answer: deps.error(405, 'methodNotAllowed', 'use GET', { headers: { allow: 'GET' } }), ...none };
  }
  const value = new URLSearchParams(call.query).get('bytes');
  const bytes = value !== null && /^\d{1,9}$/.test(value) ? Number(value) : NaN;
  if (!(bytes <= LARGE_MAX)) {
    return { answer: deps.error(400, 'badStructure', `bytes: expected an integer from 0 to ${LARGE_MAX}`, { target: 'bytes' }), ...none };
  }
  const { body, sha256 } = largeBody(bytes);
  return { answer: { status: 200, body, contentType: JSON_TYPE, headers: { 'x-emulator-sha256': sha256 } }, ...none };
}

/** Header values as the echo shows them: the Authorization value cut to its first 8 token characters. */
function echoHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    const text = Array.isArray(value) ? value.join(', ') : value;
    if (name === 'authorization' || name === 'proxy-authorization') {
      const [scheme = '', token = ''] = text.split(/ +/, 2);
      out[name] = `${scheme} ${token.slice(0, 8)}…`;
    } else {
      out[name] = text;
    }
  }
  return out;
}

/** ANY /api/_echo/...: what arrived, so that tests see exactly what a proxy forwarded. */
export function echoAnswer(call: ApiCall): Outcome {
  const value = {
    method: call.method,
    path: call.path,
    query: call.query,
    headers: echoHeaders(call.headers),
    body: call.raw.toString('utf8'),
  };
  return { answer: accepted(value, undefined, 200), uuids: [], duplicate: false };
}
