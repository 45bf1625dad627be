/**
 * Support for the system suite (`npm run test:system`): the packages under test, a Debian 12 root made with
 * debootstrap (cached), booted with systemd-nspawn and driven from outside with nsenter, the previous version's
 * package, and the figures file the suite writes.
 *
 * Everything here is bounded: every command has a timeout (its whole process group is killed then), every wait
 * has a deadline, and a container is always powered off or killed by `Machine.shutdown()`. A container whose
 * test process died without that (kill -9) is found by its pid file at the next boot and killed then.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { cpus, homedir } from 'node:os';
import { DEMO_DEVICE } from '../../src/emulator/index.js';
import { dirname, join, resolve } from 'node:path';

export const REPO = resolve(import.meta.dirname, '../..');
export const VERSION: string = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version;
export const NAME = 'pos-token-agent';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** `${POS_TOKEN_AGENT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pos-token-agent}`, as scripts/package.mjs has it. */
export function cacheDir(): string {
  return process.env.POS_TOKEN_AGENT_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), NAME);
}

export function has(cmd: string): boolean {
  return spawnSync('sh', ['-c', 'command -v "$1"', 'sh', cmd], { stdio: 'ignore' }).status === 0;
}

/**
 * Why the suite cannot run here, or false. Tools are [command, Debian package] pairs.
 */
/** Why the booted-system files cannot run here, or false. */
export function bootedSystemSkip(): string | false {
  return skipReason([
    ['systemd-nspawn', 'systemd-container'],
    ['debootstrap', 'debootstrap'],
    ['nsenter', 'util-linux'],
    ['dpkg-deb', 'dpkg'],
  ]);
}

export function skipReason(tools: Array<[string, string]>): string | false {
  if (process.platform !== 'linux' || process.arch !== 'x64') return `needs Linux on x86-64 (this is ${process.platform}/${process.arch})`;
  if (process.getuid?.() !== 0) return 'needs root (systemd-nspawn, debootstrap, nsenter)';
  const missing = tools.filter(([cmd]) => !has(cmd)).map(([cmd, pkg]) => `${cmd} (apt-get install ${pkg})`);
  return missing.length ? `not installed: ${missing.join(', ')}` : false;
}

// ---------------------------------------------------------------------------------------------
// Running commands

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Wall time, milliseconds. */
  ms: number;
  timedOut: boolean;
}

export interface RunOptions {
  stdin?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** The whole process group is killed after this long (default 60 s). */
  timeoutMs?: number;
}

/** The environment commands on the host get: no POS_* or npm_* leaking in from outside. */
export function hostEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    HOME: process.env.HOME ?? '/root',
    LANG: 'C.UTF-8',
    ...extra,
  };
}

/**
 * This process's environment less npm's `npm_*` variables (set when it runs under `npm run`), for build tools:
 * node-gyp lets an inherited npm_config_nodedir (say `nodedir=/usr` in ~/.npmrc) override its own --nodedir,
 * which compiles a native module against the wrong Node's headers.
 */
export function buildEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k))), ...extra };
}

const OUTPUT_CAP = 16 * 1024 * 1024;

/** Commands still running: their process groups are killed should this process exit under them. */
const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of live) killGroup(child, 'SIGKILL');
});

/** Runs a command in its own process group; never rejects for a failing command (look at `code`). */
export function run(cmd: string, args: readonly string[], options: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, {
      cwd: options.cwd,
      env: options.env ?? hostEnv(),
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true,
    });
    live.add(child);
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.on('data', (d: Buffer) => {
      if (stdout.length < OUTPUT_CAP) stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      if (stderr.length < OUTPUT_CAP) stderr += d.toString();
    });
    const timer = setTimeout(() => {
      timedOut = true;
      killGroup(child, 'SIGKILL');
    }, options.timeoutMs ?? 60_000);
    child.on('error', (err) => {
      clearTimeout(timer);
      live.delete(child);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      live.delete(child);
      resolvePromise({ code, signal, stdout, stderr, ms: performance.now() - t0, timedOut });
    });
    child.stdin.on('error', () => {}); // a command that does not read its input
    child.stdin.end(options.stdin ?? '');
  });
}

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    /* already gone */
  }
}

