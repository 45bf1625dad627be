/**
 * The doctor's network checks: can this box reach an authority, and if not, what should a technician do?
 * Each check is bounded in time and returns (never throws) `{ ok, detail }` or `{ ok: false, problem, fix }`,
 * plain sentences for a technician. The TLS check uses the same trust store and legacy option as the HTTP
 * client (`tlsConnectOptions`) and the same classification (`classifyTlsError`).
 *
 * Behind a proxy the box often cannot resolve or reach the authority directly, and need not: `checkNetwork`
 * then checks the proxy (DNS, TCP, CONNECT) and the TLS handshake through its tunnel, and reports the direct
 * DNS/TCP checks as skipped, saying why.
 */
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import {
  classifyTlsError,
  createCaStore,
  createHttpClient,
  displayProxy,
  LEGACY_SERVER_CONNECT_OPTION,
  parseProxyUrl,
  resolveProxy,
  tlsConnectOptions,
  TransportError,
  type CaStore,
  type HttpClient,
  type ProxyConfig,
  type RequestTls,
  type TlsConnectOptions,
} from '../authorities/http.js';
import { systemClock, type Clock } from '../lib/clock.js';
import { boxFacts, type BoxFacts } from './box.js';
import { clockHint, dnsHint } from './hints.js';
const { lookup: dnsLookup } = process.getBuiltinModule('node:dns/promises');
const { request: httpRequest } = process.getBuiltinModule('node:http');
const { request: httpsRequest } = process.getBuiltinModule('node:https');
const { connect: netConnect, isIP } = process.getBuiltinModule('node:net');
const { connect: tlsConnect } = process.getBuiltinModule('node:tls');

export type CheckResult =
  | { ok: true; detail: string; /** Not run, on purpose (the detail says why). */ skipped?: boolean }
  | { ok: false; problem: string; fix: string };

export interface CheckTiming {
  /** The whole check gives up after this long; 5 s by default. */
  timeoutMs?: number;
  /** Timers come from here (systemClock by default). */
  clock?: Clock;
  /** What the fixes may name (resolv.conf, getent, timedatectl, ...): this box's by default. */
  box?: BoxFacts;
}

export const DEFAULT_CHECK_TIMEOUT_MS = 5_000;
export const DEFAULT_MAX_CLOCK_OFFSET_MS = 5 * 60_000;

export type LookupAll = (host: string) => Promise<Array<{ address: string; family: number }>>;

const TIMEOUT = Symbol('timeout');

/** Runs work with an abort signal that fires after timeoutMs; resolves TIMEOUT then. */
async function bounded<T>(timing: CheckTiming | undefined, work: (signal: AbortSignal) => Promise<T>): Promise<T | typeof TIMEOUT> {
  const clock = timing?.clock ?? systemClock;
  const ac = new AbortController();
  let timer: { cancel(): void } | undefined;
  const timedOut = new Promise<typeof TIMEOUT>((resolve) => {
    timer = clock.setTimer(() => {
      ac.abort();
      resolve(TIMEOUT);
    }, timing?.timeoutMs ?? DEFAULT_CHECK_TIMEOUT_MS);
  });
  try {
    return await Promise.race([work(ac.signal), timedOut]);
  } finally {
    timer?.cancel();
    ac.abort();
  }
}

function seconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${(ms / 1000).toFixed(1)} s`;
}

function errCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

function errMessage(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0]!.slice(0, 200);
}

// ---------------------------------------------------------------------------------------------------------------
// DNS

export async function checkDns(host: string, options: CheckTiming & { lookup?: LookupAll } = {}): Promise<CheckResult> {
  const name = host.replace(/^\[|\]$/g, '');
  if (isIP(name)) return { ok: true, detail: `${name} is an IP address: no DNS needed` };
  const lookup: LookupAll = options.lookup ?? ((h) => dnsLookup(h, { all: true, verbatim: true }));
  const timeoutMs = options.timeoutMs ?? DEFAULT_CHECK_TIMEOUT_MS;
  const r = await bounded(options, async () => {
    try {
      return { addresses: (await lookup(name)).map((a) => a.address) };
    } catch (err) {
      return { err };
    }
  });
  const dns = dnsHint(options.box ?? boxFacts());
  if (r === TIMEOUT || (('err' in r) && (errCode(r.err) === 'EAI_AGAIN' || errCode(r.err) === 'ETIMEOUT'))) {
    const why = r === TIMEOUT ? `within ${seconds(timeoutMs)}` : `(${errCode(r.err)})`;
    return {
      ok: false,
      problem: `no answer from the DNS server for ${name} ${why}`,
      fix: `${dns.server} and that this box reaches it on port 53 (UDP and TCP)${dns.tryName(name, '; try: ')}`,
    };
  }
  if ('err' in r) {
    const code = errCode(r.err) ?? 'error';
    return {
      ok: false,
      problem: `the name ${name} does not resolve (${code})`,
      fix:
        `check the host name in the config; ${dns.server}${dns.tryName(name, ' (try: ', ')')}; ` +
        'if this network reaches the Internet only through a proxy, set proxy.url in the config',
    };
  }
  if (r.addresses.length === 0) {
    return { ok: false, problem: `the name ${name} resolves to no address`, fix: dns.server };
  }
  return { ok: true, detail: `${name} resolves to ${r.addresses.slice(0, 4).join(', ')}${r.addresses.length > 4 ? ', …' : ''}` };
}

// ---------------------------------------------------------------------------------------------------------------
// TCP

export async function checkTcp(host: string, port: number, options: CheckTiming = {}): Promise<CheckResult> {
  const name = host.replace(/^\[|\]$/g, '');
  const where = `${isIP(name) === 6 ? `[${name}]` : name}:${port}`;
  const timeoutMs = options.timeoutMs ?? DEFAULT_CHECK_TIMEOUT_MS;
  const clock = options.clock ?? systemClock;
  const started = clock.monotonic();
  let socket: Socket | undefined;
  const r = await bounded(options, (signal) =>
    new Promise<{ address: string } | { err: unknown }>((resolve) => {
      socket = netConnect({ host: name, port });
      signal.addEventListener('abort', () => socket?.destroy(), { once: true });
      socket.once('connect', () => resolve({ address: socket?.remoteAddress ?? name }));
      socket.once('error', (err) => resolve({ err }));
    }),
  );
  socket?.destroy();
  const blocked = {
    fix:
      `open outbound TCP ${port} to ${name} in the firewall; ` +
      'if this network reaches the Internet only through a proxy, set proxy.url in the config',
  };
  if (r === TIMEOUT) return { ok: false, problem: `no TCP connection to ${where} within ${seconds(timeoutMs)} (something drops the packets)`, ...blocked };
  if ('err' in r) {
    const code = errCode(r.err) ?? 'error';
    if (code === 'ECONNREFUSED') {
      return {
        ok: false,
        problem: `${where} refused the connection (ECONNREFUSED)`,
        fix: `nothing accepts connections there, or a firewall rejects them: check the URL and port in the config, and open outbound TCP ${port} to ${name}`,
      };
    }
    if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
      return { ok: false, problem: `the name ${name} does not resolve (${code})`, fix: `see the DNS check: ${dnsHint(options.box ?? boxFacts()).server}` };
    }
    return { ok: false, problem: `no TCP connection to ${where} (${code})`, ...blocked };
  }
  const took = Math.round(clock.monotonic() - started);
  return { ok: true, detail: `TCP connection to ${where} (${r.address}) in ${took} ms` };
}

// ---------------------------------------------------------------------------------------------------------------
// Proxy

type TunnelOutcome = { socket: Socket } | { status: number } | { err: unknown };

/** Opens a CONNECT tunnel to host:port through the proxy; the caller owns the socket. */
function openTunnel(proxy: URL, host: string, port: number, signal: AbortSignal, proxyCa?: string[]): Promise<TunnelOutcome> {
  return new Promise((resolve) => {
    const authority = `${isIP(host) === 6 ? `[${host}]` : host}:${port}`;
    const headers: Record<string, string> = { host: authority };
    if (proxy.username || proxy.password) {
      const user = decodeURIComponent(proxy.username);
      const password = decodeURIComponent(proxy.password);
      headers['proxy-authorization'] = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
    }
    const options = {
      method: 'CONNECT',
      host: proxy.hostname.replace(/^\[|\]$/g, ''),
      port: Number(proxy.port || (proxy.protocol === 'https:' ? 443 : 80)),
      path: authority,
      headers,
      agent: false as const,
      setHost: false,
      ...(proxy.protocol === 'https:' ? { servername: proxy.hostname, ...(proxyCa ? { ca: proxyCa } : {}) } : {}),
    };
    const req = (proxy.protocol === 'https:' ? httpsRequest : httpRequest)(options);
    signal.addEventListener('abort', () => req.destroy(), { once: true });
    req.once('connect', (res: IncomingMessage, socket: Socket) => {
      if (res.statusCode === 200) resolve({ socket });
      else {
        socket.destroy();
        resolve({ status: res.statusCode ?? 0 });
      }
    });
    req.once('response', (res: IncomingMessage) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0 });
    });
    req.once('error', (err) => resolve({ err }));
    req.end();
  });
}

function proxyProblem(proxy: URL, authority: string, outcome: Exclude<TunnelOutcome, { socket: Socket }> | typeof TIMEOUT, timeoutMs: number): CheckResult {
  const p = displayProxy(proxy);
  if (outcome === TIMEOUT) {
    return {
      ok: false,
      problem: `proxy ${p} did not open a tunnel to ${authority} within ${seconds(timeoutMs)}`,
      fix: `check that ${p} is an HTTP proxy that allows CONNECT, and that it reaches ${authority}`,
    };
  }
  if ('err' in outcome) {
    const code = errCode(outcome.err);
    return {
      ok: false,
      problem: `proxy ${p} failed the CONNECT to ${authority} (${code ?? errMessage(outcome.err)})`,
      fix: `check proxy.url in the config (or HTTPS_PROXY): is ${p} an HTTP proxy?`,
    };
  }
  const withLogin = Boolean(proxy.username || proxy.password);
  if (outcome.status === 407) {
    return withLogin
      ? { ok: false, problem: `proxy ${p} rejected the user and password in the proxy URL (407)`, fix: 'check the user and password in proxy.url (or HTTPS_PROXY); percent-encode special characters' }
      : { ok: false, problem: `proxy ${p} asks for a login (407)`, fix: 'put the proxy user and password in proxy.url, as http://user:password@proxy:3128 (percent-encode special characters)' };
  }
  if (outcome.status === 502 || outcome.status === 503 || outcome.status === 504) {
    return {
      ok: false,
      problem: `proxy ${p} could not reach ${authority} (HTTP ${outcome.status})`,
      fix: `the proxy's own network cannot reach ${authority}: ask the network admin to allow it`,
    };
  }
  return {
    ok: false,
    problem: `proxy ${p} refused CONNECT to ${authority} (HTTP ${outcome.status})`,
    fix: `ask the network admin to allow HTTPS (CONNECT) to ${authority} through the proxy`,
  };
}

