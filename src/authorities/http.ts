/**
 * The one HTTP client authorities use: every phase has a timeout, answers are capped in size,
 * redirects are not followed, nothing is retried here (retry policy lives in tokens/).
 * Errors of `got` are translated here and never leave this file raw.
 *
 * Network policy lives here too, as data plus pure functions:
 * - the outbound proxy (`resolveProxy`: config, else HTTPS_PROXY/HTTP_PROXY with NO_PROXY; loopback never proxied),
 * - per-account TLS (`tlsConnectOptions`: extra CAs added to Node's store, SSL_OP_LEGACY_SERVER_CONNECT),
 * - TLS failure classification (`classifyTlsError`), shared with the doctor's checks.
 */
import type { Agent as HttpAgent } from 'node:http';
import type { Agent as HttpsAgentType } from 'node:https';
import type { RequestError } from 'got';
import type { ProxyConfig } from '../config/index.js';
import { readFile, stat } from '../lib/fs-async.js';
const { constants: cryptoConstants, X509Certificate } = process.getBuiltinModule('node:crypto');
const { BlockList, isIP } = process.getBuiltinModule('node:net');

type GotModule = typeof import('got');
let gotModule: Promise<GotModule> | undefined;
let RequestErrorClass: GotModule['RequestError'] | undefined;
/** got and its dependencies (~20 MiB, ~150 ms to load) are loaded for the first request, not at start. */
const loadGot = (): Promise<GotModule> =>
  (gotModule ??= import('got').then((m) => {
    RequestErrorClass = m.RequestError;
    return m;
  }));
const isRequestError = (err: unknown): err is RequestError => RequestErrorClass !== undefined && err instanceof RequestErrorClass;

export type { ProxyConfig };

export interface HttpRequest {
  url: string;
  /** POST for token requests; GET/HEAD for the doctor (its clock check reads the Date header). */
  method: 'POST' | 'GET' | 'HEAD';
  headers: Record<string, string>;
  body?: string;
  timeouts: { connectMs: number; responseMs: number; totalMs: number };
  maxResponseBytes: number;
  /** Per-account TLS options (AccountConfig.tls). */
  tls?: RequestTls;
  signal?: AbortSignal;
}

export interface RequestTls {
  legacyServerConnect?: boolean;
  caFile?: string;
}

export interface HttpResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/**
 * `proxy`: the proxy could not be reached or refused the tunnel.
 * `config`: a local setting makes the request impossible (unreadable tls.caFile, unusable HTTPS_PROXY).
 */
export type TransportErrorKind = 'timeout' | 'network' | 'tls' | 'proxy' | 'config' | 'too_large' | 'aborted';

/** Why a TLS handshake failed, when it is one of the causes a technician can act on. */
export type TlsFailureReason =
  | 'unknown_ca'
  | 'expired'
  | 'not_yet_valid'
  | 'hostname_mismatch'
  | 'legacy_renegotiation'
  | 'other';

/** The config option that lets OpenSSL 3 talk to servers without RFC 5746 secure renegotiation. */
export const LEGACY_SERVER_CONNECT_OPTION = 'tls.legacyServerConnect: true';

