/**
 * The one HTTP client authorities use: every phase has a timeout, answers are capped in size,
 * redirects are not followed, nothing is retried here (retry policy lives in tokens/).
 * Errors of `got` are translated here and never leave this file raw.
 */
import got, { RequestError } from 'got';

export interface HttpRequest {
  url: string;
  method: 'POST';
  headers: Record<string, string>;
  body?: string;
  timeouts: { connectMs: number; responseMs: number; totalMs: number };
  maxResponseBytes: number;
  /** Per-account TLS options (AccountConfig.tls). */
  tls?: { legacyServerConnect?: boolean; caFile?: string };
  signal?: AbortSignal;
}

export interface HttpResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

export type TransportErrorKind = 'timeout' | 'network' | 'tls' | 'too_large' | 'aborted';

export class TransportError extends Error {
  readonly code = 'ERR_TRANSPORT';
  constructor(
    readonly kind: TransportErrorKind,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'TransportError';
  }
}

export interface HttpClient {
  /** Resolves with any HTTP status; rejects only with TransportError. */
  request(req: HttpRequest): Promise<HttpResponse>;
}

export const DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024;

export function createHttpClient(): HttpClient {
  return {
    async request(req) {
      const options = {
        method: req.method,
        headers: { 'user-agent': 'pos-token-agent', ...req.headers },
        throwHttpErrors: false,
        followRedirect: false,
        retry: { limit: 0 },
        decompress: true,
        responseType: 'buffer' as const,
        isStream: false as const,
        timeout: {
          lookup: req.timeouts.connectMs,
          connect: req.timeouts.connectMs,
          secureConnect: req.timeouts.connectMs,
          send: req.timeouts.responseMs,
          response: req.timeouts.responseMs,
          socket: req.timeouts.responseMs,
          request: req.timeouts.totalMs,
        },
        ...(req.body !== undefined ? { body: req.body } : {}),
        ...(req.signal ? { signal: req.signal } : {}),
      };
      let tooLarge = false;
      try {
        const promise = got(req.url, options);

        promise.on('downloadProgress', (progress: { transferred: number }) => {
          if (progress.transferred > req.maxResponseBytes && !tooLarge) {
            tooLarge = true;
            promise.cancel();
          }
        });
        const res = await promise;
        return { status: res.statusCode, headers: res.headers, body: res.rawBody };
      } catch (err) {
        if (tooLarge) {
          throw new TransportError('too_large', `answer larger than ${req.maxResponseBytes} bytes`);
        }
        throw translate(err, req.url);
      }
    },
  };
}

function translate(err: unknown, url: string): TransportError {
  const where = safeOrigin(url);
  if (err instanceof RequestError) {
    const code = err.code;
    if (err.name === 'TimeoutError' || code === 'ETIMEDOUT') {
      const phase = (err as RequestError & { event?: string }).event;
      return new TransportError('timeout', `timed out${phase ? ` (${phase})` : ''} talking to ${where}`, { cause: err });
    }
    if (err.name === 'AbortError' || code === 'ERR_ABORTED' || err.name === 'CancelError') {
      return new TransportError('aborted', `request to ${where} was cancelled`, { cause: err });
    }
    const tlsLike = /SSL|TLS|CERT|self.signed|unsafe legacy renegotiation/i;
    if (tlsLike.test(code ?? '') || tlsLike.test(err.message)) {
      return new TransportError('tls', `TLS failure talking to ${where}: ${firstLine(err.message)}`, { cause: err });
    }
    return new TransportError('network', `${code ?? 'network error'} talking to ${where}`, { cause: err });
  }
  return new TransportError('network', `request to ${where} failed: ${firstLine(String(err))}`, { cause: err });
}

function safeOrigin(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return '(invalid URL)';
  }
}

function firstLine(s: string): string {
  return s.split('\n')[0]!.slice(0, 200);
}