function authorityOf(url: URL): { host: string; port: number; authority: string } {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const port = Number(url.port || (url.protocol === 'http:' ? 80 : 443));
  return { host, port, authority: `${url.hostname}:${port}` };
}

/** TCP to the proxy, then a CONNECT through it to the URL's host and port. */
export async function checkProxy(proxyUrl: string | URL, targetUrl: string, options: CheckTiming = {}): Promise<CheckResult> {
  const proxy = typeof proxyUrl === 'string' ? parseProxyUrl(proxyUrl) : proxyUrl;
  if (typeof proxy === 'string') {
    return { ok: false, problem: `the proxy URL is not usable: ${proxy}`, fix: 'fix proxy.url in the config (or HTTPS_PROXY), e.g. http://proxy:3128' };
  }
  const target = parseUrl(targetUrl);
  if (!target) return badUrl(targetUrl);
  const p = displayProxy(proxy);
  const proxyPort = Number(proxy.port || (proxy.protocol === 'https:' ? 443 : 80));
  const tcp = await checkTcp(proxy.hostname, proxyPort, options);
  if (!tcp.ok) {
    return { ok: false, problem: `proxy ${p} unreachable: ${tcp.problem}`, fix: `check proxy.url in the config (or HTTPS_PROXY); ${tcp.fix}` };
  }
  const { host, port, authority } = authorityOf(target);
  const timeoutMs = options.timeoutMs ?? DEFAULT_CHECK_TIMEOUT_MS;
  let opened: Socket | undefined;
  const outcome = await bounded(options, async (signal) => {
    const o = await openTunnel(proxy, host, port, signal);
    if ('socket' in o) opened = o.socket;
    return o;
  });
  opened?.destroy();
  if (outcome !== TIMEOUT && 'socket' in outcome) return { ok: true, detail: `proxy ${p} opened a tunnel to ${authority}` };
  return proxyProblem(proxy, authority, outcome, timeoutMs);
}

