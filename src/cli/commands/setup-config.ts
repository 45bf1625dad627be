/**
 * The config as set-up sees it: read as it is, checked and written through the agent's schema (durably:
 * a temporary file, fsync, rename, fsync of the folder), and put back as it was when the credentials are not
 * stored.
 */
import type { AuthorityModule, AuthorityRegistry } from '../../authorities/index.js';
import { ConfigError, type AgentConfig } from '../../config/index.js';
import { missingDeviceProfiles } from '../../identity/index.js';
import { CliError, type Io, println } from '../common.js';
const { spawnSync } = process.getBuiltinModule('node:child_process');
const { chmodSync, chownSync, closeSync, copyFileSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, statSync, writeSync } = process.getBuiltinModule('node:fs');
const { dirname } = process.getBuiltinModule('node:path');

export type RawAccount = Record<string, unknown>;
export interface RawConfig {
  accounts?: Record<string, RawAccount>;
  [key: string]: unknown;
}

/** What a change would give: the config the agent would run, or the problems it would have with it. */
export type Checked = { ok: true; config: AgentConfig; raw: RawConfig } | { ok: false; problems: string[] };

export class ConfigFile {
  private backup: string | undefined;
  private created = false;
  private touched = false;
  /** The config as last read or written here (null: not read yet); set-up is the only writer while it runs. */
  private content: RawConfig | undefined | null = null;

  constructor(
    readonly path: string,
    private readonly registry: AuthorityRegistry,
    private readonly skeleton: RawConfig,
  ) {}

  read(): RawConfig | undefined {
    if (this.content === null) this.content = this.load();
    return this.content;
  }

  private load(): RawConfig | undefined {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new CliError(`cannot read ${this.path} (${(err as NodeJS.ErrnoException).code}: run as root)`);
    }
    try {
      const json = JSON.parse(text) as unknown;
      if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new Error('not an object');
      return json as RawConfig;
    } catch {
      throw new CliError(`cannot read ${this.path}: it is not a JSON object; fix it or move it away`);
    }
  }

  /** The config with the account changed by `change`, as the agent would take it (nothing is written). */
  check(account: string, change: (a: RawAccount) => void): Checked {
    return this.validate(this.candidate(account, change));
  }

  private candidate(account: string, change: (a: RawAccount) => void): RawConfig {
    const before = this.read();
    const cfg: RawConfig = before ? structuredClone(before) : structuredClone(this.skeleton);
    cfg.accounts ??= {};
    const a: RawAccount = { ...cfg.accounts[account] };
    change(a);
    cfg.accounts[account] = a;
    return cfg;
  }

  private validate(cfg: RawConfig): Checked {
    try {
      return { ok: true, config: this.registry.parseConfig(cfg, this.path, {}), raw: cfg };
    } catch (err) {
      if (err instanceof ConfigError) return { ok: false, problems: err.problems };
      throw err;
    }
  }

  /** Whether the account's device profile (if it names one) is found where the agent looks; the problem if not. */
  async profileProblem(account: string, change: (a: RawAccount) => void): Promise<string | undefined> {
    const checked = this.check(account, change);
    if (!checked.ok) return checked.problems.find((p) => p.startsWith(`accounts.${account}.deviceProfile`));
    const mine = checked.config.accounts[account];
    if (!mine) return undefined;
    return (await missingDeviceProfiles({ [account]: mine }, checked.config.deviceProfileDirs))[0];
  }

  /** Changes the account with `change`; the whole config must pass validation before it is written. */
  update(account: string, change: (a: RawAccount) => void, groupFor?: string): void {
    const before = this.read();
    const cfg = this.candidate(account, change);
    if (before && JSON.stringify(cfg) === JSON.stringify(before)) return;
    const checked = this.validate(cfg);
    if (!checked.ok) throw new CliError(`the config would not be valid, so it was not changed:\n  - ${checked.problems.join('\n  - ')}`);
    if (!this.touched) {
      this.touched = true;
      if (before) {
        this.backup = `${this.path}.provision-backup`;
        copyFileSync(this.path, this.backup);
      } else {
        this.created = true;
        if (!existsSync(dirname(this.path))) mkdirSync(dirname(this.path), { recursive: true, mode: 0o750 });
      }
    }
    const st = before ? statSync(this.path) : undefined;
    writeDurably(this.path, `${JSON.stringify(cfg, null, 2)}\n`, st ? { mode: st.mode & 0o777, uid: st.uid, gid: st.gid } : { mode: 0o640 });
    this.content = cfg;
    // A config made here (no install.sh) must still be readable by the agent's group.
    if (!before && groupFor) spawnSync('chgrp', [groupFor, this.path, dirname(this.path)], { stdio: 'ignore' });
  }

  /** The credentials were stored: the config stays as written. */
  keep(): void {
    if (this.backup) rmSync(this.backup, { force: true });
    this.backup = undefined;
    this.touched = false;
    this.created = false;
  }

  /** Puts the config back as it was before this run, if it was changed. */
  restore(io: Io): void {
    if (!this.touched) return;
    if (this.backup) {
      const st = statSync(this.path);
      writeDurably(this.path, readFileSync(this.backup), { mode: st.mode & 0o777, uid: st.uid, gid: st.gid });
      rmSync(this.backup, { force: true });
    } else if (this.created) {
      rmSync(this.path, { force: true });
      syncFolder(dirname(this.path));
    }
    this.touched = false;
    this.content = null;
    println(io.stderr, 'provision: the config was left as it was');
  }
}

/**
 * Replaces `path` with `content` so that a power cut leaves the old file or the new one, never a torn or empty
 * one: a temporary file beside it, written and fsynced, given the mode (and owner, as root) of the file it
 * replaces, renamed over it, and the folder fsynced so that the rename itself is on disk.
 */
export function writeDurably(path: string, content: string | Buffer, owner: { mode: number; uid?: number; gid?: number }): void {
  const tmp = `${path}.tmp.${process.pid}`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    const bytes = typeof content === 'string' ? Buffer.from(content, 'utf8') : content;
    for (let at = 0; at < bytes.length; ) at += writeSync(fd, bytes, at, bytes.length - at);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  chmodSync(tmp, owner.mode);
  if (owner.uid !== undefined && owner.gid !== undefined) {
    try {
      chownSync(tmp, owner.uid, owner.gid);
    } catch {
      // not root: the file stays the invoking user's, as it was
    }
  }
  renameSync(tmp, path);
  syncFolder(dirname(path));
}

function syncFolder(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** The account keys to keep when its authority changes: the common ones and those the new one takes. */
export function keepForAuthority(a: RawAccount, module: AuthorityModule, registry: AuthorityRegistry): void {
  const others = new Set(registry.modules.flatMap((m) => Object.keys(m.options)));
  const own = new Set(Object.keys(module.options));
  for (const key of Object.keys(a)) {
    const deviceKey = key === 'deviceProfile' || key === 'identity';
    if ((others.has(key) && !own.has(key)) || (deviceKey && !module.deviceHeaders) || (key === 'loginsPerMinute' && !module.limits?.loginsPerMinute)) {
      delete a[key];
    }
  }
}
