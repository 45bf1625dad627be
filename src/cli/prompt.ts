/** Interactive questions; secrets are read with echo off and nothing shown in their place (not even its length). */
import type { Io } from './common.js';
import { CliError } from './common.js';

export async function ask(io: Io, question: string, hidden: boolean): Promise<string> {
  const stdin = io.stdin;
  if (!stdin.isTTY || !stdin.setRawMode) {
    throw new CliError('standard input is not a terminal; pass the credentials as JSON with --stdin');
  }
  io.stderr.write(question);
  stdin.setRawMode(true);
  stdin.resume();
  return new Promise<string>((resolve, reject) => {
    let value = '';
    const done = (err?: Error): void => {
      stdin.setRawMode?.(false);
      stdin.pause();
      stdin.removeListener('data', onData);
      io.stderr.write('\n');
      if (err) reject(err);
      else resolve(value);
    };
    const onData = (chunk: Buffer | string): void => {
      const chars = [...chunk.toString('utf8')];
      for (const [i, ch] of chars.entries()) {
        if (ch === '\r' || ch === '\n') {
          // What came after the answer (typed ahead, pasted) is the next question's.
          const rest = chars.slice(i + 1).join('').replace(/^\n/, '');
          done();
          if (rest) stdin.unshift(Buffer.from(rest, 'utf8'));
          return;
        }
        if (ch === '\u0003') return done(new CliError('cancelled'));
        if (ch === '\u007f' || ch === '\b') {
          if (value.length) {
            value = value.slice(0, -1);
            if (!hidden) io.stderr.write('\b \b');
          }
          continue;
        }
        if (ch < ' ') continue;
        value += ch;
        if (!hidden) io.stderr.write(ch);
      }
    };
    stdin.on('data', onData);
  });
}

export async function readAll(stream: NodeJS.ReadableStream, maxBytes: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream as AsyncIterable<Buffer | string>) {
    const b = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    size += b.length;
    if (size > maxBytes) throw new CliError(`standard input is larger than ${maxBytes} bytes`);
    chunks.push(b);
  }
  return Buffer.concat(chunks).toString('utf8');
}