export class TransportError extends Error {
  readonly code = 'ERR_TRANSPORT';
  /** Set when kind is `tls`. */
  readonly tlsReason: TlsFailureReason | undefined;
  constructor(
    readonly kind: TransportErrorKind,
    message: string,
    options?: { cause?: unknown; tlsReason?: TlsFailureReason },
  ) {
    super(message, options?.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = 'TransportError';
    this.tlsReason = options?.tlsReason;
  }

  /** The server lacks RFC 5746 support and OpenSSL 3 refused it: the account needs tls.legacyServerConnect. */
  get legacyRenegotiation(): boolean {
    return this.tlsReason === 'legacy_renegotiation';
  }
}

export interface HttpClient {
  /** Resolves with any HTTP status; rejects only with TransportError. */
  request(req: HttpRequest): Promise<HttpResponse>;
}

/** The client createHttpClient builds: the HttpClient plus what the doctor, tests and shutdown need. */
export interface NodeHttpClient extends HttpClient {
  /**
   * The cached keep-alive agent such a request uses; undefined when Node's global agent serves it (no proxy,
   * no extra CA, no legacy option). Rejects like request() for an unusable caFile or proxy setting.
   */
  agentFor(req: Pick<HttpRequest, 'url' | 'tls'> & { timeouts?: Pick<HttpRequest['timeouts'], 'connectMs'> }): Promise<HttpAgent | undefined>;
  /** Where a request to `url` goes: through which proxy, or directly and why. */
  route(url: string): ProxyRoute;
  /** Closes the cached agents and their idle connections. */
  close(): void;
}

export interface HttpClientOptions {
  proxy?: ProxyConfig;
  /** Where HTTPS_PROXY, HTTP_PROXY and NO_PROXY are read; process.env by default. */
  env?: NodeJS.ProcessEnv;
}

export const DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024;

/** Like Node's global agent: keep-alive, idle sockets closed after 5 s, most recently used socket first. */
const AGENT_OPTIONS = Object.freeze({ keepAlive: true, timeout: 5_000, scheduling: 'lifo' as const });

export function createHttpClient(options: HttpClientOptions = {}): NodeHttpClient {
  const env = options.env ?? process.env;
  const proxyConfig = options.proxy ?? {};
  const caStore = createCaStore();
  const agents = new Map<string, { version: string; agent: HttpAgent }>();

  const route = (url: string): ProxyRoute => resolveProxy(url, proxyConfig, env);

  async function agentFor(
    target: URL,
    proxy: URL | undefined,
    tls: RequestTls | undefined,
    connectMs = DEFAULT_PROXY_CONNECT_MS,
  ): Promise<HttpAgent | undefined> {
    const https = target.protocol === 'https:';
    const legacy = https && tls?.legacyServerConnect === true;
    const caFile = tls?.caFile;
    // Plain http needs TLS options only for an https:// proxy.
    const needsCa = caFile !== undefined && (https || proxy?.protocol === 'https:');
    if (!proxy && !legacy && !(https && needsCa)) return undefined;
    const connect = await tlsConnectOptions({ legacyServerConnect: legacy, ...(needsCa ? { caFile } : {}) }, caStore);
    const slot = JSON.stringify([target.protocol, proxy?.href ?? null, proxy ? connectMs : null, legacy, needsCa ? caFile : null]);
    const version = connect.caVersion ?? '';
    const cached = agents.get(slot);
    if (cached && cached.version === version) return cached.agent;
    cached?.agent.destroy();
    const agent = await newAgent(https, proxy, connect, connectMs);
    agents.set(slot, { version, agent });
    return agent;
  }

  return {
    route,
    async agentFor(req) {
      const target = parseTarget(req.url);
      const r = route(req.url);
      if (r.proxy === 'invalid') throw invalidProxy(r);
      return agentFor(target, r.proxy, req.tls, req.timeouts?.connectMs);
    },
    close() {
      for (const { agent } of agents.values()) agent.destroy();
      agents.clear();
    },
    async request(req) {
      const target = parseTarget(req.url);
      const r = route(req.url);
      if (r.proxy === 'invalid') throw invalidProxy(r);
      const proxy = r.proxy;
      if (req.body !== undefined && req.method !== 'POST') {
        throw new TransportError('config', `a ${req.method} request cannot carry a body (${safeOrigin(req.url)})`);
      }
      const agent = await agentFor(target, proxy, req.tls, req.timeouts.connectMs);
      const { default: got } = await loadGot();
      return send(got, req, gotOptions(req, target, agent), proxy);
    },
  };
}

/**
 * A keep-alive agent for `https` or plain http targets, through `proxy` when given (http needs one to have an agent).
 * node:https (with node:tls) and the proxy agents load here, when an account first needs them: an idle agent whose
 * token is stored carries neither (about 10 MiB).
 */
async function newAgent(https: boolean, proxy: URL | undefined, connect: TlsConnectOptions, connectMs: number): Promise<HttpAgent> {
  const proxyRequestOptions = proxy?.protocol === 'https:' && connect.ca ? { ca: connect.ca } : undefined;
  const agents = proxy ? await import('./proxy-agents.js') : undefined;
  if (https) {
    const tlsOptions = {
      ...AGENT_OPTIONS,
      ...(connect.ca ? { ca: connect.ca } : {}),
      ...(connect.secureOptions !== undefined ? { secureOptions: connect.secureOptions } : {}),
    };
    return proxy
      ? new agents!.BoundedHttpsProxyAgent({ ...tlsOptions, proxy, ...(proxyRequestOptions ? { proxyRequestOptions } : {}) }, connectMs)
      : new (process.getBuiltinModule('node:https').Agent)(tlsOptions);
  }
  return new agents!.BoundedHttpProxyAgent({ ...AGENT_OPTIONS, proxy: proxy!, ...(proxyRequestOptions ? { proxyRequestOptions } : {}) }, connectMs);
}

/** got's options for one request: every phase timed, no redirect, no retry, the body as a Buffer. */
function gotOptions(req: HttpRequest, target: URL, agent: HttpAgent | undefined) {
  return {
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
    ...(agent ? { agent: target.protocol === 'https:' ? { https: agent as HttpsAgentType } : { http: agent } } : {}),
    ...(req.body !== undefined ? { body: req.body } : {}),
    ...(req.signal ? { signal: req.signal } : {}),
  };
}

/** Sends with got, cancelled past maxResponseBytes; got's errors translated to TransportError. */
async function send(got: GotModule['default'], req: HttpRequest, options: ReturnType<typeof gotOptions>, proxy: URL | undefined): Promise<HttpResponse> {
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
    throw translate(err, req.url, proxy);
  }
}

