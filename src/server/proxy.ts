/**
 * `ANY /v1/proxy/NAME/<path>?<query>`: the till's request sent to the account's API with the token injected
 * (forward/), the answer passed back as it came, less hop-by-hop headers, plus `X-Pos-Agent-Attempts`.
 * Nothing here lets a till reach another host: the target is resolved under apiUrl from the raw request target,
 * and a till's Authorization, Cookie or a Host naming another server is refused.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isAccountName } from '../api/index.js';
import type { AccountConfig } from '../config/index.js';
import { forwardAccountOf, refusedHeader, requestHeadersOut, responseHeadersBack, type ForwardRequest } from '../forward/index.js';
import { knownAccount } from './accounts.js';
import type { ProxySource, ServerContext } from './context.js';
import { badRequest, HttpError, payloadTooLarge } from './http.js';
import { tokenHttpError } from './token.js';

export const PROXY_PREFIX = '/v1/proxy/';

/** The methods the proxy forwards. */
export const PROXY_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;

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

/** The proxy the route forwards through (the route table answers 404 for these paths when the agent has none). */
function proxyOf(ctx: ServerContext): ProxySource {
  const source = ctx.options.proxy;
  if (!source) throw new HttpError(404, { error: 'not_found', message: 'this agent has no API proxy' });
  return source;
}

/**
 * `ANY /v1/proxy/NAME/...`, by its raw target: checks the request and forwards it; the API's answer goes back as it
 * came. Errors the agent answers itself are thrown as HttpError (and get X-Pos-Agent-Error); the API's never are.
 */
export async function proxyRequest(ctx: ServerContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const source = proxyOf(ctx);
  const { account, url } = proxyTarget(ctx, req, source);
  const view = forwardAccountOf(account as AccountConfig & { apiUrl: string });
  const limits = view.api;
  // The socket's idle limit (server.idleTimeoutMs, 30 s) must not cut a till off while the API is still within
  // its own deadlines: the till gets the 504 instead of a reset.
  res.setTimeout(limits.totalMs + 5_000);
  const cap = limits.maxBodyBytes;
  const tooLarge = (size: number | undefined) =>
    payloadTooLarge('the body', size, cap, { setting: `accounts.${account.name}.api.maxBodyBytes`, file: ctx.configFile() });
  const sent = hasBody(req) ? await readCapped(req, cap, tooLarge) : EMPTY;
  const method = req.method!;
  const request: ForwardRequest = { account: view, method, url, headers: requestHeadersOut(req.headers) };
  if (sent.length > 0 || !BODYLESS.has(method)) request.body = sent;
  const result = await source.forward(request);
  if (!result.ok) {
    if (result.kind === 'token') throw tokenHttpError(result.error);
    if (result.kind === 'timeout') throw new HttpError(504, { error: 'upstream_timeout', message: result.message });
    throw new HttpError(502, { error: 'upstream_unavailable', message: result.message });
  }
  const headers = responseHeadersBack(result.headers);
  headers['x-pos-agent-attempts'] = String(result.attempts);
  res.writeHead(result.status, headers);
  // pipe, not pipeline: pipeline makes an AbortController per request, a tenth of the proxy's CPU in a profile.
  // A failure either way ends both sides.
  const body = result.body;
  body.once('error', (err) => {
    ctx.options.log.warn('proxy: the answer broke off', { account: account.name, error: String(err) });
    res.destroy();
  });
  res.once('close', () => {
    if (!body.complete) body.destroy();
  });
  body.pipe(res);
}

/** A `/v1/proxy/...` target in absolute form (http://host/v1/proxy/...): the proxy takes only origin-relative paths. */
export function absoluteFormRefused(): never {
  throw badRequest('the proxy takes an origin-relative path (/v1/proxy/ACCOUNT/...)');
}

function proxyTarget(ctx: ServerContext, req: IncomingMessage, source: ProxySource): { account: AccountConfig; url: URL } {
  const { name, rest } = splitProxyTarget(req.url ?? '');
  if (!isAccountName(name)) throw badRequest('the proxy path is /v1/proxy/ACCOUNT/<path under its apiUrl>');
  const refused = refusedHeader(req.headers);
  if (refused) throw badRequest(`the ${refused} header is refused: the agent sends the account's own credentials`);
  if (!isLocalHost(req.headers.host)) throw badRequest("the Host header names another server; the proxy sends only to the account's apiUrl");
  const account = knownAccount(source, name, ctx.configFile);
  if (!account.apiUrl) {
    throw new HttpError(409, { error: 'api_not_configured', message: `account ${name} has no apiUrl; set accounts.${name}.apiUrl in the config` });
  }
  const target = ctx.proxyTargets(account.apiUrl, rest);
  if (!target.ok) throw badRequest(target.message);
  return { account, url: target.url };
}

/** Methods whose request is sent without a body when the till sent none. */
const BODYLESS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'DELETE', 'OPTIONS']);

const EMPTY = Buffer.alloc(0);

/** Whether a body follows the headers (RFC 9112 6.3: a length or a transfer coding). */
function hasBody(req: IncomingMessage): boolean {
  return req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0');
}

/** The request body, refused with `tooLarge` past `cap` (by Content-Length at once, else as it arrives). */
export async function readCapped(req: IncomingMessage, cap: number, tooLarge: (size: number | undefined) => HttpError): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > cap) throw tooLarge(declared);
  // Listeners, not `for await`: an async iterator costs a promise per chunk on the proxy's hot path.
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > cap) {
        req.off('data', onData);
        req.resume(); // the rest is read and dropped, so the 413 can be answered on this connection
        reject(tooLarge(undefined));
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.once('end', () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)));
    req.once('error', reject);
  });
}
