const { accessSync, constants, existsSync, readFileSync, statSync } = process.getBuiltinModule('node:fs');
const { delimiter, dirname, join } = process.getBuiltinModule('node:path');
/**
 * What doctor's hints may name: facts of this box, read when a hint is written. A fix names a command or a file
 * only when this box has it (the set-up command, timedatectl, /etc/resolv.conf, ...), says `sudo` only when doctor
 * is not root, and explains a permission denied from the owner, group and mode of what denied it. Each fact can be
 * replaced in tests (`DoctorOptions.box`).
 */

/** What doctor needs of a file's stat. */
export interface FileStat {
  mode: number;
  uid: number;
  gid: number;
  isDirectory(): boolean;
}

export interface BoxFacts {
  /** Doctor's own user id; undefined where the platform has none. */
  uid: number | undefined;
  exists(path: string): boolean;
  /** Whether the command is found in PATH, or in the sbin directories that root's PATH (and sudo's) has. */
  command(name: string): boolean;
  /** As fs.accessSync: throws (code EACCES, ENOENT, ...) when this process may not. */
  access(path: string, mode: number): void;
  /** Follows symbolic links; undefined when the path cannot be read. */
  stat(path: string): FileStat | undefined;
  userName(uid: number): string | undefined;
  groupName(gid: number): string | undefined;
}

/** Where sudo and root look besides PATH (sudo's usual secure_path). */
const SBIN = ['/usr/local/sbin', '/usr/sbin', '/sbin'];

/** This box, with any fact replaced by `overrides`; commands are looked up in `env`'s PATH (else this process's). */
export function boxFacts(env: NodeJS.ProcessEnv = process.env, overrides: Partial<BoxFacts> = {}): BoxFacts {
  const names = (file: string): Map<number, string> | undefined => {
    try {
      return idNames(readFileSync(file, 'utf8'));
    } catch {
      return undefined;
    }
  };
  let users: Map<number, string> | undefined;
  let groups: Map<number, string> | undefined;
  return {
    uid: process.getuid?.(),
    exists: existsSync,
    command: (name) => findCommand(name, env.PATH ?? process.env.PATH ?? '') !== undefined,
    access: accessSync,
    stat(path) {
      try {
        return statSync(path);
      } catch {
        return undefined;
      }
    },
    userName: (uid) => (users ??= names('/etc/passwd'))?.get(uid),
    groupName: (gid) => (groups ??= names('/etc/group'))?.get(gid),
    ...overrides,
  };
}

/** name:x:id:... lines (passwd(5), group(5)) as id -> the first name with it. */
export function idNames(text: string): Map<number, string> {
  const out = new Map<number, string>();
  for (const line of text.split('\n')) {
    const [name, , id] = line.split(':');
    const n = Number(id);
    if (name && id !== undefined && id !== '' && Number.isInteger(n) && !out.has(n)) out.set(n, name);
  }
  return out;
}

function findCommand(name: string, path: string): string | undefined {
  for (const dir of [...path.split(delimiter).filter(Boolean), ...SBIN]) {
    const file = join(dir, name);
    try {
      accessSync(file, constants.X_OK);
      if (statSync(file).isFile()) return file;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** Who may not reach a path, and what stops them. */
export interface Denial {
  /** The file or the directory on the way that refuses. */
  path: string;
  /** The refused path is a directory on the way to the one asked for. */
  onTheWay: boolean;
  /** e.g. "0750 root:pos-token-agent". */
  shown: string;
  owner: string;
  group: string;
  /** The owner's permission bits allow what was refused. */
  ownerMay: boolean;
  /** The group's permission bits would allow what was refused (so joining the group would do). */
  groupMay: boolean;
}

/** What is needed of the path itself: read (a file), connect (a socket: write), enter (a directory: read and search). */
export type Need = 'read' | 'connect' | 'enter';

const NEED_MODE: Record<Need, number> = { read: constants.R_OK, connect: constants.W_OK, enter: constants.R_OK | constants.X_OK };
const NEED_BITS: Record<Need, number> = { read: 0o040, connect: 0o020, enter: 0o050 };

/**
 * After a permission denied on `path`: the first directory on the way this process may not search, else the path
 * itself, with its owner, group and mode. Undefined when nothing on the way refuses (then it was not permissions).
 */
export function findDenial(path: string, need: Need, box: BoxFacts): Denial | undefined {
  const ancestors: string[] = [];
  for (let d = dirname(path); ; d = dirname(d)) {
    ancestors.unshift(d);
    if (dirname(d) === d) break;
  }
  for (const dir of ancestors) {
    if (refuses(box, dir, constants.X_OK)) return describe(dir, true, 0o010, box);
  }
  return refuses(box, path, NEED_MODE[need]) ? describe(path, false, NEED_BITS[need], box) : undefined;
}

function refuses(box: BoxFacts, path: string, mode: number): boolean {
  try {
    box.access(path, mode);
    return false;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'EACCES' || code === 'EPERM';
  }
}

/** `groupBits`: what the group needs (0o010 search, 0o040 read, ...); the owner needs the same bits, shifted. */
function describe(path: string, onTheWay: boolean, groupBits: number, box: BoxFacts): Denial {
  const st = box.stat(path);
  if (!st) return { path, onTheWay, shown: '(mode unknown)', owner: '?', group: '?', ownerMay: false, groupMay: false };
  const owner = box.userName(st.uid) ?? `uid ${st.uid}`;
  const group = box.groupName(st.gid) ?? `gid ${st.gid}`;
  const mode = (st.mode & 0o7777).toString(8).padStart(4, '0');
  const ownerBits = groupBits << 3;
  return {
    path,
    onTheWay,
    shown: `${mode} ${owner}:${group}`,
    owner,
    group,
    ownerMay: (st.mode & ownerBits) === ownerBits,
    groupMay: (st.mode & groupBits) === groupBits,
  };
}
