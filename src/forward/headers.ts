/**
 * Which headers cross the proxy. Hop-by-hop headers (RFC 9110 section 7.6.1) belong to one connection and never
 * cross; neither do the agent's own header and what the agent sets itself (Authorization, Host, the length).
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';

const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'proxy-connection', 'te', 'trailer',
  'transfer-encoding', 'upgrade',
]);

/** Never forwarded to the API: the agent sets them, or they belong to the socket API. */
const AGENT_OWNED: ReadonlySet<string> = new Set(['host', 'authorization', 'content-length', 'x-pos-agent', 'expect']);

/**
 * Never passed back from the API: the headers the agent puts on its own answers. An API (or anything between) that
 * sent `X-Pos-Agent-Error` would make its answer look like the agent's own refusal.
 */
const AGENT_ANSWER_HEADERS: ReadonlySet<string> = new Set(['x-pos-agent-error', 'x-pos-agent-attempts']);

/** A till's headers that the proxy refuses (400): it would send them with someone else's authority. */
export const REFUSED_REQUEST_HEADERS: ReadonlyArray<string> = ['authorization', 'cookie', 'proxy-authorization'];

/**
 * The first of REFUSED_REQUEST_HEADERS in `h`, or undefined. Each is read by its name: a load by a varying name (a
 * loop over the list) is a slow, megamorphic one, and the proxy asks on every request.
 */
export function refusedHeader(h: IncomingHttpHeaders): string | undefined {
  if (h.authorization !== undefined) return 'authorization';
  if (h.cookie !== undefined) return 'cookie';
  if (h['proxy-authorization'] !== undefined) return 'proxy-authorization';
  return undefined;
}

/**
 * The names listed in Connection: hop-by-hop too. One name (`keep-alive`, `close`: nearly every request and answer)
 * is kept as the name itself, without a set: the proxy asks on every request, both ways.
 */
type Listed = string | ReadonlySet<string> | undefined;

function connectionListed(headers: IncomingHttpHeaders): Listed {
  const raw = headers.connection;
  if (raw === undefined) return undefined;
  if (typeof raw === 'string' && !raw.includes(',')) return raw.trim().toLowerCase() || undefined;
  const listed = new Set<string>();
  for (const value of Array.isArray(raw) ? raw : [raw]) {
    for (const name of value.split(',')) if (name.trim()) listed.add(name.trim().toLowerCase());
  }
  return listed;
}

function isListed(listed: Listed, name: string): boolean {
  return listed !== undefined && (typeof listed === 'string' ? listed === name : listed.has(name));
}

/** The headers of `headers` that cross, into a new object: neither hop-by-hop, listed in Connection, nor in `never`. */
function crossing(headers: IncomingHttpHeaders, never: ReadonlySet<string>): OutgoingHttpHeaders {
  const listed = connectionListed(headers);
  const out: OutgoingHttpHeaders = {};
  // Object.keys, not Object.entries: an array per header was most of what the proxy allocated here.
  const names = Object.keys(headers);
  for (let i = 0; i < names.length; i++) {
    const name = names[i]!;
    const value = headers[name];
    if (value === undefined || HOP_BY_HOP.has(name) || never.has(name) || isListed(listed, name)) continue;
    out[name] = value;
  }
  return out;
}

/** The till's headers as they go to the API. */
export function requestHeadersOut(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  return crossing(headers, AGENT_OWNED);
}

/**
 * The API's headers as they go back to the till (the length and framing are the agent's own connection's; the
 * agent's own answer headers are never the API's).
 */
export function responseHeadersBack(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  return crossing(headers, AGENT_ANSWER_HEADERS);
}

/** Whether a header name may be set on an outbox entry (the same rule as the proxy's, plus cookies). */
export function isForwardableHeader(name: string): boolean {
  const n = name.toLowerCase();
  return !HOP_BY_HOP.has(n) && !AGENT_OWNED.has(n) && !REFUSED_REQUEST_HEADERS.includes(n) && n !== 'content-type';
}
