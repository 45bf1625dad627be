/**
 * `ANY /v1/proxy/NAME/<path>?<query>`: the till's request sent to the account's API with the token injected
 * (forward/), the answer passed back as it came, less hop-by-hop headers, plus `X-Pos-Agent-Attempts`.
 * Nothing here lets a till reach another host: the target is resolved under apiUrl from the raw request target,
 * and a till's Authorization, Cookie or a Host naming another server is refused.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isAccountName } from '../api/index.js';
import type { AccountConfig } from '../config/index.js';
import {
  forwardAccountOf,
  REFUSED_REQUEST_HEADERS,
  requestHeadersOut,
  resolveTarget,
  responseHeadersBack,
  type ForwardRequest,
  type ForwardResult,
} from '../forward/index.js';
import type { Logger } from '../lib/log.js';
import type { TokenError } from '../tokens/index.js';
import { HttpError } from './http.js';

export const PROXY_PREFIX = '/v1/proxy/';

/** What the proxy route needs: the accounts as configured now, and a sender. */
export interface ProxySource {
  account(name: string): AccountConfig | undefined;
  accountNames(): string[];
  forward(request: ForwardRequest): Promise<ForwardResult>;
}

const METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

/**
 * Host names a till may have put in Host to reach the agent over its socket: loopback names, a bare name
 * without dots (`unix`, `agent`), or a percent-encoded socket path. Anything with a dot names a server.
 */
export function isLocalHost(host: string | undefined): boolean {
  if (host === undefined || host === '') return true;
  const name = host.replace(/:\d+$/, '').toLowerCase();
  return name === 'localhost' || name === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(name) || /^[a-z0-9_-]+$/.test(name) || /^%2f/i.test(name);
}

/** The account name and the rest (`/path?query`, `?query` or '') of a raw `/v1/proxy/...` target. */
export function splitProxyTarget(raw: string): { name: string; rest: string } {
  const after = raw.slice(PROXY_PREFIX.length);
  const end = after.search(/[/?]/);
  return end === -1 ? { name: after, rest: '' } : { name: after.slice(0, end), rest: after.slice(end) };
}

/** Checks the request and answers it; errors to answer are thrown as HttpError. */
export async function handleProxy(
  req: IncomingMessage,
  res: ServerResponse,
  source: ProxySource,
  tokenError: (e: TokenError) => HttpError,
  log: Logger,
): Promise<void> {
  const { account, url } = proxyTarget(req, source);
  const view = forwardAccountOf(account as AccountConfig & { apiUrl: string });
  const limits = view.api;
  // The socket's idle limit (server.idleTimeoutMs, 30 s) must not cut a till off while the API is still within
  // its own deadlines: the till gets the 504 instead of a reset.
  res.setTimeout(limits.totalMs + 5_000);
  const sent = hasBody(req) ? await readCapped(req, limits.maxBodyBytes) : EMPTY;
  const result = await source.forward({
    account: view,
    method: req.method!,
    url,
    headers: requestHeadersOut(req.headers),
    ...(sent.length > 0 || !['GET', 'HEAD', 'DELETE', 'OPTIONS'].includes(req.method!) ? { body: sent } : {}),
  });
  if (!result.ok) {
    if (result.kind === 'token') throw tokenError(result.error);
    if (result.kind === 'timeout') throw new HttpError(504, { error: 'upstream_timeout', message: result.message });
    throw new HttpError(502, { error: 'upstream_unavailable', message: result.message });
  }
  res.writeHead(result.status, { ...responseHeadersBack(result.headers), 'x-pos-agent-attempts': String(result.attempts) });
  // pipe, not pipeline: pipeline makes an AbortController per request, a tenth of the proxy's CPU in a profile.
  // A failure either way ends both sides.
  const body = result.body;
  body.once('error', (err) => {
    log.warn('proxy: the answer broke off', { account: account.name, error: String(err) });
    res.destroy();
  });
  res.once('close', () => {
    if (!body.complete) body.destroy();
  });
  body.pipe(res);
}

function proxyTarget(req: IncomingMessage, source: ProxySource): { account: AccountConfig; url: URL } {
  const { name, rest } = splitProxyTarget(req.url ?? '');
  if (!isAccountName(name)) {
    throw new HttpError(400, { error: 'bad_request', message: 'the proxy path is /v1/proxy/ACCOUNT/<path under its apiUrl>' });
  }
  if (!METHODS.has(req.method ?? '')) {
    throw new HttpError(405, { error: 'method_not_allowed', message: `the proxy forwards ${[...METHODS].join(', ')}` });
  }
  for (const h of REFUSED_REQUEST_HEADERS) {
    if (req.headers[h] !== undefined) {
      throw new HttpError(400, { error: 'bad_request', message: `the ${h} header is refused: the agent sends the account's own credentials` });
    }
  }
  if (!isLocalHost(req.headers.host)) {
    throw new HttpError(400, { error: 'bad_request', message: 'the Host header names another server; the proxy sends only to the account\'s apiUrl' });
  }
  const account = source.account(name);
  if (!account) {
    throw new HttpError(404, { error: 'unknown_account', message: `no account named ${name}`, known_accounts: source.accountNames() });
  }
  if (!account.apiUrl) {
    throw new HttpError(409, {
      error: 'api_not_configured',
      message: `account ${name} has no apiUrl; set accounts.${name}.apiUrl in the config`,
    });
  }
  const target = resolveTarget(account.apiUrl, rest);
  if (!target.ok) throw new HttpError(400, { error: 'bad_request', message: target.message });
  return { account, url: target.url };
}

const EMPTY = Buffer.alloc(0);

/** Whether a body follows the headers (RFC 9112 6.3: a length or a transfer coding). */
function hasBody(req: IncomingMessage): boolean {
  return req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0');
}

/** The request body, refused with 413 past `cap` (by Content-Length at once, else as it arrives). */
export async function readCapped(req: IncomingMessage, cap: number): Promise<Buffer> {
  const tooLarge = () => new HttpError(413, { error: 'payload_too_large', message: `the body must be at most ${cap} bytes` });
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > cap) throw tooLarge();
  // Listeners, not `for await`: an async iterator costs a promise per chunk on the proxy's hot path.
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > cap) {
        req.off('data', onData);
        req.resume(); // the rest is read and dropped, so the 413 can be answered on this connection
        reject(tooLarge());
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)));
    req.once('error', reject);
  });
}