// ---------------------------------------------------------------------------------------------------------------
// TLS

export interface TlsCheckOptions extends CheckTiming {
  /** The account's name, for the fix ("set tls.legacyServerConnect: true for account X"). */
  account?: string;
  /** Handshake through this proxy's CONNECT tunnel (a proxy URL, credentials allowed). */
  proxy?: string | URL;
  /** Wall-clock time, for the expiry message; Date.now by default. */
  now?: () => number;
  caStore?: CaStore;
}

/** What a TLS check connects to and with what. */
interface TlsTarget {
  url: string;
  host: string;
  port: number;
  authority: string;
  connect: TlsConnectOptions;
  proxy: URL | undefined;
  /** " for account X", or " for this account". */
  forAccount: string;
}

type Handshake =
  | { done: { authorized: boolean; authorizationError: string; cert: PeerCertificate; protocol: string | null } }
  | { err: unknown }
  | { proxyOutcome: Exclude<TunnelOutcome, { socket: Socket }> };

/** A real TLS handshake with the same trust store and legacy option as the HTTP client; classifies failures. */
export async function checkTls(url: string, tls: RequestTls | undefined, options: TlsCheckOptions = {}): Promise<CheckResult> {
  const target = await tlsTarget(url, tls, options);
  if ('ok' in target) return target;
  const sockets: { tls?: TLSSocket; tunnel?: Socket } = {};
  try {
    const r = await bounded(options, (signal) => handshake(target, signal, sockets));
    if (r === TIMEOUT) {
      return {
        ok: false,
        problem: `no TLS handshake with ${target.authority} within ${seconds(options.timeoutMs ?? DEFAULT_CHECK_TIMEOUT_MS)}`,
        fix: `open outbound TCP ${target.port} to ${target.host}; if a firewall or proxy holds TLS connections, ask the network admin to let ${target.host} through`,
      };
    }
    if ('proxyOutcome' in r) {
      return target.proxy ? proxyProblem(target.proxy, target.authority, r.proxyOutcome, options.timeoutMs ?? DEFAULT_CHECK_TIMEOUT_MS) : badUrl(url);
    }
    if ('err' in r) return handshakeFailure(target, r.err);
    return r.done.authorized ? tlsPassed(target, r.done) : certificateRefused(target, r.done, options);
  } finally {
    sockets.tls?.destroy();
    sockets.tunnel?.destroy();
  }
}

/** The URL, trust store and proxy of a TLS check, or why there is nothing to check (or it cannot be). */
async function tlsTarget(url: string, tls: RequestTls | undefined, options: TlsCheckOptions): Promise<TlsTarget | CheckResult> {
  const parsed = parseUrl(url);
  if (!parsed) return badUrl(url);
  if (parsed.protocol !== 'https:') return { ok: true, skipped: true, detail: `${url} is not https://: no TLS to check` };
  const forAccount = options.account ? ` for account ${options.account}` : ' for this account';
  let connect: TlsConnectOptions;
  try {
    connect = await tlsConnectOptions(tls, options.caStore ?? createCaStore());
  } catch (err) {
    if (err instanceof TransportError) {
      return { ok: false, problem: err.message, fix: `fix tls.caFile${forAccount}: a file readable by the agent, holding PEM certificates` };
    }
    throw err;
  }
  let proxy: URL | undefined;
  if (options.proxy !== undefined) {
    const p = typeof options.proxy === 'string' ? parseProxyUrl(options.proxy) : options.proxy;
    if (typeof p === 'string') return { ok: false, problem: `the proxy URL is not usable: ${p}`, fix: 'fix proxy.url in the config (or HTTPS_PROXY)' };
    proxy = p;
  }
  return { url, ...authorityOf(parsed), connect, proxy, forAccount };
}