const tail = (s: string, n = 3000): string => (s.length > n ? `…${s.slice(-n)}` : s);

/** What a failed command said, for an assertion message. */
export function describe(what: string, r: RunResult): string {
  const how = r.timedOut ? 'timed out' : r.signal ? `was killed by ${r.signal}` : `exited ${r.code}`;
  return `${what} ${how} after ${Math.round(r.ms)} ms\n--- stdout\n${tail(r.stdout)}\n--- stderr\n${tail(r.stderr)}`;
}

/** Throws unless the command exited 0. */
export function must(what: string, r: RunResult): RunResult {
  if (r.code !== 0) throw new Error(describe(what, r));
  return r;
}

export async function waitUntil<T>(
  what: string,
  fn: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs: number,
  intervalMs = 200,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
      last = v;
    } catch (err) {
      last = err;
    }
    if (Date.now() >= deadline) break;
    await sleep(intervalMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`);
}

// ---------------------------------------------------------------------------------------------
// The packages under test

/** release/pos-token-agent_<version>_<arch>.deb (POS_TOKEN_AGENT_DEB overrides the amd64 one). */
export function debFile(arch: 'amd64' | 'arm64'): string {
  if (arch === 'amd64' && process.env.POS_TOKEN_AGENT_DEB) return resolve(process.env.POS_TOKEN_AGENT_DEB);
  return join(REPO, 'release', `${NAME}_${VERSION}_${arch}.deb`);
}

export function tarballFile(arch: 'amd64' | 'arm64'): string {
  return join(REPO, 'release', `${NAME}-${VERSION}-linux-${arch}.tar.gz`);
}

/** A package's control fields (dpkg-deb -f). */
export async function debFields(deb: string): Promise<Record<string, string>> {
  const r = must(`dpkg-deb -f ${deb}`, await run('dpkg-deb', ['-f', deb]));
  const out: Record<string, string> = {};
  let key = '';
  for (const line of r.stdout.split('\n')) {
    const m = /^([A-Za-z0-9-]+):\s?(.*)$/.exec(line);
    if (m) out[(key = m[1]!)] = m[2]!;
    else if (key && line.startsWith(' ')) out[key] += `\n${line}`;
  }
  return out;
}

/** The package names of a Depends field (the first of each set of alternatives, no versions). */
export function dependsNames(depends: string | undefined): string[] {
  if (!depends) return [];
  return depends
    .split(',')
    .map((d) => d.split('|')[0]!.trim().split(/[\s(:]/)[0]!)
    .filter(Boolean);
}

/** The figures file: POS_TOKEN_AGENT_FIGURES, else release/system-test-figures.json. */
export function figuresFile(): string {
  return resolve(process.env.POS_TOKEN_AGENT_FIGURES ?? join(REPO, 'release', 'system-test-figures.json'));
}

/** Merges one section into the figures file, with when and where it was measured. */
export function recordFigures(section: string, figures: Record<string, unknown>): void {
  const file = figuresFile();
  let all: Record<string, unknown> = {};
  try {
    all = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch {
    /* none yet, or unreadable: start again */
  }
  all[section] = {
    measured_at: new Date().toISOString(),
    machine: { cpus: cpus().length, cpu: cpus()[0]?.model ?? 'unknown', host_node: process.version },
    version: VERSION,
    ...figures,
  };
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${JSON.stringify(all, null, 2)}\n`);
}

// ---------------------------------------------------------------------------------------------
// The Debian 12 root

/**
 * What a root gets beyond minbase and the package under test's Depends (added by the tests): nothing, so that a
 * file the package needs but does not depend on is missed here as on a minimal box (procps's /bin/kill in
 * ExecReload was hidden by adding procps). systemd-nspawn --boot execs /usr/lib/systemd/systemd itself, so no
 * systemd-sysv (/sbin/init); systemctl as root talks to systemd's private socket, so no dbus (systemd-run
 * --wait needs it: credential.test.ts adds it for that recipe). A minbase root with the Depends boots to
 * "running" with no failed unit.
 */
