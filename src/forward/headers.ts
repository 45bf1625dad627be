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

/** The names listed in Connection: hop-by-hop too. */
function connectionListed(headers: IncomingHttpHeaders): Set<string> {
  const raw = headers.connection;
  const listed = new Set<string>();
  for (const value of Array.isArray(raw) ? raw : raw ? [raw] : []) {
    for (const name of value.split(',')) if (name.trim()) listed.add(name.trim().toLowerCase());
  }
  return listed;
}

/** The till's headers as they go to the API. */
export function requestHeadersOut(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const listed = connectionListed(headers);
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || HOP_BY_HOP.has(name) || AGENT_OWNED.has(name) || listed.has(name)) continue;
    out[name] = value;
  }
  return out;
}

/**
 * The API's headers as they go back to the till (the length and framing are the agent's own connection's; the
 * agent's own answer headers are never the API's).
 */
export function responseHeadersBack(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const listed = connectionListed(headers);
  const out: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || HOP_BY_HOP.has(name) || AGENT_ANSWER_HEADERS.has(name) || listed.has(name)) continue;
    out[name] = value;
  }
  return out;
}

/** Whether a header name may be set on an outbox entry (the same rule as the proxy's, plus cookies). */
export function isForwardableHeader(name: string): boolean {
  const n = name.toLowerCase();
  return !HOP_BY_HOP.has(n) && !AGENT_OWNED.has(n) && !REFUSED_REQUEST_HEADERS.includes(n) && n !== 'content-type';
}