/** Through the proxy's tunnel when there is one; the sockets opened are left in `sockets` for the caller to close. */
async function handshake(target: TlsTarget, signal: AbortSignal, sockets: { tls?: TLSSocket; tunnel?: Socket }): Promise<Handshake> {
  const { host, port, connect } = target;
  if (target.proxy) {
    const t = await openTunnel(target.proxy, host, port, signal, connect.ca);
    if (!('socket' in t)) return { proxyOutcome: t };
    sockets.tunnel = t.socket;
  }
  if (signal.aborted) return { err: new Error('aborted') };
  return new Promise<Handshake>((resolve) => {
    const s = tlsConnect({
      ...(sockets.tunnel ? { socket: sockets.tunnel } : { host, port }),
      ...(isIP(host) ? {} : { servername: host }),
      ...(connect.ca ? { ca: connect.ca } : {}),
      ...(connect.secureOptions !== undefined ? { secureOptions: connect.secureOptions } : {}),
      ALPNProtocols: ['http/1.1'],
      // Verified by the caller, so that a failure can say which certificate the server showed.
      rejectUnauthorized: false,
    });
    sockets.tls = s;
    signal.addEventListener('abort', () => s.destroy(), { once: true });
    // Read now: the socket is destroyed when the check ends.
    s.once('secureConnect', () =>
      resolve({
        done: {
          authorized: s.authorized,
          authorizationError: String(s.authorizationError ?? 'unknown'),
          cert: s.getPeerCertificate(true),
          protocol: s.getProtocol(),
        },
      }),
    );
    s.once('error', (err) => resolve({ err }));
  });
}

/** A handshake that failed before a certificate could be judged: renegotiation, a TLS error, or no connection. */
function handshakeFailure(target: TlsTarget, err: unknown): CheckResult {
  const { host, port, authority } = target;
  const code = errCode(err);
  const message = errMessage(err);
  const reason = classifyTlsError(code, message);
  if (reason === 'legacy_renegotiation') {
    return {
      ok: false,
      problem:
        `${host} does not support secure renegotiation (RFC 5746), which OpenSSL 3 refuses by default ` +
        '(unsafe legacy renegotiation disabled)',
      fix: `set ${LEGACY_SERVER_CONNECT_OPTION}${target.forAccount} in the config (under "tls" in the account)`,
    };
  }
  if (reason) {
    return {
      ok: false,
      problem: `TLS handshake with ${authority} failed: ${message}`,
      fix: `check that the URL is the authority's https:// address; a firewall or proxy may be interfering with TLS to ${host}`,
    };
  }
  return {
    ok: false,
    problem: `no TLS connection to ${authority} (${code ?? message})`,
    fix:
      code === 'ECONNREFUSED'
        ? `check the URL and port in the config, and open outbound TCP ${port} to ${host}`
        : `open outbound TCP ${port} to ${host}; a firewall may cut TLS connections (see the TCP check)`,
  };
}

function tlsPassed(target: TlsTarget, done: Extract<Handshake, { done: unknown }>['done']): CheckResult {
  const { cert, protocol } = done;
  return {
    ok: true,
    detail:
      `${protocol ?? 'TLS'} with ${target.authority}${target.proxy ? ` through proxy ${displayProxy(target.proxy)}` : ''}: ` +
      `certificate for ${certName(cert)} issued by ${issuerName(cert)}, valid until ${isoDate(cert.valid_to)}` +
      `${target.connect.secureOptions !== undefined ? `, with ${LEGACY_SERVER_CONNECT_OPTION}` : ''}`,
  };
}

