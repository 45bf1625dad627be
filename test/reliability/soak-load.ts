/**
 * The soak's token load, in its own process so that it never shares an event loop with the emulator or the sampler
 * (test/reliability/soak.test.ts starts it). A closed loop over `connections` keep-alive connections to the agent's
 * socket: each sends `GET path` when the previous answer has arrived, as a till asking for its token would. Each
 * connection writes the bytes Node's http client would send and reads answers by Content-Length (about a quarter of
 * http.Agent's CPU per request, so that on a small machine the agent, not the generator, is what saturates).
 *
 * Argument: one JSON object (LoadSpec). Standard output: a JSON line of the counts every `reportMs`, and one when
 * it ends: after `durationMs`, on SIGTERM, or when its standard input closes (the test process is gone).
 * With `rate`, a connection whose answer comes ahead of the schedule (requests so far / rate) waits for its slot.
 */
import { connect, type Socket } from 'node:net';

export interface LoadSpec {
  socket: string;
  path: string;
  connections: number;
  durationMs: number;
  reportMs: number;
  /** Requests a second over all connections at most; 0: as fast as the answers come. */
  rate: number;
}

export interface LoadCounts {
  event: 'progress' | 'end';
  /** Answers read, by class. */
  ok: number;
  other: number;
  /** Connections that failed or answered something unreadable. */
  errors: number;
  reconnects: number;
  firstError?: string;
}

const RECONNECT_MS = 200;

function run(spec: LoadSpec): void {
  const request = Buffer.from(`GET ${spec.path} HTTP/1.1\r\nHost: localhost\r\nX-Pos-Agent: 1\r\n\r\n`, 'latin1');
  const counts: LoadCounts = { event: 'progress', ok: 0, other: 0, errors: 0, reconnects: 0 };
  const sockets = new Set<Socket>();
  let stopping = false;
  const started = performance.now();
  let sent = 0;
  /** Sends now, or when the schedule allows. */
  const next = (sock: Socket): void => {
    const aheadMs = spec.rate > 0 ? (sent / spec.rate) * 1000 - (performance.now() - started) : 0;
    if (aheadMs >= 1) {
      setTimeout(() => !stopping && !sock.destroyed && next(sock), aheadMs);
      return;
    }
    sent++;
    sock.write(request);
  };

  const fail = (why: string): void => {
    counts.errors++;
    counts.firstError ??= why;
  };

  const open = (): void => {
    if (stopping) return;
    const sock = connect(spec.socket);
    sockets.add(sock);
    let pending: Buffer | undefined;
    let need = -1;
    let status = 0;
    sock.on('connect', () => next(sock));
    sock.on('data', (chunk: Buffer) => {
      pending = pending ? Buffer.concat([pending, chunk]) : chunk;
      while (pending) {
        if (need < 0) {
          const end = pending.indexOf('\r\n\r\n');
          if (end < 0) return;
          const head = pending.toString('latin1', 0, end);
          const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
          if (!length) {
            fail(`an answer without Content-Length: ${head.slice(0, 200)}`);
            sock.destroy();
            return;
          }
          status = Number(head.slice(9, 12));
          need = end + 4 + Number(length[1]);
        }
        if (pending.length < need) return;
        if (status === 200) counts.ok++;
        else counts.other++;
        pending = pending.length > need ? pending.subarray(need) : undefined;
        need = -1;
        if (stopping) {
          sock.end();
          return;
        }
        next(sock);
      }
    });
    sock.on('error', (err) => fail(String(err)));
    sock.on('close', () => {
      sockets.delete(sock);
      if (stopping) return;
      counts.reconnects++;
      setTimeout(open, RECONNECT_MS);
    });
  };

  const report = (): void => {
    process.stdout.write(`${JSON.stringify(counts)}\n`);
  };
  const reporter = setInterval(report, spec.reportMs);
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    clearInterval(reporter);
    clearTimeout(deadline);
    for (const s of sockets) s.destroy();
    process.stdin.destroy();
    counts.event = 'end';
    report();
  };
  const deadline = setTimeout(stop, spec.durationMs);
  process.on('SIGTERM', stop);
  process.stdin.on('end', stop).on('error', stop).resume();
  for (let i = 0; i < spec.connections; i++) open();
}

if (process.argv[2] !== undefined) run(JSON.parse(process.argv[2]) as LoadSpec);
