/**
 * A stand-in for systemd's notification socket: a Unix datagram socket that records what a
 * service sends to $NOTIFY_SOCKET. Node cannot open AF_UNIX SOCK_DGRAM sockets, so a small
 * python3 child binds it, answers the BARRIER=1 protocol (it closes the fds that come with
 * the message, which is what sd_notify_barrier() waits for) and prints each message as a
 * JSON line.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

const RECEIVER = String.raw`
import json, os, socket, sys, time
path = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
print(json.dumps({"bound": path}), flush=True)
while True:
    msg, fds, _flags, _addr = socket.recv_fds(s, 65536, 16)
    for fd in fds:
        os.close(fd)
    print(json.dumps({"t": time.monotonic() * 1000, "data": msg.decode("utf-8", "replace"), "fds": len(fds)}), flush=True)
`;

export interface NotifyMessage {
  /** Receive time on the receiver's monotonic clock, ms. */
  t: number;
  /** The raw datagram. */
  data: string;
  /** VAR=VALUE lines of the datagram. */
  fields: Record<string, string>;
}

export interface NotifyReceiver {
  readonly socket: string;
  /** Every message but BARRIER=1 ones, in order of arrival. */
  readonly messages: NotifyMessage[];
  /** Number of BARRIER=1 messages answered. */
  readonly barriers: number;
  /** Resolves with the first message (already received or still to come) that matches. */
  waitFor(what: string, match: (m: NotifyMessage) => boolean, timeoutMs?: number): Promise<NotifyMessage>;
  close(): Promise<void>;
}

export function parseNotifyMessage(data: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const line of data.split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) fields[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return fields;
}

export async function startNotifyReceiver(socketPath: string): Promise<NotifyReceiver> {
  const child: ChildProcess = spawn('python3', ['-c', RECEIVER, socketPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  const messages: NotifyMessage[] = [];
  let barriers = 0;
  let stderr = '';
  const listeners = new Set<() => void>();
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  const bound = new Promise<void>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`notify receiver exited (${code}): ${stderr}`)));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const json = JSON.parse(line) as { bound?: string; t?: number; data?: string };
      if (json.bound) return resolve();
      const fields = parseNotifyMessage(json.data ?? '');
      if (fields.BARRIER === '1') barriers++;
      else messages.push({ t: json.t ?? 0, data: json.data ?? '', fields });
      for (const l of [...listeners]) l();
    });
  });
  await bound;

  return {
    socket: socketPath,
    messages,
    get barriers() {
      return barriers;
    },
    waitFor(what, match, timeoutMs = 15_000) {
      return new Promise((resolve, reject) => {
        const check = (): boolean => {
          const found = messages.find(match);
          if (!found) return false;
          listeners.delete(check);
          clearTimeout(timer);
          resolve(found);
          return true;
        };
        const timer = setTimeout(() => {
          listeners.delete(check);
          reject(new Error(`timed out waiting for ${what}; received: ${JSON.stringify(messages.map((m) => m.data))}`));
        }, timeoutMs);
        if (!check()) listeners.add(check);
      });
    },
    async close() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}
