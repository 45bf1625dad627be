/**
 * Agents through an outbound proxy (hpagent), with a bound on CONNECT: loaded by http.ts only when an account's
 * requests go through a proxy (hpagent loads node:https and node:tls).
 */
import type { ClientRequestArgs } from 'node:http';
import type { RequestOptions as HttpsRequestOptions } from 'node:https';
import type { Duplex } from 'node:stream';
import { HttpProxyAgent, HttpsProxyAgent, type HttpProxyAgentOptions, type HttpsProxyAgentOptions } from 'hpagent';

type ConnectCallback = (err: Error | null, stream: Duplex) => void;

/**
 * hpagent waits for the proxy's answer to CONNECT as long as the proxy keeps its socket busy, and Node holds
 * a destroyed request's error until the agent hands over a socket: got's timeouts alone cannot end a CONNECT
 * the proxy never answers. This ends it after connectMs with "Proxy timeout".
 */
function boundedConnect(ms: number, callback: ConnectCallback | undefined, open: (cb: ConnectCallback) => void): void {
  let settled = false;
  const timer = setTimeout(() => {
    if (settled) return;
    settled = true;
    callback?.(new Error('Proxy timeout'), undefined as unknown as Duplex);
  }, ms);
  timer.unref();
  open((err, stream) => {
    clearTimeout(timer);
    if (settled) {
      stream?.destroy();
      return;
    }
    settled = true;
    callback?.(err, stream);
  });
}

export class BoundedHttpsProxyAgent extends HttpsProxyAgent {
  constructor(
    options: HttpsProxyAgentOptions,
    private readonly connectMs: number,
  ) {
    super(options);
  }

  override createConnection(options: HttpsRequestOptions, callback?: ConnectCallback): Duplex | null | undefined {
    boundedConnect(this.connectMs, callback, (cb) => super.createConnection(options, cb));
    return undefined;
  }
}

export class BoundedHttpProxyAgent extends HttpProxyAgent {
  constructor(
    options: HttpProxyAgentOptions,
    private readonly connectMs: number,
  ) {
    super(options);
  }

  override createConnection(options: ClientRequestArgs, callback?: ConnectCallback): Duplex | null | undefined {
    boundedConnect(this.connectMs, callback, (cb) => super.createConnection(options, cb));
    return undefined;
  }
}