const DEFAULT_PROXY_CONNECT_MS = 5_000;

function parseTarget(url: string): URL {
  let target: URL;
  try {
    target = new URL(url);
  } catch {
    throw new TransportError('config', 'request to (invalid URL) failed: not an absolute URL');
  }
  if (target.protocol !== 'https:' && target.protocol !== 'http:') {
    throw new TransportError('config', `request to ${safeOrigin(url)} failed: only http:// and https:// URLs are supported`);
  }
  return target;
}

function invalidProxy(r: Extract<ProxyRoute, { proxy: 'invalid' }>): TransportError {
  return new TransportError('config', `the proxy in ${r.source} is not usable: ${r.why}`);
}

// ---------------------------------------------------------------------------------------------------------------
// Proxy selection

/** Where a request goes: through `proxy`, or directly for the reason in `direct`. */
export type ProxyRoute =
  | { proxy: URL; source: string }
  | { proxy: undefined; direct: 'loopback' | 'disabled' | 'no_proxy' | 'none'; source?: string }
  | { proxy: 'invalid'; source: string; why: string };

/**
 * The proxy for one request. `config.url` wins (null: never a proxy); otherwise the environment:
 * https_proxy/HTTPS_PROXY for https:// and http_proxy/HTTP_PROXY for http:// URLs (lowercase first, like curl).
 * NO_PROXY/no_proxy entries plus `config.noProxy` are honoured for a proxy from the environment; with a
 * proxy from the config only `config.noProxy` is (the config is the whole story then). Loopback is never proxied.
 */
export function resolveProxy(url: string, config: ProxyConfig = {}, env: NodeJS.ProcessEnv = {}): ProxyRoute {
  let target: URL;
  try {
    target = new URL(url);
  } catch {
    return { proxy: undefined, direct: 'none' };
  }
  const host = bareHost(target.hostname);
  if (isLoopback(host)) return { proxy: undefined, direct: 'loopback' };
  if (config.url === null) return { proxy: undefined, direct: 'disabled', source: 'proxy.url: null in the config' };
  const port = Number(target.port || (target.protocol === 'https:' ? 443 : 80));
  let raw: string;
  let source: string;
  let noProxy: string[];
  if (config.url !== undefined) {
    raw = config.url;
    source = 'proxy.url in the config';
    noProxy = config.noProxy ?? [];
  } else {
    const names = target.protocol === 'https:' ? ['https_proxy', 'HTTPS_PROXY'] : ['http_proxy', 'HTTP_PROXY'];
    const name = names.find((n) => (env[n] ?? '').trim() !== '');
    if (!name) return { proxy: undefined, direct: 'none' };
    raw = env[name]!.trim();
    source = name;
    noProxy = [...splitNoProxy(env.no_proxy || env.NO_PROXY || ''), ...(config.noProxy ?? [])];
  }
  if (matchesNoProxy(host, port, noProxy)) return { proxy: undefined, direct: 'no_proxy', source };
  const parsed = parseProxyUrl(raw);
  if (typeof parsed === 'string') return { proxy: 'invalid', source, why: parsed };
  return { proxy: parsed, source };
}

