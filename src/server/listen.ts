/**
 * The socket's life: listening (on a path, or on a socket systemd passed), and answering what Node could not parse
 * as a request (the only error answers written by hand, X-Pos-Agent-Error included).
 */
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import { AGENT_ERROR_HEADER, type ErrorBody } from '../api/index.js';
import type { Counter } from '../lib/metrics.js';
import type { Logger } from '../lib/log.js';
import { formatBytes } from './http.js';
const { chmodSync, lstatSync, mkdirSync, unlinkSync } = process.getBuiltinModule('node:fs');
const { connect } = process.getBuiltinModule('node:net');
const { dirname } = process.getBuiltinModule('node:path');

/** The most the request line and headers may hold: Node's parser refuses more (431). A fixed limit. */
export const MAX_HEADER_BYTES = 8 * 1024;

/** What a client whose request Node could not parse is answered (400, 408 or 431), then its connection is closed. */
export function answerClientError(err: NodeJS.ErrnoException, socket: Socket, requests: Counter | undefined): void {
  if (!socket.writable || (err.code === 'ECONNRESET' && !socket.bytesWritten)) {
    socket.destroy();
    return;
  }
  const [status, text, message] =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? [431, 'Request Header Fields Too Large', `the request line and headers are more than ${formatBytes(MAX_HEADER_BYTES)} bytes, the most the agent reads (a fixed limit)`]
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'Request Timeout', 'the request did not arrive in time (server.headersTimeoutMs)']
        : [400, 'Bad Request', `malformed HTTP request (${err.code ?? 'parse error'})`];
  const answer: ErrorBody = { error: 'bad_request', message };
  const body = JSON.stringify(answer);
  requests?.inc({ route: 'other', status: String(status) });
  socket.end(
    `HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Type: application/json\r\n${AGENT_ERROR_HEADER}: ${answer.error}\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
  if (err.code === 'HPE_HEADER_OVERFLOW') {
    // The client may still be sending its oversized headers: closing now would reset the connection and
    // could throw the 431 away before it is read. Drop what still comes; the client closes once answered,
    // and the first-request deadline bounds a client that does not.
    socket.resume();
  } else {
    socket.destroySoon?.();
  }
}

/** Listens on the configured path: its directory made, a stale socket replaced, the socket 0660. */
export async function listenOnPath(server: Server, path: string, backlog: number, log: Logger): Promise<void> {
  await prepareSocketPath(path);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ path, backlog }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  chmodSync(path, 0o660);
  server.on('error', (err) => log.error('socket server error', { error: String(err) }));
  log.info('listening', { socket: path });
}

/**
 * Serves on a listening socket systemd passed (socket activation). The path, its owner and
 * mode belong to the socket unit: nothing is unlinked or chmod'ed here. Only a Unix stream
 * socket is accepted, so a unit cannot turn the agent into a TCP service by mistake.
 */
export async function listenOnInheritedFd(server: Server, fd: number, configured: string, log: Logger): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ fd }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  // Node reports an inet socket as an object, a Unix one opened from an fd as null (no name known).
  const address = server.address();
  if (address !== null && typeof address === 'object') {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    throw new Error(`the socket systemd passed as fd ${fd} is not a Unix stream socket; use ListenStream=/path in the socket unit`);
  }
  server.on('error', (err) => log.error('socket server error', { error: String(err) }));
  if (typeof address === 'string' && address !== '' && address !== configured) {
    log.info('the socket from systemd is not at the configured path; clients must use the one systemd listens on', {
      socket: address,
      configured,
    });
  }
  log.info('listening', { socket: address || configured, fd, from: 'systemd' });
}

/** Makes the socket's directory (0750) and replaces a stale socket file; refuses to steal a live one. */
async function prepareSocketPath(path: string): Promise<void> {
  const dir = dirname(path);
  try {
    lstatSync(dir);
  } catch {
    mkdirSync(dir, { recursive: true, mode: 0o750 });
    chmodSync(dir, 0o750);
  }
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return;
  }
  if (!st.isSocket()) throw new Error(`${path} exists and is not a socket; remove it or choose another socket path`);
  const live = await new Promise<boolean>((resolve) => {
    const c = connect(path);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
  if (live) throw new Error(`another process is already listening on ${path}`);
  unlinkSync(path);
}