export const BASE_PACKAGES: readonly string[] = [];

/**
 * The Debian mirror apt already uses here (POS_TOKEN_AGENT_DEBIAN_MIRROR overrides): the first enabled `deb`
 * source for bookworm in /etc/apt/sources.list or /etc/apt/sources.list.d/*.{list,sources}.
 */
export function debianMirror(): string {
  if (process.env.POS_TOKEN_AGENT_DEBIAN_MIRROR) return process.env.POS_TOKEN_AGENT_DEBIAN_MIRROR;
  const files = ['/etc/apt/sources.list'];
  try {
    for (const n of readdirSync('/etc/apt/sources.list.d').sort()) {
      if (n.endsWith('.list') || n.endsWith('.sources')) files.push(join('/etc/apt/sources.list.d', n));
    }
  } catch {
    /* no such folder */
  }
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    if (file.endsWith('.sources')) {
      for (const para of text.split(/\n\s*\n/)) {
        const field = (k: string): string =>
          (new RegExp(`^${k}:[ \\t]*(.*)$`, 'mi').exec(para)?.[1] ?? '').trim();
        if (!field('Types').split(/\s+/).includes('deb') || /^no$/i.test(field('Enabled'))) continue;
        if (!field('Suites').split(/\s+/).includes('bookworm')) continue;
        const uri = field('URIs').split(/\s+/)[0];
        if (uri) return uri;
      }
    } else {
      for (const line of text.split('\n')) {
        const m = /^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+bookworm\s/.exec(line);
        if (m) return m[1]!;
      }
    }
  }
  return 'http://deb.debian.org/debian';
}

/** Unmounts whatever is mounted under dir (a debootstrap that failed half-way leaves /proc and /sys mounted). */
function unmountUnder(dir: string): void {
  const mounts = readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[1]?.replace(/\\040/g, ' '))
    .filter((p): p is string => !!p && (p === dir || p.startsWith(`${dir}/`)))
    .sort((a, b) => b.length - a.length);
  for (const p of mounts) spawnSync('umount', ['-l', p], { stdio: 'ignore' });
}