/** A proxy URL as written by people: "proxy:3128" means http://proxy:3128. Returns why when unusable. */
export function parseProxyUrl(raw: string): URL | string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(raw) ? raw : `http://${raw}`;
  let u: URL;
  try {
    u = new URL(withScheme);
  } catch {
    return 'not a URL such as http://proxy:3128';
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return `${u.protocol}// proxies are not supported (only http:// and https://)`;
  if (!u.hostname) return 'no host in it';
  return u;
}

/** The proxy URL without user and password: safe for messages and logs. */
export function displayProxy(proxy: URL): string {
  return `${proxy.protocol}//${proxy.host}`;
}

function splitNoProxy(value: string): string[] {
  return value.split(/[\s,]+/).filter(Boolean);
}

/**
 * NO_PROXY semantics: `*` matches all; `example.com`, `.example.com` and `*.example.com` match that domain and
 * its subdomains; `host:port` only that port; IPv4/IPv6 addresses exactly, and CIDR ranges (10.0.0.0/8).
 */
export function matchesNoProxy(hostname: string, port: number, entries: readonly string[]): boolean {
  const host = bareHost(hostname.toLowerCase()).replace(/\.$/, '');
  for (const rawEntry of entries.flatMap(splitNoProxy)) {
    let entry = rawEntry.toLowerCase();
    if (entry === '*') return true;
    let entryPort: number | undefined;
    const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(entry);
    if (bracketed) {
      entry = bracketed[1]!;
      if (bracketed[2]) entryPort = Number(bracketed[2]);
    } else {
      const hostPort = /^([^:]+):(\d+)$/.exec(entry);
      if (hostPort) {
        entry = hostPort[1]!;
        entryPort = Number(hostPort[2]);
      }
    }
    if (entryPort !== undefined && entryPort !== port) continue;
    if (entry.includes('/')) {
      if (cidrContains(entry, host)) return true;
      continue;
    }
    if (isIP(entry)) {
      if (isIP(host) && sameIp(entry, host)) return true;
      continue;
    }
    const domain = entry.replace(/^\*?\./, '').replace(/\.$/, '');
    if (domain && (host === domain || host.endsWith(`.${domain}`))) return true;
  }
  return false;
}

function cidrContains(cidr: string, host: string): boolean {
  const family = isIP(host);
  if (!family) return false;
  const [net, bitsText] = cidr.split('/') as [string, string];
  const netFamily = isIP(net);
  const bits = Number(bitsText);
  if (!netFamily || netFamily !== family || !Number.isInteger(bits)) return false;
  try {
    const list = new BlockList();
    list.addSubnet(net, bits, family === 4 ? 'ipv4' : 'ipv6');
    return list.check(host, family === 4 ? 'ipv4' : 'ipv6');
  } catch {
    return false;
  }
}

function sameIp(a: string, b: string): boolean {
  const family = isIP(a);
  if (family !== isIP(b)) return false;
  const list = new BlockList();
  list.addAddress(a, family === 4 ? 'ipv4' : 'ipv6');
  return list.check(b, family === 4 ? 'ipv4' : 'ipv6');
}

function bareHost(hostname: string): string {
  return hostname.startsWith('[') && hostname.endsWith(']') ? hostname.slice(1, -1) : hostname;
}

function isLoopback(host: string): boolean {
  const h = host.toLowerCase().replace(/\.$/, '');
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) return sameIp(h, '::1') || /^::ffff:127\./.test(h);
  return false;
}

// ---------------------------------------------------------------------------------------------------------------
// TLS options

export interface CaStore {
  /** The certificates of a PEM file, read again only when its mtime or size changes. Rejects with TransportError('config'). */
  load(path: string): Promise<{ certs: string[]; version: string }>;
}

const MAX_CA_FILE_BYTES = 1024 * 1024;

export function createCaStore(): CaStore {
  const cache = new Map<string, { version: string; certs: string[] }>();
  return {
    async load(path) {
      let version: string;
      try {
        const s = await stat(path);
        if (!s.isFile()) throw Object.assign(new Error('not a file'), { code: 'ENOTFILE' });
        if (s.size > MAX_CA_FILE_BYTES) throw Object.assign(new Error('too large'), { code: 'ETOOBIG' });
        version = `${s.mtimeMs}:${s.size}`;
      } catch (err) {
        throw caFileError(path, err);
      }
      const hit = cache.get(path);
      if (hit && hit.version === version) return hit;
      let text: string;
      try {
        text = await readFile(path, 'utf8');
      } catch (err) {
        throw caFileError(path, err);
      }
      const certs = parsePemCertificates(text, path);
      const entry = { version, certs };
      cache.set(path, entry);
      return entry;
    },
  };
}

