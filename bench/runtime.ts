/**
 * The runtimes the bench measures on:
 *   packaged  the Node.js the packages carry, with the package's own dist/ and node_modules: the tarball
 *             release/pos-token-agent-<version>-linux-<arch>.tar.gz, built with scripts/package.mjs when missing or
 *             when its dist/ is not the repository's (the build the bench just made); extracted to a temporary
 *             directory and synced (freshly written pages would count as Private_Dirty in smaps until written back)
 *   machine   the node running the bench (process.execPath) with the repository's dist/ (or BENCH_CLI)
 * and how the shipped unit runs node (its flags and NODE_* environment), read from systemd/pos-token-agent.service.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { parseUnit, type UnitRun } from './lib.js';

export type RuntimeName = 'packaged' | 'machine';
export const RUNTIME_NAMES: readonly RuntimeName[] = ['packaged', 'machine'];

export interface Runtime {
  name: RuntimeName;
  /** The node binary. */
  node: string;
  /** `node --version` of it. */
  version: string;
  /** The compiled CLI (dist/cli/main.js) run on it. */
  cli: string;
  /** Where it came from, for the report. */
  source: string;
  /** A temporary directory to remove at the end (the extracted package). */
  tempDir?: string;
}

/** BENCH_RUNTIMES (a comma-separated list of packaged and machine; default both, packaged first). */
export function chosenRuntimes(value: string | undefined): RuntimeName[] {
  if (value === undefined || value.trim() === '') return [...RUNTIME_NAMES];
  const names = value.split(',').map((s) => s.trim()).filter(Boolean);
  for (const n of names) {
    if (!RUNTIME_NAMES.includes(n as RuntimeName)) throw new Error(`BENCH_RUNTIMES: unknown runtime "${n}" (packaged, machine)`);
  }
  return [...new Set(names as RuntimeName[])];
}

/** The unit's way of running node; BENCH_NODE_FLAGS (space-separated) replaces its flags, to weigh others. */
export function unitRun(root: string, override: string | undefined): UnitRun & { flagsFrom: string } {
  const path = join(root, 'systemd', 'pos-token-agent.service');
  const unit = parseUnit(readFileSync(path, 'utf8'));
  if (override === undefined) return { ...unit, flagsFrom: relative(root, path) };
  return { ...unit, nodeFlags: override.split(/\s+/).filter(Boolean), flagsFrom: 'BENCH_NODE_FLAGS' };
}

function nodeVersion(node: string): string {
  const r = spawnSync(node, ['--version'], { encoding: 'utf8', timeout: 30_000 });
  if (r.status !== 0) throw new Error(`${node} --version failed: ${r.error?.message ?? r.stderr}`);
  return r.stdout.trim();
}

export function machineRuntime(cli: string): Runtime {
  return { name: 'machine', node: process.execPath, version: process.version, cli, source: `this machine's node, ${cli}` };
}

/** Files under `dir` (relative paths), sorted; source maps left out (the package does not carry them). */
function files(dir: string, under = ''): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(dir, under)).sort()) {
    const rel = join(under, name);
    if (statSync(join(dir, rel)).isDirectory()) out.push(...files(dir, rel));
    else if (!name.endsWith('.map')) out.push(rel);
  }
  return out;
}

/** How the package's dist/ differs from the repository's: the paths missing, added or changed ([] when equal). */
export function distDifferences(repoDist: string, packageDist: string): string[] {
  const mine = files(repoDist);
  const theirs = new Set(files(packageDist));
  const differ = mine.filter((f) => !theirs.has(f) || !readFileSync(join(repoDist, f)).equals(readFileSync(join(packageDist, f))));
  const extra = [...theirs].filter((f) => !mine.includes(f));
  return [...differ, ...extra];
}

const debArch = (): string => (process.arch === 'arm64' ? 'arm64' : 'amd64');

function extract(tarball: string, base: string): { dir: string; tree: string } {
  const dir = mkdtempSync(join(tmpdir(), 'pta-bench-package-'));
  const tar = spawnSync('tar', ['xzf', tarball, '-C', dir], { encoding: 'utf8', timeout: 300_000 });
  if (tar.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`tar xzf ${tarball} failed: ${tar.stderr}`);
  }
  // Written back now, so that the node binary's pages count as clean file pages, as on an installed box.
  spawnSync('sync', ['-f', dir], { timeout: 120_000 });
  return { dir, tree: join(dir, base) };
}

/**
 * The packaged runtime, extracted. BENCH_PACKAGE names another tarball to take as it is; otherwise the repository's
 * release/ tarball of package.json's version, (re)built when missing or when its dist/ is not the repository's.
 */
export function packagedRuntime(root: string, progress: (msg: string) => void, explicit: string | undefined): Runtime {
  const version = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string }).version;
  const arch = debArch();
  const base = `pos-token-agent-${version}-linux-${arch}`;
  const tarball = explicit !== undefined ? resolve(explicit) : join(root, 'release', `${base}.tar.gz`);
  let built = false;
  const build = (why: string): void => {
    progress(`packaged runtime: ${why}; building it with node scripts/package.mjs --arch ${arch} (1-2 minutes; its progress follows)`);
    const r = spawnSync(process.execPath, [join(root, 'scripts', 'package.mjs'), '--arch', arch], {
      cwd: root,
      stdio: ['ignore', 2, 2],
      timeout: 1_800_000,
    });
    if (r.status !== 0) throw new Error(`scripts/package.mjs --arch ${arch} failed (${r.status ?? r.signal}); BENCH_RUNTIMES=machine measures without it`);
    built = true;
  };
  if (!existsSync(tarball)) {
    if (explicit !== undefined) throw new Error(`BENCH_PACKAGE: ${tarball} does not exist`);
    build(`${relative(root, tarball)} is not there`);
  }
  let { dir, tree } = extract(tarball, explicit !== undefined ? findTree(tarball) : base);
  let note = '';
  const differences = distDifferences(join(root, 'dist'), join(tree, 'dist'));
  if (differences.length > 0) {
    if (explicit !== undefined || built) {
      note = `; its dist/ differs from the repository's in ${differences.length} file(s), e.g. ${differences[0]}`;
    } else {
      rmSync(dir, { recursive: true, force: true });
      build(`${relative(root, tarball)} holds another build (its dist/ differs in ${differences.length} file(s), e.g. ${differences[0]})`);
      ({ dir, tree } = extract(tarball, base));
    }
  }
  const node = join(tree, 'node', 'bin', 'node');
  const cli = join(tree, 'dist', 'cli', 'main.js');
  if (!existsSync(node) || !existsSync(cli)) throw new Error(`${tarball} has no node/bin/node or dist/cli/main.js`);
  const shown = relative(root, tarball).startsWith('..') ? tarball : relative(root, tarball);
  return { name: 'packaged', node, version: nodeVersion(node), cli, source: `${shown}${built ? ' (built by this run)' : ''}${note}`, tempDir: dir };
}

/** The top directory of a tarball (its first entry's first path segment). */
function findTree(tarball: string): string {
  const r = spawnSync('sh', ['-c', `tar tzf "$1" | head -1`, 'sh', tarball], { encoding: 'utf8', timeout: 120_000 });
  const first = r.stdout.trim().split('/')[0];
  if (!first) throw new Error(`${tarball}: cannot list its contents`);
  return first;
}
