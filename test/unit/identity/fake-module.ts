/**
 * A simulated fiscal module on the far end of a pty pair: reads queries ending in CR LF and
 * answers as the test says. It records every query and whether a query arrived while an
 * earlier one was still unanswered (which the per-port lock must prevent).
 */
import { ReadlineParser, SerialPort } from 'serialport';

/** What to do with the n-th query (from 0): answer with `send` after `afterMs`, or stay silent. */
export type Behaviour = (query: string, n: number) => { send: string; afterMs?: number } | 'silent';

export interface FakeModule {
  readonly queries: string[];
  /** The most queries ever waiting for their answer at once. */
  readonly maxOutstanding: number;
  close(): Promise<void>;
}

export async function startFakeModule(path: string, behaviour: Behaviour): Promise<FakeModule> {
  const port = new SerialPort({ path, baudRate: 9600, autoOpen: false });
  await new Promise<void>((resolve, reject) => port.open((err) => (err ? reject(err) : resolve())));
  const parser = port.pipe(new ReadlineParser({ delimiter: '\r\n', encoding: 'latin1' }));
  const queries: string[] = [];
  const timers = new Set<NodeJS.Timeout>();
  let outstanding = 0;
  let maxOutstanding = 0;
  parser.on('data', (query: string) => {
    const action = behaviour(query, queries.length);
    queries.push(query);
    if (action === 'silent') return;
    outstanding++;
    maxOutstanding = Math.max(maxOutstanding, outstanding);
    const reply = (): void => {
      outstanding--;
      if (port.isOpen) port.write(Buffer.from(action.send, 'latin1'));
    };
    if (!action.afterMs) return reply();
    // Real I/O: the module answers late on the real time line.
    const timer = setTimeout(() => {
      timers.delete(timer);
      reply();
    }, action.afterMs);
    timers.add(timer);
  });
  return {
    queries,
    get maxOutstanding() {
      return maxOutstanding;
    },
    async close() {
      for (const t of timers) clearTimeout(t);
      if (port.isOpen) await new Promise<void>((resolve) => port.close(() => resolve()));
    },
  };
}