function caFileError(path: string, err: unknown): TransportError {
  const code = (err as NodeJS.ErrnoException).code;
  const why =
    code === 'ENOENT' ? 'file not found'
    : code === 'EACCES' || code === 'EPERM' ? 'permission denied (the agent runs as its own user: make the file readable to it)'
    : code === 'ENOTFILE' || code === 'EISDIR' ? 'not a regular file'
    : code === 'ETOOBIG' ? `larger than ${MAX_CA_FILE_BYTES} bytes`
    : String(code ?? 'unreadable');
  return new TransportError('config', `tls.caFile ${path} cannot be read: ${why}`);
}

/** Every CERTIFICATE block of a PEM text, each checked to be a readable X.509 certificate. */
export function parsePemCertificates(text: string, path: string): string[] {
  const blocks = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (blocks.length === 0) {
    throw new TransportError(
      'config',
      `tls.caFile ${path} is not a PEM certificate file (no "-----BEGIN CERTIFICATE-----" block); ` +
        `a DER file converts with: openssl x509 -inform der -in FILE -out FILE.pem`,
    );
  }
  blocks.forEach((pem, i) => {
    try {
      new X509Certificate(pem);
    } catch {
      throw new TransportError('config', `tls.caFile ${path}: certificate ${i + 1} of ${blocks.length} is not a readable X.509 certificate`);
    }
  });
  return blocks.map((b) => `${b}\n`);
}

export interface TlsConnectOptions {
  /** Node's default roots plus the caFile's certificates; undefined without a caFile (Node's default then). */
  ca?: string[];
  /** SSL_OP_LEGACY_SERVER_CONNECT when legacyServerConnect is on. */
  secureOptions?: number;
  /** Changes when the caFile changes. */
  caVersion?: string;
}

