/**
 * The asynchronous file calls the agent makes (device profiles, identity sources, CA files), on node:fs's callbacks:
 * node:fs/promises brings its FileHandle, streams and readline along (about 2 MiB of a Node 24 process), and these few
 * calls need none of it.
 */
const fs = process.getBuiltinModule('node:fs');
const { promisify } = process.getBuiltinModule('node:util');

export const readFile = promisify(fs.readFile);
export const readdir = promisify(fs.readdir);
export const stat = promisify(fs.stat);
export const realpath = promisify(fs.realpath);
const open = promisify(fs.open);
const read = promisify(fs.read);
const close = promisify(fs.close);

/** At most `maxBytes` of a file, as text. */
export async function readFileCapped(path: string, maxBytes: number): Promise<string> {
  const fd = await open(path, 'r');
  try {
    const buf = Buffer.alloc(maxBytes);
    let length = 0;
    for (;;) {
      const { bytesRead } = await read(fd, buf, length, buf.length - length, null);
      if (bytesRead === 0 || (length += bytesRead) >= buf.length) break;
    }
    return buf.subarray(0, length).toString('utf8');
  } finally {
    await close(fd);
  }
}
