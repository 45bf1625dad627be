/**
 * Delivering one outbox entry and deciding what its answer means: pure classification (`classify`) and the
 * one exchange (`deliverOnce`). The lane (lane.ts) decides when, and keeps the order.
 */
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { AccountConfig } from '../config/index.js';
import { forwardAccountOf, resolveTarget, type Forwarder, type ForwardResult } from '../forward/index.js';
import type { OutboxEntry, OutboxResponse } from '../store/index.js';

/** What an answer means for the entry. */
export type DeliveryVerdict =
  | { kind: 'delivered'; response: OutboxResponse }
  | { kind: 'rejected'; response: OutboxResponse; error: string }
  /** Stays at the head: sent again after `afterMs` (the server's word) or the lane's backoff. */
  | { kind: 'retry'; error: string; afterMs?: number; response?: OutboxResponse };

/** How much of an answer's body is kept with the entry (enough for the authority's error document). */
export const KEPT_RESPONSE_BYTES = 64 * 1024;

/** The wait a Retry-After header asks for (seconds or an HTTP date), or undefined when absent or unreadable. */
export function retryAfterMs(headers: IncomingHttpHeaders, nowWall: number): number | undefined {
  const raw = headers['retry-after'];
  if (typeof raw !== 'string' || raw.trim() === '') return undefined;
  const text = raw.trim();
  if (/^\d{1,9}$/.test(text)) return Number(text) * 1000;
  if (!/[a-z]/i.test(text)) return undefined; // "-5", "1.5": not seconds, not a date
  const at = Date.parse(text);
  return Number.isFinite(at) ? Math.max(0, at - nowWall) : undefined;
}

/**
 * The contract's rules: 2xx delivered; 429 after Retry-After; network errors, timeouts, 408, 5xx (and a 401 that
 * survived a forced login, and anything odd such as a redirect) stay at the head; any other 4xx is rejected.
 */
export function classify(status: number, headers: IncomingHttpHeaders, body: string, nowWall: number): DeliveryVerdict {
  const response = { status, body };
  if (status >= 200 && status < 300) return { kind: 'delivered', response };
  if (status === 429) {
    const after = retryAfterMs(headers, nowWall);
    return { kind: 'retry', error: `429 from the API (rate limited)`, ...(after !== undefined ? { afterMs: after } : {}), response };
  }
  if (status === 401) return { kind: 'retry', error: '401 from the API after a new login: the authority refuses the account\'s tokens', response };
  if (status === 408 || status >= 500) {
    const after = status === 503 ? retryAfterMs(headers, nowWall) : undefined;
    return { kind: 'retry', error: `${status} from the API`, ...(after !== undefined ? { afterMs: after } : {}), response };
  }
  if (status >= 400) return { kind: 'rejected', response, error: `${status} from the API: the entry was refused` };
  return { kind: 'retry', error: `${status} from the API (not an answer the outbox acts on)`, response };
}

/** Reads at most `cap` bytes of a body as text and drops the rest (bounded by the forwarder's total deadline). */
export function readCapped(body: IncomingMessage, cap: number): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    body.on('data', (chunk: Buffer) => {
      if (size < cap) chunks.push(chunk.subarray(0, cap - size));
      size += chunk.length;
    });
    const done = () => resolve(Buffer.concat(chunks).toString('utf8'));
    body.once('end', done);
    body.once('error', done);
    body.once('close', done);
  });
}

/** Sends the entry once (with the forwarder's one forced login on a 401) and says what the answer means. */
export async function deliverOnce(
  forwarder: Forwarder,
  account: AccountConfig & { apiUrl: string },
  entry: OutboxEntry,
  nowWall: () => number,
  signal?: AbortSignal,
): Promise<DeliveryVerdict> {
  const target = resolveTarget(account.apiUrl, entry.path);
  if (!target.ok) return { kind: 'rejected', response: { status: 0, body: '' }, error: `not sent: ${target.message}` };
  const result: ForwardResult = await forwarder.forward({
    account: forwardAccountOf(account),
    method: entry.method,
    url: target.url,
    headers: { ...entry.headers, 'content-type': 'application/json' },
    body: Buffer.from(entry.body, 'utf8'),
    ...(signal ? { signal } : {}),
  });
  if (!result.ok) {
    if (result.kind === 'token') {
      const e = result.error;
      const after = 'retryAfterS' in e ? e.retryAfterS * 1000 : undefined;
      return { kind: 'retry', error: `no token: ${e.message}`, ...(after !== undefined ? { afterMs: after } : {}) };
    }
    return { kind: 'retry', error: result.kind === 'timeout' ? `timeout: ${result.message}` : `API unreachable: ${result.message}` };
  }
  const body = await readCapped(result.body, KEPT_RESPONSE_BYTES);
  return classify(result.status, result.headers, body, nowWall());
}
