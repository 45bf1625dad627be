/**
 * A pair of connected pseudo-terminals made by socat, for testing serial code against a real tty:
 * what is written to one end is read at the other. The code under test opens `a`; a simulated
 * device opens `b`.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface PtyPair {
  /** Link to the first pty (the side the code under test opens). */
  a: string;
  /** Link to the second pty (the simulated device's side). */
  b: string;
  close(): Promise<void>;
}

const SOCAT = ['/usr/bin/socat', '/usr/local/bin/socat', '/bin/socat'].find((p) => existsSync(p)) ?? 'socat';

/** Why pty tests must be skipped, or undefined when socat is available. Pass to test()'s `skip`. */
export const ptySkipReason: string | undefined =
  spawnSync(SOCAT, ['-V'], { stdio: 'ignore' }).error === undefined
    ? undefined
    : 'socat is not installed (apt-get install socat): serial tests need a pseudo-terminal pair';

/** Starts socat and resolves once both links exist; rejects if socat exits or takes over 5 s. */
export async function openPtyPair(): Promise<PtyPair> {
  const dir = mkdtempSync(join(tmpdir(), 'pos-pty-'));
  const a = join(dir, 'A');
  const b = join(dir, 'B');
  const child: ChildProcess = spawn(SOCAT, ['-d', '-d', `pty,raw,echo=0,link=${a}`, `pty,raw,echo=0,link=${b}`], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const close = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  // socat logs "starting data transfer loop" once both ptys and their links are set up.
  const ready = await Promise.race([
    new Promise<boolean>((resolve) => {
      const check = (): void => {
        if (/starting data transfer loop/.test(stderr) && existsSync(a) && existsSync(b)) resolve(true);
      };
      child.stderr?.on('data', check);
      check();
    }),
    exited.then(() => false),
    new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 5000).unref()),
  ]);
  if (!ready) {
    await close();
    throw new Error(`socat did not set up the pty pair: ${stderr.trim() || 'no output'}`);
  }
  return { a, b, close };
}