function removeTree(dir: string): void {
  if (!existsSync(dir)) return;
  unmountUnder(dir);
  spawnSync('rm', ['-rf', '--one-file-system', dir], { stdio: 'ignore' });
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * A Debian 12 minbase root with `packages`, made once with debootstrap and kept under the cache directory,
 * keyed by the sorted package list. Returns the root's path; boot a copy of it (freshRoot), never the root.
 */
export async function bookwormRoot(packages: readonly string[], log: (s: string) => void = () => {}): Promise<string> {
  const list = [...new Set(packages)].sort();
  const key = createHash('sha256').update(JSON.stringify({ suite: 'bookworm', variant: 'minbase', arch: 'amd64', list })).digest('hex').slice(0, 16);
  const base = join(cacheDir(), 'debootstrap');
  const dir = join(base, `bookworm-minbase-${key}`);
  if (existsSync(join(dir, 'root', 'etc', 'os-release'))) return join(dir, 'root');
  mkdirSync(base, { recursive: true });
  // Leftovers of a run that died while building (its pid is in the name).
  for (const n of readdirSync(base)) {
    const m = /\.tmp-(\d+)$/.exec(n);
    if (m && !pidAlive(Number(m[1]))) removeTree(join(base, n));
  }
  const tmp = `${dir}.tmp-${process.pid}`;
  removeTree(tmp);
  mkdirSync(tmp, { recursive: true });
  const mirror = debianMirror();
  log(`debootstrap bookworm (minbase + ${list.join(',')}) from ${mirror} into ${tmp}`);
  const r = await run(
    'debootstrap',
    ['--variant=minbase', `--include=${list.join(',')}`, '--arch=amd64', 'bookworm', join(tmp, 'root'), mirror],
    { timeoutMs: 20 * 60_000, env: hostEnv({ DEBIAN_FRONTEND: 'noninteractive' }) },
  );
  if (r.code !== 0) {
    removeTree(tmp);
    throw new Error(describe('debootstrap', r));
  }
  // The downloaded .debs are not needed in the root.
  spawnSync('sh', ['-c', 'rm -f "$1"/var/cache/apt/archives/*.deb', 'sh', join(tmp, 'root')]);
  writeFileSync(join(tmp, 'packages.json'), `${JSON.stringify({ suite: 'bookworm', variant: 'minbase', mirror, list, made: new Date().toISOString() }, null, 2)}\n`);
  try {
    renameSync(tmp, dir);
  } catch (err) {
    // Another run made it meanwhile: use that one.
    removeTree(tmp);
    if (!existsSync(join(dir, 'root', 'etc', 'os-release'))) throw err;
  }
  log(`debootstrap took ${Math.round(r.ms / 1000)} s`);
  return join(dir, 'root');
}

/**
 * Copies a cached root to `dest` (so that runs are independent) and readies it for booting: a machine id of its
 * own (stable across the container's reboots: the agent's key is bound to it), a persistent journal (the journal
 * check reads every boot), and apt's timers masked (they would take dpkg's lock while the test installs).
 */
export async function freshRoot(cached: string, dest: string): Promise<void> {
  removeTree(dest);
  mkdirSync(dirname(dest), { recursive: true });
  must('cp -a root', await run('cp', ['-a', '--reflink=auto', cached, dest], { timeoutMs: 5 * 60_000 }));
  writeFileSync(join(dest, 'etc/machine-id'), `${randomBytes(16).toString('hex')}\n`);
  writeFileSync(join(dest, 'etc/hostname'), 'pos-box\n');
  mkdirSync(join(dest, 'var/log/journal'), { recursive: true });
  for (const unit of ['apt-daily.timer', 'apt-daily-upgrade.timer', 'dpkg-db-backup.timer', 'e2scrub_all.timer']) {
    spawnSync('ln', ['-sfn', '/dev/null', join(dest, 'etc/systemd/system', unit)]);
  }
}

export function removeRoot(dir: string): void {
  removeTree(dir);
}

// ---------------------------------------------------------------------------------------------
// The booted container

/** The environment of commands run inside: nothing of the host's. */
const INSIDE_ENV = ['PATH=/usr/sbin:/usr/bin:/sbin:/bin', 'LANG=C.UTF-8', 'HOME=/root', 'TERM=dumb', 'SYSTEMD_COLORS=0'];

const pidDir = (): string => join(cacheDir(), 'nspawn');

/** Containers up now: killed (their init, which takes the whole container, then nspawn) should this process exit. */
const booted = new Set<Machine>();
process.once('exit', () => {
  for (const m of booted) m.killNow();
});

/** The start time of a process (field 22 of /proc/PID/stat), to tell it from a later one with the same pid. */
function startTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/**
 * Kills containers that an earlier test process booted and could not power off (it was killed itself): each
 * boot leaves a pid file naming the nspawn process and its container's init, with their start times, and
 * removes it after the container is down. Only those exact processes are signalled.
 */
export function killLeftoverContainers(log: (s: string) => void = () => {}): void {
  let names: string[] = [];
  try {
    names = readdirSync(pidDir()).filter((n) => n.endsWith('.json'));
  } catch {
    return;
  }
  for (const n of names) {
    const file = join(pidDir(), n);
    try {
      const p = JSON.parse(readFileSync(file, 'utf8')) as { owner: number; nspawn: number; nspawnStart: string; init?: number; initStart?: string };
      if (p.owner === process.pid || pidAlive(p.owner)) continue;
      for (const [pid, start] of [
        [p.init, p.initStart],
        [p.nspawn, p.nspawnStart],
      ] as const) {
        if (pid && start && startTime(pid) === start) {
          log(`killing a leftover container process ${pid} (from ${n})`);
          process.kill(pid, 'SIGKILL');
        }
      }
      rmSync(file, { force: true });
    } catch {
      rmSync(file, { force: true });
    }
  }
}

export interface BootResult {
  /** From spawning systemd-nspawn to `systemctl is-system-running --wait` answering. */
  ms: number;
  state: string;
  failedUnits: string;
}

/**
 * A Debian root booted with `systemd-nspawn --boot --register=no --keep-unit` (this host's PID 1 is not
 * systemd, so there is no machined to register with). Commands run inside through `nsenter -a` on the
 * container's init with a clean environment. It shares the host's network (no --private-network), so the
 * host's loopback is the container's.
 */
export class Machine {
  private nspawn: ChildProcess | undefined;
  private exited: Promise<void> | undefined;
  private pidFile: string | undefined;
  initPid = 0;
  boots = 0;

  constructor(
    readonly root: string,
    readonly name: string,
    readonly logFile: string,
  ) {}

  get running(): boolean {
    return this.nspawn !== undefined && this.nspawn.exitCode === null && this.nspawn.signalCode === null;
  }

  /** A path of the container's disk, seen from the host (not /run or /tmp: those are the container's tmpfs). */
  hostPath(p: string): string {
    return join(this.root, p);
  }

  /** A path as the running container sees it (its /run too), through /proc/INIT/root. */
  livePath(p: string): string {
    return `/proc/${this.initPid}/root${p}`;
  }

  async boot(timeoutMs = 120_000): Promise<BootResult> {
    if (this.running) throw new Error(`${this.name} is already running`);
    killLeftoverContainers();
    const t0 = performance.now();
    const deadline = Date.now() + timeoutMs;
    const out = openSync(this.logFile, 'a');
    writeFileSync(out, `\n===== boot ${this.boots + 1} of ${this.name} at ${new Date().toISOString()}\n`);
    const child = spawn(
      'systemd-nspawn',
      ['--quiet', '-D', this.root, '--boot', '--register=no', '--keep-unit', `--machine=${this.name}`, '--console=read-only'],
      { stdio: ['ignore', out, out], env: hostEnv() },
    );
    closeSync(out);
    this.nspawn = child;
    booted.add(this);
    this.boots++;
    this.exited = new Promise((r) => child.once('exit', () => r()));
    const nspawnPid = child.pid!;
    mkdirSync(pidDir(), { recursive: true });
    this.pidFile = join(pidDir(), `${this.name}.json`);
    const writePidFile = (init?: number): void =>
      writeFileSync(
        this.pidFile!,
        JSON.stringify({ owner: process.pid, nspawn: nspawnPid, nspawnStart: startTime(nspawnPid), init, initStart: init ? startTime(init) : undefined }),
      );
    writePidFile();
    try {
      // The container's init is nspawn's direct child once it has exec'd systemd.
      this.initPid = await waitUntil(
        'the container init (systemd, a child of systemd-nspawn)',
        () => {
          if (!this.running) throw new Error(`systemd-nspawn exited; see ${this.logFile}`);
          const kids = readFileSync(`/proc/${nspawnPid}/task/${nspawnPid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
          return kids.find((k) => {
            try {
              return readFileSync(`/proc/${k}/comm`, 'utf8').trim() === 'systemd';
            } catch {
              return false;
            }
          });
        },
        30_000,
        50,
      );
      writePidFile(this.initPid);
      let state = '';
      await waitUntil(
        'systemctl is-system-running --wait',
        async () => {
          if (!this.running) throw new Error(`systemd-nspawn exited; see ${this.logFile}`);
          const left = Math.max(1_000, deadline - Date.now());
          const r = await this.exec(['systemctl', 'is-system-running', '--wait'], { timeoutMs: left });
          state = r.stdout.trim();
          // running, or degraded (some unit unrelated to the test failed: reported by the caller).
          return state === 'running' || state === 'degraded';
        },
        Math.max(1_000, deadline - Date.now()),
        250,
      );
      const ms = performance.now() - t0;
      const failed = await this.exec(['systemctl', '--failed', '--no-legend', '--plain']);
      return { ms, state, failedUnits: failed.stdout.trim() };
    } catch (err) {
      await this.kill();
      throw err;
    }
  }

  /** Runs a command inside the container as root (`user` given: through runuser). */
  exec(args: readonly string[], options: RunOptions & { user?: string; env?: Record<string, string> } = {}): Promise<RunResult> {
    if (!this.running || !this.initPid) throw new Error(`${this.name} is not running`);
    const env = Object.entries(options.env ?? {}).map(([k, v]) => `${k}=${v}`);
    const cmd = options.user ? ['runuser', '-u', options.user, '--', ...args] : args;
    return run('nsenter', ['-t', String(this.initPid), '-a', 'env', '-i', ...INSIDE_ENV, ...env, ...cmd], {
      timeoutMs: options.timeoutMs ?? 60_000,
      ...(options.stdin !== undefined ? { stdin: options.stdin } : {}),
    });
  }

  /** `sh -c script` inside. */
  sh(script: string, options: RunOptions & { user?: string; env?: Record<string, string> } = {}): Promise<RunResult> {
    return this.exec(['sh', '-c', script], options);
  }

  /** `systemctl show` properties of a unit. */
  async show(unit: string, props: readonly string[]): Promise<Record<string, string>> {
    const r = must(`systemctl show ${unit}`, await this.exec(['systemctl', 'show', unit, ...props.flatMap((p) => ['-p', p])]));
    const out: Record<string, string> = {};
    for (const line of r.stdout.split('\n')) {
      const i = line.indexOf('=');
      if (i > 0) out[line.slice(0, i)] = line.slice(i + 1);
    }
    return out;
  }

  /** The journal's current end: give it to journalSince to read what came after. */
  async journalCursor(): Promise<string> {
    const r = must('journalctl --show-cursor', await this.exec(['journalctl', '-q', '-n', '0', '--show-cursor', '--no-pager']));
    const m = /-- cursor: (\S+)/.exec(r.stdout);
    if (!m) {
      // An empty journal has no cursor yet: everything is "after".
      return '';
    }
    return m[1]!;
  }

  /** Messages (`-o cat`) after a cursor, of one unit when given. */
  async journalSince(cursor: string, unit?: string): Promise<string> {
    const args = ['journalctl', '-q', '--no-pager', '-o', 'cat', ...(cursor ? [`--after-cursor=${cursor}`] : []), ...(unit ? ['-u', unit] : [])];
    return must('journalctl', await this.exec(args)).stdout;
  }

  /** Waits for the container to stop by itself (after poweroff), bounded. */
  private async waitExit(timeoutMs: number): Promise<boolean> {
    if (!this.running) return true;
    let timer: NodeJS.Timeout | undefined;
    const done = await Promise.race([
      this.exited!.then(() => true),
      new Promise<boolean>((r) => (timer = setTimeout(() => r(false), timeoutMs))),
    ]);
    clearTimeout(timer);
    return done;
  }

  /** Synchronous last resort (process exit): SIGKILL to the container's init and to nspawn. */
  killNow(): void {
    for (const pid of [this.initPid, this.nspawn?.pid]) {
      if (!pid) continue;
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  }

  private finished(): void {
    booted.delete(this);
    if (this.pidFile) rmSync(this.pidFile, { force: true });
    this.pidFile = undefined;
    this.initPid = 0;
  }

  /** `systemctl poweroff` inside, and waits until systemd-nspawn has exited. */
  async poweroff(timeoutMs = 60_000): Promise<number> {
    const t0 = performance.now();
    // The command may lose its connection as the system goes down: its result says nothing.
    await this.exec(['systemctl', 'poweroff'], { timeoutMs: 15_000 }).catch(() => undefined);
    if (!(await this.waitExit(timeoutMs))) {
      await this.kill();
      throw new Error(`${this.name} did not power off within ${timeoutMs} ms; killed it`);
    }
    this.finished();
    return performance.now() - t0;
  }

  /** Stops the container without asking: SIGTERM to nspawn (a clean halt), then SIGKILL to its init and nspawn. */
  async kill(): Promise<void> {
    if (this.running) {
      this.nspawn!.kill('SIGTERM');
      if (!(await this.waitExit(15_000))) {
        // Killing a PID namespace's init kills everything in it.
        if (this.initPid) {
          try {
            process.kill(this.initPid, 'SIGKILL');
          } catch {
            /* gone */
          }
        }
        this.nspawn!.kill('SIGKILL');
        await this.waitExit(15_000);
      }
    }
    this.finished();
  }

  /** For `after`: powers off if it can, else kills. Never throws. */
  async shutdown(): Promise<void> {
    if (!this.running) return this.finished();
    try {
      await this.poweroff(45_000);
    } catch {
      await this.kill().catch(() => undefined);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Provisioning inside

/** The env file pos-token-agent-provision --non-interactive --from reads (0600), for the emulator's demo device. */
export function demoProvisionEnv(emulatorUrl: string, clientSecret = DEMO_DEVICE.clientSecrets[0]!): string {
  return [
    'POS_AUTHORITY=eta-ereceipt',
    `POS_IDENTITY_URL=${emulatorUrl}`,
    'POS_PROFILE=manual',
    `POS_SERIAL=${DEMO_DEVICE.posserial}`,
    `POS_OS_VERSION=${DEMO_DEVICE.pososversion}`,
    `POS_MODEL_FRAMEWORK=${DEMO_DEVICE.posmodelframework}`,
    `POS_CLIENT_ID=${DEMO_DEVICE.clientId}`,
    `POS_CLIENT_SECRET=${clientSecret}`,
    `POS_PRESHARED_KEY=${DEMO_DEVICE.presharedKey}`,
    '',
  ].join('\n');
}

/** Runs pos-token-agent-provision non-interactively inside `m` from such a file, removed afterwards. */
export async function provisionInside(m: Machine, envFile: string, env: Record<string, string> = {}): Promise<RunResult> {
  writeFileSync(m.hostPath('/root/pos.env'), envFile, { mode: 0o600 });
  chmodSync(m.hostPath('/root/pos.env'), 0o600);
  try {
    return await m.exec(['pos-token-agent-provision', '--non-interactive', '--from', '/root/pos.env'], { timeoutMs: 3 * 60_000, env });
  } finally {
    rmSync(m.hostPath('/root/pos.env'), { force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// The previous version's package

export interface PreviousPackage {
  deb: string;
  version: string;
  commit: string;
}

async function git(args: string[], timeoutMs = 60_000): Promise<string> {
  return must(`git ${args.join(' ')}`, await run('git', ['-C', REPO, ...args], { timeoutMs })).stdout;
}

/**
 * The newest commit of HEAD's first-parent history whose package.json has another version than `current`: by
 * default the version of the tree under test, which is HEAD's once it is committed (and in CI); with a version
 * bump not yet committed, HEAD itself is then the previous version.
 */
export async function previousVersionCommit(current = VERSION): Promise<{ commit: string; version: string }> {
  const versionAt = async (c: string): Promise<string | undefined> => {
    const r = await run('git', ['-C', REPO, 'show', `${c}:package.json`]);
    if (r.code !== 0) return undefined;
    try {
      return (JSON.parse(r.stdout) as { version?: string }).version;
    } catch {
      return undefined;
    }
  };
  const commits = (await git(['rev-list', '--first-parent', '--max-count=2000', 'HEAD'])).split('\n').filter(Boolean);
  for (const c of commits) {
    const v = await versionAt(c);
    if (v !== undefined && v !== current) return { commit: c, version: v };
  }
  throw new Error(`no commit of HEAD's history has a version other than ${current} (a shallow clone? fetch the history)`);
}

function hashFiles(paths: string[]): string {
  const h = createHash('sha256');
  const walk = (p: string): void => {
    if (!existsSync(p)) return;
    if (statSync(p).isDirectory()) for (const n of readdirSync(p).sort()) walk(join(p, n));
    else h.update(p.slice(REPO.length)).update('\0').update(readFileSync(p)).update('\0');
  };
  for (const p of paths) walk(p);
  return h.digest('hex').slice(0, 16);
}

/**
 * The package of the previous version (previousVersionCommit) for `arch`, made with this tree's
 * scripts/package.mjs --source. The commit's tree is taken with `git archive` (no worktree is registered in
 * the repository, so nothing dangles once the cache is cleaned), then `npm ci --ignore-scripts` and
 * `npx tsc -p tsconfig.build.json` there; that build is cached under the cache directory by commit hash, and
 * the package by commit hash and a hash of the packaging files (scripts/package.mjs, scripts/deb,
 * scripts/node-runtime.json), so that a change of the packaging packages the old tree again.
 */
export async function previousVersionPackage(arch: 'amd64' | 'arm64', log: (s: string) => void = () => {}): Promise<PreviousPackage> {
  const { commit, version } = await previousVersionCommit();
  const dir = join(cacheDir(), 'previous', commit);
  // Only the previous version of the tree under test is kept: older commits' builds (about 200 MB each) go.
  try {
    for (const n of readdirSync(join(cacheDir(), 'previous'))) if (n !== commit) removeTree(join(cacheDir(), 'previous', n));
  } catch {
    /* no cache yet */
  }
  const src = join(dir, 'src');
  const built = join(dir, 'built');
  if (!existsSync(built)) {
    log(`building ${version} (${commit.slice(0, 12)}) in ${src}`);
    removeTree(src);
    mkdirSync(src, { recursive: true });
    must(
      'git archive | tar -x',
      await run('sh', ['-c', 'set -e; git -C "$1" archive --format=tar "$2" | tar -x -C "$3"', 'sh', REPO, commit, src], { timeoutMs: 5 * 60_000 }),
    );
    must(
      'npm ci --ignore-scripts',
      await run('npm', ['ci', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: src, timeoutMs: 15 * 60_000, env: buildEnv() }),
    );
    must(
      'npx tsc -p tsconfig.build.json',
      await run('npx', ['--no-install', 'tsc', '-p', 'tsconfig.build.json'], { cwd: src, timeoutMs: 10 * 60_000, env: buildEnv() }),
    );
    writeFileSync(built, `${new Date().toISOString()}\n`);
  }
  const packaging = hashFiles([join(REPO, 'scripts/package.mjs'), join(REPO, 'scripts/deb'), join(REPO, 'scripts/node-runtime.json')]);
  const out = join(dir, `package-${arch}-${packaging}`);
  const find = (): string | undefined => {
    try {
      return readdirSync(out).find((n) => n.startsWith(`${NAME}_${version}_`) && n.endsWith(`_${arch}.deb`));
    } catch {
      return undefined;
    }
  };
  if (!find()) {
    log(`packaging ${version} for ${arch} into ${out}`);
    const tmp = `${out}.tmp-${process.pid}`;
    removeTree(tmp);
    // A TMPDIR of its own: package.mjs stages in $TMPDIR/pos-token-agent-package-<arch>, which another
    // package.mjs running at the same time (npm run package) would share.
    const scratch = `${out}.scratch-${process.pid}`;
    removeTree(scratch);
    mkdirSync(scratch, { recursive: true });
    // The old tree has no .git: its timestamps are the commit's time, as package.mjs takes them in a checkout.
    const epoch = (await git(['show', '-s', '--format=%ct', commit])).trim();
    const r = await run(process.execPath, [join(REPO, 'scripts/package.mjs'), '--source', src, '--version', version, '--arch', arch, '--out', tmp], {
      cwd: REPO,
      timeoutMs: 20 * 60_000,
      env: buildEnv({ SOURCE_DATE_EPOCH: epoch, TMPDIR: scratch }),
    });
    removeTree(scratch);
    if (r.code !== 0) removeTree(tmp);
    must('scripts/package.mjs --source', r);
    removeTree(out);
    renameSync(tmp, out);
  }
  const name = find();
  if (!name) throw new Error(`scripts/package.mjs made no ${NAME}_${version}_${arch}.deb in ${out}`);
  return { deb: join(out, name), version, commit };
}