/** A certificate this box does not accept: whose, why, and what to do (the clock, a proxy's CA, the authority). */
function certificateRefused(target: TlsTarget, done: Extract<Handshake, { done: unknown }>['done'], options: TlsCheckOptions): CheckResult {
  const { host, forAccount } = target;
  const { cert, authorizationError: authError } = done;
  const boxTime = new Date((options.now ?? Date.now)()).toISOString();
  const clock = clockHint(options.box ?? boxFacts());
  switch (classifyTlsError(authError, authError)) {
    case 'unknown_ca':
      return {
        ok: false,
        problem: `the certificate of ${host} is not from a trusted CA (${authError}): it is issued by ${topIssuer(cert)}`,
        fix:
          `if a proxy or firewall on this network inspects HTTPS (then it is the issuer named above), set tls.caFile${forAccount} ` +
          `to your proxy's CA certificate (PEM); otherwise ${host} sends an incomplete certificate chain: report it to the authority`,
      };
    case 'expired':
      return {
        ok: false,
        problem: `the certificate of ${host} expired on ${isoDate(cert.valid_to)}; this box's clock says ${boxTime}`,
        fix: `if this box's date is wrong, fix the clock (${clock.brief}); otherwise the certificate of ${host} really expired: report it to the authority`,
      };
    case 'not_yet_valid':
      return {
        ok: false,
        problem: `the certificate of ${host} is valid only from ${isoDate(cert.valid_from)}; this box's clock says ${boxTime}`,
        fix: `this box's clock is probably behind: fix it (${clock.brief})`,
      };
    case 'hostname_mismatch':
      return {
        ok: false,
        problem: `the certificate presented for ${host} is for ${certName(cert)}`,
        fix: `check the URL in the config; if something on this network intercepts HTTPS to ${host}, ask the network admin to let it through untouched`,
      };
    default:
      return {
        ok: false,
        problem: `the certificate of ${host} is not accepted (${authError})`,
        fix: `check the URL in the config; if a proxy or firewall inspects HTTPS, set tls.caFile${forAccount} to its CA certificate (PEM)`,
      };
  }
}

function certName(cert: PeerCertificate): string {
  const san = cert.subjectaltname;
  if (san) return san.split(', ').slice(0, 5).join(', ');
  return cert.subject?.CN ? `CN=${String(cert.subject.CN)}` : '(no name)';
}

function issuerName(cert: PeerCertificate): string {
  const i = cert.issuer;
  if (!i) return '(unknown)';
  return `"${String(i.CN ?? i.O ?? '(no name)')}"${i.O && i.CN ? ` (${String(i.O)})` : ''}`;
}

/** The issuer at the top of the chain the server sent. */
function topIssuer(cert: PeerCertificate): string {
  let c = cert as PeerCertificate & { issuerCertificate?: PeerCertificate };
  for (let i = 0; i < 10 && c.issuerCertificate && c.issuerCertificate !== c; i++) c = c.issuerCertificate as typeof c;
  return issuerName(c);
}

function isoDate(text: string | undefined): string {
  const t = text ? Date.parse(text) : NaN;
  return Number.isNaN(t) ? String(text) : new Date(t).toISOString();
}

// ---------------------------------------------------------------------------------------------------------------
// Clock

export type ClockCheckResult = CheckResult & { /** Server time minus this box's, when read. */ offsetMs?: number };

export interface ClockCheckOptions {
  timeoutMs?: number;
  /** Fail beyond this offset; 5 minutes by default. */
  maxOffsetMs?: number;
  tls?: RequestTls;
  method?: 'HEAD' | 'GET';
  /** What the fixes may name (timedatectl, timesyncd.conf): this box's by default. */
  box?: BoxFacts;
}