/** The node:tls options for an account's TLS settings: what the client's agents and the doctor's handshake use. */
export async function tlsConnectOptions(tls: RequestTls | undefined, caStore: CaStore = createCaStore()): Promise<TlsConnectOptions> {
  const out: TlsConnectOptions = {};
  if (tls?.caFile !== undefined) {
    const loaded = await caStore.load(tls.caFile);
    // `ca` replaces Node's trust store, so the store comes first: the file adds to it.
    out.ca = [...process.getBuiltinModule('node:tls').rootCertificates, ...loaded.certs];
    out.caVersion = loaded.version;
  }
  if (tls?.legacyServerConnect) out.secureOptions = cryptoConstants.SSL_OP_LEGACY_SERVER_CONNECT;
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Errors

const UNKNOWN_CA_CODES = new Set([
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_UNTRUSTED',
  'CERT_CHAIN_TOO_LONG',
  'INVALID_CA',
]);

/** Classifies a TLS failure from Node's error code (or a socket's authorizationError) and message. */
export function classifyTlsError(code: string | undefined, message: string): TlsFailureReason | undefined {
  if (code === 'ERR_SSL_UNSAFE_LEGACY_RENEGOTIATION_DISABLED' || /unsafe legacy renegotiation disabled/i.test(message)) {
    return 'legacy_renegotiation';
  }
  if (code !== undefined && UNKNOWN_CA_CODES.has(code)) return 'unknown_ca';
  if (code === 'CERT_HAS_EXPIRED') return 'expired';
  if (code === 'CERT_NOT_YET_VALID') return 'not_yet_valid';
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID' || code === 'HOSTNAME_MISMATCH') return 'hostname_mismatch';
  const tlsLike = /SSL|TLS|CERT|self.signed/i;
  if (tlsLike.test(code ?? '') || tlsLike.test(message)) return 'other';
  return undefined;
}

/** What a technician should know about a classified TLS failure (without the "talking to X" part). */
export function describeTlsFailure(reason: TlsFailureReason, code: string | undefined, message: string): string {
  const detail = code && !/^E[A-Z]+$/.test(code) ? code : firstLine(message);
  switch (reason) {
    case 'legacy_renegotiation':
      return (
        'the server does not support secure renegotiation (RFC 5746) and OpenSSL 3 refuses such servers by default ' +
        `(unsafe legacy renegotiation disabled); set ${LEGACY_SERVER_CONNECT_OPTION} for this account in the config`
      );
    case 'unknown_ca':
      return `the server's certificate is not from a trusted CA (${detail}); if a proxy or firewall inspects HTTPS here, set tls.caFile to its CA certificate (PEM)`;
    case 'expired':
      return `the server's certificate has expired, or this box's clock is wrong (${detail})`;
    case 'not_yet_valid':
      return `the server's certificate is not valid yet: this box's clock is probably behind (${detail})`;
    case 'hostname_mismatch':
      return `the server's certificate is for another host name (${detail})`;
    case 'other':
      return firstLine(message);
  }
}

const PROXY_UNREACHABLE = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL']);

function translate(err: unknown, url: string, proxy: URL | undefined): TransportError {
  const where = safeOrigin(url);
  const via = proxy ? ` through proxy ${displayProxy(proxy)}` : '';
  const scrub = (s: string): string => scrubProxySecrets(s, proxy);
  const cause = safeCause(err, scrub);
  if (isRequestError(err)) {
    const code = err.code;
    const message = scrub(err.message);
    if (err.name === 'TimeoutError' || code === 'ETIMEDOUT') {
      const phase = (err as RequestError & { event?: string }).event;
      return new TransportError('timeout', `timed out${phase ? ` (${phase})` : ''} talking to ${where}${via}`, { cause });
    }
    if (err.name === 'AbortError' || code === 'ERR_ABORTED' || err.name === 'CancelError') {
      return new TransportError('aborted', `request to ${where} was cancelled`, { cause });
    }
    if (proxy) {
      const refused = /^Bad response: (\d{3})$/.exec(message);
      if (refused) {
        const status = Number(refused[1]);
        const what =
          status === 407 ? 'asks for a login (407): check the user and password in the proxy URL'
          : status === 403 ? 'refuses the tunnel (403): ask the network admin to allow CONNECT to this host and port'
          : status === 502 || status === 503 || status === 504 ? `could not reach the host itself (${status})`
          : `refused the tunnel with HTTP ${status}`;
        return new TransportError('proxy', `proxy ${displayProxy(proxy)} ${what}, talking to ${where}`, { cause });
      }
      if (code !== undefined && PROXY_UNREACHABLE.has(code)) {
        return new TransportError('proxy', `proxy ${displayProxy(proxy)} unreachable (${code}), talking to ${where}`, { cause });
      }
      if (message === 'Proxy timeout') {
        return new TransportError('timeout', `timed out (proxy) talking to ${where}${via}`, { cause });
      }
    }
    const reason = classifyTlsError(code, message);
    if (reason) {
      return new TransportError('tls', `TLS failure talking to ${where}${via}: ${describeTlsFailure(reason, code, message)}`, {
        cause,
        tlsReason: reason,
      });
    }
    return new TransportError('network', `${code ?? 'network error'} talking to ${where}${via}`, { cause });
  }
  return new TransportError('network', `request to ${where} failed: ${scrub(firstLine(String(err)))}`, { cause });
}

/**
 * The error underneath got's, as a plain Error with only name, code and a scrubbed message: got's own error
 * holds the request options (headers, body, the agent with the proxy URL and its password).
 */
function safeCause(err: unknown, scrub: (s: string) => string): Error | undefined {
  if (!(err instanceof Error)) return undefined;
  const inner = isRequestError(err) && err.cause instanceof Error ? err.cause : err;
  const copy = new Error(scrub(firstLine(inner.message)));
  copy.name = inner.name;
  const code = (inner as NodeJS.ErrnoException).code;
  if (code !== undefined) Object.assign(copy, { code });
  copy.stack = `${copy.name}: ${copy.message}`;
  return copy;
}

/** Removes the proxy's user and password (as written and decoded) from a text. */
function scrubProxySecrets(text: string, proxy: URL | undefined): string {
  if (!proxy || (!proxy.username && !proxy.password)) return text;
  let out = text.split(proxy.href).join(displayProxy(proxy));
  for (const secret of [proxy.password, proxy.username]) {
    if (!secret) continue;
    for (const form of new Set([secret, safeDecode(secret)])) {
      if (form.length >= 3) out = out.split(form).join('***');
    }
  }
  return out;
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
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
