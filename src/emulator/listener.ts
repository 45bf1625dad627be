/**
 * The emulator's HTTP server: listen and close, one at a time in call order, on the same port after a restart;
 * a request that throws gets a 500 (or its connection cut when the answer had begun).
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from '../lib/log.js';
import { jsonAnswer, send } from './http.js';
const { createServer } = process.getBuiltinModule('node:http');

export type RequestHandler = (req: IncomingMessage, res: ServerResponse, signal: AbortSignal) => Promise<void>;

export interface ListenerOptions {
  host: string;
  /** 0 for an ephemeral port, kept across restarts once chosen. */
  port: number;
  log: Logger;
  /** Extra fields of the "emulator listening" log line. */
  fields: Record<string, unknown>;
  /** Runs before the first listen (and again before each later one). */
  prepare(): Promise<void>;
  /** Each request, with a signal aborted on stop(). */
  handle: RequestHandler;
}

export interface Listener {
  /** e.g. http://127.0.0.1:41234; throws before the first start(). */
  url(): string;
  /** The port listened on; the one asked for before the first start(). */
  port(): number;
  start(): Promise<void>;
  stop(): Promise<void>;
}

function formatHost(host: string): string {
  if (host === '0.0.0.0' || host === '') return '127.0.0.1';
  if (host === '::') return '[::1]';
  return host.includes(':') ? `[${host}]` : host;
}

function newServer(handle: RequestHandler, signal: AbortSignal, log: Logger): Server {
  const srv = createServer({
    maxHeaderSize: 16 * 1024,
    headersTimeout: 10_000,
    requestTimeout: 30_000,
    connectionsCheckingInterval: 1_000,
  });
  srv.keepAliveTimeout = 5_000;
  srv.on('request', (req: IncomingMessage, res: ServerResponse) => {
    handle(req, res, signal).catch((err: unknown) => {
      log.error('emulator request failed', { err });
      if (!res.headersSent && !res.destroyed) {
        send(res, jsonAnswer(500, { error: 'server_error', error_description: 'emulator internal error' }));
      } else {
        res.destroy();
      }
    });
  });
  return srv;
}

function listen(srv: Server, port: number, host: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    srv.once('error', onError);
    srv.listen(port, host, () => {
      srv.off('error', onError);
      resolve();
    });
  });
}

export function createListener(options: ListenerOptions): Listener {
  const { host, log } = options;
  let port = options.port;
  let everStarted = false;
  let server: Server | undefined;
  let lifetime: AbortController | undefined;
  let op: Promise<void> = Promise.resolve();

  const url = (): string => {
    if (!everStarted) throw new Error('the emulator has no URL before start()');
    return `http://${formatHost(host)}:${port}`;
  };

  async function doStart(): Promise<void> {
    if (server) return;
    await options.prepare();
    const controller = new AbortController();
    const srv = newServer(options.handle, controller.signal, log);
    await listen(srv, port, host);
    srv.on('error', (err) => log.error('emulator server error', { err }));
    port = (srv.address() as AddressInfo).port;
    everStarted = true;
    server = srv;
    lifetime = controller;
    log.info('emulator listening', { url: url(), ...options.fields });
  }

  async function doStop(): Promise<void> {
    const srv = server;
    if (!srv) return;
    server = undefined;
    lifetime?.abort();
    lifetime = undefined;
    await new Promise<void>((resolve) => {
      srv.close(() => resolve());
      srv.closeAllConnections();
    });
    log.info('emulator stopped', { port });
  }

  /** start() and stop() run one at a time, in call order. */
  const serialize = (fn: () => Promise<void>): Promise<void> => {
    const next = op.catch(() => undefined).then(fn);
    op = next;
    return next;
  };

  return {
    url,
    port: () => port,
    start: () => serialize(doStart),
    stop: () => serialize(doStop),
  };
}