/** One request to url; compares its Date header with `now()` (taken before and after, the middle used). */
export async function checkClock(url: string, http: HttpClient, now: () => number, options: ClockCheckOptions = {}): Promise<ClockCheckResult> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_CHECK_TIMEOUT_MS;
  const maxOffsetMs = options.maxOffsetMs ?? DEFAULT_MAX_CLOCK_OFFSET_MS;
  const host = parseUrl(url)?.host ?? url;
  const sent = now();
  let dateHeader: string | undefined;
  try {
    const res = await http.request({
      url,
      method: options.method ?? 'HEAD',
      headers: {},
      timeouts: { connectMs: timeoutMs, responseMs: timeoutMs, totalMs: timeoutMs },
      maxResponseBytes: 64 * 1024,
      ...(options.tls ? { tls: options.tls } : {}),
    });
    const d = res.headers.date;
    dateHeader = Array.isArray(d) ? d[0] : d;
  } catch (err) {
    const why = err instanceof TransportError ? err.message : 'unexpected error';
    return { ok: false, problem: `could not read the time from ${host}: ${why}`, fix: 'fix the failed network checks first' };
  }
  const received = now();
  const serverMs = dateHeader ? Date.parse(dateHeader) : NaN;
  if (Number.isNaN(serverMs)) {
    return {
      ok: false,
      problem: `${host} sent no usable Date header, so this box's clock could not be compared`,
      fix: `check time sync by hand: ${clockHint(options.box ?? boxFacts()).see}`,
    };
  }
  // A Date header has whole seconds: the server's time was somewhere in [serverMs, serverMs + 1000).
  const offsetMs = Math.round(serverMs + 500 - (sent + received) / 2);
  const box = new Date(Math.round((sent + received) / 2)).toISOString();
  const server = new Date(serverMs).toISOString();
  if (Math.abs(offsetMs) > maxOffsetMs) {
    const clock = clockHint(options.box ?? boxFacts());
    return {
      ok: false,
      offsetMs,
      problem: `this box's clock is ${formatOffset(Math.abs(offsetMs))} ${offsetMs > 0 ? 'behind' : 'ahead of'} the time at ${host} (box: ${box}, server: ${server})`,
      fix:
        `fix the time sync: ${clock.see}; ${clock.sync}, or set the time with ${clock.set}; ` +
        'tokens are refused or expire early while the clock is off',
    };
  }
  return { ok: true, offsetMs, detail: `this box's clock is within ${formatOffset(Math.max(1000, Math.abs(offsetMs)))} of the time at ${host}` };
}

/**
 * A clock offset for people: seconds under a minute, minutes and seconds under an hour, hours and minutes beyond.
 * Each is rounded at the unit it shows, so an offset of 3599.6 s (a Date header is only good to the second) reads
 * "1 h 0 min", not "59 min 59 s" or "1 h 59 min".
 */
export function formatOffset(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  const m = Math.round(ms / 60_000);
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

// ---------------------------------------------------------------------------------------------------------------
// All of them, in order

export interface NetworkCheckInput {
  /** The authority URL (identityUrl or tokenUrl). */
  url: string;
  account?: string;
  tls?: RequestTls;
  proxy?: ProxyConfig;
  env?: NodeJS.ProcessEnv;
  /** For the clock check; a client with the same proxy settings by default. */
  http?: HttpClient;
  now?: () => number;
  timeoutMs?: number;
  maxClockOffsetMs?: number;
  clock?: Clock;
  lookup?: LookupAll;
  /** false: no clock check (a second URL of the same account: its clock was compared already). Default true. */
  checkClock?: boolean;
  /** What the fixes may name: this box's by default. */
  box?: BoxFacts;
}

export interface NamedCheck {
  name: 'dns' | 'tcp' | 'proxy' | 'tls' | 'clock';
  /** What was checked: a host, host:port, or a URL without credentials. */
  target: string;
  result: CheckResult;
}

/**
 * DNS, TCP, TLS and clock for one authority URL; with a proxy, DNS and TCP of the proxy, CONNECT through it,
 * TLS through the tunnel and the clock through it, the direct checks reported as skipped. After the first
 * failure the remaining checks are skipped (they would fail for the same reason).
 */
export async function checkNetwork(input: NetworkCheckInput): Promise<NamedCheck[]> {
  const target = parseUrl(input.url);
  if (!target) return [{ name: 'dns', target: input.url, result: badUrl(input.url) }];
  const env = input.env ?? process.env;
  const box = input.box ?? boxFacts(env);
  const timing: CheckTiming = {
    ...(input.timeoutMs !== undefined ? { timeoutMs: input.timeoutMs } : {}),
    ...(input.clock ? { clock: input.clock } : {}),
    box,
  };
  const { host, port, authority } = authorityOf(target);
  const route = resolveProxy(input.url, input.proxy ?? {}, env);
  const out: NamedCheck[] = [];
  const steps: Array<{ name: NamedCheck['name']; target: string; run: () => Promise<CheckResult> }> = [];

  if (route.proxy === 'invalid') {
    return [{
      name: 'proxy',
      target: route.source,
      result: { ok: false, problem: `the proxy in ${route.source} is not usable: ${route.why}`, fix: `fix ${route.source === 'proxy.url in the config' ? 'proxy.url in the config' : `the ${route.source} variable`}, e.g. http://proxy:3128` },
    }];
  }
  const proxy = route.proxy;
  const lookup = input.lookup ? { lookup: input.lookup } : {};
  if (proxy) {
    const p = displayProxy(proxy);
    out.push(...skippedForProxy(host, authority, p, route.source));
    steps.push({ name: 'dns', target: proxy.hostname, run: () => checkDns(proxy.hostname, { ...timing, ...lookup }) });
    steps.push({ name: 'proxy', target: `${p} -> ${authority}`, run: () => checkProxy(proxy, input.url, timing) });
  } else {
    steps.push({ name: 'dns', target: host, run: () => checkDns(host, { ...timing, ...lookup }) });
    steps.push({ name: 'tcp', target: authority, run: () => checkTcp(host, port, timing) });
  }
  steps.push({
    name: 'tls',
    target: authority,
    run: () =>
      checkTls(input.url, input.tls, {
        ...timing,
        ...(input.account ? { account: input.account } : {}),
        ...(proxy ? { proxy } : {}),
        ...(input.now ? { now: input.now } : {}),
      }),
  });
  const clockWanted = input.checkClock !== false;
  const ownHttp = input.http || !clockWanted ? undefined : createHttpClient({ ...(input.proxy ? { proxy: input.proxy } : {}), env });
  const http = input.http ?? ownHttp!;
  if (clockWanted) steps.push({
    name: 'clock',
    target: `${target.protocol}//${target.host}`,
    run: () =>
      checkClock(input.url, http, input.now ?? Date.now, {
        ...(input.timeoutMs !== undefined ? { timeoutMs: input.timeoutMs } : {}),
        ...(input.maxClockOffsetMs !== undefined ? { maxOffsetMs: input.maxClockOffsetMs } : {}),
        ...(input.tls ? { tls: input.tls } : {}),
        box,
      }),
  });
  try {
    let failed: string | undefined;
    for (const step of steps) {
      if (failed) {
        out.push({ name: step.name, target: step.target, result: { ok: true, skipped: true, detail: `not run: the ${failed} check failed` } });
        continue;
      }
      const result = await step.run();
      out.push({ name: step.name, target: step.target, result });
      if (!result.ok) failed = step.name;
    }
  } finally {
    (ownHttp as { close?: () => void } | undefined)?.close?.();
  }
  return out;
}

/** Behind a proxy, the direct DNS and TCP checks, reported as skipped: the proxy resolves and connects itself. */
function skippedForProxy(host: string, authority: string, proxy: string, source: string): NamedCheck[] {
  const skipped = (what: string): CheckResult => ({
    ok: true,
    skipped: true,
    detail: `${what} not checked from this box: requests go through proxy ${proxy} (${source}), which ${what === 'DNS' ? 'resolves' : 'connects to'} ${host} itself`,
  });
  return [
    { name: 'dns', target: host, result: skipped('DNS') },
    { name: 'tcp', target: authority, result: skipped('TCP') },
  ];
}

function parseUrl(url: string): URL | undefined {
  try {
    const u = new URL(url);
    return u.protocol === 'https:' || u.protocol === 'http:' ? u : undefined;
  } catch {
    return undefined;
  }
}

function badUrl(url: string): CheckResult {
  return { ok: false, problem: `${JSON.stringify(url.slice(0, 100))} is not an http(s) URL`, fix: 'fix the URL in the config' };
}
